"""``make bench``: benchmarks reported as ratios against a baseline measured in the same run.

Baseline B: a plain Parquet write of the same rows (the generated behaviour events,
cached in memory so neither side pays for reading or parsing). Later layers report
their figures against B.

    python -m tests.benchmarks.run [--rows N] [--repeats K]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from jobs.common.config import load_settings
from jobs.common.paths import resolve_lake_paths
from jobs.common.spark import build_spark_session, runtime_versions
from jobs.datagen.generator import BASE_VOLUMES, GeneratorParams, generate
from tests.benchmarks.bronze import bench_bronze
from tests.benchmarks.gold import bench_gold, gold_fixed_cost, gold_growth
from tests.benchmarks.plot import draw, ratios
from tests.benchmarks.quality import bench_quality
from tests.benchmarks.scd2 import bench_scd2, scd2_fixed_cost, scd2_growth
from tests.benchmarks.snapshot import bench_snapshot

EVENT_SCHEMA = (
    "event_id STRING, customer_id STRING, session_id STRING, event_type STRING, "
    "event_ts TIMESTAMP, device STRING, page STRING"
)
# what a run can measure besides B; the figure is drawn only from a run of all of them
PARTS = ("quality", "bronze", "scd2", "gold", "growth", "fixed", "snapshot")


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def generate_events(rows: int, folder: Path) -> tuple[Path, float]:
    """Write one generated day with at least ``rows`` events; returns the file and seconds."""
    scale = rows / BASE_VOLUMES["events"] * 1.03  # head-room for malformed lines
    start = time.perf_counter()
    day = next(iter(generate(GeneratorParams(seed=1, scale=scale, days=1))))
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "events.jsonl"
    target.write_text("\n".join(day.raw_lines["events.behaviour"]) + "\n", encoding="utf-8")
    return target, time.perf_counter() - start


def load_rows(spark: SparkSession, source: Path, rows: int) -> DataFrame:
    frame = (
        spark.read.schema(EVENT_SCHEMA)
        .option("mode", "DROPMALFORMED")
        .json(str(source))
        .where("event_id IS NOT NULL AND event_ts IS NOT NULL")
        .limit(rows)
        .cache()
    )
    found = frame.count()
    if found != rows:
        raise SystemExit(f"benchmark input: expected {rows:,} valid events, found {found:,}")
    return frame


def _append_delta(spark: SparkSession, frame: DataFrame, target: Path, stats: bool) -> float:
    frame.limit(0).write.format("delta").save(str(target))  # an existing, empty table
    spark.conf.set("spark.databricks.delta.stats.collect", str(stats).lower())
    try:
        return timed(lambda: frame.write.format("delta").mode("append").save(str(target)))
    finally:
        spark.conf.unset("spark.databricks.delta.stats.collect")


def bench_delta_vs_parquet(
    spark: SparkSession, frame: DataFrame, work: Path, repeats: int
) -> dict[str, object]:
    """Median seconds of each write; one unmeasured warm-up round first."""
    runs: dict[str, list[float]] = {"parquet": [], "delta": [], "delta_no_stats": []}
    for n in range(repeats + 1):
        round_s = {
            "parquet": timed(lambda p=work / f"parquet_{n}": frame.write.parquet(str(p))),
            "delta": _append_delta(spark, frame, work / f"delta_{n}", stats=True),
            "delta_no_stats": _append_delta(spark, frame, work / f"nostats_{n}", stats=False),
        }
        shutil.rmtree(work)
        if n:  # round 0 warms the JVM up
            for name, seconds in round_s.items():
                runs[name].append(seconds)
    median = {name: statistics.median(values) for name, values in runs.items()}
    return {
        "baseline_parquet_write_s": round(median["parquet"], 3),
        "delta_append_s": round(median["delta"], 3),
        "delta_append_over_parquet": round(median["delta"] / median["parquet"], 3),
        "diagnostic_delta_append_no_stats_s": round(median["delta_no_stats"], 3),
        "diagnostic_no_stats_over_parquet": round(median["delta_no_stats"] / median["parquet"], 3),
        "runs_s": {name: [round(x, 3) for x in values] for name, values in runs.items()},
    }


def _settle(spark: SparkSession) -> None:
    """Start each part from the same state: nothing cached, the driver's heap collected."""
    spark.catalog.clearCache()
    jvm = spark._jvm
    assert jvm is not None
    jvm.java.lang.System.gc()


