"""Schema drift between a table and an incoming batch: additive changes evolve, others fail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobs.common.errors import SchemaDriftError

if TYPE_CHECKING:
    from pyspark.sql.types import StructType


@dataclass(frozen=True)
class SchemaChange:
    """What an incoming batch does to the table schema."""

    added: tuple[str, ...]
    missing: tuple[str, ...]  # non-key columns absent from the batch (written as NULL)

    @property
    def evolves(self) -> bool:
        """True when the table schema must grow."""
        return bool(self.added)


def plan_schema_change(
    table: str, current: StructType, incoming: StructType, key_columns: list[str]
) -> SchemaChange:
    """Compare schemas; added columns are allowed, type changes and dropped keys are not.

    Raises:
        SchemaDriftError: naming the table, the column, the old and the new type (or the
            dropped key column). Raised before anything is written.
    """
    old = {f.name: f.dataType for f in current.fields}
    new = {f.name: f.dataType for f in incoming.fields}
    problems = [
        f"column '{name}' changes type from {old[name].simpleString()} to "
        f"{new[name].simpleString()}"
        for name in old
        if name in new and old[name] != new[name]
    ]
    problems += [
        f"key column '{k}' is missing from the batch"
        for k in key_columns
        if k in old and k not in new
    ]
    if problems:
        raise SchemaDriftError(
            f"incompatible schema change for {table}, nothing written: " + "; ".join(problems)
        )
    return SchemaChange(
        added=tuple(n for n in new if n not in old),
        missing=tuple(n for n in old if n not in new),
    )
