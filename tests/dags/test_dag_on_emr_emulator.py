"""The jobs as EMR Serverless runs them: the emulated StartJobRun (tests/support/emr_emulator).

The artifact is built and uploaded by ``lakehouse package --upload dev``; the lake is
dev's (``lakehouse-dev-*`` buckets, the DynamoDB log store) on moto. Day 1 and most of
day 2 are run by a local driver on those buckets; day 2's Bronze -> Silver -> Gold chain
for FX rates is started by the real ``lakehouse_daily`` task code (``dag.test()``) and
``runtime_check`` by ``lakehouse submit``: each request runs on the emulated
emr-spark-8.2.0 image. Every table then equals the one a twin driver writes running the
same two days on local disk (one test: the two-day lake on S3 is the costly part).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from jobs.datagen.local_aws import LocalAws, running_local_aws
from tests.support.browser import look_at
from tests.support.emr_emulator import PLUGIN
from tests.support.moto_server import ACCOUNT
from tests.support.openlineage_schema import validation_errors
from tests.support.s3_lake import (
    PROJECT_ROOT,
    S3LakeWorld,
    comparable,
    last_json_line,
    s3_lake_world,
)

SEEDED = dt.date(2026, 1, 1)
DAY = dt.date(2026, 1, 2)
LOGICAL = dt.datetime(2026, 1, 2, 3, tzinfo=dt.UTC)
CHAIN = ("bronze.fx_rates", "silver.fx_rates", "gold.customer_360")
ROLE = f"arn:aws:iam::{ACCOUNT}:role/lakehouse-dev-emr-job"
LOG_GROUP = "/aws/emr-serverless/lakehouse-dev"  # config/dev.yaml emr.log_group



@pytest.fixture(scope="module")
def emulated_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    """The local AWS whose EMR Serverless runs job runs on the emulated image."""
    with running_local_aws(tmp_path_factory.mktemp("emr_aws"), [PLUGIN]) as aws:
        yield aws


def _dev_environ(world: S3LakeWorld, application_id: str) -> dict[str, str]:
    """What an operator's shell has for env dev: AWS (moto here) and the Terraform ids."""
    base = {k: v for k, v in world.environ.items() if not k.startswith("LAKEHOUSE__")}
    return {
        **base,
        "LAKEHOUSE__EMR__APPLICATION_ID": application_id,
        "LAKEHOUSE__EMR__EXECUTION_ROLE_ARN": ROLE,
        "LAKEHOUSE__ORCHESTRATION__RETRIES": "0",
        "LAKEHOUSE__ORCHESTRATION__WAITER_DELAY_SECONDS": "2",
    }


def _timed(step: str, times: dict[str, float], started: float) -> None:
    times[step] = round(time.monotonic() - started, 1)


