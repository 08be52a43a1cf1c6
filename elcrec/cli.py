"""The `elcrec` command line."""

from __future__ import annotations

import json
import math
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, get_args

import typer

from elcrec.model.catalog import ID, MULTI_SEP, TITLE
from elcrec.model.config import ModelConfig, Pooling
from elcrec.retrain_cli import retrain_command
from elcrec.training.config import (
    NO_PRESET,
    SETTLE_EPOCHS,
    Batches,
    IntentLoss,
    Prototype,
    RecLoss,
    Samples,
    TrainConfig,
)
from elcrec.training.importer import DEFAULT_MEMORY_LIMIT

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Train, evaluate, import and serve ELCRec models.")
data_app = typer.Typer(no_args_is_help=True, help="Benchmark data sets, synthetic data and importing logs.")
app.add_typer(data_app, name="data")
intents_app = typer.Typer(no_args_is_help=True, help="Intents fitted after training, or calibrated again.")
app.add_typer(intents_app, name="intents")
catalog_app = typer.Typer(no_args_is_help=True, help="The item catalog (titles, categories) kept with the model.")
app.add_typer(catalog_app, name="catalog")

# The options that read a catalog file (model/catalog.py), shared by train, retrain and catalog set.
IdColumn = Annotated[str, typer.Option(help="The catalog's item id column (ids as in the interaction data)")]
TitleColumn = Annotated[str, typer.Option(help="The catalog's title column")]
MultiSep = Annotated[str, typer.Option(help="In CSV/TSV catalogs: the separator of several values in one cell")]
CatalogFields = Annotated[list[str] | None, typer.Option("--field", help="A categorical field of the catalog: COLUMN, or NAME=COLUMN to rename it; repeat it; none: every column but id and title")]


class Split(StrEnum):
    valid = "valid"
    test = "test"


class Protocol(StrEnum):
    reference = "reference"
    strict = "strict"
    both = "both"


def fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _choices(name: str, literal: Any) -> Any:
    """A Literal's values as a StrEnum, the form typer turns into an option's choices: the CLI reads them from the
    one declaration. Type checkers see plain strings (the values are passed on as str)."""
    return StrEnum(name, {v: v for v in get_args(literal)})


def _str(value: str | None) -> str | None:
    return None if value is None else str(value)


if TYPE_CHECKING:
    PoolingChoice: TypeAlias = str
    PrototypeChoice: TypeAlias = str
    RecLossChoice: TypeAlias = str
    SamplesChoice: TypeAlias = str
    BatchesChoice: TypeAlias = str
    IntentLossChoice: TypeAlias = str
else:
    PoolingChoice = _choices("PoolingChoice", Pooling)
    PrototypeChoice = _choices("PrototypeChoice", Prototype)
    RecLossChoice = _choices("RecLossChoice", RecLoss)
    SamplesChoice = _choices("SamplesChoice", Samples)
    BatchesChoice = _choices("BatchesChoice", Batches)
    IntentLossChoice = _choices("IntentLossChoice", IntentLoss)


# Training defaults to the fast mode; ModelConfig's default ("all") is the reference's, which imported checkpoints use.
DEFAULT_POOLING = PoolingChoice("real")


