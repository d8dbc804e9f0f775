"""monitoring/: the metric, alarm and dashboard definitions agree with the jobs and config."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from jobs.common.config import load_settings
from jobs.common.metrics import DIMENSION_SETS, UNITS

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
RUNBOOKS = MONITORING.parent / "docs" / "runbooks"


def _load(name: str) -> Any:
    return json.loads((MONITORING / name).read_text())


def test_metric_definitions_are_what_the_jobs_publish() -> None:
    definitions = _load("metrics.json")
    assert {k: v["unit"] for k, v in definitions["metrics"].items()} == UNITS
    assert [tuple(d) for d in definitions["dimension_sets"]] == list(DIMENSION_SETS)
    assert definitions["namespace"] == load_settings("prod", environ={}).monitoring.namespace


def test_every_alarm_watches_a_published_metric_by_its_dimensions_with_a_runbook() -> None:
    published = {frozenset(d) for d in DIMENSION_SETS}
    for alarm in _load("alarms.json")["alarms"]:
        assert alarm["metric"] in UNITS, alarm["id"]
        assert frozenset({"Env", *alarm["dimensions"]}) in published, alarm["id"]
        assert (MONITORING.parent / alarm["runbook"]).is_file(), alarm["id"]


def test_alarm_thresholds_follow_the_config() -> None:
    alarms = {a["id"]: a for a in _load("alarms.json")["alarms"]}
    settings = load_settings("prod", environ={})
    orchestration = settings.orchestration
    sla = alarms["freshness-over-sla"]
    assert sla["threshold"] == orchestration.freshness_hours * 3600
    assert sla["period_seconds"] == 86400 and sla["treat_missing_data"] == "breaching"
    for layer in ("bronze", "silver", "gold"):
        budget = alarms[f"duration-over-budget-{layer}"]["threshold"]
        assert budget < orchestration.timeout_for(f"{layer}.x") * 60, layer
    assert alarms["quarantine-rate"]["threshold"] < settings.quality.quarantine_threshold * 100


def test_dashboard_renders_to_widgets_on_published_metrics() -> None:
    template = (MONITORING / "dashboard.json").read_text()
    names = set(re.findall(r"\$\{(\w+)\}", template))
    assert names == {"namespace", "env", "region", "log_group", "sla_hours"}
    values = {"namespace": "Lakehouse", "env": "dev", "region": "eu-west-1"}
    values |= {"log_group": "/aws/emr-serverless/lakehouse-dev", "sla_hours": "26"}
    dashboard = json.loads(re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], template))
    metrics = [m for w in dashboard["widgets"] for m in w["properties"].get("metrics", [])]
    plain = {row[1] for row in metrics if isinstance(row[0], str)}
    searched = set(re.findall(r'MetricName=\\"(\w+)\\"', template))
    assert plain | searched <= set(UNITS), (plain | searched) - set(UNITS)
    assert len(plain | searched) >= 8  # most metrics are on it


def test_alarm_runbooks_exist_for_every_operation_the_platform_needs() -> None:
    assert {p.name for p in RUNBOOKS.glob("*.md")} >= {
        "failed-quality-gate.md",
        "backfill-and-reruns.md",
        "reprocess-a-day.md",
        "restore-a-table.md",
        "recover-a-watermark.md",
        "rotate-a-secret.md",
    }
