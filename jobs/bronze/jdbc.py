"""Relational sources over JDBC, incremental by a high-watermark column.

The window is ``cursor >= since - lookback`` (or a backfill's ``[start, end)``). The
predicate is a DataFrame filter on the JDBC relation, which Spark pushes down into
the SQL it sends (the physical plan shows it under ``PushedFilters``). Rows re-read
inside the lookback are dropped by the Bronze duplicate check, so a late commit is
picked up exactly once. With ``num_partitions`` > 1 the read is split into parallel
range queries on the cursor column.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pyspark.sql import functions as F

from jobs.bronze.connector import Increment, ReadRequest
from jobs.common.errors import ConfigError
from jobs.common.secrets import resolve_secret

EPOCH = datetime(1970, 1, 1)


def jdbc_url(template: str, sources_root: str) -> str:
    """Expand ``{sources}`` (the local source-systems folder) in a configured URL."""
    return template.replace("{sources}", sources_root)


def window_start(since: dict[str, Any] | None, cursor: str, lookback: timedelta) -> datetime | None:
    """Lower bound of an incremental read: the last watermark minus the lookback."""
    if not since or since.get(cursor) is None:
        return None
    last = datetime.fromisoformat(str(since[cursor])).replace(tzinfo=None)
    return last - lookback


def read(request: ReadRequest) -> Increment:
    """Read the entity's table from the configured database."""
    options = request.spec.options
    cursor = request.entity_spec.cursor
    snapshot = request.entity_spec.mode == "snapshot"
    if "url" not in options or (cursor is None and not snapshot):
        raise ConfigError(
            f"sources.{request.source}: a jdbc source needs options.url and, unless read in "
            "snapshot mode, a cursor per entity"
        )
    reader = (
        request.spark.read.format("jdbc")
        .option("url", jdbc_url(str(options["url"]), request.paths.sources))
        .option("dbtable", str(options.get("tables", {}).get(request.entity, request.entity)))
        .option("fetchsize", str(options.get("fetch_size", 10_000)))
    )
    if options.get("user"):
        reader = reader.option("user", str(options["user"]))
    if request.spec.credentials is not None:
        reader = reader.option("password", resolve_secret(request.spec.credentials))
    if snapshot:  # the whole table: jobs/bronze/snapshot.py compares it with the last one
        keys = [F.col(f"`{k}`") for k in request.entity_spec.primary_key]
        return Increment(
            frame=reader.load(),
            position=F.to_json(F.struct(*keys)),
            cursor=None,
            existing_filter="false",  # events carry their snapshot's time: never seen before
            details={"mode": "snapshot"},
        )
    assert cursor is not None
    lookback = timedelta(minutes=int(options.get("lookback_minutes", 60)))
    start: datetime | None = window_start(request.since, cursor, lookback)
    end: datetime | None = None
    if request.window:
        start, end = request.window
    partitions = int(options.get("num_partitions", 1))
    if partitions > 1:
        upper = end or datetime.now(UTC).replace(tzinfo=None) + timedelta(days=1)
        reader = (
            reader.option("partitionColumn", cursor)
            .option("lowerBound", (start or EPOCH).isoformat(sep=" "))
            .option("upperBound", upper.isoformat(sep=" "))
            .option("numPartitions", str(partitions))
        )
    frame = reader.load()
    predicate = F.lit(True)
    if start is not None:
        predicate = predicate & (F.col(cursor) >= F.lit(start).cast("timestamp"))
    if end is not None:
        predicate = predicate & (F.col(cursor) < F.lit(end).cast("timestamp"))
    frame = frame.where(predicate)
    existing = f"`{cursor}` >= TIMESTAMP'{start.isoformat(sep=' ')}'" if start else None
    return Increment(
        frame=frame,
        position=F.date_format(F.col(cursor), "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"),
        cursor=cursor,
        existing_filter=existing,
        details={
            "window_start": start.isoformat() if start else None,
            "window_end": end.isoformat() if end else None,
            "lookback_minutes": lookback.total_seconds() / 60,
            "partitions": partitions,
        },
    )
