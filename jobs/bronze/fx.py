"""Daily FX rates to USD: the document for the logical date, idempotent per date.

Locally the provider's response for date D is ``sources/fx/rates/<D>.json``. A re-run
for D writes nothing new; a corrected rate for D is a new record (Bronze keeps both,
Silver takes the latest). Values are parsed with ``try_cast`` (Spark 4 runs ANSI SQL,
where a bad cast fails the query) and failures are quarantined. Documents are parsed
with ``from_json``, not a cached file scan: a cached scan would serve stale rates to a
later read of the same path in the same session.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pyspark.sql import functions as F

from jobs.bronze.connector import Increment, ReadRequest
from jobs.common.errors import SourceError

RATE_SCHEMA = (
    "base STRING, date STRING, "
    "rates ARRAY<STRUCT<rate_date: STRING, currency: STRING, usd_per_unit: STRING>>"
)


def read(request: ReadRequest) -> Increment:
    """Read the rates published for each date of the window (default: the logical date)."""
    days = [request.logical_date]
    if request.window:
        start, end = (d.date() for d in request.window)
        days = [start + timedelta(days=n) for n in range((end - start).days)]
    files = [f"{request.paths.sources}/fx/rates/{day.isoformat()}.json" for day in days]
    missing = [f for f in files if request.paths.is_local and not Path(f).is_file()]
    if missing:
        raise SourceError(f"fx: no rates published for {', '.join(missing)}")
    raw = (
        request.spark.read.text(files, wholetext=True)
        .select(F.col("value").alias("_raw"), F.input_file_name().alias("_file"))
        .withColumn("doc", F.from_json("_raw", RATE_SCHEMA))
    )
    parsed = F.col("doc").isNotNull() & F.col("doc.rates").isNotNull()
    rows = (
        raw.where(parsed)
        .select("_file", F.explode("doc.rates").alias("r"))
        .select(
            F.col("r.rate_date").try_cast("date").alias("rate_date"),
            F.col("r.currency").alias("currency"),
            F.col("r.usd_per_unit").try_cast("decimal(18,8)").alias("usd_per_unit"),
            F.to_json("r").alias("_raw"),
            "_file",
        )
    )
    bad_row = (
        F.col("rate_date").isNull()
        | F.col("currency").isNull()
        | F.col("usd_per_unit").isNull()
        | (F.col("usd_per_unit") <= 0)
    )
    rejects = (
        raw.where(~parsed)
        .select(
            "_raw",
            F.lit("fx document is not valid JSON or has no rates").alias("_reason"),
            F.col("_file").alias("_source_position"),
        )
        .unionByName(
            rows.where(bad_row).select(
                "_raw",
                F.lit("rate_date, currency or a positive usd_per_unit missing").alias("_reason"),
                F.col("_file").alias("_source_position"),
            )
        )
    )
    return Increment(
        frame=rows.where(~bad_row).drop("_raw"),
        position=F.col("_file"),
        cursor="rate_date",
        rejects=rejects,
        existing_filter=f"rate_date >= DATE'{days[0].isoformat()}'",
        details={"files": files},
    )
