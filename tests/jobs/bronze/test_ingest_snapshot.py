from __future__ import annotations

import json
import signal
from datetime import datetime
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from jobs.bronze.snapshot import snapshot_changes, snapshot_state, with_row_hash
from jobs.common.delta_io import last_commit, read_table
from jobs.common.run_context import RunContext, RunSummary
from jobs.runner import execute
from tests.jobs.bronze.conftest import PARAMS, OpdbWorld
from tests.jobs.bronze.test_ingest_jdbc import _cli

PRODUCT = ["product_id", "name", "category", "list_price", "currency", "updated_at"]


def test_snapshot_changes_are_new_and_changed_rows_and_deleted_keys(spark: SparkSession) -> None:
    schema = "id STRING, v STRING, updated_at TIMESTAMP"
    day = datetime(2026, 1, 2)
    before = spark.createDataFrame(
        [("a", "1", datetime(2026, 1, 1)), ("b", "1", datetime(2026, 1, 1)),
         ("c", "1", datetime(2026, 1, 3))],  # c's clock is ahead of the job's
        schema,
    )  # fmt: skip
    now = spark.createDataFrame(
        [("a", "1", datetime(2026, 1, 1)), ("b", "2", datetime(2026, 1, 2)),
         ("d", "1", datetime(2026, 1, 2))],
        schema,
    )  # fmt: skip
    previous = before.transform(with_row_hash("updated_at")).transform(snapshot_state(["id"]))
    changes = now.transform(with_row_hash("updated_at")).transform(
        snapshot_changes(previous, ["id"], "updated_at", day)
    )
    assert_df_equality(
        changes,
        spark.createDataFrame(
            [
                ("b", "2", datetime(2026, 1, 2), "upsert", day),
                ("d", "1", datetime(2026, 1, 2), "upsert", day),
                # dated after the row's last version, never before it
                ("c", None, datetime(2026, 1, 3, 0, 0, 0, 1), "delete", day),
            ],
            f"{schema}, change_op STRING, snapshot_at TIMESTAMP",
        ),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def ingest(spark: SparkSession, world: OpdbWorld, day: int, **ctx: object) -> RunSummary:
    context = RunContext("bronze.opdb_products", "local", world.day(day), **ctx)  # type: ignore[arg-type]
    return execute(context, world.settings, world.lake, spark)


def deleted_on_generation(world: OpdbWorld) -> list[str]:
    path = Path(world.lake.sources) / "opdb" / "products"
    day = world.day(PARAMS.hard_delete_day).isoformat()
    return [json.loads(line)["product_id"] for line in (path / f"{day}.deletes.jsonl").open()]


def upserts_and_deletes(world: OpdbWorld, spark: SparkSession) -> tuple[DataFrame, DataFrame]:
    bronze = read_table(spark, world.lake.table("bronze", "opdb_products"))
    upserts = bronze.where("change_op = 'upsert'").select(*PRODUCT)
    deletes = bronze.where("change_op = 'delete'").select("product_id", "name")
    return upserts, deletes


def expected_upserts(world: OpdbWorld, spark: SparkSession) -> DataFrame:
    """Every row state a daily snapshot saw: each was new or changed when first seen."""
    states = {tuple(r[: len(PRODUCT)]) for r in world.snapshots["products"]}
    return spark.createDataFrame(sorted(states, key=str), read_table(
        spark, world.lake.table("bronze", "opdb_products")).select(*PRODUCT).schema)  # fmt: skip


def expected_deletes(world: OpdbWorld, spark: SparkSession) -> DataFrame:
    """One delete event (the key only) per product the generator deleted."""
    gone = [(p, None) for p in deleted_on_generation(world)]
    return spark.createDataFrame(gone, "product_id STRING, name STRING")


@pytest.mark.integration
def test_snapshot_ingest_turns_a_hard_delete_into_one_delete_event(
    spark: SparkSession, opdb: OpdbWorld
) -> None:
    summaries = []
    for day in range(1, PARAMS.days + 1):
        opdb.commit_day(day)
        summaries.append(ingest(spark, opdb, day))
    gone = deleted_on_generation(opdb)
    assert gone  # the generator deleted products on day 3
    with opdb.connect() as conn:
        assert (
            conn.execute(
                "SELECT count(*) FROM products WHERE product_id = ANY(%s)", (gone,)
            ).fetchone()[0]
            == 0
        )
    upserts, deletes = upserts_and_deletes(opdb, spark)
    assert_df_equality(
        upserts, expected_upserts(opdb, spark), ignore_row_order=True, ignore_nullable=True
    )
    assert_df_equality(
        deletes,
        expected_deletes(opdb, spark),
        ignore_row_order=True,
        ignore_nullable=True,
        ignore_metadata=True,  # JDBC's column metadata
    )
    location = opdb.lake.table("bronze", "opdb_products")
    version = last_commit(spark, location).version
    rerun = ingest(spark, opdb, PARAMS.days, attempt=2)  # nothing changed since
    assert (rerun.rows_out, last_commit(spark, location).version) == (0, version)
    assert [s.outputs[0].extra["batch_id"] for s in summaries] == [1, 2, 3, 4]


# ~140 s of killed and rerun job processes: make test-extended (CI), as the JDBC kill tests
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.extended
@pytest.mark.parametrize("fault", ["after_snapshot_state", "mid_write"])
def test_killed_snapshot_ingest_rerun_emits_every_change_once(
    spark: SparkSession, opdb: OpdbWorld, fault: str
) -> None:
    for day in (1, 2):
        opdb.commit_day(day)
        ingest(spark, opdb, day)
    opdb.commit_day(3)  # the hard deletes
    killed = _cli(opdb, 3, fault, job="bronze.opdb_products")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    ingest(spark, opdb, 3, attempt=2)
    upserts, deletes = upserts_and_deletes(opdb, spark)
    assert_df_equality(
        upserts, expected_upserts(opdb, spark), ignore_row_order=True, ignore_nullable=True
    )
    assert_df_equality(  # one delete event per deleted product, none twice
        deletes,
        expected_deletes(opdb, spark),
        ignore_row_order=True,
        ignore_nullable=True,
        ignore_metadata=True,
    )
