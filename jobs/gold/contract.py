"""What gold.customer_360 is made of, without Spark: its inputs and its columns' sources.

The registry (and through it the DAG files, on Airflow workers that have no Spark)
reads these; the job's code (``build.py``, ``customer_360.py``) uses the same names.
"""

from __future__ import annotations

from jobs.common.lineage import ColumnSource
from jobs.common.tables import CUSTOMER_360

TABLE = CUSTOMER_360
# the Silver tables the job reads, by the name its code gives each
INPUTS = {
    "customers": "dim_customer",
    "orders": "fct_orders",
    "returns": "fct_returns",
    "events": "fct_events",
    "cases": "fct_support_cases",
    "fx": "fx_rates",
}
PROFILE = ["first_name", "last_name", "country", "city", "segment", "marketing_opt_in"]


def _from(*pairs: tuple[str, str]) -> list[ColumnSource]:
    return [ColumnSource(dataset, column) for dataset, column in pairs]


_ORDERS_USD = (
    ("silver.fct_orders", "amount"),
    ("silver.fct_orders", "currency"),
    ("silver.fct_orders", "order_ts"),
    ("silver.fct_orders", "status"),
    ("silver.fx_rates", "usd_per_unit"),
    ("silver.fx_rates", "rate_date"),
)
_RETURNS_USD = (
    ("silver.fct_returns", "amount"),
    ("silver.fct_returns", "currency"),
    ("silver.fct_returns", "return_ts"),
    ("silver.fx_rates", "usd_per_unit"),
    ("silver.fx_rates", "rate_date"),
)
_DIM = "silver.dim_customer"
# where each output column comes from (the OpenLineage columnLineage facet)
COLUMN_LINEAGE: dict[str, list[ColumnSource]] = {
    "customer_id": _from((_DIM, "customer_id")),
    **{c: _from((_DIM, c), (_DIM, "valid_from"), (_DIM, "valid_to")) for c in PROFILE},
    "signup_date": _from((_DIM, "created_at")),
    "email_sha256": _from((_DIM, "email")),
    "phone_sha256": _from((_DIM, "phone")),
    "orders_count": _from(("silver.fct_orders", "order_id"), ("silver.fct_orders", "status")),
    "gross_revenue_usd": _from(*_ORDERS_USD),
    "fx_missing_orders": _from(*_ORDERS_USD),
    "returns_usd": _from(*_RETURNS_USD),
    "fx_missing_returns": _from(*_RETURNS_USD),
    "net_revenue_usd": _from(*_ORDERS_USD, *_RETURNS_USD),
    "avg_order_value_usd": _from(*_ORDERS_USD),
    "first_order_at": _from(("silver.fct_orders", "order_ts")),
    "last_order_at": _from(("silver.fct_orders", "order_ts")),
    "events_30d": _from(("silver.fct_events", "event_id"), ("silver.fct_events", "event_ts")),
    "sessions_30d": _from(("silver.fct_events", "session_id"), ("silver.fct_events", "event_ts")),
    "last_seen_at": _from(("silver.fct_events", "event_ts")),
    "cases_total": _from(
        ("silver.fct_support_cases", "case_id"), ("silver.fct_support_cases", "opened_at")
    ),
    "open_cases": _from(
        ("silver.fct_support_cases", "status"), ("silver.fct_support_cases", "opened_at")
    ),
    "avg_csat": _from(("silver.fct_support_cases", "csat")),
    "r_score": _from(("silver.fct_orders", "order_ts")),
    "f_score": _from(("silver.fct_orders", "order_id"), ("silver.fct_orders", "status")),
    "m_score": _from(*_ORDERS_USD, *_RETURNS_USD),
}
