"""The one Spark session builder, used by jobs, tests, the demo and benchmarks.

Everything that differs between a local run and EMR Serverless is decided here:

==================  ===================================  ================================
setting             local                                emr (emr-spark-8.2.0)
==================  ===================================  ================================
master              ``spark.master`` from config         cluster manager
Delta jars          ``jvm/pom.xml`` cache (``.jars``)    release's bundled Delta
catalog             in-memory, or Derby under the home   AWS Glue Data Catalog
driver memory       from config                          job submission parameters
==================  ===================================  ================================
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.common.config import PROJECT_ROOT, Settings
from jobs.common.jars import required_artifacts, session_jars
from jobs.common.paths import LakePaths

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

GLUE_FACTORY = "com.amazonaws.glue.catalog.metastore.AWSGlueDataCatalogHiveClientFactory"
LINEAGE_LISTENER = "io.openlineage.spark.agent.OpenLineageSparkListener"
# WARNs that fire on every run and call for no action: Delta's change-feed reader sets
# its options twice ("Converting duplicated key"); unpersisting a local checkpoint
# (Delta MERGE's materialised source, Gold's computed rows) says it cannot be recomputed.
QUIET_LOGGERS = (
    "org.apache.spark.sql.util.CaseInsensitiveStringMap",
    "org.apache.spark.rdd.MapPartitionsRDD",
)


DYNAMODB_LOG_STORE = "spark.io.delta.storage.S3DynamoDBLogStore"
# List-valued settings: a value in ``spark.extra_conf`` is appended to the project's own
# (with the setting's separator) instead of replacing it, so an overlay can add jars or
# JVM options without repeating the jar cache and ``-Duser.timezone=UTC``.
APPENDED_SETTINGS = {
    "spark.jars": ",",
    "spark.driver.extraClassPath": ":",
    "spark.executor.extraClassPath": ":",
    "spark.driver.extraJavaOptions": " ",
    "spark.executor.extraJavaOptions": " ",
}


def listener_jar_uri(settings: Settings) -> str:
    """Where an EMR run reads the lineage listener's jar: ``<artifacts_uri>/jars/<file>``.

    The job submission passes it with ``--jars``: the driver must load the listener
    class when its SparkContext starts, before the session's own settings apply.
    """
    (artifact,) = required_artifacts(PROJECT_ROOT / settings.lineage.spark_listener.pom)
    return f"{(settings.storage.artifacts_uri or '').rstrip('/')}/jars/{artifact.file_name}"


# Parallel GC (no concurrent marking threads) and a JIT that compiles only methods run
# 4x as often as its default threshold: -26 % driver CPU on small SCD2 batches.
LOCAL_DRIVER_JVM = "-XX:+UseParallelGC -XX:CompileThresholdScaling=4"
# The class-data archive of a local driver, in the jar cache (jobs/tools/driver_archive,
# built by make): a JVM started on its class path maps Spark's, Scala's and Delta's
# classes instead of loading and verifying them (ADR 0010). JVM warnings (a stale
# archive) go to stderr: a driver's stdout may be what its caller parses.
DRIVER_ARCHIVE = "driver-classes.jsa"
ARCHIVE_OPTIONS = "-XX:SharedArchiveFile={archive} -Xlog:disable -Xlog:all=warning:stderr"


def driver_archive_location(settings: Settings) -> Path:
    """Where the local driver's class-data archive lives: in the jar cache it was built on."""
    return PROJECT_ROOT / settings.jvm.jars_dir / DRIVER_ARCHIVE


def driver_archive(settings: Settings, classpath: str) -> Path | None:
    """The local driver's class-data archive if it was built for ``classpath``."""
    archive = driver_archive_location(settings)
    recorded = archive.with_suffix(".classpath")
    if archive.is_file() and recorded.is_file() and recorded.read_text() == classpath:
        return archive
    return None


