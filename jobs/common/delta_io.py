"""Delta reads, MERGEs and commit metadata: the only place jobs touch Delta tables.

Every commit made here carries a token of its own in its ``userMetadata``
(``{"lakehouse.commit": <uuid>}``, beside any progress the write records), and the
:class:`CommitInfo` a write returns is the commit with that token. Reading "the newest
commit" instead would describe another driver's write whenever one commits the same
table at the same moment (two drivers on S3 through the DynamoDB log store).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobs.common.errors import TableChangedError, TableNotFoundError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = logging.getLogger(__name__)

# Delta's commit-conflict exceptions (Java class names, also in the Python message).
_CONFLICTS = (
    "ConcurrentAppendException",
    "ConcurrentDeleteReadException",
    "ConcurrentDeleteDeleteException",
    "ConcurrentTransactionException",
    "ConcurrentWriteException",
    "MetadataChangedException",
    "ProtocolChangedException",
    "DELTA_CONCURRENT_",
    TableChangedError.__name__,
)


@dataclass(frozen=True)
class CommitInfo:
    """One Delta commit: its version, operation and operation metrics."""

    version: int
    operation: str
    metrics: dict[str, str]

    def metric(self, name: str) -> int:
        """An operation metric as an int (0 when absent)."""
        return int(self.metrics.get(name, 0))

    @property
    def rows_written(self) -> int:
        """Rows this commit added or changed (MERGE: inserted + updated + deleted)."""
        if self.operation == "MERGE":
            return sum(
                self.metric(f"numTargetRows{kind}") for kind in ("Inserted", "Updated", "Deleted")
            )
        return self.metric("numOutputRows")


def table_exists(spark: SparkSession, location: str) -> bool:
    """True when ``location`` holds a Delta table."""
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, location))


def read_table(spark: SparkSession, location: str, version: int | None = None) -> DataFrame:
    """The current snapshot of the Delta table at ``location`` (or its ``version``)."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(location)


def read_inserts_since(
    spark: SparkSession, location: str, start_version: int, end_version: int
) -> DataFrame:
    """Rows inserted by versions ``start_version..end_version`` (Change Data Feed)."""
    return (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", max(start_version, 0))
        .option("endingVersion", end_version)
        .load(location)
        .where("_change_type = 'insert'")
        .drop("_change_type", "_commit_version", "_commit_timestamp")
    )


def read_changes_since(
    spark: SparkSession, location: str, after_version: int, end_version: int
) -> DataFrame:
    """Every change of versions ``after_version+1 .. end_version`` (Change Data Feed).

    Inserts, update pre- and post-images, deletes; empty when there are none.
    """
    if after_version >= end_version:
        return read_table(spark, location).limit(0)
    return (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", after_version + 1)
        .option("endingVersion", end_version)
        .load(location)
    )


def optimize(spark: SparkSession, location: str, zorder_by: Sequence[str] = ()) -> dict[str, int]:
    """OPTIMIZE the table (Z-ORDER BY ``zorder_by`` when given): files removed and added."""
    from delta.tables import DeltaTable

    optimizer = DeltaTable.forPath(spark, location).optimize()
    result = optimizer.executeZOrderBy(*zorder_by) if zorder_by else optimizer.executeCompaction()
    metrics = result.select("metrics.*").first()
    return {
        "files_removed": int(metrics["numFilesRemoved"]) if metrics else 0,
        "files_added": int(metrics["numFilesAdded"]) if metrics else 0,
    }


def vacuum(spark: SparkSession, location: str, retention_hours: int) -> None:
    """VACUUM files unreferenced for longer than ``retention_hours``."""
    from delta.tables import DeltaTable

    DeltaTable.forPath(spark, location).vacuum(retention_hours / 24)


