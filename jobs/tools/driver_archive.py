"""Build the local driver's class-data archive: ``python -m jobs.tools.driver_archive``.

A local driver JVM spends most of its first seconds loading and verifying the classes
of Spark, Scala and Delta from their jars (ADR 0010). A dynamic class-data archive
(JDK CDS) holds them already parsed and verified: every later local driver maps it,
and starts and warms up on about a third less CPU. ``make`` builds it after the jars
(``.jars/driver-classes.jsa``); :func:`jobs.common.spark.spark_conf` uses it for a driver
whose class path is the one it was built for, and only then. EMR runs never see it.

The archive is what a driver started with ``-XX:ArchiveClassesAtExit`` loaded while it
ran a small Delta workload through ``jobs.common.delta_io`` (create, MERGEs, a text
stream whose batches are appended idempotently, a join, a window, a cache, the table
history); the JVM writes
it as it exits, so the workload runs in a child process and the archive is moved into
place once that driver's JVM is gone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jobs.common.config import PROJECT_ROOT, load_settings
from jobs.common.paths import LakePaths
from jobs.common.spark import build_spark_session, driver_archive_location, spark_conf

EXIT_WAIT_SECONDS = 180
QUIET_JVM = "-Xlog:disable -Xlog:all=error:stderr"  # classes it cannot archive: not news
PID_PREFIX = "driver JVM pid "
SCHEMA = "id INT, g INT, v STRING"


def run_workload(home: Path, archive: Path) -> int:
    """Run the workload in a driver that dumps its classes to ``archive`` at exit."""
    from pyspark.sql import DataFrame, Window
    from pyspark.sql import functions as F

    from jobs.common.delta_io import (
        append_batch,
        create_if_absent,
        current_version,
        merge_upsert,
        read_table,
    )

    settings = load_settings("local", environ={})
    paths = LakePaths(str(home))
    options = spark_conf(settings, paths)["spark.driver.extraJavaOptions"]
    spark = build_spark_session(
        settings,
        paths,
        app_name="driver-archive",
        overrides={
            "spark.driver.extraJavaOptions": (
                f"{options} -XX:ArchiveClassesAtExit={archive} {QUIET_JVM}"
            )
        },
    )
    table = str(home / "table")
    rows = spark.createDataFrame([(k, k % 3, f"v{k}") for k in range(20)], SCHEMA)
    create_if_absent(spark, table, rows.schema)
    merge_upsert(spark, rows, table, keys=["id"])
    changes = spark.createDataFrame([(1, 9, "changed"), (99, 0, "new")], SCHEMA)
    merge_upsert(spark, changes, table, keys=["id"])
    current = read_table(spark, table).cache()
    ranked = current.withColumn("rank", F.row_number().over(Window.partitionBy("g").orderBy("id")))
    ranked.join(current.groupBy("g").count(), "g").where("rank = 1").collect()
    current.unpersist()

    # as Bronze reads a file drop: a text stream whose batches are appended idempotently
    drops = home / "drops"
    drops.mkdir()
    (drops / "a.jsonl").write_text("\n".join(json.dumps({"id": k}) for k in range(5)))
    landed = str(home / "landed")

    def each_batch(batch: DataFrame, batch_id: int) -> None:
        parsed = batch.select(F.from_json("value", "id INT").alias("row")).select("row.*")
        append_batch(spark, parsed, landed, app_id="driver-archive", batch_id=batch_id,
                     user_metadata="{}")  # fmt: skip

    stream = spark.readStream.format("text").load(str(drops))
    query = (
        stream.writeStream.foreachBatch(each_batch)
        .option("checkpointLocation", str(home / "checkpoint"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    current_version(spark, landed)
    print(PID_PREFIX + str(spark.sparkContext._jvm.ProcessHandle.current().pid()))  # type: ignore[union-attr]
    spark.stop()
    return 0


def build(archive: Path) -> int:
    """Build ``archive`` (and its class path beside it) in a child driver, atomically."""
    settings = load_settings("local", environ={})
    classpath = spark_conf(settings, LakePaths(tempfile.gettempdir()))[
        "spark.driver.extraClassPath"
    ]
    partial = archive.with_name(f"{archive.name}.{os.getpid()}.partial")
    # the workload's driver must not map the archive it rebuilds
    archive.with_suffix(".classpath").unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="driver-archive-") as home:
        child = subprocess.run(
            [sys.executable, "-m", "jobs.tools.driver_archive", "--workload", home, str(partial)],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            print(child.stderr[-3000:], file=sys.stderr)
            return child.returncode
        pid = int(child.stdout.rsplit(PID_PREFIX, 1)[1].split()[0])
        deadline = time.monotonic() + EXIT_WAIT_SECONDS
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    if not partial.is_file() or Path(f"/proc/{pid}").exists():
        print(
            f"the driver JVM (pid {pid}) wrote no class-data archive at {partial}", file=sys.stderr
        )
        partial.unlink(missing_ok=True)
        return 1
    partial.replace(archive)
    archive.with_suffix(".classpath").write_text(classpath)  # last: the archive is whole
    print(f"{archive}: {archive.stat().st_size // 2**20} MiB")
    return 0


def main(argv: list[str]) -> int:
    """Build the archive (``--workload <home> <archive>``: the child driver's part)."""
    if argv[:1] == ["--workload"]:
        return run_workload(Path(argv[1]), Path(argv[2]))
    return build(driver_archive_location(load_settings("local", environ={})))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
