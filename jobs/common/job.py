"""The job context: what every job body receives, and the one thing a job stands on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobs.common.config import Settings
from jobs.common.paths import LakePaths
from jobs.common.run_context import RunContext, RunRecorder

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class JobEnv:
    """What a job body receives: the session, resolved settings, paths and its run.

    Everything a run collects (inputs, outputs, steps, gate reports) goes to
    ``recorder``; nothing about a run is kept in module state.
    """

    spark: SparkSession
    settings: Settings
    paths: LakePaths
    ctx: RunContext
    recorder: RunRecorder
