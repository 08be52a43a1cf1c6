"""The layers' top-level names (`model`, `service`, `training`: the design card's folders) are generic, and another
distribution installed into the same environment may ship a package of the same name: pip then mixes the two
packages' files in one folder, and imports fail far from the cause or, worse, run the other package's code. Each
layer's __init__ carries a marker; `check()` runs before the CLI imports a layer and turns a clash into one error
that names the other distribution and the remedy (a virtual environment of elcrec's own, as `make setup` and the
Docker image make)."""

from __future__ import annotations

import importlib
from importlib import metadata

LAYERS = ("model", "service", "training")


class LayerClash(ImportError):
    pass


def _owners(name: str) -> list[str]:
    try:
        return sorted({d for d in metadata.packages_distributions().get(name, []) if d != "elcrec"})
    except Exception:  # noqa: BLE001 - a broken metadata entry must not hide the clash itself
        return []


def check() -> None:
    """Raise LayerClash naming the problem if a layer's top-level package is not elcrec's."""
    for name in LAYERS:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            others = _owners(name)
            raise LayerClash(_message(name, others, f"it does not import ({exc})")) from exc
        if getattr(module, "ELCREC_LAYER", None) != name:
            where = getattr(module, "__file__", None) or "a namespace package"
            raise LayerClash(_message(name, _owners(name), f"`import {name}` finds {where}, which is not elcrec's"))


def _message(name: str, others: list[str], what: str) -> str:
    by = f" (also installed by {', '.join(others)})" if others else ""
    return (f"elcrec's top-level package {name!r} is shadowed or mixed with another one{by}: {what}. "
            "Install elcrec in a virtual environment of its own (python -m venv .venv; .venv/bin/pip install ...; "
            "`make setup` does this), or use the Docker image.")
