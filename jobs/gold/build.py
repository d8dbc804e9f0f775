"""The Gold job: ``gold.customer_360`` as of the run's logical date D, incrementally.

The first run (and any run whose rules changed, or that goes back in time) computes
every customer's metrics from Silver. Later runs recompute only the customers whose
metrics can have changed since the last run (at D') and reuse the stored metrics of
the others:

- customers in any row that Silver's Change Data Feed shows changed since the Silver
  versions the last run read (dim_customer, fct_orders, fct_returns, fct_events,
  fct_support_cases); for ``fx_rates`` changes, customers with orders or returns in
  that currency on or after the changed rate's date;
- when D moved: customers with facts timestamped in (D', D] (orders, returns, cases,
  events, and dim_customer versions starting or ending then), and customers with
  events leaving the 30-day window (D'-29 .. D-30).

The metrics that depend on the whole population or on D (RFM quintiles, churn risk)
are then derived for every customer from the stored and recomputed base metrics (a
projection of one row per customer), the gate runs, and one MERGE applies the rows
that differ (and deletes customers no longer in the population). The Silver versions
read, D and the rules' hash travel in that commit (a commit without data changes when
no row differs). Nothing stored counts days from D: readers get ``as_of_date`` and
``days_since_last_order`` from :func:`read_customer_360` or the view
``gold.customer_360_as_of``, so a day passing rewrites only the rows whose values moved.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.common import delta_io
from jobs.common.errors import QualityGateError, ReconciliationError
from jobs.common.locks import table_lock
from jobs.common.quality import GateResult, failure_reason, run_gate
from jobs.common.run_context import DatasetStats
from jobs.common.spark import jvm_log_level
from jobs.common.tables import quarantine_table_name
from jobs.gold.contract import INPUTS, TABLE
from jobs.gold.customer_360 import (
    BASE_COLUMNS,
    STORED_COLUMNS,
    ChurnRules,
    Customer360Rules,
    SegmentRule,
    Silver,
    base_metrics,
    customer_360,
    day_counts,
    with_day_counts,
)

if TYPE_CHECKING:
    from jobs.common.config import Customer360Settings
    from jobs.common.job import JobEnv

STATE_KEY = "gold_customer_360"
# columns that decide whether a stored row changed (not the run's bookkeeping)
ROW_HASH = "_row_hash"
IGNORED = {"_run_id", "_updated_at", ROW_HASH}
GOLD_PROPERTIES = {"delta.enableChangeDataFeed": "true", "delta.enableDeletionVectors": "true"}
# the columns the job stores: the metrics but the day counts, bookkeeping, the row hash
STORED_LAYOUT = {*STORED_COLUMNS, ROW_HASH}
# the stored rows with their day counts, pinned to the version built for its D
VIEW = f"{TABLE}_as_of"


def rules_from(settings: Customer360Settings) -> Customer360Rules:
    """The metric rules as plain values (transformations never see the config)."""
    return Customer360Rules(
        rfm_segments=tuple(
            SegmentRule(s.name, tuple(s.r), tuple(s.f), tuple(s.m))  # type: ignore[arg-type]
            for s in settings.rfm_segments
        ),
        rfm_default=settings.rfm_default,
        churn=ChurnRules(**settings.churn_risk.model_dump()),
    )


def _rules_hash(rules: Customer360Rules) -> str:
    return hashlib.sha256(json.dumps(asdict(rules), sort_keys=True).encode()).hexdigest()[:16]


def build_customer_360(job: JobEnv) -> None:
    """Bring ``gold.customer_360`` to the run's logical date."""
    spark, paths, run = job.spark, job.paths, job.recorder
    as_of = job.ctx.logical_date
    rules = rules_from(job.settings.gold.customer_360)
    locations = {name: paths.table("silver", table) for name, table in INPUTS.items()}
    missing = [INPUTS[n] for n, loc in locations.items() if not delta_io.table_exists(spark, loc)]
    if missing:
        run.summary.notes["skipped"] = f"silver tables missing: {', '.join(sorted(missing))}"
        return
    target = paths.table("gold", TABLE)
    with (
        table_lock(paths, f"gold.{TABLE}", job.ctx.run_id),
        # the scores are deliberate windows over the whole population (one row per
        # customer); Spark would warn about a single partition on every query
        jvm_log_level(spark, "org.apache.spark.sql.execution.window.WindowExec", "ERROR"),
    ):
        with run.step("plan"):
            versions = {n: delta_io.current_version(spark, loc) for n, loc in locations.items()}
            state = head = None
            stored_columns: list[str] = []
            if delta_io.table_exists(spark, target):
                state = delta_io.last_user_metadata(spark, target, STATE_KEY)
                head = delta_io.versioned_user_metadata(spark, target, STATE_KEY, depth=1)
                stored_columns = delta_io.read_table(spark, target).columns
            reached = {
                "as_of": as_of.isoformat(),
                "versions": versions,
                "rules": _rules_hash(rules),
            }
            # The table's latest commit is this job's, made from these very Silver
            # versions, date and rules: a run would compute what is stored.
            # A table stored in an older layout is rewritten in this one, whatever else.
            relayout = bool(stored_columns) and not set(stored_columns) <= STORED_LAYOUT
            unchanged = head is not None and head[1] == reached and not relayout
            silver = Silver(
                **{
                    n: delta_io.read_table(spark, loc, version=versions[n])
                    for n, loc in locations.items()
                }
            )
        if unchanged:
            assert head is not None
            _report_unchanged(job, locations, versions, target, head[0])
            return
        reason = (
            "the table's columns changed" if relayout else _full_rebuild_reason(state, as_of, rules)
        )
        cached: list[DataFrame] = []  # unpersisted at the end, whatever happens
        with run.step("metrics"):
            if reason:
                base = base_metrics(silver, as_of)
                touched_count = None
            else:
                assert state is not None
                touched = _touched(spark, silver, locations, state, versions, as_of).cache()
                cached.append(touched)
                touched_count = touched.count()
                fresh = base_metrics(_restricted(silver, touched), as_of)
                kept = (
                    delta_io.read_table(spark, target)
                    .select(*BASE_COLUMNS)
                    .join(touched, "customer_id", "left_anti")
                )
                base = kept.unionByName(fresh)
            rows = base.transform(customer_360(as_of, rules, job.ctx.run_id))
            rows = rows.withColumn(ROW_HASH, _row_hash(rows.columns)).localCheckpoint(eager=True)
            cached.append(rows)
            population = rows.count()
        try:
            if population == 0:
                raise QualityGateError(
                    f"quality gate gold.{TABLE} failed, nothing written:\n  the population of "
                    f"{as_of} is empty: no silver.dim_customer version is valid at its end"
                )
            with run.step("diff"):
                changes = _changes(spark, rows, target).localCheckpoint(eager=True)
                cached.append(changes)
                counts = {
                    r["_action"]: int(r["n"])
                    for r in changes.groupBy("_action").agg(F.count("*").alias("n")).collect()
                }
            with run.step("gate"):  # on the rows to publish, before the MERGE
                gate = run_gate(
                    job, "gold", TABLE, changes.where("_action != 'delete'").drop("_action")
                )
            held = _hold_back(job, gate, rows.columns)
            with run.step("write"):
                if relayout:  # a MERGE cannot drop columns
                    commit = delta_io.replace_table(
                        spark,
                        rows.join(held, "customer_id", "left_anti") if held is not None else rows,
                        target,
                        user_metadata={STATE_KEY: reached},
                    )
                elif not counts and state == reached:  # nothing to write or to record
                    commit = delta_io.CommitInfo(
                        delta_io.current_version(spark, target), "NONE", {}
                    )
                elif not counts:  # every row is as stored; the log still learns D
                    assert head is not None
                    commit = delta_io.commit_unchanged(
                        spark, target, {STATE_KEY: reached}, read_version=head[0]
                    )
                else:
                    commit = delta_io.merge_actions(
                        spark,
                        changes.join(held, "customer_id", "left_anti")
                        if held is not None
                        else changes,
                        target,
                        match=["customer_id"],
                        columns=rows.columns,
                        user_metadata={STATE_KEY: reached},
                    )
            with run.step("verify"):
                stored = delta_io.read_table(spark, target).count()
                held_back = held.count() if held is not None else 0  # stored rows may stay
            if not population - held_back <= stored <= population:
                raise ReconciliationError(
                    f"reconciliation gold.{TABLE} failed after the write: it holds {stored} "
                    f"customers, the population of {as_of} is {population}"
                )
        finally:
            # dependents first: unpersisting a frame that cached plans are built on makes
            # Spark re-plan those (seconds each here)
            for frame in reversed(cached):
                frame.unpersist()
    _report_inputs(job, locations, versions)
    run.output(
        DatasetStats(
            f"gold.{TABLE}",
            target,
            rows=commit.rows_written,
            delta_version=commit.version,
            extra={
                "mode": f"full ({reason})" if reason else "incremental",
                "customers": population,
                "customers_recomputed": population if touched_count is None else touched_count,
                "customers_inserted": counts.get("insert", 0),
                "customers_updated": counts.get("update", 0),
                "customers_deleted": counts.get("delete", 0),
                "as_of_date": as_of.isoformat(),
            },
        )
    )
    _register(job, target, commit.version)


