from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from jobs.common.config import Settings
from jobs.common.delta_io import read_table
from jobs.common.errors import SourceError
from jobs.common.paths import LakePaths
from jobs.common.run_context import RunContext, RunSummary
from jobs.runner import execute

SCHEMA = "rate_date DATE, currency STRING, usd_per_unit DECIMAL(18,8)"


def publish(lake: LakePaths, day: str, rates: object) -> None:
    path = Path(lake.sources) / "fx" / "rates" / f"{day}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (
        rates
        if isinstance(rates, str)
        else json.dumps({"base": "USD", "date": day, "rates": rates})
    )
    path.write_text(text)


def run(
    spark: SparkSession, settings: Settings, lake: LakePaths, day: str, attempt: int = 1
) -> RunSummary:
    ctx = RunContext("bronze.fx_rates", "local", dt.date.fromisoformat(day), attempt)
    return execute(ctx, settings, lake, spark)


def rate(day: str, currency: str, value: str) -> dict[str, object]:
    return {"rate_date": day, "currency": currency, "usd_per_unit": value}


def test_fx_rates_are_idempotent_per_date(
    spark: SparkSession, settings: Settings, lake: LakePaths
) -> None:
    publish(
        lake, "2026-01-01", [rate("2026-01-01", "EUR", "1.08"), rate("2026-01-01", "GBP", "1.27")]
    )
    first = run(spark, settings, lake, "2026-01-01")
    again = run(spark, settings, lake, "2026-01-01", attempt=2)
    publish(
        lake, "2026-01-01", [rate("2026-01-01", "EUR", "1.09"), rate("2026-01-01", "GBP", "1.27")]
    )
    corrected = run(spark, settings, lake, "2026-01-01", attempt=3)
    bronze = read_table(spark, lake.table("bronze", "fx_rates")).select(
        "rate_date", "currency", "usd_per_unit"
    )
    d = dt.date(2026, 1, 1)
    expected = spark.createDataFrame(
        [(d, "EUR", Decimal("1.08")), (d, "GBP", Decimal("1.27")), (d, "EUR", Decimal("1.09"))],
        SCHEMA,
    )
    assert_df_equality(bronze, expected, ignore_row_order=True, ignore_nullable=True)
    assert (first.rows_out, again.rows_out, corrected.rows_out) == (2, 0, 1)


def test_bad_rates_are_quarantined_with_reason(
    spark: SparkSession, settings: Settings, lake: LakePaths
) -> None:
    publish(
        lake, "2026-01-02", [rate("2026-01-02", "EUR", "1.08"), rate("2026-01-02", "JPY", "n/a")]
    )
    summary = run(spark, settings, lake, "2026-01-02")
    quarantine = read_table(spark, lake.table("_quarantine", "bronze_fx_rates"))
    reasons = [(r._reason, json.loads(r._raw)["currency"]) for r in quarantine.collect()]
    assert reasons == [("rate_date, currency or a positive usd_per_unit missing", "JPY")]
    assert (summary.rows_in, summary.rows_out, summary.rows_quarantined) == (2, 1, 1)


def test_missing_document_fails_naming_the_file(
    spark: SparkSession, settings: Settings, lake: LakePaths
) -> None:
    with pytest.raises(SourceError, match=r"fx: no rates published for .*2026-01-09\.json"):
        run(spark, settings, lake, "2026-01-09")
