"""File drops (CSV) discovered incrementally by Spark's streaming file source.

The stream's checkpoint records every file it has taken (its file log), so each file is
ingested exactly once however often the job runs; ``Trigger.AvailableNow`` makes each run
take what has landed and stop. Lines are parsed here, not by the CSV reader, so that a
line that does not fit is kept whole, with a reason, for the quarantine table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.common.errors import ConfigError

EXTRA = "_extra_field"


def read_lines(spark: SparkSession, folder: str, options: Mapping[str, Any]) -> DataFrame:
    """A stream of ``value`` (one line) and ``_file`` for files landing in ``folder``."""
    return (
        spark.readStream.format("text")
        .option("pathGlobFilter", str(options.get("glob", "*")))
        .option("maxFilesPerTrigger", str(options.get("max_files_per_batch", 100)))
        .load(folder)
        .select("value", F.col("_metadata.file_path").alias("_file"))
    )


def csv_columns(options: Mapping[str, Any], source: str) -> dict[str, str]:
    """The configured ``columns`` mapping (name to Spark SQL type)."""
    columns = options.get("columns")
    if not isinstance(columns, Mapping) or not columns:
        raise ConfigError(f"sources.{source}.options.columns: a files source needs its columns")
    return {str(k): str(v) for k, v in columns.items()}


def parse_csv_lines(
    columns: Mapping[str, str], required: list[str], header: bool
) -> Callable[[DataFrame], DataFrame]:
    """Parse lines into typed columns plus ``_reason`` (empty when the line is good).

    :func:`split_checked` then separates records from rejects; callers cache the checked
    frame in between so every line is parsed once.

    A line is rejected when it has another number of fields, when a value does not cast
    to its column's type, or when a required value is empty; every reason is listed.
    """
    names = list(columns)
    header_line = ",".join(names)
    text_schema = ", ".join(f"`{n}` STRING" for n in [*names, EXTRA])

    def transform(lines: DataFrame) -> DataFrame:
        body = lines.where(F.length(F.trim("value")) > 0)
        if header:
            body = body.where(F.col("value") != header_line)
        fields = body.withColumn("f", F.from_csv("value", text_schema))
        shape = F.col(f"f.`{EXTRA}`").isNotNull() | F.col(f"f.`{names[-1]}`").isNull()
        return _checked(
            fields,
            columns,
            required,
            F.when(shape, F.lit(f"expected {len(names)} fields")),
            F.lit(True),
        )

    return transform


def parse_json_lines(
    columns: Mapping[str, str], required: list[str]
) -> Callable[[DataFrame], DataFrame]:
    """Parse JSON lines (file drops or Kafka message values) like :func:`parse_csv_lines`.

    A line is rejected when it is not a JSON object, when a value does not cast to its
    column's type, or when a required value is missing; every reason is listed.
    """
    text_schema = ", ".join(f"`{n}` STRING" for n in columns)

    def transform(lines: DataFrame) -> DataFrame:
        body = lines.where(F.length(F.trim("value")) > 0)
        parsed = body.withColumn("f", F.from_json("value", text_schema))
        # from_json yields an all-NULL struct for broken JSON; try_parse_json (VARIANT)
        # is NULL for it, so it tells "not JSON" apart from "fields missing".
        all_null = F.least(*[F.col(f"f.`{n}`").isNull() for n in columns])
        is_object = F.trim("value").startswith("{") & F.when(
            all_null, F.try_parse_json("value").isNotNull()
        ).otherwise(F.lit(True))
        return _checked(
            parsed, columns, required, F.when(~is_object, F.lit("not a JSON object")), is_object
        )

    return transform


def _checked(
    fields: DataFrame,
    columns: Mapping[str, str],
    required: list[str],
    shape_problem: Column,
    well_formed: Column,
) -> DataFrame:
    """Typed columns of struct ``f``, plus ``value``, ``_file`` and ``_reason``.

    ``_reason`` lists every problem: ``shape_problem``, then per column (when
    ``well_formed``) a value that does not cast to its type or a blank required value.
    """
    problems = [shape_problem]
    for name, kind in columns.items():
        raw = F.col(f"f.`{name}`")
        blank = raw.isNull() | (F.trim(raw) == "")
        if kind != "string":
            problems.append(
                F.when(
                    well_formed & ~blank & raw.try_cast(kind).isNull(),
                    F.concat(F.lit(f"{name} is not a {kind}: '"), raw, F.lit("'")),
                )
            )
        if name in required:
            problems.append(F.when(well_formed & blank, F.lit(f"{name} is required")))
    return fields.select(
        *[F.col(f"f.`{n}`").try_cast(t).alias(n) for n, t in columns.items()],
        "value",
        "_file",
        F.concat_ws("; ", F.array_compact(F.array(*problems))).alias("_reason"),
    )


def split_checked(checked: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Records (``_reason`` empty) and rejects (``_raw``, ``_reason``, ``_source_position``)."""
    good = checked.where(F.col("_reason") == "").drop("value", "_reason")
    rejects = checked.where(F.col("_reason") != "").select(
        F.col("value").alias("_raw"), "_reason", F.col("_file").alias("_source_position")
    )
    return good, rejects
