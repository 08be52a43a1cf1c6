import re

import pytest

from elcrec.training.config import NO_PRESET, NO_PRESET_RANKING, PRESETS, TrainConfig
from elcrec.training.intent_count import (
    MAX_INTENTS,
    MIN_INTENTS,
    RULE,
    USERS_PER_INTENT,
    choose_intents,
    describe_record,
    intents_for,
)
from elcrec.training.intent_verdict import collapse_warning, collapsed, health_line
from elcrec.training.run import base_settings, resolve_settings


def test_the_rule_is_the_power_of_two_nearest_users_per_intent_within_bounds() -> None:
    assert intents_for(16 * USERS_PER_INTENT) == 16
    assert intents_for(int(22.6 * USERS_PER_INTENT)) == 16  # log2 22.6 = 4.50: still nearer 16 than 32
    assert intents_for(int(23 * USERS_PER_INTENT)) == 32
    assert intents_for(10) == MIN_INTENTS
    assert intents_for(10**7) == MAX_INTENTS
    assert intents_for(3) == 3  # never more intents than users: the centers start as a k-means of them
    with pytest.raises(ValueError, match="no users"):
        intents_for(0)


def test_intents_flag_then_preset_then_rule_and_the_record_says_which() -> None:
    assert choose_intents(12, 256, 5000).to_dict() == {"k": 12, "chosen_by": "--intents", "users": 5000}
    assert choose_intents(None, 256, 5000).to_dict() == {"k": 256, "chosen_by": "preset", "users": 5000}
    by_rule = choose_intents(None, None, 5000)
    assert by_rule.to_dict() == {"k": intents_for(5000), "chosen_by": "rule", "users": 5000, "rule": RULE}
    line = describe_record(by_rule.to_dict())
    assert line == f"K = {intents_for(5000)} intents from the data: 5000 users, {RULE}"
    assert describe_record(None) is None and describe_record({"k": "x"}) is None


def test_without_a_preset_the_intents_are_balanced_and_settled_with_a_preset_elcm() -> None:
    flags = {"pooling": "real", "n_intents": 8}
    default = resolve_settings(100, base_settings(None, False, False), flags, {}).train
    assert default.intent_loss == "balanced" and default.intent_settle > 0 and default.trade_off == NO_PRESET[1]["trade_off"]
    assert default.settle_temperature == NO_PRESET[1]["intent_settle_temperature"]
    named = resolve_settings(100, base_settings(None, False, False, "balanced"), flags, {"intent_loss": "balanced"})
    assert named.train == default
    chosen = resolve_settings(100, base_settings(None, False, False, "elcm"), flags, {"intent_loss": "elcm"}).train
    # ELCM at its weight 1, with the ranking loss of any run without a preset
    assert chosen == TrainConfig(intent_loss="elcm", bucket=True, **NO_PRESET_RANKING)
    assert default.rec_loss == chosen.rec_loss == "sampled"
    for name in PRESETS:
        preset = resolve_settings(100, base_settings(name, False, False), flags, {}).train
        assert preset.intent_loss == "elcm" and preset.rec_loss == "bce"  # the paper's, untouched


HEALTHY = {"users": 900, "intents": 16, "used": 16, "largest": 0.071, "effective": 15.8, "overlap": 0.0123,
           "lift": 3.41}
COLLAPSED = {"users": 900, "intents": 256, "used": 12, "largest": 0.61, "effective": 3.8, "overlap": 0.021,
             "lift": 1.53}


def test_the_health_line_says_use_spread_distinctness_and_lift() -> None:
    assert health_line(HEALTHY) == ("intents (900 test users): 16 of 16 used, effective 15.8, largest 7%, "
                                    "overlap 0.0123, lift@100 3.41")
    one = {**HEALTHY, "used": 1, "largest": 1.0, "effective": 1.0, "overlap": None, "lift": None}
    assert re.search(r"1 of 16 used, effective 1\.0, largest 100%, overlap -, lift@100 -$", health_line(one))


def test_no_warning_unless_the_effective_number_is_below_a_tenth_of_k(tmp_path) -> None:
    assert not collapsed(HEALTHY)
    assert collapse_warning(HEALTHY, "elcm", None, tmp_path, tmp_path / "d.txt", 900) is None
    assert collapsed({**HEALTHY, "effective": 1.5})  # 1.5 < 16 / 10


def test_an_elcm_collapse_points_to_the_balanced_loss_and_intents_fit(tmp_path) -> None:
    store, data = tmp_path / "store", tmp_path / "log.txt"
    said = collapse_warning(COLLAPSED, "elcm", None, store, data, 943)
    assert said is not None and said.startswith("warning: the intents collapsed: effective number 3.8 of K = 256")
    assert "the largest holds 61% of the users" in said and "(--intent-loss elcm)" in said
    assert "--intent-loss balanced (the default without --preset)" in said
    assert f"elcrec intents fit {store} --data {data} --k {intents_for(943)}" in said  # the rule's K
    preset = collapse_warning(COLLAPSED, "elcm", "Beauty", store, data, 943)
    assert preset is not None and "(--preset Beauty trains it)" in preset


def test_a_balanced_collapse_points_to_fewer_intents(tmp_path) -> None:
    rule = intents_for(943)
    said = collapse_warning({**COLLAPSED, "intents": 4 * rule}, "balanced", None, tmp_path, tmp_path / "d.txt", 943)
    assert said is not None and f"Even the balanced loss could not keep {4 * rule} intents apart on 943 users" in said
    assert f"--intents {rule}" in said and f"--k {rule}" in said
    # K already at or below the rule's: a quarter of it
    small = collapse_warning({**COLLAPSED, "intents": rule, "effective": 1.2}, "balanced", None, tmp_path,
                             tmp_path / "d.txt", 943)
    assert small is not None and f"--intents {rule // 4}" in small
