"""Airflow's metadata DB (SQLite, per test process) and DAG loading per environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

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
