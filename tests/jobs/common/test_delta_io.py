from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.common.delta_io import (
    TRUNCATED_THROUGH,
    CommitInfo,
    append_batch,
    append_unless_changed,
    current_version,
    insert_new,
    is_write_conflict,
    last_commit,
    merge_actions,
    merge_latest,
    merge_upsert,
    read_table,
    register_table,
    rows_added,
    table_property,
    versioned_user_metadata,
)
from jobs.common.errors import TableChangedError, TableNotFoundError
from jobs.common.paths import LakePaths
from jobs.common.progress import Progress, read_progress

SCHEMA = "id INT, name STRING, score DOUBLE"


def test_merge_upsert_creates_then_updates_and_inserts(
    spark: SparkSession, lake: LakePaths
) -> None:
    location = lake.table("silver", "people")
    first = merge_upsert(
        spark, spark.createDataFrame([(1, "a", 1.0), (2, "b", None)], SCHEMA), location, keys=["id"]
    )
    second = merge_upsert(
        spark,
        spark.createDataFrame([(2, "b", 2.0), (3, "c", 3.0), (1, "a", 1.0)], SCHEMA),
        location,
        keys=["id"],
    )
    expected = spark.createDataFrame([(1, "a", 1.0), (2, "b", 2.0), (3, "c", 3.0)], SCHEMA)
    assert_df_equality(read_table(spark, location), expected, ignore_row_order=True)
    assert (first.version, first.operation, first.rows_written) == (0, "WRITE", 2)
    assert (second.version, second.operation) == (1, "MERGE")
    assert (second.metric("numTargetRowsUpdated"), second.metric("numTargetRowsInserted")) == (1, 1)


def test_merge_upsert_reapplied_changes_nothing(spark: SparkSession, lake: LakePaths) -> None:
    location = lake.table("silver", "people")
    rows = spark.createDataFrame([(1, "a", None), (2, "b", 2.0)], SCHEMA)
    merge_upsert(spark, rows, location, keys=["id"])
    replay = merge_upsert(spark, rows, location, keys=["id"])
    assert (replay.operation, replay.version, replay.rows_written) == ("NONE", 0, 0)
    assert_df_equality(read_table(spark, location), rows, ignore_row_order=True)


