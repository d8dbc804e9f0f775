"""Pure transformations that turn source records into Bronze rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

METADATA_COLUMNS = (
    "_ingested_at",
    "_source",
    "_run_id",
    "_batch_id",
    "_source_position",
    "_record_hash",
    "_ingest_date",
)


def record_hash(columns: list[str]) -> Column:
    """SHA-256 of the record's columns as JSON, in name order.

    NULL fields are left out of the JSON, so a column added later that is NULL does not
    change the hash of a record that existed before it.
    """
    ordered = sorted(c for c in columns if not c.startswith("_"))
    return F.sha2(F.to_json(F.struct(*[F.col(f"`{c}`") for c in ordered])), 256)


def with_bronze_metadata(
    source: str, run_id: str, batch_id: int, ingested_at: datetime, position: Column
) -> Callable[[DataFrame], DataFrame]:
    """Add the Bronze metadata columns; ``position`` says where in the source a row came from."""

    def transform(frame: DataFrame) -> DataFrame:
        raw = [c for c in frame.columns if not c.startswith("_")]
        return frame.select(
            *[F.col(f"`{c}`") for c in raw],
            F.lit(ingested_at).cast("timestamp").alias("_ingested_at"),
            F.lit(source).alias("_source"),
            F.lit(run_id).alias("_run_id"),
            F.lit(batch_id).cast("long").alias("_batch_id"),
            position.cast("string").alias("_source_position"),
            record_hash(raw).alias("_record_hash"),
            F.lit(ingested_at).cast("date").alias("_ingest_date"),
        )

    return transform


def only_new_records(
    existing_hashes: DataFrame, *, broadcast_batch: bool = True
) -> Callable[[DataFrame], DataFrame]:
    """Drop records already in Bronze and repeats inside the batch (by ``_record_hash``).

    With ``broadcast_batch`` (a batch small enough to ship to every executor) the Bronze
    hashes are scanned once against the broadcast batch hashes, with no shuffle of the
    table; only the few hashes found are then joined back.
    """

    def transform(staged: DataFrame) -> DataFrame:
        batch = staged.dropDuplicates(["_record_hash"])
        existing = existing_hashes.select("_record_hash")
        if not broadcast_batch:
            return batch.join(existing, on="_record_hash", how="left_anti")
        seen = existing.join(
            F.broadcast(batch.select("_record_hash")), on="_record_hash", how="left_semi"
        )
        return batch.join(F.broadcast(seen), on="_record_hash", how="left_anti")

    return transform


def as_quarantine(
    source: str, run_id: str, batch_id: int, ingested_at: datetime
) -> Callable[[DataFrame], DataFrame]:
    """Shape rejected input (``_raw``, ``_reason``, ``_source_position``) for quarantine."""

    def transform(rejects: DataFrame) -> DataFrame:
        return rejects.select(
            F.lit(source).alias("_source"),
            F.col("_raw").cast("string").alias("_raw"),
            F.col("_reason").cast("string").alias("_reason"),
            F.col("_source_position").cast("string").alias("_source_position"),
            F.lit(run_id).alias("_run_id"),
            F.lit(batch_id).cast("long").alias("_batch_id"),
            F.lit(ingested_at).cast("timestamp").alias("_ingested_at"),
        )

    return transform
