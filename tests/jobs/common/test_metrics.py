"""Run metrics from run summaries: values, the EMF document, and both ways of publishing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from jobs.common.config import MonitoringSettings
from jobs.common.metrics import RunFacts, emf_document, publish_run_metrics, run_metrics
from tests.support.moto_server import REGION, MotoServer

ENDED = "2026-01-06T02:30:00+00:00"


def _summary(**changes: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "run_id": "bronze.opdb_orders__2026-01-05__a1",
        "job": "bronze.opdb_orders",
        "env": "dev",
        "logical_date": "2026-01-05",
        "attempt": 1,
        "status": "SUCCEEDED",
        "ended_at": ENDED,
        "duration_s": 42.5,
        "inputs": [{"name": "jdbc:opdb#orders", "rows": 1000}],
        "outputs": [
            {
                "name": "bronze.opdb_orders",
                "rows": 940,
                "rows_quarantined": 10,
                "extra": {"watermark_after": {"updated_at": "2026-01-05T23:30:00"}},
            }
        ],
        "quality": {"bronze.opdb_orders": {"status": "passed"}},
        "notes": {},
        "error": None,
    }
    return {**summary, **changes}


def test_run_metrics_of_a_bronze_run() -> None:
    assert run_metrics(RunFacts.from_summary(_summary())) == {
        "RowsRead": 1000,
        "RowsWritten": 940,
        "RowsQuarantined": 10,
        "QuarantineRate": 1.0,
        "DurationSeconds": 42.5,
        "JobSucceeded": 1,
        "JobFailed": 0,
        "GateFailures": 0,
        "WatermarkLagSeconds": 3 * 3600.0,  # 02:30 next day - 23:30
        "FreshnessLagSeconds": 2.5 * 3600,  # ended 2.5 h after 2026-01-05 ended
    }


def test_run_metrics_of_a_failed_gate_has_no_freshness_and_no_watermark() -> None:
    failed = _summary(
        status="FAILED",
        outputs=[],
        quality={"bronze.opdb_orders": {"status": "failed"}, "other": {"status": "warned"}},
        error={"type": "QualityGateError", "message": "gate failed"},
    )
    assert run_metrics(RunFacts.from_summary(failed)) == {
        "RowsRead": 1000,
        "RowsWritten": 0,
        "RowsQuarantined": 0,
        "QuarantineRate": 0.0,
        "DurationSeconds": 42.5,
        "JobSucceeded": 0,
        "JobFailed": 1,
        "GateFailures": 1,
    }


def test_a_skipped_run_has_no_freshness_and_a_non_time_watermark_no_lag() -> None:
    skipped = _summary(
        notes={"skipped": "bronze.crm does not exist yet"},
        outputs=[{"name": "bronze.events", "rows": 0, "extra": {"watermark_after": {"b": 7}}}],
    )
    metrics = run_metrics(RunFacts.from_summary(skipped))
    assert ("FreshnessLagSeconds" in metrics, "WatermarkLagSeconds" in metrics) == (False, False)


def test_emf_document_declares_every_metric_with_three_dimension_sets() -> None:
    facts = RunFacts.from_summary(_summary(status="FAILED", error={"message": "boom"}))
    document = emf_document(facts, {"JobFailed": 1, "DurationSeconds": 42.5}, "Lakehouse")
    assert document == {
        "_aws": {
            "Timestamp": int(datetime(2026, 1, 6, 2, 30, tzinfo=UTC).timestamp() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": "Lakehouse",
                    "Dimensions": [["Env"], ["Env", "Layer"], ["Env", "Job"]],
                    "Metrics": [
                        {"Name": "JobFailed", "Unit": "Count"},
                        {"Name": "DurationSeconds", "Unit": "Seconds"},
                    ],
                }
            ],
        },
        "Env": "dev",
        "Layer": "bronze",
        "Job": "bronze.opdb_orders",
        "RunId": "bronze.opdb_orders__2026-01-05__a1",
        "LogicalDate": "2026-01-05",
        "Status": "FAILED",
        "Error": "boom",
        "JobFailed": 1,
        "DurationSeconds": 42.5,
    }


def test_publish_emf_prints_one_line_and_keeps_the_document(tmp_path: Path) -> None:
    lines: list[str] = []
    metrics = publish_run_metrics(
        _summary(), str(tmp_path), MonitoringSettings(publish="emf"), emit=lines.append
    )
    document = json.loads((tmp_path / "metrics.json").read_text())
    assert [json.loads(line) for line in lines] == [document]
    assert {k: document[k] for k in metrics} == metrics


def test_publish_cloudwatch_puts_metric_data(aws: MotoServer, tmp_path: Path) -> None:
    client = boto3.client("cloudwatch", region_name=REGION)
    publish_run_metrics(
        _summary(), str(tmp_path), MonitoringSettings(publish="cloudwatch"), cloudwatch=client
    )
    stats = client.get_metric_statistics(
        Namespace="Lakehouse",
        MetricName="RowsWritten",
        Dimensions=[
            {"Name": "Env", "Value": "dev"},
            {"Name": "Job", "Value": "bronze.opdb_orders"},
        ],
        StartTime=datetime(2026, 1, 6, tzinfo=UTC),
        EndTime=datetime(2026, 1, 7, tzinfo=UTC),
        Period=86400,
        Statistics=["Sum"],
    )
    assert [p["Sum"] for p in stats["Datapoints"]] == [940.0]
    names = {m["MetricName"] for m in client.list_metrics(Namespace="Lakehouse")["Metrics"]}
    assert names == set(run_metrics(RunFacts.from_summary(_summary())))


def test_publishing_never_fails_the_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def put_metric_data(self, **_: Any) -> None:
            raise RuntimeError("throttled")

    settings = MonitoringSettings(publish="cloudwatch")
    assert publish_run_metrics(_summary(), str(tmp_path), settings, cloudwatch=Broken()) == {}
    assert "run metrics not published (cloudwatch): throttled" in caplog.text
