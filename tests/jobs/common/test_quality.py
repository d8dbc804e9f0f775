"""The quality gate on crafted inputs: each action, each kind of problem."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.common.config import Settings
from jobs.common.errors import ConfigError, QualityGateError, ReconciliationError
from jobs.common.expectations import load_suite, row_check
from jobs.common.job import JobEnv
from jobs.common.paths import LakePaths
from jobs.common.quality import FAILED_RULES, Reconciliation, check, gate_reports, reconcile
from jobs.common.run_context import RunContext, RunRecorder

ORDERS = "order_id STRING, customer_id STRING, amount DOUBLE, currency STRING"
SUITE = """
quarantine_threshold: 0.5
expectations:
  - type: expect_column_values_to_not_be_null
    kwargs: {column: order_id}
    action: fail
    description: every order has an id
  - type: expect_column_values_to_be_unique
    kwargs: {column: order_id}
    action: fail
    description: one row per order
  - type: expect_column_values_to_be_between
    kwargs: {column: amount, min_value: 0, max_value: 10000}
    action: quarantine
    description: amounts are positive and plausible
  - type: expect_column_values_to_not_be_null
    kwargs: {column: customer_id}
    action: quarantine
    description: an order belongs to a customer
  - type: expect_column_values_to_be_in_set
    kwargs: {column: currency, value_set: [EUR, GBP, USD]}
    action: warn
    description: currencies we price in
  - type: expect_table_columns_to_match_set
    kwargs: {column_set: [order_id, customer_id, amount, currency]}
    action: fail
    description: no unexpected columns
"""


def suite_dir(tmp_path: Path, text: str = SUITE, table: str = "orders") -> Path:
    folder = tmp_path / "expectations" / "silver"
    folder.mkdir(parents=True)
    (folder / f"{table}.yaml").write_text(text)
    return tmp_path


def gate(tmp_path: Path, frame, mode: str = "strict", text: str = SUITE):  # type: ignore[no-untyped-def]
    suite = load_suite(suite_dir(tmp_path, text), "silver", "orders")
    return check(
        suite,
        frame,
        run_id="run-1",
        layer="silver",
        table="orders",
        mode=mode,  # type: ignore[arg-type]
        quarantine_threshold=0.05,
    )


def test_clean_batch_passes_and_a_warn_rule_only_warns(spark: SparkSession, tmp_path: Path) -> None:
    frame = spark.createDataFrame([("o1", "c1", 10.0, "EUR"), ("o2", "c2", 20.0, "JPY")], ORDERS)
    result = gate(tmp_path, frame)
    assert result.report.status == "warned"
    warned = [o for o in result.report.outcomes if not o.success]
    assert [(o.rule, o.unexpected_sample) for o in warned] == [
        ("expect_column_values_to_be_in_set(currency)", ["JPY"])
    ]
    assert_df_equality(result.passed, frame, ignore_row_order=True)


def test_fail_names_table_column_expected_observed_and_values(
    spark: SparkSession, tmp_path: Path
) -> None:
    frame = spark.createDataFrame(
        [("o1", "c1", 10.0, "EUR"), ("o1", "c2", 20.0, "EUR"), (None, "c3", 5.0, "EUR")], ORDERS
    )
    with pytest.raises(QualityGateError) as raised:
        gate(tmp_path, frame)
    message = str(raised.value)
    assert message.startswith("quality gate silver.orders failed, nothing written:")
    assert (
        "silver.orders: expect_column_values_to_not_be_null on order_id expected true: "
        "1 unexpected (33.33%)" in message
    )
    assert (
        "silver.orders: expect_column_values_to_be_unique on order_id expected true: "
        "2 unexpected (100.00%), e.g. ['o1', 'o1']" in message
    )
    assert raised.value.report.status == "failed"  # type: ignore[attr-defined]


def test_an_unexpected_new_column_fails_the_gate(spark: SparkSession, tmp_path: Path) -> None:
    frame = spark.createDataFrame([("o1", "c1", 10.0, "EUR", "x")], f"{ORDERS}, coupon STRING")
    with pytest.raises(QualityGateError, match=r"expect_table_columns_to_match_set .*coupon"):
        gate(tmp_path, frame)


def test_quarantine_moves_failing_rows_with_their_rules_and_checks_the_rest(
    spark: SparkSession, tmp_path: Path
) -> None:
    frame = spark.createDataFrame(
        [
            ("o1", "c1", 10.0, "EUR"),
            ("o2", "c2", -5.0, "EUR"),
            ("o3", None, 99999.0, "EUR"),
            ("o4", "c4", None, "EUR"),  # NULL amount: not this rule's business
        ],
        ORDERS,
    )
    result = gate(tmp_path, frame)
    assert result.quarantined is not None
    quarantined = result.quarantined.select("order_id", FAILED_RULES)
    expected = spark.createDataFrame(
        [
            ("o2", ["expect_column_values_to_be_between(amount)"]),
            (
                "o3",
                [
                    "expect_column_values_to_be_between(amount)",
                    "expect_column_values_to_not_be_null(customer_id)",
                ],
            ),
        ],
        f"order_id STRING, {FAILED_RULES} ARRAY<STRING>",
    )
    assert_df_equality(quarantined, expected, ignore_row_order=True, ignore_nullable=True)
    assert_df_equality(
        result.passed,
        frame.where(F.col("order_id").isin("o1", "o4")),
        ignore_row_order=True,
    )
    report = result.report
    # nothing lost: rows in = rows passed + rows quarantined
    assert (report.rows_checked, report.rows_quarantined) == (4, 2)
    assert result.passed.count() + result.quarantined.count() == report.rows_checked
    assert report.quarantined_by_rule == {
        "expect_column_values_to_be_between(amount)": 2,
        "expect_column_values_to_not_be_null(customer_id)": 1,
    }


def test_a_quarantine_rate_above_the_threshold_fails(spark: SparkSession, tmp_path: Path) -> None:
    frame = spark.createDataFrame(
        [("o1", "c1", -1.0, "EUR"), ("o2", "c2", -2.0, "EUR"), ("o3", "c3", 1.0, "EUR")], ORDERS
    )
    with pytest.raises(QualityGateError, match=r"quarantine rate 66\.67% is above the 50\.00%"):
        gate(tmp_path, frame)


def test_warn_only_mode_reports_failures_without_blocking(
    spark: SparkSession, tmp_path: Path
) -> None:
    frame = spark.createDataFrame([(None, "c1", 10.0, "EUR")], ORDERS)
    result = gate(tmp_path, frame, mode="warn-only")
    assert result.report.status == "warned"
    assert result.report.problems == [
        "silver.orders: expect_column_values_to_not_be_null on order_id expected true: "
        "1 unexpected (100.00%)"
    ]


def test_suites_are_checked_when_loaded(tmp_path: Path) -> None:
    bad_type = "expectations:\n  - {type: expect_it_to_be_nice, action: fail, description: x}\n"
    with pytest.raises(ConfigError, match=r"expectations\[0\] \(expect_it_to_be_nice\): unknown"):
        load_suite(suite_dir(tmp_path / "a", bad_type), "silver", "orders")
    not_row_level = (
        "expectations:\n  - {type: expect_table_row_count_to_be_between, "
        "kwargs: {min_value: 1}, action: quarantine, description: x}\n"
    )
    with pytest.raises(ConfigError, match="action 'quarantine' needs a row-level expectation"):
        load_suite(suite_dir(tmp_path / "b", not_row_level), "silver", "orders")
    assert load_suite(tmp_path / "c", "silver", "orders") is None


def test_foreign_keys_below_the_ratio_fail_with_the_orphans_listed(
    spark: SparkSession, tmp_path: Path
) -> None:
    text = """
