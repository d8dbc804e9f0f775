"""The lake on S3 (moto) through S3A and Delta's S3DynamoDBLogStore, as production runs it.

Every driver here is a process of its own, configured only through ``LAKEHOUSE__*``
(tests/support/s3_lake.py): the jobs do not know they run against moto.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from jobs.datagen.generator import GeneratorParams
from jobs.datagen.simulator import drop_file
from jobs.datagen.writer import write_dataset
from tests.jobs.bronze.test_ingest_files import SCHEMA as RETURNS_SCHEMA
from tests.jobs.bronze.test_ingest_files import expected_rows
from tests.jobs.silver.test_scd2 import TABLE as SCD2_TABLE
from tests.jobs.silver.test_scd2_reliability import FIRST, SECOND, THIRD, expected
from tests.support.s3_lake import S3LakeWorld, flat, last_json_line

# Each test starts several Spark drivers (~15 s each on 2 cores): make test-extended.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.extended]

# A commit file's PUT (and the log store's copy onto it) takes a second, as a slow S3
# request can: the window in which two drivers can both believe they own a version.
SLOW_COMMIT = r"/_delta_log/\d{20}\.json$"
SCD2_COLUMNS = ("id", "name", "tier", "note", "valid_from", "valid_to", "is_current")


def _snapshot(world: S3LakeWorld, folder: Path, *locations: str) -> dict[str, str]:
    done = world.run("tests.support.lake_days", "snapshot", str(folder), *locations)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(last_json_line(done.stdout)["tables"])


# The daily pipeline on S3 (two days, every table equal to a twin on local disk) is
# tests/dags/test_dag_on_emr_emulator.py: its second day's FX chain runs on the emulated
# EMR Serverless, so the costly two-day lake serves both proofs.


# -- two drivers, one table -----------------------------------------------------------------


def _race(
    world: S3LakeWorld, tmp_path: Path, mode: str, rounds: int, rows: int, **extra: str
) -> dict[str, Any]:
    """Run writers a and b against one table; their results by writer."""
    table = f"s3://{world.lake.buckets['bronze']}/race"
    meet = {"LAKEHOUSE_RENDEZVOUS": f"{tmp_path / 'rendezvous'}:2", **extra}
    args = ("tests.support.lake_writer", mode, table)
    writers = {name: world.spawn(*args, name, str(rounds), str(rows), extra=meet) for name in "ab"}
    results = {}
    for name, process in writers.items():
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
        results[name] = last_json_line(out)
    return {"table": table, **results}


def commit_problems(world: S3LakeWorld, race: dict[str, Any], expected_rows: int) -> list[str]:
    """What is wrong with a race's outcome: the harness both tests below rely on.

    Commit files must be contiguous from 0; every commit after the table's creation
    made by exactly one write that reported it; the table must hold what they wrote.
    """
    problems = []
    versions = world.commit_files(race["table"])
    if versions != list(range(len(versions))):
        problems.append(f"commit files not contiguous: {versions}")
    claimed = Counter(
        r["version"]
        for name in "ab"
        for r in race[name]["results"]
        if r.get("operation") not in (None, "NONE")
    )
    problems += [f"version {v} reported by {n} writes" for v, n in claimed.items() if n > 1]
    problems += [f"commit {v} reported by no write" for v in versions[1:] if v not in claimed]
    problems += [f"write reported version {v}, absent" for v in claimed if v not in versions]
    held = len(race["a"]["table"])
    if held != expected_rows:
        problems.append(f"the table holds {held} rows, the writes committed {expected_rows}")
    return problems


def _extra_conf(world: S3LakeWorld, **conf: str) -> dict[str, str]:
    merged = {**json.loads(world.environ["LAKEHOUSE__SPARK__EXTRA_CONF"]), **conf}
    return {"LAKEHOUSE__SPARK__EXTRA_CONF": json.dumps(merged)}


@pytest.mark.parametrize("log_store", ["dynamodb", "single-driver"])
def test_two_drivers_blind_appends_land_exactly_once_through_the_dynamodb_log_store(
    spark: SparkSession, s3_lake: S3LakeWorld, tmp_path: Path, log_store: str
) -> None:
    # single-driver: the negative control. Delta's default S3 log store has no mutual
    # exclusion across drivers; the same race must lose commits, and the harness say so.
    s3_lake.aws.set_latency("PUT", SLOW_COMMIT, 1.0)
    extra = {}
    if log_store == "single-driver":
        extra = _extra_conf(
            s3_lake,
            **{
                "spark.delta.logStore.s3.impl": "io.delta.storage.S3SingleDriverLogStore",
                "spark.delta.logStore.s3a.impl": "io.delta.storage.S3SingleDriverLogStore",
            },
        )
    race = _race(s3_lake, tmp_path, "append", rounds=4, rows=10, **extra)
    problems = commit_problems(s3_lake, race, expected_rows=80)
    if log_store == "single-driver":
        print("single-driver log store, the harness found:", *problems, sep="\n  ")
        assert problems, "the harness did not catch the single-driver log store losing commits"
        return
    assert problems == []
    assert all("error" not in r for name in "ab" for r in race[name]["results"])
    expected = spark.createDataFrame(
        [(f"{w}-{n}-{i}", w, n) for w in "ab" for n in range(4) for i in range(10)],
        "id STRING, writer STRING, round INT",
    )
    held = spark.createDataFrame([tuple(r) for r in race["a"]["table"]], expected.schema)
    assert_df_equality(held, expected, ignore_row_order=True)
    entries = [e for e in s3_lake.log_entries() if e["tablePath"] == race["table"]]
    assert sorted(int(e["fileName"][:20]) for e in entries) == list(range(9))
    assert all(e["complete"] == "true" for e in entries)


def test_two_drivers_same_bronze_batch_commit_once_per_round_the_other_conflicts(
    spark: SparkSession, s3_lake: S3LakeWorld, tmp_path: Path
) -> None:
    s3_lake.aws.set_latency("PUT", SLOW_COMMIT, 1.0)
    race = _race(s3_lake, tmp_path, "txn", rounds=3, rows=10)
    assert commit_problems(s3_lake, race, expected_rows=30) == []
    for n in range(3):
        outcomes = [race[name]["results"][n] for name in "ab"]
        committed = [o for o in outcomes if o.get("operation") == "WRITE"]
        assert len(committed) == 1, outcomes
        (other,) = [o for o in outcomes if o is not committed[0]]
        # the loser either saw the winner's commit first (Delta skips the batch) or
        # lost the race at commit time: Delta names the conflict
        assert other.get("operation") == "NONE" or other["error"] == (
            "ConcurrentTransactionException"
        ), other
    expected = spark.createDataFrame(
        [(f"both-{n}-{i}", "both", n) for n in range(3) for i in range(10)],
        "id STRING, writer STRING, round INT",
    )
    held = spark.createDataFrame([tuple(r) for r in race["a"]["table"]], expected.schema)
    assert_df_equality(held, expected, ignore_row_order=True)


@pytest.mark.weight(4)
def test_two_drivers_scd2_merges_on_s3_one_retries_and_both_land(
    spark: SparkSession, s3_lake: S3LakeWorld, tmp_path: Path
) -> None:
    target = f"s3://{s3_lake.lake.buckets['silver']}/dim"
    batches = {}
    for name, rows in (("first", FIRST), ("second", SECOND), ("third", THIRD)):
        batches[name] = tmp_path / f"{name}.json"
        batches[name].write_text(json.dumps(rows))
    setup = s3_lake.run("tests.support.scd2_apply", target, str(batches["first"]))
    assert setup.returncode == 0, setup.stderr[-3000:]
    meet = {"LAKEHOUSE_RENDEZVOUS": f"{tmp_path / 'rendezvous'}:2"}
    racers = [
        s3_lake.spawn("tests.support.scd2_apply", target, str(batches[name]), extra=meet)
        for name in ("second", "third")
    ]
    errors, reported = "", []
    for racer in racers:
        out, err = racer.communicate(timeout=600)
        assert racer.returncode == 0, err[-3000:]
        errors += err
        reported.append(last_json_line(out))
    assert "concurrent write to" in errors  # a loser retried on the winner's snapshot
    # A retried call finds the other's events applied with its own (no second MERGE) or
    # MERGEs again; each that committed names a target commit of its own.
    versions = s3_lake.commit_files(target)
    assert versions == list(range(len(versions)))
    mine = [r["version"] for r in reported if r["committed"]]
    assert mine and len(set(mine)) == len(mine) and set(mine) <= set(versions[2:]), reported
    _snapshot(s3_lake, tmp_path / "snap", target)
    held = spark.read.parquet(str(tmp_path / "snap" / flat(target))).select(*SCD2_COLUMNS)
    assert_df_equality(
        held, spark.createDataFrame(expected(FIRST, SECOND, THIRD), SCD2_TABLE),
        ignore_row_order=True, ignore_nullable=True,
    )  # fmt: skip


def test_two_bronze_jobs_at_once_one_commits_the_other_fails_clearly(
    s3_lake: S3LakeWorld, tmp_path: Path
) -> None:
    # An Airflow retry beside its zombie try: two attempts of one Bronze job commit the
    # same batch at once. One commits; the other fails naming the other run; each
    # summary names its own commit (the newest commit may be the other's).
    params = GeneratorParams(seed=3, scale=0.05, days=1)
    write_dataset(params, s3_lake.sources)
    from jobs.datagen.simulator import land_day

    land_day(s3_lake.sources, s3_lake.paths.landing, params.start_date)
    meet = {"LAKEHOUSE_RENDEZVOUS": f"{tmp_path / 'rendezvous'}:2"}
    job = ("jobs.main", "run", "bronze.opdb_orders", "--env", "local", "--date", "2026-01-01")
    attempts = {n: s3_lake.spawn(*job, "--attempt", str(n), extra=meet) for n in (1, 2)}
    codes = {n: p.wait(timeout=600) for n, p in attempts.items()}
    assert sorted(codes.values()) == [0, 1], {
        n: p.stderr.read()[-2000:] for n, p in attempts.items()
    }
    bucket = s3_lake.lake.buckets["artifacts"]
    summaries = {
        n: json.loads(
            s3_lake.client("s3")
            .get_object(
                Bucket=bucket, Key=f"ops/runs/bronze.opdb_orders__2026-01-01__a{n}/summary.json"
            )["Body"]
            .read()
        )
        for n in (1, 2)
    }
    winner = next(n for n, code in codes.items() if code == 0)
    loser = 3 - winner
    assert summaries[loser]["status"] == "FAILED"
    assert summaries[loser]["error"]["type"] == "ConcurrentRunError"
    assert (
        "another run committed to s3://lakehouse-test-bronze/opdb_orders"
        in (summaries[loser]["error"]["message"])
    )
    version = summaries[winner]["outputs"][0]["delta_version"]
    table = "s3://lakehouse-test-bronze/opdb_orders"
    assert s3_lake.commit_files(table) == [version] == [0]
    commit = (
        s3_lake.client("s3")
        .get_object(
            Bucket=s3_lake.lake.buckets["bronze"], Key=f"opdb_orders/_delta_log/{version:020d}.json"
        )["Body"]
        .read()
    )
    info = next(
        json.loads(line)["commitInfo"] for line in commit.splitlines() if b"commitInfo" in line
    )
    progress = json.loads(info["userMetadata"])["lakehouse.progress"]
    assert progress["run_id"] == f"bronze.opdb_orders__2026-01-01__a{winner}"
    assert summaries[winner]["outputs"][0]["rows"] == int(info["operationMetrics"]["numOutputRows"])


@pytest.mark.parametrize("fault", ["mid_write"])
def test_killed_file_ingest_on_s3_rerun_leaves_exact_bronze(
    spark: SparkSession, s3_lake: S3LakeWorld, tmp_path: Path, fault: str
) -> None:
    params = GeneratorParams(seed=9, scale=3.0, days=6, malformed_rate=0.08, duplicate_rate=0.05)
    write_dataset(params, s3_lake.sources)
    landing = f"{s3_lake.paths.landing}/returns"
    lines: list[str] = []
    for drop in sorted((s3_lake.sources / "returns").glob("*.csv"))[2:5]:
        drop_file(drop, landing)
        lines += drop.read_text().splitlines()
    job = ("jobs.main", "run", "bronze.returns_returns", "--env", "local", "--date", "2026-01-05")
    killed = s3_lake.run(*job, extra={"LAKEHOUSE_FAULT": fault})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    table = s3_lake.paths.table("bronze", "returns_returns")
    assert s3_lake.commit_files(table) == []  # data files half written, nothing committed
    rerun = s3_lake.run(*job, "--attempt", "2")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    _snapshot(s3_lake, tmp_path / "snap", table)
    held = spark.read.parquet(str(tmp_path / "snap" / flat(table)))
    expected_frame = spark.createDataFrame(sorted(expected_rows(lines), key=str), RETURNS_SCHEMA)
    assert_df_equality(
        held.select(*expected_frame.columns), expected_frame,
        ignore_row_order=True, ignore_nullable=True,
    )  # fmt: skip
    assert os.environ.get("LAKEHOUSE_FAULT") is None
