"""What ``lakehouse demo`` and ``lakehouse backfill`` print while the pipeline runs.

One line per finished job (status, time, rows read / written / quarantined) under a
header per day, each with the run's counter and elapsed time. On a terminal a live line
(rich) shows the job that is running and the overall bar; anywhere else (CI logs, a
pipe) only the finished lines are printed: no redraws, no control characters.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from datetime import date
from types import TracebackType
from typing import Any, TextIO

from jobs.common.run_context import RunSummary
from jobs.status import last_run

STATUS_WORDS = {"SUCCEEDED": "ok", "SUCCESS": "ok", "FAILED": "FAILED"}


@dataclass(frozen=True)
class JobResult:
    """How one job run ended, as the progress shows it."""

    job: str
    day: date
    status: str  # SUCCEEDED, FAILED, or an EMR state
    seconds: float
    rows_in: int | None = None
    rows_out: int | None = None
    rows_quarantined: int | None = None
    note: str = ""  # why it skipped, or the error's first line

    @staticmethod
    def of_run(summary: RunSummary) -> JobResult:
        """From a finished run's summary."""
        return JobResult.of_summary(json.loads(summary.to_json()))

    @staticmethod
    def of_summary(summary: dict[str, Any], seconds: float | None = None) -> JobResult:
        """From a run summary document, read as ``lakehouse status`` reads it.

        ``seconds`` defaults to the run's duration.
        """
        run = last_run(summary)
        return JobResult(
            job=run.job,
            day=date.fromisoformat(run.logical_date),
            status=run.status,
            seconds=run.duration_s if seconds is None else seconds,
            rows_in=run.rows_read,
            rows_out=run.rows_written,
            rows_quarantined=run.rows_quarantined,
            note=run.note,
        )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def _rows(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


class PipelineProgress:
    """Live progress of a run of many jobs over one or more days.

    Use as a context manager; call :meth:`day`, then :meth:`started` and
    :meth:`finished` for each job. ``live`` defaults to whether ``stream`` is a terminal.
    """

    def __init__(
        self,
        days: int,
        total_jobs: int,
        stream: TextIO | None = None,
        live: bool | None = None,
    ) -> None:
        """Count ``total_jobs`` job runs over ``days`` days."""
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.days, self.total = days, total_jobs
        self.done = 0
        self.day_index = 0
        self.started_at = time.perf_counter()
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> PipelineProgress:
        """Start the live line (on a terminal)."""
        self.started_at = time.perf_counter()
        if self.live:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=self.stream, highlight=False),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("starting", total=self.total)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """Stop the live line, leaving the printed lines."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    @property
    def elapsed(self) -> float:
        """Seconds since the progress started."""
        return time.perf_counter() - self.started_at

    def print(self, line: str) -> None:
        """A line above the live one (or plain, off a terminal)."""
        if self._bar is not None:
            self._bar.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, file=self.stream, flush=True)

    def day(self, day: date, jobs: int) -> None:
        """A day begins, with ``jobs`` runs to do."""
        self.day_index += 1
        self.print(
            f"day {self.day_index}/{self.days}  {day}  {jobs} jobs  "
            f"(elapsed {_clock(self.elapsed)})"
        )

    def started(self, job: str, day: date) -> None:
        """``job`` starts: the live line names it."""
        if self._bar is not None:
            self._bar.update(
                self._task, description=f"day {self.day_index}/{self.days} {day}  {job}"
            )

    def finished(self, result: JobResult) -> None:
        """``result``'s line, and one more job done."""
        self.done += 1
        status = STATUS_WORDS.get(result.status, result.status)
        if result.note.startswith("skipped"):
            status = "skipped"
        counter = f"[{self.done}/{self.total} {_clock(self.elapsed)}]"
        if status == "skipped" and result.rows_in is None:  # not run: done before
            reason = result.note.removeprefix("skipped: ")
            self.print(f"  {status:<7} {result.job:<32} {reason:<64}{counter}")
        else:
            rows = (
                f"read {_rows(result.rows_in):>9}  written {_rows(result.rows_out):>9}  "
                f"quarantined {_rows(result.rows_quarantined):>6}"
            )
            first = result.note.partition("\n")[0]
            note = f"  {first}" if first and status != "skipped" else ""
            self.print(
                f"  {status:<7} {result.job:<32} {result.seconds:6.1f}s  {rows}  {counter}{note}"
            )
        if self._bar is not None:
            self._bar.update(self._task, advance=1)
