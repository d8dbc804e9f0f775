from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from jobs.common import delta_io
from jobs.common.config import Settings, SilverTableSpec
from jobs.common.delta_io import last_commit, read_table, table_exists
from jobs.common.errors import QualityGateError, ReconciliationError
from jobs.common.paths import LakePaths
from jobs.common.run_context import RunContext, RunSummary, build_run_id
from jobs.runner import execute
from jobs.silver.conform import conform
from tests.conftest import PROJECT_ROOT

LAKEHOUSE = str(Path(sys.executable).parent / "lakehouse")

CUSTOMERS = (
    "customer_id STRING, first_name STRING, last_name STRING, email STRING, phone STRING, "
    "country STRING, city STRING, segment STRING, marketing_opt_in BOOLEAN, "
    "created_at TIMESTAMP, updated_at TIMESTAMP, is_deleted BOOLEAN, _ingested_at TIMESTAMP"
)
ORDERS = (
    "order_id STRING, customer_id STRING, product_id STRING, order_ts TIMESTAMP, "
    "currency STRING, amount DECIMAL(12,2), status STRING, channel STRING, "
    "updated_at TIMESTAMP, _ingested_at TIMESTAMP"
)


def t(day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2026, 1, day, hour)


def land_bronze(
    spark: SparkSession, lake: LakePaths, table: str, rows: list[tuple[object, ...]], schema: str
) -> None:
    """Append to a Bronze table the way the ingest jobs create it (Change Data Feed on)."""
    (
        spark.createDataFrame(rows, schema)
        .write.format("delta")
        .mode("append")
        .option("delta.enableChangeDataFeed", "true")
        .save(lake.table("bronze", table))
    )


def run(spark: SparkSession, settings: Settings, lake: LakePaths, job: str, day: int) -> RunSummary:
    return execute(RunContext(job, "local", dt.date(2026, 1, day)), settings, lake, spark)


def customer(cid: str, day: int, city: str, *, deleted: bool = False, email: str = " A@X.com "):
    return (
        cid, "Ann", "Lee", email, "+1 (555) 123-4567", " gb ", city, "retail", True,
        t(1), t(day), deleted, t(day, 23),
    )  # fmt: skip


def dim_customer(spark: SparkSession, lake: LakePaths) -> DataFrame:
    return read_table(spark, lake.table("silver", "dim_customer")).select(
        "customer_id", "email", "country", "city", "valid_from", "valid_to", "is_current"
    )


def test_conform_standardises_values_and_names_every_problem(spark: SparkSession) -> None:
    raw = spark.createDataFrame(
        [
            ("c1", " Ann@Example.COM ", " gb ", "usd", "12.50", "2026-01-01T10:00:00Z"),
            ("c2", "not-an-email", "XX", "US$", "1,5", "yesterday"),
            ("  ", None, None, None, None, None),
        ],
        "id STRING, email STRING, country STRING, currency STRING, amount STRING, ts STRING",
    )
    conformed = raw.transform(
        conform(
            {"id": "string", "email": "email", "country": "country", "currency": "currency",
             "amount": "decimal(12,2)", "ts": "timestamp"},
            required=["id"],
        )
    ).drop("_record")  # fmt: skip
    expected = spark.createDataFrame(
        [
            ("c1", "ann@example.com", "GB", "USD", Decimal("12.50"), t(1, 10), None),
            (
                "c2",
                "not-an-email",
                "XX",
                "US$",
                None,
                None,
                "email is not an email: 'not-an-email'; "
                "country is not a known ISO 3166-1 alpha-2 code: 'XX'; "
                "currency is not a known ISO 4217 code: 'US$'; "
                "amount is not a decimal(12,2): '1,5'; ts is not a timestamp: 'yesterday'",
            ),
            (None, None, None, None, None, None, "id is required"),
        ],
        "id STRING, email STRING, country STRING, currency STRING, amount DECIMAL(12,2), "
        "ts TIMESTAMP, _reason STRING",
    )
    assert_df_equality(conformed, expected, ignore_row_order=True, ignore_nullable=True)


