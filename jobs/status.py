"""``lakehouse status``: the last run of every job, table freshness and gate results.

Built from the run summaries alone (``runs/<run_id>/summary.json``, local or on S3), so
it shows the same thing for a laptop's demo and for an environment's run records.
:func:`build_status` is pure; :func:`render_status` makes the terminal text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jobs.common.metrics import RunFacts


@dataclass(frozen=True)
class LastRun:
    """The most recent run of one job."""

    job: str
    run_id: str
    status: str
    logical_date: str
    ended_at: datetime
    duration_s: float
    rows_read: int
    rows_written: int
    rows_quarantined: int
    note: str  # the error, or why the run skipped


@dataclass(frozen=True)
class TableFreshness:
    """When a table was last written by a successful run, and up to what."""

    table: str
    written_at: datetime
    logical_date: str
    run_id: str
    watermark: str


@dataclass(frozen=True)
class GateResult:
    """The latest result of one quality gate."""

    gate: str
    run_id: str
    status: str
    expectations: int
    failed: int
    rows_quarantined: int
    problems: tuple[str, ...]
    page: str = ""  # its HTML report page


@dataclass(frozen=True)
class StatusView:
    """Everything ``lakehouse status`` shows."""

    runs: tuple[LastRun, ...]
    tables: tuple[TableFreshness, ...]
    gates: tuple[GateResult, ...]


def build_status(summaries: Iterable[dict[str, Any]]) -> StatusView:
    """The status view of a set of run summaries (latest by end time wins)."""
    ordered = sorted(
        (s for s in summaries if s.get("ended_at")),
        key=lambda s: (s["ended_at"], s["run_id"]),
    )
    runs: dict[str, LastRun] = {}
    tables: dict[str, TableFreshness] = {}
    gates: dict[str, GateResult] = {}
    for summary in ordered:
        runs[summary["job"]] = last_run(summary)
        for name, gate in summary.get("quality", {}).items():
            gates[name] = GateResult(
                gate=name,
                run_id=summary["run_id"],
                status=gate.get("status", "?"),
                expectations=int(gate.get("expectations", 0)),
                failed=int(gate.get("failed", 0)),
                rows_quarantined=int(gate.get("rows_quarantined", 0)),
                problems=tuple(gate.get("problems", [])),
                page=gate.get("page", ""),
            )
        if summary["status"] != "SUCCEEDED" or summary.get("notes", {}).get("skipped"):
            continue
        for output in summary.get("outputs", []):
            watermark = output.get("extra", {}).get("watermark_after")
            tables[output["name"]] = TableFreshness(
                table=output["name"],
                written_at=datetime.fromisoformat(summary["ended_at"]),
                logical_date=summary["logical_date"],
                run_id=summary["run_id"],
                watermark=_watermark_text(watermark),
            )
    return StatusView(
        runs=tuple(runs[k] for k in sorted(runs)),
        tables=tuple(tables[k] for k in sorted(tables)),
        gates=tuple(gates[k] for k in sorted(gates)),
    )


def render_status(view: StatusView, now: datetime) -> str:
    """The view as three plain-text tables for a terminal."""
    if not view.runs:
        return "no runs on record (run `lakehouse demo` or a job first)\n"
    failed = sum(1 for r in view.runs if r.status != "SUCCEEDED")
    lines = [f"Last run per job ({len(view.runs)} jobs, {failed} not succeeded)"]
    lines += _table(
        ("job", "status", "date", "ended", "took", "read", "written", "quar.", "note"),
        [
            (
                r.job,
                r.status,
                r.logical_date,
                _ago(now - r.ended_at),
                f"{r.duration_s:.0f}s",
                str(r.rows_read),
                str(r.rows_written),
                str(r.rows_quarantined),
                r.note,
            )
            for r in view.runs
        ],
    )
    lines += ["", "Freshness per table (last successful write)"]
    lines += _table(
        ("table", "written", "date", "watermark", "run"),
        [
            (t.table, _ago(now - t.written_at), t.logical_date, t.watermark, t.run_id)
            for t in view.tables
        ],
    )
    lines += ["", "Quality gates (latest result)"]
    lines += _table(
        ("gate", "status", "expectations", "failed", "quarantined", "problems"),
        [
            (
                g.gate,
                g.status,
                str(g.expectations),
                str(g.failed),
                str(g.rows_quarantined),
                "; ".join(g.problems),
            )
            for g in view.gates
        ],
    )
    return "\n".join(lines) + "\n"


def last_run(summary: dict[str, Any]) -> LastRun:
    """How the run of ``summary`` (a ``summary.json`` document) went, in one row."""
    facts = RunFacts.from_summary(summary)
    skipped = summary.get("notes", {}).get("skipped")
    return LastRun(
        job=facts.job,
        run_id=facts.run_id,
        status=facts.status,
        logical_date=facts.logical_date.isoformat(),
        ended_at=facts.ended_at,
        duration_s=facts.duration_s,
        rows_read=facts.rows_read,
        rows_written=facts.rows_written,
        rows_quarantined=facts.rows_quarantined,
        note=_first_line(facts.error or (f"skipped: {skipped}" if skipped else "")),
    )


def _watermark_text(watermark: Any) -> str:
    if isinstance(watermark, dict):
        return ", ".join(f"{k}={v}" for k, v in watermark.items())
    return "" if watermark is None else str(watermark)


def _first_line(text: str, width: int = 70) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 3] + "..."


def _ago(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    if seconds < 172800:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    if not rows:
        return ["  (none)"]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    fmt = "  " + "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header).rstrip(), *(fmt.format(*row).rstrip() for row in rows)]
