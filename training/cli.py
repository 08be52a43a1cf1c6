"""The `elcrec` command line."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Train, evaluate, import and serve ELCRec models.")
data_app = typer.Typer(no_args_is_help=True, help="Benchmark data sets and synthetic data.")
app.add_typer(data_app, name="data")


class Split(str, Enum):
    valid = "valid"
    test = "test"


class Protocol(str, Enum):
    reference = "reference"
    strict = "strict"
    both = "both"


def fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


@app.command("import-official")
def import_official(
    checkpoint: Annotated[Path, typer.Argument(help="State_dict released by the ELCRec authors (.pt)")],
    data: Annotated[Path, typer.Option(help="The interaction file the checkpoint was trained on")],
    out: Annotated[Path, typer.Option(help="Artifact store to add the version to")],
    heads: Annotated[int, typer.Option(help="Attention heads (not recoverable from tensor shapes)")] = 2,
    evaluate_metrics: Annotated[bool, typer.Option("--evaluate/--no-evaluate", help="Store metrics in the manifest")] = True,
) -> None:
    """Turn an official ELCRec checkpoint into a versioned artifact and point CURRENT at it."""
    from model.artifact import ArtifactError
    from model.official import CheckpointError
    from training.data import DataError
    from training.export import import_checkpoint

    try:
        version = import_checkpoint(checkpoint, data, out, heads, evaluate_metrics)
    except (CheckpointError, DataError, ArtifactError) as exc:
        fail(str(exc))
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
    from model.artifact import ArtifactError, load_artifact
    from training.data import DataError, read_interactions
    from training.device import pick_device
    from training.evaluate import evaluate as run_eval

    try:
        dev = pick_device(device)
        art = load_artifact(path, dev)
        interactions = read_interactions(data)
        if interactions.n_items > art.config.n_items:
            fail(f"{data} has item ids up to {interactions.n_items}, the model knows {art.config.n_items}")
        interactions.n_items = art.config.n_items
    except (ArtifactError, DataError, ValueError) as exc:
        fail(str(exc))
    protocols = ("reference", "strict") if protocol is Protocol.both else (protocol.value,)
    results = run_eval(art.model, interactions, split.value, protocols, dev)
    if as_json:
        payload = {
            "metrics": results[protocols[0]],
            "protocol": protocols[0],
            "split": split.value,
            "version": art.version,
            "data": str(data),
        }
        if len(protocols) > 1:
            payload["by_protocol"] = results
        typer.echo(json.dumps(payload, indent=2))
        return
    for p, metrics in results.items():
        typer.echo(f"{art.version} {split.value} ({p}): " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))


@app.command()
def serve(
    artifacts: Annotated[Path, typer.Option(help="Artifact store to serve (its CURRENT version)")],
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Serve the store's CURRENT model over HTTP (settings from ELCREC_* environment variables)."""
    from service.main import serve as run_server

    run_server(artifacts=artifacts, host=host, port=port)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
