from __future__ import annotations

from jobs.common.config import Settings
from jobs.common.paths import LakePaths
from jobs.common.tables import declared_tables, event_log_name


def test_declared_tables_name_every_table_once_with_event_logs_and_quarantines(
    settings: Settings,
) -> None:
    assert declared_tables(settings) == [
        "bronze.crm_customers", "bronze.crm_cases", "bronze.opdb_orders",
        "bronze.opdb_products", "bronze.events_behaviour", "bronze.returns_returns",
        "bronze.fx_rates",
        "silver.dim_customer", "silver.dim_customer__scd2_events",
        "silver.dim_product", "silver.dim_product__scd2_events",
        "silver.fct_orders", "silver.fct_support_cases", "silver.fct_events",
        "silver.fct_returns", "silver.fx_rates",
        "gold.customer_360",
        "_quarantine.bronze_crm_customers", "_quarantine.bronze_crm_cases",
        "_quarantine.bronze_opdb_orders", "_quarantine.bronze_opdb_products",
        "_quarantine.bronze_events_behaviour", "_quarantine.bronze_returns_returns",
        "_quarantine.bronze_fx_rates",
        "_quarantine.silver_dim_customer", "_quarantine.silver_dim_product",
        "_quarantine.silver_fct_orders", "_quarantine.silver_fct_support_cases",
        "_quarantine.silver_fct_events", "_quarantine.silver_fct_returns",
        "_quarantine.silver_fx_rates",
        "_quarantine.gold_customer_360",
    ]  # fmt: skip


def test_an_event_log_sits_beside_its_table(lake: LakePaths) -> None:
    assert lake.table("silver", event_log_name("dim_customer")) == event_log_name(
        lake.table("silver", "dim_customer")
    )
