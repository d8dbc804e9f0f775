"""``runtime_check``: proves the runtime end to end (Spark, Delta MERGE, storage, catalog).

Run it after a deploy (``lakehouse run runtime_check --env dev --date D``): it MERGEs one
row per logical date into ``_control/runtime_check`` and reads it back. Re-running a date
changes nothing.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from jobs.common.delta_io import merge_upsert, read_table
from jobs.common.errors import JobFailedError
from jobs.common.run_context import DatasetStats
from jobs.common.spark import runtime_versions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from jobs.common.job import JobEnv

TABLE = "runtime_check"


def build_check_frame(
    spark: SparkSession, check_date: date, versions: dict[str, str], checked_at: datetime
) -> DataFrame:
    """One row describing the runtime on ``check_date``."""
    from pyspark.sql.types import DateType, StringType, StructField, StructType, TimestampType

    schema = StructType(
        [
            StructField("check_date", DateType(), False),
            StructField("spark_version", StringType(), False),
            StructField("delta_version", StringType(), False),
            StructField("checked_at", TimestampType(), False),
        ]
    )
    row = (check_date, versions["spark"], versions["delta"], checked_at)
    return spark.createDataFrame([row], schema)


def run(job: JobEnv) -> None:
    """MERGE today's check row and verify it reads back."""
    location = job.paths.table("_control", TABLE)
    versions = runtime_versions(job.spark)
    job.recorder.summary.versions.update(versions)
    checked_at = datetime.combine(job.ctx.logical_date, datetime.min.time())
    frame = build_check_frame(job.spark, job.ctx.logical_date, versions, checked_at)
    with job.recorder.step("merge"):
        commit = merge_upsert(job.spark, frame, location, keys=["check_date"])
    with job.recorder.step("verify"):
        stored = (
            read_table(job.spark, location)
            .where(f"check_date = DATE'{job.ctx.logical_date.isoformat()}'")
            .collect()
        )
    if [r.asDict() for r in stored] != [r.asDict() for r in frame.collect()]:
        raise JobFailedError(
            f"runtime_check: row for {job.ctx.logical_date} at {location} does not read back "
            f"as written: found {[r.asDict() for r in stored]}"
        )
    job.recorder.output(
        DatasetStats(
            name=f"_control.{TABLE}",
            location=location,
            rows=commit.rows_written,
            delta_version=commit.version,
            extra={"operation": commit.operation},
        )
    )
