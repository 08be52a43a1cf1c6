"""Folding events into interactions: the base sequences plus the stream's events, in the current model's item
rows, with new items appended and new users after the base users."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from elcrec.model.events import decode_event
from elcrec.training.data import Interactions
from elcrec.training.retrain_errors import RetrainError


@dataclass
class Merged:
    data: Interactions  # item ids are rows of item_ids
    item_ids: list[str | None]  # row -> external id; None for padding (0) and mask (last)
    n_known: int  # rows 1..n_known are the items of the current model, at the same rows
    events: int = 0
    skipped: int = 0
    new_users: int = 0
    updated_users: int = 0
    new_items: list[str] = field(default_factory=list)


class Vocabulary:
    """External item id <-> row, grown at the end; existing rows never move."""

    def __init__(self, item_ids: list[str | None]) -> None:
        self.ids: list[str] = []
        self.rows: dict[str, int] = {}
        for row, item in enumerate(item_ids[1:-1], start=1):
            if not isinstance(item, str) or not item:
                raise RetrainError(f"the current version's items.json has no external id for row {row}")
            if item in self.rows:
                raise RetrainError(f"the current version's items.json names item {item!r} twice")
            self.ids.append(item)
            self.rows[item] = row
        self.n_known = len(self.ids)

    def row(self, item: str) -> int:
        r = self.rows.get(item)
        if r is None:
            self.ids.append(item)
            r = self.rows[item] = len(self.ids)
        return r

    def item_ids(self) -> list[str | None]:
        return [None, *self.ids, None]

    @property
    def new_items(self) -> list[str]:
        return self.ids[self.n_known :]


def merge(
    base: Interactions,
    base_ids: list[str | None],
    current_ids: list[str | None],
    events: Iterator[tuple[str, dict[str, str]]],
    source: str = "",
) -> Merged:
    """Base sequences (rows of base_ids) + events -> sequences in the current model's rows, grown as needed.

    Existing users' histories grow at the end, new users are added after the base users in order of their
    first event; items the current model does not know get rows N+1.. in order of first appearance.
    """
    vocab = Vocabulary(current_ids)
    translate = np.zeros(len(base_ids), dtype=np.int64)
    used = np.unique(base.items)
    for r in used.tolist():
        ext = base_ids[r] if 0 < r < len(base_ids) else None
        if ext is None:
            raise RetrainError(f"{base.source}: item row {r} has no external id")
        translate[r] = vocab.row(ext)
    seqs: list[np.ndarray] = [translate[base.sequence(u)] for u in range(base.n_users)]
    users = list(base.users)
    index = {u: i for i, u in enumerate(users)}
    grown: dict[int, list[int]] = {}
    n_events = skipped = 0
    for _, fields in events:
        parsed = decode_event(fields)
        if parsed is None:
            skipped += 1
            continue
        user, items = parsed
        n_events += 1
        i = index.get(user)
        if i is None:
            i = index[user] = len(users)
            users.append(user)
            seqs.append(np.zeros(0, dtype=np.int64))
        grown.setdefault(i, []).extend(vocab.row(it) for it in items)
    for i, rows in grown.items():
        seqs[i] = np.concatenate([seqs[i], np.asarray(rows, dtype=np.int64)])
    data = Interactions.from_sequences(users, seqs, len(vocab.ids), source=source)
    return Merged(
        data=data,
        item_ids=vocab.item_ids(),
        n_known=vocab.n_known,
        events=n_events,
        skipped=skipped,
        new_users=len(users) - base.n_users,
        updated_users=sum(1 for i in grown if i < base.n_users),
        new_items=vocab.new_items,
    )
