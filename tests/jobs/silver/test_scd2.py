from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.common import delta_io
from jobs.common.delta_io import last_commit, read_table
from jobs.silver import scd2
from jobs.silver.scd2 import (
    ApplyChangesError,
    ApplyChangesResult,
    HistoryInvariantError,
    apply_changes,
    find_violations,
)
from tests.jobs.silver.scd2_oracle import Event, history, tied

EVENTS = "id STRING, seq INT, op STRING, name STRING, tier STRING, note STRING"
TABLE = (
    "id STRING, name STRING, tier STRING, note STRING, "
    "valid_from INT, valid_to INT, is_current BOOLEAN"
)
Row = tuple[Any, ...]


def apply(spark: SparkSession, target: str, rows: list[Row], **kwargs: Any) -> ApplyChangesResult:
    options: dict[str, Any] = {
        "keys": ["id"],
        "sequence_by": "seq",
        "apply_as_deletes": "op = 'D'",
        "except_columns": ["op"],
    }
    options.update(kwargs)
    return apply_changes(spark, spark.createDataFrame(rows, EVENTS), target, **options)


def table(spark: SparkSession, target: str) -> DataFrame:
    return read_table(spark, target).select(
        "id", "name", "tier", "note", "valid_from", "valid_to", "is_current"
    )


def assert_table(spark: SparkSession, target: str, rows: list[Row]) -> None:
    expected = spark.createDataFrame(rows, TABLE)
    assert_df_equality(table(spark, target), expected, ignore_row_order=True, ignore_nullable=True)


@pytest.fixture
def target(tmp_path: Path) -> str:
    return str(tmp_path / "dim")


def test_apply_changes_versions_follow_sequence_and_identical_upserts_collapse(
    spark: SparkSession, target: str
) -> None:
    result = apply(
        spark,
        target,
        [
            ("a", 1, "U", "Ann", "gold", "x"),
            ("a", 2, "U", "Ann", "gold", "x"),  # identical: collapses
            ("a", 3, "U", "Ann", "silver", "x"),
            ("b", 5, "U", "Bob", "gold", "y"),
        ],
    )
    assert_table(
        spark,
        target,
        [
            ("a", "Ann", "gold", "x", 1, 3, False),
            ("a", "Ann", "silver", "x", 3, None, True),
            ("b", "Bob", "gold", "y", 5, None, True),
        ],
    )
    assert (result.rows_in, result.events_new, result.rows_inserted) == (4, 4, 3)


def test_apply_changes_late_event_splits_interval(spark: SparkSession, target: str) -> None:
    apply(spark, target, [("a", 1, "U", "Ann", "gold", "x"), ("a", 10, "U", "Ann", "plat", "x")])
    late = apply(spark, target, [("a", 5, "U", "Ann", "silver", "x")])
    assert_table(
        spark,
        target,
        [
            ("a", "Ann", "gold", "x", 1, 5, False),
            ("a", "Ann", "silver", "x", 5, 10, False),
            ("a", "Ann", "plat", "x", 10, None, True),
        ],
    )
    assert (late.rows_inserted, late.rows_updated, late.rows_closed) == (1, 1, 0)


def test_apply_changes_late_event_equal_to_next_version_moves_its_start(
    spark: SparkSession, target: str
) -> None:
    apply(spark, target, [("a", 1, "U", "Ann", "gold", "x"), ("a", 10, "U", "Ann", "plat", "x")])
    late = apply(spark, target, [("a", 4, "U", "Ann", "plat", "x")])
    assert_table(
        spark,
        target,
        [("a", "Ann", "gold", "x", 1, 4, False), ("a", "Ann", "plat", "x", 4, None, True)],
    )
    assert (late.rows_inserted, late.rows_deleted, late.rows_updated) == (1, 1, 1)


def test_apply_changes_several_changes_of_one_key_in_one_batch_all_land(
    spark: SparkSession, target: str
) -> None:
    apply(
        spark,
        target,
        [("a", s, "U", "Ann", tier, "x") for s, tier in [(3, "c"), (1, "a"), (2, "b"), (4, "d")]],
    )
    assert_table(
        spark,
        target,
        [
            ("a", "Ann", "a", "x", 1, 2, False),
            ("a", "Ann", "b", "x", 2, 3, False),
            ("a", "Ann", "c", "x", 3, 4, False),
            ("a", "Ann", "d", "x", 4, None, True),
        ],
    )


