"""apply_changes killed mid-way, and two apply_changes racing on one target."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from jobs.common import faults
from tests.conftest import PROJECT_ROOT
from tests.jobs.silver.scd2_oracle import Event, history
from tests.jobs.silver.test_scd2 import Row, apply, assert_table

pytestmark = pytest.mark.slow

FIRST: list[Row] = [
    ("a", 1, "U", "Ann", "gold", "x"),
    ("b", 1, "U", "Bob", "gold", "y"),
    ("c", 2, "U", "Cid", "gold", "z"),
]
SECOND: list[Row] = [
    ("a", 5, "U", "Ann", "silver", "x"),
    ("a", 3, "U", "Ann", "bronze", "x"),
    ("b", 4, "D", None, None, None),
    ("d", 2, "U", "Dan", "gold", "w"),
]
THIRD: list[Row] = [("a", 4, "U", "Ann", "plat", "x"), ("c", 6, "U", "Cid", "silver", "z")]


def expected(*batches: list[Row]) -> list[Row]:
    events = [
        Event(r[0], r[1], r[2] == "D", (r[3], r[4], r[5])) for batch in batches for r in batch
    ]
    return sorted(history(events, tracked=[0, 1, 2]), key=repr)


def spawn(target: str, rows: list[Row], tmp: Path, name: str, **env: str) -> subprocess.Popen[str]:
    events = tmp / f"{name}.json"
    events.write_text(json.dumps(rows))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.scd2_apply", target, str(events)],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.extended  # the Silver job killed mid-MERGE (test_build.py) runs in make test
def test_apply_changes_killed_between_its_commits_then_rerun_equals_an_uninterrupted_run(
    spark: SparkSession, tmp_path: Path
) -> None:
    # The event log is committed, the target is not: the rerun must find the logged
    # events' keys although the log reports them as duplicates. (A kill inside the
    # target MERGE is test_build's silver-job test.)
    target = str(tmp_path / "dim")
    apply(spark, target, FIRST)
    killed = spawn(target, SECOND, tmp_path, "second", LAKEHOUSE_FAULT="after_log_commit")
    _, err = killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, err[-2000:]
    assert_table(spark, target, expected(FIRST))  # the target did not move
    apply(spark, target, SECOND)  # the rerun
    assert_table(spark, target, expected(FIRST, SECOND))


@pytest.mark.extended  # 90 s of two racing writers: make test-extended (CI runs it)
def test_two_concurrent_apply_changes_conflict_retry_and_both_land(
    spark: SparkSession,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Two drivers, this test's and a subprocess's, both hold the target's snapshot
    # when they reach the MERGE (a rendezvous): one commits, the other must see the
    # conflict, retry on the new snapshot, and land its batch too.
    target = str(tmp_path / "dim")
    apply(spark, target, FIRST)
    meet = f"{tmp_path / 'rendezvous'}:2"
    racer = spawn(target, SECOND, tmp_path, "second", LAKEHOUSE_RENDEZVOUS=meet)
    monkeypatch.setenv("LAKEHOUSE_RENDEZVOUS", meet)
    monkeypatch.setattr(faults, "_met", set())
    monkeypatch.setattr(logging.getLogger("jobs"), "propagate", True)  # to caplog
    with caplog.at_level(logging.WARNING, logger="jobs.silver.scd2"):
        apply(spark, target, THIRD)
    _, err = racer.communicate(timeout=600)
    assert racer.returncode == 0, err[-3000:]
    assert "concurrent write to" in caplog.text + err  # one lost and retried
    assert_table(spark, target, expected(FIRST, SECOND, THIRD))