def commit_time(spark: SparkSession, location: str, version: int) -> Any:
    """When ``version`` was committed (a naive UTC datetime), or None."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    row = (
        DeltaTable.forPath(spark, location)
        .history()
        .where(F.col("version") == version)
        .select("timestamp")
        .first()
    )
    return None if row is None else row["timestamp"]


def resolve_location(spark: SparkSession, target: str) -> str:
    """The storage location of ``target``: a path as is, a catalog table name resolved."""
    if "/" in target or ":" in target:
        return target
    if not spark.catalog.tableExists(target):
        raise ValueError(
            f"table {target} is not in the catalog: pass a path, or register the table"
        )
    location = spark.sql(f"DESCRIBE DETAIL {target}").select("location").collect()[0][0]
    return str(location)


def create_if_absent(
    spark: SparkSession,
    location: str,
    schema: StructType,
    *,
    properties: dict[str, str] | None = None,
) -> bool:
    """Create an empty Delta table with ``schema`` at ``location`` unless one is there."""
    from delta.tables import DeltaTable

    if table_exists(spark, location):
        return False
    builder = DeltaTable.createIfNotExists(spark).location(location).addColumns(schema)
    for key, value in (properties or {}).items():
        builder = builder.property(key, value)
    builder.execute()
    return True


def describe_error(exc: BaseException) -> str:
    """``<class>: <first line>`` of an error, the JVM's own for one raised in the JVM.

    PySpark maps few JVM exceptions to Python ones: a Delta conflict often arrives as a
    ``Py4JJavaError`` whose own message says only which call failed.
    """
    java = getattr(exc, "java_exception", None)
    if java is not None:
        name, text = str(java.getClass().getSimpleName()), str(java.getMessage() or "")
    else:
        name, text = type(exc).__name__, str(exc)
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{name}: {first[:300]}" if first else name


def is_write_conflict(exc: BaseException) -> bool:
    """True for Delta's optimistic-concurrency conflicts (safe to retry an idempotent write)."""
    text = f"{type(exc).__name__}: {exc}"
    return any(name in text for name in _CONFLICTS)


# The commit metadata of a MERGE is a session setting: one writer at a time per process
# sets it (an append passes its own as a write option instead).
_METADATA_LOCK = threading.Lock()
COMMIT_KEY = "lakehouse.commit"
# How far back versioned_user_metadata looks (the progress a writer records is in its
# own latest commit; other writers' commits may come after it).
METADATA_SCAN = 50


def _tagged(metadata: dict[str, Any] | str | None) -> tuple[str, str]:
    """A new commit token and ``metadata`` (a dict or a JSON object) as JSON carrying it."""
    doc: dict[str, Any] = {}
    if isinstance(metadata, str):
        parsed = json.loads(metadata) if metadata.strip() else {}
        if not isinstance(parsed, dict):
            raise ValueError(f"commit metadata must be a JSON object, found {metadata!r}")
        doc = parsed
    elif metadata:
        doc = dict(metadata)
    token = uuid.uuid4().hex
    return token, json.dumps({**doc, COMMIT_KEY: token}, sort_keys=True)


@contextmanager
def commit_metadata(spark: SparkSession, metadata: dict[str, Any] | None) -> Iterator[str]:
    """Tag the commits made inside the block with ``metadata`` and a new commit token.

    Yields the token: :func:`own_commit` finds the commit by it.
    """
    key = "spark.databricks.delta.commitInfo.userMetadata"
    token, text = _tagged(metadata)
    with _METADATA_LOCK:
        spark.conf.set(key, text)
        try:
            yield token
        finally:
            spark.conf.unset(key)


def own_commit(
    spark: SparkSession, location: str, token: str, *, after: int = -1
) -> CommitInfo | None:
    """The commit of ``location`` whose metadata carries ``token``; None if there is none.

    Reads the commits newest first, on past other writers' commits, down to version
    ``after`` + 1 (``after``: the version before the write; -1: all).
    """
    mine: CommitInfo | None = None
    for commit, text in _commits(spark, location, stop=after + 1):
        if _token_of(text) == token:
            # The oldest with the token: a commit made by another thread of this session
            # while the token was the session's metadata (a table created meanwhile)
            # comes later.
            mine = commit
        elif mine is not None:
            break
    return mine


def _metadata_of(text: str | None) -> dict[str, Any]:
    """A commit's userMetadata as a JSON object ({} when absent or not an object)."""
    try:
        doc = json.loads(text) if text else None
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _token_of(text: str | None) -> str | None:
    if not text or COMMIT_KEY not in text:
        return None
    token = _metadata_of(text).get(COMMIT_KEY)
    return None if token is None else str(token)


