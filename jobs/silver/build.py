"""The Silver job: one conformed table from one Bronze table, incrementally.

``silver.<table>`` (declared in ``config/tables.yaml``) reads only the Bronze rows added
since its last run (Delta Change Data Feed between the Bronze version it recorded and
the current one; the first run reads the snapshot), conforms them, quarantines what
does not conform, and writes by the table's kind: ``scd2`` through
:func:`jobs.silver.scd2.apply_changes`, ``latest`` and ``first`` through idempotent
MERGEs. The Bronze version is recorded only after the write, and every write is a
no-op on replay, so a run killed anywhere is completed by the next one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.common import delta_io
from jobs.common.config import SilverTableSpec
from jobs.common.locks import table_lock
from jobs.common.quality import Reconciliation, failure_reason, reconcile, run_gate
from jobs.common.run_context import DatasetStats
from jobs.common.tables import quarantine_table_name
from jobs.silver.conform import REASON, conform
from jobs.silver.scd2 import IS_CURRENT, apply_changes

if TYPE_CHECKING:
    from jobs.common.job import JobEnv

SILVER_PROPERTIES = {"delta.enableChangeDataFeed": "true"}
QUARANTINE_COLUMNS = ("_record", REASON, "_run_id", "_quarantined_at")


def build_silver(job: JobEnv, table: str) -> None:
    """Bring ``silver.<table>`` up to date with its Bronze table."""
    spark, paths, run = job.spark, job.paths, job.recorder
    spec = job.settings.silver[table]
    bronze = paths.table("bronze", spec.source)
    target = paths.table("silver", table)
    if not delta_io.table_exists(spark, bronze):
        run.summary.notes["skipped"] = f"bronze.{spec.source} does not exist yet"
        return
    progress = paths.table("_control", "silver_progress")
    with table_lock(paths, f"silver.{table}", job.ctx.run_id):
        done = delta_io.read_progress(spark, progress, f"silver.{table}")
        latest = delta_io.current_version(spark, bronze)
        first = 0 if done is None else done + 1
        outcome: dict[str, Any] = {}
        if first <= latest:
            rows = (
                delta_io.read_table(spark, bronze, version=latest)
                if done is None
                else delta_io.read_inserts_since(spark, bronze, first, latest)
            )
            outcome = _write(job, table, spec, rows, bronze, (first, latest))
        delta_io.write_progress(spark, progress, f"silver.{table}", latest)
    run.input(
        DatasetStats(
            f"bronze.{spec.source}",
            bronze,
            rows=int(outcome.get("rows_in", 0)),
            extra={"bronze_versions": [first, latest]},
        )
    )
    run.output(
        DatasetStats(
            f"silver.{table}",
            target,
            rows=int(outcome.get("rows_written", 0)),
            rows_quarantined=int(outcome.get("rows_quarantined", 0)),
            delta_version=outcome.get("version"),
            extra={k: v for k, v in outcome.items() if k not in ("rows_in", "version")},
        )
    )
    if delta_io.table_exists(spark, target):
        delta_io.register_table(spark, "silver", table, target)


def _write(
    job: JobEnv,
    table: str,
    spec: SilverTableSpec,
    rows: DataFrame,
    bronze: str,
    versions: tuple[int, int],
) -> dict[str, Any]:
    """Conform, gate, quarantine and write one batch of Bronze rows; reconcile the counts."""
    spark, run_id, paths = job.spark, job.ctx.run_id, job.paths
    target = paths.table("silver", table)
    quarantine = paths.table("_quarantine", quarantine_table_name("silver", table))
    keep = [c for c in spec.sequence_columns if c not in spec.columns]
    required = [*spec.keys, *spec.sequence_columns]
    truncate = F.expr(spec.truncates) if spec.truncates else None
    # a TRUNCATE event names no key
    optional = {k: truncate for k in spec.keys} if truncate is not None else {}
    conformed = rows.transform(conform(spec.columns, required, keep, optional)).cache()
    try:
        with job.recorder.step("conform"):
            counts = {
                bool(r["bad"]): int(r["n"])
                for r in conformed.groupBy(F.col(REASON).isNotNull().alias("bad"))
                .count()
                .withColumnRenamed("count", "n")
                .collect()
            }
        rows_in, rejected = sum(counts.values()), counts.get(True, 0)
        accounting = Reconciliation(
            source=f"bronze.{spec.source}",
            target=f"silver.{table}",
            versions=versions,
            source_rows=delta_io.rows_added(spark, bronze, *versions),
            rows_read=rows_in,
            max_row_loss=job.settings.quality.max_row_loss,
        )
        with job.recorder.step("gate"):  # fails here, before any write
            gate = run_gate(job, "silver", table, conformed.where(F.col(REASON).isNull()))
            reconcile(job, "silver", table, accounting)
        failed = conformed.where(F.col(REASON).isNotNull()).select("_record", REASON)
        if gate.quarantined is not None:
            failed = failed.unionByName(
                gate.quarantined.select(
                    "_record",
                    failure_reason().alias(REASON),
                )
            )
        rejected += gate.report.rows_quarantined
        if rejected:
            with job.recorder.step("quarantine"):
                delta_io.insert_new(
                    spark,
                    failed.select(
                        "_record",
                        REASON,
                        F.lit(run_id).alias("_run_id"),
                        F.current_timestamp().alias("_quarantined_at"),
                    ),
                    quarantine,
                    match=["_record", REASON],
                )
        good = gate.passed.drop("_record", REASON)
        with job.recorder.step("write"):
            written = _write_kind(job, spec, good, target, quarantine, truncate)
        applied, deduplicated = written.pop("rows_applied"), written.pop("rows_deduplicated")
        written["rows_quarantined"] = rejected + written.get("rows_quarantined", 0)
        written["duplicates_skipped"] = deduplicated  # changed nothing: seen, superseded, older
        with job.recorder.step("reconcile"):
            reconcile(
                job,
                "silver",
                table,
                replace(
                    accounting,
                    quarantined=written["rows_quarantined"],
                    applied=applied,
                    deduplicated=deduplicated,
                    duplicate_keys=_duplicate_keys(spark, spec, good, target),
                    written=True,
                ),
            )
        return {"rows_in": rows_in, **written}
    finally:
        conformed.unpersist()


def _duplicate_keys(
    spark: SparkSession, spec: SilverTableSpec, batch: DataFrame, target: str
) -> int:
    """Keys of ``batch`` that have more than one row (SCD2: current row) in ``target``."""
    if not delta_io.table_exists(spark, target):
        return 0
    keys = [F.col(f"`{k}`") for k in spec.keys]
    stored = delta_io.read_table(spark, target)
    if spec.kind == "scd2":
        stored = stored.where(F.col(IS_CURRENT))
    touched = batch.select(*keys).distinct()
    return (
        stored.join(touched, on=list(spec.keys), how="left_semi")
        .groupBy(*keys)
        .count()
        .where("count > 1")
        .count()
    )


def _write_kind(
    job: JobEnv,
    spec: SilverTableSpec,
    good: DataFrame,
    target: str,
    quarantine: str,
    truncate: Column | None,
) -> dict[str, Any]:
    """Write by the table's kind; ``truncate``: the ``latest`` kind's TRUNCATE predicate."""
    spark = job.spark
    if spec.kind == "scd2":
        result = apply_changes(
            spark,
            good,
            target,
            keys=spec.keys,
            sequence_by=spec.sequence_columns,
            apply_as_deletes=spec.deletes,
            except_columns=spec.except_columns,
            track_history_except_columns=spec.track_history_except_columns,
            tombstones=spec.tombstones,
            current_valid_to=spec.current_valid_to,
            run_id=job.ctx.run_id,
            quarantine=quarantine,
        )
        return {
            "rows_written": result.rows_inserted
            + result.rows_updated
            + result.rows_closed
            + result.rows_deleted,
            "rows_quarantined": result.rows_quarantined,
            "rows_applied": result.events_new,
            "rows_deduplicated": result.duplicates_skipped,
            "version": result.version,
            "scd2": {
                "events_new": result.events_new,
                "duplicates_skipped": result.duplicates_skipped,
                "keys_affected": result.keys_affected,
                "versions_inserted": result.rows_inserted,
                "versions_closed": result.rows_closed,
                "versions_updated": result.rows_updated,
                "versions_deleted": result.rows_deleted,
                "ties_quarantined": result.ties_quarantined,
            },
        }
    is_row = ~F.coalesce(truncate, F.lit(False)) if truncate is not None else F.lit(True)
    counts = good.select(
        F.count_if(is_row).alias("rows"),
        F.count_distinct(F.when(is_row, F.struct(*[F.col(f"`{k}`") for k in spec.keys]))),
        F.count_if(~is_row).alias("truncates"),
    ).first()
    assert counts is not None
    batch_rows, batch_keys, truncates = int(counts[0]), int(counts[1]), int(counts[2])
    if spec.kind == "latest":
        commit = delta_io.merge_latest(
            spark,
            good,
            target,
            keys=spec.keys,
            order_by=spec.sequence_columns,
            truncate_when=truncate,
            properties=SILVER_PROPERTIES,
        )
    else:
        first = Window.partitionBy(*[F.col(f"`{k}`") for k in spec.keys]).orderBy(
            F.to_json(F.struct(*good.columns))
        )  # the same pick whatever the arrival order
        commit = delta_io.insert_new(
            spark,
            good.withColumn("_rank", F.row_number().over(first)).where("_rank = 1").drop("_rank"),
            target,
            match=spec.keys,
            merge_schema=True,
            properties=SILVER_PROPERTIES,
        )
    # the MERGE sees one row per key that is newer than (latest) or absent from (first)
    # the table; the others are superseded within the batch or already stored
    merged = commit.metric("numSourceRows")
    return {
        "rows_written": commit.rows_written,
        "rows_applied": commit.metric("numTargetRowsInserted")
        + commit.metric("numTargetRowsUpdated")
        + truncates,  # a TRUNCATE event is applied by the rows it deletes (or none)
        "rows_deduplicated": (batch_rows - batch_keys) + (batch_keys - merged),
        "version": commit.version,
    }
