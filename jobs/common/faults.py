"""Crash injection for the kill-and-rerun tests.

``LAKEHOUSE_FAULT=<point>`` SIGKILLs the driver at that point. Unset (always, outside
those tests) it does nothing.

Points: ``after_read``, ``mid_write`` (inside the Bronze write's Spark tasks, so data
files are half written and nothing is committed), ``after_commit`` (Bronze committed,
the run not yet recorded).
"""

from __future__ import annotations

import os
import signal
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
