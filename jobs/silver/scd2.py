"""SCD Type 2 on Delta MERGE, correct under out-of-order events, deletes and replays.

``apply_changes`` keeps two tables beside the target:

* an **event log** (``<target>__scd2_events``): every distinct change event ever
  accepted, one row per (key, sequence). It is what makes the result independent of
  how events are split into batches and in which order batches arrive: history is a
  function of the set of events, and a late event or a delete that collapsed into
  nothing is still remembered.
* a **quarantine** (``<target>__quarantine``): events that cannot be placed (NULL key,
  NULL sequence, two different events for one key and sequence), with the reason.

Each call inserts the batch's new events into the log, recomputes the complete
history of only the keys whose events changed, and MERGEs the difference into the
target: files without affected keys are not rewritten, identical rows are not touched,
and a replay commits nothing. The target's commit records the event-log version it
reflects, so a run killed between the two commits is completed by the next one.

Semantics, per key, with events ordered by ``sequence_by``:

* an upsert opens a new version when a tracked column differs from the version it
  follows (or there is none); otherwise it collapses into that version and changes
  only its untracked columns, in place;
* a delete closes the open version at the delete's sequence; a later upsert opens a
  new version; an upsert older than the delete stays in history;
* ``valid_from`` is the sequence of a version's first event, ``valid_to`` the sequence
  of the event that ended it (next version or delete), NULL while it is open;
* with ``ignore_null_updates``, a NULL in an upsert keeps the value the key had
  (since its last delete).

Example::

    result = apply_changes(
        spark, changes, "/lake/silver/dim_customer",
        keys=["customer_id"], sequence_by="updated_at",
        apply_as_deletes="op = 'D'", except_columns=["op"],
    )
    result.rows_inserted, result.rows_closed, result.version
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.common import delta_io
from jobs.common.errors import LakehouseError
from jobs.common.faults import crash_inside, crash_point, rendezvous
from jobs.common.spark import estimated_bytes, planned_for_small_data

log = logging.getLogger(__name__)

VALID_FROM, VALID_TO, IS_CURRENT = "valid_from", "valid_to", "is_current"
SEQ, IS_DELETE, EVENT_HASH = "_seq", "_is_delete", "_event_hash"
REASON, RECORD = "_reason", "_record"
APPLIED_KEY = "scd2_event_log_version"
VIOLATION = "_violation"  # the invariant check's rows among the diff counts
MAX_ATTEMPTS = 5
# Up to this many keys to recompute, the history, diff and MERGE are planned statically
# (few rows: adaptive execution's per-stage jobs cost more than they save).
SMALL_CHANGE_KEYS = 100_000
# A batch Spark estimates at up to this size is classified the same way.
SMALL_BATCH_BYTES = 32 * 1024 * 1024
SMALL_PLAN_PARTITIONS = 2  # shuffle partitions of those static plans


class HistoryInvariantError(LakehouseError):
    """The history computed for a target breaks an SCD2 invariant; nothing was written."""


class ApplyChangesError(LakehouseError):
    """``apply_changes`` was called with arguments that cannot describe a history."""


@dataclass(frozen=True)
class ApplyChangesResult:
    """What one ``apply_changes`` call did.

    ``rows_*`` count target rows: ``inserted`` new versions, ``closed`` versions whose
    ``valid_to`` was set, ``updated`` other in-place changes (untracked columns, a late
    event moving a boundary), ``deleted`` versions that a late event dissolved.
    ``version`` is the target's Delta version after the call (unchanged on a no-op).
    """

    rows_in: int
    events_new: int
    duplicates_skipped: int
    rows_quarantined: int
    keys_affected: int
    rows_inserted: int
    rows_closed: int
    rows_updated: int
    rows_deleted: int
    version: int
    committed: bool
    operation_metrics: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChangeOptions:
    """The ``apply_changes`` arguments that describe the target's shape."""

    keys: tuple[str, ...]
    sequence_by: str
    except_columns: tuple[str, ...] = ()
    track_history_columns: tuple[str, ...] | None = None
    track_history_except_columns: tuple[str, ...] | None = None
    ignore_null_updates: bool = False


