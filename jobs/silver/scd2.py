"""SCD Type 2 on Delta MERGE, correct under out-of-order events, deletes and replays.

``apply_changes`` keeps two tables beside the target:

* an **event log** (``<target>__scd2_events``): every distinct change event ever
  accepted, one row per (key, sequence). It is what makes the result independent of
  how events are split into batches and in which order batches arrive: history is a
  function of the set of events, and a late event or a delete that collapsed into
  nothing is still remembered.
* a **quarantine** (``<target>__quarantine``): events that cannot be placed (NULL key,
  NULL sequence; upserts tied with a different upsert at one key and sequence), with
  the reason.

Each call inserts the batch's new events into the log, recomputes the complete
history of only the keys whose events changed, and MERGEs the difference into the
target: files without affected keys are not rewritten, identical rows are not touched,
and a replay commits nothing. The target's commit records the event-log version it
reflects, so a run killed between the two commits is completed by the next one.

Semantics, per key, with events ordered by ``sequence_by`` (one column, or several
compared in order: the first orders, the next break its ties):

* ties, one rule whatever the batching: at one (key, sequence) a delete wins over any
  upsert; two or more different upserts and no delete apply none of them (each is
  quarantined as tied, also when the other arrives in a later batch: the version the
  first one opened is withdrawn); the key's other events apply as usual;

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

from pyspark.sql import Column, DataFrame, SparkSession, Window, WindowSpec
from pyspark.sql import functions as F

from jobs.common import delta_io
from jobs.common.errors import LakehouseError
from jobs.common.faults import crash_inside, crash_point, rendezvous
from jobs.common.spark import estimated_bytes, planned_for_small_data
from jobs.common.tables import event_log_name

log = logging.getLogger(__name__)

VALID_FROM, VALID_TO, IS_CURRENT = "valid_from", "valid_to", "is_current"
IS_DELETED = "is_deleted"  # with tombstones: the row marks the key's deletion
SEQ, IS_DELETE, EVENT_HASH = "_seq", "_is_delete", "_event_hash"
REASON, RECORD = "_reason", "_record"
APPLIED_KEY = "scd2_event_log_version"
VIOLATION = "_violation"  # the invariant check's rows among the diff counts
TIE = "_tie"  # tied upserts of the affected keys, among the same counts
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
    ``ties_quarantined``: tied upserts this call added to the quarantine (they are also
    counted in ``events_new``: the log keeps them; an earlier batch's event tied by this
    one is among them).
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
    ties_quarantined: int = 0
    operation_metrics: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChangeOptions:
    """The ``apply_changes`` arguments that describe the target's shape."""

    keys: tuple[str, ...]
    sequence_by: tuple[str, ...]
    except_columns: tuple[str, ...] = ()
    track_history_columns: tuple[str, ...] | None = None
    track_history_except_columns: tuple[str, ...] | None = None
    ignore_null_updates: bool = False
    tombstones: bool = False
    current_valid_to: str | None = None


@dataclass(frozen=True)
class Spec:
    """The resolved shape of one target: which columns are keys, stored, tracked."""

    keys: tuple[str, ...]
    columns: tuple[str, ...]  # stored business columns (keys excluded), in source order
    tracked: tuple[str, ...]
    ignore_null_updates: bool
    sequence: tuple[str, ...] = ()  # the sequence_by columns, in order
    tombstones: bool = False
    current_valid_to: str | None = None  # SQL expression; None: open rows end in NULL

    @property
    def stored(self) -> list[str]:
        """Target columns in order."""
        marks = [IS_DELETED] if self.tombstones else []
        return [*self.keys, *self.columns, VALID_FROM, VALID_TO, IS_CURRENT, *marks]


