"""The lake's table names, shared by the layers that write them and the jobs that tend them.

A Bronze table is named after its source entity, a quarantine table after the table it
guards, an SCD2 event log after its target: one spelling each, used by the job that
writes the table, by maintenance, by the registry and by the report.
"""

from __future__ import annotations

from jobs.common.config import Settings

EVENT_LOG_SUFFIX = "__scd2_events"
CUSTOMER_360 = "customer_360"
GOLD_TABLES = (CUSTOMER_360,)


def bronze_table_name(source: str, entity: str) -> str:
    """``<source>_<entity>``, registered as ``bronze.<source>_<entity>``."""
    return f"{source}_{entity}"


def quarantine_table_name(layer: str, table: str) -> str:
    """The ``_quarantine`` table of ``<layer>.<table>``: ``<layer>_<table>``."""
    return f"{layer}_{table}"


def event_log_name(table: str) -> str:
    """The event log of the SCD2 table ``table`` (beside it, in its layer)."""
    return f"{table}{EVENT_LOG_SUFFIX}"


def declared_tables(settings: Settings) -> list[str]:
    """Every table ``settings`` declares, as ``<layer>.<table>``, quarantine tables last.

    Bronze tables per source entity, Silver tables (with the event log of each SCD2
    table), Gold tables, then the quarantine table of each of those but the event logs.
    """
    names = [
        f"bronze.{bronze_table_name(source, entity)}"
        for source, spec in settings.sources.items()
        for entity in spec.entities
    ]
    for table, spec in settings.silver.items():
        names.append(f"silver.{table}")
        if spec.kind == "scd2":
            names.append(f"silver.{event_log_name(table)}")
    names.extend(f"gold.{table}" for table in GOLD_TABLES)
    guarded = [n for n in names if not n.endswith(EVENT_LOG_SUFFIX)]
    for name in guarded:
        layer, table = name.split(".", 1)
        names.append(f"_quarantine.{quarantine_table_name(layer, table)}")
    return names