@dataclass(frozen=True)
class Spec:
    """The resolved shape of one target: which columns are keys, stored, tracked."""

    keys: tuple[str, ...]
    columns: tuple[str, ...]  # stored business columns (keys excluded), in source order
    tracked: tuple[str, ...]
    ignore_null_updates: bool

    @property
    def stored(self) -> list[str]:
        """Target columns in order."""
        return [*self.keys, *self.columns, VALID_FROM, VALID_TO, IS_CURRENT]


def resolve_spec(source_columns: Sequence[str], options: ChangeOptions) -> Spec:
    """Check the arguments against the source columns and decide what is stored and tracked.

    Raises:
        ApplyChangesError: a named column is missing, or both ``track_history_*`` are given.
    """
    keys, sequence_by = options.keys, options.sequence_by
    track_history_columns = options.track_history_columns
    track_history_except_columns = options.track_history_except_columns
    available = list(source_columns)
    named = {"keys": list(keys), "sequence_by": [sequence_by]}
    for role, cols in named.items():
        missing = [c for c in cols if c not in available]
        if missing:
            raise ApplyChangesError(f"{role} column(s) {missing} not in the source {available}")
    if not keys:
        raise ApplyChangesError("keys must name at least one column")
    if track_history_columns is not None and track_history_except_columns is not None:
        raise ApplyChangesError(
            "give track_history_columns or track_history_except_columns, not both"
        )
    dropped = {*keys, sequence_by, *options.except_columns}
    columns = tuple(c for c in available if c not in dropped)
    if track_history_columns is not None:
        unknown = [c for c in track_history_columns if c not in columns]
        if unknown:
            raise ApplyChangesError(f"track_history_columns {unknown} are not stored columns")
        tracked = tuple(c for c in columns if c in set(track_history_columns))
    else:
        excluded = set(track_history_except_columns or [])
        tracked = tuple(c for c in columns if c not in excluded)
    return Spec(tuple(keys), columns, tracked, options.ignore_null_updates)


# ---------------------------------------------------------------- pure transformations


def to_events(
    spec: Spec, sequence_by: str, delete_when: Column | None
) -> Callable[[DataFrame], DataFrame]:
    """Source rows as events: keys, ``_seq``, ``_is_delete``, stored columns, ``_event_hash``."""

    def transform(source: DataFrame) -> DataFrame:
        is_delete = (
            F.coalesce(delete_when, F.lit(False)) if delete_when is not None else F.lit(False)
        )
        events = source.select(
            *[F.col(f"`{k}`") for k in spec.keys],
            F.col(f"`{sequence_by}`").alias(SEQ),
            is_delete.alias(IS_DELETE),
            *[F.col(f"`{c}`") for c in spec.columns],
            F.to_json(F.struct(*[F.col(f"`{c}`") for c in source.columns])).alias(RECORD),
        )
        payload = F.struct(F.col(IS_DELETE), *[F.col(f"`{c}`") for c in spec.columns])
        return events.withColumn(EVENT_HASH, F.sha2(F.to_json(payload), 256))

    return transform


NEW, DUPLICATE, REJECTED = "new", "duplicate", "rejected"
STATUS = "_status"
CONFLICT_WITH_LOG = "conflicts with an event already applied for the same key and sequence"


