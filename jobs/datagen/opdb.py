"""Operational database simulator: applies each generated day to a real database.

The generator's ``sources/opdb/<table>/<date>.jsonl`` files are what got committed to
the database that day, ``<date>.deletes.jsonl`` the keys of rows deleted that day (hard
deletes: no flag, no trace). :func:`load_day` upserts the first (never moving a row back
in time) and deletes the second
into SQLite (the local demo's embedded default) or PostgreSQL (tests, and the shape of
an RDS/Redshift source). When a record first carries a new field (the generator's
additive schema change), the column is added with ``ALTER TABLE``.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any, Literal, Protocol

Dialect = Literal["sqlite", "postgres"]

TABLES: dict[str, dict[str, str]] = {
    "orders": {
        "order_id": "TEXT PRIMARY KEY",
        "customer_id": "TEXT NOT NULL",
        "product_id": "TEXT NOT NULL",
        "order_ts": "TIMESTAMP NOT NULL",
        "currency": "TEXT NOT NULL",
        "amount": "NUMERIC(12,2) NOT NULL",
        "status": "TEXT NOT NULL",
        "channel": "TEXT NOT NULL",
        "updated_at": "TIMESTAMP NOT NULL",
    },
    "products": {
        "product_id": "TEXT PRIMARY KEY",
        "name": "TEXT NOT NULL",
        "category": "TEXT NOT NULL",
        "list_price": "NUMERIC(12,2) NOT NULL",
        "currency": "TEXT NOT NULL",
        "updated_at": "TIMESTAMP NOT NULL",
    },
}
ADDED_COLUMNS = {"discount_amount": "NUMERIC(12,2)"}
TIMESTAMP_COLUMNS = {"order_ts", "updated_at"}


class Connection(Protocol):
    """The DB-API 2 subset used here (sqlite3 and psycopg both provide it)."""

    def cursor(self) -> Any: ...  # noqa: D102
    def commit(self) -> None: ...  # noqa: D102


def _placeholder(dialect: Dialect) -> str:
    return "?" if dialect == "sqlite" else "%s"


def create_schema(conn: Connection, dialect: Dialect) -> None:
    """Create the tables if absent."""
    cur = conn.cursor()
    for table, columns in TABLES.items():
        body = ", ".join(f"{name} {kind}" for name, kind in columns.items())
        cur.execute(f"CREATE TABLE IF NOT EXISTS {table} ({body})")
        cur.execute(f"CREATE INDEX IF NOT EXISTS {table}_updated_at ON {table} (updated_at)")
    conn.commit()


def _columns(conn: Connection, dialect: Dialect, table: str) -> list[str]:
    cur = conn.cursor()
    if dialect == "sqlite":
        cur.execute(f"PRAGMA table_info({table})")
        return [row[1] for row in cur.fetchall()]
    cur.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
        "ORDER BY ordinal_position",
        (table,),
    )
    return [row[0] for row in cur.fetchall()]


def _db_value(column: str, value: Any) -> Any:
    if column in TIMESTAMP_COLUMNS and isinstance(value, str):
        return value.replace("T", " ").rstrip("Z")  # UTC, as the DB session stores it
    return value


def load_day(conn: Connection, dialect: Dialect, sources: Path, day: date) -> dict[str, int]:
    """Upsert the rows committed on ``day``; returns rows applied per table."""
    create_schema(conn, dialect)
    applied: dict[str, int] = {}
    ph = _placeholder(dialect)
    for table in TABLES:
        path = sources / "opdb" / table / f"{day.isoformat()}.jsonl"
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        existing = _columns(conn, dialect, table)
        cur = conn.cursor()
        for column, kind in ADDED_COLUMNS.items():
            if column not in existing and any(column in r for r in records):
                cur.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                existing.append(column)
        key = next(iter(TABLES[table]))
        for record in records:
            cols = [c for c in existing if c in record]
            updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c != key)
            cur.execute(
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join([ph] * len(cols))}) "
                f"ON CONFLICT ({key}) DO UPDATE SET {updates} "
                f"WHERE excluded.updated_at >= {table}.updated_at",
                [_db_value(c, record[c]) for c in cols],
            )
        applied[table] = len(records)
        deletes = path.with_name(f"{day.isoformat()}.deletes.jsonl")
        if deletes.exists():
            for line in deletes.read_text(encoding="utf-8").splitlines():
                cur.execute(f"DELETE FROM {table} WHERE {key} = {ph}", [json.loads(line)[key]])
    conn.commit()
    return applied


def connect_sqlite(path: Path) -> Connection:
    """Open (creating) the embedded demo database."""
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    return sqlite3.connect(path)
