from __future__ import annotations

import datetime as dt
import re
import subprocess

from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql.types import StringType, StructField, StructType, TimestampType

from jobs.common.config import PROJECT_ROOT, load_settings
from jobs.common.paths import LakePaths, resolve_lake_paths
from jobs.common.spark import (
    GLUE_FACTORY,
    LINEAGE_LISTENER,
    driver_archive_location,
    listener_jar_uri,
    planned_for_small_data,
    runtime_versions,
    spark_conf,
)


def test_session_runs_the_pinned_runtime(spark: SparkSession) -> None:
    assert runtime_versions(spark) == {"spark": "4.1.1", "delta": "4.2.0"}


def test_session_is_utc_delta_enabled_with_aqe(spark: SparkSession) -> None:
    conf = spark.conf
    assert conf.get("spark.sql.session.timeZone") == "UTC"
    assert conf.get("spark.sql.extensions") == "io.delta.sql.DeltaSparkSessionExtension"
    assert conf.get("spark.sql.adaptive.enabled") == "true"
    assert spark.sparkContext.getConf().get("spark.ui.enabled") == "false"


def test_a_small_data_block_plans_statically_and_restores_the_session(
    spark: SparkSession,
) -> None:
    conf = spark.conf
    before = conf.get("spark.sql.shuffle.partitions")
    frame = spark.range(100).selectExpr("id % 7 AS k").groupBy("k").count()
    with planned_for_small_data(spark, partitions=3):
        assert conf.get("spark.sql.adaptive.enabled") == "false"
        assert frame.rdd.getNumPartitions() == 3  # planned now: three shuffle partitions
        with planned_for_small_data(spark, partitions=1):  # nested: the inner block wins
            assert conf.get("spark.sql.shuffle.partitions") == "1"
        assert conf.get("spark.sql.shuffle.partitions") == "3"
    assert conf.get("spark.sql.adaptive.enabled") == "true"
    assert conf.get("spark.sql.shuffle.partitions") == before


def test_session_parses_and_renders_timestamps_in_utc(spark: SparkSession) -> None:
    frame = spark.sql(
        "SELECT CAST('2026-01-01T23:30:00Z' AS TIMESTAMP) AS ts, "
        "DATE_FORMAT(CAST('2026-01-01T23:30:00+02:00' AS TIMESTAMP), "
        "'yyyy-MM-dd HH:mm') AS rendered"
    )
    expected = spark.createDataFrame(
        [(dt.datetime(2026, 1, 1, 23, 30), "2026-01-01 21:30")],
        StructType([StructField("ts", TimestampType()), StructField("rendered", StringType())]),
    )
    assert_df_equality(frame, expected, ignore_nullable=True)


def test_delta_round_trip_keeps_rows_and_history(spark: SparkSession, lake: LakePaths) -> None:
    location = lake.table("bronze", "round_trip")
    source = spark.createDataFrame([(1, "a"), (2, "b")], "id INT, value STRING")
    source.write.format("delta").save(location)
    source.where("id = 2").write.format("delta").mode("append").save(location)
    stored = spark.read.format("delta").load(location)
    expected = spark.createDataFrame([(1, "a"), (2, "b"), (2, "b")], "id INT, value STRING")
    assert_df_equality(stored, expected, ignore_row_order=True)
    versions = [r.version for r in spark.sql(f"DESCRIBE HISTORY delta.`{location}`").collect()]
    assert sorted(versions) == [0, 1]


def test_emr_conf_uses_bundled_delta_glue_catalog_and_the_dynamodb_log_store() -> None:
    settings = load_settings("dev", environ={})
    conf = spark_conf(settings, resolve_lake_paths(settings))
    assert "spark.jars" not in conf
    assert "spark.master" not in conf
    assert conf["spark.hadoop.hive.metastore.client.factory.class"] == GLUE_FACTORY
    assert conf["spark.sql.shuffle.partitions"] == "64"
    assert conf["spark.sql.warehouse.dir"] == "s3://lakehouse-dev-artifacts/ops/lake/_warehouse"
    assert conf["spark.extraListeners"] == LINEAGE_LISTENER
    assert {k: v for k, v in conf.items() if "logStore" in k or "DynamoDB" in k} == {
        "spark.delta.logStore.s3.impl": "io.delta.storage.S3DynamoDBLogStore",
        "spark.delta.logStore.s3a.impl": "io.delta.storage.S3DynamoDBLogStore",
        "spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName": "lakehouse-dev-delta-log",
        "spark.io.delta.storage.S3DynamoDBLogStore.ddb.region": "eu-west-1",
    }


