"""Writes one batch into a Bronze table: the sequence shared by batch and streaming ingest.

1. stage: add the Bronze metadata and count what was read;
2. check schema drift against the table before anything is written;
3. drop records already in Bronze (lookback re-reads, backfills, replays, duplicates);
4. append rejects to the quarantine table (Delta idempotent write, same batch id);
5. append the new records with the progress in the same commit (idempotent write).

A batch with nothing new, nothing rejected and an unchanged watermark makes no commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.bronze.metadata import as_quarantine, only_new_records, with_bronze_metadata
from jobs.common.delta_io import (
    CommitInfo,
    append_batch,
    current_version,
    describe_error,
    is_write_conflict,
    read_table,
    register_table,
    table_exists,
)
from jobs.common.errors import ConcurrentRunError
from jobs.common.faults import crash_inside, crash_point, rendezvous
from jobs.common.paths import LakePaths
from jobs.common.progress import Progress
from jobs.common.quality import FAILED_RULES, GateResult, failure_reason
from jobs.common.schema_drift import plan_schema_change
from jobs.common.tables import bronze_table_name, quarantine_table_name

# Change Data Feed: Silver reads only the rows each Bronze commit added.
BRONZE_PROPERTIES = {"delta.appendOnly": "true", "delta.enableChangeDataFeed": "true"}
# File statistics only where reads prune: ingest time and batch (Silver's incremental
# reads) and the source cursor (the duplicate check's window). Stats on every column
# cost ~40% of an append (make bench) and _record_hash stats never prune.
STATS_COLUMNS = ("_ingested_at", "_batch_id")
# Batches up to this many rows have their hashes broadcast for the duplicate check
# (64-character hashes: ~32 MB); larger ones use a shuffle join.
BROADCAST_BATCH_ROWS = 500_000
Step = Callable[[str], AbstractContextManager[None]]
Gate = Callable[[DataFrame], GateResult]


@dataclass(frozen=True)
class BronzeTarget:
    """A Bronze table and its quarantine table."""

    table: str  # <source>_<entity>
    source_label: str  # <source>.<entity>
    keys: list[str]
    location: str
    quarantine_location: str

    @staticmethod
    def of(paths: LakePaths, source: str, entity: str, keys: list[str]) -> BronzeTarget:
        """The target for ``source``.``entity``."""
        table = bronze_table_name(source, entity)
        return BronzeTarget(
            table,
            f"{source}.{entity}",
            keys,
            paths.table("bronze", table),
            paths.table("_quarantine", quarantine_table_name("bronze", table)),
        )


@dataclass(frozen=True)
class BatchOutcome:
    """What one batch did."""

    rows_read: int
    rows_new: int
    rows_rejected: int
    commit: CommitInfo
    added_columns: tuple[str, ...]
    watermark: dict[str, Any]


@contextmanager
def _untimed(_: str) -> Iterator[None]:
    yield


def _with_gate_rejects(rejects: DataFrame | None, gated: DataFrame) -> DataFrame:
    """``rejects`` plus the rows the gate quarantined, as raw JSON with the rule names."""
    raw = [c for c in gated.columns if not c.startswith("_")]
    shaped = gated.select(
        F.to_json(F.struct(*[F.col(f"`{c}`") for c in raw])).alias("_raw"),
        failure_reason().alias("_reason"),
        F.col("_source_position"),
    )
    if rejects is None:
        return shaped
    return rejects.select("_raw", "_reason", "_source_position").unionByName(shaped)


@contextmanager
def _lost_race(target: BronzeTarget, batch_id: int) -> Iterator[None]:
    """Turn Delta's conflict with another driver's commit into a clear error.

    Two drivers writing one table (a retry beside a zombie try) commit the same batch
    id: Delta lets one commit and fails the other (``txnAppId``). Nothing of the loser
    was committed; its next run starts from the progress the winner recorded.
    """
    try:
        yield
    except Exception as exc:
        if not is_write_conflict(exc):
            raise
        raise ConcurrentRunError(
            f"bronze.{target.table}: another run committed to {target.location} while this one "
            f"wrote batch {batch_id}; nothing of this run was committed, the next run continues "
            f"from the table's progress ({describe_error(exc)})"
        ) from exc


def write_batch(
    spark: SparkSession,
    target: BronzeTarget,
    *,
    records: DataFrame,
    position: Column,
    rejects: DataFrame | None,
    run_id: str,
    batch_id: int,
    ingested_at: datetime,
    next_watermark: Callable[[DataFrame], dict[str, Any]],
    previous_watermark: dict[str, Any] | None,
    existing_filter: str | None = None,
    cursor: str | None = None,
    step: Step = _untimed,
    gate: Gate | None = None,
) -> BatchOutcome:
    """Write ``records`` (and ``rejects``) as batch ``batch_id`` of ``target``.

    ``gate`` (the table's quality gate) runs on the staged rows before anything is
    written: it raises to stop the batch, and the rows it quarantines join ``rejects``.
    """
    cached: list[DataFrame] = []
    try:
        with step("read"):
            staged = records.transform(
                with_bronze_metadata(target.source_label, run_id, batch_id, ingested_at, position)
            ).cache()
            cached.append(staged)
            rows_read = staged.count()
        crash_point("after_read")
        gated: DataFrame | None = None
        if gate is not None and rows_read:
            with step("gate"):
                result = gate(staged)
            if result.quarantined is not None and result.report.rows_quarantined:
                gated = result.quarantined
                rows_read -= result.report.rows_quarantined
                staged = result.passed
                rejects = _with_gate_rejects(rejects, gated)
        added: tuple[str, ...] = ()
        with step("stage"):
            if rows_read and table_exists(spark, target.location):
                current = read_table(spark, target.location)
                added = plan_schema_change(
                    f"bronze.{target.table}", current.schema, staged.schema, target.keys
                ).added
                scope = current.where(existing_filter) if existing_filter else current
                small = rows_read <= BROADCAST_BATCH_ROWS
                new_rows = staged.transform(only_new_records(scope, broadcast_batch=small)).cache()
            else:
                new_rows = staged.dropDuplicates(["_record_hash"]).cache()
            cached.append(new_rows)
            rows_new = new_rows.count()
            # quarantined rows count as read: the watermark moves past them too
            watermark = next_watermark(
                new_rows
                if gated is None
                else new_rows.unionByName(gated.drop(FAILED_RULES), allowMissingColumns=True)
            )
        rows_rejected = 0
        if rejects is not None:
            shaped = rejects.transform(
                as_quarantine(target.source_label, run_id, batch_id, ingested_at)
            ).cache()
            cached.append(shaped)
            rows_rejected = shaped.count()
            if rows_rejected:
                with step("quarantine"), _lost_race(target, batch_id):
                    append_batch(
                        spark,
                        shaped,
                        target.quarantine_location,
                        app_id=f"quarantine.bronze.{target.table}",
                        batch_id=batch_id,
                        user_metadata=Progress(batch_id, {}, run_id).to_metadata(),
                    )
        with step("write"), _lost_race(target, batch_id):
            if rows_new == 0 and rows_rejected == 0 and watermark == (previous_watermark or {}):
                commit = CommitInfo(current_version(spark, target.location), "NONE", {})
            else:
                rendezvous("bronze_commit")  # the two-driver tests: commit at the same time
                commit = append_batch(
                    spark,
                    crash_inside(new_rows, "mid_write"),
                    target.location,
                    app_id=f"bronze.{target.table}",
                    batch_id=batch_id,
                    user_metadata=Progress(batch_id, watermark, run_id).to_metadata(),
                    partition_by=["_ingest_date"],
                    merge_schema=bool(added),
                    properties={
                        **BRONZE_PROPERTIES,
                        "delta.dataSkippingStatsColumns": ",".join(
                            [*STATS_COLUMNS, *([cursor] if cursor else [])]
                        ),
                    },
                )
        crash_point("after_commit")
        register_table(spark, "bronze", target.table, target.location)
        return BatchOutcome(rows_read, rows_new, rows_rejected, commit, added, watermark)
    finally:
        for frame in cached:
            frame.unpersist()