def _register(job: JobEnv, target: str, version: int) -> None:
    """The table, and its view with the day counts pinned to ``version`` (built for D)."""
    counts = ", ".join(f"{sql} AS {name}" for name, sql in day_counts(job.ctx.logical_date).items())
    with job.recorder.step("register"):
        delta_io.register_table(job.spark, "gold", TABLE, target)
        delta_io.register_view(
            job.spark,
            "gold",
            VIEW,
            f"SELECT * EXCEPT ({ROW_HASH}), {counts} FROM delta.`{target}` VERSION AS OF {version}",
        )


def read_customer_360(spark: SparkSession, location: str) -> DataFrame:
    """``gold.customer_360`` as readers see it: the stored rows with their day counts.

    The D the rows were built for is the one the latest Gold commit records.
    """
    state = delta_io.last_user_metadata(spark, location, STATE_KEY)
    if state is None:
        raise ValueError(f"{location} has no gold.{TABLE} commit: no date to count days from")
    stored = delta_io.read_table(spark, location)
    return stored.drop(ROW_HASH).transform(with_day_counts(dt.date.fromisoformat(state["as_of"])))


def _report_inputs(job: JobEnv, locations: dict[str, str], versions: dict[str, int]) -> None:
    for name, location in locations.items():
        job.recorder.input(
            DatasetStats(f"silver.{INPUTS[name]}", location, extra={"version": versions[name]})
        )


