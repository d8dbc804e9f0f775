from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from chispa import assert_df_equality
from pyspark.sql import SparkSession

from jobs.common.config import Settings
from jobs.common.delta_io import read_table
from jobs.common.paths import LakePaths
from jobs.common.run_context import RunContext, RunSummary
from jobs.datagen.simulator import drop_file
from jobs.runner import execute

JOB = "bronze.events_behaviour"
SCHEMA = (
    "event_id STRING, customer_id STRING, session_id STRING, event_type STRING, "
    "event_ts TIMESTAMP, device STRING, page STRING"
)


def event(n: int, ts: str = "2026-01-01T10:00:00.000Z") -> str:
    return json.dumps(
        {
            "event_id": f"e-{n}",
            "customer_id": "C-1",
            "session_id": "C-1-s",
            "event_type": "page_view",
            "event_ts": ts,
            "device": "mobile",
            "page": "/p/1",
        }
    )


def land(lake: LakePaths, name: str, lines: list[str]) -> None:
    staging = Path(lake.root) / "staging" / name
    staging.parent.mkdir(parents=True, exist_ok=True)
    staging.write_text("\n".join(lines) + "\n")
    drop_file(staging, Path(lake.landing) / "events")


def run(spark: SparkSession, settings: Settings, lake: LakePaths, day: int) -> RunSummary:
    return execute(RunContext(JOB, "local", dt.date(2026, 1, day)), settings, lake, spark)


def test_redelivered_events_land_once_and_bad_lines_are_quarantined(
    spark: SparkSession, settings: Settings, lake: LakePaths
) -> None:
    land(
        lake,
        "behaviour_1.jsonl",
        [
            event(1),
            event(2),
            event(2),
            '{"event_id": "e-9", "cus',
            json.dumps({"customer_id": "C-1"}),
        ],
    )
    first = run(spark, settings, lake, 1)
    land(lake, "behaviour_2.jsonl", [event(2), event(3, "yesterday-ish")])
    second = run(spark, settings, lake, 2)
    bronze = read_table(spark, lake.table("bronze", "events_behaviour")).select(
        "event_id", "customer_id", "session_id", "event_type", "event_ts", "device", "page"
    )
    ten = dt.datetime(2026, 1, 1, 10)
    expected = spark.createDataFrame(
        [(f"e-{n}", "C-1", "C-1-s", "page_view", ten, "mobile", "/p/1") for n in (1, 2)], SCHEMA
    )
    assert_df_equality(bronze, expected, ignore_row_order=True, ignore_nullable=True)
    quarantine = read_table(spark, lake.table("_quarantine", "bronze_events_behaviour"))
    assert sorted(r._reason for r in quarantine.collect()) == [
        "event_id is required; event_type is required; event_ts is required",
        "event_ts is not a timestamp: 'yesterday-ish'",
        "not a JSON object",
    ]
    assert (first.rows_in, first.rows_out, first.rows_quarantined) == (5, 2, 2)
    assert (
        second.rows_in,
        second.rows_out,
        second.rows_quarantined,
        second.outputs[0].extra["duplicates_skipped"],
    ) == (2, 0, 1, 1)
