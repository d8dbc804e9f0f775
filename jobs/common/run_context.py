"""Run identity and the run summary every job writes to ``runs/<run_id>/summary.json``.

The run id is deterministic: ``<job>__<logical date>__a<attempt>``, so a retried
Airflow task (next attempt) gets a new id and a rerun of the same attempt overwrites
its own summary rather than creating a second one.
"""

from __future__ import annotations

import json
import logging
import platform
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from jobs.common.errors import QualityGateError
from jobs.common.logs import log_context
from jobs.common.paths import LakePaths
from jobs.common.storage import list_uris, read_text, write_text

log = logging.getLogger(__name__)
_JOB_NAME = re.compile(r"^[a-z][a-z0-9_.]*$")


def build_run_id(job: str, logical_date: date, attempt: int) -> str:
    """``<job>__<YYYY-MM-DD>__a<attempt>``; the same inputs always give the same id."""
    if not _JOB_NAME.match(job):
        raise ValueError(f"job name '{job}' must match {_JOB_NAME.pattern}")
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, found {attempt}")
    return f"{job}__{logical_date.isoformat()}__a{attempt}"


def utc_now() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)


def project_version() -> str:
    """Installed version of this project."""
    try:
        return version("lakehouse")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class RunContext:
    """Who is running: job, environment, logical date and attempt."""

    job: str
    env: str
    logical_date: date
    attempt: int = 1
    window: tuple[date, date] | None = None  # backfill: [start, end) instead of the watermark

    @property
    def run_id(self) -> str:
        """Deterministic run id."""
        return build_run_id(self.job, self.logical_date, self.attempt)


@dataclass
class DatasetStats:
    """What a run read from or wrote to one dataset."""

    name: str
    location: str
    rows: int | None = None
    rows_quarantined: int = 0
    delta_version: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunSummary:
    """The JSON document written per run."""

    run_id: str
    job: str
    env: str
    logical_date: str
    attempt: int
    status: str = "RUNNING"
    started_at: str = ""
    ended_at: str | None = None
    duration_s: float | None = None
    inputs: list[DatasetStats] = field(default_factory=list)
    outputs: list[DatasetStats] = field(default_factory=list)
    steps: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)  # per gate: status, counts, report
    lineage: dict[str, Any] = field(default_factory=dict)  # run id, transport, emitted, failed
    metrics: dict[str, float] = field(default_factory=dict)  # jobs.common.metrics
    error: dict[str, str] | None = None

    @property
    def rows_in(self) -> int:
        """Rows read, summed over inputs."""
        return sum(i.rows or 0 for i in self.inputs)

    @property
    def rows_out(self) -> int:
        """Rows written, summed over outputs."""
        return sum(o.rows or 0 for o in self.outputs)

    @property
    def rows_quarantined(self) -> int:
        """Rows quarantined, summed over outputs."""
        return sum(o.rows_quarantined for o in self.outputs)

    def to_json(self) -> str:
        """Serialise with the row totals."""
        doc = asdict(self)
        doc["rows"] = {
            "in": self.rows_in,
            "out": self.rows_out,
            "quarantined": self.rows_quarantined,
        }
        return json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n"


class RunRecorder:
    """Collects what a job did; :func:`job_run` writes it out at the end."""

    def __init__(self, ctx: RunContext, paths: LakePaths) -> None:
        """Start a summary for ``ctx``."""
        self.ctx = ctx
        self.paths = paths
        self.summary = RunSummary(
            run_id=ctx.run_id,
            job=ctx.job,
            env=ctx.env,
            logical_date=ctx.logical_date.isoformat(),
            attempt=ctx.attempt,
            started_at=utc_now().isoformat(),
            versions={"project": project_version(), "python": platform.python_version()},
        )
        # the quality gates' reports by table, latest last (jobs.common.quality keeps them
        # here, so a run's reports end with the run, even in a long-lived process)
        self.gate_reports: dict[str, object] = {}

    @property
    def run_dir(self) -> str:
        """This run's folder."""
        return self.paths.run_dir(self.ctx.run_id)

    @property
    def summary_uri(self) -> str:
        """Where the summary JSON goes."""
        return f"{self.run_dir}/summary.json"

    def quality(self, name: str, report_json: str, summary: dict[str, Any], page: str) -> None:
        """Record a quality gate's result: its JSON report and the run's HTML page."""
        folder = f"{self.run_dir}/quality"
        write_text(f"{folder}/{name}.json", report_json)
        write_text(f"{folder}/index.html", page)
        self.summary.quality[name] = {
            **summary,
            "report": f"{folder}/{name}.json",
            "page": f"{folder}/index.html",
        }

    def input(self, stats: DatasetStats) -> None:
        """Record an input dataset."""
        self.summary.inputs.append(stats)

    def output(self, stats: DatasetStats) -> None:
        """Record an output dataset."""
        self.summary.outputs.append(stats)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time a named step (read, transform, gate, write, ...)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.summary.steps[name] = round(time.perf_counter() - start, 3)


def read_run_summaries(paths: LakePaths, prefix: str = "") -> dict[str, dict[str, Any]]:
    """Run summaries whose run id starts with ``prefix``, by the summary's location.

    ``prefix`` ``"<job>__<date>__a"`` gives every attempt of one job and date; the
    default gives every run on record.
    """
    return {
        uri: json.loads(read_text(uri))
        for uri in list_uris(f"{paths.runs}/{prefix}")
        if uri.endswith("/summary.json")
    }


@contextmanager
def job_run(
    ctx: RunContext,
    paths: LakePaths,
    on_end: Callable[[RunRecorder, BaseException | None], None] | None = None,
) -> Iterator[RunRecorder]:
    """Run a job body with logging context and a summary written on every exit path.

    The summary is written with status ``SUCCEEDED`` or ``FAILED`` (with the error's
    type and message); the exception is re-raised so the exit code tells the caller.
    ``on_end`` (the run's lineage) sees the finished recorder and the error, if any,
    before the summary is written; it must not raise.
    """
    recorder = RunRecorder(ctx, paths)
    error: BaseException | None = None
    start = time.perf_counter()
    log_file = Path(recorder.run_dir) / "log.jsonl" if paths.is_local else None
    with log_context(log_file, run_id=ctx.run_id, job=ctx.job, env=ctx.env):
        log.info("run started", extra={"logical_date": ctx.logical_date.isoformat()})
        try:
            yield recorder
        except BaseException as exc:
            error = exc
            recorder.summary.status = "FAILED"
            recorder.summary.error = {"type": type(exc).__name__, "message": str(exc)}
            # a gate's message is complete (its report has the rest): no traceback for it
            quiet = isinstance(exc, (KeyboardInterrupt, QualityGateError))
            log.error("run failed: %s", exc, exc_info=not quiet)
            raise
        else:
            recorder.summary.status = "SUCCEEDED"
            log.info("run succeeded")
        finally:
            recorder.summary.ended_at = utc_now().isoformat()
            recorder.summary.duration_s = round(time.perf_counter() - start, 3)
            if on_end is not None:
                on_end(recorder, error)
            write_text(recorder.summary_uri, recorder.summary.to_json())
