"""A version's catalog as the service reads it: prepared once when the version is loaded (service/bundle.py), so
that a request's catalog fields, intent labels and category search are list and dict reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from elcrec.model.catalog import TITLE, Catalog
from elcrec.model.intent_labels import IntentLabel
from elcrec.service.errors import InvalidInput
from elcrec.service.schemas import IntentLabelOut


@dataclass(frozen=True, eq=False)
class ServedCatalog:
    source: str  # the file it was read from
    fields: tuple[str, ...]  # "title" and the categorical fields
    position: list[int]  # table row -> the item's position in the catalog's columns; -1: the catalog does not know it
    columns: dict[str, tuple[Any, ...]]  # field -> per catalog position: the title, or the tuple of values
    labels: list[IntentLabelOut]  # per intent
    by_category: dict[tuple[str, str], list[int]]  # (field, value) -> the intents whose label names it, by id

    def check_fields(self, names: Sequence[str] | None, version: str) -> tuple[str, ...]:
        """The fields a request names, checked (an unknown one is a 422 naming it)."""
        if not names:
            return ()
        unknown = [n for n in names if n not in self.fields]
        if unknown:
            raise InvalidInput(
                f"unknown catalog field {', '.join(repr(u) for u in dict.fromkeys(unknown))}; the catalog of "
                f"{version} has {', '.join(self.fields)}"
            )
        return tuple(dict.fromkeys(names))

    def of(self, row: int, names: tuple[str, ...]) -> dict[str, Any] | None:
        at = self.position[row]
        if at < 0:
            return None
        return {n: self.columns[n][at] if n == TITLE else list(self.columns[n][at]) for n in names}

    def intents_with(self, category: str) -> list[int]:
        """Intent ids whose label names a category given as FIELD:VALUE."""
        field, sep, value = category.partition(":")
        if not sep or not value:
            raise InvalidInput(f"category must be FIELD:VALUE (e.g. genre:Comedy), got {category!r}")
        if field not in self.fields or field == TITLE:
            categorical = [f for f in self.fields if f != TITLE]
            raise InvalidInput(f"unknown category field {field!r}; the catalog's categorical fields are "
                               f"{', '.join(categorical) or 'none'}")
        return self.by_category.get((field, value), [])


def no_catalog(names: Sequence[str] | None, what: str, version: str) -> None:
    """A request that names catalog fields (or a category) of a version that has no catalog: a 422 naming them."""
    if names:
        raise InvalidInput(f"the model {version} has no catalog, so no {what} {', '.join(repr(n) for n in names)} "
                           "(publish one with `elcrec catalog set`)")


def serve_catalog(catalog: Catalog, item_ids: list[str | None], labels: list[IntentLabel]) -> ServedCatalog:
    # one list read per request and item: a million items are prepared in a second or two, not a dict each
    where = {item: i for i, item in enumerate(catalog.ids)}
    by_category: dict[tuple[str, str], list[int]] = {}
    for k, label in enumerate(labels):
        for c in label.categories:
            by_category.setdefault((c.field, c.value), []).append(k)
    return ServedCatalog(
        source=catalog.source,
        fields=(TITLE, *catalog.fields),
        position=[where.get(ext, -1) if ext is not None else -1 for ext in item_ids],
        columns={TITLE: catalog.titles, **catalog.values},
        labels=[IntentLabelOut.model_validate(label.to_dict()) for label in labels],
        by_category=by_category,
    )
