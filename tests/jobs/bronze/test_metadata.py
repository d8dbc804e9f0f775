from __future__ import annotations

import datetime as dt

from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.bronze.metadata import METADATA_COLUMNS, only_new_records, with_bronze_metadata

AT = dt.datetime(2026, 1, 2, 3, 4, 5)


def test_metadata_columns_and_values(spark: SparkSession) -> None:
    source = spark.createDataFrame([("a", 1)], "id STRING, n INT")
    staged = source.transform(with_bronze_metadata("crm.x", "run-1", 7, AT, F.lit("pos-1")))
    assert staged.columns == ["id", "n", *METADATA_COLUMNS]
    row = staged.collect()[0]
    assert (
        row._source,
        row._run_id,
        row._batch_id,
        row._source_position,
        row._ingest_date,
        row._ingested_at,
    ) == ("crm.x", "run-1", 7, "pos-1", dt.date(2026, 1, 2), AT)


def test_record_hash_ignores_column_order_and_null_added_columns(spark: SparkSession) -> None:
    stamp = with_bronze_metadata("s.e", "r", 1, AT, F.lit(""))
    a = spark.createDataFrame([("a", 1)], "id STRING, n INT").transform(stamp)
    b = spark.createDataFrame([(1, "a", None)], "n INT, id STRING, new STRING").transform(stamp)
    c = spark.createDataFrame([("a", 2)], "id STRING, n INT").transform(stamp)
    hashes = [f.select("_record_hash").collect()[0][0] for f in (a, b, c)]
    assert hashes[0] == hashes[1] != hashes[2]


def test_only_new_records_drops_known_and_repeated_hashes(spark: SparkSession) -> None:
    stamp = with_bronze_metadata("s.e", "r", 2, AT, F.lit(""))
    existing = spark.createDataFrame([("a", 1)], "id STRING, n INT").transform(stamp)
    batch = spark.createDataFrame([("a", 1), ("b", 2), ("b", 2), ("c", 3)], "id STRING, n INT")
    new = batch.transform(stamp).transform(only_new_records(existing)).select("id", "n")
    expected = spark.createDataFrame([("b", 2), ("c", 3)], "id STRING, n INT")
    assert_df_equality(new, expected, ignore_row_order=True)