def spark_conf(settings: Settings, paths: LakePaths) -> dict[str, str]:
    """The Spark configuration for ``settings`` as plain key/values (pure, testable)."""
    spark = settings.spark
    conf = {
        "spark.app.name": spark.app_name,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.sql.shuffle.partitions": str(spark.shuffle_partitions),
        "spark.ui.enabled": str(spark.ui_enabled).lower(),
        "spark.sql.warehouse.dir": paths.warehouse,
        # Source CHAR/VARCHAR(n) land as STRING: Bronze must not enforce (or break on) a
        # source's declared lengths (sqlite-jdbc even reports TEXT as VARCHAR(0)).
        "spark.sql.legacy.charVarcharAsString": "true",
        # Delta: safe defaults for an append-heavy lake with MERGE-based silver.
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.databricks.delta.merge.repartitionBeforeWrite.enabled": "true",
    }
    if settings.storage.delta_log_table:
        # one committer per table version across drivers on S3 (docs/adr/0003)
        conf.update(
            {
                "spark.delta.logStore.s3.impl": "io.delta.storage.S3DynamoDBLogStore",
                "spark.delta.logStore.s3a.impl": "io.delta.storage.S3DynamoDBLogStore",
                f"{DYNAMODB_LOG_STORE}.ddb.tableName": settings.storage.delta_log_table,
                f"{DYNAMODB_LOG_STORE}.ddb.region": settings.emr.region,
            }
        )
    if settings.lineage.spark_listener_on:
        conf["spark.extraListeners"] = LINEAGE_LISTENER
    if settings.runtime == "local":
        jars = session_jars(settings)
        utc = "-Duser.timezone=UTC"
        conf.update(
            {
                "spark.master": spark.master or "local[2]",
                "spark.driver.memory": spark.driver_memory,
                # spark.jars reaches the executors; extraClassPath puts the jars on the
                # driver's launch classpath, which py4j (DeltaTable) needs.
                "spark.jars": ",".join(str(j) for j in jars),
                "spark.driver.extraClassPath": ":".join(str(j) for j in jars),
                # A local driver is short-lived and its data small: the JIT compiling
                # Spark and G1's concurrent threads took 40-50 % of its CPU (ADR 0010).
                "spark.driver.extraJavaOptions": f"{utc} {LOCAL_DRIVER_JVM}",
                "spark.executor.extraJavaOptions": utc,
                "spark.driver.bindAddress": "127.0.0.1",
                "spark.driver.host": "127.0.0.1",
                "spark.sql.catalogImplementation": "in-memory",
                "spark.ui.showConsoleProgress": "false",
                # Delta's default of 50 partitions for log replay is sized for clusters.
                "spark.databricks.delta.snapshotPartitions": "2",
            }
        )
    if spark.catalog == "hive":
        derby = Path(paths.warehouse) / "metastore_db"
        conf["spark.sql.catalogImplementation"] = "hive"
        conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = (
            f"jdbc:derby:;databaseName={derby};create=true"
        )
    elif spark.catalog == "glue":
        conf["spark.sql.catalogImplementation"] = "hive"
        conf["spark.hadoop.hive.metastore.client.factory.class"] = GLUE_FACTORY
    for key, value in spark.extra_conf.items():
        separator = APPENDED_SETTINGS.get(key)
        conf[key] = f"{conf[key]}{separator}{value}" if separator and conf.get(key) else value
    if settings.runtime == "local":
        archive = driver_archive(settings, conf["spark.driver.extraClassPath"])
        if archive and "SharedArchiveFile" not in conf["spark.driver.extraJavaOptions"]:
            options = ARCHIVE_OPTIONS.format(archive=archive)
            conf["spark.driver.extraJavaOptions"] += f" {options}"
    return conf