def test_emr_tables_live_in_their_layer_buckets_and_quarantine_beside_bronze() -> None:
    paths = resolve_lake_paths(load_settings("prod", environ={}))
    assert [
        paths.landing,
        paths.table("bronze", "opdb_orders"),
        paths.table("_quarantine", "opdb_orders"),
        paths.table("silver", "dim_customer"),
        paths.table("gold", "customer_360"),
        paths.table("_control", "locks"),
        paths.run_dir("gold.customer_360__2026-01-05__a1"),
    ] == [
        "s3://lakehouse-prod-landing",
        "s3://lakehouse-prod-bronze/opdb_orders",
        "s3://lakehouse-prod-bronze/_quarantine/opdb_orders",
        "s3://lakehouse-prod-silver/dim_customer",
        "s3://lakehouse-prod-gold/customer_360",
        "s3://lakehouse-prod-artifacts/ops/lake/_control/locks",
        "s3://lakehouse-prod-artifacts/ops/runs/gold.customer_360__2026-01-05__a1",
    ]


def test_local_runs_keep_everything_under_the_home() -> None:
    settings = load_settings("local", environ={"LAKEHOUSE_HOME": "/tmp/h"})
    paths = resolve_lake_paths(settings, {"LAKEHOUSE_HOME": "/tmp/h"})
    assert (paths.landing, paths.table("bronze", "x")) == ("/tmp/h/landing", "/tmp/h/lake/bronze/x")


def test_emr_reads_the_lineage_listener_jar_from_the_artifacts_bucket() -> None:
    assert listener_jar_uri(load_settings("prod", environ={})) == (
        "s3://lakehouse-prod-artifacts/releases/jars/openlineage-spark_2.13-1.53.0.jar"
    )


def test_local_conf_puts_cached_jars_on_driver_classpath() -> None:
    conf = spark_conf(load_settings("local", environ={}), LakePaths("/tmp/x"))
    assert conf["spark.master"] == "local[2]"
    assert "delta-spark_4.1_2.13-4.2.0.jar" in conf["spark.driver.extraClassPath"]
    assert conf["spark.jars"].count(",") == conf["spark.driver.extraClassPath"].count(":")
    assert "spark.extraListeners" not in conf  # the lineage listener is off locally


def test_a_local_run_can_switch_the_lineage_listener_on() -> None:
    on = {"LAKEHOUSE__LINEAGE__SPARK_LISTENER__ENABLED": "true"}
    conf = spark_conf(load_settings("local", environ=on), LakePaths("/tmp/x"))
    assert conf["spark.extraListeners"] == LINEAGE_LISTENER
    assert "openlineage-spark_2.13-1.53.0.jar" in conf["spark.driver.extraClassPath"]


def test_a_local_driver_maps_the_class_archive_built_for_its_class_path(
    spark: SparkSession,
) -> None:
    archive = driver_archive_location(load_settings("local", environ={}))
    assert archive.is_file(), "make builds it (jobs/tools/driver_archive.py)"
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    info = subprocess.run(
        ["jcmd", str(jvm.ProcessHandle.current().pid()), "VM.info"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    # [base-static_end-top_end): the top (dynamic) archive is mapped after the JDK's own
    mapped = re.search(r"CDS archive\(s\) mapped at: \[(\w+)-(\w+)-(\w+)\)", info)
    assert mapped and int(mapped[3], 16) - int(mapped[2], 16) > 50 * 2**20, info[:2000]


def test_a_driver_on_another_class_path_runs_without_the_archive() -> None:
    on = {"LAKEHOUSE__LINEAGE__SPARK_LISTENER__ENABLED": "true"}  # one more jar
    plain = spark_conf(load_settings("local", environ={}), LakePaths("/tmp/x"))
    other = spark_conf(load_settings("local", environ=on), LakePaths("/tmp/x"))
    assert (
        f"-XX:SharedArchiveFile={PROJECT_ROOT}/.jars/driver-classes.jsa"
        in (plain["spark.driver.extraJavaOptions"])
    )
    assert "SharedArchiveFile" not in other["spark.driver.extraJavaOptions"]
    emr = spark_conf(load_settings("prod", environ={}), LakePaths("s3://b"))
    assert "SharedArchiveFile" not in emr.get("spark.driver.extraJavaOptions", "")
