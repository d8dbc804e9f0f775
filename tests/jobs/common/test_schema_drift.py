from __future__ import annotations

import pytest
from pyspark.sql.types import (
    DecimalType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from jobs.common.errors import SchemaDriftError
from jobs.common.schema_drift import SchemaChange, plan_schema_change

TABLE = StructType(
    [
        StructField("id", StringType()),
        StructField("qty", LongType()),
        StructField("amount", DecimalType(12, 2)),
    ]
)


def test_added_column_evolves_the_table() -> None:
    incoming = StructType([*TABLE.fields, StructField("discount", DecimalType(12, 2))])
    change = plan_schema_change("bronze.t", TABLE, incoming, ["id"])
    assert change == SchemaChange(added=("discount",), missing=())
    assert change.evolves


def test_missing_non_key_column_is_allowed_and_reported() -> None:
    incoming = StructType([TABLE.fields[0], TABLE.fields[2]])
    assert plan_schema_change("bronze.t", TABLE, incoming, ["id"]) == SchemaChange((), ("qty",))


def test_type_narrowing_fails_naming_column_and_types() -> None:
    incoming = StructType([TABLE.fields[0], StructField("qty", IntegerType()), TABLE.fields[2]])
    with pytest.raises(SchemaDriftError) as err:
        plan_schema_change("bronze.t", TABLE, incoming, ["id"])
    assert str(err.value) == (
        "incompatible schema change for bronze.t, nothing written: "
        "column 'qty' changes type from bigint to int"
    )


def test_dropped_key_column_fails() -> None:
    incoming = StructType(TABLE.fields[1:])
    with pytest.raises(SchemaDriftError, match="key column 'id' is missing from the batch"):
        plan_schema_change("bronze.t", TABLE, incoming, ["id"])
