"""Conformed types for Silver: one rule per declared column type, pure transformations.

A rule turns a raw Bronze value into its conformed value, or flags it. Rows with a
flag go to quarantine with every problem named (``_reason``); nothing is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.common.errors import ConfigError

REASON = "_reason"

# ISO 3166-1 alpha-2 and ISO 4217 codes this business trades in; a code outside the
# list is quarantined rather than guessed (extend the lists to open a market).
COUNTRY_CODES = frozenset(
    [
        "US",
        "GB",
        "DE",
        "FR",
        "JP",
        "CA",
        "AU",
        "IE",
        "NL",
        "BE",
        "ES",
        "IT",
        "PT",
        "AT",
        "CH",
        "SE",
        "NO",
        "DK",
        "FI",
        "PL",
        "NZ",
        "SG",
        "HK",
        "IN",
        "BR",
        "MX",
    ]
)
CURRENCY_CODES = frozenset(
    [
        "USD",
        "EUR",
        "GBP",
        "JPY",
        "CAD",
        "AUD",
        "CHF",
        "SEK",
        "NOK",
        "DKK",
        "PLN",
        "NZD",
        "SGD",
        "HKD",
        "INR",
        "BRL",
        "MXN",
    ]
)
_DECIMAL = re.compile(r"decimal\((\d+),\s*(\d+)\)")
_CASTS = {"timestamp", "date", "int", "bigint", "boolean", "double"}


def _trimmed(name: str) -> Column:
    text = F.trim(F.col(f"`{name}`").cast("string"))
    return F.when(text != "", text)


def conform_column(name: str, kind: str) -> tuple[Column, Column]:
    """(conformed value, problem or NULL) of column ``name`` declared as ``kind``.

    Raises:
        ConfigError: ``kind`` is not a known type.
    """
    raw = F.col(f"`{name}`")
    if kind == "string":
        return _trimmed(name), F.lit(None).cast("string")
    if kind == "email":
        value = F.lower(_trimmed(name))
        bad = value.isNotNull() & ~value.rlike(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
        return value, F.when(bad, F.format_string(f"{name} is not an email: '%s'", raw))
    if kind == "phone":
        digits = F.regexp_replace(_trimmed(name), r"[^0-9+]", "")
        bad = digits.isNotNull() & ~digits.rlike(r"^\+?[0-9]{6,15}$")
        return digits, F.when(bad, F.format_string(f"{name} is not a phone number: '%s'", raw))
    if kind in ("country", "currency"):
        codes = COUNTRY_CODES if kind == "country" else CURRENCY_CODES
        standard = "ISO 3166-1 alpha-2" if kind == "country" else "ISO 4217"
        value = F.upper(_trimmed(name))
        bad = value.isNotNull() & ~value.isin(*sorted(codes))
        return value, F.when(
            bad, F.format_string(f"{name} is not a known {standard} code: '%s'", raw)
        )
    decimal = _DECIMAL.fullmatch(kind)
    if decimal or kind in _CASTS:
        # Bronze may hold the value as text (files) or typed (JDBC): cast the text form
        # with try_cast so a bad value is reported instead of failing the whole query.
        source = raw if kind in ("timestamp", "date") else _trimmed(name)
        value = source.try_cast(kind)
        bad = source.isNotNull() & value.isNull()
        return value, F.when(bad, F.format_string(f"{name} is not a {kind}: '%s'", raw))
    raise ConfigError(f"column {name}: unknown conformed type '{kind}'")


def conform(
    columns: Mapping[str, str],
    required: Sequence[str],
    keep: Sequence[str] = (),
    optional_when: Mapping[str, Column] | None = None,
) -> Callable[[DataFrame], DataFrame]:
    """The declared ``columns`` conformed, plus ``keep`` as is, ``_record`` and ``_reason``.

    ``_record`` is the row as it came from Bronze (JSON); ``_reason`` joins every
    problem found (a non-conforming value, a missing required column) or is NULL.
    Declared columns absent from the input (not yet in Bronze) are NULL.
    ``optional_when``: a required column may be NULL in rows where its predicate (on
    the conformed columns) holds, e.g. the key of a TRUNCATE event.
    """
    exempt = optional_when or {}

    def missing(name: str) -> Column:
        absent = F.col(f"`{name}`").isNull()
        if name in exempt:
            absent = absent & ~F.coalesce(exempt[name], F.lit(False))
        return F.when(absent, F.lit(f"{name} is required"))

    def transform(frame: DataFrame) -> DataFrame:
        present = set(frame.columns)
        values, problems = [], []
        for name, kind in columns.items():
            if name in present:
                value, problem = conform_column(name, kind)
            else:
                value, problem = F.lit(None), F.lit(None).cast("string")
                value = value.cast(_spark_type(kind))
            values.append(value.alias(name))
            problems.append(problem)
        record = F.to_json(F.struct(*[F.col(f"`{c}`") for c in frame.columns]))
        conformed = frame.select(
            *values,
            *[F.col(f"`{k}`") for k in keep],
            record.alias("_record"),
            F.array_compact(F.array(*problems)).alias("_problems"),
        )
        # required: checked on the conformed value (a blank string counts as missing)
        all_problems = F.array_distinct(
            F.array_compact(F.concat(F.col("_problems"), F.array(*[missing(n) for n in required])))
        )
        return conformed.select(
            *[F.col(f"`{c}`") for c in [*columns, *keep]],
            "_record",
            F.when(F.size(all_problems) > 0, F.array_join(all_problems, "; ")).alias(REASON),
        )

    return transform


def _spark_type(kind: str) -> str:
    if kind in ("string", "email", "phone", "country", "currency"):
        return "string"
    if _DECIMAL.fullmatch(kind) or kind in _CASTS:
        return kind
    raise ConfigError(f"unknown conformed type '{kind}'")