@pytest.mark.slow
@pytest.mark.weight(20)
@pytest.mark.extended
@pytest.mark.usefixtures("airflow_db")
def test_two_days_on_s3_equal_local_disk_with_day_2s_fx_chain_run_on_the_emulated_emr(
    emulated_aws: LocalAws,
    tmp_path: Path,
    dagbag_for: Any,
    monkeypatch: pytest.MonkeyPatch,
    spark: SparkSession,
) -> None:
    """The daily pipeline on S3 (dev's buckets, the DynamoDB log store) for two days.

    Every job of day 1, and day 2's jobs but the FX chain, by a local driver; day 2's
    ``runtime_check`` by ``lakehouse submit`` and its Bronze -> Silver -> Gold FX chain
    by the daily DAG's own tasks, each run on the emulated emr-spark-8.2.0 image. A
    twin driver runs the same two days on local disk: every table equals its twin.
    """
    times: dict[str, float] = {}
    world = s3_lake_world(emulated_aws, tmp_path, prefix="lakehouse-dev")
    emr = world.client("emr-serverless")
    app_id = emr.create_application(
        name="lakehouse-dev", releaseLabel="emr-spark-8.2.0", type="SPARK", architecture="X86_64"
    )["applicationId"]
    world.client("logs").create_log_group(logGroupName=LOG_GROUP)
    dev = _dev_environ(world, app_id)
    for name, value in dev.items():
        if name.startswith(("AWS_", "LAKEHOUSE__")):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)

    # the twin: both days on local disk, alongside
    started = time.monotonic()
    days = ["--days", "2", "--scale", "0.05"]
    twin = world.spawn("tests.support.lake_days", "run", str(tmp_path / "local.json"), *days,
                       environ=world.local_environ(tmp_path / "local_home"))  # fmt: skip
    # the release, built for the application's platform and uploaded as an operator does
    built = world.run("jobs.main", "package", "--out", str(tmp_path / "artifact"),
                      "--upload", "dev", environ=dev)  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    _timed("package", times, started)
    on_s3 = world.run("tests.support.lake_days", "run", str(tmp_path / "s3.json"), *days,
                      "--last-day-skip", ",".join(CHAIN), timeout=1500,
                      extra={"LAKEHOUSE_HOME": str(tmp_path / "s3_home")})  # fmt: skip
    assert on_s3.returncode == 0, on_s3.stderr[-3000:]
    _timed("two days on S3 by a local driver (day 2 without the FX chain)", times, started)
    s3 = world.client("s3")
    for day in (SEEDED, DAY):  # the FX files where dev reads them
        name = f"fx/rates/{day.isoformat()}.json"
        s3.upload_file(str(world.sources / name), world.lake.buckets["artifacts"],
                       f"ops/sources/{name}")  # fmt: skip

    # lakehouse submit runtime_check: the request runs on the image and succeeds
    started = time.monotonic()
    submitted = world.run("jobs.main", "submit", "runtime_check", "--env", "dev",
                          "--date", DAY.isoformat(), environ=dev, timeout=900)  # fmt: skip
    assert submitted.returncode == 0, submitted.stdout[-3000:] + _worker_logs(emulated_aws)
    assert submitted.stdout.rstrip().endswith(f"adhoc.runtime_check.{DAY}: SUCCESS")
    _timed("submit runtime_check", times, started)

    # the daily DAG's own tasks for the FX chain (the others marked done): EMR runs them
    started = time.monotonic()
    dag = dagbag_for("dev", **{k: v for k, v in dev.items() if k.startswith("LAKEHOUSE__")})
    chosen = "|".join(t.replace(".", r"\.") for t in (*CHAIN, "freshness_check"))
    run = dag.dags["lakehouse_daily"].test(
        logical_date=LOGICAL, mark_success_pattern=f"(?!(?:{chosen})$).*"
    )
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert set(states.values()) == {"success"}, (states, _worker_logs(emulated_aws))
    _timed("dag.test bronze -> silver -> gold", times, started)

    runs = {r["name"]: r for r in emr.list_job_runs(applicationId=app_id)["jobRuns"]}
    expected_names = {f"adhoc.runtime_check.{DAY}", *(f"lakehouse_daily.{j}.{DAY}" for j in CHAIN)}
    assert set(runs) == expected_names  # only the chosen tasks reached EMR
    outcomes = _outcomes(emulated_aws)
    assert {o["state"] for o in outcomes.values()} == {"SUCCESS"}
    for name, job_run in runs.items():
        detail = emr.get_job_run(applicationId=app_id, jobRunId=job_run["id"])["jobRun"]
        assert detail["state"] == "SUCCESS", detail.get("stateDetails")
        times[f"emr run {name}"] = outcomes[job_run["id"]]["seconds"]
        _assert_logs_where_the_request_says(world, detail, app_id)

    # what the jobs on EMR wrote: the runtime check's row, run summaries under dev's ops
    ops = world.keys(f"{world.lake.root}/")
    bucket = world.lake.buckets["artifacts"]
    summaries = {}
    for job in ("runtime_check", *CHAIN):
        key = f"ops/runs/{job}__{DAY}__a1/summary.json"
        summaries[job] = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert (summaries[job]["status"], summaries[job]["env"]) == ("SUCCEEDED", "dev"), key
    gold_output = summaries["gold.customer_360"]["outputs"][0]
    assert gold_output["location"] == "s3://lakehouse-dev-gold/customer_360"

    # every table, quarantine and control table is on S3, and equals its local twin
    started = time.monotonic()
    _, twin_err = twin.communicate(timeout=1500)
    assert twin.returncode == 0, twin_err[-3000:]
    s3_result = json.loads((tmp_path / "s3.json").read_text())
    local_result = json.loads((tmp_path / "local.json").read_text())
    assert [r["status"] for r in s3_result["runs"]] == ["SUCCEEDED"] * 27  # 15 + 15 - 3
    tables = s3_result["tables"]
    assert sorted(tables) == sorted(local_result["tables"])
    assert {"gold.customer_360", "_control.silver_progress"} <= set(tables)
    assert any(name.startswith("_quarantine.") for name in tables)
    assert all(location.startswith("s3://lakehouse-dev-") for location in tables.values())
    taken = world.run("tests.support.lake_days", "snapshot", str(tmp_path / "snap"),
                      extra={"LAKEHOUSE_HOME": str(tmp_path / "snap_home")})  # fmt: skip
    assert taken.returncode == 0, taken.stderr[-3000:]
    # (and the runtime check's own table, which the twin does not run)
    snapped = last_json_line(taken.stdout)["tables"]
    assert sorted(snapped) == sorted([*tables, "_control.runtime_check"])
    for name, location in local_result["tables"].items():
        ours = spark.read.format("delta").load(location)
        theirs = spark.read.parquet(str(tmp_path / "snap" / name))
        if name in CHAIN:
            assert theirs.count() > 0, name
        assert_df_equality(comparable(theirs), comparable(ours), ignore_row_order=True,
                           ignore_nullable=True, ignore_column_order=True)  # fmt: skip
    _timed("snapshot and compare", times, started)

    # the local driver's run summaries and lineage under the S3 ops prefix, none on disk
    for run_record in s3_result["runs"]:
        assert f"ops/runs/{run_record['run_id']}/summary.json" in ops
        events = [k for k in ops if k.startswith(f"ops/lineage/{run_record['run_id']}/")]
        assert [k.rsplit("-", 1)[1] for k in events] == ["START.json", "COMPLETE.json"], events
    lineage_key = next(k for k in ops if k.startswith("ops/lineage/gold.customer_360__"))
    body = s3.get_object(Bucket=bucket, Key=lineage_key)["Body"].read()
    assert validation_errors(json.loads(body)) == []
    s3_home = tmp_path / "s3_home"
    assert not any(p.name in ("runs", "lineage", "lake") for p in s3_home.rglob("*"))
    assert not list(Path.cwd().glob("s3*:"))  # no folder named after a scheme

    # one complete log-store entry per commit file, keyed by the s3:// table path, from
    # both drivers (the local one and EMR's)
    entries = world.log_entries()
    assert entries and all(e["complete"] == "true" for e in entries)
    assert {e["tablePath"].split("://")[0] for e in entries} == {"s3"}
    gold = tables["gold.customer_360"]
    assert sorted(int(e["fileName"][:20]) for e in entries if e["tablePath"] == gold) == (
        world.commit_files(gold)
    )

    # the report page from dev's run records on S3 (both drivers' summaries and events):
    # every daily job in the graph; the gate pages, on S3, shown by their locations
    page = tmp_path / "report" / "index.html"
    reported = world.run("jobs.main", "report", "--env", "dev", "--out", str(page), environ=dev)
    assert reported.returncode == 0, reported.stderr[-3000:]
    seen = look_at(page, tmp_path / "report.png")
    assert (seen.console_errors, seen.blocked_requests) == ([], [])
    assert {r["job"] for r in s3_result["runs"]} <= set(seen.look["lineage_texts"])
    assert "gold.customer_360" in [row[0] for row in seen.look["freshness"]]
    locations = seen.look["gate_locations"]
    assert locations and all(p.startswith(f"s3://{bucket}/ops/runs/") for p in locations)
    assert {row[1] for row in seen.look["runs"]} == {"SUCCEEDED"}
    print(json.dumps(times, indent=2))  # the figures of docs/architecture.md (-s shows them)