foreign_keys:
  - {column: customer_id, references: silver.dim_customer.customer_id, min_ratio: 0.75}
"""
    suite = load_suite(suite_dir(tmp_path, text), "silver", "orders")
    customers = spark.createDataFrame([("c1",), ("c2",)], "customer_id STRING")
    frame = spark.createDataFrame(
        [("o1", "c1", 1.0, "EUR"), ("o2", "c9", 1.0, "EUR"), ("o3", "c8", 1.0, "EUR"),
         ("o4", "c2", 1.0, "EUR"), ("o5", None, 1.0, "EUR")],
        ORDERS,
    )  # fmt: skip
    refs = {"silver.dim_customer.customer_id": customers}
    kwargs = {"run_id": "r", "layer": "silver", "table": "orders", "quarantine_threshold": 0.05}
    with pytest.raises(QualityGateError) as raised:
        check(suite, frame, mode="strict", references=refs, **kwargs)  # type: ignore[arg-type]
    assert str(raised.value).endswith(
        "silver.orders: foreign_key on customer_id expected {'references': "
        "'silver.dim_customer.customer_id', 'min_ratio': 0.75}: 2 unexpected (50.00%), "
        "e.g. ['c8', 'c9']"
    )
    boundary = frame.where("order_id <> 'o2'").union(frame.where("order_id = 'o1'"))
    result = check(suite, boundary, mode="strict", references=refs, **kwargs)  # type: ignore[arg-type]
    assert result.report.outcomes[0].observed == 0.75  # 3 of 4 found: at the ratio, passes
    passing = frame.where("customer_id IN ('c1', 'c2') OR customer_id IS NULL")
    result = check(suite, passing, mode="strict", references=refs, **kwargs)  # type: ignore[arg-type]
    assert [(o.rule, o.success, o.observed) for o in result.report.outcomes] == [
        ("foreign_key(customer_id -> silver.dim_customer.customer_id)", True, 1.0)
    ]


def test_reconciliation_names_unexplained_rows_and_duplicate_keys() -> None:
    read = Reconciliation("bronze.o", "silver.o", (3, 5), source_rows=1000, rows_read=995)
    assert read.problems() == []  # 0.5% lost by the read: within the 1% allowed
    assert read.unexplained == 5
    written = Reconciliation(
        "bronze.o", "silver.o", (3, 5), source_rows=1000, rows_read=1000,
        quarantined=10, applied=900, deduplicated=60, duplicate_keys=2, written=True,
    )  # fmt: skip
    assert written.problems() == [
        "bronze.o -> silver.o: bronze.o versions 3..5 added 1000 rows, accounted for 970 "
        "(quarantined 10, applied 900, deduplicated 60): 30 unexplained (3.00%, at most "
        "1.00% allowed)",
        "silver.o: 2 keys of this run have more than one (current) row; primary keys "
        "must be unique",
    ]
    # more rows accounted for than arrived is as wrong as fewer
    assert Reconciliation(
        "b", "s", (0, 0), source_rows=10, rows_read=10, applied=11, written=True
    ).problems() == [
        "b -> s: b versions 0..0 added 10 rows, accounted for 11 (quarantined 0, applied 11, "
        "deduplicated 0): -1 unexplained (-10.00%, at most 1.00% allowed)"
    ]


def test_a_rerun_in_the_same_process_starts_with_no_gate_reports_of_the_run_before(
    settings: Settings, lake: LakePaths
) -> None:
    """The reports live in the run's recorder: a second run of the same run id (a rerun
    of the attempt in a long-lived process) does not inherit the first one's failure."""
    ctx = RunContext("silver.o", "local", dt.date(2026, 1, 1))
    lossy = Reconciliation("bronze.o", "silver.o", (0, 1), source_rows=10, rows_read=5)
    with pytest.raises(ReconciliationError, match="5 unexplained"):
        reconcile(JobEnv(None, settings, lake, ctx, RunRecorder(ctx, lake)), "silver", "o", lossy)  # type: ignore[arg-type]

    again = RunRecorder(ctx, lake)
    whole = Reconciliation("bronze.o", "silver.o", (0, 1), source_rows=10, rows_read=10)
    reconcile(JobEnv(None, settings, lake, ctx, again), "silver", "o", whole)  # type: ignore[arg-type]
    recorded = again.summary.quality["silver.o"]
    assert (recorded["status"], recorded["problems"]) == ("no-suite", [])
    assert [r.name for r in gate_reports(again)] == ["silver.o"]


