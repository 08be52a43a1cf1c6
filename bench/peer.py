"""The plain service a team would write in an afternoon, as the load benchmark's peer.

    python -m bench.peer --artifacts STORE --port 8100

FastAPI under uvicorn with the same model (loaded by model/artifact.py, eager torch): one request, one forward pass
over the full max_len window, the last position's state against the item table, `torch.topk`, the nearest intent
by the pooled state. No micro-batching, no tracing, no FAISS, no cache. `POST /recommend` takes
`{"history": [item ids], "k": 10}` and answers `{"items": [...], "scores": [...], "intent": id}`; unknown items are
skipped, seen items excluded. Used by bench/load.py --peer, never by the product.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from elcrec.model.artifact import load_artifact


class Request(BaseModel):
    history: list[str]
    k: int = 10


def create_app(store: Path) -> FastAPI:
    art = load_artifact(store)
    model = art.model.eval()
    rows = {item: r for r, item in enumerate(art.item_ids) if item is not None}
    table = model.item_table().detach()
    centers = F.normalize(model.intent_centers.detach(), dim=-1)
    max_len, n_items = model.cfg.max_len, model.cfg.n_items
    app = FastAPI()

    @app.post("/recommend")
    def recommend(req: Request) -> dict:
        seq = [rows[i] for i in req.history if i in rows][-max_len:]
        if not seq:
            raise HTTPException(422, "no known item in the history")
        ids = torch.zeros(1, max_len, dtype=torch.long)
        ids[0, max_len - len(seq) :] = torch.tensor(seq)
        with torch.inference_mode():
            hidden = model(ids)
            scores = hidden[0, -1] @ table[1 : n_items + 1].T  # rows 1..N are the items
            scores[torch.tensor(seq) - 1] = float("-inf")
            top = torch.topk(scores, req.k)
            intent = int((F.normalize(model.pool(hidden, ids), dim=-1) @ centers.T).argmax())
        return {
            "items": [art.item_ids[int(i) + 1] for i in top.indices],
            "scores": top.values.tolist(),
            "intent": intent,
        }

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    uvicorn.run(create_app(args.artifacts), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
