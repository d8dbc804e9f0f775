"""Runs one registered job for one logical date: the thin entry-point sequence."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

from jobs.common.config import Settings
from jobs.common.job import JobEnv
from jobs.common.lineage import RunLineage
from jobs.common.metrics import publish_run_metrics
from jobs.common.paths import LakePaths
from jobs.common.quality import gate_reports
from jobs.common.run_context import RunContext, RunRecorder, RunSummary, job_run
from jobs.common.spark import build_spark_session, runtime_versions
from jobs.registry import get_job

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def execute(
    ctx: RunContext,
    settings: Settings,
    paths: LakePaths,
    spark: SparkSession | None = None,
) -> RunSummary:
    """Run job ``ctx.job``; the summary is written whether it succeeds or fails.

    Raises:
        UnknownJobError: no such job (before anything runs).
        Exception: whatever the job raised, after the FAILED summary is written.

    """
    spec = get_job(ctx.job, settings)
    paths.ensure_local_layout()
    lineage = RunLineage(settings, paths, ctx)
    session = spark or build_spark_session(
        settings, paths, app_name=f"lakehouse:{ctx.job}", overrides=lineage.spark_listener_conf()
    )

    def end(recorder: RunRecorder, error: BaseException | None) -> None:
        summary, start = recorder.summary, time.perf_counter()
        lineage.finish(summary, session, error, spec.column_lineage, gate_reports(recorder))
        summary.lineage = asdict(lineage.stats)
        summary.steps["lineage"] = round(time.perf_counter() - start, 3)
        summary.metrics = publish_run_metrics(
            json.loads(summary.to_json()), paths.run_dir(ctx.run_id), settings.monitoring
        )

    with job_run(ctx, paths, on_end=end) as recorder:
        recorder.summary.versions.update(runtime_versions(session))
        lineage.start(recorder.summary.versions)
        spec.body(JobEnv(session, settings, paths, ctx, recorder))
    return recorder.summary
