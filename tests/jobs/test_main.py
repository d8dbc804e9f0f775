from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from jobs.common.config import load_settings
from jobs.common.jars import session_jars, spark_submit_args
from jobs.common.paths import LakePaths
from jobs.main import main
from tests.conftest import PROJECT_ROOT
from tests.support.openlineage_schema import validation_errors

LAKEHOUSE = Path(sys.executable).parent / "lakehouse"


def test_console_script_help_lists_commands() -> None:
    result = subprocess.run([str(LAKEHOUSE), "--help"], capture_output=True, text=True, check=True)
    for command in ("generate-data", "demo", "run", "submit", "backfill", "package", "jobs"):
        assert command in result.stdout
    assert result.stdout.startswith("usage: lakehouse")


def test_run_help_shows_env_and_date() -> None:
    result = subprocess.run(
        [str(LAKEHOUSE), "run", "--help"], capture_output=True, text=True, check=True
    )
    assert "--env {local,dev,prod}" in result.stdout
    assert "--date DATE" in result.stdout


def test_unknown_job_exits_2_with_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "nope", "--env", "local", "--date", "2026-01-01"]) == 2
    assert capsys.readouterr().err == (
        "lakehouse: error: unknown job 'nope': expected one of bronze.crm_cases, "
        "bronze.crm_customers, bronze.events_behaviour, bronze.fx_rates, bronze.opdb_orders, "
        "bronze.opdb_products, bronze.returns_returns, gold.customer_360, maintenance, "
        "runtime_check, silver.dim_customer, "
        "silver.dim_product, silver.fct_events, silver.fct_orders, silver.fct_returns, "
        "silver.fct_support_cases, silver.fx_rates\n"
    )


def test_jobs_lists_one_job_per_source_entity_then_per_silver_table_then_gold(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["jobs"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == [
        "runtime_check",
        "bronze.crm_customers",
        "bronze.crm_cases",
        "bronze.opdb_orders",
        "bronze.opdb_products",
        "bronze.events_behaviour",
        "bronze.returns_returns",
        "bronze.fx_rates",
        "silver.dim_customer",
        "silver.dim_product",
        "silver.fct_orders",
        "silver.fct_support_cases",
        "silver.fct_events",
        "silver.fct_returns",
        "silver.fx_rates",
        "gold.customer_360",
        "maintenance",
    ]


def test_bad_date_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "runtime_check", "--env", "local", "--date", "2026-13-01"])
    assert exit_info.value.code == 2
    assert "expected a date YYYY-MM-DD, found '2026-13-01'" in capsys.readouterr().err


def test_config_error_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAKEHOUSE__SPARK__NOPE", "1")
    assert main(["jobs"]) == 2  # jobs are generated from the configuration
    assert main(["generate-data", "--days", "1"]) == 2
    assert "unknown key 'spark.nope'" in capsys.readouterr().err


def test_generate_data_writes_under_lakehouse_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "home"))
    assert main(["generate-data", "--days", "2", "--scale", "0.1"]) == 0
    written = sorted(
        p.relative_to(tmp_path / "home").as_posix()
        for p in (tmp_path / "home").rglob("2026-01-02*")
    )
    assert written == [
        "sources/_manifest/2026-01-02.json",
        "sources/crm/cases/2026-01-02.jsonl",
        "sources/crm/customers/2026-01-02.jsonl",
        "sources/events/behaviour/2026-01-02.jsonl",
        "sources/fx/rates/2026-01-02.json",
        "sources/opdb/orders/2026-01-02.jsonl",
        "sources/opdb/products/2026-01-02.jsonl",
    ]
    assert (tmp_path / "home/sources/returns/returns_2026-01-02.csv").is_file()


