from __future__ import annotations

import datetime as dt
from datetime import date

from chispa import assert_df_equality
from pyspark.sql import SparkSession

from jobs.common.config import Settings
from jobs.common.delta_io import last_commit, read_table
from jobs.common.paths import LakePaths
from jobs.common.run_context import RunContext
from jobs.runner import execute
from jobs.tools.runtime_check import build_check_frame


def test_runtime_check_rerun_of_a_date_changes_nothing(
    spark: SparkSession, settings: Settings, lake: LakePaths
) -> None:
    first = execute(RunContext("runtime_check", "local", date(2026, 1, 1)), settings, lake, spark)
    execute(RunContext("runtime_check", "local", date(2026, 1, 2)), settings, lake, spark)
    rerun = execute(
        RunContext("runtime_check", "local", date(2026, 1, 1), attempt=2), settings, lake, spark
    )
    location = lake.table("_control", "runtime_check")
    expected = build_check_frame(
        spark, date(2026, 1, 1), {"spark": "4.1.1", "delta": "4.2.0"}, dt.datetime(2026, 1, 1)
    ).unionByName(
        build_check_frame(
            spark, date(2026, 1, 2), {"spark": "4.1.1", "delta": "4.2.0"}, dt.datetime(2026, 1, 2)
        )
    )
    assert_df_equality(
        read_table(spark, location), expected, ignore_row_order=True, ignore_nullable=True
    )
    assert (first.outputs[0].rows, rerun.outputs[0].rows) == (1, 0)
    assert last_commit(spark, location).version == 1  # the rerun made no commit
    assert rerun.status == "SUCCEEDED"
