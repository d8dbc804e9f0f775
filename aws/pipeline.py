"""The daily and weekly pipelines as data, for the DAG files and ``lakehouse backfill``.

:func:`daily_plan` lists one task per daily job (ids = job names, which are also the
OpenLineage job names), each with the jobs it reads from as upstream and the pool of
the one table it writes: a pool of one slot per table means two DAG runs (a scheduled
day and a backfill) never write the same Delta table at once. :func:`retry_args` and
:func:`dag_args` turn the ``orchestration`` config into Airflow arguments.
:func:`check_freshness` is the daily SLA: Gold has a successful run for the date,
finished in time.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from jobs.common.config import Settings
from jobs.common.errors import LakehouseError
from jobs.common.paths import LakePaths
from jobs.common.run_context import read_run_summaries
from jobs.registry import daily_jobs

GOLD_JOB = "gold.customer_360"
_ATTEMPT = re.compile(r"__a(\d+)/summary\.json$")
FRESHNESS_TASK = "freshness_check"
MAINTENANCE_JOB = "maintenance"


class FreshnessError(LakehouseError):
    """Gold is not up to date for the logical date."""


@dataclass(frozen=True)
class TaskSpec:
    """One task of a pipeline."""

    task_id: str
    job: str
    upstream: tuple[str, ...]
    pool: str | None
    timeout_minutes: int


def pool_name(job: str) -> str:
    """The one-slot pool of the table ``job`` writes: ``lakehouse.<layer>.<table>``."""
    return f"lakehouse.{job}"


def daily_plan(settings: Settings) -> list[TaskSpec]:
    """Bronze (parallel) -> Silver -> Gold, in dependency order."""
    timeouts = settings.orchestration
    return [
        TaskSpec(
            task_id=spec.name,
            job=spec.name,
            upstream=spec.depends_on,
            pool=pool_name(spec.name),
            timeout_minutes=timeouts.timeout_for(spec.name),
        )
        for spec in daily_jobs(settings)
    ]


def maintenance_plan(settings: Settings) -> list[TaskSpec]:
    """OPTIMIZE and VACUUM of every table (one job; Delta resolves its commits)."""
    timeout = settings.orchestration.timeout_for(MAINTENANCE_JOB)
    return [TaskSpec(MAINTENANCE_JOB, MAINTENANCE_JOB, (), None, timeout)]


def pools(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every pool the DAGs use, in ``airflow pools import`` form (one slot each)."""
    # include_deferred: an EMR task waits deferred (in the triggerer) while its run
    # writes the table; without it the slot would be free for a second writer meanwhile
    return {
        task.pool: {
            "slots": 1,
            "description": f"one writer for the table {task.job} writes",
            "include_deferred": True,
        }
        for task in daily_plan(settings)
        if task.pool
    }


def retry_args(settings: Settings) -> dict[str, Any]:
    """Retries per environment (``orchestration`` in config) as Airflow task arguments."""
    orchestration = settings.orchestration
    return {
        "retries": orchestration.retries,
        "retry_delay": dt.timedelta(minutes=orchestration.retry_delay_minutes),
        "retry_exponential_backoff": 2.0 if orchestration.retry_exponential_backoff else 0,
        "max_retry_delay": dt.timedelta(minutes=orchestration.max_retry_delay_minutes),
    }


def dag_args(settings: Settings) -> dict[str, Any]:
    """Arguments every lakehouse DAG shares: one active run, no implicit catch-up.

    The schedule is a cron *data interval* (set in the DAG file): the run of logical
    date D covers [D 03:00, D+1 03:00) and starts at its end, so ``{{ ds }}`` is D,
    the day the jobs build (Airflow 3's default cron timetable would make it D+1).
    """
    orchestration = settings.orchestration
    return {
        "start_date": dt.datetime.combine(orchestration.start_date, dt.time(), tzinfo=dt.UTC),
        "catchup": orchestration.catchup,
        "max_active_runs": 1,
        "tags": ["lakehouse", settings.env],
    }


def waiter_attempts(settings: Settings, timeout_minutes: int) -> int:
    """Polls of the EMR waiter that cover ``timeout_minutes`` (not the 25-minute default)."""
    delay = settings.orchestration.waiter_delay_seconds
    return max(1, -(-timeout_minutes * 60 // delay))


def run_summaries(paths: LakePaths, job: str, day: dt.date) -> dict[int, dict[str, Any]]:
    """Every recorded attempt of ``job`` at ``day``: attempt number -> its run summary."""
    found: dict[int, dict[str, Any]] = {}
    for uri, summary in read_run_summaries(paths, f"{job}__{day.isoformat()}__a").items():
        match = _ATTEMPT.search(uri)
        if match:
            found[int(match.group(1))] = summary
    return found


def check_freshness(paths: LakePaths, logical_date: dt.date, *, within_hours: float | None) -> str:
    """Pass when ``gold.customer_360`` has a successful run for ``logical_date``.

    The run must have written (not skipped) and, when ``within_hours`` is given (a
    scheduled run; a backfill has no deadline), finished within that many hours of
    the end of ``logical_date``.

    Returns:
        A one-line description of the run found.

    Raises:
        FreshnessError: no successful run, a skipped one, or one finished too late;
            the message says which and where the summaries are.
    """
    summaries = run_summaries(paths, GOLD_JOB, logical_date)
    succeeded = [s for s in summaries.values() if s.get("status") == "SUCCEEDED"]
    if not succeeded:
        raise FreshnessError(
            f"{GOLD_JOB} is stale: no successful run for {logical_date} ({len(summaries)} "
            f"run(s) under {paths.runs}/{GOLD_JOB}__{logical_date.isoformat()}__a*)"
        )
    latest = max(succeeded, key=lambda s: s.get("ended_at") or "")
    if latest.get("notes", {}).get("skipped"):
        raise FreshnessError(
            f"{GOLD_JOB} is stale: run {latest['run_id']} was skipped: {latest['notes']['skipped']}"
        )
    ended = dt.datetime.fromisoformat(latest["ended_at"])
    if within_hours is not None:
        day_end = dt.datetime.combine(logical_date + dt.timedelta(days=1), dt.time(), dt.UTC)
        deadline = day_end + dt.timedelta(hours=within_hours)
        if ended > deadline:
            raise FreshnessError(
                f"{GOLD_JOB} missed its SLA: run {latest['run_id']} ended {ended.isoformat()}, "
                f"after {deadline.isoformat()} ({within_hours} h after {logical_date} ended)"
            )
    return f"{GOLD_JOB} fresh for {logical_date}: run {latest['run_id']} ended {ended.isoformat()}"