def _outcomes(aws: LocalAws) -> dict[str, dict[str, Any]]:
    found = {}
    for outcome in (aws.folder / "emr-runs").glob("*/outcome.json"):
        found[outcome.parent.name] = json.loads(outcome.read_text())
    return found


def _worker_logs(aws: LocalAws) -> str:
    """The tail of every emulated run's driver stderr (for a failing assertion)."""
    parts = []
    for stderr in sorted((aws.folder / "emr-runs").glob("*/stderr")):
        lines = [ln for ln in stderr.read_text(errors="replace").splitlines() if " INFO " not in ln]
        parts.append(f"--- {stderr.parent.name}\n" + "\n".join(lines[-40:]))
    return "\n".join(parts)


def _assert_logs_where_the_request_says(
    world: S3LakeWorld, job_run: dict[str, Any], app_id: str
) -> None:
    monitoring = job_run["configurationOverrides"]["monitoringConfiguration"]
    log_uri = monitoring["s3MonitoringConfiguration"]["logUri"]
    bucket, _, prefix = log_uri.removeprefix("s3://").partition("/")
    driver = f"{prefix}applications/{app_id}/jobs/{job_run['jobRunId']}/SPARK_DRIVER"
    keys = world.keys(f"s3://{bucket}/{driver}/")
    assert keys == [f"{driver}/stderr.gz", f"{driver}/stdout.gz"]
    body = world.client("s3").get_object(Bucket=bucket, Key=f"{driver}/stderr.gz")["Body"]
    assert b"SparkContext: Running Spark version" in gzip.decompress(body.read())
    cloudwatch = monitoring["cloudWatchLoggingConfiguration"]
    streams = world.client("logs").describe_log_streams(
        logGroupName=cloudwatch["logGroupName"],
        logStreamNamePrefix=f"{cloudwatch['logStreamNamePrefix']}/applications/{app_id}/"
        f"jobs/{job_run['jobRunId']}/",
    )["logStreams"]
    assert len(streams) == 2


