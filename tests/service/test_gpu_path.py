"""The GPU path: exact torch top-k as an alternative to FAISS, half-precision encoders checked against fp32.

Everything runs on the CPU here (torch's top-k and bf16/fp16 work there too); the CUDA tests at the end run
whenever a GPU is present and skip otherwise.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

import elcrec.service.bundle as bundle_module
from elcrec.model.artifact import ArtifactError, Store
from elcrec.model.manifest import ManifestInfo
from elcrec.service.bundle import LoadOptions, build_bundle
from elcrec.service.fused import FusedEncoder, read_states
from elcrec.service.precision import PrecisionCheck, probe_histories, to_precision
from elcrec.service.retrieval import ItemIndex, TorchExactIndex
from tests.support.service import ITEM_IDS, N_ITEMS, POPULAR, TOKEN, running_app, settings_for, tiny_model
from tests.support.service import random_table as table

pytestmark = pytest.mark.anyio
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the GPU path runs on a GPU machine")


def _compare(flat: list, torch_hits: list) -> None:
    for (rows_a, scores_a, skipped_a), (rows_b, scores_b, skipped_b) in zip(flat, torch_hits, strict=True):
        assert rows_a == rows_b
        np.testing.assert_allclose(scores_a, scores_b, rtol=1e-5, atol=1e-5)
        assert skipped_a == skipped_b


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_torch_index_answers_as_flat_faiss(device: str) -> None:
    t = table(n=500)
    rng = np.random.default_rng(3)
    q = rng.normal(size=(6, 16)).astype(np.float32)
    ks = [5, 10, 0, 3, 500, 1]
    excludes = [set(rng.integers(1, 501, 30).tolist()) for _ in ks]
    excludes[2] = set()
    excludes[5] = {0, 501, 10_000}  # padding, mask and unknown rows are never returned anyway
    flat = ItemIndex(t, "Flat").search_unseen(q, ks, excludes)
    exact = TorchExactIndex(t, device)
    _compare(flat, exact.search_unseen(torch.from_numpy(q).to(device), ks, excludes))
    _compare(flat, exact.search_unseen(q, ks, excludes))  # numpy queries too
    assert [len(h[0]) for h in flat] == [5, 10, 0, 3, 500 - len(excludes[4]), 1]
    np.testing.assert_array_equal(exact.search(q, 7)[1], ItemIndex(t, "Flat").search(q, 7)[1])


async def test_service_with_the_torch_index_recommends_as_with_faiss(store: Path) -> None:
    bodies = [{"history": ["i1", "i2", "i3"], "k": 5}, {"history": ["i7"], "k": N_ITEMS - 1, "exclude_seen": True}]
    answers = {}
    for index in ("Flat", "torch"):
        async with running_app(settings_for(store, index=index)) as c:
            answers[index] = [(await c.post("/v1/recommend", json=b)).json() for b in bodies]
            assert (await c.get("/v1/model")).json()["index"] == index
            assert (await c.get("/v1/intents/1", params={"k": 3})).status_code == 200
    for a, b in zip(answers["Flat"], answers["torch"], strict=True):
        assert [i["item_id"] for i in a["items"]] == [i["item_id"] for i in b["items"]]
        assert a["intent"] == b["intent"]


def test_torch_index_takes_no_faiss_parameters(store: Path) -> None:
    with pytest.raises(ArtifactError, match="takes no ELCREC_INDEX_PARAMS"):
        build_bundle(store / "v0001", torch.device("cpu"), LoadOptions(index_spec="torch", index_params="nprobe=4"))


def test_probe_histories_cover_every_length() -> None:
    ids = probe_histories(n_items=40, max_len=8, n=16)
    lengths = (ids > 0).sum(1)
    assert sorted(set(lengths.tolist())) == list(range(1, 9))
    assert ((ids > 0).int().diff(dim=1) >= 0).all()  # left-padded
    assert ids.max() <= 40


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_is_checked_against_fp32(precision: str) -> None:
    model = tiny_model(pooling="real")
    low, check = to_precision(model, precision)
    assert check is not None and check.precision == precision and check.probes == 256
    assert low.item_embeddings.weight.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert model.item_embeddings.weight.dtype == torch.float32  # the fp32 model is left as it was
    assert 0.5 <= check.top10_overlap <= 1 and 0.5 <= check.intent_agreement <= 1
    assert to_precision(model, "fp32") == (model, None)
    # intents compared as served, with the version's bias: one that sends every probe to intent 0 agrees fully
    bias = torch.full((model.intent_centers.shape[0],), -10.0)
    bias[0] = 0.0
    _, biased = to_precision(model, precision, bias)
    assert biased is not None and biased.intent_agreement == 1.0
    with pytest.raises(ValueError, match="precision must be one of"):
        to_precision(model, "int8")


async def test_service_serves_bf16_and_reports_the_check(store: Path) -> None:
    async with running_app(settings_for(store, precision="bf16", precision_min_identical=0, precision_min_intents=0)) as c:
        info = (await c.get("/v1/model")).json()
        assert info["precision"] == "bf16" and info["precision_check"]["probes"] == 256
        r = await c.post("/v1/recommend", json={"history": ["i1", "i2"], "k": 4})
        assert r.status_code == 200 and len(r.json()["items"]) == 4
        assert all(isinstance(i["score"], float) for i in r.json()["items"])


def test_a_version_that_ranks_differently_in_half_precision_is_refused(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def poor(model: torch.nn.Module, precision: str, bias: torch.Tensor | None = None) -> tuple:
        return model, PrecisionCheck(precision, 256, top10_overlap=0.92, top10_identical=0.62, intent_agreement=0.995)

    monkeypatch.setattr(bundle_module, "to_precision", poor)
    with pytest.raises(ArtifactError, match=r"top-10 list for 62\.0% of 256 probe histories .*MIN_IDENTICAL=0\.995.* intent for 99\.5%"):
        build_bundle(store / "v0001", torch.device("cpu"),
                     LoadOptions(precision="fp16", min_identical=0.995, min_intents=0.99))



def fp16_overflowing(seed: int = 0) -> torch.nn.Module:
    """A model that is sound in fp32 and bf16 but not in fp16: its item embeddings reach ~87,000, beyond fp16's
    largest finite value (65,504), so the fp16 copy holds infinities (the classic way a half-precision cast fails)."""
    model = tiny_model(seed)
    with torch.no_grad():
        model.item_embeddings.weight.mul_(1e6)
    return model


def test_the_check_measures_a_model_that_disagrees_in_fp16() -> None:
    model = fp16_overflowing()
    _, fp16 = to_precision(model, "fp16")
    _, bf16 = to_precision(model, "bf16")  # bf16 has fp32's range: the same model agrees there
    assert fp16 is not None and fp16.top10_overlap < 0.9 and fp16.intent_agreement < 0.9
    assert fp16.top10_identical <= fp16.top10_overlap and not fp16.passes(0.995, 0.99)
    assert bf16 is not None and bf16.top10_overlap >= 0.99 and bf16.intent_agreement >= 0.99


async def test_the_service_refuses_a_version_that_disagrees_in_fp16_and_keeps_serving(store: Path) -> None:
    settings = settings_for(store, precision="fp16", precision_min_identical=0.5, admin_token=TOKEN,
                            poll_interval_s=3600)
    async with running_app(settings) as c:
        assert (await c.get("/v1/model")).json()["precision_check"]["top10_identical"] >= 0.5
        Store(store).write_version(fp16_overflowing(seed=1), ITEM_IDS, ManifestInfo(popular_items=tuple(POPULAR)))
        r = await c.post("/v1/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 409, r.text
        message = r.json()["detail"]["message"]
        assert re.search(r"version v0002 in fp16 gives fp32's top-10 list for \d+\.\d% of 256 probe", message), message
        assert "(ELCREC_PRECISION_MIN_IDENTICAL=0.5)" in message and message.endswith("serve it in fp32")
        assert r.json()["detail"]["serving"] == "v0001"
        ready = (await c.get("/health/ready")).json()
        assert ready["reload"]["failed_version"] == "v0002" and ready["model"]["version"] == "v0001"
        answer = await c.post("/v1/recommend", json={"history": ["i1", "i2"], "k": 3})
        assert answer.status_code == 200 and answer.json()["model_version"] == "v0001"


@CUDA
async def test_cuda_fp16_with_torch_topk_matches_cpu_fp32(store: Path) -> None:
    body = {"history": ["i1", "i2", "i3", "i4"], "k": 10}
    async with running_app(settings_for(store)) as c:
        expected = (await c.post("/v1/recommend", json=body)).json()
    settings = settings_for(store, device="cuda", index="torch", precision="fp16", precision_min_identical=0.8, precision_min_intents=0.8)
    async with running_app(settings) as c:
        assert (await c.get("/v1/model")).json()["device"].startswith("cuda")
        got = (await c.post("/v1/recommend", json=body)).json()
    kept = {i["item_id"] for i in got["items"]} & {i["item_id"] for i in expected["items"]}
    assert len(kept) >= 8


@pytest.mark.parametrize("mix_alpha", [0.0, 0.5])  # the paper's blocks; with the frequency filter (--improved)
@pytest.mark.parametrize("pooling", ["all", "real"])
def test_the_traced_encoder_gives_the_module_states(tmp_path: Path, pooling: str, mix_alpha: float) -> None:
    from tests.support.service import add_version

    store = tmp_path / "s"
    add_version(store, pooling=pooling, mix_alpha=mix_alpha)
    bundle = build_bundle(store / "v0001", torch.device("cpu"))
    assert isinstance(bundle.encoder, torch.jit.ScriptModule)
    with torch.inference_mode():
        for shape in ((1, 3), (5, 8), (2, 1)):
            ids = torch.randint(0, N_ITEMS + 1, shape)
            ids[:, -1] = 1
            torch.testing.assert_close(read_states(bundle.encoder(ids), ids, pooling),
                                       read_states(bundle.model(ids), ids, pooling))
    assert build_bundle(store / "v0001", torch.device("cpu"), LoadOptions(jit=False)).encoder is not None


def test_a_failed_trace_serves_the_module(store: Path, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no tracing today")

    monkeypatch.setattr(torch.jit, "trace", broken)
    monkeypatch.setattr(bundle_module, "_TRACES", OrderedDict())  # no trace of this architecture kept from before
    bundle = build_bundle(store / "v0001", torch.device("cpu"))
    assert isinstance(bundle.encoder, FusedEncoder) and bundle.encoder.model is bundle.model  # untraced
    assert "serving the encoder untraced (RuntimeError: no tracing today)" in caplog.text


def test_a_second_version_of_an_architecture_reuses_the_trace_with_its_own_weights(tmp_path: Path) -> None:
    from tests.support.service import add_version

    first = build_bundle(add_version(tmp_path / "s", seed=1), torch.device("cpu"))
    second = build_bundle(add_version(tmp_path / "s", seed=2), torch.device("cpu"))
    ids = torch.tensor([[0, 3, 5, 7, 2], [1, 2, 3, 4, 5]])
    with torch.inference_mode():
        for bundle in (first, second):
            assert isinstance(bundle.encoder, torch.jit.ScriptModule)
            assert torch.allclose(bundle.encoder(ids), bundle.model(ids), atol=1e-5)
        assert not torch.allclose(first.encoder(ids), second.encoder(ids))