def resolve_spec(source_columns: Sequence[str], options: ChangeOptions) -> Spec:
    """Check the arguments against the source columns and decide what is stored and tracked.

    Raises:
        ApplyChangesError: a named column is missing, or both ``track_history_*`` are given.
    """
    keys, sequence_by = options.keys, options.sequence_by
    track_history_columns = options.track_history_columns
    track_history_except_columns = options.track_history_except_columns
    available = list(source_columns)
    named = {"keys": list(keys), "sequence_by": list(sequence_by)}
    for role, cols in named.items():
        missing = [c for c in cols if c not in available]
        if missing:
            raise ApplyChangesError(f"{role} column(s) {missing} not in the source {available}")
    if not keys:
        raise ApplyChangesError("keys must name at least one column")
    if not sequence_by:
        raise ApplyChangesError("sequence_by must name at least one column")
    if options.current_valid_to is not None and len(sequence_by) != 1:
        raise ApplyChangesError("current_valid_to needs sequence_by to be one column")
    if track_history_columns is not None and track_history_except_columns is not None:
        raise ApplyChangesError(
            "give track_history_columns or track_history_except_columns, not both"
        )
    dropped = {*keys, *sequence_by, *options.except_columns}
    columns = tuple(c for c in available if c not in dropped)
    if track_history_columns is not None:
        unknown = [c for c in track_history_columns if c not in columns]
        if unknown:
            raise ApplyChangesError(f"track_history_columns {unknown} are not stored columns")
        tracked = tuple(c for c in columns if c in set(track_history_columns))
    else:
        excluded = set(track_history_except_columns or [])
        tracked = tuple(c for c in columns if c not in excluded)
    if options.tombstones and IS_DELETED in columns:
        raise ApplyChangesError(f"tombstones add the column {IS_DELETED!r}; the source has it")
    return Spec(
        tuple(keys),
        columns,
        tracked,
        options.ignore_null_updates,
        tuple(sequence_by),
        options.tombstones,
        options.current_valid_to,
    )


# ---------------------------------------------------------------- pure transformations


def sequence_of(columns: Sequence[str]) -> Column:
    """The event's sequence: the one column, or a struct of several (compared in order).

    NULL when any of the columns is NULL (such an event cannot be placed).
    """
    if len(columns) == 1:
        return F.col(f"`{columns[0]}`")
    complete = F.greatest(*[F.col(f"`{c}`").isNull() for c in columns]) == F.lit(False)
    return F.when(complete, F.struct(*[F.col(f"`{c}`") for c in columns]))


def to_events(spec: Spec, delete_when: Column | None) -> Callable[[DataFrame], DataFrame]:
    """Source rows as events: keys, ``_seq``, ``_is_delete``, stored columns, ``_event_hash``."""

    def transform(source: DataFrame) -> DataFrame:
        is_delete = (
            F.coalesce(delete_when, F.lit(False)) if delete_when is not None else F.lit(False)
        )
        events = source.select(
            *[F.col(f"`{k}`") for k in spec.keys],
            sequence_of(spec.sequence).alias(SEQ),
            is_delete.alias(IS_DELETE),
            *[F.col(f"`{c}`") for c in spec.columns],
            F.to_json(F.struct(*[F.col(f"`{c}`") for c in source.columns])).alias(RECORD),
        )
        payload = F.struct(F.col(IS_DELETE), *[F.col(f"`{c}`") for c in spec.columns])
        return events.withColumn(EVENT_HASH, F.sha2(F.to_json(payload), 256))

    return transform


NEW, DUPLICATE, REJECTED = "new", "duplicate", "rejected"
STATUS = "_status"
TIED = (
    "tied: another upsert has the same key and sequence (neither is applied; "
    "a further sequence_by column would order them)"
)


