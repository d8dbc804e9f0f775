"""Snapshot change capture: upserts and hard deletes from a table with no change column.

A source entity declared ``mode: snapshot`` is read whole on every run. Its rows are
compared, by key and a hash of the row, with the snapshot the previous run saw, kept as
``_control.snapshot_<bronze table>`` (keys, row hash, cursor value): a key that is new or
whose hash changed becomes an ``upsert`` event (the row as read), a key that is gone a
``delete`` event (the key only). Both land in Bronze like any batch, with
``change_op`` and ``snapshot_at`` (when the snapshot was taken), and Silver applies them
(``deletes: change_op = 'delete'``). The price: a full read of the source table and a
join of its keys and hashes with the previous snapshot's, every run.

Exactly once: each run writes the new snapshot state, tagged with the Bronze batch it
belongs to, *before* the Bronze commit of that batch, and compares with the state tagged
with the last *committed* batch (found by time travel on the state table). A run killed
between the two commits is redone against the same baseline; one killed after the Bronze
commit finds its own state as the baseline, so nothing is emitted twice.

A delete is dated when it was seen: ``snapshot_at``, or just after the deleted row's
last cursor value if that is later (clocks of the source and the job may differ), so it
sorts after every version of the row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

CHANGE_OP, SNAPSHOT_AT = "change_op", "snapshot_at"
UPSERT, DELETE = "upsert", "delete"
ROW_HASH, SEEN = "_row_hash", "_cursor"
STATE_BATCH = "snapshot_batch"  # the state's commit metadata: the Bronze batch it belongs to


def snapshot_state(keys: Sequence[str], cursor: str | None) -> Callable[[DataFrame], DataFrame]:
    """A source snapshot as state rows: keys, ``_row_hash``, ``_cursor`` (the cursor value)."""

    def transform(snapshot: DataFrame) -> DataFrame:
        columns = [c for c in snapshot.columns if c not in (CHANGE_OP, SNAPSHOT_AT)]
        row = F.sha2(F.to_json(F.struct(*[F.col(f"`{c}`") for c in sorted(columns)])), 256)
        seen = F.col(f"`{cursor}`").cast("timestamp") if cursor else F.lit(None)
        return snapshot.select(
            *[F.col(f"`{k}`") for k in keys],
            row.alias(ROW_HASH),
            seen.cast("timestamp").alias(SEEN),
        )

    return transform


def snapshot_changes(
    previous: DataFrame, keys: Sequence[str], cursor: str | None, taken_at: datetime
) -> Callable[[DataFrame], DataFrame]:
    """The change events that turn the ``previous`` state into this snapshot.

    Output: the snapshot's columns plus ``change_op`` and ``snapshot_at``; a delete has
    the keys, the cursor (its date, see the module) and NULL elsewhere.
    """

    def transform(snapshot: DataFrame) -> DataFrame:
        at = F.lit(taken_at).cast("timestamp")
        state = snapshot.transform(snapshot_state(keys, cursor))
        changed = state.join(
            previous.select(*keys, ROW_HASH), on=[*keys, ROW_HASH], how="left_anti"
        )
        upserts = snapshot.join(changed.select(*keys), on=list(keys), how="left_semi").select(
            "*", F.lit(UPSERT).alias(CHANGE_OP), at.alias(SNAPSHOT_AT)
        )
        gone = previous.join(state.select(*keys), on=list(keys), how="left_anti")
        after_last = F.col(SEEN) + F.expr("INTERVAL 1 MICROSECOND")
        dated = F.greatest(at, after_last) if cursor else at
        types = {f.name: f.dataType for f in snapshot.schema.fields}
        deletes = gone.select(
            *[
                F.col(f"`{c}`")
                if c in keys
                else (dated if c == cursor else F.lit(None)).cast(types[c]).alias(c)
                for c in snapshot.columns
            ],
            F.lit(DELETE).alias(CHANGE_OP),
            at.alias(SNAPSHOT_AT),
        )
        return upserts.unionByName(deletes)

    return transform
