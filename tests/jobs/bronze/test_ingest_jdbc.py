from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from jobs.common.delta_io import last_commit
from jobs.common.errors import ConcurrentRunError
from jobs.common.locks import table_lock
from jobs.common.progress import read_progress
from jobs.common.run_context import RunContext, RunSummary
from jobs.runner import execute
from tests.conftest import PROJECT_ROOT
from tests.jobs.bronze.conftest import PASSWORD_VAR, OpdbWorld

pytestmark = pytest.mark.integration

RAW_ORDER_COLUMNS = [
    "order_id",
    "customer_id",
    "product_id",
    "order_ts",
    "currency",
    "amount",
    "status",
    "channel",
    "updated_at",
]


def ingest(
    spark: SparkSession, world: OpdbWorld, day: int, entity: str = "orders", **ctx: object
) -> RunSummary:
    context = RunContext(f"bronze.opdb_{entity}", "local", world.day(day), **ctx)  # type: ignore[arg-type]
    return execute(context, world.settings, world.lake, spark)


def data_files(world: OpdbWorld, table: str = "opdb_orders") -> set[str]:
    root = Path(world.lake.table("bronze", table))
    return {str(p.relative_to(root)) for p in root.rglob("*.parquet")}


def raw(frame):  # type: ignore[no-untyped-def]
    return frame.select([c for c in frame.columns if not c.startswith("_")])


