"""The jobs that ``lakehouse run <job>`` and ``spark-submit jobs/main.py run <job>`` know."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobs.common.config import Settings
from jobs.common.errors import UnknownJobError
from jobs.common.paths import LakePaths
from jobs.common.run_context import RunContext, RunRecorder
from jobs.tools import runtime_check

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class JobEnv:
    """What a job body receives: the session, resolved settings, paths and its run."""

    spark: SparkSession
    settings: Settings
    paths: LakePaths
    ctx: RunContext
    recorder: RunRecorder


@dataclass(frozen=True)
class JobSpec:
    """A registered job."""

    name: str
    description: str
    body: Callable[[JobEnv], None]
    daily: bool  # part of the daily pipeline (the demo runs it for each day)


JOBS: dict[str, JobSpec] = {
    spec.name: spec
    for spec in [
        JobSpec(
            "runtime_check",
            "Spark + Delta MERGE round trip on the lake storage",
            runtime_check.run,
            daily=True,
        ),
    ]
}


def get_job(name: str) -> JobSpec:
    """The job called ``name``.

    Raises:
        UnknownJobError: naming the job and listing the known ones.

    """
    try:
        return JOBS[name]
    except KeyError:
        raise UnknownJobError(
            f"unknown job '{name}': expected one of {', '.join(sorted(JOBS))}"
        ) from None


def daily_jobs() -> list[JobSpec]:
    """Jobs of the daily pipeline, in run order."""
    return [spec for spec in JOBS.values() if spec.daily]
