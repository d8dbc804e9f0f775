"""Bronze ingest job for batch sources (JDBC, REST API, FX): one run = one batch.

Sequence, each step safe to kill: take the table's single-writer lock; read the
progress of the last committed batch from the Bronze table's own log; read the
increment (window from the watermark, or a backfill's ``--from/--to``); then
:func:`jobs.bronze.writer.write_batch` (quarantine, then Bronze with the new progress in
the same commit). A kill before the Bronze commit leaves the old progress and the rerun
redoes the batch (an already applied quarantine append is skipped by Delta); a kill
after it leaves nothing to redo.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.bronze import fx, jdbc, rest
from jobs.bronze.connector import Increment, ReadRequest
from jobs.bronze.snapshot import STATE_BATCH, snapshot_changes, snapshot_state, with_row_hash
from jobs.bronze.writer import BronzeTarget, write_batch
from jobs.common import delta_io
from jobs.common.config import EntitySpec
from jobs.common.faults import crash_point
from jobs.common.locks import table_lock
from jobs.common.progress import Progress, read_progress
from jobs.common.quality import run_gate
from jobs.common.run_context import DatasetStats

if TYPE_CHECKING:
    from collections.abc import Callable

    from jobs.common.job import JobEnv

CONNECTORS: dict[str, Callable[[ReadRequest], Increment]] = {
    "jdbc": jdbc.read,
    "rest": rest.read,
    "fx": fx.read,
}


def ingest(job: JobEnv, source: str, entity: str) -> None:
    """Ingest one batch of ``source``.``entity`` into Bronze."""
    spark, paths, ctx, run = job.spark, job.paths, job.ctx, job.recorder
    spec = job.settings.sources[source]
    entity_spec = spec.entities[entity]
    target = BronzeTarget.of(paths, source, entity, entity_spec.primary_key)
    with table_lock(paths, f"bronze.{target.table}", ctx.run_id):
        previous = read_progress(spark, target.location)
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
        if entity_spec.mode == "snapshot" and window is not None:
            # a snapshot has no window: a backfill compares today's table like any run
            run.summary.notes["window"] = "ignored: a snapshot entity is compared whole"
            request, window = replace(request, window=None), None
        increment = CONNECTORS[spec.type](request)
        batch_id = (previous.batch_id if previous else 0) + 1
        cached: list[DataFrame] = []
        try:
            if entity_spec.mode == "snapshot":
                increment = _snapshot_changes(job, target, entity_spec, increment, batch_id, cached)
            outcome = write_batch(
                spark,
                target,
                records=increment.frame,
                position=increment.position,
                rejects=increment.rejects,
                run_id=ctx.run_id,
                batch_id=batch_id,
                ingested_at=datetime.now(UTC).replace(tzinfo=None),
                next_watermark=lambda rows: next_watermark(
                    previous, rows, increment.cursor, backfill=window is not None
                ),
                previous_watermark=previous.watermark if previous else None,
                existing_filter=increment.existing_filter,
                cursor=increment.cursor,
                step=run.step,
                gate=lambda staged: run_gate(job, "bronze", target.table, staged),
            )
        finally:
            for frame in cached:
                frame.unpersist()
    run.input(
        DatasetStats(
            target.source_label,
            _source_name(job, source, entity),
            rows=outcome.rows_read + outcome.rows_rejected,
            extra=increment.details,
        )
    )
    run.output(
        DatasetStats(
            f"bronze.{target.table}",
            target.location,
            rows=outcome.rows_new,
            rows_quarantined=outcome.rows_rejected,
            delta_version=outcome.commit.version,
            extra={
                "batch_id": (previous.batch_id if previous else 0) + 1,
                "operation": outcome.commit.operation,
                "duplicates_skipped": outcome.rows_read - outcome.rows_new,
                "watermark_before": previous.watermark if previous else None,
                "watermark_after": outcome.watermark,
                "schema_added_columns": list(outcome.added_columns),
                "quarantine_table": target.quarantine_location if outcome.rows_rejected else None,
            },
        )
    )


def _snapshot_changes(
    job: JobEnv,
    target: BronzeTarget,
    entity: EntitySpec,
    increment: Increment,
    batch_id: int,
    cached: list[DataFrame],
) -> Increment:
    """The snapshot read as change events against the last committed batch's snapshot.

    Writes this snapshot's state (tagged ``batch_id``) before returning: the Bronze
    commit of the batch comes after it (``jobs/bronze/snapshot.py``, exactly once).
    """
    spark = job.spark
    location = job.paths.table("_control", f"snapshot_{target.table}")
    keys, cursor = entity.primary_key, entity.cursor
    # The end of the run's logical day (a daily run starts just after it), or now if
    # earlier: a backfill or a simulated day dates what it sees on its own day.
    day_end = datetime.combine(job.ctx.logical_date + timedelta(days=1), time())
    taken_at = min(datetime.now(UTC).replace(tzinfo=None), day_end)
    with job.recorder.step("snapshot"):
        snapshot = increment.frame.transform(with_row_hash(cursor)).cache()
        cached.append(snapshot)
        state = snapshot.transform(snapshot_state(keys))
        baseline = (
            delta_io.version_with_metadata(spark, location, STATE_BATCH, batch_id - 1)
            if delta_io.table_exists(spark, location)
            else None
        )
        previous = (
            state.limit(0)
            if baseline is None
            else delta_io.read_table(spark, location, version=baseline)
        )
        changes = snapshot.transform(snapshot_changes(previous, keys, cursor, taken_at)).cache()
        cached.append(changes)
        found = changes.count()
        if found:
            delta_io.replace_table(spark, state, location, user_metadata={STATE_BATCH: batch_id})
        crash_point("after_snapshot_state")
    details = {**increment.details, "snapshot_rows": snapshot.count(), "changes": found}
    return replace(increment, frame=changes, details=details)


def next_watermark(
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