def test_dim_customer_history_with_late_change_delete_and_incremental_reads(
    spark: SparkSession, settings: Settings, lake: LakePaths
) -> None:
    land_bronze(spark, lake, "crm_customers", [customer("C1", 1, "London"),
                                               customer("C2", 1, "Leeds")], CUSTOMERS)  # fmt: skip
    first = run(spark, settings, lake, "silver.dim_customer", 1)
    land_bronze(
        spark,
        lake,
        "crm_customers",
        [
            customer("C1", 5, "Manchester"),
            customer("C1", 3, "Leeds"),  # late: arrives after the day-5 change
            customer("C2", 4, "Leeds", deleted=True),
            customer("C3", 4, "London", email="broken"),  # quarantined
        ],
        CUSTOMERS,
    )
    second = run(spark, settings, lake, "silver.dim_customer", 5)
    third = run(spark, settings, lake, "silver.dim_customer", 6)  # nothing new in Bronze

    expected = spark.createDataFrame(
        [
            ("C1", "a@x.com", "GB", "London", t(1), t(3), False),
            ("C1", "a@x.com", "GB", "Leeds", t(3), t(5), False),
            ("C1", "a@x.com", "GB", "Manchester", t(5), None, True),
            ("C2", "a@x.com", "GB", "Leeds", t(1), t(4), False),
        ],
        "customer_id STRING, email STRING, country STRING, city STRING, "
        "valid_from TIMESTAMP, valid_to TIMESTAMP, is_current BOOLEAN",
    )
    assert_df_equality(
        dim_customer(spark, lake), expected, ignore_row_order=True, ignore_nullable=True
    )
    quarantine = read_table(spark, lake.table("_quarantine", "silver_dim_customer"))
    assert [r._reason for r in quarantine.collect()] == ["email is not an email: 'broken'"]
    assert (first.rows_in, first.rows_quarantined) == (2, 0)
    assert (second.rows_in, second.rows_quarantined) == (4, 1)  # only the rows added since
    assert second.outputs[0].extra["scd2"]["events_new"] == 3
    assert (third.rows_in, third.rows_out) == (0, 0)


def test_fct_orders_keeps_the_latest_state_whatever_the_arrival_order(
    spark: SparkSession, settings: Settings, lake: LakePaths
) -> None:
    def order(status: str, day: int) -> tuple[object, ...]:
        return ("O1", "C1", "P1", t(1), "eur", Decimal("10.00"), status, "web", t(day), t(day))

    land_bronze(spark, lake, "opdb_orders", [order("placed", 1), order("shipped", 3)], ORDERS)
    run(spark, settings, lake, "silver.fct_orders", 3)
    land_bronze(spark, lake, "opdb_orders", [order("paid", 2)], ORDERS)  # late, older
    before = last_commit(spark, lake.table("silver", "fct_orders"))
    late = run(spark, settings, lake, "silver.fct_orders", 4)
    orders = read_table(spark, lake.table("silver", "fct_orders")).select(
        "order_id", "currency", "status", "updated_at"
    )
    assert [tuple(r) for r in orders.collect()] == [("O1", "EUR", "shipped", t(3))]
    assert last_commit(spark, lake.table("silver", "fct_orders")) == before  # no commit
    assert (late.rows_in, late.rows_out, late.rows_quarantined) == (1, 0, 0)


PRODUCTS = (
    "product_id STRING, name STRING, category STRING, list_price DECIMAL(12,2), "
    "currency STRING, updated_at TIMESTAMP, change_op STRING, snapshot_at TIMESTAMP, "
    "_ingested_at TIMESTAMP"
)


