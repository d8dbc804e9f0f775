"""Delta reads, MERGEs and commit metadata: the only place jobs touch Delta tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass(frozen=True)
class CommitInfo:
    """One Delta commit: its version, operation and operation metrics."""

    version: int
    operation: str
    metrics: dict[str, str]

    def metric(self, name: str) -> int:
        """An operation metric as an int (0 when absent)."""
        return int(self.metrics.get(name, 0))

    @property
    def rows_written(self) -> int:
        """Rows this commit added or changed (MERGE: inserted + updated + deleted)."""
        if self.operation == "MERGE":
            return sum(
                self.metric(f"numTargetRows{kind}") for kind in ("Inserted", "Updated", "Deleted")
            )
        return self.metric("numOutputRows")


def table_exists(spark: SparkSession, location: str) -> bool:
    """True when ``location`` holds a Delta table."""
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, location))


def read_table(spark: SparkSession, location: str) -> DataFrame:
    """The current snapshot of the Delta table at ``location``."""
    return spark.read.format("delta").load(location)


def last_commit(spark: SparkSession, location: str) -> CommitInfo:
    """The latest commit of the table at ``location``."""
    from delta.tables import DeltaTable

    row = DeltaTable.forPath(spark, location).history(1).collect()[0]
    metrics: dict[str, Any] = row["operationMetrics"] or {}
    return CommitInfo(int(row["version"]), str(row["operation"]), dict(metrics))


def current_version(spark: SparkSession, location: str) -> int:
    """Latest version of the table at ``location``."""
    return last_commit(spark, location).version


def merge_upsert(
    spark: SparkSession, source: DataFrame, location: str, keys: list[str]
) -> CommitInfo:
    """Upsert ``source`` into the table at ``location`` by ``keys`` (created if absent).

    Only rows that are new or differ from the stored row take part in the MERGE, so a
    replay rewrites no file; when nothing differs no commit is made and the returned
    :class:`CommitInfo` has operation ``NONE`` at the current version.
    """
    from delta.tables import DeltaTable

    if not table_exists(spark, location):
        source.write.format("delta").mode("errorifexists").save(location)
        return last_commit(spark, location)
    target = read_table(spark, location)
    same_row = [source[c].eqNullSafe(target[c]) for c in source.columns]
    changes = source.join(target, on=same_row, how="left_anti")
    if changes.isEmpty():
        return CommitInfo(current_version(spark, location), "NONE", {})
    condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    (
        DeltaTable.forPath(spark, location)
        .alias("t")
        .merge(changes.alias("s"), condition)
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )
    return last_commit(spark, location)


def append_batch(
    spark: SparkSession,
    frame: DataFrame,
    location: str,
    *,
    app_id: str,
    batch_id: int,
    user_metadata: str,
    partition_by: list[str] | None = None,
    merge_schema: bool = False,
    properties: dict[str, str] | None = None,
) -> CommitInfo:
    """Append ``frame`` as batch ``batch_id`` of writer ``app_id``, idempotently.

    Delta records (``app_id``, ``batch_id``) in the same commit as the data and skips a
    later append with a ``batch_id`` not greater than the recorded one; such a skipped
    replay returns operation ``NONE``. ``properties`` are table properties applied when
    the append creates the table.
    """
    before = current_version(spark, location) if table_exists(spark, location) else -1
    writer = (
        frame.write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", str(batch_id))
        .option("userMetadata", user_metadata)
        .option("mergeSchema", str(merge_schema).lower())
    )
    if before < 0:
        for key, value in (properties or {}).items():
            writer = writer.option(key, value)
        if partition_by:
            writer = writer.partitionBy(*partition_by)
    writer.save(location)
    commit = last_commit(spark, location)
    if commit.version == before:
        return CommitInfo(before, "NONE", {})
    return commit


def register_table(spark: SparkSession, database: str, name: str, location: str) -> None:
    """Register the Delta table at ``location`` as ``database.name`` in the session catalog.

    A name registered at another location (an earlier home in a long-lived session) is
    re-pointed; dropping an external table leaves its files alone.
    """
    qualified = f"`{database}`.`{name}`"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    if spark.catalog.tableExists(f"{database}.{name}"):
        detail = spark.sql(f"DESCRIBE DETAIL {qualified}").select("location").collect()[0][0]
        if detail.rstrip("/").removeprefix("file:") == location.rstrip("/").removeprefix("file:"):
            return
        spark.sql(f"DROP TABLE {qualified}")
    spark.sql(f"CREATE TABLE {qualified} USING DELTA LOCATION '{location}'")
