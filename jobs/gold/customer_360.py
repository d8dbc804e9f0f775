"""``gold.customer_360``: one row per customer, its metrics as of a logical date D.

Pure transformations; the job (``jobs/gold/build.py``) reads, gates and writes. These
definitions are the contract (also in ``docs/gold.md``). All times are UTC; "on or
before D" means before D+1 00:00.

Population: customers with a ``silver.dim_customer`` version valid at the end of D
(``valid_from`` < D+1 <= ``valid_to``, or ``valid_to`` NULL). A customer deleted on or
before D has no such version and no row.

Profile: that version's ``first_name``, ``last_name``, ``country``, ``city``,
``segment``, ``marketing_opt_in``; ``signup_date`` = date of ``created_at``;
``email_sha256`` = SHA-256 (hex) of the trimmed, lower-cased email; ``phone_sha256``
= SHA-256 of the phone's digits only (NULL when there are none). No raw email or phone.

Orders (``silver.fct_orders``, each order's latest state):

- counted orders: ``order_ts`` on or before D and ``status`` not ``cancelled``.
- ``orders_count``: counted orders.
- ``gross_revenue_usd``: sum of counted orders' ``amount`` (as recorded; a discount is
  not subtracted) times the USD rate of the order's currency on the order's date (USD:
  1). No rate that day: the latest earlier rate. No rate on or before that day: the
  order is left out of the sum and counted in ``fx_missing_orders``. Rounded to cents
  after summing. 0 without orders.
- ``returns_usd``: returns (``silver.fct_returns``) with ``return_ts`` on or before D,
  converted the same way at the return's date; unconvertible ones are left out and
  counted in ``fx_missing_returns``. 0 without returns.
- ``net_revenue_usd`` = gross - returns; ``avg_order_value_usd`` = gross /
  ``orders_count``, rounded to cents, NULL when no orders (understated when
  ``fx_missing_orders`` > 0, which that column flags).
- ``first_order_at`` / ``last_order_at``: earliest / latest ``order_ts`` of counted
  orders.

Events (``silver.fct_events``): ``events_30d`` = events with ``event_ts`` in D-29 .. D
(30 days); ``sessions_30d`` = distinct non-NULL ``session_id`` among them;
``last_seen_at`` = latest ``event_ts`` on or before D.

Cases (``silver.fct_support_cases``, latest state): cases opened on or before D;
``cases_total`` = their number, ``open_cases`` = those whose status is not ``closed``,
``avg_csat`` = mean CSAT over those with a score (2 decimals, NULL when none).

Scores over the population of D: ``r_score`` (recency: a later date of the last order
is better; no orders is worst), ``f_score`` (``orders_count``), ``m_score``
(``net_revenue_usd``): quintiles 1-5 (5 best) by ``ntile(5)`` over the population
ordered worst to best, ties broken by ``customer_id`` ascending (so a tie puts the
smaller id in the lower or equal quintile). ``rfm_segment``: the first rule of
``Customer360Rules.rfm_segments`` whose score ranges all hold, else its default.
``churn_risk``: see :func:`churn_risk`.

Day counts (:func:`with_day_counts`, derived when the table is read, never stored, so
the passage of a day alone rewrites no row): ``as_of_date`` = D, the date the stored
rows were built for; ``days_since_last_order`` = D - date of ``last_order_at`` (NULL:
no orders).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.gold.contract import PROFILE

MONEY = "decimal(18,2)"
LEVELS = ("low", "medium", "high")
# metrics that depend only on the customer's facts up to D: stored and reused for
# customers an incremental run does not touch
BASE_COLUMNS = [
    "customer_id",
    *PROFILE,
    "signup_date",
    "email_sha256",
    "phone_sha256",
    "orders_count",
    "gross_revenue_usd",
    "fx_missing_orders",
    "returns_usd",
    "fx_missing_returns",
    "first_order_at",
    "last_order_at",
    "events_30d",
    "sessions_30d",
    "last_seen_at",
    "cases_total",
    "open_cases",
    "avg_csat",
]


@dataclass(frozen=True)
class SegmentRule:
    """A named RFM segment: inclusive score ranges; an absent range always holds."""

    name: str
    r: tuple[int, int] = (1, 5)
    f: tuple[int, int] = (1, 5)
    m: tuple[int, int] = (1, 5)


@dataclass(frozen=True)
class ChurnRules:
    """Churn risk levels (see :func:`churn_risk`)."""

    high_after_days: int = 90
    medium_after_days: int = 30
    engaged_events_30d: int = 5
    unhappy_csat: float = 2.0


@dataclass(frozen=True)
class Customer360Rules:
    """The configurable parts of the metrics (``gold.customer_360`` in config)."""

    rfm_segments: Sequence[SegmentRule] = field(default_factory=tuple)
    rfm_default: str = "others"
    churn: ChurnRules = field(default_factory=ChurnRules)


def _end_of(day: dt.date) -> Column:
    """The instant D+1 00:00 UTC; "on or before D" means before it."""
    return F.lit(dt.datetime.combine(day + dt.timedelta(days=1), dt.time())).cast("timestamp")


def current_customers(as_of: dt.date) -> Callable[[DataFrame], DataFrame]:
    """Profile of every customer with a version valid at the end of ``as_of``."""
    end = _end_of(as_of)

    def transform(dim_customer: DataFrame) -> DataFrame:
        valid = dim_customer.where(
            (F.col("valid_from") < end) & (F.col("valid_to").isNull() | (F.col("valid_to") >= end))
        )
        digits = F.regexp_replace(F.col("phone"), "[^0-9]", "")
        return valid.select(
            "customer_id",
            *PROFILE,
            F.to_date("created_at").alias("signup_date"),
            F.sha2(F.lower(F.trim(F.col("email"))), 256).alias("email_sha256"),
            F.when(digits != "", F.sha2(digits, 256)).alias("phone_sha256"),
        )

    return transform


def to_usd(fx: DataFrame, currency: str, day: str) -> Callable[[DataFrame], DataFrame]:
    """Add ``_usd_rate``: USD per unit of ``currency`` on ``day`` or the latest day before.

    USD is 1; NULL when no rate exists on or before ``day``. One row out per row in
    (rows need a unique ``_row`` id).
    """

    def transform(rows: DataFrame) -> DataFrame:
        rates = fx.select(
            F.col("currency").alias("_fx_currency"),
            F.col("rate_date").alias("_fx_date"),
            F.col("usd_per_unit").alias("_fx_rate"),
        )
        joined = rows.join(
            rates,
            (F.col(currency) == F.col("_fx_currency")) & (F.col("_fx_date") <= F.col(day)),
            "left",
        )
        newest = Window.partitionBy("_row").orderBy(F.col("_fx_date").desc_nulls_last())
        return (
            joined.withColumn("_pick", F.row_number().over(newest))
            .where("_pick = 1")
            .withColumn(
                "_usd_rate",
                F.when(F.col(currency) == "USD", F.lit(1).cast("decimal(18,8)")).otherwise(
                    F.col("_fx_rate")
                ),
            )
            .drop("_fx_currency", "_fx_date", "_fx_rate", "_pick")
        )

    return transform


def order_metrics(fx: DataFrame, as_of: dt.date) -> Callable[[DataFrame], DataFrame]:
    """Per customer: orders_count, gross_revenue_usd, fx_missing_orders, first/last order."""

    def transform(orders: DataFrame) -> DataFrame:
        counted = orders.where(
            (F.col("order_ts") < _end_of(as_of)) & (F.col("status") != "cancelled")
        ).select(
            F.col("order_id").alias("_row"),
            "customer_id",
            "order_ts",
            "currency",
            "amount",
            F.to_date("order_ts").alias("_day"),
        )
        priced = counted.transform(to_usd(fx, "currency", "_day"))
        return priced.groupBy("customer_id").agg(
            F.count("*").alias("orders_count"),
            F.sum(F.col("amount") * F.col("_usd_rate")).alias("_gross"),
            F.count_if(F.col("_usd_rate").isNull()).alias("fx_missing_orders"),
            F.min("order_ts").alias("first_order_at"),
            F.max("order_ts").alias("last_order_at"),
        )

    return transform


def return_metrics(fx: DataFrame, as_of: dt.date) -> Callable[[DataFrame], DataFrame]:
    """Per customer: returns_usd (unrounded as ``_returns``) and fx_missing_returns."""

    def transform(returns: DataFrame) -> DataFrame:
        counted = returns.where(F.col("return_ts") < _end_of(as_of)).select(
            F.col("return_id").alias("_row"),
            "customer_id",
            "currency",
            "amount",
            F.to_date("return_ts").alias("_day"),
        )
        return (
            counted.transform(to_usd(fx, "currency", "_day"))
            .groupBy("customer_id")
            .agg(
                F.sum(F.col("amount") * F.col("_usd_rate")).alias("_returns"),
                F.count_if(F.col("_usd_rate").isNull()).alias("fx_missing_returns"),
            )
        )

    return transform


def event_metrics(as_of: dt.date, window_days: int = 30) -> Callable[[DataFrame], DataFrame]:
    """Per customer: events_30d, sessions_30d (window D-29 .. D), last_seen_at."""
    start = F.lit(as_of - dt.timedelta(days=window_days - 1)).cast("timestamp")

    def transform(events: DataFrame) -> DataFrame:
        upto = events.where(F.col("event_ts") < _end_of(as_of))
        in_window = F.col("event_ts") >= start
        return upto.groupBy("customer_id").agg(
            F.count_if(in_window).alias("events_30d"),
            F.count_distinct(F.when(in_window, F.col("session_id"))).alias("sessions_30d"),
            F.max("event_ts").alias("last_seen_at"),
        )

    return transform


def case_metrics(as_of: dt.date) -> Callable[[DataFrame], DataFrame]:
    """Per customer: cases_total, open_cases, avg_csat over cases opened on or before D."""

    def transform(cases: DataFrame) -> DataFrame:
        opened = cases.where(F.col("opened_at") < _end_of(as_of))
        return opened.groupBy("customer_id").agg(
            F.count("*").alias("cases_total"),
            F.count_if(F.col("status") != "closed").alias("open_cases"),
            F.avg("csat").cast("decimal(4,2)").alias("avg_csat"),
        )

    return transform


@dataclass(frozen=True)
class Silver:
    """The Silver inputs of the metrics (each may be restricted to some customers)."""

    customers: DataFrame  # silver.dim_customer (all versions)
    orders: DataFrame
    returns: DataFrame
    events: DataFrame
    cases: DataFrame
    fx: DataFrame  # silver.fx_rates


def base_metrics(silver: Silver, as_of: dt.date) -> DataFrame:
    """:data:`BASE_COLUMNS` for each customer of the population of ``as_of``."""
    people = silver.customers.transform(current_customers(as_of))
    money = F.lit(0).cast(MONEY)
    joined = (
        people.join(silver.orders.transform(order_metrics(silver.fx, as_of)), "customer_id", "left")
        .join(silver.returns.transform(return_metrics(silver.fx, as_of)), "customer_id", "left")
        .join(silver.events.transform(event_metrics(as_of)), "customer_id", "left")
        .join(silver.cases.transform(case_metrics(as_of)), "customer_id", "left")
    )
    return joined.select(
        "customer_id",
        *PROFILE,
        "signup_date",
        "email_sha256",
        "phone_sha256",
        F.coalesce("orders_count", F.lit(0)).cast("bigint").alias("orders_count"),
        F.coalesce(F.round("_gross", 2).cast(MONEY), money).alias("gross_revenue_usd"),
        F.coalesce("fx_missing_orders", F.lit(0)).cast("bigint").alias("fx_missing_orders"),
        F.coalesce(F.round("_returns", 2).cast(MONEY), money).alias("returns_usd"),
        F.coalesce("fx_missing_returns", F.lit(0)).cast("bigint").alias("fx_missing_returns"),
        "first_order_at",
        "last_order_at",
        F.coalesce("events_30d", F.lit(0)).cast("bigint").alias("events_30d"),
        F.coalesce("sessions_30d", F.lit(0)).cast("bigint").alias("sessions_30d"),
        "last_seen_at",
        F.coalesce("cases_total", F.lit(0)).cast("bigint").alias("cases_total"),
        F.coalesce("open_cases", F.lit(0)).cast("bigint").alias("open_cases"),
        "avg_csat",
    )


# what the job stores per customer (the day counts are derived when read)
STORED_COLUMNS = [
    *BASE_COLUMNS,
    "net_revenue_usd",
    "avg_order_value_usd",
    "r_score",
    "f_score",
    "m_score",
    "rfm_segment",
    "churn_risk",
    "_run_id",
    "_updated_at",
]


def _quintile(worst_first: Column) -> Column:
    return F.ntile(5).over(Window.orderBy(worst_first, F.col("customer_id").asc()))


def churn_risk(rules: ChurnRules) -> Column:
    """``low`` / ``medium`` / ``high``.

    Level by recency: days since the last order (customers without orders: days since
    signup) above ``high_after_days`` is high, above ``medium_after_days`` medium,
    else low. Then one level lower when ``events_30d`` >= ``engaged_events_30d``
    (still engaged), one level higher when ``avg_csat`` <= ``unhappy_csat``; clamped.
    """
    idle = F.col("_days_idle")
    level = (
        F.when(idle > rules.high_after_days, 2).when(idle > rules.medium_after_days, 1).otherwise(0)
    )
    level = level - F.when(F.col("events_30d") >= rules.engaged_events_30d, 1).otherwise(0)
    level = level + F.when(F.col("avg_csat") <= rules.unhappy_csat, 1).otherwise(0)
    clamped = F.greatest(F.lit(0), F.least(F.lit(2), level))
    return F.element_at(F.array(*[F.lit(x) for x in LEVELS]), clamped + 1)


def rfm_segment(rules: Customer360Rules) -> Column:
    """The first matching segment rule's name, else the default."""
    segment = F.lit(rules.rfm_default)
    for rule in reversed(rules.rfm_segments):
        holds = F.lit(True)
        for score, (low, high) in (("r_score", rule.r), ("f_score", rule.f), ("m_score", rule.m)):
            holds = holds & F.col(score).between(low, high)
        segment = F.when(holds, F.lit(rule.name)).otherwise(segment)
    return segment