class Preset(StrEnum):
    Beauty = "Beauty"
    Sports_and_Outdoors = "Sports_and_Outdoors"
    Toys_and_Games = "Toys_and_Games"
    Yelp = "Yelp"


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="Interaction file: 'user item item ...' per line")],
    out: Annotated[Path, typer.Option(help="Artifact store; the trained model becomes a new version and CURRENT")],
    preset: Annotated[Preset | None, typer.Option(help="The paper's hyperparameters for a data set")] = None,
    improved: Annotated[bool, typer.Option("--improved", help="With --preset: the best ranking found beyond the paper for that data set (docs/RESULTS.md)")] = False,
    improved_intents: Annotated[bool, typer.Option("--improved-intents", help="With --preset: better ranking than the paper with the users spread over many intents")] = False,
    epochs: Annotated[int | None, typer.Option(help=f"Maximum epochs (default {TrainConfig.epochs})")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    layers: Annotated[int | None, typer.Option(help="Transformer blocks L")] = None,
    intents: Annotated[int | None, typer.Option(help="Number of intents K (default: the preset's; without one, from the number of users, training/intent_count.py)")] = None,
    heads: Annotated[int | None, typer.Option()] = None,
    hidden: Annotated[int | None, typer.Option(help="Hidden size d")] = None,
    max_len: Annotated[int | None, typer.Option(help="Sequence length T")] = None,
    dropout: Annotated[float | None, typer.Option(help="Hidden and attention dropout")] = None,
    mix_alpha: Annotated[float | None, typer.Option(help="Beyond the paper (BSARec): share of a frequency filter mixed with each block's self-attention, 0 to 1 (0 = the paper); needs --samples prefixes")] = None,
    freq_bins: Annotated[int | None, typer.Option(help=f"With --mix-alpha: the lowest DFT bins the filter keeps (default {ModelConfig.freq_bins})")] = None,
    pooling: Annotated[PoolingChoice, typer.Option(help="real: pool over real items, fast bucketed batches; all: the reference")] = DEFAULT_POOLING,
    batch_size: Annotated[int | None, typer.Option()] = None,
    lr: Annotated[float | None, typer.Option()] = None,
    weight_decay: Annotated[float | None, typer.Option()] = None,
    cf_weight: Annotated[float | None, typer.Option(help="Instance contrastive weight")] = None,
    intent_cf_weight: Annotated[float | None, typer.Option(help="Intent contrastive weight")] = None,
    trade_off: Annotated[float | None, typer.Option(help=f"Weight of the intent clustering loss (ELCM in the paper; default {TrainConfig.trade_off:g}, {NO_PRESET[1]['trade_off']:g} for the balanced loss without --preset)")] = None,
    intent_loss: Annotated[IntentLossChoice | None, typer.Option(help="elcm (the paper, the presets' default: every sequence towards the mean of all centers) or balanced (the default without --preset: each sequence towards its own center, users kept spread over the intents by balanced assignments)")] = None,
    intent_temperature: Annotated[float | None, typer.Option(help=f"With --intent-loss balanced: softmax temperature over the centers (default {TrainConfig.intent_temperature:g})")] = None,
    intent_queue: Annotated[int | None, typer.Option(help=f"With --intent-loss balanced: rows of earlier batches whose states join each batch's balanced assignment (default {TrainConfig.intent_queue}, the batch alone)")] = None,
    intent_settle: Annotated[int | None, typer.Option(help=f"With --intent-loss balanced: epochs of that loss on the centers alone after training, on the kept encoder's states (default {SETTLE_EPOCHS}; 0 = off)")] = None,
    intent_settle_temperature: Annotated[float | None, typer.Option(help="With --intent-loss balanced: softmax temperature of that settling (default: --intent-temperature's)")] = None,
    prototype: Annotated[PrototypeChoice | None, typer.Option()] = None,
    negatives: Annotated[int | None, typer.Option(help="Shared negatives per batch for --rec-loss sampled")] = None,
    rec_loss: Annotated[RecLossChoice | None, typer.Option(help="bce (one sampled negative, the paper), softmax (all items) or sampled (softmax over shared negatives)")] = None,
    samples: Annotated[SamplesChoice | None, typer.Option(help="sequence: one row a user, a target at every position (the paper); prefixes: one row per prefix, its next item the target")] = None,
    batches: Annotated[BatchesChoice | None, typer.Option(help="With --pooling real: length (rows of similar length batched together, the fastest) or random (uniform batches as in the reference, each run in trimmed length groups, about 1.25 times the work)")] = None,
    ema: Annotated[float | None, typer.Option(help="Per-step decay of a moving average of the weights, validated and exported in their place (e.g. 0.999; 0 = off)")] = None,
    label_smoothing: Annotated[float | None, typer.Option(help="With --rec-loss softmax: share of each target's probability spread over all items (0 = off)")] = None,
    patience: Annotated[int | None, typer.Option(help="Early-stopping patience in epochs")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Checkpoint directory (default STORE/runs/<data>-<settings hash>)")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Ignore an existing checkpoint and start over")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar")] = True,
    index: Annotated[str | None, typer.Option(help="Store this FAISS index (factory string, e.g. IVF4096,Flat or HNSW32) with the artifact; a service with the same ELCREC_INDEX loads it instead of building it")] = None,
    catalog: Annotated[Path | None, typer.Option(help="Item catalog (CSV/TSV, Parquet or JSON lines: id, title, categorical columns) stored with the version: titles and intent labels")] = None,
    id_column: IdColumn = ID,
    title_column: TitleColumn = TITLE,
    multi_sep: MultiSep = MULTI_SEP,
    field: CatalogFields = None,
) -> None:
    """Train ELCRec, evaluate on valid and test (both protocols) and export a new artifact version.

    An interrupted run resumes from its last epoch when the same command is run again.
    Started by torchrun, it trains data-parallel over the processes (docs/DISTRIBUTED.md).
    """
    from elcrec.model.artifact import ArtifactError
    from elcrec.model.catalog import read_catalog
    from elcrec.model.device import pick_device
    from elcrec.training.data import DataError, read_interactions
    from elcrec.training.dataset import DatasetError, is_dataset
    from elcrec.training.dataset import read_catalog as dataset_catalog
    from elcrec.training.intent_count import choose_intents
    from elcrec.training.intent_verdict import collapse_warning, health_line
    from elcrec.training.run import base_settings, resolve_settings, run_dir_for, train_and_export

    model_flags = {
        "n_layers": layers, "n_intents": intents, "n_heads": heads, "d": hidden, "max_len": max_len,
        "mix_alpha": mix_alpha, "freq_bins": freq_bins, "dropout": dropout, "pooling": str(pooling),
    }
    train_flags = {
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "cf_weight": cf_weight,
        "intent_cf_weight": intent_cf_weight, "trade_off": trade_off, "patience": patience, "seed": seed,
        "prototype": _str(prototype), "rec_loss": _str(rec_loss), "n_negatives": negatives,
        "samples": _str(samples), "batches": _str(batches), "ema": ema, "label_smoothing": label_smoothing,
        "intent_loss": _str(intent_loss), "intent_temperature": intent_temperature,
        "intent_queue": intent_queue, "intent_settle": intent_settle,
        "intent_settle_temperature": intent_settle_temperature,
    }
    try:
        base = base_settings(preset.value if preset else None, improved, improved_intents, _str(intent_loss))
        dev = pick_device(device)
        interactions = read_interactions(data)
        count = choose_intents(intents, base[0].get("n_intents"), interactions.n_users)
        model_flags["n_intents"] = count.k
        settings = resolve_settings(interactions.n_items, base, model_flags, train_flags)
        if index is not None:  # a bad spec fails now, not after the training
            from elcrec.model.item_index import empty_index

            empty_index(index, settings.model.d)
        items = read_catalog(catalog, id_column, title_column, multi_sep, field or ()) if catalog is not None else None
        if items is None and is_dataset(data):
            items = dataset_catalog(data)  # the one given at import, if any
    except (DataError, DatasetError, ValueError) as exc:  # CatalogError is a ValueError
        fail(str(exc))
    run = run_dir or run_dir_for(out, data, interactions, settings)
    origin = {"kind": "trained", "preset": preset.value if preset else None, "improved": improved,
              "improved_intents": improved_intents, "intent_count": count.to_dict()}
    try:
        result = train_and_export(out, data, interactions, settings, run, dev, origin, typer.echo, progress, fresh,
                                  index, items)
    except (ValueError, OSError, ArtifactError) as exc:
        fail(str(exc))
    if result is None:
        return  # not rank 0: it evaluates and exports
    typer.echo(f"exported {out / result['version']}")
    for split in ("valid", "test"):
        typer.echo(f"{split} (reference): " + "  ".join(
            f"{k} {v:.4f}" for k, v in result["metrics"][split]["reference"].items()))
    typer.echo(health_line(result["intent_health"]))
    warning = collapse_warning(result["intent_health"], settings.train.intent_loss, preset.value if preset else None,
                               out, data, interactions.n_users)
    if warning:
        typer.secho(warning, err=True, fg=typer.colors.YELLOW)


