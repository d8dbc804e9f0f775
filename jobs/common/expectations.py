"""Expectation suites as data: ``config/expectations/<layer>/<table>.yaml``.

A suite file lists expectations, each a Great Expectations 1.x type with its kwargs, an
``action`` (``fail`` | ``quarantine`` | ``warn``), an optional ``mostly`` and a
description::

    expectations:
      - type: expect_column_values_to_not_be_null
        kwargs: {column: order_id}
        action: fail
        description: every order has an id

``quarantine`` rules must be row-level: :func:`row_check` turns each supported type into
the Spark predicate a row must satisfy, so failing rows can be moved aside before the
suite runs on the rest. Loading a suite checks every expectation against GX (unknown
type, bad kwargs) and names the file and the entry on error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobs.common.errors import ConfigError

if TYPE_CHECKING:  # suites are read where Spark is not (the DAG files, on Airflow)
    from pyspark.sql import Column

Action = Literal["fail", "quarantine", "warn"]
LAYERS = ("bronze", "silver", "gold")


class ExpectationSpec(BaseModel):
    """One expectation of a suite."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    action: Action
    mostly: float | None = Field(default=None, gt=0, le=1)
    description: str
    name: str | None = None  # defaults to "<type>(<column>)"

    @property
    def rule(self) -> str:
        """The name quarantine reasons and reports use."""
        if self.name:
            return self.name
        target = self.kwargs.get("column") or ",".join(
            self.kwargs.get("column_list") or [self.kwargs.get("column_A", "")]
        )
        return f"{self.type}({target})" if target else self.type

    @property
    def gx_kwargs(self) -> dict[str, Any]:
        """Kwargs for the GX expectation class (``mostly`` included when set)."""
        return {**self.kwargs, **({"mostly": self.mostly} if self.mostly is not None else {})}


class ForeignKeySpec(BaseModel):
    """Referential integrity against another table's current rows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    column: str
    references: str  # <layer>.<table>.<column>, e.g. silver.dim_customer.customer_id
    min_ratio: float = Field(default=0.99, gt=0, le=1)  # share of non-NULL values found
    action: Literal["fail", "warn"] = "fail"
    description: str = ""

    @property
    def rule(self) -> str:
        """The name reports use."""
        return f"foreign_key({self.column} -> {self.references})"

    @property
    def target(self) -> tuple[str, str, str]:
        """(layer, table, column) referenced."""
        layer, table, column = self.references.split(".")
        return layer, table, column


class SuiteSpec(BaseModel):
    """A table's suite."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    layer: str
    table: str
    source: str  # the file it came from
    quarantine_threshold: float | None = Field(default=None, ge=0, le=1)
    expectations: tuple[ExpectationSpec, ...] = ()
    foreign_keys: tuple[ForeignKeySpec, ...] = ()

    @property
    def quarantine_rules(self) -> tuple[ExpectationSpec, ...]:
        """Row-level rules whose failing rows are moved to quarantine."""
        return tuple(e for e in self.expectations if e.action == "quarantine")


def gx_class_name(expectation_type: str) -> str:
    """``expect_column_values_to_not_be_null`` -> ``ExpectColumnValuesToNotBeNull``."""
    return "".join(part.capitalize() for part in expectation_type.split("_"))


def load_suite(config_dir: Path, layer: str, table: str) -> SuiteSpec | None:
    """The suite for ``<layer>.<table>``, or None when the table has none.

    Beyond :func:`read_suite`, every expectation must be a GX expectation and every
    quarantine rule a row-level one (needs an active Spark session).
    """
    suite = read_suite(config_dir, layer, table)
    if suite is None:
        return None
    for index, spec in enumerate(suite.expectations):
        where = f"{suite.source}: expectations[{index}] ({spec.type})"
        _check_gx(spec, where)
        if spec.action == "quarantine":
            row_check(spec, where)  # raises when the type is not row-level
    return suite


