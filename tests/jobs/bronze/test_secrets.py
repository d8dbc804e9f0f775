"""Source credentials come from Secrets Manager at job start and are never written anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from pyspark.sql import SparkSession

from jobs.common.config import load_settings
from jobs.common.logs import configure_logging
from jobs.common.run_context import RunContext
from jobs.runner import execute
from tests.jobs.bronze.conftest import PASSWORD_VAR, OpdbWorld
from tests.support.moto_server import REGION, MotoServer

pytestmark = pytest.mark.integration


def test_a_jdbc_password_from_secrets_manager_is_never_logged_or_stored(
    spark: SparkSession,
    opdb: OpdbWorld,
    aws: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = opdb.server.password
    boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="lakehouse/test/opdb", SecretString=json.dumps({"password": secret})
    )
    monkeypatch.delenv(PASSWORD_VAR)  # the only way in is the secret
    settings = load_settings(
        "local",
        environ={**opdb.environ, "LAKEHOUSE__SOURCES__OPDB__CREDENTIALS":
                 "secretsmanager:lakehouse/test/opdb"},
    )  # fmt: skip
    opdb.commit_day(1)
    configure_logging("DEBUG")  # our most verbose setting
    try:
        summary = execute(RunContext("bronze.opdb_orders", "local", opdb.day(1)), settings,
                          opdb.lake, spark)  # fmt: skip
    finally:
        configure_logging("INFO")
    assert summary.status == "SUCCEEDED" and (summary.outputs[0].rows or 0) > 0

    written = [p for p in Path(opdb.lake.root).rglob("*") if p.is_file()]
    assert any(p.name == "log.jsonl" for p in written) and any(
        p.name == "events.jsonl" for p in written
    )  # the run's log and its lineage are among the files searched
    leaks = [str(p) for p in written if secret.encode() in p.read_bytes()]
    assert leaks == []
    out, err = capfd.readouterr()
    assert secret not in out and secret not in err
    assert secret not in caplog.text  # any logger at WARNING and above
    assert secret not in spark.sparkContext.getConf().toDebugString()