def _report_unchanged(
    job: JobEnv, locations: dict[str, str], versions: dict[str, int], target: str, version: int
) -> None:
    """A run with nothing to do: the inputs it checked and the table as it stands."""
    _report_inputs(job, locations, versions)
    with job.recorder.step("verify"):
        customers = delta_io.read_table(job.spark, target, version=version).count()
    job.recorder.output(
        DatasetStats(
            f"gold.{TABLE}",
            target,
            rows=0,
            delta_version=version,
            extra={
                "mode": f"unchanged (version {version} was built from these inputs)",
                "customers": customers,
                "customers_recomputed": 0,
                "customers_inserted": 0,
                "customers_updated": 0,
                "customers_deleted": 0,
                "as_of_date": job.ctx.logical_date.isoformat(),
            },
        )
    )
    _register(job, target, version)


def _full_rebuild_reason(
    state: dict[str, Any] | None, as_of: dt.date, rules: Customer360Rules
) -> str | None:
    if state is None:
        return "first build"
    if state.get("rules") != _rules_hash(rules):
        return "rules changed"
    if dt.date.fromisoformat(state["as_of"]) > as_of:
        return f"as of {as_of} is before the last build ({state['as_of']})"
    if set(state.get("versions", {})) != set(INPUTS):
        return "inputs changed"
    return None


def _between(column: str, start: dt.date, end: dt.date) -> Column:
    """``column`` on a day in ``start`` .. ``end`` (both inclusive)."""
    low = F.lit(dt.datetime.combine(start, dt.time())).cast("timestamp")
    high = F.lit(dt.datetime.combine(end + dt.timedelta(days=1), dt.time())).cast("timestamp")
    return (F.col(column) >= low) & (F.col(column) < high)


