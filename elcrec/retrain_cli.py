"""`elcrec retrain`: the batch retraining job (the work is done in training/retrain.py)."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from elcrec.model.catalog import ID, MULTI_SEP, TITLE
from elcrec.training.gate import GATE_METRIC, GATE_TOLERANCE

EXIT_OK = 0  # published, or no new events
EXIT_FAILED = 1  # an unexpected error (a bug): the traceback goes to stderr
EXIT_BAD_INPUT = 2  # options, files, store or stream state unusable, store not writable: fix and run again
EXIT_NOT_PUBLISHED = 3  # gated (candidate worse) or superseded (CURRENT moved meanwhile)
EXIT_UNAVAILABLE = 4  # Redis unreachable, or another retrain holds the store: try again later

EXIT_CODES = {
    "published": EXIT_OK,
    "no_new_events": EXIT_OK,
    "gated": EXIT_NOT_PUBLISHED,
    "superseded": EXIT_NOT_PUBLISHED,
}


def _emit(payload: dict[str, Any], code: int) -> NoReturn:
    payload["exit_code"] = code
    typer.echo(json.dumps(payload, indent=2))
    raise typer.Exit(code)


def retrain_command(
    artifacts: Annotated[
        Path, typer.Option(help="Artifact store: the CURRENT version is retrained; a better one is added")
    ],
    data: Annotated[
        Path,
        typer.Option(
            help="Base interaction data: a data set directory (elcrec data import; its item ids) or a benchmark file "
            "(its integer ids are the external item ids). "
            "Used until the store holds merged data (STORE/data/vNNNN.txt)"
        ),
    ],
    redis: Annotated[
        str, typer.Option(envvar="ELCREC_REDIS_URL", help="Redis the service writes its events to")
    ],
    gate_tolerance: Annotated[
        float,
        typer.Option(
            envvar="ELCREC_GATE_TOLERANCE",
            help=f"Publish when candidate {GATE_METRIC} >= (1 - F) x current {GATE_METRIC} (1: always; < 0: must improve)",
        ),
    ] = GATE_TOLERANCE,
    epochs: Annotated[
        int | None, typer.Option(help="Maximum epochs (default: the current version's)")
    ] = None,
    patience: Annotated[
        int | None, typer.Option(help="Early-stopping patience (default: the current version's)")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default: a tenth of the current version's: a warm start fine-tunes)")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Batch size (default: the current version's)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (default: the current version's)")] = None,
    device: Annotated[str, typer.Option(envvar="ELCREC_DEVICE", help="auto, cpu or cuda")] = "auto",
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr")
    ] = False,
    catalog: Annotated[
        Path | None,
        typer.Option(help="A newer item catalog (CSV/TSV, Parquet or JSON lines) for the version this run publishes; "
                     "without it the live version's catalog is kept (`elcrec catalog set` publishes one without "
                     "retraining)"),
    ] = None,
    id_column: Annotated[str, typer.Option(help="With --catalog: its item id column")] = ID,
    title_column: Annotated[str, typer.Option(help="With --catalog: its title column")] = TITLE,
    multi_sep: Annotated[str, typer.Option(help="With --catalog (CSV/TSV): the separator of several values in one cell")] = MULTI_SEP,
    field: Annotated[list[str] | None, typer.Option("--field", help="With --catalog: a categorical field, COLUMN or NAME=COLUMN; repeat it; none: every other column")] = None,
) -> None:
    """Fold new events into the data, retrain, and publish only if not worse.

    Reads the events stream (elcrec:events) after the watermark in Redis
    (elcrec:retrain:watermark) and merges the events into the newest merged
    data, else into --data: histories grow, new users and new items appear
    (new items get rows after the old ones). Trains warm from CURRENT with
    its model and training configs, evaluates candidate and current on the
    merged test split (NDCG@10, reference protocol), and publishes (version,
    then CURRENT, then the watermark) only if the candidate passes the gate.

    Merged data of a published version vNNNN: STORE/data/vNNNN.txt (item ids
    are rows of STORE/vNNNN/items.json) and its sidecar STORE/data/vNNNN.json.

    Stdout: one JSON object {status, exit_code, message, store, current,
    published, watermark {before, after}, events, data, gate {candidate,
    current, threshold, passed, ...}, train, seconds}. Logs go to stderr.

    Exit codes:
    0 published, or status "no_new_events" (nothing changed);
    1 unexpected error (a bug: traceback on stderr);
    2 bad input: options, files, store or stream state (see message), or a
    store that cannot be written (e.g. a full disk);
    3 not published: "gated" (worse candidate) or "superseded" (CURRENT
    moved during the run);
    4 unavailable: Redis unreachable or another retrain running (retry).
    """
    from elcrec.model.artifact import ArtifactError
    from elcrec.model.catalog import CatalogError, read_catalog
    from elcrec.model.device import pick_device
    from elcrec.training.data import DataError
    from elcrec.training.retrain import RetrainError, RetrainOptions, RetrainUnavailable, retrain

    def log(message: str) -> None:
        typer.echo(message, err=True)

    base: dict[str, Any] = {"status": "error", "store": str(artifacts), "published": None}
    overrides = {"epochs": epochs, "patience": patience, "lr": lr, "batch_size": batch_size, "seed": seed}
    try:
        dev = pick_device(device)
    except ValueError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        _emit({**base, "message": str(exc)}, EXIT_BAD_INPUT)
    try:
        items = read_catalog(catalog, id_column, title_column, multi_sep, field or ()) if catalog is not None else None
    except CatalogError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        _emit({**base, "message": str(exc)}, EXIT_BAD_INPUT)
    try:
        opts = RetrainOptions(
            store=artifacts,
            base_data=data,
            redis_url=redis,
            gate_tolerance=gate_tolerance,
            device=dev,
            train_overrides={k: v for k, v in overrides.items() if v is not None},
            progress=progress,
            catalog=items,
        )
        summary = retrain(opts, log)
    except (RetrainError, ArtifactError, DataError) as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        _emit({**base, "message": str(exc)}, EXIT_BAD_INPUT)
    except RetrainUnavailable as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        _emit({**base, "status": "unavailable", "message": str(exc)}, EXIT_UNAVAILABLE)
    except OSError as exc:  # the store cannot be written (e.g. a full disk): CURRENT and the watermark stay
        message = f"the artifact store {artifacts} cannot be written or read: {exc}"
        typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
        _emit({**base, "message": message}, EXIT_BAD_INPUT)
    except (KeyboardInterrupt, typer.Exit):
        raise
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        _emit({**base, "message": f"unexpected {type(exc).__name__}: {exc}"}, EXIT_FAILED)
    log(summary.message)
    _emit(summary.to_dict(), EXIT_CODES[summary.status])
