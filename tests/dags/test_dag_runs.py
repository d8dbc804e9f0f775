"""`dag.test()` of lakehouse_daily: on EMR Serverless (a moto server) and in local mode."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from pyspark.sql import SparkSession

from aws.emr import client_token
from jobs.common.delta_io import read_table
from jobs.gold.build import read_customer_360
from jobs.main import main
from tests.dags.conftest import gold_summary_written_by_the_job
from tests.support.moto_server import ACCOUNT, REGION
from tests.support.net import free_port

DAY = dt.date(2026, 1, 5)
LOGICAL = dt.datetime(2026, 1, 5, 3, tzinfo=dt.UTC)
JOBS = 15


def _states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


@pytest.mark.usefixtures("airflow_db")
def test_daily_dag_runs_every_job_on_emr_serverless(
    emr_dev: tuple[Any, str], dagbag_for: Any
) -> None:
    client, app_id = emr_dev
    gold_summary_written_by_the_job(DAY)
    dag = dagbag_for("dev").dags["lakehouse_daily"]
    run = dag.test(logical_date=LOGICAL)
    assert set(_states(run).values()) == {"success"}, _states(run)
    runs = client.list_job_runs(applicationId=app_id)["jobRuns"]
    names = sorted(r["name"] for r in runs)
    assert len(runs) == JOBS and names == sorted(
        f"lakehouse_daily.{t}.{DAY}" for t in _states(run) if t != "freshness_check"
    )
    from moto.emrserverless.models import emrserverless_backends

    for recorded in emrserverless_backends[ACCOUNT][REGION].job_runs[app_id]:
        assert recorded.client_token == client_token(recorded.name, 1)
        arguments = recorded.job_driver["sparkSubmit"]["entryPointArguments"]
        assert arguments[4:8] == ["--date", DAY.isoformat(), "--attempt", "1"]
        # a scheduled-like run: Bronze continues from its watermark (no window)
        assert arguments[8:] == (["--window", "none"] if arguments[1].startswith("bronze.") else [])
        # the task's OpenLineage run is the job's lineage parent
        params = recorded.job_driver["sparkSubmit"]["sparkSubmitParameters"]
        assert f"OPENLINEAGE_PARENT_ID=default/lakehouse_daily.{arguments[1]}/" in params


@pytest.mark.usefixtures("airflow_db")
def test_a_failed_emr_run_fails_its_task_skips_downstream_and_notifies(
    emr_dev: tuple[Any, str], dagbag_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.emrserverless import models

    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name="lakehouse-dev-alerts")["TopicArn"]
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs",
                  Endpoint=queue_arn["Attributes"]["QueueArn"])  # fmt: skip
    monkeypatch.setenv("LAKEHOUSE__ORCHESTRATION__FAILURE_TOPIC_ARN", topic)
    created = models.JobRun.__init__

    def gold_fails(self: Any, *args: Any, **kwargs: Any) -> None:  # moto: all SUCCESS
        created(self, *args, **kwargs)
        if ".gold." in (self.name or ""):
            self.state, self.state_details = "FAILED", "Job failed, ExitCode: 1"

    monkeypatch.setattr(models.JobRun, "__init__", gold_fails)
    dag = dagbag_for("dev").dags["lakehouse_daily"]
    states = _states(dag.test(logical_date=LOGICAL))
    assert (states["gold.customer_360"], states["freshness_check"]) == (
        "failed", "upstream_failed"
    )  # fmt: skip
    assert {s for t, s in states.items() if t not in ("gold.customer_360", "freshness_check")} == {
        "success"
    }
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    (alert,) = [json.loads(json.loads(m["Body"])["Message"]) for m in messages]
    assert (alert["task_id"], alert["logical_date"]) == ("gold.customer_360", DAY.isoformat())


@pytest.mark.slow
@pytest.mark.extended  # 2 min; the EMR-mode DAG tests above run in make test
@pytest.mark.usefixtures("airflow_db")
def test_local_mode_runs_the_same_dag_on_this_machine_and_builds_gold(
    spark: SparkSession, dagbag_for: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("LAKEHOUSE_HOME", str(home))
    monkeypatch.setenv("LAKEHOUSE_CRM_TOKEN", "local-dag-test-token")
    crm = f"http://127.0.0.1:{free_port()}/api/v1"
    monkeypatch.setenv("LAKEHOUSE__SOURCES__CRM__OPTIONS__BASE_URL", crm)
    start = DAY.isoformat()
    assert main(["generate-data", "--days", "1", "--scale", "0.05", "--start-date", start]) == 0
    dag = dagbag_for("local").dags["lakehouse_daily"]
    states = _states(dag.test(logical_date=LOGICAL))
    assert set(states.values()) == {"success"}, states
    gold = read_customer_360(spark, str(home / "lake/gold/customer_360"))
    customers = read_table(spark, str(home / "lake/silver/dim_customer")).where("is_current")
    assert gold.count() == customers.count() > 0
    assert {r.as_of_date for r in gold.select("as_of_date").distinct().collect()} == {DAY}
    assert not (home / "sources/crm_api.pid").exists()  # the teardown stopped the API

