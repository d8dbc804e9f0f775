"""Crash injection for the kill-and-rerun tests.

``LAKEHOUSE_FAULT=<point>`` SIGKILLs the driver at that point. Unset (always, outside
those tests) it does nothing.

Points: ``after_read``, ``mid_write`` (inside the Bronze write's Spark tasks, so data
files are half written and nothing is committed), ``after_commit`` (Bronze committed,
the run not yet recorded), ``after_log_commit`` (SCD2: event log committed, target not).

``LAKEHOUSE_RENDEZVOUS=<dir>:<n>`` makes ``rendezvous(name)`` wait, once per process,
until ``n`` processes have reached it: the concurrency tests use it to make two writers
commit against the same snapshot.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

ENV_VAR = "LAKEHOUSE_FAULT"


def crash_point(name: str) -> None:
    """SIGKILL this process when ``LAKEHOUSE_FAULT`` names ``name``."""
    if os.environ.get(ENV_VAR) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def crash_inside(frame: DataFrame, name: str) -> DataFrame:
    """``frame``, whose tasks SIGKILL the driver (mid-write) when ``name`` is armed."""
    if os.environ.get(ENV_VAR) != name:
        return frame
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType

    driver = os.getpid()

    def passes(_: object) -> bool:
        os.kill(driver, signal.SIGKILL)
        return True

    first = frame.columns[0]
    return frame.where(F.udf(passes, BooleanType())(F.col(f"`{first}`")))


_met: set[str] = set()
RENDEZVOUS_VAR = "LAKEHOUSE_RENDEZVOUS"


# Under a full CI load (other tests' drivers on the same 2 cores) one driver can trail
# its peer at a meeting point by more than two minutes; below the tests' 600 s wait for
# the processes, so a peer that never comes still fails here, by name.
RENDEZVOUS_TIMEOUT = 540.0


def rendezvous(name: str, timeout: float = RENDEZVOUS_TIMEOUT) -> None:
    """Wait (first call per process only) until the armed number of processes got here."""
    armed = os.environ.get(RENDEZVOUS_VAR)
    if not armed or name in _met:
        return
    _met.add(name)
    folder, count = armed.rsplit(":", 1)
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.{os.getpid()}").touch()
    deadline = time.monotonic() + timeout
    while len(list(root.glob(f"{name}.*"))) < int(count):
        if time.monotonic() > deadline:
            raise TimeoutError(f"rendezvous {name}: fewer than {count} processes arrived")
        time.sleep(0.05)
