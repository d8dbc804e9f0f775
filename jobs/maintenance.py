"""The maintenance job: OPTIMIZE (with Z-ORDER where configured) and VACUUM every table.

Tables: every Bronze, Silver (with SCD2 event logs) and Gold table the configuration
declares, and their quarantine tables, that exist. ``gold.maintenance`` in config:
``vacuum_retention_hours`` (at least 168 unless you accept losing time travel and
concurrent readers' snapshots; below it the job turns Delta's retention check off for
its own VACUUMs and says so) and ``zorder_by`` (``<layer>.<table>: [columns]``).

A Bronze table is not vacuumed while a Silver table reading it has not consumed a
version older than the retention: VACUUM would delete files that Silver's Change
Data Feed read still needs. The run summary lists what was done per table.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from jobs.common import delta_io
from jobs.common.tables import declared_tables

if TYPE_CHECKING:
    from jobs.common.job import JobEnv

log = logging.getLogger(__name__)
SAFE_RETENTION_HOURS = 168


def maintained_tables(job: JobEnv) -> list[tuple[str, str]]:
    """(``<layer>.<table>``, location) of every declared table that exists."""
    found = []
    for name in declared_tables(job.settings):
        layer, table = name.split(".", 1)
        location = job.paths.table(layer, table)
        if delta_io.table_exists(job.spark, location):
            found.append((name, location))
    return found


def run_maintenance(job: JobEnv) -> None:
    """OPTIMIZE and VACUUM every table; one summary entry per table."""
    spark, settings = job.spark, job.settings.gold.maintenance
    retention = settings.vacuum_retention_hours
    check = "spark.databricks.delta.retentionDurationCheck.enabled"
    if retention < SAFE_RETENTION_HOURS:
        log.warning(
            "vacuum retention %dh is below %dh: time travel and long-running readers "
            "lose their files; Delta's retention check is off for this job's VACUUMs",
            retention,
            SAFE_RETENTION_HOURS,
        )
        spark.conf.set(check, "false")
    done: dict[str, Any] = {}
    try:
        for name, location in maintained_tables(job):
            with job.recorder.step(f"maintain {name}"):
                done[name] = _maintain(job, name, location, settings.zorder_by.get(name), retention)
    finally:
        spark.conf.unset(check)
    job.recorder.summary.notes["maintenance"] = done


def _maintain(
    job: JobEnv, name: str, location: str, zorder: list[str] | None, retention: int
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "zorder_by": zorder or [],
        **delta_io.optimize(job.spark, location, zorder or ()),
    }
    blocker = _unread_bronze(job, name, location, retention) if name.startswith("bronze.") else None
    if blocker:
        entry["vacuum"] = f"skipped: {blocker}"
        log.warning("not vacuuming %s: %s", name, blocker)
    else:
        delta_io.vacuum(job.spark, location, retention)
        entry["vacuum"] = f"retention {retention}h"
    entry["version"] = delta_io.current_version(job.spark, location)
    return entry


def _unread_bronze(job: JobEnv, name: str, location: str, retention: int) -> str | None:
    """Why VACUUM would break a Silver table's next read of ``name``, or None."""
    spark = job.spark
    progress = job.paths.table("_control", "silver_progress")
    readers = [t for t, s in job.settings.silver.items() if f"bronze.{s.source}" == name]
    if not readers or not delta_io.table_exists(spark, progress):
        return None
    latest = delta_io.current_version(spark, location)
    done = {
        r["name"]: int(r["position"])
        for r in delta_io.read_table(spark, progress).collect()
        if r["name"] in {f"silver.{t}" for t in readers}
    }
    oldest_needed = min((done.get(f"silver.{t}", -1) + 1 for t in readers), default=latest + 1)
    if oldest_needed > latest:
        return None
    committed = delta_io.commit_time(spark, location, oldest_needed)
    if committed is None:
        return None
    age = dt.datetime.now() - committed
    if age > dt.timedelta(hours=retention):
        return (
            f"version {oldest_needed} ({age} old) is not read yet by "
            f"{', '.join(f'silver.{t}' for t in readers)}; run them first"
        )
    return None
