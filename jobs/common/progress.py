"""Ingestion progress stored *in* the Bronze commit it describes.

Each Bronze append carries ``userMetadata`` with the batch id and the source watermark,
and Delta's idempotent-write pair ``txnAppId``/``txnVersion`` (app id = table, version =
batch id). Data and progress are therefore one atomic commit: there is no moment where
rows are committed and the watermark is not (or the reverse), and a replayed batch id is
skipped by Delta itself.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PROGRESS_KEY = "lakehouse.progress"
HISTORY_SCAN = 100  # commits scanned back for the last progress record (maintenance commits)


@dataclass(frozen=True)
class Progress:
    """The last committed batch of a table and the source position it reached."""

    batch_id: int
    watermark: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""

    def to_metadata(self) -> str:
        """Serialise for a commit's ``userMetadata``."""
        return json.dumps({PROGRESS_KEY: asdict(self)}, sort_keys=True)

    @staticmethod
    def from_metadata(text: str | None) -> Progress | None:
        """Parse ``userMetadata``; None when the commit carries no progress."""
        if not text:
            return None
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            return None
        if not isinstance(doc, dict) or PROGRESS_KEY not in doc:
            return None
        return Progress(**doc[PROGRESS_KEY])


def read_progress(spark: SparkSession, location: str) -> Progress | None:
    """The progress of the latest commit that carries one (None for a new table)."""
    from delta.tables import DeltaTable

    from jobs.common.delta_io import table_exists

    if not table_exists(spark, location):
        return None
    history = DeltaTable.forPath(spark, location).history(HISTORY_SCAN)
    for row in (
        history.select("version", "userMetadata").orderBy("version", ascending=False).collect()
    ):
        progress = Progress.from_metadata(row["userMetadata"])
        if progress is not None:
            return progress
    return None