def _touched(
    spark: SparkSession,
    silver: Silver,
    locations: dict[str, str],
    state: dict[str, Any],
    versions: dict[str, int],
    as_of: dt.date,
) -> DataFrame:
    """Customers whose metrics can differ from the stored ones (one column, distinct)."""
    before = state["versions"]
    ids: list[DataFrame] = []
    for name in ("customers", "orders", "returns", "events", "cases"):
        changed = delta_io.read_changes_since(
            spark, locations[name], int(before[name]), versions[name]
        )
        ids.append(changed.select("customer_id"))
    rates = delta_io.read_changes_since(spark, locations["fx"], int(before["fx"]), versions["fx"])
    earliest = rates.groupBy("currency").agg(F.min("rate_date").alias("_since"))
    for facts, ts in ((silver.orders, "order_ts"), (silver.returns, "return_ts")):
        ids.append(
            facts.join(earliest, "currency")
            .where(F.to_date(ts) >= F.col("_since"))
            .select("customer_id")
        )
    last = dt.date.fromisoformat(state["as_of"])
    if as_of > last:
        first_new = last + dt.timedelta(days=1)
        ids += [
            silver.orders.where(_between("order_ts", first_new, as_of)).select("customer_id"),
            silver.returns.where(_between("return_ts", first_new, as_of)).select("customer_id"),
            silver.cases.where(_between("opened_at", first_new, as_of)).select("customer_id"),
            silver.events.where(
                _between("event_ts", first_new, as_of)
                # leaving the 30-day window: D'-29 .. D-30
                | _between("event_ts", last - dt.timedelta(days=29), as_of - dt.timedelta(days=30))
            ).select("customer_id"),
            silver.customers.where(
                _between("valid_from", first_new, as_of) | _between("valid_to", first_new, as_of)
            ).select("customer_id"),
        ]
    touched = ids[0]
    for more in ids[1:]:
        touched = touched.unionByName(more)
    return touched.where(F.col("customer_id").isNotNull()).distinct()


def _restricted(silver: Silver, touched: DataFrame) -> Silver:
    def only(frame: DataFrame) -> DataFrame:
        return frame.join(touched, "customer_id", "left_semi")

    return Silver(
        customers=only(silver.customers),
        orders=only(silver.orders),
        returns=only(silver.returns),
        events=only(silver.events),
        cases=only(silver.cases),
        fx=silver.fx,
    )


def _row_hash(columns: list[str]) -> Column:
    """A hash of the row's values, bookkeeping excluded: a changed row has a new hash."""
    compared = [c for c in columns if c not in IGNORED]
    return F.sha2(F.to_json(F.struct(*[F.col(c) for c in compared])), 256)


def _changes(spark: SparkSession, rows: DataFrame, target: str) -> DataFrame:
    """What a MERGE must do to make ``target`` hold ``rows``.

    Rows that are new or differ from the stored ones (``_action`` insert / update, by
    the row hash), plus the stored customers no longer in ``rows`` (``delete``).
    """
    delta_io.create_if_absent(spark, target, rows.schema, properties=GOLD_PROPERTIES)
    stored = delta_io.read_table(spark, target)
    keys = stored.select("customer_id", F.lit(True).alias("_stored"))
    differ = rows
    if ROW_HASH in stored.columns:
        hashes = stored.select("customer_id", ROW_HASH)
        differ = rows.join(hashes, ["customer_id", ROW_HASH], "left_anti")
    upserts = (
        differ.join(keys, "customer_id", "left")
        .withColumn("_action", F.when(F.col("_stored"), "update").otherwise("insert"))
        .drop("_stored")
    )
    deletes = (
        stored.join(rows.select("customer_id"), "customer_id", "left_anti")
        .select(*[F.col(c) if c in stored.columns else F.lit(None) for c in upserts.columns[:-1]])
        .toDF(*upserts.columns[:-1])
        .withColumn("_action", F.lit("delete"))
    )
    return upserts.unionByName(deletes)


def _hold_back(job: JobEnv, gate: GateResult, columns: list[str]) -> DataFrame | None:
    """Customers a gold quarantine rule failed: kept out of this MERGE, written aside."""
    if gate.quarantined is None or not gate.report.rows_quarantined:
        return None
    delta_io.insert_new(
        job.spark,
        gate.quarantined.select(
            F.to_json(F.struct(*columns)).alias("_record"),
            failure_reason().alias("_reason"),
            F.lit(job.ctx.run_id).alias("_run_id"),
            F.current_timestamp().alias("_quarantined_at"),
        ),
        job.paths.table("_quarantine", quarantine_table_name("gold", TABLE)),
        match=["_record", "_reason"],
    )
    return gate.quarantined.select("customer_id")
