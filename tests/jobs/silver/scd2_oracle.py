"""A small pure-Python statement of the SCD2 semantics, for the property test.

Written from the rules in ``jobs/silver/scd2.py``'s docstring, not from its code:
per key, events in sequence order; an upsert opens a version when a tracked value
differs from the version it follows, else updates that version's untracked values;
a delete closes the open version; NULLs keep the previous value when asked. Ties at
one (key, sequence): a delete wins over upserts; two or more different upserts and no
delete leave the slot empty, and those upserts are quarantined (``tied``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    key: str
    seq: int
    delete: bool
    values: tuple[Any, ...]  # the stored columns, in order


def history(
    events: Iterable[Event],
    tracked: Sequence[int],
    *,
    ignore_null_updates: bool = False,
) -> set[tuple[Any, ...]]:
    """Rows ``(key, *values, valid_from, valid_to, is_current)`` of the final table."""
    by_key: dict[str, list[Event]] = {}
    for event in _resolved(events):
        by_key.setdefault(event.key, []).append(event)
    rows: set[tuple[Any, ...]] = set()
    for key, evs in by_key.items():
        versions: list[list[Any]] = []  # [values, valid_from, valid_to]
        open_version: list[Any] | None = None
        carried: tuple[Any, ...] | None = None  # values since the last delete
        for event in sorted(evs, key=lambda e: e.seq):
            if event.delete:
                if open_version is not None:
                    open_version[2] = event.seq
                open_version, carried = None, None
                continue
            values = event.values
            if ignore_null_updates and carried is not None:
                values = tuple(c if v is None else v for v, c in zip(values, carried, strict=True))
            carried = values
            if open_version is not None and all(open_version[0][i] == values[i] for i in tracked):
                open_version[0] = values  # untracked columns change in place
                continue
            if open_version is not None:
                open_version[2] = event.seq
            open_version = [values, event.seq, None]
            versions.append(open_version)
        for values, start, end in versions:
            rows.add((key, *values, start, end, end is None))
    return rows


def _slots(events: Iterable[Event]) -> dict[tuple[str, int], set[Event]]:
    slots: dict[tuple[str, int], set[Event]] = {}
    for event in events:
        slots.setdefault((event.key, event.seq), set()).add(event)
    return slots


def _resolved(events: Iterable[Event]) -> list[Event]:
    """One event per (key, sequence): a delete if any, else the only upsert; none if tied."""
    chosen = []
    for slot in _slots(events).values():
        deletes = [e for e in slot if e.delete]
        if deletes:
            chosen.append(deletes[0])
        elif len(slot) == 1:
            chosen.append(next(iter(slot)))
    return chosen


def tied(events: Iterable[Event]) -> set[Event]:
    """The upserts that share their (key, sequence) with another, different upsert."""
    found: set[Event] = set()
    for slot in _slots(events).values():
        upserts = {e for e in slot if not e.delete}
        if len(upserts) > 1:
            found |= upserts
    return found
