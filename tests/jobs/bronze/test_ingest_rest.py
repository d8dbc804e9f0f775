from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from jobs.bronze.rest import CrmClient
from jobs.common.config import load_settings
from jobs.common.delta_io import last_commit, read_table
from jobs.common.errors import SourceError
from jobs.common.paths import LakePaths
from jobs.common.run_context import RunContext
from jobs.datagen.crm_api import CrmState, serve_crm
from jobs.datagen.generator import GeneratorParams
from jobs.datagen.writer import write_dataset
from jobs.runner import execute

TOKEN = "test-token-not-a-secret-7f3a"
PARAMS = GeneratorParams(seed=4, scale=0.1, days=3, late_rate=0.1, duplicate_rate=0.05)


@pytest.fixture
def crm(tmp_path: Path) -> Iterator[tuple[CrmState, str]]:
    write_dataset(PARAMS, tmp_path / "sources")
    state = CrmState(tmp_path / "sources", TOKEN)
    with serve_crm(state) as url:
        yield state, url


def client(
    url: str, sleeps: list[float], tokens: list[str] | None = None, **kwargs: object
) -> CrmClient:
    supply = iter(tokens or [TOKEN] * 10)
    return CrmClient(
        url,
        token=lambda: next(supply),
        page_size=50,
        sleep=sleeps.append,
        rng=random.Random(1),
        rate_limit_per_s=1000,
        **kwargs,
    )  # type: ignore[arg-type]


def test_pages_through_every_record_updated_since(crm: tuple[CrmState, str]) -> None:
    state, url = crm
    state.deliver_day(dt.date(2026, 1, 1))
    records = list(client(url, []).records("customers", "1970-01-01T00:00:00.000Z"))
    assert len(records) == len(state.records["customers"]) > 100
    assert [p for p, _ in records][-1] == (len(records) + 49) // 50


@pytest.mark.parametrize("fault", ["429", "500", "timeout", "truncated"])
def test_transient_faults_are_retried_with_backoff(crm: tuple[CrmState, str], fault: str) -> None:
    state, url = crm
    state.deliver_day(dt.date(2026, 1, 1))
    state.timeout_s = 1.0
    state.faults.extend([fault, fault])
    sleeps: list[float] = []
    api = client(url, sleeps, timeout_s=0.3, backoff_base_s=0.5)
    records = list(api.records("customers", "2026-01-01T00:00:00.000Z"))
    assert len(records) == len(
        [r for r in state.records["customers"] if r["updated_at"] >= "2026-01-01T00:00:00.000Z"]
    )
    assert api.stats["retries"] == 2
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0


def test_expired_token_is_refreshed_once(crm: tuple[CrmState, str]) -> None:
    state, url = crm
    state.deliver_day(dt.date(2026, 1, 1))
    state.token = "rotated-token"
    api = client(url, [], tokens=[TOKEN, "rotated-token"])
    assert len(list(api.records("cases", "1970-01-01T00:00:00.000Z"))) == len(
        state.records["cases"]
    )
    assert (api.stats["token_refreshes"], api.stats["retries"]) == (1, 0)


def test_gives_up_after_bounded_attempts_with_clear_error(
    crm: tuple[CrmState, str], caplog: pytest.LogCaptureFixture
) -> None:
    state, url = crm
    state.faults.extend(["500"] * 10)
    sleeps: list[float] = []
    caplog.set_level(logging.WARNING)
    with pytest.raises(
        SourceError,
        match=r"CRM API http://127\.0\.0\.1:\d+/api/v1/customers: "
        r"gave up after 3 attempts; last: HTTP 500",
    ):
        list(client(url, sleeps, max_attempts=3).records("customers", "2026-01-01"))
    assert len(sleeps) == 2
    assert TOKEN not in caplog.text


def test_client_errors_are_not_retried(crm: tuple[CrmState, str]) -> None:
    _, url = crm
    with pytest.raises(SourceError, match=r"/api/v1/contracts: HTTP 404, not retryable"):
        list(client(url, []).records("contracts", "2026-01-01"))


def test_retry_after_is_honoured() -> None:
    api = CrmClient("http://x", token=lambda: TOKEN, rng=random.Random(0), backoff_base_s=0.1)
    assert api._backoff(1, retry_after=7.0) == 7.0
    assert all(0 <= api._backoff(n, None) <= min(30.0, 0.1 * 2 ** (n - 1)) for n in range(1, 12))


def _typed(record: dict[str, object]) -> tuple[object, ...]:
    def ts(v: object) -> dt.datetime | None:
        return (
            None
            if v is None
            else dt.datetime.fromisoformat(str(v).replace("Z", "+00:00")).replace(tzinfo=None)
        )

    return (
        record["customer_id"],
        record["first_name"],
        record["last_name"],
        record["email"],
        record["phone"],
        record["country"],
        record["city"],
        record["segment"],
        record["marketing_opt_in"],
        ts(record["created_at"]),
        ts(record["updated_at"]),
        record["is_deleted"],
    )


def test_daily_crm_ingest_keeps_every_delivered_version_once(
    spark: SparkSession, crm: tuple[CrmState, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = crm
    monkeypatch.setenv("LAKEHOUSE_TEST_CRM_TOKEN", TOKEN)
    settings = load_settings(
        "local",
        environ={
            "LAKEHOUSE__SOURCES__CRM__OPTIONS__BASE_URL": url,
            "LAKEHOUSE__SOURCES__CRM__CREDENTIALS": "env:LAKEHOUSE_TEST_CRM_TOKEN",
        },
    )
    lake = LakePaths(str(tmp_path / "sources").replace("/sources", "/home"))
    lake.ensure_local_layout()
    for n in range(1, 4):
        day = dt.date(2026, 1, n)
        state.deliver_day(day)
        execute(RunContext("bronze.crm_customers", "local", day), settings, lake, spark)
    location = lake.table("bronze", "crm_customers")
    version = last_commit(spark, location).version
    rerun = execute(
        RunContext("bronze.crm_customers", "local", dt.date(2026, 1, 3), 2), settings, lake, spark
    )
    assert (rerun.rows_out, last_commit(spark, location).version) == (0, version)
    columns = [
        "customer_id",
        "first_name",
        "last_name",
        "email",
        "phone",
        "country",
        "city",
        "segment",
        "marketing_opt_in",
        "created_at",
        "updated_at",
        "is_deleted",
    ]
    bronze = read_table(spark, location).select(columns)
    expected = spark.createDataFrame(
        sorted({_typed(r) for r in state.records["customers"]}, key=str), bronze.schema
    )
    assert_df_equality(bronze, expected, ignore_row_order=True, ignore_nullable=True)


def test_requests_are_spaced_by_the_rate_limit(crm: tuple[CrmState, str]) -> None:
    import time

    state, url = crm
    state.deliver_day(dt.date(2026, 1, 1))
    api = CrmClient(url, token=lambda: TOKEN, page_size=20, rate_limit_per_s=20)
    start = time.monotonic()
    list(api.records("customers", "1970-01-01T00:00:00.000Z"))
    pages = api.stats["pages"]
    assert pages >= 5
    assert time.monotonic() - start >= (pages - 1) / 20