def build_spark_session(
    settings: Settings,
    paths: LakePaths,
    *,
    app_name: str | None = None,
    overrides: Mapping[str, str] | None = None,
) -> SparkSession:
    """Create (or return the running) Spark session for ``settings``.

    Args:
        settings: resolved configuration.
        paths: lake locations (the warehouse folder lives under the root).
        app_name: overrides ``spark.app_name`` (job name, for the Spark UI / EMR console).
        overrides: extra Spark settings applied last (tests use them).

    Returns:
        A Delta-enabled session with the UTC session time zone.

    Raises:
        MissingJarError: a local run without the jar cache.

    """
    from pyspark.sql import SparkSession

    if settings.runtime == "local":
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # no network needed locally
    conf = spark_conf(settings, paths)
    if app_name:
        conf["spark.app.name"] = app_name
    conf.update(overrides or {})
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(settings.spark.log_level)
    for logger in QUIET_LOGGERS:
        _set_jvm_log_level(session, logger, "ERROR")
    if "disableCertChecking=true" in conf.get("spark.driver.extraJavaOptions", ""):
        # a local stand-in's self-signed TLS (docs/adr/0003): the SDK v1 client warns of
        # the option it was given at every client it builds (one per Delta table)
        _set_jvm_log_level(session, "com.amazonaws.http.AmazonHttpClient", "ERROR")
    if settings.lineage.spark_listener_on:
        # The listener logs an ERROR for every Spark execution it has no plan for
        # (Delta's internal log and checkpoint jobs): not a fault, and not actionable.
        _set_jvm_log_level(session, "io.openlineage.spark.agent.lifecycle.ContextFactory", "FATAL")
    return session


def runtime_versions(session: SparkSession) -> dict[str, str]:
    """Spark and Delta versions the session actually runs (Delta read from its jar)."""
    jvm = session.sparkContext._jvm
    delta = "unknown"
    if jvm is not None:
        # the context class loader: on EMR Delta comes with --jars, not on the system one
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        package = loader.loadClass("io.delta.tables.DeltaTable").getPackage()
        delta = str(package.getImplementationVersion() or "unknown")
    return {"spark": str(session.version), "delta": delta}


def _set_jvm_log_level(session: SparkSession, logger: str, level: Any) -> Any:
    """Set a JVM (log4j2) logger's level (a name or a JVM Level); return the previous."""
    jvm = session.sparkContext._jvm
    assert jvm is not None
    before = jvm.org.apache.logging.log4j.LogManager.getLogger(logger).getLevel()
    if isinstance(level, str):
        level = jvm.org.apache.logging.log4j.Level.toLevel(level)
    jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(logger, level)
    return before


@contextmanager
def jvm_log_level(session: SparkSession, logger: str, level: str) -> Iterator[None]:
    """Set a JVM (log4j2) logger's level inside the block, then restore it."""
    before = _set_jvm_log_level(session, logger, level)
    try:
        yield
    finally:
        _set_jvm_log_level(session, logger, before)


# Session settings a block may change for its own queries: one block at a time per
# process, so two users in one session cannot restore each other's values wrongly.
_PLAN_LOCK = threading.RLock()
SMALL_DATA_PLAN = "spark.sql.adaptive.enabled", "spark.sql.shuffle.partitions"


@contextmanager
def planned_for_small_data(session: SparkSession, partitions: int) -> Iterator[None]:
    """Plan the block's queries statically, shuffling into ``partitions`` partitions.

    Adaptive execution runs each shuffle stage of a query as a job of its own and
    re-plans between them: right for large or skewed data, but on a change of a few
    thousand rows that bookkeeping is most of the time (an SCD2 change batch of 10k keys:
    56 Spark jobs with it, 27 with its classification and refresh planned statically). For
    blocks whose data size the caller knows to be small; the session's values are
    restored after it.
    """
    with _PLAN_LOCK:
        conf = session.conf
        saved = {key: conf.get(key, None) for key in SMALL_DATA_PLAN}
        conf.set("spark.sql.adaptive.enabled", "false")
        conf.set("spark.sql.shuffle.partitions", str(partitions))
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    conf.unset(key)
                else:
                    conf.set(key, value)


def estimated_bytes(frame: DataFrame) -> int:
    """Spark's estimate of ``frame``'s size in bytes, without running a Spark job.

    Exact for a materialised cache; the files' size for a table scan.
    """
    return int(frame._jdf.queryExecution().optimizedPlan().stats().sizeInBytes())
