"""Snapshot change capture at scale: a products table of N rows in PostgreSQL.

The Bronze job in snapshot mode (``jobs/bronze/snapshot.py``) reads the whole table each
run and compares it with the last snapshot. Timed end to end, in one Spark session:
the first run (every row an upsert), a run after 1% of the rows changed and 0.1% were
deleted, and a run with nothing changed. The peer, in the same run: the plain full
extract a data engineer would otherwise schedule (the same JDBC read written as
Parquet), which is the floor of any approach that must see deletions without a change
feed.
"""

from __future__ import annotations

import shutil
import time
import uuid
from datetime import date
from pathlib import Path

from pyspark.sql import SparkSession

from jobs.common.config import Settings, load_settings
from jobs.common.paths import LakePaths
from jobs.common.run_context import RunContext, RunSummary
from jobs.runner import execute
from tests.support.postgres import start_postgres, stop_postgres

JOB = "bronze.opdb_products"
PASSWORD_VAR = "LAKEHOUSE_BENCH_OPDB_PASSWORD"


def _load(conn, rows: int) -> None:  # type: ignore[no-untyped-def]
    conn.execute(
        "CREATE TABLE products (product_id TEXT PRIMARY KEY, name TEXT NOT NULL, "
        "category TEXT NOT NULL, list_price NUMERIC(12,2) NOT NULL, currency TEXT NOT NULL, "
        "updated_at TIMESTAMP NOT NULL)"
    )
    conn.execute(
        "INSERT INTO products SELECT 'P-' || lpad(i::text, 8, '0'), 'product ' || i, "
        "'cat' || (i %% 20), (i %% 997) + 0.99, 'USD', "
        "TIMESTAMP '2026-01-01' + i * INTERVAL '1 ms' FROM generate_series(1, %s) AS i",
        (rows,),
    )
    conn.commit()


def _change(conn, rows: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Change 1% of the rows' price and delete 0.1% (spread over the key range)."""
    updated = conn.execute(
        "UPDATE products SET list_price = list_price + 1, updated_at = TIMESTAMP '2026-01-02' "
        "WHERE substr(product_id, 3)::int % 100 = 7"
    ).rowcount
    deleted = conn.execute(
        "DELETE FROM products WHERE substr(product_id, 3)::int % 1000 = 13"
    ).rowcount
    conn.commit()
    return int(updated), int(deleted)


def _run(
    spark: SparkSession, settings: Settings, lake: LakePaths, day: int, attempt: int = 1
) -> tuple[float, RunSummary]:
    start = time.perf_counter()
    context = RunContext(JOB, "local", date(2026, 1, day), attempt)
    summary = execute(context, settings, lake, spark)
    return time.perf_counter() - start, summary


def bench_snapshot(spark: SparkSession, work: Path, rows: int) -> dict[str, object]:
    """First, 1%-changed and unchanged snapshot runs; the plain full extract beside them."""
    import os

    server = start_postgres()
    try:
        database = f"bench_{uuid.uuid4().hex[:8]}"
        with server.connect() as admin:
            admin.autocommit = True
            admin.execute(f"CREATE DATABASE {database}")
        url = f"jdbc:postgresql://{server.host}:{server.port}/{database}"
        os.environ[PASSWORD_VAR] = server.password
        settings = load_settings(
            "local",
            environ={
                "LAKEHOUSE__SOURCES__OPDB__OPTIONS__URL": url,
                "LAKEHOUSE__SOURCES__OPDB__OPTIONS__USER": server.user,
                "LAKEHOUSE__SOURCES__OPDB__CREDENTIALS": f"env:{PASSWORD_VAR}",
            },
        )
        import psycopg

        def connect():  # type: ignore[no-untyped-def]
            return psycopg.connect(
                host=server.host,
                port=server.port,
                user=server.user,
                password=server.password,
                dbname=database,
            )

        with connect() as conn:
            _load(conn, rows)
        lake = LakePaths(str(work / "home"))
        lake.ensure_local_layout()
        first_s, first = _run(spark, settings, lake, 1)
        with connect() as conn:
            updated, deleted = _change(conn, rows)
        changed_s, changed = _run(spark, settings, lake, 2)
        quiet_s, quiet = _run(spark, settings, lake, 2, attempt=2)
        extract = work / "extract"

        def full_extract() -> None:
            shutil.rmtree(extract, ignore_errors=True)
            (
                spark.read.format("jdbc")
                .option("url", url)
                .option("dbtable", "products")
                .option("user", server.user)
                .option("password", server.password)
                .option("fetchsize", "10000")
                .load()
                .write.parquet(str(extract))
            )

        full_extract()  # warm-up
        peer_s = min(_timed(full_extract) for _ in range(2))
    finally:
        os.environ.pop(PASSWORD_VAR, None)
        stop_postgres(server)
    return {
        "rows": rows,
        "first_run_s": round(first_s, 3),
        "first_rows_written": first.rows_out,
        "changed_rows_updated": updated,
        "changed_rows_deleted": deleted,
        "changed_run_s": round(changed_s, 3),
        "changed_rows_written": changed.rows_out,
        "changed_steps_s": changed.steps,
        "unchanged_run_s": round(quiet_s, 3),
        "unchanged_rows_written": quiet.rows_out,
        "full_extract_to_parquet_s": round(peer_s, 3),
        "changed_over_full_extract": round(changed_s / peer_s, 3),
        "unchanged_over_full_extract": round(quiet_s / peer_s, 3),
    }


def _timed(action) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    action()
    return time.perf_counter() - start
