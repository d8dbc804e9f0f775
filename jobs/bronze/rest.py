"""CRM REST API source (Salesforce-like): paginated, incremental by ``updated_since``.

The client retries 429, 5xx, timeouts and truncated pages with exponential backoff and
full jitter (``Retry-After`` honoured), at most ``max_attempts`` times per request, then
fails with :class:`SourceError` naming the request and what it last saw. A 401 re-reads
the token from its secret (it may have been rotated) and retries once. Requests are
spaced to at most ``rate_limit_per_s``. The token is never logged.
"""

from __future__ import annotations

import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from jobs.bronze.connector import Increment, ReadRequest
from jobs.common.errors import ConfigError, SourceError
from jobs.common.secrets import resolve_secret

log = logging.getLogger(__name__)
RETRYABLE = {429, 500, 502, 503, 504}


@dataclass
class CrmClient:
    """A paginating, retrying, rate-limited client for one CRM API."""

    base_url: str
    token: Callable[[], str]
    page_size: int = 200
    max_attempts: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    timeout_s: float = 30.0
    rate_limit_per_s: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    stats: dict[str, int] = field(
        default_factory=lambda: {"requests": 0, "retries": 0, "pages": 0, "token_refreshes": 0}
    )
    _last_request: float = 0.0
    _token: str | None = None

    def records(self, entity: str, updated_since: str) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield (page number, record) for every record updated since ``updated_since``."""
        page: int | None = 1
        while page is not None:
            query = urlencode(
                {"updated_since": updated_since, "page_size": self.page_size, "page": page}
            )
            body = self._get(f"{self.base_url}/{entity}?{query}")
            self.stats["pages"] += 1
            for record in body["records"]:
                yield page, record
            page = body.get("next_page")

    def _get(self, url: str) -> dict[str, Any]:
        refreshed = False
        last = "no response"
        attempt = 0
        while attempt < self.max_attempts:
            attempt += 1
            self._pace()
            request = urllib.request.Request(
                url,
                headers={
                    "Authorization": f"Bearer {self._bearer(refresh=False)}",
                    "Accept": "application/json",
                },
            )
            retry_after: float | None = None
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    raw = response.read()
                try:
                    doc = json.loads(raw)
                except json.JSONDecodeError:
                    last = f"truncated or invalid JSON page ({len(raw)} bytes)"
                else:
                    if isinstance(doc, dict) and isinstance(doc.get("records"), list):
                        return doc
                    last = "page without a records list"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if exc.code == 401 and not refreshed:
                    refreshed = True
                    self._bearer(refresh=True)
                    attempt -= 1  # a token refresh is not a failed attempt
                    continue
                if exc.code not in RETRYABLE:
                    raise SourceError(f"CRM API {_redact(url)}: {last}, not retryable") from None
                header = exc.headers.get("Retry-After") if exc.headers else None
                retry_after = float(header) if header and header.isdigit() else None
            except (TimeoutError, urllib.error.URLError) as exc:
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            if attempt < self.max_attempts:
                self.stats["retries"] += 1
                delay = self._backoff(attempt, retry_after)
                log.warning(
                    "CRM API retry",
                    extra={
                        "url": _redact(url),
                        "attempt": attempt,
                        "last": last,
                        "delay_s": round(delay, 3),
                    },
                )
                self.sleep(delay)
        raise SourceError(
            f"CRM API {_redact(url)}: gave up after {self.max_attempts} attempts; last: {last}"
        )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**(attempt-1))], at least Retry-After."""
        cap = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return max(retry_after or 0.0, self.rng.uniform(0, cap))

    def _pace(self) -> None:
        gap = 1.0 / self.rate_limit_per_s
        wait = self._last_request + gap - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # pacing, not backoff: ``sleep`` is only for retry delays
        self._last_request = time.monotonic()
        self.stats["requests"] += 1

    def _bearer(self, *, refresh: bool) -> str:
        if refresh:
            self.stats["token_refreshes"] += 1
        if self._token is None or refresh:
            self._token = self.token()
        return self._token


def _redact(url: str) -> str:
    return url.split("?", 1)[0]


def read(request: ReadRequest) -> Increment:
    """Fetch the entity's records changed since the watermark minus the lookback."""
    options = request.spec.options
    if "base_url" not in options or request.spec.credentials is None:
        raise ConfigError(
            f"sources.{request.source}: a rest source needs options.base_url and credentials"
        )
    cursor = request.entity_spec.cursor or "updated_at"
    credentials = request.spec.credentials
    client = CrmClient(
        base_url=str(options["base_url"]),
        token=lambda: resolve_secret(credentials, field="token"),
        page_size=int(options.get("page_size", 200)),
        max_attempts=int(options.get("max_attempts", 5)),
        backoff_base_s=float(options.get("backoff_base_s", 0.5)),
        timeout_s=float(options.get("timeout_s", 30)),
        rate_limit_per_s=float(options.get("rate_limit_per_s", 10)),
    )
    lookback = timedelta(minutes=int(options.get("lookback_minutes", 1440)))
    since = "1970-01-01T00:00:00.000Z"
    if request.window:
        since = request.window[0].strftime("%Y-%m-%dT%H:%M:%S.000Z")
    elif request.since and request.since.get(cursor):
        last = datetime.fromisoformat(str(request.since[cursor]))
        since = (last - lookback).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    fetched = list(client.records(request.entity, since))
    if request.window:
        end = request.window[1].strftime("%Y-%m-%dT%H:%M:%S.000Z")
        fetched = [(p, r) for p, r in fetched if r[cursor] < end]
    names: list[str] = []
    for _, record in fetched:
        names += [k for k in record if k not in names]
    schema = StructType(
        [StructField(n, StringType()) for n in names] + [StructField("_page", StringType())]
    )
    rows = [(*(_text(r.get(n)) for n in names), str(p)) for p, r in fetched]
    frame = request.spark.createDataFrame(rows, schema)
    for name, kind in dict(options.get("types", {}).get(request.entity, {})).items():
        if name in names:
            frame = frame.withColumn(name, F.col(name).try_cast(str(kind)))
    return Increment(
        frame=frame,
        position=F.concat(F.lit(f"{request.entity}?updated_since={since}&page="), F.col("_page")),
        cursor=cursor,
        existing_filter=f"`{cursor}` >= '{since}'" if names else None,
        details={"updated_since": since, **client.stats},
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