def classify_events(spec: Spec, logged: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Tag each event ``new``, ``duplicate`` or ``rejected`` (with ``_reason``).

    ``logged`` holds the keys, ``_seq`` and ``_event_hash`` of the events already in the
    log. Rejected: a NULL key or sequence; every event of a (key, sequence) that has
    more than one distinct value in the batch (no pick is made between them); an event
    whose (key, sequence) the log holds with another value. Duplicate: an event equal
    to one in the log or to an earlier row of the batch.
    """
    slot = [*spec.keys, SEQ]

    def transform(events: DataFrame) -> DataFrame:
        null_key = F.greatest(*[F.col(f"`{k}`").isNull() for k in spec.keys], F.lit(False))
        per_slot = Window.partitionBy(*[F.col(f"`{c}`") for c in slot])
        variants = F.size(F.collect_set(EVENT_HASH).over(per_slot))
        first = F.row_number().over(per_slot.orderBy(EVENT_HASH)) == 1
        known = logged.select(*slot, F.col(EVENT_HASH).alias("_logged_hash"))
        tagged = events.join(known, on=slot, how="left")
        basic = F.concat_ws(
            "; ",
            F.when(null_key, F.lit("key is NULL")),
            F.when(F.col(SEQ).isNull(), F.lit("sequence is NULL")),
        )
        reason = (
            F.when(basic != "", basic)
            .when(
                variants > 1,
                F.format_string("%d different events for the same key and sequence", variants),
            )
            .when(F.col("_logged_hash") != F.col(EVENT_HASH), F.lit(CONFLICT_WITH_LOG))
        )
        status = (
            F.when(reason.isNotNull(), F.lit(REJECTED))
            .when(F.col("_logged_hash").isNotNull() | ~first, F.lit(DUPLICATE))
            .otherwise(F.lit(NEW))
        )
        return tagged.select(*events.columns, reason.alias(REASON), status.alias(STATUS))

    return transform


def build_history(spec: Spec) -> Callable[[DataFrame], DataFrame]:
    """All versions of the keys present in a set of events (``apply_changes`` semantics).

    Input: distinct events (keys, ``_seq``, ``_is_delete``, stored columns). Output:
    keys, stored columns, ``valid_from``, ``valid_to``, ``is_current``.
    """
    keys = [F.col(f"`{k}`") for k in spec.keys]

    def transform(events: DataFrame) -> DataFrame:
        by_key = Window.partitionBy(*keys).orderBy(SEQ)
        before = by_key.rowsBetween(Window.unboundedPreceding, -1)
        frame = events.withColumn("_next_seq", F.lead(SEQ).over(by_key)).withColumn(
            "_segment", F.coalesce(F.sum(F.col(IS_DELETE).cast("int")).over(before), F.lit(0))
        )
        upserts = frame.where(~F.col(IS_DELETE))
        by_segment = Window.partitionBy(*keys, F.col("_segment")).orderBy(SEQ)
        if spec.ignore_null_updates:
            so_far = by_segment.rowsBetween(Window.unboundedPreceding, 0)
            upserts = upserts.select(
                *[F.col(c) for c in upserts.columns if c not in spec.columns],
                *[
                    F.last(F.col(f"`{c}`"), ignorenulls=True).over(so_far).alias(c)
                    for c in spec.columns
                ],
            )
        tracked = F.struct(*[F.col(f"`{c}`") for c in spec.tracked])
        starts = F.lag(F.lit(1)).over(by_segment).isNull() | ~F.lag(tracked).over(
            by_segment
        ).eqNullSafe(tracked)
        upserts = upserts.withColumn("_starts", starts).withColumn(
            VALID_FROM,
            F.last(F.when(F.col("_starts"), F.col(SEQ)), ignorenulls=True).over(
                by_segment.rowsBetween(Window.unboundedPreceding, 0)
            ),
        )
        last_event = F.max_by(
            F.struct(*[F.col(f"`{c}`") for c in spec.columns], F.col("_next_seq").alias(VALID_TO)),
            F.col(SEQ),
        )
        versions = upserts.groupBy(*keys, F.col(VALID_FROM)).agg(last_event.alias("_last"))
        return versions.select(
            *keys,
            *[F.col(f"_last.`{c}`").alias(c) for c in spec.columns],
            F.col(VALID_FROM),
            F.col(f"_last.{VALID_TO}").alias(VALID_TO),
            F.col(f"_last.{VALID_TO}").isNull().alias(IS_CURRENT),
        )

    return transform


def find_violations(keys: Sequence[str]) -> Callable[[DataFrame], DataFrame]:
    """Rows of an SCD2 table that break an invariant, with ``_reason``.

    Checked: at most one current row per key; ``is_current`` iff ``valid_to`` is NULL;
    ``valid_from < valid_to``; intervals of a key do not overlap.
    """
    cols = [F.col(f"`{k}`") for k in keys]

    def transform(table: DataFrame) -> DataFrame:
        by_key = Window.partitionBy(*cols)
        ordered = by_key.orderBy(VALID_FROM)
        checked = table.select(
            *cols,
            VALID_FROM,
            VALID_TO,
            IS_CURRENT,
            F.concat_ws(
                "; ",
                F.when(
                    F.sum(F.col(IS_CURRENT).cast("int")).over(by_key) > 1,
                    F.lit("more than one current row for the key"),
                ),
                F.when(
                    F.col(IS_CURRENT) != F.col(VALID_TO).isNull(),
                    F.lit("is_current disagrees with valid_to"),
                ),
                F.when(
                    F.col(VALID_TO).isNotNull() & (F.col(VALID_FROM) >= F.col(VALID_TO)),
                    F.lit("valid_from is not before valid_to"),
                ),
                F.when(
                    F.lead(VALID_FROM).over(ordered).isNotNull()
                    & (
                        F.col(VALID_TO).isNull()
                        | (F.col(VALID_TO) > F.lead(VALID_FROM).over(ordered))
                    ),
                    F.lit("interval overlaps the next version"),
                ),
            ).alias(REASON),
        )
        return checked.where(F.col(REASON) != "")

    return transform


def diff_history(spec: Spec, current: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Rows to MERGE so that ``current`` (target rows of the affected keys) becomes the input.

    Each output row has ``_action``: ``insert``, ``update`` or ``delete``; identical rows
    are left out, so applying an unchanged history yields nothing.
    """
    match = [*spec.keys, VALID_FROM]

    def transform(history: DataFrame) -> DataFrame:
        new = history.select(*[F.col(f"`{c}`") for c in spec.stored], F.lit(True).alias("_in_new"))
        types = {f.name: f.dataType for f in history.schema.fields}
        old = current.select(
            *[
                (F.col(f"`{c}`") if c in current.columns else F.lit(None).cast(types[c])).alias(
                    f"_old_{c}"
                )
                for c in spec.stored
            ],
            F.lit(True).alias("_in_old"),
        )
        on = [new[f"`{c}`"] == old[f"`_old_{c}`"] for c in match]
        both = new.join(old, on=on, how="full_outer")
        same = F.lit(True)
        for c in spec.stored:
            same = same & F.col(f"`{c}`").eqNullSafe(F.col(f"`_old_{c}`"))
        action = (
            F.when(F.col("_in_old").isNull(), F.lit("insert"))
            .when(F.col("_in_new").isNull(), F.lit("delete"))
            .when(~same, F.lit("update"))
        )
        closing = F.col(f"_old_{IS_CURRENT}") & ~F.coalesce(F.col(IS_CURRENT), F.lit(True))
        return (
            both.select(
                *[
                    F.coalesce(F.col(f"`{c}`"), F.col(f"`_old_{c}`")).alias(c)
                    if c in match
                    else F.col(f"`{c}`")
                    for c in spec.stored
                ],
                action.alias("_action"),
                (action == "update") & closing.eqNullSafe(F.lit(True)),
            )
            .toDF(*spec.stored, "_action", "_closes")
            .where(F.col("_action").isNotNull())
        )

    return transform


# ---------------------------------------------------------------- the engine


def apply_changes(
    spark: SparkSession,
    source: DataFrame,
    target: str,
    *,
    keys: Sequence[str],
    sequence_by: str,
    apply_as_deletes: str | Column | None = None,
    except_columns: Sequence[str] | None = None,
    track_history_columns: Sequence[str] | None = None,
    track_history_except_columns: Sequence[str] | None = None,
    ignore_null_updates: bool = False,
    run_id: str | None = None,
    quarantine: str | None = None,
) -> ApplyChangesResult:
    """Apply a batch of change events to the SCD2 table ``target``.

    Args:
        spark: the session.
        source: change events; one row per event.
        target: Delta table path, or a catalog table name (created if absent).
        keys: business key columns.
        sequence_by: orderable column (timestamp or number) giving each key's event order.
        apply_as_deletes: SQL predicate or Column that is true for delete events.
        except_columns: source columns not stored (e.g. the operation column).
        track_history_columns: only these columns open new versions when they change.
        track_history_except_columns: every stored column except these opens versions.
        ignore_null_updates: a NULL in an upsert keeps the key's previous value.
        run_id: recorded with quarantined events.
        quarantine: where events that cannot be placed go (default: a table beside the
            target, ``<target>__quarantine``).

    Returns:
        what was written; ``committed`` is false when nothing changed.

    Raises:
        ApplyChangesError: the arguments do not fit the source.
        HistoryInvariantError: the computed history breaks an invariant (nothing written).
    """
    options = ChangeOptions(
        keys=tuple(keys),
        sequence_by=sequence_by,
        except_columns=tuple(except_columns or ()),
        track_history_columns=None
        if track_history_columns is None
        else tuple(track_history_columns),
        track_history_except_columns=None
        if track_history_except_columns is None
        else tuple(track_history_except_columns),
        ignore_null_updates=ignore_null_updates,
    )
    resolve_spec(source.columns, options)  # fail on bad arguments before any IO
    delete_when = (
        F.expr(apply_as_deletes) if isinstance(apply_as_deletes, str) else apply_as_deletes
    )
    location = delta_io.resolve_location(spark, target)
    tables = Scd2Tables(location, quarantine or f"{location}__quarantine")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return _apply_once(spark, source, options, delete_when, tables, run_id)
        except Exception as exc:
            if attempt == MAX_ATTEMPTS or not delta_io.is_write_conflict(exc):
                raise
            pause = min(8.0, 0.5 * 2**attempt) * (0.5 + random.random())
            log.warning(
                "concurrent write to %s (attempt %d/%d), retrying in %.1fs: %s",
                tables.target,
                attempt,
                MAX_ATTEMPTS,
                pause,
                delta_io.describe_error(exc),
            )
            time.sleep(pause)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Scd2Tables:
    """Where a target and its side tables live."""

    target: str
    quarantine: str  # events that could not be placed

    @property
    def events(self) -> str:
        """The event log."""
        return f"{self.target}__scd2_events"


EVENT_LOG_PROPERTIES = {"delta.enableChangeDataFeed": "true", "delta.appendOnly": "true"}
TARGET_PROPERTIES = {
    "delta.enableChangeDataFeed": "true",
    "delta.enableDeletionVectors": "true",
}


def _with_logged_columns(source: DataFrame, logged: DataFrame, hidden: set[str]) -> DataFrame:
    """``source`` plus, as NULL, stored columns the log has and this batch lacks."""
    missing = [
        f for f in logged.schema.fields if f.name not in source.columns and f.name not in hidden
    ]
    return source.select("*", *[F.lit(None).cast(f.dataType).alias(f.name) for f in missing])


def _apply_once(
    spark: SparkSession,
    source: DataFrame,
    options: ChangeOptions,
    delete_when: Column | None,
    tables: Scd2Tables,
    run_id: str | None,
) -> ApplyChangesResult:
    hidden = {SEQ, IS_DELETE, EVENT_HASH}
    if delta_io.table_exists(spark, tables.events):
        source = _with_logged_columns(source, delta_io.read_table(spark, tables.events), hidden)
    spec = resolve_spec(source.columns, options)
    events = source.transform(to_events(spec, options.sequence_by, delete_when))
    delta_io.create_if_absent(
        spark, tables.events, events.drop(RECORD).schema, properties=EVENT_LOG_PROPERTIES
    )
    empty_history = events.drop(RECORD).limit(0).transform(build_history(spec))
    delta_io.create_if_absent(
        spark, tables.target, empty_history.schema, properties=TARGET_PROPERTIES
    )
    target_version, applied = _applied_log_version(spark, tables.target)
    log_before = delta_io.current_version(spark, tables.events)
    slot = [*spec.keys, SEQ]
    # The log's events of this batch's keys, read once: they classify the batch and,
    # with the batch's new events, are the whole history of the keys to recompute.
    # A small batch's keys are broadcast, so the log is scanned once and not shuffled,
    # and the classification is planned statically (few rows: see SMALL_CHANGE_KEYS).
    log_at_start = delta_io.read_table(spark, tables.events, version=log_before)
    small = estimated_bytes(events) <= SMALL_BATCH_BYTES
    cached: list[DataFrame] = []
    try:
        with planned_for_small_data(spark, SMALL_PLAN_PARTITIONS) if small else nullcontext():
            batch_keys = events.select(*spec.keys).distinct()
            prior = log_at_start.join(
                F.broadcast(batch_keys) if small else batch_keys,
                on=list(spec.keys),
                how="left_semi",
            ).cache()
            cached.append(prior)
            classified = events.transform(
                classify_events(spec, prior.select(*slot, EVENT_HASH))
            ).cache()
            cached.append(classified)
            key = F.struct(*[F.col(f"`{k}`") for k in spec.keys])
            tally = {
                r[STATUS]: (int(r["n"]), int(r["keys"]))
                for r in classified.groupBy(STATUS)
                .agg(F.count("*").alias("n"), F.count_distinct(key).alias("keys"))
                .collect()
            }
        counts = {status: n for status, (n, _) in tally.items()}
        rows_in, events_new = sum(counts.values()), counts.get(NEW, 0)
        rows_quarantined = counts.get(REJECTED, 0)
        if rows_quarantined:
            delta_io.insert_new(
                spark,
                classified.where(F.col(STATUS) == REJECTED).select(
                    F.col(RECORD),
                    F.col(REASON),
                    F.lit(run_id).cast("string").alias("_run_id"),
                    F.current_timestamp().alias("_quarantined_at"),
                ),
                tables.quarantine,
                match=[RECORD, REASON],
            )
        new_events = classified.where(F.col(STATUS) == NEW).drop(RECORD, REASON, STATUS)
        log_version = log_before
        if events_new:  # classified against log_before: no second look at the log
            log_version = _log_new_events(
                spark, new_events, tables.events, log_at_start, log_before, slot
            )
        crash_point("after_log_commit")
        if applied >= log_before:  # the target reflected the log: only this batch's keys
            arrived, keys, logged = new_events, tally.get(NEW, (0, 0))[1], prior
        else:  # an earlier run stopped between its two commits: its keys too
            arrived = delta_io.read_inserts_since(spark, tables.events, applied + 1, log_version)
            keys, logged = None, None
        result = _refresh_target(
            spark,
            spec,
            tables,
            arrived,
            keys=keys,
            logged=logged,
            applied=applied,
            log_version=log_version,
            version=target_version,
        )
        return ApplyChangesResult(
            rows_in=rows_in,
            events_new=events_new,
            duplicates_skipped=counts.get(DUPLICATE, 0),
            rows_quarantined=rows_quarantined,
            **result,
        )
    finally:
        for frame in reversed(cached):  # dependents first: no re-planning of them
            frame.unpersist()


def _log_new_events(
    spark: SparkSession,
    new_events: DataFrame,
    location: str,
    log: DataFrame,
    log_before: int,
    slot: list[str],
) -> int:
    """Add the events classified new against version ``log_before``; the log's new version.

    An append that conflicts with any other commit since ``log_before`` (another writer's
    events were not classified against); a MERGE-insert when the batch brings a column
    the log lacks (the append cannot change the schema).
    """
    stored = [(f.name, f.dataType) for f in log.schema.fields]
    incoming = {f.name: f.dataType for f in new_events.schema.fields}
    if set(incoming) == {name for name, _ in stored} and all(
        incoming[name] == kind for name, kind in stored
    ):
        rows = new_events.select(*[F.col(f"`{name}`") for name, _ in stored])
        return delta_io.append_unless_changed(
            spark, rows, location, read_version=log_before
        ).version
    return delta_io.merge_insert(spark, new_events, location, match=slot, merge_schema=True).version


def _applied_log_version(spark: SparkSession, target: str) -> tuple[int, int]:
    """The target's version and the event-log version its newest MERGE reflected (-1)."""
    version, progress = delta_io.versioned_user_metadata(spark, target, APPLIED_KEY)
    return version, int(progress) if progress is not None else -1


def _refresh_target(
    spark: SparkSession,
    spec: Spec,
    tables: Scd2Tables,
    arrived: DataFrame,
    *,
    keys: int | None,
    logged: DataFrame | None,
    applied: int,
    log_version: int,
    version: int,
) -> dict[str, Any]:
    """Recompute the keys of the ``arrived`` events and MERGE the difference.

    ``keys``: how many keys arrived (None: not yet counted); ``logged``: the events the
    log held for those keys before ``arrived`` (None: read them from the log at
    ``log_version``); ``applied``: the log version the target reflects; ``log_version``:
    the one to reach; ``version``: the target's.
    """
    unchanged: dict[str, Any] = {
        "keys_affected": 0,
        "rows_inserted": 0,
        "rows_closed": 0,
        "rows_updated": 0,
        "rows_deleted": 0,
        "version": version,
        "committed": False,
    }
    if log_version <= applied:
        return unchanged
    cached: list[DataFrame] = []
    stack = ExitStack()
    try:
        affected = arrived.select(*spec.keys).distinct()
        keys_affected = keys
        if keys_affected is None:
            affected = affected.cache()
            cached.append(affected)
            keys_affected = affected.count()
        if not keys_affected:
            return unchanged
        touched = F.broadcast(affected) if keys_affected <= 1_000_000 else affected
        plan = (
            planned_for_small_data(spark, SMALL_PLAN_PARTITIONS)
            if keys_affected <= SMALL_CHANGE_KEYS
            else nullcontext()
        )
        stack.enter_context(plan)
        if logged is None:
            log_events = delta_io.read_table(spark, tables.events, version=log_version)
        else:  # the log at log_version holds exactly these events of the keys
            log_events = logged.unionByName(arrived, allowMissingColumns=True)
        history = log_events.join(touched, on=list(spec.keys), how="left_semi").transform(
            build_history(spec)
        )
        history = history.cache()
        cached.append(history)
        current = delta_io.read_table(spark, tables.target).join(
            touched, on=list(spec.keys), how="left_semi"
        )
        changes = history.transform(diff_history(spec, current)).cache()
        cached.append(changes)
        violations = history.transform(find_violations(spec.keys))
        # one pass: the invariant check and the counts of what the MERGE will do
        checked = changes.select("_action", F.col("_closes").cast("int").alias("_c")).unionByName(
            violations.select(F.lit(VIOLATION).alias("_action"), F.lit(0).alias("_c"))
        )
        counts = {
            r["_action"]: (int(r["n"]), int(r["closes"]))
            for r in checked.groupBy("_action")
            .agg(F.count("*").alias("n"), F.sum("_c").alias("closes"))
            .collect()
        }
        if VIOLATION in counts:
            raise HistoryInvariantError(
                f"history for {tables.target} breaks SCD2 invariants, nothing written: "
                + "; ".join(f"{r.asDict()}" for r in violations.limit(5).collect())
            )
        if not counts:
            # Nothing differs (the new events collapsed). The target's recorded log
            # version stays behind, so the next call looks at these keys again: cheap,
            # and no empty commit.
            return {**unchanged, "keys_affected": keys_affected}
        rendezvous("scd2_target_merge")
        commit = delta_io.merge_actions(
            spark,
            crash_inside(changes.drop("_closes"), "mid_write"),
            tables.target,
            match=[*spec.keys, VALID_FROM],
            columns=spec.stored,
            user_metadata={APPLIED_KEY: log_version},
        )
        closed = counts.get("update", (0, 0))[1]
        return {
            "keys_affected": keys_affected,
            "rows_inserted": counts.get("insert", (0, 0))[0],
            "rows_closed": closed,
            "rows_updated": counts.get("update", (0, 0))[0] - closed,
            "rows_deleted": counts.get("delete", (0, 0))[0],
            "version": commit.version,
            "committed": True,
            "operation_metrics": commit.metrics,
        }
    finally:
        stack.close()
        for frame in reversed(cached):  # dependents first: no re-planning of them
            frame.unpersist()
