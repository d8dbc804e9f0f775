"""The reference peer for the SCD2 benchmark: Delta Lake's documented SCD2 recipe.

"Slowly changing data (SCD) Type 2 operation into Delta tables" in the Delta Lake docs
(merge examples): one MERGE of *staged updates*, the batch twice over, once keyed (to
close the current version of a changed key) and once with a NULL merge key (to insert
the new version). It is what a data engineer writes by hand. It assumes what
``apply_changes`` does not: one event per key per batch, events newer than the table,
no deletes, no replays of older batches (a late event corrupts history, two events of
one key in a batch fail the MERGE). It is the cost to get close to, not a behaviour to
copy.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.silver.scd2 import IS_CURRENT, VALID_FROM, VALID_TO


def canonical_scd2_merge(
    spark: SparkSession,
    updates: DataFrame,
    target: str,
    *,
    keys: Sequence[str],
    sequence_by: str,
    tracked: Sequence[str],
) -> None:
    """MERGE ``updates`` into the SCD2 table at ``target`` by the documented recipe."""
    from delta.tables import DeltaTable

    table = DeltaTable.forPath(spark, target)
    current = table.toDF().where(F.col(IS_CURRENT))
    changed = F.lit(False)
    for c in tracked:
        changed = changed | ~F.col(f"u.`{c}`").eqNullSafe(F.col(f"t.`{c}`"))
    new_versions = (
        updates.alias("u")
        .join(current.alias("t"), on=[F.col(f"u.`{k}`") == F.col(f"t.`{k}`") for k in keys])
        .where(changed)
        .select("u.*")
    )
    merge_key = [F.col(f"`{k}`").alias(f"_mk_{k}") for k in keys]
    staged = new_versions.select(
        *[F.lit(None).cast(updates.schema[k].dataType).alias(f"_mk_{k}") for k in keys], "*"
    ).unionByName(updates.select(*merge_key, "*"))
    on = " AND ".join(f"t.`{k}` = s.`_mk_{k}`" for k in keys)
    differs = " OR ".join(f"NOT (t.`{c}` <=> s.`{c}`)" for c in tracked)
    columns = [c for c in updates.columns if c != sequence_by]
    (
        table.alias("t")
        .merge(staged.alias("s"), on)
        .whenMatchedUpdate(
            condition=f"t.{IS_CURRENT} AND ({differs})",
            set={IS_CURRENT: "false", VALID_TO: f"s.`{sequence_by}`"},
        )
        .whenNotMatchedInsert(
            values={
                **{f"`{c}`": f"s.`{c}`" for c in columns},
                VALID_FROM: f"s.`{sequence_by}`",
                VALID_TO: "NULL",
                IS_CURRENT: "true",
            }
        )
        .execute()
    )
