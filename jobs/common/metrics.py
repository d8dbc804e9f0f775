"""Run metrics: one set per job run, from its summary (definitions: monitoring/metrics.json).

Every run keeps its metrics in its summary (``runs/<run_id>/summary.json``, key
``metrics``) and writes the CloudWatch Embedded Metric Format (EMF) document of them to
``runs/<run_id>/metrics.json``. ``monitoring.publish`` sends them on:

- ``emf``: the document as one line on stdout. On EMR Serverless the driver's stdout
  goes to the job log group, where CloudWatch extracts the metrics (no API call, no
  extra IAM beyond log delivery).
- ``cloudwatch``: ``PutMetricData`` (for runs whose stdout is not shipped anywhere).

Metrics carry three dimension sets, ``[Env]``, ``[Env, Layer]`` and ``[Env, Job]``, so
alarms can watch the whole environment, a layer's budget, or one job's freshness.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from jobs.common.config import MonitoringSettings
from jobs.common.storage import write_text

log = logging.getLogger(__name__)

DIMENSION_SETS = (("Env",), ("Env", "Layer"), ("Env", "Job"))
UNITS = {
    "RowsRead": "Count",
    "RowsWritten": "Count",
    "RowsQuarantined": "Count",
    "QuarantineRate": "Percent",
    "DurationSeconds": "Seconds",
    "JobSucceeded": "Count",
    "JobFailed": "Count",
    "GateFailures": "Count",
    "WatermarkLagSeconds": "Seconds",
    "FreshnessLagSeconds": "Seconds",
}


@dataclass(frozen=True)
class RunFacts:
    """What the metrics of one run are computed from (a run summary, flattened)."""

    job: str
    env: str
    run_id: str
    logical_date: date
    status: str
    ended_at: datetime
    duration_s: float
    rows_read: int
    rows_written: int
    rows_quarantined: int
    gate_statuses: tuple[str, ...] = ()
    watermarks: tuple[Any, ...] = ()  # the outputs' watermark_after values
    skipped: bool = False
    error: str | None = None

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> RunFacts:
        """Facts of a run summary document (``RunSummary.to_json``)."""
        outputs = summary.get("outputs", [])
        return cls(
            job=summary["job"],
            env=summary["env"],
            run_id=summary["run_id"],
            logical_date=date.fromisoformat(summary["logical_date"]),
            status=summary["status"],
            ended_at=datetime.fromisoformat(summary["ended_at"]),
            duration_s=float(summary.get("duration_s") or 0.0),
            rows_read=sum(i.get("rows") or 0 for i in summary.get("inputs", [])),
            rows_written=sum(o.get("rows") or 0 for o in outputs),
            rows_quarantined=sum(o.get("rows_quarantined") or 0 for o in outputs),
            gate_statuses=tuple(g.get("status", "") for g in summary.get("quality", {}).values()),
            watermarks=tuple(o.get("extra", {}).get("watermark_after") for o in outputs),
            skipped=bool(summary.get("notes", {}).get("skipped")),
            error=(summary.get("error") or {}).get("message"),
        )

    @property
    def layer(self) -> str:
        """The job's layer: the first part of its name (``silver.fct_orders`` -> silver)."""
        return self.job.split(".", 1)[0]


def run_metrics(facts: RunFacts) -> dict[str, float]:
    """The run's metric values by name (see :data:`UNITS` and monitoring/metrics.json).

    ``WatermarkLagSeconds`` is present only when an output watermark holds a timestamp;
    ``FreshnessLagSeconds`` only for a successful run that wrote (not skipped).
    """
    succeeded = facts.status == "SUCCEEDED"
    rate = 100.0 * facts.rows_quarantined / facts.rows_read if facts.rows_read else 0.0
    metrics: dict[str, float] = {
        "RowsRead": facts.rows_read,
        "RowsWritten": facts.rows_written,
        "RowsQuarantined": facts.rows_quarantined,
        "QuarantineRate": round(rate, 4),
        "DurationSeconds": round(facts.duration_s, 3),
        "JobSucceeded": 1 if succeeded else 0,
        "JobFailed": 0 if succeeded else 1,
        "GateFailures": sum(1 for s in facts.gate_statuses if s == "failed"),
    }
    newest = max(_timestamps(facts.watermarks), default=None)
    if newest is not None:
        metrics["WatermarkLagSeconds"] = round((facts.ended_at - newest).total_seconds(), 3)
    if succeeded and not facts.skipped:
        day_end = datetime.combine(facts.logical_date + timedelta(days=1), time(), UTC)
        metrics["FreshnessLagSeconds"] = round((facts.ended_at - day_end).total_seconds(), 3)
    return metrics


