"""Quality gate benchmark: the gate's time against the write it guards, at 1M rows.

The staged batch is the benchmark's behaviour events (cached, as the jobs cache a
staged batch). The suite is a typical Silver one: key not NULL and unique (fail), two
quarantine rules, a warn rule, a column-set check and a foreign key to a customer
table. Reported: gate seconds (first call in the process, with GX's context set up,
and the median of warm calls) over the seconds of a Delta append of the same rows.
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from jobs.common.expectations import load_suite
from jobs.common.quality import GateResult, check

SUITE = """
expectations:
  - type: expect_column_values_to_not_be_null
    kwargs: {column: event_id}
    action: fail
    description: every event has an id
  - type: expect_column_values_to_be_unique
    kwargs: {column: event_id}
    action: fail
    description: one row per event
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


def bench_quality(
    spark: SparkSession, frame: DataFrame, work: Path, repeats: int
) -> dict[str, object]:
    """Gate vs write on ``frame`` (cached by the caller)."""
    config = work / "config"
    (config / "expectations" / "silver").mkdir(parents=True, exist_ok=True)
    (config / "expectations" / "silver" / "bench_events.yaml").write_text(SUITE)
    suite = load_suite(config, "silver", "bench_events")
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
    gate_runs, write_runs = [], []
    for n in range(repeats):
        start = time.perf_counter()
        result = gate()
        gate_runs.append(time.perf_counter() - start)
        target = work / f"delta_{n}"
        start = time.perf_counter()
        result.passed.write.format("delta").save(str(target))
        write_runs.append(time.perf_counter() - start)
        shutil.rmtree(target)
    customers.unpersist()
    gate_s, write_s = statistics.median(gate_runs), statistics.median(write_runs)
    return {
        "rows_checked": first.report.rows_checked,
        "rows_quarantined": first.report.rows_quarantined,
        "expectations": len(first.report.outcomes),
        "gate_first_call_s": round(first_s, 3),
        "gate_s": round(gate_s, 3),
        "write_s": round(write_s, 3),
        "gate_over_write": round(gate_s / write_s, 3),
        "outcomes": {o.rule: o.success for o in first.report.outcomes},
        "runs_s": {
            "gate": [round(x, 3) for x in gate_runs],
            "write": [round(x, 3) for x in write_runs],
        },
    }
