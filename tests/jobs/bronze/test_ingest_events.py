from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from jobs.bronze import stream_ingest
from jobs.common.config import Settings, load_settings
from jobs.common.delta_io import read_table, table_exists
from jobs.common.errors import QualityGateError
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


@pytest.mark.parametrize(("window_days", "landed_again"), [(7, True), (30, False)])
def test_redelivery_is_looked_for_within_the_dedup_window_only(
    spark: SparkSession,
    lake: LakePaths,
    monkeypatch: pytest.MonkeyPatch,
    window_days: int,
    landed_again: bool,
) -> None:
    settings = load_settings(
        "local",
        environ={"LAKEHOUSE__SOURCES__EVENTS__OPTIONS__DEDUP_WINDOW_DAYS": str(window_days)},
    )
    land(lake, "behaviour_1.jsonl", [event(1)])
    run(spark, settings, lake, 1)
    later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=10)
    monkeypatch.setattr(stream_ingest, "utc_now", lambda: later)
    land(lake, "behaviour_2.jsonl", [event(1)])
    second = run(spark, settings, lake, 11)
    ids = [
        r.event_id for r in read_table(spark, lake.table("bronze", "events_behaviour")).collect()
    ]
    assert ids == ["e-1", "e-1"] if landed_again else ["e-1"]
    assert second.outputs[0].extra["duplicates_skipped"] == (0 if landed_again else 1)


def test_the_bronze_gate_quarantines_by_rule_and_reports_before_the_append(
    spark: SparkSession, settings: Settings, lake: LakePaths
) -> None:
    bad_type = json.loads(event(2))
    bad_type["event_type"] = "Page View!"
    odd_device = json.loads(event(3))
    odd_device["device"] = "fridge"
    good = [event(n) for n in range(10, 40)]
    land(lake, "behaviour_1.jsonl", [*good, json.dumps(bad_type), json.dumps(odd_device)])
    summary = run(spark, settings, lake, 1)
    bronze = read_table(spark, lake.table("bronze", "events_behaviour"))
    ids = sorted(r.event_id for r in bronze.collect())
    assert ids == sorted(["e-3", *[f"e-{n}" for n in range(10, 40)]])  # warn does not block
    quarantine = read_table(spark, lake.table("_quarantine", "bronze_events_behaviour"))
    assert [(json.loads(r._raw)["event_id"], r._reason) for r in quarantine.collect()] == [
        ("e-2", "expectation failed: expect_column_values_to_match_regex(event_type)")
    ]
    assert (summary.rows_in, summary.rows_out, summary.rows_quarantined) == (32, 31, 1)
    gate = summary.quality["bronze.events_behaviour"]
    assert (gate["status"], gate["failed"], gate["rows_quarantined"]) == ("warned", 1, 1)
    report = json.loads(Path(gate["report"]).read_text())
    warned = [o for o in report["outcomes"] if not o["success"]]
    assert [(o["rule"], o["unexpected_sample"]) for o in warned] == [
        ("expect_column_values_to_be_in_set(device)", ["fridge"])
    ]
    assert "bronze.events_behaviour: warned" in Path(gate["page"]).read_text()


def test_a_bronze_batch_over_the_quarantine_threshold_stops_before_the_append(
    spark: SparkSession, settings: Settings, lake: LakePaths
) -> None:
    bad = [json.loads(event(n)) | {"event_type": "Bad Type"} for n in (2, 3)]
    land(lake, "behaviour_1.jsonl", [event(1), *map(json.dumps, bad)])
    with pytest.raises(QualityGateError, match=r"quarantine rate 66\.67% is above the 5\.00%"):
        run(spark, settings, lake, 1)
    assert not table_exists(spark, lake.table("bronze", "events_behaviour"))
    assert not table_exists(spark, lake.table("_quarantine", "bronze_events_behaviour"))
    # every rerun stops on the same batch (it is pending in the stream checkpoint)
    with pytest.raises(QualityGateError):
        run(spark, settings, lake, 2)
    # docs/runbooks/failed-quality-gate.md, option B: accept the batch into quarantine
    accept = settings.model_copy(
        update={"quality": settings.quality.model_copy(update={"quarantine_threshold": 1.0})}
    )
    summary = run(spark, accept, lake, 2)
    assert summary.quality["bronze.events_behaviour"]["rows_quarantined"] == 2
    stored = read_table(spark, lake.table("bronze", "events_behaviour"))
    assert [r.event_id for r in stored.collect()] == ["e-1"]
    quarantine = read_table(spark, lake.table("_quarantine", "bronze_events_behaviour"))
    assert sorted((json.loads(r._raw)["event_id"], r._reason) for r in quarantine.collect()) == [
        ("e-2", "expectation failed: expect_column_values_to_match_regex(event_type)"),
        ("e-3", "expectation failed: expect_column_values_to_match_regex(event_type)"),
    ]
    # the pipeline moves on with the normal threshold
    land(lake, "behaviour_3.jsonl", [event(4)])
    assert run(spark, settings, lake, 3).rows_out == 1
