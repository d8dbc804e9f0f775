"""Airflow's metadata DB (SQLite, per test process) and DAG loading per environment."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import PROJECT_ROOT
from tests.support.moto_server import ACCOUNT, REGION, MotoServer

EMR_IDS = {
    "LAKEHOUSE__EMR__APPLICATION_ID": "00fkq1example",
    "LAKEHOUSE__EMR__EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/lakehouse-dev-emr-job",
}


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """``airflow db migrate`` once per test process (the DB file is the process's own)."""
    airflow = Path(sys.executable).parent / "airflow"
    result = subprocess.run(
        [str(airflow), "db", "migrate"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"


@pytest.fixture
def dagbag_for(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """``dagbag_for(env)``: the DAG folder parsed as Airflow would in ``env``."""
    from airflow.dag_processing.dagbag import DagBag

    def load(env: str, **environ: str) -> DagBag:
        monkeypatch.setenv("LAKEHOUSE_ENV", env)
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        return DagBag(dag_folder=str(PROJECT_ROOT / "dags"))

    yield load


@pytest.fixture
def emr_dev(aws: MotoServer, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    """A moto EMR Serverless application and lake bucket; env dev pointed at them."""
    client = boto3.client("emr-serverless", region_name=REGION)
    app_id = client.create_application(
        name="lakehouse-dev", releaseLabel="emr-7.12.0", type="SPARK"
    )["applicationId"]
    ids = {**EMR_IDS, "LAKEHOUSE__EMR__APPLICATION_ID": app_id,
           "LAKEHOUSE__EMR__EXECUTION_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/emr-job",
           "LAKEHOUSE__ORCHESTRATION__RETRIES": "0"}  # fmt: skip
    for name, value in ids.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(  # run records (Terraform makes it)
        Bucket="lakehouse-dev-artifacts", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    return client, app_id


def gold_summary_written_by_the_job(day: dt.date) -> None:
    """What the Gold job run writes on S3 (moto's EMR does not run the job itself)."""
    summary = {"run_id": f"gold.customer_360__{day}__a1", "status": "SUCCEEDED",
               "ended_at": "2026-01-06T04:10:00+00:00", "notes": {}}  # fmt: skip
    boto3.client("s3", region_name=REGION).put_object(
        Bucket="lakehouse-dev-artifacts",
        Key=f"ops/runs/gold.customer_360__{day}__a1/summary.json",
        Body=json.dumps(summary).encode(),
    )
