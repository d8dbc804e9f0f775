"""A driver process committing to one Delta table, for the two-driver tests.

``python -m tests.support.lake_writer <mode> <table> <writer> <rounds> <rows>``, with
the lake's configuration in the environment (``LAKEHOUSE__*``, see s3_lake.py). Each
round waits at a rendezvous with the other driver (``LAKEHOUSE_RENDEZVOUS``), then:

- ``append``: a blind append of ``rows`` rows of its own (ids ``<writer>-<round>-<n>``);
- ``txn``: the Bronze idempotent append: both drivers append the same rows as batch
  ``<round>`` of app id ``bronze.race`` (Delta's ``txnAppId``/``txnVersion``).

Writer ``a`` creates the table first and, when both are done, reads it back. Prints
one JSON line: per round what this driver's write returned (its own commit's version,
``NONE``, or the error's class and first line), and writer a the table's rows.
"""

from __future__ import annotations

import json
import sys

from jobs.common import delta_io, faults
from jobs.common.config import load_settings
from jobs.common.paths import resolve_lake_paths
from jobs.common.spark import build_spark_session

SCHEMA = "id STRING, writer STRING, round INT"


def main(argv: list[str]) -> int:
    mode, table, writer, rounds, rows = argv
    settings = load_settings("local")
    spark = build_spark_session(
        settings,
        resolve_lake_paths(settings),
        app_name=f"lake-writer-{writer}",
        overrides={"spark.sql.shuffle.partitions": "1"},
    )
    if writer == "a":  # one of the two creates the table, then both start
        delta_io.create_if_absent(spark, table, spark.createDataFrame([], SCHEMA).schema)
    faults.rendezvous("start")
    results = []
    for n in range(int(rounds)):
        owner = writer if mode == "append" else "both"
        frame = spark.createDataFrame(
            [(f"{owner}-{n}-{i}", owner, n) for i in range(int(rows))], SCHEMA
        ).coalesce(1)
        faults.rendezvous(f"round-{n}")
        try:
            if mode == "append":
                commit = delta_io.append_batch(
                    spark, frame, table, app_id=f"writer-{writer}", batch_id=n,
                    user_metadata=json.dumps({"writer": writer, "round": n}),
                )  # fmt: skip
            else:
                commit = delta_io.append_batch(
                    spark, frame, table, app_id="bronze.race", batch_id=n,
                    user_metadata=json.dumps({"writer": writer, "round": n}),
                )  # fmt: skip
            results.append(
                {"round": n, "version": commit.version, "operation": commit.operation,
                 "rows": commit.rows_written}
            )  # fmt: skip
        except Exception as exc:  # the test reads what each loser saw
            java = getattr(exc, "java_exception", None)  # a JVM error not mapped to Python
            name = java.getClass().getSimpleName() if java is not None else type(exc).__name__
            text = str(java.getMessage() if java is not None else exc).strip()
            first = text.splitlines()[0] if text else ""
            results.append({"round": n, "error": name, "message": first[:300]})
    faults.rendezvous("end")  # both are done: writer a reads what the table holds
    rows = [list(r) for r in delta_io.read_table(spark, table).collect()] if writer == "a" else None
    print(json.dumps({"writer": writer, "results": results, "table": rows}))
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