def test_run_job_in_process_writes_summary_metrics_and_status(
    spark: SparkSession,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
    monkeypatch.setenv("LAKEHOUSE__MONITORING__PUBLISH", "emf")
    assert main(["run", "runtime_check", "--env", "local", "--date", "2026-02-01"]) == 0
    run_dir = Path(LakePaths(str(tmp_path)).run_dir("runtime_check__2026-02-01__a1"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["versions"]["delta"]) == ("SUCCEEDED", "4.2.0")
    # the EMF line on stdout is the document in the run folder, with the summary's metrics
    emf_lines = [line for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    document = json.loads((run_dir / "metrics.json").read_text())
    assert [json.loads(line) for line in emf_lines] == [document]
    assert {k: document[k] for k in summary["metrics"]} == summary["metrics"]
    assert (document["Job"], document["Status"], summary["metrics"]["JobSucceeded"]) == (
        "runtime_check",
        "SUCCEEDED",
        1,
    )

    assert main(["status"]) == 0
    runs = capsys.readouterr().out.split("\n\n")[0].splitlines()
    assert runs[0] == "Last run per job (1 jobs, 0 not succeeded)"
    assert runs[2].split()[:3] == ["runtime_check", "SUCCEEDED", "2026-02-01"]


def _lineage_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_spark_submit_runs_the_same_entry_point_with_the_lineage_listener(tmp_path: Path) -> None:
    """The EMR way: spark-submit with the jars, the openlineage-spark listener switched on."""
    venv_bin = Path(sys.executable).parent
    airflow_task = (
        "lakehouse-local/lakehouse_daily.runtime_check/01936b1e-8c5a-7c3e-9a4b-0123456789ab"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OPENLINEAGE")},
        "LAKEHOUSE_HOME": str(tmp_path),
        "LAKEHOUSE__LINEAGE__SPARK_LISTENER__ENABLED": "true",
        "OPENLINEAGE_PARENT_ID": airflow_task,
        "PYSPARK_PYTHON": sys.executable,
        "PATH": f"{venv_bin}:{os.environ['PATH']}",
    }
    settings = load_settings("local", environ=env)
    result = subprocess.run(
        [
            str(venv_bin / "spark-submit"),
            *spark_submit_args(session_jars(settings)),
            "jobs/main.py",
            "run",
            "runtime_check",
            "--env",
            "local",
            "--date",
            "2026-03-01",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "runtime_check SUCCEEDED run_id=runtime_check__2026-03-01__a1" in result.stdout
    summary = json.loads((tmp_path / "runs/runtime_check__2026-03-01__a1/summary.json").read_text())
    assert (summary["status"], summary["versions"]["delta"]) == ("SUCCEEDED", "4.2.0")

    ours = _lineage_events(tmp_path / "lineage/events.jsonl")
    assert [e["eventType"] for e in ours] == ["START", "COMPLETE"]
    run_id = ours[0]["run"]["runId"]
    spark_events = _lineage_events(tmp_path / "lineage/spark-events.jsonl")
    application = [e for e in spark_events if "parent" in e["run"]["facets"]
                   and e["run"]["facets"]["parent"]["run"]["runId"] == run_id]  # fmt: skip
    assert {e["eventType"] for e in application} == {"START", "COMPLETE"}
    parent = application[0]["run"]["facets"]["parent"]
    assert parent["job"] == {"namespace": "lakehouse-local", "name": "runtime_check"}
    assert parent["root"]["run"]["runId"] == airflow_task.rsplit("/", 1)[1]
    table = str(tmp_path / "lake/_control/runtime_check")
    writes = [
        e for e in spark_events
        if e["eventType"] == "COMPLETE" and ("file", table) in
        {(o["namespace"], o["name"]) for o in e["outputs"]}
    ]  # fmt: skip
    assert writes, f"no listener event writes {table}: {[e['job']['name'] for e in spark_events]}"
    # Every listener event is schema-valid but for one upstream deviation (1.53.0): the
    # dataSource of a local file is the bare "file", not an absolute URI (on S3:
    # "s3://bucket", valid).
    errors = {error for e in spark_events for error in validation_errors(e)}
    assert {re.sub(r"^\w+\[\d+\]\.", "", e) for e in errors} <= {
        "dataSource: uri: 'file' is not a 'uri'"
    }, errors


def test_a_window_must_be_first_dot_dot_last(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "bronze.opdb_orders", "--env", "local", "--date", "2026-01-02"]
    assert main([*argv, "--window", "2026-01-01"]) == 2
    assert "--window is FIRST..LAST, without --from/--to" in capsys.readouterr().err
    assert main([*argv, "--window", "2026-01-02..2026-01-01"]) == 2
    assert "with --from <= --to" in capsys.readouterr().err
    assert main([*argv, "--window", "2026-01-01..nope"]) == 2
    assert "--window: expected FIRST..LAST dates, found '2026-01-01..nope'" in (
        capsys.readouterr().err
    )
