"""bench.where: py-spy's samples sorted into the parts of a request."""

from __future__ import annotations

from pathlib import Path

from bench.where import arithmetic, categorise, parse_raw

ROOT = Path(__file__).resolve().parents[2]
SOURCE = {f"service/{p.name}": p.read_text().splitlines() for p in (ROOT / "service").glob("*.py")}
LOOP = "_run_module_as_main (<frozen runpy>:198);Runner.run (asyncio/runners.py:118)"


def line_of(file: str, text: str) -> int:
    return next(n for n, line in enumerate(SOURCE[file], start=1) if text in line)


def stack(*frames: str) -> list[str]:
    return [*LOOP.split(";"), *frames]


def test_run_batch_statements_name_the_encoder_the_intents_and_the_retrieval() -> None:
    def batch(text: str, *inner: str) -> str:
        at = f"run_batch (service/inference.py:{line_of('service/inference.py', text)})"
        return categorise(stack("Engine._run (service/engine.py:120)", at, *inner), SOURCE)

    assert batch("bundle.encoder(ids)", "Module._call_impl (torch/nn/modules/module.py:1786)") == "encoder"
    assert batch("bundle.intents.distribution(") == "intents"
    assert batch("hits = bundle.index.search_unseen(vectors.cpu()") == "retrieval"
    assert batch("left_pad(") == "batch input (padding, tensors)"
    assert batch("dist_l, intent_l, prob_l") == "batch results to Python lists"


def test_the_innermost_frame_that_a_rule_knows_wins() -> None:
    send = "RequestResponseCycle.send (uvicorn/protocols/http/httptools_impl.py:561)"
    timing = "RequestMetrics.__call__.<locals>.timing_send (service/middleware.py:84)"
    assert categorise(stack(timing, send), SOURCE) == "HTTP (uvloop, httptools, uvicorn, Starlette, middlewares)"
    assert categorise(stack(send, timing), SOURCE) == "metrics"
    validate = f"recommend_body (service/routes.py:{line_of('service/routes.py', 'model_validate_json')})"
    assert categorise(stack(validate), SOURCE) == "request JSON parse + validation"
    assert categorise(stack("mystery (x.py:1)"), SOURCE) == "other (asyncio, interpreter)"


def test_raw_output_is_read_as_stacks_with_counts() -> None:
    got = parse_raw("main (a.py:1);f (b.py:2) 7\nmain (a.py:1) 3\n")
    assert got == {("main (a.py:1)", "f (b.py:2)"): 7, ("main (a.py:1)",): 3}


def test_the_arithmetic_follows_how_the_encoder_runs() -> None:
    def model(pooling: str) -> dict[str, object]:
        return {"config": {"d": 64, "max_len": 50, "n_layers": 2, "pooling": pooling, "mix_alpha": 0.0},
                "n_items": 1000, "n_intents": 16}

    full = arithmetic(model("all"), 30, [3, 5, 8])
    assert full["encoder_rows_per_request"] == 50 and full["encoder_width"] == 50
    assert arithmetic(model("real"), 30, [50] * 4)["encoder_mflop"] == full["encoder_mflop"]  # packed, no padding
    short = arithmetic(model("real"), 30, [3, 5, 8])  # packed: 16 / 3 rows a request, the width of the longest
    assert short["encoder_rows_per_request"] == 16 / 3 and short["encoder_width"] == 8
    assert short["encoder_mflop"] < full["encoder_mflop"] / 8
