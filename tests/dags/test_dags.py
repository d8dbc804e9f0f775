from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from aws.emr import client_token
from jobs.common.config import load_settings
from jobs.registry import daily_jobs
from tests.conftest import PROJECT_ROOT
from tests.dags.conftest import EMR_IDS

BRONZE = [
    "bronze.crm_customers", "bronze.crm_cases", "bronze.opdb_orders", "bronze.opdb_products",
    "bronze.events_behaviour", "bronze.returns_returns", "bronze.fx_rates",
]  # fmt: skip


@pytest.mark.parametrize("env", ["local", "dev", "prod"])
def test_every_dag_imports_without_errors(dagbag_for: Any, env: str) -> None:
    bag = dagbag_for(env, **EMR_IDS)
    assert bag.import_errors == {}
    assert sorted(bag.dags) == ["lakehouse_daily", "lakehouse_maintenance"]


NO_SPARK = """
import importlib.abc, runpy, sys
class NoSpark(importlib.abc.MetaPathFinder):  # what MWAA's workers do not have
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("pyspark", "py4j", "delta", "great_expectations", "pandas"):
            raise ImportError(f"{name} imported while parsing the DAG files")
sys.meta_path.insert(0, NoSpark())
for dag_file in sys.argv[1:]:
    runpy.run_path(dag_file)
print("parsed")
"""


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_dag_files_parse_without_spark_as_on_mwaa(env: str) -> None:
    # MWAA's workers have Airflow and its providers, not Spark or Great Expectations:
    # the DAG files' imports (aws/, jobs/common, the registry) must not need them
    dags = sorted(str(p) for p in (PROJECT_ROOT / "dags").glob("*.py"))
    done = subprocess.run(
        [sys.executable, "-c", NO_SPARK, *dags], capture_output=True, text=True, timeout=120,
        cwd=PROJECT_ROOT, env={**os.environ, **EMR_IDS, "LAKEHOUSE_ENV": env},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("parsed")


def test_dev_without_the_emr_ids_fails_to_import_naming_the_variables(dagbag_for: Any) -> None:
    bag = dagbag_for("dev")
    assert len(bag.import_errors) == 2
    assert all("set LAKEHOUSE__EMR__APPLICATION_ID" in e for e in bag.import_errors.values())


def test_daily_dag_wires_bronze_in_parallel_then_silver_gold_and_freshness(
    dagbag_for: Any,
) -> None:
    dag = dagbag_for("local").dags["lakehouse_daily"]
    upstream = {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}
    assert upstream == {
        # local mode: the generated sources receive the day first, and stop after ingest
        "local_sources_up": [],
        **{b: ["local_sources_up"] for b in BRONZE},
        "local_sources_down": sorted([*BRONZE, "local_sources_up"]),
        "silver.dim_customer": ["bronze.crm_customers"],
        "silver.dim_product": ["bronze.opdb_products"],
        "silver.fct_orders": ["bronze.opdb_orders", "silver.dim_customer"],
        "silver.fct_support_cases": ["bronze.crm_cases"],
        "silver.fct_events": ["bronze.events_behaviour"],
        "silver.fct_returns": ["bronze.returns_returns"],
        "silver.fx_rates": ["bronze.fx_rates"],
        "gold.customer_360": [
            "silver.dim_customer", "silver.fct_events", "silver.fct_orders",
            "silver.fct_returns", "silver.fct_support_cases", "silver.fx_rates",
        ],
        "freshness_check": ["gold.customer_360"],
    }  # fmt: skip
    # task ids are the job names (and the OpenLineage job names)
    jobs = {spec.name for spec in daily_jobs(load_settings("local", environ={}))}
    assert jobs == set(upstream) - {"freshness_check", "local_sources_up", "local_sources_down"}
    assert dag.get_task("local_sources_down").is_teardown
    assert (dag.max_active_runs, dag.catchup) == (1, False)
    # a data interval: the run of D starts after D, and {{ ds }} is D
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert (dag.timetable.expression, str(dag.timetable.timezone)) == ("0 3 * * *", "UTC")


def test_one_writer_per_table_through_one_slot_pools(dagbag_for: Any) -> None:
    from aws.pipeline import pools

    dag = dagbag_for("dev", **EMR_IDS).dags["lakehouse_daily"]
    writers = [t for t in dag.tasks if t.task_id != "freshness_check"]
    assert {t.task_id: t.pool for t in writers} == {
        t.task_id: f"lakehouse.{t.task_id}" for t in writers
    }
    assert set(pools(load_settings("dev", environ={}))) == {t.pool for t in writers}
    assert all(p["slots"] == 1 for p in pools(load_settings("dev", environ={})).values())
    # the EMR tasks defer while their run writes: a deferred task keeps its slot
    assert all(p["include_deferred"] for p in pools(load_settings("dev", environ={})).values())


@pytest.mark.parametrize(
    ("env", "retries", "backoff"), [("local", 1, 0), ("dev", 2, 0), ("prod", 3, 2.0)]
)
def test_retries_and_timeouts_follow_the_environment(
    dagbag_for: Any, env: str, retries: int, backoff: float
) -> None:
    dag = dagbag_for(env, **EMR_IDS).dags["lakehouse_daily"]
    gold, bronze = dag.get_task("gold.customer_360"), dag.get_task("bronze.fx_rates")
    assert (gold.retries, gold.retry_exponential_backoff) == (retries, backoff)
    assert gold.retry_delay == dt.timedelta(minutes=5)
    assert gold.execution_timeout == dt.timedelta(minutes=90)
    assert bronze.execution_timeout == dt.timedelta(minutes=45)
    assert gold.on_failure_callback is not None


def test_emr_tasks_render_for_a_date_and_wait_as_long_as_their_timeout(dagbag_for: Any) -> None:
    dag = dagbag_for("prod", **EMR_IDS).dags["lakehouse_daily"]
    task = dag.get_task("silver.fct_orders")
    context = {"ds": "2026-01-05", "ti": SimpleNamespace(try_number=2)}
    driver = task.render_template(task.job_driver, context)
    assert driver["sparkSubmit"]["entryPointArguments"] == [
        "run", "silver.fct_orders", "--env", "prod", "--date", "2026-01-05", "--attempt", "2",
    ]  # fmt: skip
    name = task.render_template(task.name, context)
    assert name == "lakehouse_daily.silver.fct_orders.2026-01-05"
    overrides = task.render_template(task.configuration_overrides, context)
    monitoring = overrides["monitoringConfiguration"]
    assert monitoring["s3MonitoringConfiguration"]["logUri"] == (
        "s3://lakehouse-prod-artifacts/ops/logs/emr/lakehouse_daily/silver.fct_orders/2026-01-05/"
    )
    assert monitoring["cloudWatchLoggingConfiguration"]["logGroupName"] == (
        "/aws/emr-serverless/lakehouse-prod"
    )
    assert task.deferrable and task.config == {"executionTimeoutMinutes": 60}
    assert task.waiter_delay * task.waiter_max_attempts == 60 * 60  # 60 min, not the 25 default
    assert task.application_id == EMR_IDS["LAKEHOUSE__EMR__APPLICATION_ID"]
    assert client_token(task.render_template(task.name, context), 2) != client_token(
        task.render_template(task.name, context), 3
    )


@pytest.mark.parametrize(
    ("run_type", "window"), [("scheduled", "none"), ("backfill", "2026-01-05..2026-01-05")]
)
def test_bronze_tasks_of_a_backfill_run_reread_their_data_interval(
    dagbag_for: Any, run_type: str, window: str
) -> None:
    dag = dagbag_for("prod", **EMR_IDS).dags["lakehouse_daily"]
    context = {
        "ds": "2026-01-05", "ti": SimpleNamespace(try_number=1),
        "dag_run": SimpleNamespace(run_type=run_type),
        "data_interval_start": dt.datetime(2026, 1, 5, 3, tzinfo=dt.UTC),
    }  # fmt: skip
    bronze = dag.get_task("bronze.opdb_orders")
    arguments = bronze.render_template(bronze.job_driver, context)["sparkSubmit"]
    assert arguments["entryPointArguments"][-2:] == ["--window", window]
    silver = dag.get_task("silver.fct_orders")
    assert "--window" not in silver.job_driver["sparkSubmit"]["entryPointArguments"]
    local = dagbag_for("local").dags["lakehouse_daily"].get_task("bronze.opdb_orders")
    assert local.render_template(local.arguments, context) == ["--window", window]


def test_maintenance_runs_weekly_on_its_own(dagbag_for: Any) -> None:
    dag = dagbag_for("dev", **EMR_IDS).dags["lakehouse_maintenance"]
    assert [t.task_id for t in dag.tasks] == ["maintenance"]
    assert dag.timetable.expression == "0 5 * * 0"
    assert dag.get_task("maintenance").execution_timeout == dt.timedelta(minutes=180)