def test_dim_product_closes_the_version_of_a_product_deleted_in_the_source(
    spark: SparkSession, settings: Settings, lake: LakePaths
) -> None:
    def product(pid: str, day: int, price: str) -> tuple[object, ...]:
        return (pid, "Mug", "home", Decimal(price), "usd", t(day), "upsert", t(day, 6), t(day, 6))

    land_bronze(spark, lake, "opdb_products", [product("P1", 1, "5.00"),
                                               product("P2", 1, "7.00")], PRODUCTS)  # fmt: skip
    run(spark, settings, lake, "silver.dim_product", 1)
    # a snapshot on day 3 misses P2: the delete event carries the key and when it was seen
    gone = ("P2", None, None, None, None, t(3, 6), "delete", t(3, 6), t(3, 6))
    land_bronze(spark, lake, "opdb_products", [gone, product("P1", 3, "6.00")], PRODUCTS)
    summary = run(spark, settings, lake, "silver.dim_product", 3)
    assert_df_equality(
        read_table(spark, lake.table("silver", "dim_product")).select(
            "product_id", "list_price", "valid_from", "valid_to", "is_current"
        ),
        spark.createDataFrame(
            [
                ("P1", Decimal("5.00"), t(1), t(3), False),
                ("P1", Decimal("6.00"), t(3), None, True),
                ("P2", Decimal("7.00"), t(1), t(3, 6), False),
            ],
            "product_id STRING, list_price DECIMAL(12,2), valid_from TIMESTAMP, "
            "valid_to TIMESTAMP, is_current BOOLEAN",
        ),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    assert summary.outputs[0].extra["scd2"]["versions_closed"] == 2
    # the name rule skips delete events (they carry only the key): no warning
    assert summary.quality["silver.dim_product"]["status"] == "passed"


def test_latest_table_applies_truncate_events_declared_in_config(
    spark: SparkSession, settings: Settings, lake: LakePaths
) -> None:
    accounts = SilverTableSpec(
        description="accounts, one row per id; the source may TRUNCATE",
        kind="latest",
        source="ledger_accounts",
        keys=["account_id"],
        sequence_by="updated_at",
        truncates="op = 'T'",
        columns={"account_id": "string", "balance": "int", "op": "string",
                 "updated_at": "timestamp"},
    )  # fmt: skip
    with_accounts = settings.model_copy(
        update={"silver": {**settings.silver, "accounts": accounts}}
    )
    schema = "account_id STRING, balance INT, op STRING, updated_at TIMESTAMP"
    land_bronze(spark, lake, "ledger_accounts", [("A1", 10, "U", t(1)), ("A2", 20, "U", t(1)),
                                                 ("A3", 30, "U", t(4))], schema)  # fmt: skip
    run(spark, with_accounts, lake, "silver.accounts", 1)
    land_bronze(
        spark,
        lake,
        "ledger_accounts",
        [(None, None, "T", t(3)), ("A2", 21, "U", t(2)), ("A4", 40, "U", t(5))],
        schema,
    )
    second = run(spark, with_accounts, lake, "silver.accounts", 5)
    assert_df_equality(
        read_table(spark, lake.table("silver", "accounts")),
        spark.createDataFrame(
            [("A3", 30, "U", t(4)), ("A4", 40, "U", t(5))], schema
        ),  # A1, A2 truncated; A2's update at 2 is older than the TRUNCATE at 3
        ignore_row_order=True,
        ignore_nullable=True,
    )
    assert (second.rows_in, second.rows_quarantined) == (3, 0)


# ~150 s of killed and rerun job processes: make test-extended (CI); Bronze kill tests stay
@pytest.mark.slow
@pytest.mark.extended
def test_silver_job_killed_mid_merge_then_rerun_equals_an_uninterrupted_run(
    spark: SparkSession, settings: Settings, lake: LakePaths
) -> None:
    land_bronze(spark, lake, "crm_customers", [customer("C1", 1, "London")], CUSTOMERS)
    run(spark, settings, lake, "silver.dim_customer", 1)
    land_bronze(
        spark,
        lake,
        "crm_customers",
        [customer("C1", 4, "Leeds"), customer("C1", 2, "Bath"), customer("C2", 3, "York")],
        CUSTOMERS,
    )
    killed = subprocess.run(
        [LAKEHOUSE, "run", "silver.dim_customer", "--env", "local", "--date", "2026-01-04"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "LAKEHOUSE_HOME": lake.root, "LAKEHOUSE_FAULT": "mid_write"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    rerun = execute(
        RunContext("silver.dim_customer", "local", dt.date(2026, 1, 4), 2), settings, lake, spark
    )
    expected = spark.createDataFrame(
        [
            ("C1", "a@x.com", "GB", "London", t(1), t(2), False),
            ("C1", "a@x.com", "GB", "Bath", t(2), t(4), False),
            ("C1", "a@x.com", "GB", "Leeds", t(4), None, True),
            ("C2", "a@x.com", "GB", "York", t(3), None, True),
        ],
        "customer_id STRING, email STRING, country STRING, city STRING, "
        "valid_from TIMESTAMP, valid_to TIMESTAMP, is_current BOOLEAN",
    )
    assert_df_equality(
        dim_customer(spark, lake), expected, ignore_row_order=True, ignore_nullable=True
    )
    assert rerun.rows_in == 3  # the killed run recorded no progress: the rerun reads them


def test_a_batch_failing_the_gate_writes_nothing_and_does_not_advance(
    spark: SparkSession, settings: Settings, lake: LakePaths
) -> None:
    def order(oid: str, amount: str, day: int = 1) -> tuple[object, ...]:
        return (oid, "C1", "P1", t(1), "eur", Decimal(amount), "placed", "web", t(day), t(day))

    land_bronze(spark, lake, "opdb_orders", [order("O1", "10.00")], ORDERS)
    run(spark, settings, lake, "silver.fct_orders", 1)
    target = lake.table("silver", "fct_orders")
    before = last_commit(spark, target)
    # two different states of O2 at the same time: the fail rule's compound key
    land_bronze(
        spark, lake, "opdb_orders", [order("O2", "5.00", 2), order("O2", "6.00", 2)], ORDERS
    )
    with pytest.raises(QualityGateError) as raised:
        run(spark, settings, lake, "silver.fct_orders", 2)
    assert str(raised.value) == (
        "quality gate silver.fct_orders failed, nothing written:\n"
        "  silver.fct_orders: expect_compound_columns_to_be_unique on ['order_id', "
        "'updated_at'] expected true: 2 unexpected (100.00%), e.g. "
        + str([{"order_id": "O2", "updated_at": t(2)}] * 2)
    )
    assert last_commit(spark, target) == before
    assert not table_exists(spark, lake.table("_quarantine", "silver_fct_orders"))
    summary = json.loads(
        Path(
            lake.run_dir(build_run_id("silver.fct_orders", dt.date(2026, 1, 2), 1)), "summary.json"
        ).read_text()
    )
    assert summary["status"] == "FAILED"
    assert summary["quality"]["silver.fct_orders"]["status"] == "failed"
    # the progress did not move: the next run reads the same Bronze rows and stops again
    with pytest.raises(QualityGateError):
        run(spark, settings, lake, "silver.fct_orders", 3)
    assert last_commit(spark, target) == before


def test_rows_failing_quarantine_rules_go_to_quarantine_with_the_rule_names(
    spark: SparkSession, settings: Settings, lake: LakePaths
) -> None:
    def order(oid: str, customer: str | None, amount: str) -> tuple[object, ...]:
        return (oid, customer, "P1", t(1), "eur", Decimal(amount), "placed", "web", t(1), t(1))

    rows = [order(f"O{i}", "C1", "10.00") for i in range(40)]
    rows += [order("BAD1", None, "10.00"), order("BAD2", "C1", "-3.00")]
    land_bronze(spark, lake, "opdb_orders", rows, ORDERS)
    summary = run(spark, settings, lake, "silver.fct_orders", 1)
    quarantine = read_table(spark, lake.table("_quarantine", "silver_fct_orders"))
    reasons = sorted((json.loads(r._record)["order_id"], r._reason) for r in quarantine.collect())
    assert reasons == [
        ("BAD1", "expectation failed: expect_column_values_to_not_be_null(customer_id)"),
        ("BAD2", "expectation failed: expect_column_values_to_be_between(amount)"),
    ]
    stored = read_table(spark, lake.table("silver", "fct_orders")).select("order_id")
    assert sorted(r[0] for r in stored.collect()) == sorted(f"O{i}" for i in range(40))
    # nothing lost: rows in = rows written + rows quarantined
    assert (summary.rows_in, summary.rows_out, summary.rows_quarantined) == (42, 40, 2)
    assert summary.quality["silver.fct_orders"]["rows_quarantined"] == 2


def test_reconciliation_accounts_for_every_bronze_row(
    spark: SparkSession, settings: Settings, lake: LakePaths
) -> None:
    def order(oid: str, day: int, *, currency: str = "eur", amount: str = "10.00"):
        return (oid, "C1", "P1", t(1), currency, Decimal(amount), "placed", "web", t(day), t(day))

    land_bronze(spark, lake, "opdb_orders", [order("O1", 2), order("O2", 2)], ORDERS)
    run(spark, settings, lake, "silver.fct_orders", 2)
    day3 = [
        order("O1", 3),  # applied: newer than stored
        order("O1", 4),  # ... and superseded within the batch by this one
        order("O2", 1),  # older than stored: changes nothing
        order("O3", 3, currency="zzz"),  # does not conform: quarantined
        order("O4", 3, amount="-1.00"),  # fails a quarantine rule
        order("O5", 3),  # new
        *[order(f"N{i}", 3) for i in range(30)],  # new (and the quarantine rate under 5%)
    ]
    land_bronze(spark, lake, "opdb_orders", day3, ORDERS)
    summary = run(spark, settings, lake, "silver.fct_orders", 3)
    assert summary.quality["silver.fct_orders"]["reconciliation"] == {
        "source": "bronze.opdb_orders",
        "source_versions": [1, 1],
        "source_rows": 36,
        "rows_read": 36,
        "quarantined": 2,
        "applied": 32,
        "deduplicated": 2,
        "unexplained": 0,
        "loss_rate": 0.0,
        "duplicate_keys": 0,
        "checked": "read and write",
    }
    assert summary.quality["silver.fct_orders"]["status"] == "passed"


def test_a_read_that_loses_bronze_rows_stops_before_the_write(
    spark: SparkSession, settings: Settings, lake: LakePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    def order(oid: str, day: int) -> tuple[object, ...]:
        return (oid, "C1", "P1", t(1), "eur", Decimal("1.00"), "placed", "web", t(day), t(day))

    land_bronze(spark, lake, "opdb_orders", [order("O1", 1)], ORDERS)
    run(spark, settings, lake, "silver.fct_orders", 1)
    target = lake.table("silver", "fct_orders")
    before = last_commit(spark, target)
    land_bronze(spark, lake, "opdb_orders", [order(f"N{i}", 2) for i in range(50)], ORDERS)
    read = delta_io.read_inserts_since  # a faulty read: one row in 50 goes missing
    monkeypatch.setattr(
        delta_io, "read_inserts_since", lambda *a: read(*a).where("order_id != 'N7'")
    )
    with pytest.raises(ReconciliationError) as raised:
        run(spark, settings, lake, "silver.fct_orders", 2)
    assert str(raised.value) == (
        "reconciliation bronze.opdb_orders -> silver.fct_orders failed, nothing written:\n"
        "  bronze.opdb_orders -> silver.fct_orders: bronze.opdb_orders versions 1..1 added "
        "50 rows, read 49: 1 unexplained (2.00%, at most 1.00% allowed)"
    )
    assert last_commit(spark, target) == before
    monkeypatch.undo()  # the read is repaired: the same rows are read again, all of them
    summary = run(spark, settings, lake, "silver.fct_orders", 3)
    assert summary.quality["silver.fct_orders"]["reconciliation"]["applied"] == 50


def test_a_key_stored_twice_fails_the_run_after_the_write_and_keeps_the_progress(
    spark: SparkSession, settings: Settings, lake: LakePaths
) -> None:
    schema = "event_id STRING, customer_id STRING, event_type STRING, event_ts TIMESTAMP"
    land_bronze(spark, lake, "events_behaviour", [("E1", "C1", "view", t(1))], schema)
    run(spark, settings, lake, "silver.fct_events", 1)
    target = lake.table("silver", "fct_events")
    stored = read_table(spark, target)
    stored.write.format("delta").mode("append").save(target)  # a writer outside the job
    land_bronze(spark, lake, "events_behaviour", [("E1", "C1", "view", t(1))], schema)
    with pytest.raises(ReconciliationError, match="1 keys of this run have more than"):
        run(spark, settings, lake, "silver.fct_events", 2)
    progress = read_table(spark, lake.table("_control", "silver_progress"))
    assert [r.position for r in progress.where("name = 'silver.fct_events'").collect()] == [0]
