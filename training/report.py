"""`elcrec report`: pictures of a trained model: training curves, a 2-D map of users by intent, intent sizes; where
the version has a catalog, its intents' labels, titles and the intents' coherence in its first categorical field."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from elcrec.model.artifact import Artifact, Store, load_artifact
from elcrec.model.catalog import Catalog, ItemCategories, item_categories
from elcrec.model.intent_labels import version_labels
from elcrec.training.data import Interactions, eval_split, left_pad
from elcrec.training.evaluate import pooled_states
from elcrec.training.intent_count import describe_record
from elcrec.training.intent_health import catalog_coherence, model_health


def find_log(store: Path, art: Artifact) -> Path | None:
    """The epoch log of the run that produced this version, if it is still in the store."""
    for result in Store(store).run_files(Store.RUN_RESULT):
        log = result.parent / Store.RUN_LOG
        if json.loads(result.read_text()).get("version") == art.version and log.is_file():
            return log
    logs = Store(store).run_files(Store.RUN_LOG)
    return logs[-1] if logs else None


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_curves(log: Path, out: Path) -> Path:
    plt = _pyplot()

    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    epochs = [r["epoch"] for r in records]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for key in ("rec", "inst", "intent", "elcm"):
        if key in records[0]:
            axes[0].plot(epochs, [r[key] for r in records], label=key)
    axes[0].set_title("training losses")
    axes[0].set_yscale("symlog")
    axes[0].legend()
    for key in ("HIT@20", "NDCG@20", "HIT@5", "NDCG@5"):
        axes[1].plot(epochs, [r["valid"][key] for r in records], label=key)
    axes[1].set_title("validation (reference protocol)")
    axes[1].legend()
    axes[2].plot(epochs, [r["seconds"] for r in records])
    axes[2].set_title("seconds per epoch")
    for ax in axes:
        ax.set_xlabel("epoch")
    fig.tight_layout()
    path = out / "training_curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_intents(art: Artifact, data: Interactions, out: Path, max_users: int, seed: int) -> list[Path]:
    from sklearn.manifold import TSNE

    plt = _pyplot()

    rng = np.random.default_rng(seed)
    users = np.sort(rng.choice(data.n_users, size=min(max_users, data.n_users), replace=False))
    inputs = left_pad([data.sequence(int(u)) for u in users], art.config.max_len)
    pooled = pooled_states(art.model, inputs)
    intents = art.intents.to("cpu").assign(pooled).numpy()
    z = pooled / pooled.norm(dim=1, keepdim=True).clamp_min(1e-12)
    xy = TSNE(n_components=2, init="pca", random_state=seed, perplexity=30).fit_transform(z.numpy())
    sizes = np.bincount(intents, minlength=art.config.n_intents)
    top = np.array([k for k in np.argsort(-sizes)[:10] if sizes[k] > 0], dtype=np.int64)
    colours = np.where(np.isin(intents, top), intents, -1)

    fig, ax = plt.subplots(figsize=(8, 7))
    ax.scatter(xy[colours == -1, 0], xy[colours == -1, 1], s=3, c="lightgrey", label="other intents")
    cmap = plt.get_cmap("tab10")
    for rank, k in enumerate(top):
        sel = colours == k
        ax.scatter(xy[sel, 0], xy[sel, 1], s=4, color=cmap(rank), label=f"intent {k} ({sizes[k]})")
    ax.set_title(f"{len(users)} users, t-SNE of pooled states, coloured by intent (10 largest)")
    ax.legend(markerscale=3, fontsize=7, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    map_path = out / "user_map.png"
    fig.savefig(map_path, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4))
    ordered = np.sort(sizes)[::-1]
    ax.bar(np.arange(len(ordered)), ordered / max(1, len(users)), width=1.0)
    ax.set_title(f"intent sizes ({int((sizes > 0).sum())} of {art.config.n_intents} intents in use)")
    ax.set_xlabel("intent, largest first")
    ax.set_ylabel("share of users")
    fig.tight_layout()
    sizes_path = out / "intent_sizes.png"
    fig.savefig(sizes_path, dpi=110)
    plt.close(fig)
    return [map_path, sizes_path]


def characteristic_table(
    art: Artifact, data: Interactions, intents: int = 10, items: int = 8,
    catalog: tuple[Catalog, ItemCategories] | None = None,
) -> str:
    """HTML: the largest intents (all users' whole histories), each with its share and characteristic items; with
    the version's catalog, each with its label and its items' titles."""
    shares, mean = art.info.intent_shares, art.info.intent_mean_state
    if shares is None or mean is None:
        return "<p>(this version records no intent shares or mean user state: no characteristic items)</p>"
    table = art.model.item_table().detach().float().cpu()[1:-1]
    space = art.intents.to("cpu")
    scores = space.characteristic_scores(torch.tensor(mean), table)
    largest = sorted(range(len(shares)), key=lambda i: -shares[i])[:intents]
    labels = version_labels(space, torch.tensor(mean), table, catalog[1]) if catalog is not None else None

    def name(col: int) -> str:
        title = catalog[1].titles[col] if catalog is not None else None
        return f"{title} ({art.item_ids[col + 1]})" if title else str(art.item_ids[col + 1])

    sep = "; " if catalog is not None else " "
    rows = "".join(
        f"<tr><td>{i}</td><td>{shares[i]:.1%}</td>"
        + (f"<td>{html.escape(labels[i].text)}</td>" if labels is not None else "") + "<td>"
        + html.escape(sep.join(name(r) for r in scores[i].topk(items).indices.tolist()))
        + "</td></tr>"
        for i in largest if shares[i] > 0
    )
    label_head = "<th>label (catalog)</th>" if labels is not None else ""
    return ("<h2>largest intents and their characteristic items</h2><table border=1>"
            f"<tr><th>intent</th><th>share</th>{label_head}<th>items that set it apart</th></tr>{rows}</table>")


def intent_count_note(origin: dict[str, Any]) -> str:
    """How K was chosen (the manifest's origin.intent_count, or its parent's for a version calibrated again; `elcrec
    intents fit` chose its own), as a paragraph; empty where the version does not say (trained before it was
    recorded, or imported)."""
    node: Any = origin
    while isinstance(node, dict):
        if node.get("kind") == "intents-fit":
            return f"<p>K = {html.escape(str(node.get('k')))} intents fitted after training (elcrec intents fit)</p>"
        line = describe_record(node.get("intent_count"))
        if line:
            return f"<p>{html.escape(line)}</p>"
        node = node.get("parent_origin")
    return ""


def write_report(store: Path, data: Interactions, out: Path, max_users: int = 3000, seed: int = 0) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    art = load_artifact(store)
    pictures: list[Path] = []
    log = find_log(store, art)
    if log is not None:
        pictures.append(plot_curves(log, out))
    pictures += plot_intents(art, data, out, max_users, seed)
    test = (art.info.metrics or {}).get("test", {}).get("reference", {})
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in test.items())
    health = model_health(art.model, data, intents=art.intents.to("cpu")).to_dict()
    stored = art.read_catalog()
    catalog = (stored, item_categories(stored, art.item_ids)) if stored is not None else None
    if stored is not None:
        ev = eval_split(data, art.config.max_len, "test")
        got = catalog_coherence(art.model, data, ev, art.intents, stored, art.item_ids)
        if got is not None:
            health[f"coherence ({got.field})"] = got.ratio if got.ratio is None else round(got.ratio, 3)
    health_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in health.items())
    intents_table = characteristic_table(art, data, catalog=catalog)
    images = "".join(f'<h2>{p.stem.replace("_", " ")}</h2><img src="{p.name}" style="max-width:100%">' for p in pictures)
    page = (f"<!doctype html><meta charset=utf-8><title>elcrec report {art.version}</title>"
            f"<h1>elcrec {html.escape(art.version)}</h1><p>{html.escape(str(art.info.data.get('source')))}"
            f", {art.config.n_intents} intents, {art.config.n_layers} layers, pooling {art.config.pooling}</p>"
            f"{intent_count_note(art.info.origin)}"
            f"<table border=1><tr><th>test (reference)</th><th></th></tr>{rows}</table>"
            f"<h2>intent health (test users; training/intent_health.py)</h2><table border=1>{health_rows}</table>"
            f"{intents_table}{images}")
    (out / "index.html").write_text(page)
    return {"version": art.version, "files": [str(p) for p in [*pictures, out / "index.html"]], "log": str(log) if log else None}