def test_apply_changes_replay_and_duplicates_change_nothing(
    spark: SparkSession, target: str
) -> None:
    batch = [("a", 1, "U", "Ann", "gold", "x"), ("a", 2, "U", "Ann", "silver", "x")]
    first = apply(spark, target, batch + batch)
    before = last_commit(spark, target)
    replay = apply(spark, target, batch)
    assert first.duplicates_skipped == 2
    assert (replay.events_new, replay.duplicates_skipped, replay.committed) == (0, 2, False)
    assert last_commit(spark, target) == before  # no commit: zero rows, zero files changed
    assert replay.version == before.version


def test_apply_changes_delete_closes_and_later_upsert_reopens(
    spark: SparkSession, target: str
) -> None:
    apply(spark, target, [("a", 1, "U", "Ann", "gold", "x"), ("a", 5, "D", None, None, None)])
    assert_table(spark, target, [("a", "Ann", "gold", "x", 1, 5, False)])
    apply(spark, target, [("a", 3, "U", "Ann", "silver", "x")])  # late, older than the delete
    assert_table(
        spark,
        target,
        [("a", "Ann", "gold", "x", 1, 3, False), ("a", "Ann", "silver", "x", 3, 5, False)],
    )
    apply(spark, target, [("a", 8, "U", "Ann", "silver", "x")])  # reopens, even if equal
    assert_table(
        spark,
        target,
        [
            ("a", "Ann", "gold", "x", 1, 3, False),
            ("a", "Ann", "silver", "x", 3, 5, False),
            ("a", "Ann", "silver", "x", 8, None, True),
        ],
    )


def test_apply_changes_untracked_columns_update_the_open_version_in_place(
    spark: SparkSession, target: str
) -> None:
    apply(spark, target, [("a", 1, "U", "Ann", "gold", "x")], track_history_except_columns=["note"])
    result = apply(
        spark, target, [("a", 2, "U", "Ann", "gold", "y")], track_history_except_columns=["note"]
    )
    assert_table(spark, target, [("a", "Ann", "gold", "y", 1, None, True)])
    assert (result.rows_inserted, result.rows_updated) == (0, 1)
    apply(spark, target, [("a", 3, "U", "Ann", "gold", "z")], track_history_columns=["tier"])
    assert_table(spark, target, [("a", "Ann", "gold", "z", 1, None, True)])


def test_apply_changes_ignore_null_updates_keeps_previous_values(
    spark: SparkSession, target: str
) -> None:
    apply(
        spark,
        target,
        [("a", 1, "U", "Ann", "gold", "x"), ("a", 2, "U", None, "silver", None)],
        ignore_null_updates=True,
    )
    assert_table(
        spark,
        target,
        [("a", "Ann", "gold", "x", 1, 2, False), ("a", "Ann", "silver", "x", 2, None, True)],
    )


def test_apply_changes_quarantines_null_keys_and_sequences(
    spark: SparkSession, target: str
) -> None:
    result = apply(
        spark,
        target,
        [
            ("a", 1, "U", "Ann", "gold", "x"),
            (None, 1, "U", "Nobody", "gold", "x"),
            ("b", None, "U", "Bob", "gold", "x"),
        ],
    )
    assert_table(spark, target, [("a", "Ann", "gold", "x", 1, None, True)])
    quarantine = read_table(spark, f"{target}__quarantine").select("_record", "_reason")
    expected = spark.createDataFrame(
        [
            ('{"seq":1,"op":"U","name":"Nobody","tier":"gold","note":"x"}', "key is NULL"),
            ('{"id":"b","op":"U","name":"Bob","tier":"gold","note":"x"}', "sequence is NULL"),
        ],
        "_record STRING, _reason STRING",
    )
    assert_df_equality(quarantine, expected, ignore_row_order=True, ignore_nullable=True)
    assert (result.rows_in, result.events_new, result.rows_quarantined) == (3, 1, 2)


def batchings(events: list[Row], alone: Row) -> list[list[list[Row]]]:
    """``events`` in one batch, and split so that ``alone`` comes after, then before, the rest."""
    rest = [e for e in events if e != alone]
    return [[events], [rest, [alone]], [[alone], rest]]