def _committed(spark: SparkSession, location: str, token: str, after: int = -1) -> CommitInfo:
    """The write's own commit, or operation ``NONE`` at the current version (no commit)."""
    commit = own_commit(spark, location, token, after=after)
    return (
        commit if commit is not None else CommitInfo(current_version(spark, location), "NONE", {})
    )


def last_user_metadata(spark: SparkSession, location: str, key: str) -> Any:
    """``key`` of the newest commit whose JSON userMetadata has it, else None."""
    return versioned_user_metadata(spark, location, key)[1]


def versioned_user_metadata(
    spark: SparkSession, location: str, key: str, *, depth: int = METADATA_SCAN
) -> tuple[int, Any]:
    """The table's latest version and :func:`last_user_metadata` of ``key``, in one read.

    Looks at the newest ``depth`` commits (1: ``key`` only if the latest commit has it).
    """
    latest = current_version(spark, location)
    for _, text in _commits(spark, location, stop=latest - depth + 1, newest=latest):
        found = _metadata_of(text)
        if key in found:
            return latest, found[key]
    return latest, None


def version_with_metadata(spark: SparkSession, location: str, key: str, value: Any) -> int | None:
    """The newest version whose commit's JSON userMetadata has ``key`` equal to ``value``.

    Walks the whole log, newest first, reading commit files on the driver (no Spark
    job); None when no commit has it.
    """
    for commit, text in _commits(spark, location, stop=0):
        if _metadata_of(text).get(key) == value:
            return commit.version
    return None


def insert_new(
    spark: SparkSession,
    rows: DataFrame,
    location: str,
    *,
    match: Sequence[str],
    merge_schema: bool = False,
    properties: dict[str, str] | None = None,
) -> CommitInfo:
    """Insert the rows whose ``match`` columns are not yet in the table (created if absent).

    A MERGE rather than an append, so two concurrent writers conflict instead of both
    inserting the same rows.
    """
    create_if_absent(spark, location, rows.schema, properties=properties)
    stored = read_table(spark, location).select(*match)
    fresh = rows.join(stored, on=[rows[c].eqNullSafe(stored[c]) for c in match], how="left_anti")
    if fresh.isEmpty():
        return CommitInfo(current_version(spark, location), "NONE", {})
    return merge_insert(spark, fresh, location, match=match, merge_schema=merge_schema)


def merge_insert(
    spark: SparkSession,
    rows: DataFrame,
    location: str,
    *,
    match: Sequence[str],
    merge_schema: bool = False,
) -> CommitInfo:
    """MERGE-insert ``rows`` whose ``match`` columns the table lacks; one commit, always.

    For rows already known to be new (checked against a snapshot by the caller): no
    second look at the table, and a concurrent insert of the same rows still conflicts.
    """
    from delta.tables import DeltaTable

    condition = " AND ".join(f"t.`{c}` <=> s.`{c}`" for c in match)
    builder = DeltaTable.forPath(spark, location).alias("t").merge(rows.alias("s"), condition)
    if merge_schema:
        builder = builder.withSchemaEvolution()
    with commit_metadata(spark, None) as token:
        builder.whenNotMatchedInsertAll().execute()
    return _committed(spark, location, token)


def append_unless_changed(
    spark: SparkSession, rows: DataFrame, location: str, *, read_version: int
) -> CommitInfo:
    """Append ``rows``, computed from the table as of ``read_version``, as one commit.

    A MERGE's guarantee at an append's cost: the commit records a read of the whole
    table, so if any other writer committed after ``read_version`` (before this write
    began, or while it ran) the append fails with a write conflict
    (``TableChangedError`` or Delta's ``ConcurrentAppendException``) instead of adding
    rows the writer did not check against, and the caller retries. The rows' columns
    must be the table's (no schema change: use :func:`merge_insert`).
    """
    jvm = _jvm(spark)
    delta = jvm.org.apache.spark.sql.delta
    none = jvm.scala.Option.empty()
    txn = _transaction_from(spark, location, read_version, "the rows were computed from")
    actions = txn.writeFiles(rows._jdf)
    _, text = _tagged(None)
    operation = getattr(delta, "DeltaOperations$Write")(
        jvm.org.apache.spark.sql.SaveMode.Append, none, none, jvm.scala.Some(text),
        none, none, none,
    )  # fmt: skip
    version = int(txn.commit(actions, operation))
    return next(_commits(spark, location, stop=version, newest=version))[0]


