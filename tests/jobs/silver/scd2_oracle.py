"""A small pure-Python statement of the SCD2 semantics, for the property test.

Written from the rules in ``jobs/silver/scd2.py``'s docstring, not from its code:
per key, events in sequence order; an upsert opens a version when a tracked value
differs from the version it follows, else updates that version's untracked values;
a delete closes the open version; NULLs keep the previous value when asked.
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
    for event in {(e.key, e.seq): e for e in events}.values():
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
