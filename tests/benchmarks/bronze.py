"""Bronze benchmark: the file-drop stream of behaviour events through the real ingest job.

Initial load of N rows, an incremental run with 1% new rows, and a rerun with nothing
new, each timed end to end (job start to summary) in one Spark session.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

from pyspark.sql import SparkSession

from jobs.common.config import Settings
from jobs.common.paths import LakePaths
from jobs.common.run_context import RunContext, RunSummary
from jobs.datagen.generator import BASE_VOLUMES, GeneratorParams, generate
from jobs.datagen.simulator import drop_file
from jobs.runner import execute

JOB = "bronze.events_behaviour"


def _events_file(target: Path, rows: int, seed: int) -> Path:
    scale = rows / BASE_VOLUMES["events"]
    day = next(
        iter(
            generate(
                GeneratorParams(
                    seed=seed, scale=scale, days=1, malformed_rate=0.01, duplicate_rate=0.0
                )
            )
        )
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(day.raw_lines["events.behaviour"]) + "\n", encoding="utf-8")
    return target


def _run(
    spark: SparkSession, settings: Settings, lake: LakePaths, attempt: int
) -> tuple[float, RunSummary]:
    start = time.perf_counter()
    summary = execute(RunContext(JOB, "local", date(2026, 1, 1), attempt), settings, lake, spark)
    return time.perf_counter() - start, summary


def bench_bronze(
    spark: SparkSession, settings: Settings, work: Path, rows: int, baseline_s: float
) -> dict[str, object]:
    """Initial, 1% incremental and no-change runs; ratios to the initial load and to B."""
    lake = LakePaths(str(work / "home"))
    lake.ensure_local_layout()
    initial_file = _events_file(work / "staging" / "behaviour_initial.jsonl", rows, seed=11)
    delta_file = _events_file(work / "staging" / "behaviour_increment.jsonl", rows // 100, seed=12)
    landing = Path(lake.landing) / "events"
    drop_file(initial_file, landing)
    initial_s, initial = _run(spark, settings, lake, 1)
    drop_file(delta_file, landing)
    incremental_s, incremental = _run(spark, settings, lake, 2)
    quiet_s, quiet = _run(spark, settings, lake, 3)
    return {
        "initial_rows_written": initial.rows_out,
        "initial_rows_quarantined": initial.rows_quarantined,
        "initial_load_s": round(initial_s, 3),
        "incremental_rows_written": incremental.rows_out,
        "incremental_1pct_s": round(incremental_s, 3),
        "incremental_over_initial": round(incremental_s / initial_s, 3),
        "incremental_steps_s": incremental.steps,
        "initial_steps_s": initial.steps,
        "no_change_rerun_s": round(quiet_s, 3),
        "no_change_over_initial": round(quiet_s / initial_s, 3),
        "no_change_rows_written": quiet.rows_out,
        "initial_load_over_B": round(initial_s / baseline_s, 3),
    }
