from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from aws.backfill import run_backfill, waves
from jobs.common.config import Settings
from jobs.common.delta_io import current_version, read_table
from jobs.common.errors import ConfigError
from jobs.common.paths import LakePaths
from jobs.common.run_context import DatasetStats, RunSummary
from jobs.console import PipelineProgress
from jobs.main import main
from tests.support.net import free_port

D1, D2, D3 = dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)


def test_jobs_run_in_dependency_waves(settings: Settings) -> None:
    assert waves(settings) == [
        ["bronze.crm_customers", "bronze.crm_cases", "bronze.opdb_orders",
         "bronze.opdb_products", "bronze.events_behaviour", "bronze.returns_returns",
         "bronze.fx_rates"],
        ["silver.dim_customer", "silver.dim_product", "silver.fct_support_cases",
         "silver.fct_events", "silver.fct_returns", "silver.fx_rates"],
        ["silver.fct_orders"],  # checked against dim_customer (foreign key)
        ["gold.customer_360"],
    ]  # fmt: skip
    assert waves(settings, ["silver.fx_rates", "bronze.fx_rates"]) == [
        ["bronze.fx_rates"], ["silver.fx_rates"]
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="not daily jobs: maintenance"):
        waves(settings, ["maintenance"])


class FakeRunner:
    """Records runs and writes their summaries as the runner does; fails on request."""

    def __init__(self, lake: LakePaths, fail: set[str]) -> None:
        self.lake, self.fail, self.calls = lake, fail, list[str]()

    def __call__(self, job: str, day: dt.date, attempt: int) -> str:
        self.calls.append(f"{job}@{day}#{attempt}")
        status = "FAILED" if f"{job}@{day}" in self.fail else "SUCCEEDED"
        folder = Path(self.lake.run_dir(f"{job}__{day}__a{attempt}"))
        folder.mkdir(parents=True)
        run = RunSummary(f"{job}__{day}__a{attempt}", job, "local", day.isoformat(), attempt,
                         status=status, ended_at=f"{day}T23:00:00+00:00")  # fmt: skip
        run.inputs.append(DatasetStats("source", "/in", 5))
        run.outputs.append(DatasetStats(job, "/out", 5, 0))
        (folder / "summary.json").write_text(run.to_json())
        return status


def test_an_interrupted_backfill_resumes_and_a_finished_one_runs_nothing(
    settings: Settings, lake: LakePaths
) -> None:
    jobs = ["bronze.fx_rates", "silver.fx_rates"]
    broken = FakeRunner(lake, fail={"silver.fx_rates@2026-01-02"})
    first = run_backfill(settings, lake, D1, D3, broken, jobs=jobs, echo=lambda _: None)
    assert broken.calls == [
        "bronze.fx_rates@2026-01-01#1", "silver.fx_rates@2026-01-01#1",
        "bronze.fx_rates@2026-01-02#1", "silver.fx_rates@2026-01-02#1",
    ]  # fmt: skip  (stops at the failure: 2026-01-03 needs it)
    assert first.failed == ["silver.fx_rates@2026-01-02"] and not first.ok

    fixed = FakeRunner(lake, fail=set())
    second = run_backfill(settings, lake, D1, D3, fixed, jobs=jobs, echo=lambda _: None)
    assert fixed.calls == [
        "silver.fx_rates@2026-01-02#2",  # the failed one again, as its next attempt
        "bronze.fx_rates@2026-01-03#1", "silver.fx_rates@2026-01-03#1",
    ]  # fmt: skip
    assert second.ok and len(second.skipped) == 3

    again = FakeRunner(lake, fail=set())
    third = run_backfill(settings, lake, D1, D3, again, jobs=jobs, echo=lambda _: None)
    assert (again.calls, third.ran, len(third.skipped)) == ([], [], 6)


def test_backfill_progress_shows_each_job_with_its_rows_and_the_ones_already_done(
    settings: Settings, lake: LakePaths
) -> None:
    jobs = ["bronze.fx_rates", "silver.fx_rates"]
    first = FakeRunner(lake, fail=set())
    run_backfill(settings, lake, D1, D1, first, jobs=["bronze.fx_rates"], echo=lambda _: None)
    out = io.StringIO()
    with PipelineProgress(days=2, total_jobs=4, stream=out) as progress:
        result = run_backfill(
            settings, lake, D1, D2, FakeRunner(lake, fail={"silver.fx_rates@2026-01-02"}),
            jobs=jobs, echo=lambda line: out.write(f"echo {line}"), progress=progress,
        )  # fmt: skip
    assert result.failed == ["silver.fx_rates@2026-01-02"]
    lines = [re.sub(r"\s+", " ", line).strip() for line in out.getvalue().splitlines()]
    assert [re.sub(r" [0-9.]+s | \d+:\d\d\]", " T ", line) for line in lines] == [
        "day 1/2 2026-01-01 2 jobs (elapsed 0:00)",
        "skipped bronze.fx_rates already succeeded [1/4 T ",
        "ok silver.fx_rates T read 5 written 5 quarantined 0 [2/4 T ",
        "day 2/2 2026-01-02 2 jobs (elapsed 0:00)",
        "ok bronze.fx_rates T read 5 written 5 quarantined 0 [3/4 T ",
        "FAILED silver.fx_rates T read 5 written 5 quarantined 0 [4/4 T ",
    ]


# ~125 s of two backfills: make test-extended (CI); resume and skip semantics run in make test
@pytest.mark.slow
@pytest.mark.extended
def test_backfill_over_two_days_twice_gives_identical_tables(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    home = tmp_path / "home"
    monkeypatch.setenv("LAKEHOUSE_HOME", str(home))
    crm = f"http://127.0.0.1:{free_port()}/api/v1"
    monkeypatch.setenv("LAKEHOUSE__SOURCES__CRM__OPTIONS__BASE_URL", crm)
    assert main(["generate-data", "--days", "2", "--scale", "0.05"]) == 0
    jobs = "bronze.crm_customers,silver.dim_customer"  # the CRM API is started per day
    command = ["backfill", "--from", str(D1), "--to", str(D2), "--jobs", jobs, "--parallel", "2"]
    assert main(command) == 0
    assert "backfill: 4 run, 0 already done, 0 failed" in capsys.readouterr().out
    tables = [str(home / f"lake/{t}") for t in ("bronze/crm_customers", "silver/dim_customer")]
    before = {t: (current_version(spark, t), read_table(spark, t).cache()) for t in tables}
    assert main(command) == 0
    assert "backfill: 0 run, 4 already done, 0 failed" in capsys.readouterr().out
    for table, (version, rows) in before.items():
        assert current_version(spark, table) == version  # not a single commit
        assert_df_equality(read_table(spark, table), rows, ignore_row_order=True)
        rows.unpersist()

