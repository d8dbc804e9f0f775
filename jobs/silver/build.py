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

from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.common import delta_io
from jobs.common.config import SilverTableSpec
from jobs.common.locks import table_lock
from jobs.common.quality import failure_reason, run_gate
from jobs.common.run_context import DatasetStats
from jobs.silver.conform import REASON, conform
from jobs.silver.scd2 import apply_changes

if TYPE_CHECKING:
    from jobs.registry import JobEnv

SILVER_PROPERTIES = {"delta.enableChangeDataFeed": "true"}
QUARANTINE_COLUMNS = ("_record", REASON, "_run_id", "_quarantined_at")


def build_silver(job: JobEnv, table: str) -> None:
    """Bring ``silver.<table>`` up to date with its Bronze table."""
    spark, paths, run = job.spark, job.paths, job.recorder
    spec = job.settings.silver[table]
    bronze = paths.table("bronze", spec.source)
    target = paths.table("silver", table)
    quarantine = paths.table("_quarantine", f"silver_{table}")
    progress = paths.table("_control", "silver_progress")
    if not delta_io.table_exists(spark, bronze):
        run.summary.notes["skipped"] = f"bronze.{spec.source} does not exist yet"
        return
    with table_lock(paths, f"silver.{table}", job.ctx.run_id):
        done = delta_io.read_progress(spark, progress, f"silver.{table}")
        latest = delta_io.current_version(spark, bronze)
        if done is not None and done >= latest:
            rows = None
        elif done is None:
            rows = delta_io.read_table(spark, bronze, version=latest)
        else:
            rows = delta_io.read_inserts_since(spark, bronze, done + 1, latest)
        outcome = _write(job, table, spec, rows, target, quarantine) if rows is not None else {}
        delta_io.write_progress(spark, progress, f"silver.{table}", latest)
    run.input(
        DatasetStats(
            f"bronze.{spec.source}",
            bronze,
            rows=int(outcome.get("rows_in", 0)),
            extra={"bronze_versions": [None if done is None else done + 1, latest]},
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
    target: str,
    quarantine: str,
) -> dict[str, Any]:
    spark, run_id = job.spark, job.ctx.run_id
    keep = [spec.sequence_by] if spec.sequence_by and spec.sequence_by not in spec.columns else []
    required = [*spec.keys, *([spec.sequence_by] if spec.sequence_by else [])]
    conformed = rows.transform(conform(spec.columns, required, keep)).cache()
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
        with job.recorder.step("gate"):  # fails here, before any write
            gate = run_gate(job, "silver", table, conformed.where(F.col(REASON).isNull()))
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
            written = _write_kind(job, spec, good, target, quarantine)
        applied = written.pop("rows_applied")
        written["rows_quarantined"] = rejected + written.get("rows_quarantined", 0)
        # rows that changed nothing: exact duplicates, or older than what is stored
        written["duplicates_skipped"] = rows_in - written["rows_quarantined"] - applied
        return {"rows_in": rows_in, **written}
    finally:
        conformed.unpersist()


def _write_kind(
    job: JobEnv, spec: SilverTableSpec, good: DataFrame, target: str, quarantine: str
) -> dict[str, Any]:
    spark = job.spark
    if spec.kind == "scd2":
        assert spec.sequence_by is not None  # checked by the config model's users
        result = apply_changes(
            spark,
            good,
            target,
            keys=spec.keys,
            sequence_by=spec.sequence_by,
            apply_as_deletes=spec.deletes,
            except_columns=spec.except_columns,
            track_history_except_columns=spec.track_history_except_columns,
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
            "version": result.version,
            "scd2": {
                "events_new": result.events_new,
                "duplicates_skipped": result.duplicates_skipped,
                "keys_affected": result.keys_affected,
                "versions_inserted": result.rows_inserted,
                "versions_closed": result.rows_closed,
                "versions_updated": result.rows_updated,
                "versions_deleted": result.rows_deleted,
            },
        }
    if spec.kind == "latest":
        assert spec.sequence_by is not None
        commit = delta_io.merge_latest(
            spark,
            good,
            target,
            keys=spec.keys,
            order_by=spec.sequence_by,
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
    return {
        "rows_written": commit.rows_written,
        "rows_applied": commit.rows_written,
        "version": commit.version,
    }
