"""Apply a JSON list of change events to an SCD2 target in a process of its own.

``python -m tests.support.scd2_apply <target> <events.json>``: the reliability tests
kill it (LAKEHOUSE_FAULT) or run two at once (LAKEHOUSE_RENDEZVOUS). A lake in the
environment's configuration (``LAKEHOUSE__STORAGE__*``, an S3 lake) is used as is.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from jobs.common.config import load_settings
from jobs.common.paths import LakePaths, resolve_lake_paths
from jobs.common.spark import build_spark_session
from jobs.silver.scd2 import apply_changes

EVENTS = "id STRING, seq INT, op STRING, name STRING, tier STRING, note STRING"


def main(argv: list[str]) -> int:
    target, events = argv
    settings = load_settings("local")
    paths = (
        resolve_lake_paths(settings)
        if settings.storage.root
        else LakePaths(str(Path(target).parent / "spark_home"))
    )
    spark = build_spark_session(
        settings,
        paths,
        app_name="scd2-apply",
        overrides={"spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false"},
    )
    rows = [tuple(r) for r in json.loads(Path(events).read_text())]
    result = apply_changes(
        spark,
        spark.createDataFrame(rows, EVENTS),
        target,
        keys=["id"],
        sequence_by="seq",
        apply_as_deletes="op = 'D'",
        except_columns=["op"],
    )
    print(json.dumps(dataclasses.asdict(result), default=str))
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
