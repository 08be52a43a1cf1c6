"""`elcrec retrain`: the batch retraining job (being written)."""

from __future__ import annotations

import typer


def retrain_command() -> None:
    """Fold new events into the data, retrain, and publish only if not worse."""
    typer.secho("error: elcrec retrain is not implemented yet", err=True)
    raise typer.Exit(2)