def _transaction_from(spark: SparkSession, location: str, read_version: int, what: str) -> Any:
    """A Delta transaction on ``location`` that read the whole table at ``read_version``.

    Refused with ``TableChangedError`` when the table is past that version; any commit
    after it that adds data makes this transaction's commit fail as a conflict.
    """
    txn = _delta_log(spark, location).startTransaction()
    if txn.readVersion() != read_version:
        raise TableChangedError(
            f"{location} is at version {txn.readVersion()}, {what} version {read_version}: "
            "run it again"
        )
    txn.readWholeTable()
    return txn


def commit_unchanged(
    spark: SparkSession, location: str, user_metadata: dict[str, Any], *, read_version: int
) -> CommitInfo:
    """A commit that changes no data and records ``user_metadata`` (a job's progress).

    For a run whose inputs moved but whose rows all stayed as stored: its progress
    must be in the log like a write's. Refused with ``TableChangedError`` when the
    table moved past ``read_version`` (the run decided from that version); the commit
    records a read of the whole table, so a writer committing meanwhile conflicts.
    """
    jvm = _jvm(spark)
    delta = jvm.org.apache.spark.sql.delta
    txn = _transaction_from(spark, location, read_version, "the run decided from")
    nothing = getattr(getattr(jvm.scala.collection.immutable, "Nil$"), "MODULE$")
    with commit_metadata(spark, user_metadata) as token:
        txn.commit(nothing, getattr(getattr(delta, "DeltaOperations$ManualUpdate$"), "MODULE$"))
    return _committed(spark, location, token, after=read_version)


def replace_table(
    spark: SparkSession,
    rows: DataFrame,
    location: str,
    *,
    user_metadata: dict[str, Any] | None = None,
) -> CommitInfo:
    """Replace the table's rows and schema with ``rows`` in one commit.

    Older versions and the table's properties stay.
    """
    writer = rows.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
    with commit_metadata(spark, user_metadata) as token:
        writer.save(location)
    return _committed(spark, location, token)


def register_view(spark: SparkSession, database: str, name: str, query: str) -> None:
    """(Re)define the view ``database.name`` as ``query`` in the session catalog."""
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    spark.sql(f"CREATE OR REPLACE VIEW `{database}`.`{name}` AS {query}")


def merge_actions(
    spark: SparkSession,
    changes: DataFrame,
    location: str,
    *,
    match: Sequence[str],
    columns: Sequence[str],
    user_metadata: dict[str, Any] | None = None,
) -> CommitInfo:
    """Apply rows tagged ``_action`` = insert / update / delete, matched on ``match``."""
    from delta.tables import DeltaTable

    condition = " AND ".join(f"t.`{c}` <=> s.`{c}`" for c in match)
    values: dict[str, str | Column] = {f"`{c}`": f"s.`{c}`" for c in columns}
    with commit_metadata(spark, user_metadata) as token:
        (
            DeltaTable.forPath(spark, location)
            .alias("t")
            .merge(changes.alias("s"), condition)
            .withSchemaEvolution()
            .whenMatchedDelete(condition="s._action = 'delete'")
            .whenMatchedUpdate(condition="s._action = 'update'", set=values)
            .whenNotMatchedInsert(condition="s._action = 'insert'", values=values)
            .execute()
        )
    return _committed(spark, location, token)


def last_commit(spark: SparkSession, location: str) -> CommitInfo:
    """The latest commit of the table at ``location``, whoever made it.

    Not what a write made: another driver may have committed since; a write's own
    commit comes from :func:`own_commit`.
    """
    return next(_commits(spark, location, stop=0))[0]  # read lazily: the newest only


