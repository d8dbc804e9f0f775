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

A delete is dated when it was seen: ``snapshot_at`` (the end of the run's logical day,
or the read time if earlier: a daily run starts just after its day ends, and a backfill
or a simulated day dates what it sees on its own day), or just after the deleted row's
last cursor value if that is later (clocks of the source and the job may differ, and a
rerun of an old day compares with newer state), so it sorts after every version of the
row.
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


def with_row_hash(cursor: str | None) -> Callable[[DataFrame], DataFrame]:
    """The snapshot plus ``_row_hash`` (SHA-256 of the row) and ``_cursor`` (its cursor)."""

    def transform(snapshot: DataFrame) -> DataFrame:
        columns = sorted(c for c in snapshot.columns if c not in (CHANGE_OP, SNAPSHOT_AT))
        row = F.sha2(F.to_json(F.struct(*[F.col(f"`{c}`") for c in columns])), 256)
        seen = F.col(f"`{cursor}`") if cursor else F.lit(None)
        return snapshot.select("*", row.alias(ROW_HASH), seen.cast("timestamp").alias(SEEN))

    return transform


def snapshot_state(keys: Sequence[str]) -> Callable[[DataFrame], DataFrame]:
    """A hashed snapshot (:func:`with_row_hash`) as state rows: keys, ``_row_hash``, ``_cursor``."""

    def transform(hashed: DataFrame) -> DataFrame:
        return hashed.select(*[F.col(f"`{k}`") for k in keys], ROW_HASH, SEEN)

    return transform


def snapshot_changes(
    previous: DataFrame, keys: Sequence[str], cursor: str | None, taken_at: datetime
) -> Callable[[DataFrame], DataFrame]:
    """The change events that turn the ``previous`` state into this snapshot.

    Input: the snapshot hashed by :func:`with_row_hash`. Output: the snapshot's columns
    plus ``change_op`` and ``snapshot_at``; a delete has the keys, the cursor (its date,
    see the module) and NULL elsewhere. One full outer join of the snapshot with the
    previous state on the keys finds all three kinds of change.
    """

    def transform(hashed: DataFrame) -> DataFrame:
        data = [c for c in hashed.columns if c not in (ROW_HASH, SEEN)]
        at = F.lit(taken_at).cast("timestamp")
        was = previous.select(
            *[F.col(f"`{k}`") for k in keys],
            F.col(ROW_HASH).alias("_was_hash"),
            F.col(SEEN).alias("_was_seen"),
        )
        both = hashed.withColumn("_now", F.lit(True)).join(was, on=list(keys), how="full_outer")
        gone = F.col("_now").isNull()
        changed = gone | F.col("_was_hash").isNull() | (F.col(ROW_HASH) != F.col("_was_hash"))
        after_last = F.col("_was_seen") + F.expr("INTERVAL 1 MICROSECOND")
        dated = F.greatest(at, after_last) if cursor else at
        types = {f.name: f.dataType for f in hashed.schema.fields}
        return both.where(changed).select(
            *[
                F.when(gone, dated.cast(types[c])).otherwise(F.col(f"`{c}`")).alias(c)
                if c == cursor
                else F.col(f"`{c}`")
                for c in data
            ],
            F.when(gone, F.lit(DELETE)).otherwise(F.lit(UPSERT)).alias(CHANGE_OP),
            at.alias(SNAPSHOT_AT),
        )

    return transform