ROW_RULES = """
expectations:
  - type: expect_column_values_to_not_be_null
    kwargs: {column: s}
    action: warn
    description: d
  - type: expect_column_values_to_be_null
    kwargs: {column: s}
    action: warn
    description: d
  - type: expect_column_values_to_be_between
    kwargs: {column: a, min_value: 0, max_value: 10}
    action: warn
    description: d
  - type: expect_column_values_to_be_in_set
    kwargs: {column: s, value_set: [x, y]}
    action: warn
    description: d
  - type: expect_column_values_to_not_be_in_set
    kwargs: {column: s, value_set: [x]}
    action: warn
    description: d
  - type: expect_column_values_to_match_regex
    kwargs: {column: s, regex: '^x'}
    action: warn
    description: d
  - type: expect_column_values_to_not_match_regex
    kwargs: {column: s, regex: 'z$'}
    action: warn
    description: d
  - type: expect_column_value_lengths_to_be_between
    kwargs: {column: s, min_value: 1, max_value: 2}
    action: warn
    description: d
  - type: expect_column_pair_values_a_to_be_greater_than_b
    kwargs: {column_A: a, column_B: b, or_equal: true}
    action: warn
    description: d
"""


def test_quarantine_predicates_agree_with_great_expectations(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Each row-level rule's Spark predicate fails exactly the rows GX counts unexpected."""
    (tmp_path / "expectations" / "silver").mkdir(parents=True)
    (tmp_path / "expectations" / "silver" / "rules.yaml").write_text(ROW_RULES)
    suite = load_suite(tmp_path, "silver", "rules")
    assert suite is not None
    frame = spark.createDataFrame(
        [(5, "x", 1), (11, "xz", 20), (None, None, None), (-1, "yyy", -5), (3, "", 3),
         (7, "z", None), (None, "y", 2)],
        "a INT, s STRING, b INT",
    )  # fmt: skip
    result = check(
        suite, frame, run_id="r", layer="silver", table="rules", mode="strict",
        quarantine_threshold=0.05,
    )  # fmt: skip
    by_rule = {o.rule: o.unexpected_count for o in result.report.outcomes}
    ours = {
        spec.rule: frame.where(~row_check(spec).passes).count() for spec in suite.expectations
    }
    assert by_rule == ours
    assert set(ours.values()) != {0}  # the rows do break rules