def test_daily_ingest_holds_every_db_state_exactly_once(
    spark: SparkSession, opdb: OpdbWorld
) -> None:
    summaries = []
    for day in range(1, 5):
        opdb.commit_day(day)
        summaries.append(ingest(spark, opdb, day))
    bronze = opdb.bronze(spark, "orders")
    assert_df_equality(
        raw(bronze),
        opdb.expected(spark, "orders", bronze),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    assert bronze.groupBy("_record_hash").count().where("count > 1").count() == 0
    assert_df_equality(spark.table("bronze.opdb_orders"), bronze, ignore_row_order=True)
    with pytest.raises(Exception, match="DELTA_CANNOT_MODIFY_APPEND_ONLY"):
        spark.sql("DELETE FROM bronze.opdb_orders WHERE order_id = 'O-0000001'")
    outputs = [s.outputs[0] for s in summaries]
    assert [o.extra["schema_added_columns"] for o in outputs] == [[], [], ["discount_amount"], []]
    assert [o.extra["batch_id"] for o in outputs] == [1, 2, 3, 4]
    late_rereads = sum(int(o.extra["duplicates_skipped"]) for o in outputs[1:])
    assert late_rereads > 0  # the lookback re-read rows, and they were not written twice
    progress = read_progress(spark, opdb.lake.table("bronze", "opdb_orders"))
    top = bronze.agg({"updated_at": "max"}).collect()[0][0]
    assert progress is not None and progress.watermark == {"updated_at": top.isoformat()}


def test_late_commit_inside_lookback_is_ingested_once(spark: SparkSession, opdb: OpdbWorld) -> None:
    opdb.commit_day(1)
    ingest(spark, opdb, 1)
    watermark = datetime.fromisoformat(
        read_progress(spark, opdb.lake.table("bronze", "opdb_orders")).watermark["updated_at"]
    )  # type: ignore[union-attr]
    late = watermark - timedelta(hours=3)
    with opdb.connect() as conn:
        conn.execute(
            "INSERT INTO orders VALUES ('O-LATE', 'C-0000001', 'P-0000001', %s, 'USD', 10.50, "
            "'placed', 'web', %s)",
            (late, late),
        )
    first = ingest(spark, opdb, 2)
    second = ingest(spark, opdb, 2, attempt=2)
    late_rows = opdb.bronze(spark, "orders").where("order_id = 'O-LATE'")
    assert late_rows.count() == 1
    assert (first.rows_out, second.rows_out) == (1, 0)


def test_rerun_without_new_data_adds_no_file_and_no_commit(
    spark: SparkSession, opdb: OpdbWorld
) -> None:
    opdb.commit_day(1)
    ingest(spark, opdb, 1)
    location = opdb.lake.table("bronze", "opdb_orders")
    files, version = data_files(opdb), last_commit(spark, location).version
    rerun = ingest(spark, opdb, 1, attempt=2)
    assert (data_files(opdb), last_commit(spark, location).version) == (files, version)
    assert (rerun.rows_in, rerun.rows_out, rerun.outputs[0].extra["operation"]) == (
        len(opdb.snapshots["orders"]),
        0,
        "NONE",
    )


def test_watermark_predicate_reaches_postgres(spark: SparkSession, opdb: OpdbWorld) -> None:
    opdb.commit_day(1)
    ingest(spark, opdb, 1)
    opdb.commit_day(2)
    log_before = opdb.server.log_file.read_text(errors="replace")
    ingest(spark, opdb, 2)
    new_log = opdb.server.log_file.read_text(errors="replace")[len(log_before) :]
    pushed = re.findall(
        r'SELECT .* FROM orders\s+WHERE .*"updated_at" >= \'[0-9-]+ [0-9:.]+\'', new_log
    )
    assert pushed, new_log[-2000:]


def test_backfill_window_reingests_without_duplicates(spark: SparkSession, opdb: OpdbWorld) -> None:
    for day in (1, 2):
        opdb.commit_day(day)
        ingest(spark, opdb, day)
    before = read_progress(spark, opdb.lake.table("bronze", "opdb_orders"))
    backfill = ingest(spark, opdb, 2, attempt=2, window=(opdb.day(1), opdb.day(3)))
    after = read_progress(spark, opdb.lake.table("bronze", "opdb_orders"))
    assert backfill.rows_in > 0 and backfill.rows_out == 0
    assert after is not None and before is not None and after.watermark == before.watermark
    bronze = opdb.bronze(spark, "orders")
    assert_df_equality(
        raw(bronze),
        opdb.expected(spark, "orders", bronze),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_second_writer_fails_cleanly_while_one_holds_the_table(
    spark: SparkSession, opdb: OpdbWorld
) -> None:
    opdb.commit_day(1)
    with (
        table_lock(opdb.lake, "bronze.opdb_orders", "other-run"),
        pytest.raises(
            ConcurrentRunError,
            match=r"bronze\.opdb_orders is being written by another run "
            r"\(other-run pid=\d+\)",
        ),
    ):
        ingest(spark, opdb, 1)
    assert not Path(opdb.lake.table("bronze", "opdb_orders")).exists()


def _cli(
    world: OpdbWorld, day: int, fault: str | None, job: str = "bronze.opdb_orders"
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **world.environ,
        "LAKEHOUSE_HOME": world.lake.root,
        PASSWORD_VAR: world.server.password,
    }
    env.pop("LAKEHOUSE_FAULT", None)
    if fault:
        env["LAKEHOUSE_FAULT"] = fault
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "lakehouse"),
            "run",
            job,
            "--env",
            "local",
            "--date",
            world.day(day).isoformat(),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


# mid_write (data files written, no commit) also covers a kill right after the read
# (nothing written yet); after_commit covers a kill before the progress is recorded.
@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "commits"),
    # both in make test-extended (make test's budget)
    [
        pytest.param("mid_write", False, marks=pytest.mark.extended),
        pytest.param("after_commit", True, marks=pytest.mark.extended),
    ],
)
def test_killed_ingest_rerun_leaves_exact_bronze(
    spark: SparkSession, opdb: OpdbWorld, fault: str, commits: bool
) -> None:
    location = opdb.lake.table("bronze", "opdb_orders")
    opdb.commit_day(1)
    ingest(spark, opdb, 1)
    opdb.commit_day(2)
    before = last_commit(spark, location).version
    killed = _cli(opdb, 2, fault)  # a real process, SIGKILLed at the fault point
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert last_commit(spark, location).version == before + int(commits)
    rerun = ingest(spark, opdb, 2, attempt=2)
    assert rerun.rows_out == (
        0 if commits else rerun.rows_in - int(rerun.outputs[0].extra["duplicates_skipped"])
    )
    bronze = opdb.bronze(spark, "orders")
    assert_df_equality(
        raw(bronze),
        opdb.expected(spark, "orders", bronze),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    progress = read_progress(spark, location)
    assert progress is not None and progress.batch_id == 2


def test_partitioned_read_splits_the_window_into_parallel_range_queries(
    spark: SparkSession, opdb: OpdbWorld
) -> None:
    from jobs.common.config import load_settings

    opdb.settings = load_settings(
        "local", environ={**opdb.environ, "LAKEHOUSE__SOURCES__OPDB__OPTIONS__NUM_PARTITIONS": "4"}
    )
    opdb.commit_day(1)
    log_before = len(opdb.server.log_file.read_text(errors="replace"))
    ingest(spark, opdb, 1)
    new_log = opdb.server.log_file.read_text(errors="replace")[log_before:]
    ranges = re.findall(r'SELECT .* FROM orders\s+WHERE .*"updated_at"', new_log)
    assert len(ranges) == 4, new_log[-3000:]
    bronze = opdb.bronze(spark, "orders")
    assert_df_equality(
        raw(bronze),
        opdb.expected(spark, "orders", bronze),
        ignore_row_order=True,
        ignore_nullable=True,
    )