@data_app.command("download")
def data_download(
    name: Annotated[Preset, typer.Argument(help="Data set name")],
    out: Annotated[Path, typer.Option(help="Directory to write NAME.txt into")] = Path("data"),
    base_url: Annotated[str | None, typer.Option(help="Mirror of the authors' data/ folder (env ELCREC_DATA_URL)")] = None,
) -> None:
    """Fetch a benchmark file from the ELCRec authors' repository and check its sha256."""
    from elcrec.training.download import DownloadError, download

    try:
        path = download(name.value, out, base_url)
    except DownloadError as exc:
        fail(str(exc))
    typer.echo(f"downloaded {path} (sha256 verified)")


@data_app.command("synthetic")
def data_synthetic(
    out: Annotated[Path, typer.Option(help="File to write")],
    users: Annotated[int, typer.Option()] = 2000,
    items: Annotated[int, typer.Option()] = 400,
    intents: Annotated[int, typer.Option(help="Planted intents")] = 8,
    seed: Annotated[int, typer.Option()] = 0,
    catalog: Annotated[Path | None, typer.Option(help="Also write a CSV catalog: id, title, genre (the planted group) and shelf (random)")] = None,
) -> None:
    """Write a synthetic data set with planted intents, in the benchmark file format."""
    import csv

    from elcrec.training.data import write_interactions
    from elcrec.training.synthetic import SyntheticSpec, generate, planted_catalog

    spec = SyntheticSpec(n_users=users, n_items=items, n_intents=intents, seed=seed)
    data, _ = generate(spec)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_interactions(data, out)
    typer.echo(f"wrote {out}: {users} users, {items} items, {intents} planted intents")
    if catalog is not None:
        rows = planted_catalog(spec)
        with open(catalog, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        typer.echo(f"wrote {catalog}: {len(rows)} items, genre planted, shelf random")


@data_app.command("import")
def data_import(
    logs: Annotated[list[Path], typer.Argument(help="Log files, directories of parts or globs: CSV, TSV, Parquet or JSON lines (.csv .tsv .parquet .jsonl, optionally .gz/.zst)")],
    out: Annotated[Path, typer.Option(help="Data set directory to write (train with --data DIR)")],
    user: Annotated[str, typer.Option(help="User id column")],
    item: Annotated[str, typer.Option(help="Item id column")],
    time: Annotated[str | None, typer.Option(help="Time column (numbers, dates or date-times); without it, file order")] = None,
    rating: Annotated[str | None, typer.Option(help="Rating column, with --min-rating")] = None,
    min_rating: Annotated[float | None, typer.Option(help="Keep rows whose rating is at least this")] = None,
    event: Annotated[str | None, typer.Option(help="Event type column, with --events")] = None,
    events: Annotated[str | None, typer.Option(help="Event types to keep, comma-separated (e.g. purchase,add_to_cart)")] = None,
    kcore: Annotated[int, typer.Option(help="Keep the k-core: users and items with at least this many interactions, iterated until both hold (0 = off)")] = 0,
    min_length: Annotated[int, typer.Option(help="Drop users with fewer interactions (0 = off)")] = 0,
    dedupe_consecutive: Annotated[bool, typer.Option("--dedupe-consecutive", help="Drop consecutive repeats of an item in a user's sequence")] = False,
    memory_limit: Annotated[str, typer.Option(help="Memory for the import: DuckDB's limit, and where the k-core and the sort run: in memory where their arrays (20 bytes a row, and 52 for the 8 M being sorted) fit in it, else in DuckDB, which spills to a temporary directory beside --out")] = DEFAULT_MEMORY_LIMIT,
    threads: Annotated[int | None, typer.Option(help="Threads of DuckDB and of the in-memory sort (default: every core)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out once the new data set is complete")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar")] = True,
    catalog: Annotated[Path | None, typer.Option(help="Item catalog (CSV/TSV, Parquet or JSON lines: id, title, categorical columns) kept with the data set; elcrec train stores it with the model")] = None,
    id_column: IdColumn = ID,
    title_column: TitleColumn = TITLE,
    multi_sep: MultiSep = MULTI_SEP,
    field: CatalogFields = None,
) -> None:
    """Import interaction logs into a data set directory: each user's items in time order (ties in file order),
    external ids kept, the summary printed and stored in DIR/dataset.json."""
    from elcrec.model.catalog import CatalogError, read_catalog
    from elcrec.training.data import DataError
    from elcrec.training.importer import Engine, ImportSpec, import_logs, summary_lines

    spec = ImportSpec(
        user=user, item=item, time=time, rating=rating, min_rating=min_rating, event=event,
        events=tuple(e.strip() for e in events.split(",") if e.strip()) if events else (),
        kcore=kcore, min_length=min_length, dedupe_consecutive=dedupe_consecutive,
    )
    try:
        items = read_catalog(catalog, id_column, title_column, multi_sep, field or ()) if catalog is not None else None
        meta = import_logs(logs, out, spec, Engine(memory_limit, threads), progress, overwrite, items)
    except (DataError, CatalogError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {out} (nothing was written there): {exc}")
    for line in summary_lines(meta):
        typer.echo(line)
    if items is not None:
        typer.echo(f"catalog {items.source}: {len(items)} items, fields {', '.join(items.fields) or '(none)'}")
    typer.echo(f"wrote {out}")


@app.command()
def report(
    store: Annotated[Path, typer.Argument(help="Artifact store (its CURRENT version) or a version directory")],
    data: Annotated[Path, typer.Option(help="The interaction file the model was trained on")],
    out: Annotated[Path, typer.Option(help="Directory for the PNG files and index.html")] = Path("report"),
    users: Annotated[int, typer.Option(help="Users in the 2-D map")] = 3000,
) -> None:
    """Training curves, a t-SNE map of users coloured by intent and intent sizes, as PNG + HTML."""
    from elcrec.model.artifact import ArtifactError
    from elcrec.training.data import DataError, read_interactions
    from elcrec.training.report import write_report

    try:
        result = write_report(store, read_interactions(data), out, users)
    except (ArtifactError, DataError) as exc:
        fail(str(exc))
    except ImportError as exc:
        fail(f"{exc.name} is needed for pictures: pip install 'elcrec[report]'")
    for f in result["files"]:
        typer.echo(f"wrote {f}")


@app.command("import-official")
def import_official(
    checkpoint: Annotated[Path, typer.Argument(help="State_dict released by the ELCRec authors (.pt)")],
    data: Annotated[Path, typer.Option(help="The interaction file the checkpoint was trained on")],
    out: Annotated[Path, typer.Option(help="Artifact store to add the version to")],
    heads: Annotated[int, typer.Option(help="Attention heads (not recoverable from tensor shapes)")] = 2,
    evaluate_metrics: Annotated[bool, typer.Option("--evaluate/--no-evaluate", help="Store metrics in the manifest")] = True,
) -> None:
    """Turn an official ELCRec checkpoint into a versioned artifact and point CURRENT at it."""
    from elcrec.model.artifact import ArtifactError
    from elcrec.model.official import CheckpointError
    from elcrec.training.data import DataError
    from elcrec.training.export import import_checkpoint

    try:
        version = import_checkpoint(checkpoint, data, out, heads, evaluate_metrics)
    except (CheckpointError, DataError, ArtifactError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write a new version to {out} (nothing was published): {exc}")
    typer.echo(f"imported {checkpoint} as {version}")


@app.command()
def evaluate(
    path: Annotated[Path, typer.Argument(help="Artifact store (its CURRENT version) or one version directory")],
    data: Annotated[Path, typer.Option(help="Interaction file")],
    split: Annotated[Split, typer.Option(help="valid or test")] = Split.test,
    protocol: Annotated[Protocol, typer.Option(help="reference (seen items scored 0), strict (-inf), or both")] = Protocol.reference,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """HIT@5/10/20 and NDCG@5/10/20 with full ranking."""
    from elcrec.model.artifact import ArtifactError, load_artifact
    from elcrec.model.device import pick_device
    from elcrec.training.data import DataError, eval_split, read_interactions
    from elcrec.training.evaluate import split_ranks
    from elcrec.training.intent_health import catalog_coherence, split_health
    from elcrec.training.metrics import hit_ndcg, standard_errors

    try:
        dev = pick_device(device)
        art = load_artifact(path, dev)
        interactions = read_interactions(data)
        if interactions.n_items > art.config.n_items:
            fail(f"{data} has item ids up to {interactions.n_items}, the model knows {art.config.n_items}")
        if interactions.item_ids is not None and art.item_ids[1 : interactions.n_items + 1] != list(interactions.item_ids):
            fail(f"{data} numbers its items otherwise than {art.version} (items.json): evaluate on the data set "
                 "the model was trained on")
        interactions.n_items = art.config.n_items
    except (ArtifactError, DataError, ValueError) as exc:
        fail(str(exc))
    protocols = ("reference", "strict") if protocol is Protocol.both else (protocol.value,)
    ev = eval_split(interactions, art.config.max_len, split.value)
    ranks = split_ranks(art.model, ev, protocols, dev)
    intents = split_health(art.model, ev, dev, art.intents).to_dict()
    catalog = art.read_catalog()  # the intents' coherence in its first field, beside the health
    coherence = catalog_coherence(art.model, interactions, ev, art.intents, catalog, art.item_ids, dev) if catalog else None
    if coherence is not None:
        intents["coherence"] = coherence.to_dict()
    results = {p: hit_ndcg(r) for p, r in ranks.items()}
    # Of each mean over the split's users; undefined (None in JSON) for a single user.
    errors = {p: {k: None if math.isnan(v) else v for k, v in standard_errors(r).items()} for p, r in ranks.items()}
    if as_json:
        payload = {
            "metrics": results[protocols[0]],
            "standard_errors": errors[protocols[0]],
            "users": len(ranks[protocols[0]]),
            "protocol": protocols[0],
            "split": split.value,
            "version": art.version,
            "data": str(data),
            "intents": intents,
        }
        if len(protocols) > 1:
            payload["by_protocol"] = results
            payload["standard_errors_by_protocol"] = errors
        typer.echo(json.dumps(payload, indent=2))
        return
    for p, metrics in results.items():
        cells = "  ".join(f"{k} {v:.4f} ± " + (f"{e:.4f}" if (e := errors[p][k]) is not None else "?") for k, v in metrics.items())
        typer.echo(f"{art.version} {split.value} ({p}, {len(ranks[p])} users, ± one standard error): {cells}")
    shown = {k: v for k, v in intents.items() if k != "coherence"}
    if coherence is not None:
        shown[f"coherence ({coherence.field})"] = coherence.ratio if coherence.ratio is None else round(coherence.ratio, 3)
    typer.echo(f"{art.version} {split.value} intents: " + "  ".join(f"{k} {v}" for k, v in shown.items()))


@intents_app.command("fit")
def intents_fit(
    store: Annotated[Path, typer.Argument(help="Artifact store: its CURRENT model gets fitted intents as a new version")],
    data: Annotated[Path, typer.Option(help="The interaction file the model was trained on")],
    k: Annotated[int | None, typer.Option("--k", min=1, help="Number of intents (default: the model's K)")] = None,
    seed: Annotated[int, typer.Option()] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
) -> None:
    """Publish the CURRENT model with intent centers from a spherical k-means of its users' pooled states.

    The encoder is unchanged (the same recommendations); only the intents differ. The new version becomes CURRENT,
    its manifest says how its centers were made, and `elcrec evaluate --json` compares both versions' intents.
    """
    from elcrec.model.artifact import ArtifactError
    from elcrec.model.device import pick_device
    from elcrec.training.data import DataError
    from elcrec.training.export import fit_intents

    try:
        version = fit_intents(store, data, k, seed, pick_device(device))
    except (ArtifactError, DataError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write a new version to {store} (nothing was published): {exc}")
    typer.echo(f"published {version} with fitted intents")


@intents_app.command("calibrate")
def intents_calibrate(
    store: Annotated[Path, typer.Argument(help="Artifact store: its CURRENT model is published again, calibrated")],
    data: Annotated[Path, typer.Option(help="The interaction file the model was trained on")],
    settle: Annotated[int, typer.Option(help="For centers trained balanced: settle them first, this many epochs on the encoder's states (what training does since; 0 = as they are)")] = 0,
    settle_temperature: Annotated[float | None, typer.Option(help="With --settle: the softmax temperature of the settling (default: the version's training temperature)")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
) -> None:
    """Publish the CURRENT model again with its intent calibration fitted now (docs/INTENTS.md).

    For versions exported before the calibration existed (or fitted on other data): the weights, centers and
    metrics are the parent's; the new version stores the profiles (and the balancing bias, for centers trained
    balanced) and the intent health read with them, and becomes CURRENT.
    """
    from elcrec.model.artifact import ArtifactError
    from elcrec.model.device import pick_device
    from elcrec.training.data import DataError
    from elcrec.training.export import calibrate_intents

    try:
        version = calibrate_intents(store, data, pick_device(device), settle, settle_temperature)
    except (ArtifactError, DataError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write a new version to {store} (nothing was published): {exc}")
    typer.echo(f"published {version} with its intents {'settled and ' if settle else ''}calibrated")


@catalog_app.command("set")
def catalog_set(
    store: Annotated[Path, typer.Argument(help="Artifact store: its CURRENT model is published again with the catalog")],
    file: Annotated[Path, typer.Argument(help="Catalog: CSV/TSV, Parquet or JSON lines with an id, a title and categorical columns")],
    id_column: IdColumn = ID,
    title_column: TitleColumn = TITLE,
    multi_sep: MultiSep = MULTI_SEP,
    field: CatalogFields = None,
) -> None:
    """Publish the CURRENT model again with an item catalog: no retraining.

    The new version has the same weights, intents, calibration and metrics; its parent is the old version, it
    stores the catalog (titles and categorical fields, several values per cell in a JSON list or split at
    --multi-sep in CSV/TSV) and becomes CURRENT. The service then serves titles and fields (`fields=`), GET
    /v1/items/ID and a readable label for every intent; retraining keeps the catalog.
    """
    from elcrec.model.artifact import ArtifactError, Store
    from elcrec.model.catalog import CatalogError, read_catalog
    from elcrec.training.export import publish_catalog
    from elcrec.training.merged_store import store_lock
    from elcrec.training.retrain_errors import RetrainError, RetrainUnavailable

    try:
        if Store(store).current() is None:
            fail(f"{store} has no CURRENT version (train one with `elcrec train`)")
        items = read_catalog(file, id_column, title_column, multi_sep, field or ())
        with store_lock(store):  # a retrain publishing meanwhile would be superseded
            version = publish_catalog(store, items)
    except (CatalogError, ArtifactError, RetrainError) as exc:
        fail(str(exc))
    except RetrainUnavailable as exc:
        fail(f"{exc}: set the catalog once it has finished", code=4)
    except OSError as exc:
        fail(f"cannot write a new version to {store} (nothing was published): {exc}")
    manifest = Store(store).manifest(version)
    known = (manifest.catalog or {}).get("known_items")
    typer.echo(f"published {version} with the catalog {file.name}: {len(items)} items, fields "
               f"{', '.join(items.fields) or '(none)'}; it knows {known} of the model's {manifest.n_items} items")


@app.command()
def bootstrap(
    artifacts: Annotated[Path, typer.Option(help="Artifact store to make servable")],
    data_out: Annotated[Path | None, typer.Option(help="Where the base interaction file goes (what retrain --data reads)")] = None,
    seed: Annotated[Path | None, typer.Option(help="Seed directory: model/ (a store or a version) and base.txt, used when present")] = None,
) -> None:
    """Make a store servable: keep its CURRENT version, else copy the seed model, else train a demo model.

    Safe to run on every start (the compose stack's init service does): a store with a CURRENT version is
    left untouched.
    """
    from elcrec.training.bootstrap import BootstrapError
    from elcrec.training.bootstrap import bootstrap as run_bootstrap

    try:
        outcome = run_bootstrap(artifacts, data_out, seed, typer.echo)
    except (BootstrapError, ValueError, OSError) as exc:
        fail(str(exc))
    typer.echo(outcome.describe(artifacts))


@app.command()
def serve(
    artifacts: Annotated[Path, typer.Option(help="Artifact store to serve (its CURRENT version)")],
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Server processes on the port, each with its own model copy")
    ] = 1,
) -> None:
    """Serve the store's CURRENT model over HTTP (settings from ELCREC_* environment variables)."""
    from elcrec.service.main import serve as run_server

    run_server(artifacts=artifacts, host=host, port=port, workers=workers)


app.command("retrain")(retrain_command)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
