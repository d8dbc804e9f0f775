"""The one Spark session for the whole test run, and shared fixtures."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from pyspark.sql import SparkSession

from jobs.common.config import Settings, load_settings
from jobs.common.paths import LakePaths
from jobs.common.spark import build_spark_session
from jobs.datagen.local_aws import LocalAws, running_local_aws
from tests.support.kafka import KafkaBroker, start_kafka, stop_kafka
from tests.support.moto_server import MotoServer, running_moto, use_moto
from tests.support.postgres import PostgresServer, start_postgres, stop_postgres
from tests.support.s3_lake import S3LakeWorld, s3_lake_world

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Test data is tiny: compiling generated code costs far more than it saves, and the
# suite runs ~40% faster interpreted (measured on apply_changes). Set for this process
# and the job subprocesses the tests start; the demo, benchmarks and EMR keep codegen.
os.environ.setdefault(
    "PYSPARK_SUBMIT_ARGS",
    "--conf spark.sql.codegen.wholeStage=false "
    "--conf spark.sql.codegen.factoryMode=NO_CODEGEN pyspark-shell",
)

# Airflow (tests/dags): its own home and SQLite metadata DB per test process, set
# before anything imports airflow; `airflow_db` (tests/dags/conftest.py) migrates it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="lakehouse-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(PROJECT_ROOT / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"

# Property tests drive real Spark + Delta, a few seconds per example: `make test` runs a
# small profile; HYPOTHESIS_PROFILE=thorough (make test-property) runs many more.
hypothesis_settings.register_profile("default", max_examples=4, deadline=None)
hypothesis_settings.register_profile("thorough", max_examples=60, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests first, longest first: with ``-n 2`` no worker is left alone at the end.

    ``@pytest.mark.weight(minutes)`` ranks the longest tests (measured, under ``-n 2``);
    other slow tests follow, then the rest.
    """

    def rank(item: pytest.Item) -> tuple[bool, float]:
        weight = item.get_closest_marker("weight")
        return item.get_closest_marker("slow") is None, -(weight.args[0] if weight else 0)

    items.sort(key=rank)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings("local", environ={})


@pytest.fixture(scope="session")
def spark(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    home = tmp_path_factory.mktemp("spark_home")
    session = build_spark_session(
        settings,
        LakePaths(str(home)),
        app_name="lakehouse-tests",
        overrides={"spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false"},
    )
    yield session
    session.stop()


@pytest.fixture
def lake(tmp_path: Path) -> LakePaths:
    """A fresh lake root per test, with the local layout created."""
    paths = LakePaths(str(tmp_path / "home"))
    paths.ensure_local_layout()
    return paths


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole test session."""
    server = start_postgres()
    yield server
    stop_postgres(server)


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaBroker]:
    """A real Kafka broker (one KRaft node on loopback) for the whole test session."""
    broker = start_kafka()
    yield broker
    stop_kafka(broker)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto server (S3, EMR Serverless, Secrets Manager, SNS, ...) per test process."""
    with running_moto() as server:
        yield server


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """AWS for one test: boto3 and Airflow pointed at a freshly reset moto server."""
    return use_moto(monkeypatch, moto_server)


@pytest.fixture(scope="session")
def local_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    """moto's S3 + DynamoDB (HTTP and TLS ports) in a server process of this test process."""
    with running_local_aws(tmp_path_factory.mktemp("local_aws")) as aws:
        yield aws


@pytest.fixture
def s3_lake(
    local_aws: LocalAws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> S3LakeWorld:
    """A fresh lake on S3 (buckets + the log store's table) for one test.

    boto3 in the test process reaches it too (file drops into the S3 landing zone).
    """
    world = s3_lake_world(local_aws, tmp_path)
    for name, value in local_aws.environ(world.lake.region).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return world
