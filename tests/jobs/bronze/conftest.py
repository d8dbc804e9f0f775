from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession

from jobs.common.config import Settings, load_settings
from jobs.common.delta_io import read_table
from jobs.common.paths import LakePaths
from jobs.datagen.generator import GeneratorParams
from jobs.datagen.opdb import load_day
from jobs.datagen.writer import write_dataset
from tests.support.postgres import PostgresServer

PARAMS = GeneratorParams(seed=5, scale=0.2, days=4, schema_change_day=3, late_rate=0.05)
PASSWORD_VAR = "LAKEHOUSE_TEST_OPDB_PASSWORD"


@dataclass
class OpdbWorld:
    """Generated sources, a fresh PostgreSQL database and a fresh lake for one test."""

    lake: LakePaths
    settings: Settings
    environ: dict[str, str]
    server: PostgresServer
    database: str
    snapshots: dict[str, list[tuple[object, ...]]]

    def day(self, n: int) -> date:
        return PARAMS.start_date + timedelta(days=n - 1)

    def commit_day(self, n: int) -> None:
        """Apply day n to the database and remember what it then holds."""
        with self.connect() as conn:
            load_day(conn, "postgres", Path(self.lake.sources), self.day(n))
            for table in ("orders", "products"):
                rows = conn.execute(f"SELECT * FROM {table}").fetchall()
                self.snapshots.setdefault(table, []).extend(rows)

    def connect(self):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(
            host=self.server.host,
            port=self.server.port,
            user=self.server.user,
            password=self.server.password,
            dbname=self.database,
        )

    def expected(self, spark: SparkSession, table: str, bronze: DataFrame) -> DataFrame:
        """Every row state the database held after some day: what Bronze must contain."""
        raw = [f for f in bronze.schema.fields if not f.name.startswith("_")]
        from pyspark.sql.types import StructType

        width = len(raw)
        rows = {tuple(r) + (None,) * (width - len(r)) for r in self.snapshots[table]}
        return spark.createDataFrame(sorted(rows, key=str), StructType(raw))

    def bronze(self, spark: SparkSession, table: str) -> DataFrame:
        frame = read_table(spark, self.lake.table("bronze", f"opdb_{table}"))
        return frame


@pytest.fixture
def opdb(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OpdbWorld]:
    database = f"shop_{uuid.uuid4().hex[:10]}"
    with postgres.connect() as admin:
        admin.autocommit = True
        admin.execute(f"CREATE DATABASE {database}")
    lake = LakePaths(str(tmp_path / "home"))
    lake.ensure_local_layout()
    write_dataset(PARAMS, Path(lake.sources))
    environ = {
        "LAKEHOUSE__SOURCES__OPDB__OPTIONS__URL": f"jdbc:postgresql://{postgres.host}:{postgres.port}/{database}",
        "LAKEHOUSE__SOURCES__OPDB__OPTIONS__USER": postgres.user,
        "LAKEHOUSE__SOURCES__OPDB__CREDENTIALS": f"env:{PASSWORD_VAR}",
    }
    monkeypatch.setenv(PASSWORD_VAR, postgres.password)
    settings = load_settings("local", environ=environ)
    yield OpdbWorld(lake, settings, environ, postgres, database, {})
