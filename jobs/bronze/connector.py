"""What every connector receives and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from jobs.common.config import EntitySpec, SourceSpec
from jobs.common.paths import LakePaths

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession


@dataclass(frozen=True)
class ReadRequest:
    """One incremental read of one source entity.

    ``since`` is the watermark the last committed batch reached (None on the first run);
    ``window`` is an explicit ``[start, end)`` range for backfills, which then replaces
    the watermark logic and leaves the stored watermark unchanged.
    """

    spark: SparkSession
    source: str
    entity: str
    spec: SourceSpec
    entity_spec: EntitySpec
    since: dict[str, Any] | None
    logical_date: date
    paths: LakePaths
    window: tuple[datetime, datetime] | None = None


@dataclass
class Increment:
    """What a connector read.

    ``frame`` holds well-formed records with their raw source columns; ``rejects`` holds
    input that could not be parsed (``_raw``, ``_reason``, ``_source_position``);
    ``position`` is the ``_source_position`` of each good record; ``cursor`` names the
    column whose maximum becomes the new watermark; ``existing_filter`` (SQL) limits
    the Bronze rows the duplicate check has to scan; ``pushed_query`` records what the
    source was asked, for the run summary.
    """

    frame: DataFrame
    position: Column
    cursor: str | None = None
    rejects: DataFrame | None = None
    existing_filter: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