def rows_added(spark: SparkSession, location: str, first: int, last: int) -> int:
    """Rows the commits ``first..last`` added, by their operation metrics (append-only tables).

    Read from the Delta log, not the data, so it is an independent count of what a read of
    those versions should return.
    """
    total = 0
    for commit, _ in _commits(spark, location, stop=first, newest=last):
        key = "numTargetRowsInserted" if commit.operation == "MERGE" else "numOutputRows"
        total += commit.metric(key)
    return total


def current_version(spark: SparkSession, location: str) -> int:
    """Latest version of the table at ``location``.

    Raises:
        TableNotFoundError: no Delta table is there.
    """
    none = _jvm(spark).scala.Option.empty()
    version = int(_delta_log(spark, location).update(False, none, none).version())
    if version < 0:
        raise TableNotFoundError(f"no Delta table at {location}")
    return version


def _jvm(spark: SparkSession) -> Any:
    jvm = spark._jvm
    assert jvm is not None
    return jvm


def _delta_log(spark: SparkSession, location: str) -> Any:
    return _jvm(spark).org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, location)


def _commits(
    spark: SparkSession, location: str, *, stop: int, newest: int | None = None
) -> Iterator[tuple[CommitInfo, str | None]]:
    """Commits ``newest`` (default: the latest) down to ``stop``, each with its userMetadata.

    Each commit file is read on the driver through the table's log store (the DynamoDB
    one on S3), one at a time and only as far as the caller looks: no Spark job, where
    ``DeltaTable.history`` runs two and reads every commit it is asked for. A commit
    file that log clean-up removed ends the walk.
    """
    jvm = _jvm(spark)
    delta = jvm.org.apache.spark.sql.delta
    as_java = jvm.scala.jdk.javaapi.CollectionConverters.asJava
    log = _delta_log(spark, location)
    if newest is None:
        newest = current_version(spark, location)
    store, conf = log.store(), log.newDeltaHadoopConf()
    for version in range(newest, max(stop, 0) - 1, -1):
        path = delta.util.FileNames.unsafeDeltaFile(log.logPath(), version)
        try:
            found = delta.DeltaHistoryManager.getCommitInfoOpt(store, path, conf)
        except Exception as exc:  # py4j wraps the JVM's FileNotFoundException
            if "FileNotFoundException" in f"{exc}":
                return
            raise
        if not found.isDefined():
            continue
        info = found.get()
        metrics, metadata = info.operationMetrics(), info.userMetadata()
        yield (
            CommitInfo(
                version,
                str(info.operation()),
                dict(as_java(metrics.get())) if metrics.isDefined() else {},
            ),
            str(metadata.get()) if metadata.isDefined() else None,
        )


def merge_upsert(
    spark: SparkSession, source: DataFrame, location: str, keys: list[str]
) -> CommitInfo:
    """Upsert ``source`` into the table at ``location`` by ``keys`` (created if absent).

    Only rows that are new or differ from the stored row take part in the MERGE, so a
    replay rewrites no file; when nothing differs no commit is made and the returned
    :class:`CommitInfo` has operation ``NONE`` at the current version.
    """
    from delta.tables import DeltaTable

    if not table_exists(spark, location):
        token, text = _tagged(None)
        source.write.format("delta").mode("errorifexists").option("userMetadata", text).save(
            location
        )
        return _committed(spark, location, token)
    target = read_table(spark, location)
    same_row = [source[c].eqNullSafe(target[c]) for c in source.columns]
    changes = source.join(target, on=same_row, how="left_anti")
    if changes.isEmpty():
        return CommitInfo(current_version(spark, location), "NONE", {})
    condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    with commit_metadata(spark, None) as token:
        (
            DeltaTable.forPath(spark, location)
            .alias("t")
            .merge(changes.alias("s"), condition)
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
        )
    return _committed(spark, location, token)