PROBE = """
import glob, json, os, sys
try:
    import yaml  # a Debian package on this machine, not on the bare image
    found_yaml = True
except ImportError:
    found_yaml = False
import pyspark
print("PROBE " + json.dumps({
    "executable": sys.executable, "version": sys.version.split()[0],
    "pyspark": pyspark.__file__, "yaml": found_yaml, "cwd": os.getcwd(),
    "checkout": os.path.exists(%(checkout)r), "pyenv": os.path.exists("/root/.pyenv"),
    "delta": sorted(os.path.basename(p) for p in glob.glob("/usr/share/aws/delta/lib/*.jar")),
    "s3a": any("hadoop-aws" in p for p in glob.glob("/usr/share/aws/emr/s3a/lib/*.jar")),
    "env": sorted(k for k in os.environ if k.startswith(("LAKEHOUSE", "UV_", "VIRTUAL_ENV"))),
}))
"""


@pytest.mark.slow  # ~12 s: one spark-submit on the image
def test_a_job_on_the_emulated_image_sees_the_image_and_nothing_of_this_machine(
    emulated_aws: LocalAws, tmp_path: Path
) -> None:
    world = s3_lake_world(emulated_aws, tmp_path, prefix="lakehouse-probe")
    emr = world.client("emr-serverless")
    app_id = emr.create_application(
        name="probe", releaseLabel="emr-spark-8.2.0", type="SPARK"
    )["applicationId"]
    bucket = world.lake.buckets["artifacts"]
    probe = PROBE % {"checkout": str(PROJECT_ROOT / "pyproject.toml")}
    world.client("s3").put_object(Bucket=bucket, Key="probe.py", Body=probe.encode())
    run_id = emr.start_job_run(
        applicationId=app_id, executionRoleArn=ROLE, clientToken="probe-1", name="probe",
        jobDriver={"sparkSubmit": {
            "entryPoint": f"s3://{bucket}/probe.py",
            "sparkSubmitParameters": "--conf spark.emr-serverless.driverEnv.PYSPARK_PYTHON="
                                     "/usr/bin/python3.11",
        }},
        configurationOverrides={"monitoringConfiguration": {
            "s3MonitoringConfiguration": {"logUri": f"s3://{bucket}/logs/"}}},
    )["jobRunId"]  # fmt: skip
    again = emr.start_job_run(
        applicationId=app_id, executionRoleArn=ROLE, clientToken="probe-1", name="probe",
        jobDriver={"sparkSubmit": {"entryPoint": f"s3://{bucket}/probe.py"}},
    )["jobRunId"]
    assert again == run_id  # the same token is the same run, as on EMR
    states = []
    for _ in range(120):
        states.append(emr.get_job_run(applicationId=app_id, jobRunId=run_id)["jobRun"]["state"])
        if states[-1] in ("SUCCESS", "FAILED"):
            break
        time.sleep(1)
    assert states[-1] == "SUCCESS", _worker_logs(emulated_aws)
    assert "RUNNING" in states
    key = f"logs/applications/{app_id}/jobs/{run_id}/SPARK_DRIVER/stdout.gz"
    stdout = gzip.decompress(world.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    (line,) = [ln for ln in stdout.decode().splitlines() if ln.startswith("PROBE ")]
    seen = json.loads(line.removeprefix("PROBE "))
    assert seen == {
        "executable": "/usr/bin/python3.11",
        "version": seen["version"],
        "pyspark": "/usr/lib/spark/python/lib/pyspark.zip/pyspark/__init__.py",
        "yaml": False,
        "cwd": "/home/hadoop",
        "checkout": False,
        "pyenv": False,
        "delta": ["delta-spark.jar", "delta-storage-s3-dynamodb.jar", "delta-storage.jar"],
        "s3a": True,
        "env": [],
    }
    assert seen["version"].startswith("3.11.")
