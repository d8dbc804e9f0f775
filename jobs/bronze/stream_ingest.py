"""Bronze ingest for streaming sources (file drops; Kafka).

Structured Streaming with ``Trigger.AvailableNow`` and a checkpoint under
``_control/checkpoints/``.

Exactly once: the checkpoint's offset log fixes what each micro-batch contains before
it runs, and ``foreachBatch`` writes quarantine and Bronze as Delta idempotent appends
keyed by the micro-batch id. A kill after the Bronze commit but before the checkpoint
records the batch replays the same batch on restart, and Delta skips both appends.

Spark 4.1's Kafka source fails *after* such a replayed batch has committed, while
reporting progress (SPARK-57438: ``KafkaMicroBatchStream.metrics`` on ``Some(null)``).
The batch and its checkpoint commit are done by then, so the query is started once more
and goes on from there; any other failure propagates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery

from jobs.bronze import files, kafka
from jobs.bronze.writer import BatchOutcome, BronzeTarget, write_batch
from jobs.common.errors import QualityGateError
from jobs.common.locks import table_lock
from jobs.common.quality import run_gate
from jobs.common.run_context import DatasetStats
from jobs.common.spark import jvm_log_level

if TYPE_CHECKING:
    from jobs.common.job import JobEnv

log = logging.getLogger(__name__)

# SPARK-57438: the NullPointerException the Kafka source throws reporting progress after
# it replayed an uncommitted batch (fixed upstream after Spark 4.1.1).
STREAM_EXECUTION_LOGGER = "org.apache.spark.sql.execution.streaming"
_KAFKA_REPLAY_METRICS_NPE = 'because the return value of "scala.Option.get()" is null'


def utc_now() -> datetime:
    """The ingest time stamped on a micro-batch (naive UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


def checkpoint_location(job: JobEnv, table: str) -> str:
    """Where the stream of Bronze ``table`` keeps its checkpoint."""
    return f"{job.paths.table('_control', 'checkpoints')}/bronze_{table}"


def ingest_stream(job: JobEnv, source: str, entity: str) -> None:
    """Ingest everything that has arrived for ``source``.``entity`` since the last run."""
    spark, ctx, run = job.spark, job.ctx, job.recorder
    spec = job.settings.sources[source]
    options = spec.options
    target = BronzeTarget.of(job.paths, source, entity, spec.entities[entity].primary_key)
    columns = files.csv_columns(options, source)
    required = [str(c) for c in options.get("required", [])]
    if options.get("format", "csv") == "json":
        parse = files.parse_json_lines(columns, required)
    else:
        parse = files.parse_csv_lines(columns, required, bool(options.get("header", True)))
    if spec.type == "kafka" and options.get("transport", "kafka") == "kafka":
        topic = str(dict(options.get("topics", {})).get(entity, entity))
        origin = f"kafka://{options.get('bootstrap_servers')}/{topic}"
        lines = kafka.read_lines(spark, topic, options)
    else:  # file drops, or a stream's messages landed as files (local fallback)
        origin = f"{job.paths.landing}/{options.get('folder', entity)}"
        lines = files.read_lines(spark, origin, options)
    outcomes: list[BatchOutcome] = []
    # Redelivered messages are looked for in the last `dedup_window_days` of Bronze only,
    # so the duplicate check costs O(window), not O(history) (partition pruning).
    window_days = int(options.get("dedup_window_days", 7))

    def each_batch(lines: DataFrame, batch_id: int) -> None:
        checked = parse(lines).cache()  # parse each line once for records and rejects
        records, rejects = files.split_checked(checked)
        ingested_at = utc_now()
        since = ingested_at.date() - timedelta(days=window_days)
        try:
            outcomes.append(
                write_batch(
                    spark,
                    target,
                    records=records,
                    position=F.col("_file"),
                    rejects=rejects,
                    run_id=ctx.run_id,
                    batch_id=batch_id,
                    ingested_at=ingested_at,
                    next_watermark=lambda _rows: {"stream_batch": batch_id},
                    previous_watermark=None,
                    existing_filter=f"_ingest_date >= DATE'{since.isoformat()}'",
                    step=run.step,
                    gate=lambda staged: run_gate(job, "bronze", target.table, staged),
                )
            )
        except QualityGateError as exc:
            gate_failures.append(exc)  # Spark wraps it; the job re-raises it as is
            raise
        finally:
            checked.unpersist()

    gate_failures: list[QualityGateError] = []

    def start() -> StreamingQuery:
        return (
            lines.writeStream.foreachBatch(each_batch)
            .option("checkpointLocation", checkpoint_location(job, target.table))
            .trigger(availableNow=True)
            .start()
        )

    with (
        table_lock(job.paths, f"bronze.{target.table}", ctx.run_id),
        run.step("stream"),
        # a failing batch is re-raised below with its own message; Spark would also log
        # it as an ERROR with a py4j traceback several screens long
        jvm_log_level(job.spark, STREAM_EXECUTION_LOGGER, "FATAL"),
    ):
        try:
            run_available_now(start, kafka_source=spec.type == "kafka")
        except StreamingQueryException:
            if gate_failures:
                raise gate_failures[-1] from None
            raise
    rows_read = sum(o.rows_read for o in outcomes)
    rows_rejected = sum(o.rows_rejected for o in outcomes)
    rows_new = sum(o.rows_new for o in outcomes)
    run.input(DatasetStats(target.source_label, origin, rows=rows_read + rows_rejected))
    run.output(
        DatasetStats(
            f"bronze.{target.table}",
            target.location,
            rows=rows_new,
            rows_quarantined=rows_rejected,
            delta_version=outcomes[-1].commit.version if outcomes else None,
            extra={
                "micro_batches": len(outcomes),
                "duplicates_skipped": rows_read - rows_new,
                "schema_added_columns": sorted({c for o in outcomes for c in o.added_columns}),
                "watermark_after": outcomes[-1].watermark if outcomes else None,
                "checkpoint": checkpoint_location(job, target.table),
            },
        )
    )


def run_available_now(start: Callable[[], StreamingQuery], *, kafka_source: bool) -> None:
    """Run an ``availableNow`` query to the end, past SPARK-57438 after a replayed batch."""
    try:
        start().awaitTermination()
    except StreamingQueryException as exc:
        if not (kafka_source and _KAFKA_REPLAY_METRICS_NPE in str(exc)):
            raise
        log.warning(
            "Kafka source failed reporting progress after replaying an uncommitted batch "
            "(SPARK-57438); the batch is committed, restarting the query once"
        )
        start().awaitTermination()
