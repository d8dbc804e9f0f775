"""OpenLineage events of real job runs, validated against the official JSON Schemas."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pyspark.sql import SparkSession

from jobs.common.config import LineageSettings, Settings, SparkListenerSettings
from jobs.common.errors import QualityGateError
from jobs.common.lineage import PARENT_ENV, ParentRun, RunLineage, dataset_name
from jobs.common.paths import LakePaths
from jobs.common.run_context import RunContext
from jobs.runner import execute
from tests.jobs.gold.test_customer_360 import silver as hand_built_silver
from tests.jobs.silver.test_build import ORDERS, land_bronze, t
from tests.support.net import free_port
from tests.support.openlineage_schema import validation_errors

DAY = dt.date(2026, 1, 10)
RUN = "01936b1e-8c5a-7c3e-9a4b-0123456789ab"


def events(lake: LakePaths) -> list[dict[str, Any]]:
    path = Path(lake.root) / "lineage" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def order(oid: str, amount: str, day: int = 1) -> tuple[object, ...]:
    return (oid, "C1", "P1", t(1), "eur", Decimal(amount), "placed", "web", t(day), t(day))


@pytest.fixture
def no_standard_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENLINEAGE_CONFIG", "OPENLINEAGE_URL", "OPENLINEAGE_DISABLED", PARENT_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_standard_config")
def test_a_gold_run_emits_start_and_complete_with_schema_valid_facets(
    spark: SparkSession, settings: Settings, lake: LakePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    silver = hand_built_silver(spark)
    for name, table in {
        "customers": "dim_customer", "orders": "fct_orders", "returns": "fct_returns",
        "events": "fct_events", "cases": "fct_support_cases", "fx": "fx_rates",
    }.items():  # fmt: skip
        getattr(silver, name).write.format("delta").save(lake.table("silver", table))
    monkeypatch.setenv(PARENT_ENV, "airflow-dev/lakehouse_daily.gold_customer_360/" + str(
        uuid.UUID("01930000-0000-7000-8000-000000000001")))  # fmt: skip
    summary = execute(RunContext("gold.customer_360", "local", DAY), settings, lake, spark)

    start, complete = events(lake)
    assert [start["eventType"], complete["eventType"]] == ["START", "COMPLETE"]
    for event in (start, complete):
        assert validation_errors(event) == []
    run_id = complete["run"]["runId"]
    assert start["run"]["runId"] == run_id and uuid.UUID(run_id).version == 7
    assert summary.lineage == {
        "run_id": run_id, "namespace": "lakehouse-local", "transport": "file",
        "emitted": 2, "failed": 0, "errors": [],
    }  # fmt: skip
    assert complete["job"] == {
        "namespace": "lakehouse-local",
        "name": "gold.customer_360",
        "facets": {"jobType": complete["job"]["facets"]["jobType"]},
    }
    assert complete["job"]["facets"]["jobType"]["processingType"] == "BATCH"
    facets = complete["run"]["facets"]
    assert facets["nominalTime"]["nominalStartTime"] == "2026-01-10T00:00:00.000Z"
    assert facets["nominalTime"]["nominalEndTime"] == "2026-01-11T00:00:00.000Z"
    parent = facets["parent"]
    assert (parent["job"]["namespace"], parent["job"]["name"], parent["run"]["runId"]) == (
        "airflow-dev", "lakehouse_daily.gold_customer_360", "01930000-0000-7000-8000-000000000001"
    )  # fmt: skip
    assert facets["processing_engine"]["version"] == spark.version
    assert {(i["namespace"], i["name"]) for i in complete["inputs"]} == {
        dataset_name(lake.table("silver", table))
        for table in ("dim_customer", "fct_orders", "fct_returns", "fct_events",
                      "fct_support_cases", "fx_rates")
    }  # fmt: skip
    (gold,) = complete["outputs"]
    assert (gold["namespace"], gold["name"]) == dataset_name(lake.table("gold", "customer_360"))
    assert gold["outputFacets"]["outputStatistics"]["rowCount"] == 3  # C1, C2, C4
    assert gold["outputFacets"]["outputStatistics"]["fileCount"] >= 1
    assert "email_sha256" in [f["name"] for f in gold["facets"]["schema"]["fields"]]
    assertions = gold["facets"]["dataQualityAssertions"]["assertions"]
    assert {a["name"] for a in assertions} >= {"expect_column_values_to_be_unique(customer_id)"}
    assert all(a["success"] for a in assertions)
    lineage = gold["facets"]["columnLineage"]["fields"]
    assert {f["field"] for f in lineage["gross_revenue_usd"]["inputFields"]} == {
        "amount", "currency", "order_ts", "status", "usd_per_unit", "rate_date"
    }  # fmt: skip


@pytest.mark.usefixtures("no_standard_config")
def test_a_failed_gate_emits_fail_with_the_error_and_the_assertions(
    spark: SparkSession, settings: Settings, lake: LakePaths
) -> None:
    land_bronze(spark, lake, "opdb_orders", [order("O2", "5.00"), order("O2", "6.00")], ORDERS)
    with pytest.raises(QualityGateError):
        execute(RunContext("silver.fct_orders", "local", DAY), settings, lake, spark)
    start, fail = events(lake)
    assert [start["eventType"], fail["eventType"]] == ["START", "FAIL"]
    assert validation_errors(start) == validation_errors(fail) == []
    error = fail["run"]["facets"]["errorMessage"]
    assert error["message"].startswith("QualityGateError: quality gate silver.fct_orders failed")
    assert error["programmingLanguage"] == "python"
    (target,) = fail["outputs"]
    assert (target["namespace"], target["name"]) == dataset_name(lake.table("silver", "fct_orders"))
    assertions = target["facets"]["dataQualityAssertions"]["assertions"]
    failed = [a for a in assertions if not a["success"]]
    assert [(a["assertion"], a["column"]) for a in failed] == [
        ("expect_compound_columns_to_be_unique", "order_id,updated_at")
    ]


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Receiver.received.append(json.loads(self.rfile.read(length)))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _with_transport(settings: Settings, transport: dict[str, Any]) -> Settings:
    return settings.model_copy(update={"lineage": LineageSettings(transport=transport)})


@pytest.mark.usefixtures("no_standard_config")
def test_http_transport_posts_events_to_a_marquez_compatible_endpoint(
    spark: SparkSession, settings: Settings, lake: LakePaths, receiver: str
) -> None:
    http = _with_transport(settings, {"type": "http", "url": receiver, "timeout": 5})
    summary = execute(RunContext("runtime_check", "local", DAY), http, lake, spark)
    assert [e["eventType"] for e in _Receiver.received] == ["START", "COMPLETE"]
    assert all(validation_errors(e) == [] for e in _Receiver.received)
    assert (summary.lineage["transport"], summary.lineage["emitted"]) == ("http", 2)


@pytest.mark.usefixtures("no_standard_config")
def test_an_unreachable_lineage_endpoint_never_fails_the_job(
    spark: SparkSession, settings: Settings, lake: LakePaths
) -> None:
    port = free_port()  # nothing listens on it
    down = _with_transport(
        settings,
        {"type": "http", "url": f"http://127.0.0.1:{port}", "timeout": 1,
         "retry": {"total": 0, "connect": 0, "read": 0}},
    )  # fmt: skip
    summary = execute(RunContext("runtime_check", "local", DAY), down, lake, spark)
    assert summary.status == "SUCCEEDED"
    assert (summary.lineage["emitted"], summary.lineage["failed"]) == (0, 2)
    assert summary.lineage["errors"][0].startswith("START: ")


def test_the_spark_listener_reports_under_the_run_over_the_same_transport(
    settings: Settings, lake: LakePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OPENLINEAGE_CONFIG", "OPENLINEAGE_URL", "OPENLINEAGE_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(PARENT_ENV, f"airflow/lakehouse_daily.gold/{RUN}")
    http = {"type": "http", "url": "https://marquez:5000", "timeout": 5,
            "auth": {"type": "api_key", "api_key": "secret"}}  # fmt: skip
    lineage = settings.lineage.model_copy(
        update={"transport": http, "spark_listener": SparkListenerSettings(enabled=True)}
    )
    run = RunLineage(
        settings.model_copy(update={"lineage": lineage}), lake, RunContext("gold", "local", DAY)
    )
    assert run.spark_listener_conf() == {
        "spark.openlineage.namespace": "lakehouse-local",
        "spark.openlineage.parentJobNamespace": "lakehouse-local",
        "spark.openlineage.parentJobName": "gold",
        "spark.openlineage.parentRunId": run.stats.run_id,
        "spark.openlineage.rootParentJobNamespace": "airflow",
        "spark.openlineage.rootParentJobName": "lakehouse_daily.gold",
        "spark.openlineage.rootParentRunId": RUN,
        "spark.openlineage.transport.type": "http",
        "spark.openlineage.transport.url": "https://marquez:5000",
        "spark.openlineage.transport.timeoutInMillis": "5000",
    }  # no credentials in Spark settings (the Spark UI shows them)
    off = RunLineage(settings, lake, RunContext("gold", "local", DAY))
    assert off.spark_listener_conf() == {}


def test_parent_run_is_parsed_from_the_airflow_form() -> None:
    assert ParentRun.parse(f"ns/dag.task/{RUN}") == ParentRun("ns", "dag.task", RUN)
    with pytest.raises(ValueError, match="OPENLINEAGE_PARENT_ID must be"):
        ParentRun.parse("only/two")
    with pytest.raises(ValueError, match="the run id must be a UUID, found '0193'"):
        ParentRun.parse("ns/dag.task/0193")


def test_a_malformed_parent_is_reported_and_the_run_goes_on(
    settings: Settings, lake: LakePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PARENT_ENV, "ns/dag.task/0193")
    run = RunLineage(settings, lake, RunContext("gold", "local", DAY))
    assert run.parent is None
    assert run.stats.errors == [
        "OPENLINEAGE_PARENT_ID: the run id must be a UUID, found '0193' in 'ns/dag.task/0193'"
    ]


def test_dataset_names_follow_the_openlineage_naming_spec() -> None:
    assert dataset_name("s3://lake-dev/silver/fct_orders") == ("s3://lake-dev", "silver/fct_orders")
    assert dataset_name("s3a://lake-dev/bronze/x") == ("s3://lake-dev", "bronze/x")
    assert dataset_name("/tmp/lake/gold/c") == ("file", "/tmp/lake/gold/c")
    assert dataset_name("jdbc:postgresql://db.internal:5432/shop#orders") == (
        "postgres://db.internal:5432", "shop.orders"
    )  # fmt: skip
    assert dataset_name("jdbc:sqlite:/data/opdb.sqlite#orders") == (
        "sqlite", "/data/opdb.sqlite.orders"
    )  # fmt: skip
