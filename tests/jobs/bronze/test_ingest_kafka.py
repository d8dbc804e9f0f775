"""The behaviour-event job against a real Kafka broker (one KRaft node, tests/support/kafka.py).

The same lines are also landed as files and ingested over the file transport (whose
parsing is pinned against hand-written expectations in test_ingest_events.py): Bronze
and quarantine must be identical, only the position column differs.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.common.config import Settings, load_settings
from jobs.common.delta_io import read_table
from jobs.common.paths import LakePaths
from jobs.common.run_context import RunContext, RunSummary
from jobs.datagen.generator import GeneratorParams
from jobs.datagen.simulator import drop_file
from jobs.datagen.writer import write_dataset
from jobs.runner import execute
from tests.conftest import PROJECT_ROOT
from tests.support.kafka import KafkaBroker

pytestmark = pytest.mark.integration

JOB = "bronze.events_behaviour"
PARAMS = GeneratorParams(seed=13, scale=0.3, days=3, malformed_rate=0.05, duplicate_rate=0.05)
LAKEHOUSE = str(Path(sys.executable).parent / "lakehouse")
BUSINESS = ["event_id", "customer_id", "session_id", "event_type", "event_ts", "device", "page"]


def kafka_environ(broker: KafkaBroker, topic: str) -> dict[str, str]:
    return {
        "LAKEHOUSE__SOURCES__EVENTS__OPTIONS__TRANSPORT": "kafka",
        "LAKEHOUSE__SOURCES__EVENTS__OPTIONS__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "LAKEHOUSE__SOURCES__EVENTS__OPTIONS__TOPICS__BEHAVIOUR": topic,
    }


def produce(spark: SparkSession, broker: KafkaBroker, topic: str, lines: list[str]) -> None:
    """Publish ``lines`` as messages through Spark's Kafka sink (a real producer)."""
    (
        spark.createDataFrame([(line,) for line in lines], "value STRING")
        .write.format("kafka")
        .option("kafka.bootstrap.servers", broker.bootstrap_servers)
        .option("topic", topic)
        .save()
    )


def day_lines(sources: Path, day: int) -> list[str]:
    files = sorted((sources / "events" / "behaviour").glob("*.jsonl"))
    return [line for line in files[day - 1].read_text().splitlines() if line]


def run(
    spark: SparkSession, settings: Settings, lake: LakePaths, day: int, attempt: int = 1
) -> RunSummary:
    ctx = RunContext(JOB, "local", dt.date(2026, 1, day), attempt)
    return execute(ctx, settings, lake, spark)


def business(spark: SparkSession, lake: LakePaths) -> DataFrame:
    return read_table(spark, lake.table("bronze", "events_behaviour")).select(*BUSINESS)


def quarantine(spark: SparkSession, lake: LakePaths) -> DataFrame:
    return read_table(spark, lake.table("_quarantine", "bronze_events_behaviour")).select(
        "_raw", "_reason"
    )


def file_twin(spark: SparkSession, settings: Settings, root: Path, lines: list[str]) -> LakePaths:
    """The same lines ingested over the file transport, in a lake of their own."""
    twin = LakePaths(str(root))
    twin.ensure_local_layout()
    staging = root / "staging" / "all.jsonl"
    staging.parent.mkdir(parents=True)
    staging.write_text("\n".join(lines) + "\n")
    drop_file(staging, Path(twin.landing) / "events")
    run(spark, settings, twin, 1)
    return twin


def assert_same_as_file_transport(
    spark: SparkSession, settings: Settings, lake: LakePaths, twin: LakePaths
) -> None:
    assert_df_equality(
        business(spark, lake), business(spark, twin), ignore_row_order=True, ignore_nullable=True
    )
    assert_df_equality(
        quarantine(spark, lake),
        quarantine(spark, twin),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_kafka_events_land_exactly_once_with_offsets_as_watermark(
    spark: SparkSession, kafka: KafkaBroker, lake: LakePaths, tmp_path: Path
) -> None:
    topic = f"behaviour-{uuid.uuid4().hex[:8]}"
    settings = load_settings("local", environ=kafka_environ(kafka, topic))
    write_dataset(PARAMS, Path(lake.sources))
    first, second = day_lines(Path(lake.sources), 1), day_lines(Path(lake.sources), 2)

    produce(spark, kafka, topic, first)
    one = run(spark, settings, lake, 1)
    produce(spark, kafka, topic, second)
    two = run(spark, settings, lake, 2)
    again = run(spark, settings, lake, 2, attempt=2)

    twin = file_twin(spark, load_settings("local", environ={}), tmp_path / "twin", first + second)
    assert_same_as_file_transport(spark, settings, lake, twin)
    # every message read exactly once: offsets per partition are 0..n-1, no gaps, no repeats
    positions = (
        read_table(spark, lake.table("bronze", "events_behaviour"))
        .select("_source_position")
        .union(
            read_table(spark, lake.table("_quarantine", "bronze_events_behaviour")).select(
                F.col("_source_position")
            )
        )
        .collect()
    )
    offsets: dict[str, list[int]] = {}
    for (position,) in positions:
        name, partition, offset = position.rsplit("/", 2)
        assert name == topic
        offsets.setdefault(partition, []).append(int(offset))
    assert one.rows_in + two.rows_in == len(first) + len(second)
    duplicates = sum(o.outputs[0].extra["duplicates_skipped"] for o in (one, two))
    assert sum(len(v) for v in offsets.values()) == len(first) + len(second) - duplicates
    assert (again.rows_in, again.rows_out, again.rows_quarantined) == (0, 0, 0)
    assert (
        one.rows_in
        == one.rows_out + one.rows_quarantined + one.outputs[0].extra["duplicates_skipped"]
    )


@pytest.mark.slow
@pytest.mark.extended  # the JDBC, file and Silver kill tests run in make test; CI runs these
@pytest.mark.parametrize("fault", ["mid_write", "after_commit"])
def test_killed_kafka_ingest_rerun_leaves_exact_bronze(
    spark: SparkSession, kafka: KafkaBroker, lake: LakePaths, tmp_path: Path, fault: str
) -> None:
    topic = f"behaviour-{uuid.uuid4().hex[:8]}"
    environ = kafka_environ(kafka, topic)
    write_dataset(PARAMS, Path(lake.sources))
    lines = day_lines(Path(lake.sources), 1) + day_lines(Path(lake.sources), 2)
    produce(spark, kafka, topic, lines)
    killed = subprocess.run(
        [LAKEHOUSE, "run", JOB, "--env", "local", "--date", "2026-01-02"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **environ, "LAKEHOUSE_HOME": lake.root, "LAKEHOUSE_FAULT": fault},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]

    settings = load_settings("local", environ=environ)
    rerun = run(spark, settings, lake, 2, attempt=2)
    twin = file_twin(spark, load_settings("local", environ={}), tmp_path / "twin", lines)
    assert_same_as_file_transport(spark, settings, lake, twin)
    if fault == "after_commit":  # the batch committed before the kill: the rerun adds nothing
        assert rerun.rows_out == 0