def classify_events(spec: Spec, logged: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Tag each event ``new``, ``duplicate`` or ``rejected`` (with ``_reason``).

    ``logged`` holds the keys, ``_seq`` and ``_event_hash`` of the events already in the
    log. Rejected: a NULL key or sequence. Duplicate: an event equal to one in the log
    or to an earlier row of the batch. Events that tie at one (key, sequence) are new
    here: the log keeps them all, and the history decides (:func:`resolve_ties`), so the
    outcome does not depend on which batch brought which.
    """
    event = [*spec.keys, SEQ, EVENT_HASH]

    def transform(events: DataFrame) -> DataFrame:
        null_key = F.greatest(*[F.col(f"`{k}`").isNull() for k in spec.keys], F.lit(False))
        first = F.row_number().over(
            Window.partitionBy(*[F.col(f"`{c}`") for c in event]).orderBy(F.col(RECORD))
        )
        known = logged.select(*event, F.lit(True).alias("_logged"))
        tagged = events.join(known, on=event, how="left")
        late_end = F.lit(None)
        if spec.current_valid_to is not None:
            end = F.expr(spec.current_valid_to).cast(events.schema[SEQ].dataType)
            late_end = F.when(F.col(SEQ) >= end, F.lit("sequence is not before current_valid_to"))
        reason = F.concat_ws(
            "; ",
            F.when(null_key, F.lit("key is NULL")),
            F.when(F.col(SEQ).isNull(), F.lit("sequence is NULL")),
            late_end,
        )
        status = (
            F.when(reason != "", F.lit(REJECTED))
            .when(F.col("_logged").isNotNull() | (first > 1), F.lit(DUPLICATE))
            .otherwise(F.lit(NEW))
        )
        return tagged.select(
            *events.columns, F.when(reason != "", reason).alias(REASON), status.alias(STATUS)
        )

    return transform


def _slot(spec: Spec) -> WindowSpec:
    """The events of one (key, sequence): a key's window ordered by sequence, peers only.

    The same partitioning and order as the history's per-key windows, so resolving ties
    adds no shuffle or sort to the history's plan.
    """
    by_key = Window.partitionBy(*[F.col(f"`{k}`") for k in spec.keys]).orderBy(SEQ)
    return by_key.rangeBetween(Window.currentRow, Window.currentRow)


def _upserts_at_slot(spec: Spec) -> Column:
    """How many different upserts the event's (key, sequence) holds."""
    upsert = F.when(~F.col(IS_DELETE), F.col(EVENT_HASH))
    return F.size(F.collect_set(upsert).over(_slot(spec)))


def resolve_ties(spec: Spec) -> Callable[[DataFrame], DataFrame]:
    """One event per (key, sequence): a delete if there is one, else the only upsert.

    A (key, sequence) with two or more different upserts and no delete keeps nothing.
    Input and output: distinct events (keys, ``_seq``, ``_is_delete``, stored columns,
    ``_event_hash``).
    """

    def transform(events: DataFrame) -> DataFrame:
        first_delete = F.min(F.when(F.col(IS_DELETE), F.col(EVENT_HASH))).over(_slot(spec))
        kept = F.when(first_delete.isNotNull(), F.col(EVENT_HASH) == first_delete).otherwise(
            _upserts_at_slot(spec) == 1
        )
        return events.withColumn("_kept", kept).where("_kept").drop("_kept")

    return transform


def find_ties(spec: Spec) -> Callable[[DataFrame], DataFrame]:
    """The upserts that share their (key, sequence) with another, different upsert."""

    def transform(events: DataFrame) -> DataFrame:
        tied = ~F.col(IS_DELETE) & (_upserts_at_slot(spec) > 1)
        return events.withColumn("_tied", tied).where("_tied").drop("_tied")

    return transform


def tie_records(spec: Spec) -> Callable[[DataFrame], DataFrame]:
    """Tied upserts as quarantine rows: ``_record`` (keys, sequence, stored columns), ``_reason``.

    Built from the event as the log keeps it, so an event tied in one batch or across
    two is recorded the same way.
    """
    sequence = (
        [F.col(SEQ).alias(spec.sequence[0])]
        if len(spec.sequence) == 1
        else [F.col(f"{SEQ}.`{c}`").alias(c) for c in spec.sequence]
    )

    def transform(ties: DataFrame) -> DataFrame:
        record = F.struct(
            *[F.col(f"`{k}`") for k in spec.keys],
            *sequence,
            *[F.col(f"`{c}`") for c in spec.columns],
        )
        return ties.select(F.to_json(record).alias(RECORD), F.lit(TIED).alias(REASON))

    return transform


def build_history(spec: Spec) -> Callable[[DataFrame], DataFrame]:
    """All versions of the keys present in a set of events (``apply_changes`` semantics).

    Input: distinct events (keys, ``_seq``, ``_is_delete``, stored columns,
    ``_event_hash``); ties are resolved first (:func:`resolve_ties`). Output: keys, stored
    columns, ``valid_from``, ``valid_to``, ``is_current`` (and ``is_deleted`` with
    tombstones: a delete that follows an upsert also opens a row with the deleted
    version's values, ``is_deleted`` true, until the key's next upsert).
    """
    keys = [F.col(f"`{k}`") for k in spec.keys]

    def transform(events: DataFrame) -> DataFrame:
        events = events.transform(resolve_ties(spec))
        by_key = Window.partitionBy(*keys).orderBy(SEQ)
        before = by_key.rowsBetween(Window.unboundedPreceding, -1)
        if spec.tombstones:  # only a delete right after an upsert marks a deletion
            after_upsert = F.lag(IS_DELETE).over(by_key) == F.lit(False)
            events = (
                events.withColumn("_marks", ~F.col(IS_DELETE) | after_upsert)
                .where(F.col("_marks"))
                .drop("_marks")
            )
        frame = (
            events.withColumn("_next_seq", F.lead(SEQ).over(by_key))
            .withColumn("_next_is_delete", F.lead(IS_DELETE).over(by_key))
            .withColumn("_next_next_seq", F.lead(SEQ, 2).over(by_key))
            .withColumn(
                "_segment",
                F.coalesce(F.sum(F.col(IS_DELETE).cast("int")).over(before), F.lit(0)),
            )
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
        marks = [F.lit(False).alias(IS_DELETED)] if spec.tombstones else []
        history = versions.select(
            *keys,
            *[F.col(f"_last.`{c}`").alias(c) for c in spec.columns],
            F.col(VALID_FROM),
            F.col(f"_last.{VALID_TO}").alias(VALID_TO),
            F.col(f"_last.{VALID_TO}").isNull().alias(IS_CURRENT),
            *marks,
        )
        if not spec.tombstones:
            return history
        # the deletion mark: the deleted version's values, from the delete to what follows
        tombstones = upserts.where(F.col("_next_is_delete")).select(
            *keys,
            *[F.col(f"`{c}`") for c in spec.columns],
            F.col("_next_seq").alias(VALID_FROM),
            F.col("_next_next_seq").alias(VALID_TO),
            F.col("_next_next_seq").isNull().alias(IS_CURRENT),
            F.lit(True).alias(IS_DELETED),
        )
        return history.unionByName(tombstones)

    return transform


def as_stored(spec: Spec) -> Callable[[DataFrame], DataFrame]:
    """History rows as the target stores them: open rows' ``valid_to`` is ``current_valid_to``."""

    def transform(history: DataFrame) -> DataFrame:
        if spec.current_valid_to is None:
            return history
        end = F.expr(spec.current_valid_to).cast(history.schema[VALID_TO].dataType)
        return history.withColumn(VALID_TO, F.coalesce(F.col(VALID_TO), end))

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
    sequence_by: str | Sequence[str],
    apply_as_deletes: str | Column | None = None,
    except_columns: Sequence[str] | None = None,
    track_history_columns: Sequence[str] | None = None,
    track_history_except_columns: Sequence[str] | None = None,
    ignore_null_updates: bool = False,
    tombstones: bool = False,
    current_valid_to: str | None = None,
    run_id: str | None = None,
    quarantine: str | None = None,
) -> ApplyChangesResult:
    """Apply a batch of change events to the SCD2 table ``target``.

    Args:
        spark: the session.
        source: change events; one row per event.
        target: Delta table path, or a catalog table name (created if absent).
        keys: business key columns.
        sequence_by: orderable column (timestamp or number) giving each key's event order,
            or several: compared in order, each breaking the ties of those before it
            (``valid_from``/``valid_to`` are then structs of them).
        apply_as_deletes: SQL predicate or Column that is true for delete events.
        except_columns: source columns not stored (e.g. the operation column).
        track_history_columns: only these columns open new versions when they change.
        track_history_except_columns: every stored column except these opens versions.
        ignore_null_updates: a NULL in an upsert keeps the key's previous value.
        tombstones: a delete also opens a row marking it (``is_deleted`` true, the deleted
            version's values, open until the key's next upsert), like dbt snapshots'
            ``hard_deletes: new_record``; without it a delete only closes the version.
        current_valid_to: SQL expression (e.g. ``"timestamp'9999-12-31 00:00:00'"``)
            stored as the ``valid_to`` of open rows instead of NULL (one ``sequence_by``
            column only); an event at or after it is quarantined.
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
        sequence_by=(sequence_by,) if isinstance(sequence_by, str) else tuple(sequence_by),
        except_columns=tuple(except_columns or ()),
        track_history_columns=None
        if track_history_columns is None
        else tuple(track_history_columns),
        track_history_except_columns=None
        if track_history_except_columns is None
        else tuple(track_history_except_columns),
        ignore_null_updates=ignore_null_updates,
        tombstones=tombstones,
        current_valid_to=current_valid_to,
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
        return event_log_name(self.target)


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
    events = source.transform(to_events(spec, delete_when))
    delta_io.create_if_absent(
        spark, tables.events, events.drop(RECORD).schema, properties=EVENT_LOG_PROPERTIES
    )
    empty_history = events.drop(RECORD).limit(0).transform(build_history(spec))
    delta_io.create_if_absent(
        spark, tables.target, empty_history.schema, properties=TARGET_PROPERTIES
    )
    target_version, applied = _applied_log_version(spark, tables.target)
    log_before = delta_io.current_version(spark, tables.events)
    event = [*spec.keys, SEQ, EVENT_HASH]  # one log row per distinct event
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
            classified = events.transform(classify_events(spec, prior.select(*event))).cache()
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
                spark, new_events, tables.events, log_at_start, log_before, event
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
            run_id=run_id,
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
    match: list[str],
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
    merged = delta_io.merge_insert(spark, new_events, location, match=match, merge_schema=True)
    return merged.version


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
    run_id: str | None,
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
        keyed = log_events.join(touched, on=list(spec.keys), how="left_semi")
        history = keyed.transform(build_history(spec)).cache()
        cached.append(history)
        current = delta_io.read_table(spark, tables.target).join(
            touched, on=list(spec.keys), how="left_semi"
        )
        changes = history.transform(as_stored(spec)).transform(diff_history(spec, current))
        changes = changes.cache()
        cached.append(changes)
        violations = history.transform(find_violations(spec.keys))
        # one pass: the invariant check and the counts of what the MERGE will do
        ties = keyed.transform(find_ties(spec))
        checked = (
            changes.select("_action", F.col("_closes").cast("int").alias("_c"))
            .unionByName(violations.select(F.lit(VIOLATION).alias("_action"), F.lit(0).alias("_c")))
            .unionByName(ties.select(F.lit(TIE).alias("_action"), F.lit(0).alias("_c")))
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
        ties_quarantined = 0
        if counts.pop(TIE, None):  # before the target's commit: a crash here is redone
            ties_quarantined = delta_io.insert_new(
                spark,
                ties.transform(tie_records(spec)).select(
                    RECORD,
                    REASON,
                    F.lit(run_id).cast("string").alias("_run_id"),
                    F.current_timestamp().alias("_quarantined_at"),
                ),
                tables.quarantine,
                match=[RECORD, REASON],
            ).metric("numTargetRowsInserted")
        if not counts:
            # Nothing differs (the new events collapsed). The target's recorded log
            # version stays behind, so the next call looks at these keys again: cheap,
            # and no empty commit.
            return {
                **unchanged,
                "keys_affected": keys_affected,
                "ties_quarantined": ties_quarantined,
            }
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
            "ties_quarantined": ties_quarantined,
            "operation_metrics": commit.metrics,
        }
    finally:
        stack.close()
        for frame in reversed(cached):  # dependents first: no re-planning of them
            frame.unpersist()