def append_batch(
    spark: SparkSession,
    frame: DataFrame,
    location: str,
    *,
    app_id: str,
    batch_id: int,
    user_metadata: str,
    partition_by: list[str] | None = None,
    merge_schema: bool = False,
    properties: dict[str, str] | None = None,
) -> CommitInfo:
    """Append ``frame`` as batch ``batch_id`` of writer ``app_id``, idempotently.

    Delta records (``app_id``, ``batch_id``) in the same commit as the data and skips a
    later append with a ``batch_id`` not greater than the recorded one; such a skipped
    replay returns operation ``NONE``. ``user_metadata`` is a JSON object (the batch's
    progress); ``properties`` are table properties applied when the append creates the
    table.
    """
    before = current_version(spark, location) if table_exists(spark, location) else -1
    token, text = _tagged(user_metadata)
    writer = (
        frame.write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", str(batch_id))
        .option("userMetadata", text)
        .option("mergeSchema", str(merge_schema).lower())
    )
    if before < 0:
        for key, value in (properties or {}).items():
            writer = writer.option(key, value)
        if partition_by:
            writer = writer.partitionBy(*partition_by)
    writer.save(location)
    commit = own_commit(spark, location, token, after=before)
    return commit if commit is not None else CommitInfo(before, "NONE", {})


def register_table(spark: SparkSession, database: str, name: str, location: str) -> None:
    """Register the Delta table at ``location`` as ``database.name`` in the session catalog.

    A name registered at another location (an earlier home in a long-lived session) is
    re-pointed; dropping an external table leaves its files alone.
    """
    qualified = f"`{database}`.`{name}`"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    if spark.catalog.tableExists(f"{database}.{name}"):
        detail = spark.sql(f"DESCRIBE DETAIL {qualified}").select("location").collect()[0][0]
        if detail.rstrip("/").removeprefix("file:") == location.rstrip("/").removeprefix("file:"):
            return
        spark.sql(f"DROP TABLE {qualified}")
    spark.sql(f"CREATE TABLE {qualified} USING DELTA LOCATION '{location}'")


TRUNCATED_THROUGH = "lakehouse.truncatedThrough"  # table property of a `latest` table


def table_property(spark: SparkSession, location: str, name: str) -> str | None:
    """The table property ``name`` of the Delta table at ``location`` (None if unset)."""
    from delta.tables import DeltaTable

    detail = DeltaTable.forPath(spark, location).detail().select("properties").first()
    return None if detail is None else (detail[0] or {}).get(name)


