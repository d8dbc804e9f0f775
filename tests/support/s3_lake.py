"""A lake on S3 for the tests: moto's S3 + the Delta log store's DynamoDB table.

The local AWS (``jobs.datagen.local_aws``) runs as one server process per test
process; each test gets it reset, with the lake's buckets and log-store table created
as Terraform creates them. Jobs reach it through configuration only: ``environ``
(``LAKEHOUSE__*`` overlay + the AWS variables boto3 and the JVM read) is what a driver
process is started with.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from jobs.common.config import Settings, load_settings
from jobs.common.paths import LakePaths, resolve_lake_paths
from jobs.datagen.local_aws import LocalAws, S3Lake, create_lake, lake_environ

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class S3LakeWorld:
    """One test's lake on S3: names, endpoints, the environment a driver needs."""

    aws: LocalAws
    lake: S3Lake
    sources: Path
    environ: dict[str, str] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return load_settings("local", environ=self.environ)

    @property
    def paths(self) -> LakePaths:
        return resolve_lake_paths(self.settings, environ={})

    def client(self, service: str) -> Any:
        return boto3.session.Session(
            aws_access_key_id=self.environ["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.environ["AWS_SECRET_ACCESS_KEY"],
            region_name=self.lake.region,
        ).client(service, endpoint_url=self.aws.endpoint)

    def keys(self, uri: str) -> list[str]:
        """Object keys under an ``s3://bucket/prefix``."""
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        pages = (
            self.client("s3")
            .get_paginator("list_objects_v2")
            .paginate(Bucket=bucket, Prefix=prefix)
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def commit_files(self, table: str) -> list[int]:
        """Versions of the table's ``_delta_log/<version>.json`` objects."""
        keys = self.keys(f"{table.rstrip('/')}/_delta_log/")
        names = [k.rsplit("/", 1)[1] for k in keys]
        return sorted(int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit())

    def log_entries(self) -> list[dict[str, Any]]:
        """Every item of the log store's DynamoDB table."""
        pages = (
            self.client("dynamodb").get_paginator("scan").paginate(TableName=self.lake.log_table)
        )
        return [
            {k: next(iter(v.values())) for k, v in item.items()}
            for page in pages
            for item in page.get("Items", [])
        ]

    def local_environ(self, home: Path) -> dict[str, str]:
        """The environment of a driver whose lake is on local disk under ``home``."""
        base = {k: v for k, v in self.environ.items() if not k.startswith("LAKEHOUSE__")}
        return {**base, "LAKEHOUSE_HOME": str(home)}

    def run(
        self,
        *args: str,
        extra: Mapping[str, str] | None = None,
        timeout: float = 600,
        environ: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m <args>`` as a driver process of this lake (or of ``environ``)."""
        return subprocess.run(
            [sys.executable, "-m", *args],
            cwd=PROJECT_ROOT,
            env={**(self.environ if environ is None else environ), **(extra or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def spawn(
        self,
        *args: str,
        extra: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[str]:
        """Start ``python -m <args>`` as a driver process of this lake (or of ``environ``)."""
        return subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=PROJECT_ROOT,
            env={**(self.environ if environ is None else environ), **(extra or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def s3_lake_world(aws: LocalAws, tmp_path: Path, prefix: str = "lakehouse-test") -> S3LakeWorld:
    """Reset the local AWS and create a fresh lake on it."""
    aws.reset()
    lake = S3Lake(prefix)
    create_lake(aws, lake)
    sources = tmp_path / "sources"
    sources.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LAKEHOUSE__"))}
    environ = {
        **base,
        **aws.environ(lake.region),
        **lake_environ(aws, lake, sources=str(sources)),
    }
    return S3LakeWorld(aws, lake, sources, environ)


# Columns that differ between any two runs: wall-clock stamps; source file locations
# are compared by file name (s3://landing/... vs a local folder).
VOLATILE = ("_ingested_at", "_updated_at", "_quarantined_at")


def comparable(frame: Any) -> Any:
    """``frame`` without what differs between two equal runs (see :data:`VOLATILE`)."""
    from pyspark.sql import functions as F

    frame = frame.drop(*[c for c in VOLATILE if c in frame.columns])
    if "_source_position" in frame.columns:
        frame = frame.withColumn(
            "_source_position", F.regexp_replace("_source_position", r"^.*/", "")
        )
    return frame


def flat(location: str) -> str:
    """The snapshot folder name of a location (``tests.support.lake_days snapshot``)."""
    return location.replace("/", "_").replace(":", "_")


def last_json_line(text: str) -> Any:
    """The last line of ``text`` that is a JSON document (a driver's result)."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith(("{", "[")):
            return json.loads(line)
    raise AssertionError(f"no JSON result in the output:\n{text[-3000:]}")
