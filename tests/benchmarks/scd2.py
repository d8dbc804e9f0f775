"""SCD2 benchmark: 10k changed keys MERGEd into a 1M-row dimension by ``apply_changes``.

The dimension is built by ``apply_changes`` itself (one version per key), then a batch
changes a tracked column of 1% of the keys (random keys, so spread over all files).
Reported: the change batch's time as a ratio of B, the files holding changed keys vs
the files the MERGE rewrote (or marked with deletion vectors), and the replay time.
"""

from __future__ import annotations

import time
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.common.delta_io import read_table
from jobs.silver.scd2 import apply_changes


def _events(spark: SparkSession, keys: int, seq: int, tier: str, sample: float | None) -> DataFrame:
    frame = spark.range(keys).select(
        F.format_string("K%08d", "id").alias("customer_id"),
        F.lit(seq).alias("seq"),
        F.concat(F.lit("name-"), (F.col("id") % 9973).cast("string")).alias("name"),
        F.lit(tier).alias("tier"),
        F.element_at(
            F.array(*[F.lit(c) for c in ("GB", "FR", "US", "JP")]),
            (F.col("id") % 4 + 1).cast("int"),
        ).alias("country"),
        (F.col("id") % 5000).cast("decimal(12,2)").alias("lifetime_value"),
    )
    return frame.sample(fraction=sample, seed=7) if sample else frame


def _apply(spark: SparkSession, events: DataFrame, target: str) -> tuple[float, object]:
    start = time.perf_counter()
    result = apply_changes(spark, events, target, keys=["customer_id"], sequence_by="seq")
    return time.perf_counter() - start, result


def bench_scd2(spark: SparkSession, work: Path, rows: int, baseline_s: float) -> dict[str, object]:
    """Initial build, 1% change batch, and its replay; ratios to B."""
    target = str(work / "dim_customer")
    initial_s, initial = _apply(spark, _events(spark, rows, 1, "bronze", None), target)
    changed = _events(spark, rows, 2, "silver", 0.01).cache()
    changed_keys = changed.count()
    stored = read_table(spark, target)
    total_files = stored.select(F.input_file_name()).distinct().count()
    files_with_changed = (
        stored.join(changed.select("customer_id"), "customer_id", "left_semi")
        .select(F.input_file_name())
        .distinct()
        .count()
    )
    change_s, change = _apply(spark, changed, target)
    replay_s, replay = _apply(spark, changed, target)
    changed.unpersist()
    metrics = getattr(change, "operation_metrics", {})
    return {
        "dimension_rows": rows,
        "initial_build_s": round(initial_s, 3),
        "initial_build_over_B": round(initial_s / baseline_s, 3),
        "changed_keys": changed_keys,
        "change_batch_s": round(change_s, 3),
        "change_batch_over_B": round(change_s / baseline_s, 3),
        "versions_inserted": getattr(change, "rows_inserted", None),
        "versions_closed": getattr(change, "rows_closed", None),
        "target_files_total": total_files,
        "target_files_with_changed_keys": files_with_changed,
        "target_files_removed": int(metrics.get("numTargetFilesRemoved", 0)),
        "target_files_added": int(metrics.get("numTargetFilesAdded", 0)),
        "target_deletion_vectors_added": int(metrics.get("numTargetDeletionVectorsAdded", 0)),
        "replay_s": round(replay_s, 3),
        "replay_over_B": round(replay_s / baseline_s, 3),
        "replay_committed": getattr(replay, "committed", None),
        "initial_versions": getattr(initial, "rows_inserted", None),
    }
