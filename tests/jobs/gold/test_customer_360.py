"""Every customer_360 metric on a hand-built case, against hand-computed values."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from jobs.gold.customer_360 import (
    ChurnRules,
    Customer360Rules,
    SegmentRule,
    Silver,
    base_metrics,
    customer_360,
    with_day_counts,
)

D = dt.date(2026, 1, 10)
RULES = Customer360Rules(
    rfm_segments=(
        SegmentRule("champions", r=(4, 5), f=(4, 5), m=(4, 5)),
        SegmentRule("at_risk", r=(1, 2), f=(3, 5)),
        SegmentRule("hibernating", r=(1, 2), f=(1, 2)),
    ),
    rfm_default="needs_attention",
    churn=ChurnRules(
        high_after_days=90, medium_after_days=30, engaged_events_30d=5, unhappy_csat=2.0
    ),
)
CUSTOMERS = (
    "customer_id STRING, first_name STRING, last_name STRING, email STRING, phone STRING, "
    "country STRING, city STRING, segment STRING, marketing_opt_in BOOLEAN, "
    "created_at TIMESTAMP, updated_at TIMESTAMP, valid_from TIMESTAMP, valid_to TIMESTAMP, "
    "is_current BOOLEAN"
)
ORDERS = (
    "order_id STRING, customer_id STRING, order_ts TIMESTAMP, currency STRING, "
    "amount DECIMAL(12,2), status STRING"
)
RETURNS = (
    "return_id STRING, customer_id STRING, return_ts TIMESTAMP, currency STRING, "
    "amount DECIMAL(12,2)"
)
EVENTS = "event_id STRING, customer_id STRING, session_id STRING, event_ts TIMESTAMP"
CASES = "case_id STRING, customer_id STRING, status STRING, opened_at TIMESTAMP, csat INT"
FX = "rate_date DATE, currency STRING, usd_per_unit DECIMAL(18,8)"


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def silver(spark: SparkSession) -> Silver:
    signup = ts("2025-12-01 09:00")
    return Silver(
        customers=spark.createDataFrame(
            [
                ("C1", "Ann", "Lee", " Ann@X.com ", "+44 (20) 7946-01", "GB", "London",
                 "consumer", True, signup, signup, signup, None, True),
                # C2 moved to Lyon on 2026-01-05 10:00: the version valid at the end of D
                ("C2", "Bo", "Ng", "bo@y.org", None, "FR", "Paris", "enterprise", False,
                 signup, signup, signup, ts("2026-01-05 10:00"), False),
                ("C2", "Bo", "Ng", "bo@y.org", None, "FR", "Lyon", "enterprise", False,
                 signup, ts("2026-01-05 10:00"), ts("2026-01-05 10:00"), None, True),
                # C3 was deleted on 2026-01-08: not in the population of D
                ("C3", "Cy", "Oh", "c@z.net", None, "DE", "Bonn", "consumer", True,
                 signup, signup, signup, ts("2026-01-08 00:00"), False),
                # C4 signed up long ago and never ordered
                ("C4", "Di", "Po", "d@w.com", "", "US", "Austin", "consumer", False,
                 ts("2025-06-01 00:00"), ts("2025-06-01 00:00"), ts("2025-06-01 00:00"),
                 None, True),
            ],
            CUSTOMERS,
        ),
        orders=spark.createDataFrame(
            [
                ("O1", "C1", ts("2026-01-02 12:00"), "EUR", Decimal("100.00"), "delivered"),
                ("O2", "C1", ts("2026-01-03 08:00"), "EUR", Decimal("50.00"), "shipped"),
                ("O3", "C1", ts("2026-01-04 08:00"), "USD", Decimal("20.00"), "cancelled"),
                ("O4", "C1", ts("2026-01-05 08:00"), "GBP", Decimal("10.00"), "placed"),
                ("O5", "C1", ts("2026-01-11 00:00"), "USD", Decimal("99.00"), "placed"),
                ("O6", "C2", ts("2026-01-09 23:59:59"), "USD", Decimal("10.00"), "delivered"),
                ("O7", "C3", ts("2026-01-02 10:00"), "USD", Decimal("5.00"), "delivered"),
            ],
            ORDERS,
        ),
        returns=spark.createDataFrame(
            [
                ("R1", "C1", ts("2026-01-06 10:00"), "EUR", Decimal("25.00")),
                ("R2", "C1", ts("2026-01-12 10:00"), "EUR", Decimal("50.00")),
            ],
            RETURNS,
        ),
        events=spark.createDataFrame(
            [
                ("e1", "C1", "s1", ts("2026-01-10 08:00")),
                ("e2", "C1", "s1", ts("2026-01-10 23:59:59")),
                ("e3", "C1", "s0", ts("2025-12-11 12:00")),  # D-30: outside the window
                ("e4", "C1", "s2", ts("2025-12-12 00:00")),  # D-29: inside
                ("e5", "C1", "s3", ts("2026-01-11 00:00")),  # after D
                ("e6", "C2", None, ts("2026-01-01 00:00")),
            ],
            EVENTS,
        ),
        cases=spark.createDataFrame(
            [
                ("K1", "C1", "closed", ts("2026-01-03 10:00"), 4),
                ("K2", "C1", "open", ts("2026-01-04 10:00"), None),
                ("K3", "C1", "open", ts("2026-01-11 10:00"), None),
                ("K4", "C2", "closed", ts("2026-01-02 10:00"), 1),
            ],
            CASES,
        ),
        fx=spark.createDataFrame(
            [
                (dt.date(2026, 1, 1), "EUR", Decimal("1.10")),
                (dt.date(2026, 1, 3), "EUR", Decimal("1.20")),
                (dt.date(2026, 1, 9), "GBP", Decimal("1.30")),
            ],
            FX,
        ),
    )


EXPECTED = (
    "customer_id STRING, first_name STRING, last_name STRING, country STRING, city STRING, "
    "segment STRING, marketing_opt_in BOOLEAN, signup_date DATE, email_sha256 STRING, "
    "phone_sha256 STRING, orders_count BIGINT, gross_revenue_usd DECIMAL(18,2), "
    "fx_missing_orders BIGINT, returns_usd DECIMAL(18,2), fx_missing_returns BIGINT, "
    "first_order_at TIMESTAMP, last_order_at TIMESTAMP, events_30d BIGINT, "
    "sessions_30d BIGINT, last_seen_at TIMESTAMP, cases_total BIGINT, open_cases BIGINT, "
    "avg_csat DECIMAL(4,2), net_revenue_usd DECIMAL(18,2), avg_order_value_usd DECIMAL(18,2), "
    "r_score INT, f_score INT, m_score INT, rfm_segment STRING, churn_risk STRING, "
    "_run_id STRING, as_of_date DATE, days_since_last_order INT"
)


def test_every_metric_on_a_hand_built_case(spark: SparkSession) -> None:
    rows = (
        base_metrics(silver(spark), D)
        .transform(customer_360(D, RULES, "run-1"))
        .transform(with_day_counts(D))  # as read
    )
    money = Decimal
    expected = spark.createDataFrame(
        [
            # C1: O1 100 EUR at 01-01's 1.10 (no rate on 01-02) = 110.00; O2 50 EUR at
            # 1.20 = 60.00; O3 cancelled; O4 GBP has no rate on or before 01-05: left
            # out, fx_missing_orders 1; O5 after D. Returns: R1 25 EUR at 1.20 = 30.00.
            # avg = 170.00 / 3 = 56.67. Events in 12-12 .. 01-10: e1, e2, e4 (s1, s2).
            # r/f/m over 3 customers: ntile(5) gives 1..3. C1: r 2, f 3, m 3 -> at_risk.
            ("C1", "Ann", "Lee", "GB", "London", "consumer", True, dt.date(2025, 12, 1),
             sha("ann@x.com"), sha("4420794601"), 3, money("170.00"), 1, money("30.00"), 0,
             ts("2026-01-02 12:00"), ts("2026-01-05 08:00"), 3, 2, ts("2026-01-10 23:59:59"),
             2, 1, money("4.00"), money("140.00"), money("56.67"), 2, 3, 3, "at_risk",
             "low", "run-1", D, 5),
            # C2: the Lyon version; one order at 23:59:59 on D-1; CSAT 1 -> churn medium
            ("C2", "Bo", "Ng", "FR", "Lyon", "enterprise", False, dt.date(2025, 12, 1),
             sha("bo@y.org"), None, 1, money("10.00"), 0, money("0.00"), 0,
             ts("2026-01-09 23:59:59"), ts("2026-01-09 23:59:59"), 1, 0,
             ts("2026-01-01 00:00"), 1, 0, money("1.00"), money("10.00"), money("10.00"),
             3, 2, 2, "needs_attention", "medium", "run-1", D, 1),
            # C4: no orders; 223 days since signup -> high; worst in every score
            ("C4", "Di", "Po", "US", "Austin", "consumer", False, dt.date(2025, 6, 1),
             sha("d@w.com"), None, 0, money("0.00"), 0, money("0.00"), 0, None, None, 0, 0,
             None, 0, 0, None, money("0.00"), None, 1, 1, 1, "hibernating", "high", "run-1",
             D, None),
        ],
        EXPECTED,
    )  # fmt: skip
    assert_df_equality(
        rows.drop("_updated_at"),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_the_population_and_profile_are_as_of_the_logical_date(spark: SparkSession) -> None:
    day = dt.date(2026, 1, 4)
    rows = base_metrics(silver(spark), day).select("customer_id", "city", "orders_count")
    expected: DataFrame = spark.createDataFrame(
        [("C1", "London", 2), ("C2", "Paris", 0), ("C3", "Bonn", 1), ("C4", "Austin", 0)],
        "customer_id STRING, city STRING, orders_count BIGINT",
    )
    assert_df_equality(rows, expected, ignore_row_order=True, ignore_nullable=True)
