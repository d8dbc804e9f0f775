"""Kafka topics read by Structured Streaming; the checkpoint's offsets are the watermark.

Each message becomes a line (``value`` as UTF-8 text) whose position is
``topic/partition/offset``; parsing and the Bronze write are those of every streaming
source (:mod:`jobs.bronze.stream_ingest`). Needs ``spark-sql-kafka-0-10`` on the
classpath (``jvm/pom.xml`` locally; ``--packages`` or the EMR release otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.common.errors import ConfigError


def read_lines(spark: SparkSession, topic: str, options: Mapping[str, Any]) -> DataFrame:
    """A stream of ``value`` and ``_file`` (the message position) from ``topic``."""
    servers = options.get("bootstrap_servers")
    if not servers:
        raise ConfigError("a kafka source needs options.bootstrap_servers")
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", str(servers))
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", str(options.get("fail_on_data_loss", True)).lower())
        .option("maxOffsetsPerTrigger", str(options.get("max_offsets_per_batch", 500_000)))
    )
    for key, value in dict(options.get("consumer", {})).items():
        reader = reader.option(f"kafka.{key}", str(value))
    return reader.load().select(
        F.col("value").cast("string").alias("value"),
        F.concat_ws(
            "/", "topic", F.col("partition").cast("string"), F.col("offset").cast("string")
        ).alias("_file"),
    )
