"""SCD2 benchmark: ``apply_changes`` against Delta's documented SCD2 MERGE on the same data.

The dimension (1M keys by default, one version each) is built by ``apply_changes``
itself and copied, with the same table properties, to the peer: the canonical recipe
(``scd2_canonical``). Then, in 5 rounds, a batch changes a tracked column of 1%
of the keys (random keys, so spread over all files) and both apply it; after the rounds
the two tables must be equal, row for row. Then the last batch again (a replay).
Reported: medians of the rounds, our time as a ratio of the peer's, the files holding
changed keys vs the files the MERGE rewrote (or marked with deletion vectors).

Growth: the same 10k-key change applied to a dimension 1x and 4x as large (``rows/4``
and ``rows`` keys): a cost that follows the change, not the table, grows little.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.common.delta_io import read_table
from jobs.silver.scd2 import TARGET_PROPERTIES, ApplyChangesResult, apply_changes
from tests.benchmarks.probe import spark_jobs
from tests.benchmarks.scd2_canonical import canonical_scd2_merge

KEYS, SEQUENCE = ["customer_id"], "seq"
TRACKED = ["name", "tier", "country", "lifetime_value"]
TIERS = ["silver", "gold", "platinum", "diamond", "iron"]


def _events(
    spark: SparkSession, keys: int, seq: int, tier: str, sample: float | None, seed: int = 7
) -> DataFrame:
    frame = spark.range(keys).select(
        F.format_string("K%08d", "id").alias("customer_id"),
        F.lit(seq).alias(SEQUENCE),
        F.concat(F.lit("name-"), (F.col("id") % 9973).cast("string")).alias("name"),
        F.lit(tier).alias("tier"),
        F.element_at(
            F.array(*[F.lit(c) for c in ("GB", "FR", "US", "JP")]),
            (F.col("id") % 4 + 1).cast("int"),
        ).alias("country"),
        (F.col("id") % 5000).cast("decimal(12,2)").alias("lifetime_value"),
    )
    return frame.sample(fraction=sample, seed=seed) if sample else frame


def _timed(action: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def _ours(spark: SparkSession, events: DataFrame, target: str) -> ApplyChangesResult:
    return apply_changes(spark, events, target, keys=KEYS, sequence_by=SEQUENCE)


def _peer(spark: SparkSession, events: DataFrame, target: str) -> None:
    canonical_scd2_merge(spark, events, target, keys=KEYS, sequence_by=SEQUENCE, tracked=TRACKED)


def _copy(spark: SparkSession, source: str, target: str) -> None:
    writer = read_table(spark, source).write.format("delta")
    for key, value in TARGET_PROPERTIES.items():
        writer = writer.option(key, value)
    writer.save(target)


def _differences(spark: SparkSession, ours: str, peer: str) -> int:
    a, b = read_table(spark, ours), read_table(spark, peer)
    return a.exceptAll(b.select(*a.columns)).count() + b.select(*a.columns).exceptAll(a).count()


def _file_counts(spark: SparkSession, target: str, changed: DataFrame) -> tuple[int, int]:
    stored = read_table(spark, target)
    total = stored.select(F.input_file_name()).distinct().count()
    holding = (
        stored.join(changed.select(*KEYS), KEYS, "left_semi")
        .select(F.input_file_name())
        .distinct()
        .count()
    )
    return total, holding


GROWTH_KEYS = 10_000


@dataclass(frozen=True)
class TimedChange:
    seconds: float
    spark_jobs: int
    result: ApplyChangesResult


def _timed_changes(
    spark: SparkSession, target: str, rows: int, changed: int, rounds: int
) -> list[TimedChange]:
    """Build a ``rows``-key dimension, then time ``rounds`` changes of ``changed`` keys each
    (spread over the key space)."""
    _ours(spark, _events(spark, rows, 1, "bronze", None), target)
    step = rows // changed
    runs = []
    for n in range(1, rounds + 1):
        batch = (
            _events(spark, rows, 1 + n, TIERS[n % len(TIERS)], None)
            .where(F.substring("customer_id", 2, 8).cast("long") % step == n)
            .cache()
        )
        batch.count()
        jobs = spark_jobs(spark)
        seconds, result = _timed(partial(_ours, spark, batch, target))
        assert isinstance(result, ApplyChangesResult)
        runs.append(TimedChange(seconds, spark_jobs(spark) - jobs, result))
        batch.unpersist()
    return runs


def _delta_floor(spark: SparkSession, target: str, scratch: str, rows: int) -> dict[str, float]:
    """What Delta alone charges for a change of ``rows`` rows to ``target``: one MERGE
    updating that many current rows (matched on key and ``valid_from``, as ours is), and
    an append of them to a table of their own; seconds, the floor under any SCD2 engine
    on Delta."""
    source = read_table(spark, target).where("valid_to IS NULL").limit(rows).localCheckpoint()
    merge_s, _ = _timed(
        lambda: DeltaTable.forPath(spark, target).alias("t")
        .merge(source.alias("s"), "t.customer_id = s.customer_id AND t.valid_from = s.valid_from")
        .whenMatchedUpdate(set={"name": "s.name"})
        .execute()
    )  # fmt: skip
    append_s, _ = _timed(lambda: source.write.format("delta").mode("append").save(scratch))
    return {"merge_s": round(merge_s, 3), "append_s": round(append_s, 3)}


def scd2_growth(
    spark: SparkSession, work: Path, sizes: tuple[int, ...], rounds: int = 2
) -> dict[str, object]:
    """The same-size change (:data:`GROWTH_KEYS` keys, spread over the key space) applied to
    dimensions of each size; median seconds per size and the largest over the smallest."""
    seconds: dict[int, float] = {}
    for size in sizes:
        runs = _timed_changes(spark, str(work / f"growth_{size}"), size, GROWTH_KEYS, rounds)
        seconds[size] = statistics.median(run.seconds for run in runs)
    smallest, largest = min(sizes), max(sizes)
    return {
        "change_keys": GROWTH_KEYS,
        "seconds_by_rows": {str(k): round(v, 3) for k, v in seconds.items()},
        "growth": round(seconds[largest] / seconds[smallest], 3),
        "size_ratio": largest // smallest,
    }


def bench_scd2(
    spark: SparkSession, work: Path, rows: int, baseline_s: float, rounds: int = 5
) -> dict[str, object]:
    """Initial build; ``rounds`` 1% change batches, ours and the peer's; a replay; growth."""
    target, peer = str(work / "dim_customer"), str(work / "canonical")
    everyone = _events(spark, rows, 1, "bronze", None)
    initial_s, initial = _timed(lambda: _ours(spark, everyone, target))
    _copy(spark, target, peer)
    ours_s: list[float] = []
    peer_s: list[float] = []
    change: ApplyChangesResult | None = None
    batch: DataFrame | None = None
    files = (0, 0)
    for n in range(1, rounds + 1):
        if batch is not None:
            batch.unpersist()
        batch = _events(spark, rows, 1 + n, TIERS[n % len(TIERS)], 0.01, seed=n).cache()
        batch.count()
        if n == 1:
            files = _file_counts(spark, target, batch)
        # alternate who goes first, so neither always runs on a warmer JVM
        for who in ("ours", "peer") if n % 2 else ("peer", "ours"):
            if who == "ours":
                seconds, result = _timed(partial(_ours, spark, batch, target))
                assert isinstance(result, ApplyChangesResult)
                change = result
                ours_s.append(seconds)
            else:
                peer_s.append(_timed(partial(_peer, spark, batch, peer))[0])
    assert batch is not None and change is not None
    differences = _differences(spark, target, peer)
    if differences:
        raise SystemExit(
            f"SCD2 benchmark: ours and the canonical recipe differ: {differences} rows"
        )
    replay_s, replay = _timed(lambda: _ours(spark, batch, target))
    peer_replay_s, _ = _timed(lambda: _peer(spark, batch, peer))
    assert isinstance(replay, ApplyChangesResult) and isinstance(initial, ApplyChangesResult)
    changed_keys = batch.count()
    batch.unpersist()
    ours_median, peer_median = statistics.median(ours_s), statistics.median(peer_s)
    metrics = change.operation_metrics
    return {
        "dimension_rows": rows,
        "initial_build_s": round(initial_s, 3),
        "initial_build_over_B": round(initial_s / baseline_s, 3),
        "initial_versions": initial.rows_inserted,
        "changed_keys": changed_keys,
        "rounds": rounds,
        "change_batch_s": round(ours_median, 3),
        "canonical_change_batch_s": round(peer_median, 3),
        "change_batch_over_canonical": round(ours_median / peer_median, 3),
        "change_batch_over_B": round(ours_median / baseline_s, 3),
        "runs_s": {
            "ours": [round(x, 3) for x in ours_s],
            "canonical": [round(x, 3) for x in peer_s],
        },
        "tables_equal_after_rounds": differences == 0,
        "versions_inserted": change.rows_inserted,
        "versions_closed": change.rows_closed,
        "target_files_total": files[0],
        "target_files_with_changed_keys": files[1],
        "target_files_removed": int(metrics.get("numTargetFilesRemoved", 0)),
        "target_files_added": int(metrics.get("numTargetFilesAdded", 0)),
        "target_deletion_vectors_added": int(metrics.get("numTargetDeletionVectorsAdded", 0)),
        "replay_s": round(replay_s, 3),
        "canonical_replay_s": round(peer_replay_s, 3),
        "replay_over_canonical_replay": round(replay_s / peer_replay_s, 3),
        "replay_over_canonical_change": round(replay_s / peer_median, 3),
        "replay_committed": replay.committed,
    }


def scd2_fixed_cost(
    spark: SparkSession, work: Path, rows: int, rounds: int = 3
) -> dict[str, object]:
    """Seconds of ``apply_changes`` for a change of 100 keys on a ``rows``-key dimension,
    warm (the session has run the other parts): the fixed cost of a small Silver batch."""
    target = str(work / "fixed")
    runs = _timed_changes(spark, target, rows, 100, rounds)
    merge_ms = [int(run.result.operation_metrics.get("executionTimeMs", 0)) for run in runs]
    return {
        "dimension_rows": rows,
        "changed_keys": 100,
        "runs_s": [round(run.seconds, 3) for run in runs],
        "seconds": round(statistics.median(run.seconds for run in runs), 3),
        "spark_jobs": [run.spark_jobs for run in runs],
        "target_merge_s": [round(ms / 1000, 3) for ms in merge_ms],
        # measured after the rounds, on the same target
        "delta_floor_100_rows": _delta_floor(spark, target, str(work / "append_probe"), 100),
    }
