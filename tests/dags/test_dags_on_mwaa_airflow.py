"""The DAGs on the Airflow MWAA deploys (3.0.6, providers of its constraints), on moto.

The project's venv has Airflow 3.3 (what the DAGs are written and unit-tested on); MWAA
offers no 3.3 (docs/adr/0005), so the DAG folder is also parsed and ``dag.test()``-ed
by a second venv (``make mwaa-airflow``: Python 3.12 as MWAA's image, hash-locked
``tests/dags/mwaa/requirements.txt``), from the DAG folder ``lakehouse package`` builds
for MWAA's bucket (no checkout on the path), against the same moto EMR Serverless.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from aws.emr import client_token
from aws.package import _uv, build_mwaa_bundle
from tests.dags.conftest import gold_summary_written_by_the_job
from tests.support.moto_server import ACCOUNT, REGION
from tests.support.s3_lake import PROJECT_ROOT

MWAA_PYTHON = PROJECT_ROOT / ".tools" / "mwaa-airflow" / "bin" / "python"
DAY = dt.date(2026, 1, 5)
JOBS = 15


@pytest.mark.slow
@pytest.mark.extended  # a second Airflow: its venv is installed by make test-extended
def test_the_dags_run_on_mwaa_airflow_3_0_6_with_its_amazon_provider(
    emr_dev: tuple[Any, str], tmp_path: Path
) -> None:
    assert MWAA_PYTHON.is_file(), "the MWAA Airflow venv is missing: make mwaa-airflow"
    client, app_id = emr_dev
    gold_summary_written_by_the_job(DAY)
    # MWAA's bucket as `lakehouse package` builds it (its bundle step, from our wheel):
    # the DAG files, our packages beside them
    built = subprocess.run(
        [_uv(), "build", "--wheel", "--out-dir", str(tmp_path / "wheel"), str(PROJECT_ROOT)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    bundle = tmp_path / "mwaa"
    build_mwaa_bundle(next((tmp_path / "wheel").glob("lakehouse-*.whl")), bundle)
    requirements = (bundle / "requirements.txt").read_text().splitlines()
    assert requirements[0].endswith("/constraints-3.0.6/constraints-3.12.txt")
    assert "apache-airflow-providers-amazon[aiobotocore]==9.12.0" in requirements
    home = tmp_path / "airflow"
    environ = {
        **{k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "VIRTUAL_ENV", "PYTHON"))},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(bundle / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW_CONN_AWS_DEFAULT": os.environ["AIRFLOW_CONN_AWS_DEFAULT"],
        "LAKEHOUSE_ENV": "dev",
    }
    result = tmp_path / "result.json"
    done = subprocess.run(
        [str(MWAA_PYTHON), str(Path(__file__).parent / "mwaa" / "check_dags.py"), str(result),
         f"{DAY.isoformat()}T03:00:00"],
        env=environ, capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    (tmp_path / "airflow.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr[-4000:]
    found = json.loads(result.read_text())
    assert (found["airflow"], found["amazon"]) == ("3.0.6", "9.12.0")
    assert found["python"].startswith("3.12.")
    assert found["project_from"] == str(bundle / "dags")  # not the checkout
    assert found["import_errors"] == {}
    assert found["dags"] == ["lakehouse_daily", "lakehouse_maintenance"]
    states = found["states"]
    assert set(states.values()) == {"success"}, f"{states}: see {tmp_path / 'airflow.log'}"
    runs = client.list_job_runs(applicationId=app_id)["jobRuns"]
    assert sorted(r["name"] for r in runs) == sorted(
        f"lakehouse_daily.{t}.{DAY}" for t in states if t != "freshness_check"
    )
    assert len(runs) == JOBS
    from moto.emrserverless import models

    for recorded in models.emrserverless_backends[ACCOUNT][REGION].job_runs[app_id]:
        assert recorded.client_token == client_token(recorded.name, 1)
        params = recorded.job_driver["sparkSubmit"]["sparkSubmitParameters"]
        assert params.startswith("--jars /usr/share/aws/delta/lib/delta-spark.jar,")
        assert "OPENLINEAGE_PARENT_ID=default/lakehouse_daily." in params
