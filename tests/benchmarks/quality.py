"""Quality gate benchmark: the gate's time against the write it guards, at 1M rows.

The staged batch is the benchmark's behaviour events (cached, as the jobs cache a
staged batch). The suite is a typical Silver one: key not NULL (fail) and unique (warn:
the events hold redeliveries), two quarantine rules, a warn rule, a column-set check
and a foreign key to a customer table.

Reported: gate seconds (first call in the process, with GX's context set up, and the
median of warm calls) over two writes of the same rows: a plain Delta append, and the
Silver write the gate guards (``insert_new``: the events not yet stored, MERGEd into a
table already holding 1M others). Diagnostics: GX's validation alone, the foreign key
alone.
"""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.common.delta_io import insert_new
from jobs.common.expectations import load_suite
from jobs.common.quality import GateResult, _foreign_key, _validate, check

SUITE = """
expectations:
  - type: expect_column_values_to_not_be_null
    kwargs: {column: event_id}
    action: fail
    description: every event has an id
  - type: expect_column_values_to_be_unique
    kwargs: {column: event_id}
    action: warn
    description: redeliveries (the writer deduplicates them; the check still runs)
  - type: expect_column_values_to_match_regex
    kwargs: {column: event_type, regex: '^[a-z_]+$'}
    action: quarantine
    description: event types are snake_case names
  - type: expect_column_values_to_not_be_null
    kwargs: {column: event_ts}
    action: quarantine
    description: events are placed in time
  - type: expect_column_values_to_be_in_set
    kwargs: {column: device, value_set: [desktop, mobile, tablet]}
    action: warn
    description: known devices
  - type: expect_table_columns_to_match_set
    kwargs:
      column_set: [event_id, customer_id, session_id, event_type, event_ts, device, page]
    action: fail
    description: no unexpected column
foreign_keys:
  - column: customer_id
    references: silver.dim_customer.customer_id
    min_ratio: 0.99
    action: warn
    description: events of known customers
"""


def _median_s(action: Callable[[], object], repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def bench_quality(
    spark: SparkSession, frame: DataFrame, work: Path, repeats: int
) -> dict[str, object]:
    """Gate vs writes of ``frame`` (cached by the caller)."""
    config = work / "config"
    (config / "expectations" / "silver").mkdir(parents=True, exist_ok=True)
    (config / "expectations" / "silver" / "bench_events.yaml").write_text(SUITE)
    suite = load_suite(config, "silver", "bench_events")
    assert suite is not None
    customers = frame.select("customer_id").distinct().cache()
    customers.count()

    def gate() -> GateResult:
        return check(
            suite,
            frame,
            run_id="bench",
            layer="silver",
            table="bench_events",
            mode="strict",
            quarantine_threshold=0.05,
            references={"silver.dim_customer.customer_id": customers},
        )

    start = time.perf_counter()
    first = gate()
    first_s = time.perf_counter() - start
    gate_s = _median_s(gate, repeats)
    gx_s = _median_s(lambda: _validate(suite, frame), repeats)
    fk_s = _median_s(lambda: _foreign_key(suite.foreign_keys[0], frame, customers), repeats)
    customers.unpersist()

    def append() -> None:
        target = work / "append"
        first.passed.write.format("delta").save(str(target))
        shutil.rmtree(target)

    # the write this gate guards in Silver (fct_events, kind `first`): insert the events
    # not yet stored, into a table that already holds 1M other events
    silver = str(work / "silver_fct_events")
    frame.withColumn("event_id", F.concat(F.lit("old-"), "event_id")).write.format("delta").save(
        silver
    )
    start = time.perf_counter()
    insert_new(spark, first.passed, silver, match=["event_id"])
    merge_s = time.perf_counter() - start
    append_s = _median_s(append, repeats)
    return {
        "rows_checked": first.report.rows_checked,
        "rows_quarantined": first.report.rows_quarantined,
        "checks": len(first.report.outcomes),
        "gate_first_call_s": round(first_s, 3),
        "gate_s": round(gate_s, 3),
        "diagnostic_gx_validation_s": round(gx_s, 3),
        "diagnostic_foreign_key_s": round(fk_s, 3),
        "delta_append_s": round(append_s, 3),
        "gate_over_delta_append": round(gate_s / append_s, 3),
        "silver_insert_new_s": round(merge_s, 3),
        "gate_over_silver_write": round(gate_s / merge_s, 3),
        "outcomes": {o.rule: o.success for o in first.report.outcomes},
    }
