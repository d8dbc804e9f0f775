from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from jobs.common.logs import configure_logging
from jobs.common.paths import LakePaths
from jobs.common.run_context import DatasetStats, RunContext, build_run_id, job_run


def test_build_run_id_is_deterministic_per_job_date_attempt() -> None:
    assert build_run_id("bronze.crm_customers", date(2026, 1, 3), 2) == (
        "bronze.crm_customers__2026-01-03__a2"
    )
    ctx = RunContext("gold.customer_360", "dev", date(2026, 1, 3))
    assert ctx.run_id == RunContext("gold.customer_360", "prod", date(2026, 1, 3)).run_id


@pytest.mark.parametrize(
    ("job", "attempt", "message"),
    [
        ("Bronze/x", 1, "job name 'Bronze/x' must match"),
        ("bronze.x", 0, "attempt must be >= 1, found 0"),
    ],
)
def test_build_run_id_rejects_bad_input(job: str, attempt: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_run_id(job, date(2026, 1, 1), attempt)


def test_job_run_writes_summary_with_totals(lake: LakePaths) -> None:
    ctx = RunContext("bronze.x", "local", date(2026, 1, 2))
    with job_run(ctx, lake) as run:
        run.input(DatasetStats("src", "/in", rows=10))
        run.output(DatasetStats("bronze.x", "/out", rows=8, rows_quarantined=2, delta_version=3))
        with run.step("write"):
            pass
    summary = json.loads(Path(lake.run_dir(ctx.run_id), "summary.json").read_text())
    assert summary["status"] == "SUCCEEDED"
    assert summary["rows"] == {"in": 10, "out": 8, "quarantined": 2}
    assert summary["run_id"] == "bronze.x__2026-01-02__a1"
    assert summary["outputs"][0]["delta_version"] == 3
    assert set(summary["steps"]) == {"write"}
    assert summary["error"] is None
    assert {"project", "python"} <= set(summary["versions"])


def test_job_run_records_failure_and_reraises(lake: LakePaths) -> None:
    ctx = RunContext("bronze.x", "local", date(2026, 1, 2), attempt=2)
    with pytest.raises(RuntimeError, match="source unreachable"), job_run(ctx, lake):
        raise RuntimeError("source unreachable")
    summary = json.loads(Path(lake.run_dir(ctx.run_id), "summary.json").read_text())
    assert (summary["status"], summary["error"]) == (
        "FAILED",
        {"type": "RuntimeError", "message": "source unreachable"},
    )


def test_job_run_logs_are_json_lines_carrying_run_identity(lake: LakePaths) -> None:
    configure_logging("INFO")
    ctx = RunContext("silver.y", "local", date(2026, 1, 2))
    with job_run(ctx, lake):
        pass
    lines = Path(lake.run_dir(ctx.run_id), "log.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["message"] for e in entries] == ["run started", "run succeeded"]
    assert {(e["run_id"], e["job"], e["env"]) for e in entries} == {
        ("silver.y__2026-01-02__a1", "silver.y", "local")
    }
    assert all(e["ts"].endswith("+00:00") for e in entries)


def test_console_level_quiets_stderr_but_not_the_run_log(
    lake: LakePaths, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", console_level="WARNING")
    ctx = RunContext("silver.z", "local", date(2026, 1, 2))
    with job_run(ctx, lake):
        pass
    assert capsys.readouterr().err == ""
    lines = Path(lake.run_dir(ctx.run_id), "log.jsonl").read_text().splitlines()
    assert len(lines) == 2
