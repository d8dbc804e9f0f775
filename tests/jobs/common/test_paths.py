from __future__ import annotations

import pytest

from jobs.common.config import load_settings
from jobs.common.paths import LakePaths, canonical_uri, resolve_lake_paths


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("s3a://bucket/lake/t", "s3://bucket/lake/t"),
        ("s3n://bucket/lake/t", "s3://bucket/lake/t"),
        ("S3A://bucket/t/", "s3://bucket/t/"),
        ("s3://bucket/t", "s3://bucket/t"),
        ("/home/me/lake/t", "/home/me/lake/t"),
        ("file:///home/me/t", "file:///home/me/t"),
    ],
)
def test_canonical_uri_gives_s3_one_scheme(given: str, canonical: str) -> None:
    assert canonical_uri(given) == canonical


def test_lake_paths_made_from_s3a_locations_are_all_s3() -> None:
    # The DynamoDB log store keys a table by its path, scheme included: s3a:// and
    # s3:// writers of one table would not exclude each other.
    paths = LakePaths("s3a://ops/lake", {"bronze": "s3a://lake-bronze", "gold": "s3n://lake-gold/"})
    assert paths.root == "s3://ops/lake"
    assert paths.table("bronze", "crm_customers") == "s3://lake-bronze/crm_customers"
    assert paths.table("_quarantine", "bronze_x") == "s3://lake-bronze/_quarantine/bronze_x"
    assert paths.table("gold", "customer_360") == "s3://lake-gold/customer_360"
    assert paths.table("silver", "dim_customer") == "s3://ops/lake/lake/silver/dim_customer"
    assert paths.run_dir("r1") == "s3://ops/lake/runs/r1"
    assert paths.lineage == "s3://ops/lake/lineage"


def test_resolve_lake_paths_from_config_uses_the_canonical_scheme() -> None:
    environ = {
        "LAKEHOUSE__STORAGE__ROOT": "s3a://ops/lake",
        "LAKEHOUSE__STORAGE__LAYERS": "{bronze: 's3a://lake-bronze'}",
    }
    paths = resolve_lake_paths(load_settings("local", environ=environ), environ={})
    assert (paths.root, paths.table("bronze", "t")) == ("s3://ops/lake", "s3://lake-bronze/t")