def emf_document(facts: RunFacts, metrics: dict[str, float], namespace: str) -> dict[str, Any]:
    """The CloudWatch Embedded Metric Format document of one run's metrics."""
    return {
        "_aws": {
            "Timestamp": int(facts.ended_at.timestamp() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [list(d) for d in DIMENSION_SETS],
                    "Metrics": [{"Name": name, "Unit": UNITS[name]} for name in metrics],
                }
            ],
        },
        "Env": facts.env,
        "Layer": facts.layer,
        "Job": facts.job,
        "RunId": facts.run_id,
        "LogicalDate": facts.logical_date.isoformat(),
        "Status": facts.status,
        **({"Error": facts.error} if facts.error else {}),
        **metrics,
    }


def metric_data(facts: RunFacts, metrics: dict[str, float]) -> list[dict[str, Any]]:
    """The same metrics as ``PutMetricData`` entries, one per metric and dimension set."""
    values = {"Env": facts.env, "Layer": facts.layer, "Job": facts.job}
    return [
        {
            "MetricName": name,
            "Dimensions": [{"Name": d, "Value": values[d]} for d in dims],
            "Timestamp": facts.ended_at,
            "Value": float(value),
            "Unit": UNITS[name],
        }
        for name, value in metrics.items()
        for dims in DIMENSION_SETS
    ]


def publish_run_metrics(
    summary: dict[str, Any],
    run_dir: str,
    settings: MonitoringSettings,
    *,
    emit: Callable[[str], None] | None = None,
    cloudwatch: Any = None,
) -> dict[str, float]:
    """Compute, record and publish a finished run's metrics; never raises.

    Args:
        summary: the run summary document (status, end time and duration set).
        run_dir: the run's folder; the EMF document goes to ``metrics.json`` there.
        settings: ``monitoring`` config (namespace, where to publish).
        emit: writes one EMF line (default: stdout).
        cloudwatch: a boto3 CloudWatch client for ``publish: cloudwatch`` (default: new).

    Returns:
        The metric values (empty when they could not be computed; the error is logged).

    """
    try:
        facts = RunFacts.from_summary(summary)
        metrics = run_metrics(facts)
        document = emf_document(facts, metrics, settings.namespace)
        write_text(f"{run_dir}/metrics.json", json.dumps(document, indent=2) + "\n")
        if settings.publish == "emf":
            (emit or _stdout)(json.dumps(document, separators=(",", ":")))
        elif settings.publish == "cloudwatch":
            client = cloudwatch or _cloudwatch_client()
            for batch in _batches(metric_data(facts, metrics), 1000):
                client.put_metric_data(Namespace=settings.namespace, MetricData=batch)
    except Exception as exc:  # metrics must never fail the run they describe
        log.warning("run metrics not published (%s): %s", settings.publish, exc)
        return {}
    return metrics


def _timestamps(values: Iterable[Any]) -> Iterable[datetime]:
    """Every timestamp found in watermark values (``{cursor: iso string}`` mappings)."""
    for value in values:
        if not isinstance(value, dict):
            continue
        for item in value.values():
            try:
                parsed = datetime.fromisoformat(str(item))
            except ValueError:
                continue
            yield parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _batches(items: list[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _stdout(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _cloudwatch_client() -> Any:
    import boto3

    return boto3.client("cloudwatch")