def _sql_text(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _without_truncated(
    spark: SparkSession,
    location: str,
    rows: DataFrame,
    order: Column,
    kind: str,
    truncate_when: Column | None,
) -> tuple[DataFrame, str | None, bool]:
    """``rows`` less TRUNCATE events and rows not newer than the table's truncation mark.

    Returns the rows, the mark (``lakehouse.truncatedThrough``, raised to this batch's
    newest TRUNCATE and stored before anything is deleted) and whether the batch held a
    TRUNCATE.
    """
    from pyspark.sql import functions as F

    through = table_property(spark, location, TRUNCATED_THROUGH)
    truncated = False
    if truncate_when is not None:
        flagged = rows.withColumn("_truncate", F.coalesce(truncate_when, F.lit(False)))
        newest = F.max(order)
        found = (
            flagged.where("_truncate")
            .select(
                newest.isNotNull(),
                F.greatest(newest, F.lit(through).cast(kind)).cast("string"),
            )
            .first()
        )
        rows = flagged.where(~F.col("_truncate")).drop("_truncate")
        if found is not None and found[0]:
            truncated = True
            if found[1] != through:
                through = found[1]
                spark.sql(
                    f"ALTER TABLE delta.`{location}` SET TBLPROPERTIES "
                    f"('{TRUNCATED_THROUGH}' = {_sql_text(found[1])})"
                )
    if through is not None:
        rows = rows.where(order > F.lit(through).cast(kind))
    return rows, through, truncated


def merge_latest(
    spark: SparkSession,
    rows: DataFrame,
    location: str,
    *,
    keys: Sequence[str],
    order_by: str | Sequence[str],
    truncate_when: Column | None = None,
    properties: dict[str, str] | None = None,
) -> CommitInfo:
    """Keep one row per key in the table: the newest by ``order_by`` (created if absent).

    ``order_by``: one column, or several compared in order. Within ``rows`` the newest per
    key wins (ties: the greatest row, so the pick does not depend on arrival order); a
    row not newer than the stored one is ignored, so late and replayed rows change
    nothing. No commit (operation ``NONE``) when nothing is newer.

    ``truncate_when`` (one ``order_by`` column only): rows for which it holds are TRUNCATE
    events, not rows. The newest one's order value T is kept as the table property
    ``lakehouse.truncatedThrough``; every stored row not newer than T is deleted and
    every row not newer than T, in this batch or a later one, is ignored. The property
    is set before the MERGE that deletes, and a rerun of the same rows deletes again, so
    a crash between the two commits is completed by the rerun.
    """
    from delta.tables import DeltaTable
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    columns = [order_by] if isinstance(order_by, str) else list(order_by)
    if truncate_when is not None and len(columns) != 1:
        raise ValueError("truncate_when needs order_by to be one column")
    data = rows.columns
    create_if_absent(spark, location, rows.schema, properties=properties)
    order = F.col(f"`{columns[0]}`") if len(columns) == 1 else F.struct(*columns)

    def order_sql(alias: str) -> str:
        named = [f"{alias}.`{c}`" for c in columns]
        return named[0] if len(named) == 1 else f"struct({', '.join(named)})"

    kind = rows.schema[columns[0]].dataType.simpleString()
    rows, through, truncated = _without_truncated(spark, location, rows, order, kind, truncate_when)
    newest_first = Window.partitionBy(*[F.col(f"`{k}`") for k in keys]).orderBy(
        order.desc_nulls_last(), F.to_json(F.struct(*data)).desc()
    )
    latest = rows.withColumn("_rank", F.row_number().over(newest_first)).where("_rank = 1")
    stored = read_table(spark, location).select(*keys, order.alias("_stored_order"))
    newer = (
        latest.join(stored, on=list(keys), how="left")
        .where(F.col("_stored_order").isNull() | (order > F.col("_stored_order")))
        .select(*data)
    )
    if not truncated and newer.isEmpty():
        return CommitInfo(current_version(spark, location), "NONE", {})
    condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    with commit_metadata(spark, None) as token:
        merge = (
            DeltaTable.forPath(spark, location)
            .alias("t")
            .merge(newer.alias("s"), condition)
            .withSchemaEvolution()
            .whenMatchedUpdateAll(condition=f"{order_sql('s')} > {order_sql('t')}")
            .whenNotMatchedInsertAll()
        )
        if truncated and through is not None:
            merge = merge.whenNotMatchedBySourceDelete(
                condition=f"{order_sql('t')} <= CAST({_sql_text(through)} AS {kind})"
            )
        merge.execute()
    return _committed(spark, location, token)


def read_progress(spark: SparkSession, location: str, name: str) -> int | None:
    """The position last recorded for ``name`` in the progress table at ``location``."""
    if not table_exists(spark, location):
        return None
    rows = read_table(spark, location).where(f"name = '{name}'").select("position").collect()
    return int(rows[0][0]) if rows else None


def write_progress(spark: SparkSession, location: str, name: str, position: int) -> None:
    """Record ``position`` for ``name`` (a MERGE: one row per name).

    Every Silver job records its progress in one table: jobs of other tables running at
    the same time (Airflow runs them in parallel) make its MERGE conflict, which is
    retried on the new snapshot (the write is idempotent).
    """
    row = spark.createDataFrame([(name, position)], "name STRING, position BIGINT")
    retry_on_conflict(lambda: merge_upsert(spark, row, location, ["name"]), location)


def retry_on_conflict(
    write: Callable[[], CommitInfo], location: str, attempts: int = 6
) -> CommitInfo:
    """Run the idempotent ``write``; on a Delta write conflict wait (jittered) and rerun it.

    Raises:
        Exception: the write's error when it is not a conflict, or the last conflict.
    """
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except Exception as exc:
            if attempt == attempts or not is_write_conflict(exc):
                raise
            pause = min(8.0, 0.25 * 2**attempt) * (0.5 + random.random())
            log.warning(
                "concurrent write to %s (attempt %d/%d), retrying in %.1fs: %s",
                location,
                attempt,
                attempts,
                pause,
                describe_error(exc),
            )
            time.sleep(pause)
    raise AssertionError("unreachable")