def customer_360(
    as_of: dt.date, rules: Customer360Rules, run_id: str, updated_at: dt.datetime | None = None
) -> Callable[[DataFrame], DataFrame]:
    """The table's stored rows from :func:`base_metrics` rows (the whole population of D).

    Nothing stored counts days from D (:func:`with_day_counts` adds those when read):
    a stored row changes only when the customer's facts, the population's quintiles or
    its churn level change. ``updated_at`` (the run's start; default now) is a literal,
    so the rows are a deterministic function of the inputs and Delta need not
    materialise a MERGE source.
    """
    stamp = F.lit(updated_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)).cast("timestamp")
    day = F.lit(as_of)

    def transform(base: DataFrame) -> DataFrame:
        last_order = F.to_date("last_order_at")
        derived = base.select(
            *BASE_COLUMNS,
            (F.col("gross_revenue_usd") - F.col("returns_usd"))
            .cast(MONEY)
            .alias("net_revenue_usd"),
            F.when(
                F.col("orders_count") > 0,
                F.round(F.col("gross_revenue_usd") / F.col("orders_count"), 2).cast(MONEY),
            ).alias("avg_order_value_usd"),
            F.datediff(day, F.coalesce(last_order, F.col("signup_date"))).alias("_days_idle"),
        )
        scored = (
            # recency: the earlier the last order, the worse (the same order as more
            # days since it, whatever D is)
            derived.withColumn("r_score", _quintile(last_order.asc_nulls_first()))
            .withColumn("f_score", _quintile(F.col("orders_count").asc()))
            .withColumn("m_score", _quintile(F.col("net_revenue_usd").asc()))
        )
        return scored.withColumns(
            {
                "rfm_segment": rfm_segment(rules),
                "churn_risk": churn_risk(rules.churn),
                "_run_id": F.lit(run_id),
                "_updated_at": stamp,
            }
        ).select(*STORED_COLUMNS)

    return transform


def day_counts(as_of: dt.date) -> dict[str, str]:
    """The columns that count days from D, as SQL over a stored row (views use it too)."""
    day = f"DATE'{as_of.isoformat()}'"
    return {
        "as_of_date": day,
        "days_since_last_order": f"datediff({day}, to_date(last_order_at))",
    }


def with_day_counts(as_of: dt.date) -> Callable[[DataFrame], DataFrame]:
    """Stored rows built for ``as_of`` with the columns that count days from it."""

    def transform(stored: DataFrame) -> DataFrame:
        return stored.select(
            "*", *[F.expr(sql).alias(name) for name, sql in day_counts(as_of).items()]
        )

    return transform
