"""The maintenance job: OPTIMIZE (Z-ORDER) and VACUUM, without breaking Silver's reads."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from chispa import assert_df_equality
from pyspark.sql import SparkSession

from jobs.common.config import Settings
from jobs.common.delta_io import read_table, write_progress
from jobs.common.paths import LakePaths
from jobs.common.run_context import RunContext
from jobs.runner import execute

SCHEMA = "order_id STRING, customer_id STRING, amount INT"


def parquet_files(location: str) -> int:
    return len([p for p in Path(location).glob("*.parquet")])


def test_optimize_compacts_vacuum_removes_and_unread_bronze_is_kept(
    spark: SparkSession, settings: Settings, lake: LakePaths
) -> None:
    silver, bronze = lake.table("silver", "fct_orders"), lake.table("bronze", "opdb_orders")
    for n in range(3):  # three appends: three small files each
        rows = spark.createDataFrame([(f"O{n}", f"C{n}", n)], SCHEMA).coalesce(1)
        rows.write.format("delta").mode("append").save(silver)
        rows.write.format("delta").mode("append").save(bronze)
    before = read_table(spark, silver).collect()
    # silver.fct_orders has read bronze version 0 only: versions 1-2 are still unread
    write_progress(spark, lake.table("_control", "silver_progress"), "silver.fct_orders", 0)
    maintenance = settings.gold.maintenance.model_copy(update={"vacuum_retention_hours": 0})
    quick = settings.model_copy(
        update={"gold": settings.gold.model_copy(update={"maintenance": maintenance})}
    )
    summary = execute(RunContext("maintenance", "local", dt.date(2026, 1, 8)), quick, lake, spark)

    done = summary.notes["maintenance"]
    assert done["silver.fct_orders"] | {"version": 0} == {
        "zorder_by": ["customer_id"], "files_removed": 3, "files_added": 1,
        "vacuum": "retention 0h", "version": 0,
    }  # fmt: skip
    assert parquet_files(silver) == 1  # the three compacted files are gone
    assert_df_equality(
        read_table(spark, silver), spark.createDataFrame(before, SCHEMA), ignore_row_order=True
    )
    assert done["bronze.opdb_orders"]["vacuum"].startswith(
        "skipped: version 1 ("
    ) and done["bronze.opdb_orders"]["vacuum"].endswith(
        "is not read yet by silver.fct_orders; run them first"
    )
    assert parquet_files(bronze) == 4  # three originals kept for Silver, one compacted
    assert spark.conf.get("spark.databricks.delta.retentionDurationCheck.enabled", "true") == "true"