def test_register_table_follows_the_table_to_a_new_location(spark: SparkSession, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first, second = str(tmp_path / "a"), str(tmp_path / "b")
    spark.createDataFrame([(1, "a", 1.0)], SCHEMA).write.format("delta").save(first)
    spark.createDataFrame([(2, "b", 2.0)], SCHEMA).write.format("delta").save(second)
    register_table(spark, "testdb", "people", first)
    register_table(spark, "testdb", "people", first)
    assert [r.id for r in spark.table("testdb.people").collect()] == [1]
    register_table(spark, "testdb", "people", second)
    assert [r.id for r in spark.table("testdb.people").collect()] == [2]
    assert read_table(spark, first).count() == 1  # the old table's files are untouched


# -- a writer's own commit, with another driver committing right after it ---------------
# On S3 two drivers commit one table at the same moment (a retry beside a zombie try, a
# backfill beside the daily run). These tests make the other driver's commit land right
# after ours, before the writer looks at the log: what it reports must be its own commit.


def _other_writer_commits_after(
    monkeypatch: pytest.MonkeyPatch, owner: type, method: str, other: Callable[[], None]
) -> None:
    """Patch ``owner.method`` so the first call is followed by ``other`` (one commit)."""
    real = getattr(owner, method)

    def then_other(self: object, *args: object, **kwargs: object) -> object:
        monkeypatch.setattr(owner, method, real)
        result = real(self, *args, **kwargs)
        other()
        return result

    monkeypatch.setattr(owner, method, then_other)


def test_append_batch_reports_its_own_commit_not_a_later_one(
    spark: SparkSession, lake: LakePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyspark.sql import DataFrameWriter

    location = lake.table("bronze", "t")
    spark.createDataFrame([(0, "seed", 0.0)], SCHEMA).write.format("delta").save(location)
    theirs = spark.createDataFrame([(8, "x", 8.0), (9, "y", 9.0)], SCHEMA)
    _other_writer_commits_after(
        monkeypatch,
        DataFrameWriter,
        "save",
        lambda: theirs.write.format("delta").mode("append").save(location),
    )
    commit = append_batch(
        spark,
        spark.createDataFrame([(1, "ours", 1.0)], SCHEMA),
        location,
        app_id="bronze.t",
        batch_id=1,
        user_metadata=Progress(1, {"n": 1}, "run-1").to_metadata(),
    )
    assert (commit.version, commit.operation, commit.rows_written) == (1, "WRITE", 1)
    assert current_version(spark, location) == 2  # theirs landed after ours
    assert read_progress(spark, location) == Progress(1, {"n": 1}, "run-1")


def test_append_batch_replay_reports_no_commit_although_another_writer_committed(
    spark: SparkSession, lake: LakePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyspark.sql import DataFrameWriter

    location = lake.table("bronze", "t")
    rows = spark.createDataFrame([(1, "ours", 1.0)], SCHEMA)
    first = append_batch(spark, rows, location, app_id="bronze.t", batch_id=1, user_metadata="{}")
    _other_writer_commits_after(
        monkeypatch,
        DataFrameWriter,
        "save",
        lambda: rows.write.format("delta").mode("append").save(location),
    )
    replay = append_batch(spark, rows, location, app_id="bronze.t", batch_id=1, user_metadata="{}")
    assert (first.version, first.operation) == (0, "WRITE")
    assert (replay.operation, replay.rows_written) == ("NONE", 0)  # Delta skipped it
    assert current_version(spark, location) == 1


@pytest.mark.parametrize("writer", ["insert_new", "merge_actions", "merge_latest", "merge_upsert"])
def test_merges_report_their_own_commit_not_a_later_one(
    spark: SparkSession, lake: LakePaths, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    from delta.tables import DeltaMergeBuilder

    location = lake.table("silver", "t")
    spark.createDataFrame([(0, "seed", 0.0)], SCHEMA).write.format("delta").save(location)
    theirs = spark.createDataFrame([(8, "x", 8.0), (9, "y", 9.0)], SCHEMA)
    _other_writer_commits_after(
        monkeypatch,
        DeltaMergeBuilder,
        "execute",
        lambda: theirs.write.format("delta").mode("append").save(location),
    )
    ours = spark.createDataFrame([(1, "ours", 1.0)], SCHEMA)
    if writer == "insert_new":
        commit = insert_new(spark, ours, location, match=["id"])
    elif writer == "merge_actions":
        commit = merge_actions(
            spark,
            ours.withColumn("_action", F.lit("insert")),
            location,
            match=["id"],
            columns=["id", "name", "score"],
            user_metadata={"applied": 3},
        )
    elif writer == "merge_latest":
        commit = merge_latest(spark, ours, location, keys=["id"], order_by="score")
    else:
        commit = merge_upsert(spark, ours, location, keys=["id"])
    assert (commit.version, commit.operation) == (1, "MERGE")
    assert commit.metric("numTargetRowsInserted") == 1
    assert current_version(spark, location) == 2


def _next_job_id(spark: SparkSession) -> int:
    return int(spark.sparkContext._jsc.sc().dagScheduler().nextJobId())  # type: ignore[union-attr]


def test_commit_readers_read_the_log_without_a_spark_job(
    spark: SparkSession, lake: LakePaths
) -> None:
    location = lake.table("bronze", "t")
    spark.createDataFrame([(0, "seed", 0.0)], SCHEMA).write.format("delta").save(location)
    merge_actions(
        spark,
        spark.createDataFrame([(1, "a", 1.0)], SCHEMA).withColumn("_action", F.lit("insert")),
        location,
        match=["id"],
        columns=["id", "name", "score"],
        user_metadata={"applied": 7},
    )
    for n in (2, 3):  # another writer's appends after the MERGE that recorded progress
        rows = [(10 * n + i, "x", 0.0) for i in range(n)]
        spark.createDataFrame(rows, SCHEMA).write.format("delta").mode("append").save(location)
    before = _next_job_id(spark)
    found = (
        current_version(spark, location),
        versioned_user_metadata(spark, location, "applied"),
        last_commit(spark, location),
        rows_added(spark, location, 2, 3),
    )
    assert _next_job_id(spark) == before  # the log's files, read on the driver
    version, progress, last, added = found
    assert (version, progress, added) == (3, (3, 7), 5)
    assert (last.version, last.operation, last.metric("numOutputRows")) == (3, "WRITE", 3)


def test_current_version_of_a_location_without_a_table_names_it(
    spark: SparkSession, lake: LakePaths
) -> None:
    location = lake.table("bronze", "never_written")
    with pytest.raises(TableNotFoundError, match=f"no Delta table at {location}"):
        current_version(spark, location)


def test_append_unless_changed_appends_in_one_commit(spark: SparkSession, lake: LakePaths) -> None:
    location = lake.table("silver", "log")
    first = spark.createDataFrame([(1, "a", 1.0)], SCHEMA)
    first.write.format("delta").save(location)
    more = spark.createDataFrame([(2, "b", 2.0), (3, "c", None)], SCHEMA)
    commit = append_unless_changed(spark, more, location, read_version=0)
    assert (commit.version, commit.operation, commit.rows_written) == (1, "WRITE", 2)
    assert_df_equality(read_table(spark, location), first.unionByName(more), ignore_row_order=True)


def test_append_unless_changed_refuses_rows_computed_from_an_older_version(
    spark: SparkSession, lake: LakePaths
) -> None:
    location = lake.table("silver", "log")
    spark.createDataFrame([(1, "a", 1.0)], SCHEMA).write.format("delta").save(location)
    spark.createDataFrame([(2, "b", 2.0)], SCHEMA).write.format("delta").mode("append").save(
        location
    )
    late = spark.createDataFrame([(3, "c", 3.0)], SCHEMA)
    with pytest.raises(
        TableChangedError, match=r"at version 1, the rows were computed from version 0"
    ):
        append_unless_changed(spark, late, location, read_version=0)
    assert is_write_conflict(TableChangedError("x"))
    assert current_version(spark, location) == 1


def test_append_unless_changed_conflicts_with_a_commit_made_while_it_writes(
    spark: SparkSession, lake: LakePaths, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """Another writer commits between the append's start and its commit: a conflict."""
    location = lake.table("silver", "log")
    spark.createDataFrame([(1, "a", 1.0)], SCHEMA).write.format("delta").save(location)
    writing, go_on = tmp_path / "writing", tmp_path / "go_on"

    @F.udf("double")
    def held(score: float) -> float:  # runs in a Python worker while the append writes
        import pathlib
        import time

        pathlib.Path(writing).touch()
        deadline = time.monotonic() + 120
        while not pathlib.Path(go_on).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return score

    rows = spark.createDataFrame([(3, "c", 3.0)], SCHEMA).withColumn("score", held("score"))
    outcome: list[BaseException | CommitInfo] = []

    def append() -> None:
        try:
            outcome.append(append_unless_changed(spark, rows, location, read_version=0))
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=append)
    worker.start()
    deadline = time.monotonic() + 120
    while not writing.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    spark.createDataFrame([(2, "b", 2.0)], SCHEMA).write.format("delta").mode("append").save(
        location
    )
    go_on.touch()
    worker.join(timeout=120)
    assert len(outcome) == 1 and isinstance(outcome[0], Exception), outcome
    assert is_write_conflict(outcome[0]), outcome[0]
    assert "ConcurrentAppendException" in f"{outcome[0]}"
    expected = spark.createDataFrame([(1, "a", 1.0), (2, "b", 2.0)], SCHEMA)
    assert_df_equality(read_table(spark, location), expected, ignore_row_order=True)


def test_merge_latest_truncate_deletes_what_is_not_newer_in_either_arrival_order(
    spark: SparkSession, lake: LakePaths
) -> None:
    schema = "id STRING, seq INT, op STRING, v STRING"
    rows = [("a", 1, "U", "a1"), ("b", 2, "U", "b2"), ("c", 5, "U", "c5")]
    truncate = [(None, 3, "T", None), ("d", 4, "U", "d4"), ("b", 1, "U", "b1")]
    later = [("a", 2, "U", "a2"), ("e", 3, "U", "e3"), ("f", 6, "U", "f6")]
    expected = spark.createDataFrame(
        [("c", 5, "U", "c5"), ("d", 4, "U", "d4"), ("f", 6, "U", "f6")], schema
    )

    def apply(batch: list[tuple[object, ...]], location: str) -> CommitInfo:
        return merge_latest(
            spark,
            spark.createDataFrame(batch, schema),
            location,
            keys=["id"],
            order_by="seq",
            truncate_when=F.col("op") == "T",
        )

    for n, batches in enumerate([[rows, truncate, later], [truncate, later, rows]]):
        location = lake.table("silver", f"latest{n}")
        for batch in batches:
            apply(batch, location)
        assert_df_equality(
            read_table(spark, location), expected, ignore_row_order=True, ignore_nullable=True
        )
        assert table_property(spark, location, TRUNCATED_THROUGH) == "3"
    again = apply(truncate, location)  # the TRUNCATE replayed (a rerun after a crash)
    assert again.metric("numTargetRowsDeleted") == 0
    assert_df_equality(
        read_table(spark, location), expected, ignore_row_order=True, ignore_nullable=True
    )


def test_merge_latest_orders_by_several_columns(spark: SparkSession, lake: LakePaths) -> None:
    schema = "id STRING, day INT, lsn INT, v STRING"
    location = lake.table("silver", "latest")
    for batch in ([("a", 1, 9, "old"), ("b", 1, 1, "b")], [("a", 2, 0, "new"), ("a", 1, 10, "x")]):
        merge_latest(
            spark,
            spark.createDataFrame(batch, schema),
            location,
            keys=["id"],
            order_by=["day", "lsn"],
        )
    merge_latest(
        spark,
        spark.createDataFrame([("b", 1, 0, "older lsn")], schema),
        location,
        keys=["id"],
        order_by=["day", "lsn"],
    )
    assert_df_equality(
        read_table(spark, location),
        spark.createDataFrame([("a", 2, 0, "new"), ("b", 1, 1, "b")], schema),
        ignore_row_order=True,
        ignore_nullable=True,
    )
