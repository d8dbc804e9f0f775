from __future__ import annotations

from chispa import assert_df_equality
from pyspark.sql import SparkSession

from jobs.common.delta_io import merge_upsert, read_table, register_table
from jobs.common.paths import LakePaths

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