def main() -> int:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma list of: {', '.join(PARTS)} (B always runs; the figure is drawn "
        "only when every part ran)",
    )
    parser.add_argument(
        "--figure",
        type=Path,
        default=Path("docs/benchmarks.png"),
        help="where the PNG of ratios and growth curves goes",
    )
    parser.add_argument("--customers", type=int, default=100_000, help="gold benchmark size")
    args = parser.parse_args()

    settings = load_settings("local")
    paths = resolve_lake_paths(settings)
    work = Path(paths.root) / "bench"
    shutil.rmtree(work, ignore_errors=True)
    source, gen_s = generate_events(args.rows, work / "input")
    spark = build_spark_session(settings, paths, app_name="lakehouse:bench")
    frame = load_rows(spark, source, args.rows)
    results: dict[str, object] = {
        "rows": args.rows,
        "repeats": args.repeats,
        "generate_s": round(gen_s, 3),
        "runtime": runtime_versions(spark),
        "cores": spark.sparkContext.defaultParallelism,
        "delta_vs_parquet": bench_delta_vs_parquet(spark, frame, work / "out", args.repeats),
    }
    dvp = results["delta_vs_parquet"]
    assert isinstance(dvp, dict)
    parts = set(args.parts.split(","))
    if "quality" in parts:
        results["quality"] = bench_quality(spark, frame, work / "quality", args.repeats)
    frame.unpersist()
    baseline = float(dvp["baseline_parquet_write_s"])
    if "bronze" in parts:
        _settle(spark)
        results["bronze"] = bench_bronze(spark, settings, work / "bronze", args.rows, baseline)
    if "scd2" in parts:
        _settle(spark)
        results["scd2"] = bench_scd2(spark, work / "scd2", args.rows, baseline)
    if "gold" in parts:
        _settle(spark)
        results["gold"] = bench_gold(spark, settings, work / "gold", args.customers, baseline)
    if "fixed" in parts:  # small batches in a warm session: the per-job floor
        _settle(spark)
        results["fixed"] = {
            "scd2": scd2_fixed_cost(spark, work / "scd2_fixed", 100_000),
            "gold": gold_fixed_cost(spark, settings, work / "gold_fixed", 1_091),
        }
    if "growth" in parts:
        _settle(spark)  # a fixed-size change against a table 1x and 4x as large
        results["growth"] = {
            "SCD2 (10k keys changed)": scd2_growth(
                spark, work / "scd2_growth", (args.rows // 4, args.rows)
            ),
            "Gold (1,000 customers touched)": gold_growth(
                spark, settings, work / "gold_growth", (args.customers // 4, args.customers), 1_000
            ),
        }
    if "snapshot" in parts:  # snapshot change capture on PostgreSQL: the full-read price
        _settle(spark)
        results["snapshot"] = bench_snapshot(spark, work / "snapshot", args.rows)
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"rows: {args.rows:,} behaviour events (generated in {gen_s:.1f}s), "
        f"{args.repeats} repeats, medians"
    )
    print(f"  B  plain Parquet write   {dvp['baseline_parquet_write_s']:>7.2f}s")
    print(
        f"     Delta append          {dvp['delta_append_s']:>7.2f}s   "
        f"ratio {dvp['delta_append_over_parquet']:.2f} x B"
    )
    print(
        "     Delta append, no file stats (diagnostic) "
        f"{dvp['diagnostic_delta_append_no_stats_s']:.2f}s   "
        f"ratio {dvp['diagnostic_no_stats_over_parquet']:.2f} x B"
    )
    quality = results.get("quality")
    if isinstance(quality, dict):
        _print_quality(quality)
    bronze = results.get("bronze")
    if isinstance(bronze, dict):
        _print_bronze(args.rows, bronze)
    scd2 = results.get("scd2")
    if isinstance(scd2, dict):
        _print_scd2(scd2)
    gold = results.get("gold")
    if isinstance(gold, dict):
        _print_gold(gold)
    growth = results.get("growth")
    if isinstance(growth, dict):
        _print_growth(growth)
    fixed = results.get("fixed")
    if isinstance(fixed, dict):
        _print_fixed(fixed)
    snapshot = results.get("snapshot")
    if isinstance(snapshot, dict):
        _print_snapshot(snapshot)
    print("Ratios against their aims:")
    for ratio in ratios(results):
        verdict = "met" if ratio.met else "NOT MET"
        print(f"     {ratio.label:<48} {ratio.value:>6.3f}  aim <= {ratio.aim:<5}  {verdict}")
    print(f"results: {work / 'results.json'}")
    if parts >= set(PARTS):
        print(f"figure:  {draw(results, args.figure)}")
    else:  # a partial run would replace the committed figure with a partial one
        print(f"figure:  not redrawn (parts left out: {', '.join(sorted(set(PARTS) - parts))})")
    return 0


def _print_snapshot(snapshot: dict[str, Any]) -> None:
    print(
        f"  Snapshot CDC, {snapshot['rows']:,} rows in PostgreSQL "
        f"(full extract to Parquet {snapshot['full_extract_to_parquet_s']:.2f}s)"
    )
    print(
        f"     first run             {snapshot['first_run_s']:>7.2f}s   "
        f"{snapshot['first_rows_written']:,} upserts"
    )
    print(
        f"     1% changed, 0.1% deleted {snapshot['changed_run_s']:>6.2f}s   "
        f"{snapshot['changed_rows_written']:,} events, "
        f"ratio {snapshot['changed_over_full_extract']:.2f} x the full extract   "
        f"steps {snapshot['changed_steps_s']}"
    )
    print(
        f"     nothing changed       {snapshot['unchanged_run_s']:>7.2f}s   "
        f"ratio {snapshot['unchanged_over_full_extract']:.2f} x the full extract"
    )


def _print_fixed(fixed: dict[str, Any]) -> None:
    scd2, gold = fixed["scd2"], fixed["gold"]
    print("Fixed cost of small batches (warm session; aim <= 4 s each):")
    print(
        f"     SCD2, 100 keys changed in a {scd2['dimension_rows']:,}-key dimension "
        f"{scd2['seconds']:.2f}s (median of {scd2['runs_s']})"
    )
    floor = scd2["delta_floor_100_rows"]
    print(
        f"       Spark jobs per run {scd2['spark_jobs']}; the target's MERGE "
        f"{scd2['target_merge_s']}s; Delta alone on that target: a MERGE of 100 rows "
        f"{floor['merge_s']:.2f}s, an append of them {floor['append_s']:.2f}s"
    )
    print(
        f"     Gold job, {gold['customers']:,} customers: full build {gold['full_build_s']:.2f}s, "
        f"same-day refresh {gold['same_day_refresh_s']:.2f}s, next day {gold['next_day_s']:.2f}s"
    )
    for run, steps in gold["steps_s"].items():
        listed = ", ".join(f"{name} {s:.2f}" for name, s in steps.items())
        print(f"       {run} ({gold['spark_jobs'][run]} Spark jobs) steps (s): {listed}")


def _print_growth(growth: dict[str, Any]) -> None:
    print("How cost grows (the same change, tables 1x and 4x as large):")
    for name, data in growth.items():
        sizes = next(v for k, v in data.items() if k.startswith("seconds_by_"))
        points = ", ".join(f"{int(k):,}: {v:.2f}s" for k, v in sizes.items())
        print(f"     {name:<32} {points}   growth {data['growth']:.2f}x")


def _print_quality(quality: dict[str, Any]) -> None:
    print(
        f"Quality gate ({quality['checks']} checks incl. unique and a foreign key, "
        f"{quality['rows_checked']:,} rows):"
    )
    print(
        f"     gate                  {quality['gate_s']:>7.2f}s   "
        f"(first call, GX set-up included: {quality['gate_first_call_s']:.2f}s; "
        f"GX validation {quality['diagnostic_gx_validation_s']:.2f}s, "
        f"foreign key {quality['diagnostic_foreign_key_s']:.2f}s)"
    )
    print(
        f"     vs Delta append       {quality['delta_append_s']:>7.2f}s   "
        f"ratio {quality['gate_over_delta_append']:.2f}"
    )
    print(
        f"     vs Silver insert_new  {quality['silver_insert_new_s']:>7.2f}s   "
        f"ratio {quality['gate_over_silver_write']:.2f}"
    )


def _print_gold(gold: dict[str, Any]) -> None:
    print(f"Gold customer_360 ({gold['customers']:,} customers, end-to-end job runs):")
    print(
        f"     full build            {gold['full_build_s']:>7.2f}s   "
        f"ratio {gold['full_build_over_B']:.2f} x B   "
        f"(first in the process: {gold['full_build_cold_s']:.2f}s)"
    )
    print(
        f"     {gold['customers_touched']:,} customers touched {gold['incremental_s']:>5.2f}s   "
        f"ratio {gold['incremental_over_full']:.3f} x full "
        f"({gold['incremental_recomputed']:,} recomputed, "
        f"{gold['incremental_rows_updated']:,} rows changed)"
    )
    print(
        f"     no-change rerun       {gold['no_change_rerun_s']:>7.2f}s   "
        f"ratio {gold['no_change_over_full']:.3f} x full ({gold['no_change_mode']})"
    )
    print(
        f"     next day, {gold['customers_touched']:,} touched {gold['next_day_s']:>5.2f}s   "
        f"ratio {gold['next_day_over_full']:.3f} x full "
        f"({gold['next_day_recomputed']:,} recomputed, "
        f"{gold['next_day_rows_updated']:,} rows changed)"
    )
    for run in ("full", "incremental", "next_day"):
        steps = ", ".join(f"{k} {v:.2f}" for k, v in gold[f"{run}_steps_s"].items())
        print(f"       {run} steps (s): {steps}")


def _print_bronze(rows: int, bronze: dict[str, Any]) -> None:
    print(f"Bronze (events file stream, {rows:,} rows, end-to-end job runs):")
    print(
        f"     initial load          {bronze['initial_load_s']:>7.2f}s   "
        f"ratio {bronze['initial_load_over_B']:.2f} x B "
        f"({bronze['initial_rows_written']:,} written, "
        f"{bronze['initial_rows_quarantined']:,} quarantined)"
    )
    print(
        f"     +1% incremental       {bronze['incremental_1pct_s']:>7.2f}s   "
        f"ratio {bronze['incremental_over_initial']:.3f} x initial"
    )
    steps = ", ".join(f"{k} {v:.2f}" for k, v in bronze["incremental_steps_s"].items())
    print(f"       its steps (s): {steps}")
    print(
        f"     no-change rerun       {bronze['no_change_rerun_s']:>7.2f}s   "
        f"ratio {bronze['no_change_over_initial']:.3f} x initial"
    )


def _print_scd2(scd2: dict[str, Any]) -> None:
    print(f"SCD2 apply_changes ({scd2['dimension_rows']:,}-row dimension) vs the canonical MERGE:")
    print(
        f"     initial build         {scd2['initial_build_s']:>7.2f}s   "
        f"ratio {scd2['initial_build_over_B']:.2f} x B"
    )
    print(
        f"     {scd2['changed_keys']:,} changed keys   {scd2['change_batch_s']:>7.2f}s   "
        f"canonical {scd2['canonical_change_batch_s']:.2f}s   "
        f"ratio {scd2['change_batch_over_canonical']:.2f} x canonical (aim <= 1.5; "
        f"median of {scd2['rounds']}; {scd2['versions_inserted']:,} opened, "
        f"{scd2['versions_closed']:,} closed; tables equal: {scd2['tables_equal_after_rounds']})"
    )
    print(
        f"     files: {scd2['target_files_with_changed_keys']} of {scd2['target_files_total']} "
        f"hold changed keys; MERGE removed {scd2['target_files_removed']}, added "
        f"{scd2['target_files_added']}, deletion vectors {scd2['target_deletion_vectors_added']}"
    )
    print(
        f"     replay (no-op)        {scd2['replay_s']:>7.2f}s   "
        f"canonical {scd2['canonical_replay_s']:.2f}s   "
        f"ratio {scd2['replay_over_canonical_replay']:.2f} x canonical replay, "
        f"{scd2['replay_over_canonical_change']:.2f} x canonical change (aim <= 0.5; "
        f"committed: {scd2['replay_committed']})"
    )


if __name__ == "__main__":
    raise SystemExit(main())
