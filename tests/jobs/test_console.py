"""The progress lines ``lakehouse demo`` and ``lakehouse backfill`` print."""

from __future__ import annotations

import datetime as dt
import io
import itertools

import pytest

from jobs import console
from jobs.common.run_context import DatasetStats, RunSummary
from jobs.console import JobResult, PipelineProgress

DAY = dt.date(2026, 1, 1)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """perf_counter advances 10 s per reading."""
    ticks = itertools.count(0, 10)
    monkeypatch.setattr(console.time, "perf_counter", lambda: float(next(ticks)))


def summary(job: str, status: str = "SUCCEEDED", **notes: str) -> RunSummary:
    run = RunSummary(f"{job}__2026-01-01__a1", job, "local", "2026-01-01", 1, status=status)
    run.ended_at, run.duration_s = "2026-01-02T00:10:00+00:00", 3.25
    run.inputs.append(DatasetStats("source", "/in", 1200))
    run.outputs.append(DatasetStats(job, "/out", 1180, 20))
    run.notes.update(notes)
    return run


def test_off_a_terminal_each_job_is_one_plain_line_under_its_day(clock: None) -> None:
    out = io.StringIO()
    with PipelineProgress(days=2, total_jobs=4, stream=out) as progress:
        progress.day(DAY, 2)
        progress.started("bronze.crm_customers", DAY)
        progress.finished(JobResult.of_run(summary("bronze.crm_customers")))
        progress.started("silver.dim_customer", DAY)
        progress.finished(JobResult.of_run(summary("silver.dim_customer", skipped="no input")))
        progress.finished(JobResult("gold.customer_360", DAY, "FAILED", 1.5, note="boom\nmore"))
    assert out.getvalue().splitlines() == [
        "day 1/2  2026-01-01  2 jobs  (elapsed 0:10)",
        "  ok      bronze.crm_customers                3.2s  read     1,200  written     1,180"
        "  quarantined     20  [1/4 0:20]",
        "  skipped silver.dim_customer                 3.2s  read     1,200  written     1,180"
        "  quarantined     20  [2/4 0:30]",
        "  FAILED  gold.customer_360                   1.5s  read         -  written         -"
        "  quarantined      -  [3/4 0:40]  boom",
    ]


def test_on_a_terminal_the_finished_lines_print_above_the_live_line() -> None:
    out = io.StringIO()
    with PipelineProgress(days=1, total_jobs=1, stream=out, live=True) as progress:
        progress.day(DAY, 1)
        progress.started("bronze.fx_rates", DAY)
        progress.finished(JobResult("bronze.fx_rates", DAY, "SUCCEEDED", 2.0, 5, 5, 0))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("day 1/1  2026-01-01  1 jobs")
    assert lines[1].split()[:9] == [
        "ok", "bronze.fx_rates", "2.0s", "read", "5", "written", "5", "quarantined", "0"
    ]  # fmt: skip
