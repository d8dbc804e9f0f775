from __future__ import annotations

import re

import pytest

from aws.emr import (
    ArtifactLocation,
    client_token,
    configuration_overrides,
    job_driver,
    run_name,
    with_lineage_parent,
)
from jobs.common.config import Settings, load_settings

ARTIFACT = ArtifactLocation("s3://lakehouse-dev-artifacts/1.4.0")
DELTA_JARS = [
    "/usr/share/aws/delta/lib/delta-spark.jar",
    "/usr/share/aws/delta/lib/delta-storage.jar",
    "/usr/share/aws/delta/lib/delta-storage-s3-dynamodb.jar",
]


@pytest.fixture(scope="module")
def dev() -> Settings:
    return load_settings("dev", environ={})


def test_job_driver_runs_the_versioned_entry_script_with_the_venv_and_the_listener(
    dev: Settings,
) -> None:
    driver = job_driver(dev, ARTIFACT, "silver.fct_orders", "{{ ds }}", attempt=2)
    assert driver["sparkSubmit"]["entryPoint"] == "s3://lakehouse-dev-artifacts/1.4.0/main.py"
    assert driver["sparkSubmit"]["entryPointArguments"] == [
        "run", "silver.fct_orders", "--env", "dev", "--date", "{{ ds }}", "--attempt", "2",
    ]  # fmt: skip
    assert driver["sparkSubmit"]["sparkSubmitParameters"].split(" ") == [
        "--jars", ",".join([*DELTA_JARS,
                            "s3://lakehouse-dev-artifacts/releases/jars/openlineage-spark_2.13-1.53.0.jar"]),
        "--conf", "spark.archives=s3://lakehouse-dev-artifacts/1.4.0/pyspark_venv.tar.gz#environment",
        "--conf", "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON=./environment/bin/python",
        "--conf", "spark.emr-serverless.driverEnv.PYSPARK_PYTHON=./environment/bin/python",
        "--conf", "spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python",
        "--conf", "spark.driver.cores=2", "--conf", "spark.driver.memory=8g",
        "--conf", "spark.executor.cores=4", "--conf", "spark.executor.memory=16g",
        "--conf", "spark.dynamicAllocation.maxExecutors=16",
    ]  # fmt: skip


def test_a_bronze_window_reaches_the_job(dev: Settings) -> None:
    driver = job_driver(dev, ARTIFACT, "bronze.opdb_orders", "2026-01-05",
                        window=("2026-01-01", "2026-01-04"))  # fmt: skip
    assert driver["sparkSubmit"]["entryPointArguments"][-4:] == [
        "--from", "2026-01-01", "--to", "2026-01-04"
    ]  # fmt: skip


def test_without_the_listener_only_the_image_jars_are_passed(dev: Settings) -> None:
    off = load_settings("dev", environ={"LAKEHOUSE__LINEAGE__SPARK_LISTENER__ENABLED": "false"})
    params = job_driver(off, ARTIFACT, "bronze.fx_rates", "2026-01-05")["sparkSubmit"]
    tokens = params["sparkSubmitParameters"].split(" ")
    assert tokens[:2] == ["--jars", ",".join(DELTA_JARS)]
    assert "spark.executor.memory=8g" in params["sparkSubmitParameters"]  # the bronze size


def test_delta_and_its_log_store_come_from_the_release_image(dev: Settings) -> None:
    # emr-spark-8.2.0 ships Delta 4.2.0 under /usr/share/aws/delta/lib (docs/adr/0005);
    # a job that does not name them starts without Delta on its classpath
    params = job_driver(dev, ARTIFACT, "gold.customer_360", "2026-01-05")["sparkSubmit"]
    tokens = params["sparkSubmitParameters"].split(" ")
    assert tokens.count("--jars") == 1  # spark-submit keeps the last --jars only
    jars = tokens[tokens.index("--jars") + 1].split(",")
    assert jars[:3] == DELTA_JARS
    assert not any(t.startswith("spark.jars=") for t in tokens)


def test_the_lineage_parent_reaches_the_driver_once(dev: Settings) -> None:
    driver = job_driver(dev, ARTIFACT, "gold.customer_360", "2026-01-05")
    first = with_lineage_parent(driver, "airflow/lakehouse_daily.gold/01")
    again = with_lineage_parent(first, "airflow/lakehouse_daily.gold/02")
    params = again["sparkSubmit"]["sparkSubmitParameters"]
    assert params.count("OPENLINEAGE_PARENT_ID") == 1
    assert params.endswith(
        "--conf spark.emr-serverless.driverEnv.OPENLINEAGE_PARENT_ID="
        "airflow/lakehouse_daily.gold/02"
    )
    assert driver["sparkSubmit"]["sparkSubmitParameters"].count("OPENLINEAGE") == 0  # unchanged


def test_logs_go_to_s3_and_cloudwatch(dev: Settings) -> None:
    assert configuration_overrides(dev, log_prefix="lakehouse_daily/gold.customer_360/D") == {
        "monitoringConfiguration": {
            "s3MonitoringConfiguration": {
                "logUri": "s3://lakehouse-dev-artifacts/ops/logs/emr/lakehouse_daily/gold.customer_360/D/"
            },
            "cloudWatchLoggingConfiguration": {
                "enabled": True,
                "logGroupName": "/aws/emr-serverless/lakehouse-dev",
                "logStreamNamePrefix": "lakehouse_daily/gold.customer_360/D",
            },
        }
    }


def test_tokens_are_deterministic_bounded_and_distinct_per_try() -> None:
    name = run_name("silver.fct_orders", "2026-01-05", dag_id="lakehouse_daily")
    assert name == "lakehouse_daily.silver.fct_orders.2026-01-05"
    first, retry = client_token(name, 1), client_token(name, 2)
    assert first == client_token(name, 1) and first != retry
    # StartJobRun: 1-64 characters of [A-Za-z0-9._-]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]{1,64}", t) for t in (first, retry)), (first, retry)


def test_an_artifact_needs_the_artifacts_bucket(settings: Settings) -> None:
    with pytest.raises(ValueError, match=r"storage\.artifacts_uri is not set for env local"):
        ArtifactLocation.for_settings(settings)
