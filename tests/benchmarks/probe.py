"""What the benchmarks count besides seconds."""

from __future__ import annotations

from pyspark.sql import SparkSession


def spark_jobs(spark: SparkSession) -> int:
    """The highest Spark job id so far: the difference over a run counts its Spark jobs."""
    return max(spark.sparkContext.statusTracker().getJobIdsForGroup(None) or [0])
