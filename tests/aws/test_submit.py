"""``lakehouse submit`` against a moto server (EMR Serverless over HTTP)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from aws.emr import client_token
from aws.submit import submit
from jobs.common.config import Settings, load_settings
from jobs.common.errors import ConcurrentRunError
from jobs.main import main
from tests.support.moto_server import ACCOUNT, REGION, MotoServer

ROLE = f"arn:aws:iam::{ACCOUNT}:role/lakehouse-dev-emr-job"


def _job_runs(app_id: str) -> list[Any]:
    """moto's own records of the application's runs (the server runs in this process)."""
    from moto.emrserverless.models import emrserverless_backends

    return list(emrserverless_backends[ACCOUNT][REGION].job_runs.get(app_id, []))


@pytest.fixture
def emr(aws: MotoServer, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str, Settings]:
    client = boto3.client("emr-serverless", region_name=REGION)
    # moto only accepts labels of the emr-X.Y.0 form (ours, emr-spark-8.2.0, is in Terraform)
    app_id = client.create_application(
        name="lakehouse-dev", releaseLabel="emr-7.12.0", type="SPARK"
    )["applicationId"]
    monkeypatch.setenv("LAKEHOUSE__EMR__APPLICATION_ID", app_id)
    monkeypatch.setenv("LAKEHOUSE__EMR__EXECUTION_ROLE_ARN", ROLE)
    return client, app_id, load_settings("dev")


def test_submit_sends_the_dag_request_and_exits_with_the_run_state(
    emr: tuple[Any, str, Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    client, app_id, _ = emr
    code = main(["submit", "silver.fct_orders", "--env", "dev", "--date", "2026-01-05"])
    out = capsys.readouterr().out
    assert code == 0, out
    (run,) = client.list_job_runs(applicationId=app_id)["jobRuns"]
    detail = client.get_job_run(applicationId=app_id, jobRunId=run["id"])["jobRun"]
    assert detail["name"] == "adhoc.silver.fct_orders.2026-01-05"
    assert detail["executionRole"] == ROLE
    submit_spec = detail["jobDriver"]["sparkSubmit"]
    assert submit_spec["entryPoint"] == "s3://lakehouse-dev-artifacts/releases/0.1.0/main.py"
    assert submit_spec["entryPointArguments"] == [
        "run", "silver.fct_orders", "--env", "dev", "--date", "2026-01-05", "--attempt", "1",
    ]  # fmt: skip
    archive = "s3://lakehouse-dev-artifacts/releases/0.1.0/pyspark_venv.tar.gz"
    assert f"spark.archives={archive}#environment" in (
        submit_spec["sparkSubmitParameters"]
    )
    logs = detail["configurationOverrides"]["monitoringConfiguration"]
    assert logs["s3MonitoringConfiguration"]["logUri"] == (
        "s3://lakehouse-dev-artifacts/ops/logs/emr/adhoc/silver.fct_orders/2026-01-05/"
    )
    assert logs["cloudWatchLoggingConfiguration"]["logGroupName"] == (
        "/aws/emr-serverless/lakehouse-dev"
    )
    (recorded,) = _job_runs(app_id)
    assert recorded.client_token == client_token("adhoc.silver.fct_orders.2026-01-05", 1)
    assert recorded.execution_timeout_minutes == 60
    assert f"EMR Serverless job run {run['id']}" in out
    assert f"logs: s3://lakehouse-dev-artifacts/ops/logs/emr/adhoc/silver.fct_orders/2026-01-05/applications/{app_id}/jobs/{run['id']}/" in out  # noqa: E501
    assert out.rstrip().endswith("adhoc.silver.fct_orders.2026-01-05: SUCCESS")


def test_a_failed_run_is_reported_and_fails_the_command(emr: tuple[Any, str, Settings]) -> None:
    _, app_id, settings = emr

    def fail_it(run_id: str, links: tuple[str, ...]) -> None:  # as EMR would, later
        (run,) = [r for r in _job_runs(app_id) if r.id == run_id]
        run.state, run.state_details = "FAILED", "Job failed, ExitCode: 1"

    run = submit(settings, "gold.customer_360", "2026-01-05", on_start=fail_it)
    assert (run.state, run.details) == ("FAILED", "Job failed, ExitCode: 1")


def test_a_live_run_of_the_same_job_and_date_is_joined_not_duplicated(
    emr: tuple[Any, str, Settings],
) -> None:
    client, app_id, settings = emr
    first = submit(settings, "bronze.fx_rates", "2026-01-05", wait=False)
    (live,) = _job_runs(app_id)
    live.state = "RUNNING"  # still going when the command is run again

    def finish(seconds: float) -> None:
        live.state = "SUCCESS"

    again = submit(settings, "bronze.fx_rates", "2026-01-05", sleep=finish)
    assert again.run_id == first.run_id and again.state == "SUCCESS"
    assert len(client.list_job_runs(applicationId=app_id)["jobRuns"]) == 1


def test_a_job_another_run_is_writing_is_refused(emr: tuple[Any, str, Settings]) -> None:
    _, app_id, settings = emr
    submit(settings, "silver.fct_orders", "2026-01-05", wait=False, prefix="lakehouse_daily")
    (daily,) = _job_runs(app_id)
    daily.state = "RUNNING"  # the scheduled run is still writing silver.fct_orders
    with pytest.raises(ConcurrentRunError, match=r"silver\.fct_orders is being written by run "
                       r"lakehouse_daily\.silver\.fct_orders\.2026-01-05"):  # fmt: skip
        submit(settings, "silver.fct_orders", "2026-01-04", prefix="backfill")
    assert submit(settings, "silver.dim_customer", "2026-01-04", prefix="backfill").state == (
        "SUCCESS"
    )  # another table: fine


def test_a_backfill_on_emr_submits_each_job_and_date_in_order(
    emr: tuple[Any, str, Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    _, app_id, _ = emr
    boto3.client("s3", region_name=REGION).create_bucket(  # run records (Terraform makes it)
        Bucket="lakehouse-dev-artifacts", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    command = ["backfill", "--env", "dev", "--from", "2026-01-04", "--to", "2026-01-05",
               "--jobs", "bronze.fx_rates,silver.fx_rates"]  # fmt: skip
    assert main(command) == 0
    assert "backfill: 4 run, 0 already done, 0 failed" in capsys.readouterr().out
    runs = [(r.name, r.client_token) for r in _job_runs(app_id)]
    assert [name for name, _ in runs] == [
        "backfill.bronze.fx_rates.2026-01-04", "backfill.silver.fx_rates.2026-01-04",
        "backfill.bronze.fx_rates.2026-01-05", "backfill.silver.fx_rates.2026-01-05",
    ]  # fmt: skip
    assert all(token == client_token(name, 1) for name, token in runs)


def test_a_retried_airflow_task_joins_the_run_its_earlier_try_left_going(
    emr: tuple[Any, str, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    import time
    from types import SimpleNamespace

    from moto.emrserverless.models import EMRServerlessBackend

    from aws import airflow_tasks
    from aws.airflow_tasks import EmrJobOperator

    client, app_id, settings = emr
    name = "lakehouse_daily.gold.customer_360.2026-01-05"
    first = submit(settings, "gold.customer_360", "2026-01-05", wait=False,
                   prefix="lakehouse_daily")  # fmt: skip  (try 1; its worker then died)
    (live,) = _job_runs(app_id)
    live.state = "RUNNING"
    operator = EmrJobOperator(
        task_id="gold.customer_360", application_id=app_id, execution_role_arn=ROLE,
        job_driver={"sparkSubmit": {"entryPoint": "s3://a/main.py"}}, name=name,
        deferrable=False, waiter_delay=1, waiter_max_attempts=10, region_name=REGION,
    )  # fmt: skip
    # the earlier try's run ends once the retry has polled it twice (it joined it and waits):
    # tied to what the operator does, not to a clock, so a slow machine cannot end the run
    # before the retry has looked for it
    polls: list[str] = []
    get_job_run = EMRServerlessBackend.get_job_run

    def poll(backend: Any, application_id: str, job_run_id: str) -> Any:
        polls.append(job_run_id)
        if polls.count(first.run_id) >= 2:
            live.state = "SUCCESS"
        return get_job_run(backend, application_id, job_run_id)

    monkeypatch.setattr(EMRServerlessBackend, "get_job_run", poll)
    lineage_parent = airflow_tasks.lineage_parent

    def slow_lineage_parent(ti: Any) -> str | None:  # CI's first import of the provider: 2 s
        time.sleep(2)
        return lineage_parent(ti)

    monkeypatch.setattr(airflow_tasks, "lineage_parent", slow_lineage_parent)
    ti = SimpleNamespace(try_number=2, dag_id="lakehouse_daily", task_id="gold.customer_360")
    assert operator.execute({"ti": ti}) == first.run_id
    assert set(polls) == {first.run_id}
    assert len(client.list_job_runs(applicationId=app_id)["jobRuns"]) == 1  # no second run
