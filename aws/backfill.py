"""``lakehouse backfill``: the daily jobs over a range of dates, resumable and idempotent.

Dates run in order (Gold is incremental from the previous date); within a date the
jobs run in waves of the dependency graph (``aws.pipeline.daily_plan``), up to
``parallel`` at a time. A (job, date) with a successful run summary is done and is
skipped, so re-running a finished backfill starts nothing and changes no table, and
an interrupted one continues where it stopped (a failed job's next run is its next
attempt). The first failure stops the backfill after its wave: later dates need it.

One writer per table: each job writes one table and runs once per date, dates in
order, so a backfill never writes a table twice at once; against other runs, locally
the jobs' table locks, on EMR a refusal to start while another run of the same job is
live (the daily DAG's, say).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from aws.pipeline import daily_plan, run_summaries
from jobs.common.config import Settings
from jobs.common.errors import ConfigError
from jobs.common.paths import LakePaths
from jobs.console import JobResult, PipelineProgress

RunOne = Callable[[str, dt.date, int], str]  # (job, date, attempt) -> final status


@dataclass
class BackfillResult:
    """What a backfill did."""

    ran: list[str] = field(default_factory=list)  # job@date
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No job failed."""
        return not self.failed


def waves(settings: Settings, jobs: Sequence[str] | None = None) -> list[list[str]]:
    """The daily jobs (or ``jobs``) in dependency waves: each wave after the ones before.

    Raises:
        ConfigError: a name in ``jobs`` is not a daily job.
    """
    plan = daily_plan(settings)
    names = [t.job for t in plan]
    chosen = list(jobs) if jobs else names
    unknown = [j for j in chosen if j not in names]
    if unknown:
        raise ConfigError(
            f"not daily jobs: {', '.join(unknown)}; expected some of {', '.join(names)}"
        )
    upstream = {t.job: [u for u in t.upstream if u in chosen] for t in plan}
    level: dict[str, int] = {}
    for job in names:  # the plan is in dependency order
        if job in chosen:
            level[job] = 1 + max((level[u] for u in upstream[job]), default=-1)
    return [
        [j for j in names if level.get(j) == n] for n in range(max(level.values(), default=-1) + 1)
    ]


def run_backfill(
    settings: Settings,
    paths: LakePaths,
    start: dt.date,
    end: dt.date,
    run_one: RunOne,
    *,
    jobs: Sequence[str] | None = None,
    parallel: int = 1,
    echo: Callable[[str], None] = print,
    before_day: Callable[[dt.date], None] | None = None,
    progress: PipelineProgress | None = None,
) -> BackfillResult:
    """Run ``jobs`` (default: the daily pipeline) for every date in ``start..end``.

    ``before_day`` runs ahead of a date that has jobs left to run (local mode: the
    day happens in the generated sources). With ``progress``, each job shows as it
    starts and ends (rows from its run summary) instead of one ``echo`` line per job.
    """
    if end < start:
        raise ConfigError(f"backfill range is empty: {start} is after {end}")
    if parallel < 1:
        raise ConfigError(f"--parallel must be at least 1, found {parallel}")
    result = BackfillResult()
    planned = waves(settings, jobs)
    day = start
    while day <= end:
        prepared = False
        if progress:
            progress.day(day, sum(len(wave) for wave in planned))
        for wave in planned:
            todo: list[tuple[str, int]] = []
            for job in wave:
                tried = run_summaries(paths, job, day)
                if any(summary.get("status") == "SUCCEEDED" for summary in tried.values()):
                    result.skipped.append(f"{job}@{day}")
                    if progress:
                        progress.finished(JobResult(job, day, "SUCCEEDED", 0.0, note=DONE))
                else:
                    todo.append((job, max(tried, default=0) + 1))
            if todo and before_day and not prepared:
                before_day(day)
                prepared = True
            for job, attempt, status in _run_wave(run_one, day, todo, parallel, paths, progress):
                if not progress:
                    echo(f"  {day} {job} (attempt {attempt}): {status}")
                (result.ran if status in ("SUCCEEDED", "SUCCESS") else result.failed).append(
                    f"{job}@{day}"
                )
            if result.failed:
                return result
        day += dt.timedelta(days=1)
    return result


DONE = "skipped: already succeeded"


def _run_wave(
    run_one: RunOne,
    day: dt.date,
    todo: list[tuple[str, int]],
    parallel: int,
    paths: LakePaths,
    progress: PipelineProgress | None,
) -> Iterator[tuple[str, int, str]]:
    """Run one wave's jobs, ``parallel`` at a time; (job, attempt, status) as each ends."""

    def timed(job: str, attempt: int) -> tuple[str, float]:
        if progress:
            progress.started(job, day)
        begun = time.perf_counter()
        return run_one(job, day, attempt), time.perf_counter() - begun

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        runs = {pool.submit(timed, job, attempt): (job, attempt) for job, attempt in todo}
        for run in as_completed(runs):
            (job, attempt), (status, seconds) = runs[run], run.result()
            if progress:
                summary = run_summaries(paths, job, day).get(attempt)
                progress.finished(
                    JobResult.of_summary(summary, seconds)
                    if summary  # none when the run failed before it started (EMR)
                    else JobResult(job, day, status, seconds)
                )
            yield job, attempt, status
