"""Bronze ingest job for batch sources (JDBC, REST API, FX): one run = one batch.

Sequence, each step safe to kill:

1. take the table's single-writer lock;
2. read the progress of the last committed batch from the Bronze table's own log;
3. read the increment from the source (window from the watermark, or a backfill);
4. stage: add Bronze metadata, drop records already in Bronze (lookback overlap,
   backfill, replays); check schema drift before anything is written;
5. write rejects to ``_quarantine/bronze_<table>`` (idempotent: same batch id);
6. append to Bronze with the new progress in the same commit (idempotent).

A kill before 6 leaves the old progress in place and the rerun redoes the batch (the
quarantine append is skipped as already applied); a kill after 6 leaves nothing to redo.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from jobs.bronze import fx, jdbc
from jobs.bronze.connector import Increment, ReadRequest
from jobs.bronze.metadata import as_quarantine, only_new_records, with_bronze_metadata
from jobs.common.delta_io import (
    CommitInfo,
    append_batch,
    current_version,
    read_table,
    register_table,
    table_exists,
)
from jobs.common.faults import crash_inside, crash_point
from jobs.common.locks import table_lock
from jobs.common.progress import Progress, read_progress
from jobs.common.run_context import DatasetStats
from jobs.common.schema_drift import plan_schema_change

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from pyspark.sql import DataFrame

    from jobs.registry import JobEnv

CONNECTORS: dict[str, Callable[[ReadRequest], Increment]] = {"jdbc": jdbc.read, "fx": fx.read}
BRONZE_PROPERTIES = {"delta.appendOnly": "true"}


def bronze_table_name(source: str, entity: str) -> str:
    """``<source>_<entity>``, registered as ``bronze.<source>_<entity>``."""
    return f"{source}_{entity}"


def ingest(job: JobEnv, source: str, entity: str) -> None:
    """Ingest one batch of ``source``.``entity`` into Bronze."""
    spark, paths, ctx, run = job.spark, job.paths, job.ctx, job.recorder
    spec = job.settings.sources[source]
    entity_spec = spec.entities[entity]
    table = bronze_table_name(source, entity)
    location = paths.table("bronze", table)
    quarantine_location = paths.table("_quarantine", f"bronze_{table}")
    cached: list[DataFrame] = []
    with table_lock(paths, f"bronze.{table}", ctx.run_id), _released(cached):
        previous = read_progress(spark, location)
        batch_id = (previous.batch_id if previous else 0) + 1
        window = None
        if ctx.window:
            window = (
                datetime.combine(ctx.window[0], time()),
                datetime.combine(ctx.window[1], time()),
            )
        request = ReadRequest(
            spark,
            source,
            entity,
            spec,
            entity_spec,
            since=previous.watermark if previous else None,
            logical_date=ctx.logical_date,
            paths=paths,
            window=window,
        )
        ingested_at = datetime.now(UTC).replace(tzinfo=None)
        with run.step("read"):
            increment = CONNECTORS[spec.type](request)
            staged = increment.frame.transform(
                with_bronze_metadata(
                    f"{source}.{entity}", ctx.run_id, batch_id, ingested_at, increment.position
                )
            ).cache()
            cached.append(staged)
            rows_read = staged.count()
        crash_point("after_read")
        exists = table_exists(spark, location)
        change = None
        with run.step("stage"):
            if exists:
                current = read_table(spark, location)
                change = plan_schema_change(
                    f"bronze.{table}", current.schema, staged.schema, entity_spec.primary_key
                )
                scope = (
                    current.where(increment.existing_filter)
                    if increment.existing_filter
                    else current
                )
                new_rows = staged.transform(only_new_records(scope))
            else:
                new_rows = staged.dropDuplicates(["_record_hash"])
            new_rows = new_rows.cache()
            cached.append(new_rows)
            rows_new = new_rows.count()
            watermark = _next_watermark(previous, new_rows, increment.cursor, backfill=bool(window))
        rows_rejected = 0
        if increment.rejects is not None:
            rejects = increment.rejects.transform(
                as_quarantine(f"{source}.{entity}", ctx.run_id, batch_id, ingested_at)
            ).cache()
            cached.append(rejects)
            rows_rejected = rejects.count()
            if rows_rejected:
                with run.step("quarantine"):
                    append_batch(
                        spark,
                        rejects,
                        quarantine_location,
                        app_id=f"quarantine.bronze.{table}",
                        batch_id=batch_id,
                        user_metadata=Progress(batch_id, {}, ctx.run_id).to_metadata(),
                    )
        progress = Progress(batch_id, watermark, ctx.run_id)
        unchanged = previous is not None and watermark == previous.watermark
        with run.step("write"):
            if rows_new == 0 and rows_rejected == 0 and unchanged:
                commit = CommitInfo(current_version(spark, location), "NONE", {})
            else:
                commit = append_batch(
                    spark,
                    crash_inside(new_rows, "mid_write"),
                    location,
                    app_id=f"bronze.{table}",
                    batch_id=batch_id,
                    user_metadata=progress.to_metadata(),
                    partition_by=["_ingest_date"],
                    merge_schema=bool(change and change.evolves),
                    properties=BRONZE_PROPERTIES,
                )
        crash_point("after_commit")
        register_table(spark, "bronze", table, location)
    run.input(
        DatasetStats(
            f"{source}.{entity}",
            _source_name(job, source, entity),
            rows=rows_read + rows_rejected,
            extra=increment.details,
        )
    )
    run.output(
        DatasetStats(
            f"bronze.{table}",
            location,
            rows=rows_new,
            rows_quarantined=rows_rejected,
            delta_version=commit.version,
            extra={
                "batch_id": batch_id,
                "operation": commit.operation,
                "duplicates_skipped": rows_read - rows_new,
                "watermark_before": previous.watermark if previous else None,
                "watermark_after": watermark,
                "schema_added_columns": list(change.added) if change else [],
                "quarantine_table": quarantine_location if rows_rejected else None,
            },
        )
    )


@contextmanager
def _released(frames: list[DataFrame]) -> Iterator[None]:
    """Unpersist every frame cached in the block, on every exit path."""
    try:
        yield
    finally:
        for frame in frames:
            frame.unpersist()


def _next_watermark(
    previous: Progress | None, rows: DataFrame, cursor: str | None, *, backfill: bool
) -> dict[str, Any]:
    """Max of the old watermark and the batch's cursor maximum; a backfill keeps the old one."""
    old = dict(previous.watermark) if previous else {}
    if backfill or cursor is None:
        return old
    top = rows.agg(F.max(cursor).alias("m")).collect()[0]["m"]
    if top is None:
        return old
    if old.get(cursor) is not None:
        top = max(top, type(top).fromisoformat(str(old[cursor])))
    old[cursor] = top.isoformat()
    return old


def _source_name(job: JobEnv, source: str, entity: str) -> str:
    spec = job.settings.sources[source]
    if spec.type == "jdbc":
        url = jdbc.jdbc_url(str(spec.options.get("url", "")), job.paths.sources)
        return f"{url.split('?')[0]}#{entity}"
    return f"{job.paths.sources}/{source}/{entity}"