def test_apply_changes_delete_wins_over_an_upsert_at_the_same_sequence_in_every_batching(
    spark: SparkSession, tmp_path: Path
) -> None:
    events = [
        ("a", 1, "U", "Ann", "gold", "x"),
        ("a", 2, "U", "Ann", "silver", "x"),
        ("a", 2, "D", None, None, None),
    ]
    for n, batches in enumerate(batchings(events, events[2])):  # the delete after, before
        target = str(tmp_path / f"dim{n}")
        for batch in batches:
            apply(spark, target, batch)
        # the delete at 2 closes gold; the upsert at 2 loses to it and opens nothing
        assert_table(spark, target, [("a", "Ann", "gold", "x", 1, 2, False)])
        assert not delta_io.table_exists(spark, f"{target}__quarantine"), batches


TIE = (
    "tied: another upsert has the same key and sequence (neither is applied; "
    "a further sequence_by column would order them)"
)


def test_apply_changes_tied_upserts_are_quarantined_in_every_batching_and_the_rest_applies(
    spark: SparkSession, tmp_path: Path
) -> None:
    events = [
        ("a", 1, "U", "Ann", "gold", "x"),
        ("a", 2, "U", "Ann", "silver", "x"),
        ("a", 2, "U", "Ann", "bronze", "x"),
        ("a", 3, "U", "Ann", "plat", "x"),
    ]
    expected_quarantine = spark.createDataFrame(
        [
            ('{"id":"a","seq":2,"name":"Ann","tier":"silver","note":"x"}', TIE),
            ('{"id":"a","seq":2,"name":"Ann","tier":"bronze","note":"x"}', TIE),
        ],
        "_record STRING, _reason STRING",
    )
    for n, batches in enumerate(batchings(events, events[2])):
        target = str(tmp_path / f"dim{n}")
        for batch in batches:
            apply(spark, target, batch)
        assert_table(
            spark,
            target,
            [("a", "Ann", "gold", "x", 1, 3, False), ("a", "Ann", "plat", "x", 3, None, True)],
        )
        quarantine = read_table(spark, f"{target}__quarantine").select("_record", "_reason")
        assert_df_equality(
            quarantine, expected_quarantine, ignore_row_order=True, ignore_nullable=True
        )
    # a third upsert at the tie, and a replay of one of the tied ones: still no pick
    later = apply(spark, target, [("a", 2, "U", "Ann", "wood", "x"), events[1]])
    assert_table(
        spark,
        target,
        [("a", "Ann", "gold", "x", 1, 3, False), ("a", "Ann", "plat", "x", 3, None, True)],
    )
    assert (later.events_new, later.duplicates_skipped, later.rows_quarantined) == (1, 1, 0)
    assert later.ties_quarantined == 1