def read_suite(config_dir: Path, layer: str, table: str) -> SuiteSpec | None:
    """The suite file for ``<layer>.<table>`` parsed and checked for form (no Spark)."""
    path = config_dir / "expectations" / layer / f"{table}.yaml"
    if not path.exists():
        return None
    shown = f"config/expectations/{layer}/{table}.yaml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{shown}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{shown}: expected a mapping with 'expectations'")
    try:
        suite = SuiteSpec(layer=layer, table=table, source=shown, **data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{shown}: {problems}") from exc
    for index, fk in enumerate(suite.foreign_keys):
        parts = fk.references.split(".")
        if len(parts) != 3 or parts[0] not in LAYERS:
            raise ConfigError(
                f"{shown}: foreign_keys[{index}]: references must be <layer>.<table>.<column>"
                f" with layer one of {', '.join(LAYERS)}, found {fk.references!r}"
            )
    rules = [e.rule for e in suite.expectations]
    if len(set(rules)) != len(rules):
        raise ConfigError(f"{shown}: two expectations share a rule name; set 'name' on one")
    return suite


def _check_gx(spec: ExpectationSpec, where: str) -> None:
    import great_expectations.expectations as gxe

    cls = getattr(gxe, gx_class_name(spec.type), None)
    if cls is None or not spec.type.startswith("expect_"):
        raise ConfigError(f"{where}: unknown Great Expectations type")
    try:
        cls(**spec.gx_kwargs)
    except Exception as exc:  # pydantic errors from GX's models
        raise ConfigError(f"{where}: invalid kwargs: {exc}") from exc


@dataclass(frozen=True)
class RowCheck:
    """A quarantine rule as a predicate: rows where ``passes`` is false are moved."""

    rule: str
    passes: Column


def row_check(spec: ExpectationSpec, where: str = "") -> RowCheck:
    """The Spark predicate of a row-level expectation.

    A NULL input passes, as in GX's map expectations, except in the null checks.
    """
    kw = spec.kwargs
    builder = _ROW_CHECKS.get(spec.type)
    if builder is None:
        raise ConfigError(
            f"{where or spec.type}: action 'quarantine' needs a row-level expectation, one "
            f"of: {', '.join(sorted(_ROW_CHECKS))}"
        )
    from pyspark.sql import functions as F

    predicate = builder(kw)
    # A NULL predicate (a NULL input) passes: GX map expectations ignore NULLs.
    return RowCheck(spec.rule, F.coalesce(predicate, F.lit(True)))


def _col(kw: dict[str, Any], key: str = "column") -> Column:
    from pyspark.sql import functions as F

    return F.col(f"`{kw[key]}`")


def _length(kw: dict[str, Any]) -> Column:
    from pyspark.sql import functions as F

    return F.length(_col(kw).cast("string"))


def _between(kw: dict[str, Any], value: Column) -> Column:
    from pyspark.sql import functions as F

    low, high = kw.get("min_value"), kw.get("max_value")
    checks = [F.lit(True)]
    if low is not None:
        checks.append(value > F.lit(low) if kw.get("strict_min") else value >= F.lit(low))
    if high is not None:
        checks.append(value < F.lit(high) if kw.get("strict_max") else value <= F.lit(high))
    out = checks[0]
    for check in checks[1:]:
        out = out & check
    return out


def _regex(pattern: str) -> str:
    re.compile(pattern)  # fail early on a pattern Python cannot read either
    return pattern


_ROW_CHECKS: dict[str, Any] = {
    "expect_column_values_to_not_be_null": lambda kw: _col(kw).isNotNull(),
    "expect_column_values_to_be_null": lambda kw: _col(kw).isNull(),
    "expect_column_values_to_be_between": lambda kw: _between(kw, _col(kw)),
    "expect_column_values_to_be_in_set": lambda kw: _col(kw).isin(list(kw["value_set"])),
    "expect_column_values_to_not_be_in_set": lambda kw: ~_col(kw).isin(list(kw["value_set"])),
    "expect_column_values_to_match_regex": lambda kw: _col(kw).rlike(_regex(kw["regex"])),
    "expect_column_values_to_not_match_regex": lambda kw: ~_col(kw).rlike(_regex(kw["regex"])),
    "expect_column_value_lengths_to_be_between": lambda kw: _between(kw, _length(kw)),
    "expect_column_pair_values_a_to_be_greater_than_b": lambda kw: (
        _col(kw, "column_A") >= _col(kw, "column_B")
        if kw.get("or_equal")
        else _col(kw, "column_A") > _col(kw, "column_B")
    ),
}
