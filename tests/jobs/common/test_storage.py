"""Small objects (run summaries, reports, lineage) on local disk and on S3 (moto)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import boto3
import pytest

from jobs.common.paths import LakePaths
from jobs.common.run_context import RunContext, job_run
from jobs.common.storage import list_uris, read_text, write_text
from tests.support.moto_server import MotoServer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("scheme", ["s3", "s3a", "s3n"])
def test_write_text_puts_an_object_for_every_s3_scheme(
    aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    monkeypatch.chdir(tmp_path)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="ops", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    write_text(f"{scheme}://ops/runs/r1/summary.json", '{"ok": true}')
    body = s3.get_object(Bucket="ops", Key="runs/r1/summary.json")["Body"].read()
    assert body == b'{"ok": true}'
    assert read_text(f"{scheme}://ops/runs/r1/summary.json") == '{"ok": true}'
    assert list_uris(f"{scheme}://ops/runs/") == ["s3://ops/runs/r1/summary.json"]
    assert list(tmp_path.iterdir()) == []  # nothing on local disk (was: a folder 's3a:')


def test_run_summary_of_an_s3a_lake_lands_in_its_bucket(
    aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="ops", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    ctx = RunContext("bronze.x", "dev", date(2026, 1, 2))
    with job_run(ctx, LakePaths("s3a://ops/lake")):
        pass
    key = "lake/runs/bronze.x__2026-01-02__a1/summary.json"
    summary = json.loads(s3.get_object(Bucket="ops", Key=key)["Body"].read())
    assert summary["status"] == "SUCCEEDED"
    assert list(tmp_path.iterdir()) == []


def test_write_text_locally_is_atomic_and_lists_by_prefix(tmp_path: Path) -> None:
    write_text(str(tmp_path / "runs" / "a" / "summary.json"), "1")
    write_text(str(tmp_path / "runs" / "b" / "summary.json"), "2")
    assert read_text(str(tmp_path / "runs" / "a" / "summary.json")) == "1"
    assert list_uris(f"{tmp_path}/runs/a") == [str(tmp_path / "runs" / "a" / "summary.json")]
    assert not list((tmp_path / "runs" / "a").glob(".*.tmp"))