def test_apply_changes_orders_by_several_sequence_columns(
    spark: SparkSession, target: str
) -> None:
    rows = [
        ("a", 1, 2, "U", "Ann", "silver", "x"),
        ("a", 1, 1, "U", "Ann", "gold", "x"),  # same first column: the second orders
        ("a", 2, 0, "U", "Ann", "plat", "x"),
    ]
    events = "id STRING, seq INT, lsn INT, op STRING, name STRING, tier STRING, note STRING"
    apply_changes(
        spark,
        spark.createDataFrame(rows, events),
        target,
        keys=["id"],
        sequence_by=["seq", "lsn"],
        apply_as_deletes="op = 'D'",
        except_columns=["op"],
    )
    assert_df_equality(
        read_table(spark, target),
        spark.createDataFrame(
            [
                ("a", "Ann", "gold", "x", (1, 1), (1, 2), False),
                ("a", "Ann", "silver", "x", (1, 2), (2, 0), False),
                ("a", "Ann", "plat", "x", (2, 0), None, True),
            ],
            "id STRING, name STRING, tier STRING, note STRING, "
            "valid_from STRUCT<seq: INT, lsn: INT>, valid_to STRUCT<seq: INT, lsn: INT>, "
            "is_current BOOLEAN",
        ),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_apply_changes_tombstones_mark_each_deletion_until_the_key_returns(
    spark: SparkSession, tmp_path: Path
) -> None:
    events = [
        ("a", 1, "U", "Ann", "gold", "x"),
        ("a", 3, "D", None, None, None),
        ("a", 5, "U", "Ann", "silver", "x"),
        ("b", 2, "U", "Bob", "gold", "y"),
        ("b", 4, "D", None, None, None),
        ("b", 6, "D", None, None, None),  # already deleted: no second mark
        ("c", 7, "D", None, None, None),  # never seen: nothing to mark
    ]
    expected = spark.createDataFrame(
        [
            ("a", "Ann", "gold", "x", 1, 3, False, False),
            ("a", "Ann", "gold", "x", 3, 5, False, True),
            ("a", "Ann", "silver", "x", 5, None, True, False),
            ("b", "Bob", "gold", "y", 2, 4, False, False),
            ("b", "Bob", "gold", "y", 4, None, True, True),
        ],
        f"{TABLE}, is_deleted BOOLEAN",
    )
    for n, batches in enumerate([[events], [events[2:], events[:2]]]):
        target = str(tmp_path / f"dim{n}")
        for batch in batches:
            apply(spark, target, batch, tombstones=True)
        assert_df_equality(
            read_table(spark, target).select(*expected.columns),
            expected,
            ignore_row_order=True,
            ignore_nullable=True,
        )


def test_apply_changes_stores_a_configured_end_for_open_rows(
    spark: SparkSession, target: str
) -> None:
    end = {"current_valid_to": "9999"}
    first = [("a", 1, "U", "Ann", "gold", "x"), ("a", 3, "U", "Ann", "plat", "x")]
    apply(spark, target, first, **end)
    late = apply(
        spark,
        target,
        [("a", 2, "U", "Ann", "silver", "x"), ("a", 9999, "U", "Ann", "wood", "x")],
        **end,
    )
    assert_table(
        spark,
        target,
        [
            ("a", "Ann", "gold", "x", 1, 2, False),
            ("a", "Ann", "silver", "x", 2, 3, False),
            ("a", "Ann", "plat", "x", 3, 9999, True),
        ],
    )
    assert (late.events_new, late.rows_quarantined) == (1, 1)
    assert_df_equality(
        read_table(spark, f"{target}__quarantine").select("_record", "_reason"),
        spark.createDataFrame(
            [
                (
                    '{"id":"a","seq":9999,"op":"U","name":"Ann","tier":"wood","note":"x"}',
                    "sequence is not before current_valid_to",
                )
            ],
            "_record STRING, _reason STRING",
        ),
        ignore_nullable=True,
    )
    with pytest.raises(ApplyChangesError, match="current_valid_to needs sequence_by to be one"):
        apply(spark, target, [], sequence_by=["seq", "name"], **end)


def test_apply_changes_added_source_column_evolves_the_table(
    spark: SparkSession, target: str
) -> None:
    apply(spark, target, [("a", 1, "U", "Ann", "gold", "x")])
    wider = spark.createDataFrame(
        [("a", 2, "U", "Ann", "gold", "x", "FR")], f"{EVENTS}, country STRING"
    )
    apply_changes(
        spark,
        wider,
        target,
        keys=["id"],
        sequence_by="seq",
        apply_as_deletes="op = 'D'",
        except_columns=["op"],
    )
    assert_df_equality(
        read_table(spark, target).select(
            "id", "name", "tier", "note", "country", "valid_from", "valid_to", "is_current"
        ),
        spark.createDataFrame(
            [
                ("a", "Ann", "gold", "x", None, 1, 2, False),
                ("a", "Ann", "gold", "x", "FR", 2, None, True),
            ],
            "id STRING, name STRING, tier STRING, note STRING, country STRING, "
            "valid_from INT, valid_to INT, is_current BOOLEAN",
        ),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_apply_changes_rejects_unknown_columns(spark: SparkSession, target: str) -> None:
    with pytest.raises(ApplyChangesError, match=r"sequence_by column\(s\) \['ts'\] not in"):
        apply(spark, target, [("a", 1, "U", "Ann", "gold", "x")], sequence_by="ts")


def test_validator_names_each_broken_invariant(spark: SparkSession) -> None:
    broken = spark.createDataFrame(
        [
            ("a", "n", "t", "x", 1, None, True),
            ("a", "n", "t", "x", 2, None, True),
            ("b", "n", "t", "x", 5, 5, False),
            ("c", "n", "t", "x", 1, 6, False),
            ("c", "n", "t", "x", 4, None, True),
        ],
        TABLE,
    )
    found = {
        (r.id, r.valid_from): r._reason for r in broken.transform(find_violations(["id"])).collect()
    }
    assert found == {
        ("a", 1): "more than one current row for the key; interval overlaps the next version",
        ("a", 2): "more than one current row for the key",
        ("b", 5): "valid_from is not before valid_to",
        ("c", 1): "interval overlaps the next version",
    }


def test_apply_changes_fails_before_writing_when_history_breaks_an_invariant(
    spark: SparkSession, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply(spark, target, [("a", 1, "U", "Ann", "gold", "x")])
    before = last_commit(spark, target)

    def overlapping(spec: scd2.Spec) -> Callable[[DataFrame], DataFrame]:
        right = real_build_history(spec)
        return lambda events: right(events).withColumn("is_current", F.lit(True))

    real_build_history = scd2.build_history
    monkeypatch.setattr(scd2, "build_history", overlapping)
    with pytest.raises(HistoryInvariantError, match="more than one current row for the key"):
        apply(spark, target, [("a", 2, "U", "Ann", "silver", "x")])
    assert last_commit(spark, target) == before


# ------------------------------------------------------------------ property test

KEYS = ["k1", "k2", "k3"]
event_strategy = st.builds(
    lambda key, seq, delete, name, tier, note: Event(key, seq, delete, (name, tier, note)),
    st.sampled_from(KEYS),
    st.integers(min_value=1, max_value=12),  # few: ties of (key, sequence) are common
    st.sampled_from([False, False, False, True]),
    st.sampled_from(["n1", "n2"]),
    st.sampled_from(["t1", "t2", None]),
    st.sampled_from(["a", "b"]),
)


def as_rows(events: list[Event]) -> list[Row]:
    return [(e.key, e.seq, "D" if e.delete else "U", *e.values) for e in events]


@pytest.mark.slow
@pytest.mark.weight(12)  # at 60 examples (make test-extended)
@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@pytest.mark.property  # plain pytest: 4 examples; make test-extended: 60 (HYPOTHESIS_PROFILE)
@given(
    events=st.lists(event_strategy, min_size=1, max_size=25, unique_by=lambda e: e),
    cuts=st.lists(st.integers(min_value=0, max_value=25), max_size=3),
    order=st.randoms(use_true_random=False),
    duplicates=st.integers(min_value=0, max_value=3),
    ignore_nulls=st.booleans(),
)
def test_apply_changes_is_batch_invariant_and_matches_the_oracle(
    spark: SparkSession,
    tmp_path_factory: pytest.TempPathFactory,
    events: list[Event],
    cuts: list[int],
    order: random.Random,
    duplicates: int,
    ignore_nulls: bool,
) -> None:
    target = str(tmp_path_factory.mktemp("prop") / "dim")
    shuffled = [*events, *events[:duplicates]]
    order.shuffle(shuffled)
    bounds = sorted({0, len(shuffled), *[min(c, len(shuffled)) for c in cuts]})
    batches = [shuffled[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    order.shuffle(batches)
    for batch in batches:
        apply(
            spark,
            target,
            as_rows(batch),
            track_history_except_columns=["note"],
            ignore_null_updates=ignore_nulls,
        )
    expected = history(events, tracked=[0, 1], ignore_null_updates=ignore_nulls)
    assert_table(spark, target, sorted(expected, key=repr))
    quarantined = (
        read_table(spark, f"{target}__quarantine").where(F.col("_reason") == TIE)
        if delta_io.table_exists(spark, f"{target}__quarantine")
        else spark.createDataFrame([], "_record STRING")
    )
    record = "id STRING, seq INT, name STRING, tier STRING, note STRING"
    assert_df_equality(
        quarantined.select(F.from_json("_record", record).alias("r")).select("r.*"),
        spark.createDataFrame([(e.key, e.seq, *e.values) for e in tied(events)], record),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_apply_changes_merge_touches_only_the_files_holding_changed_keys(
    spark: SparkSession, target: str
) -> None:
    apply(spark, target, [(k, 1, "U", "Ann", "gold", "x") for k in "abcdef"])

    def files_of(keys: str) -> set[str]:
        rows = read_table(spark, target).where(F.col("id").isin(*keys))
        return {r[0] for r in rows.select(F.input_file_name()).collect()}

    holding_b, all_files = files_of("b"), files_of("abcdef")
    change = apply(spark, target, [("b", 2, "U", "Ann", "silver", "x")])
    metrics = {k: int(v) for k, v in change.operation_metrics.items() if k.startswith("numTarget")}
    # Only b's file is touched, and with a deletion vector: its other rows are not
    # copied into a rewritten file, every other file stays as it was.
    assert (metrics["numTargetDeletionVectorsAdded"], metrics["numTargetFilesRemoved"]) == (
        len(holding_b),
        0,
    ), sorted(metrics.items())
    assert metrics["numTargetRowsCopied"] == 0
    assert files_of("acdef") == all_files  # the rows of other keys did not move
    assert metrics["numTargetFilesAdded"] == 1  # b's closed and new versions
    assert (metrics["numTargetRowsUpdated"], metrics["numTargetRowsInserted"]) == (1, 1)
