"""The EMR artifact, built for real (wheel, venv archive) and uploaded to a moto S3."""

from __future__ import annotations

import hashlib
import json
import tarfile
import zipfile
from pathlib import Path

import boto3
import pytest

from jobs.common.config import load_settings
from jobs.main import main
from tests.support.moto_server import REGION, MotoServer


@pytest.mark.slow  # ~12 s: the venv is installed from uv's cache
def test_the_artifact_carries_code_config_and_dependencies_but_not_spark(
    tmp_path: Path, aws: MotoServer
) -> None:
    out = tmp_path / "artifact"
    assert main(["package", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == {
        "lakehouse-0.1.0-py3-none-any.whl", "main.py", "pyspark_venv.tar.gz", "requirements.txt",
    }  # fmt: skip
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    wheel = zipfile.ZipFile(out / "lakehouse-0.1.0-py3-none-any.whl").namelist()
    assert "jobs/_resources/config/expectations/silver/fct_orders.yaml" in wheel
    assert "jobs/_resources/jvm/openlineage-spark/pom.xml" in wheel
    with tarfile.open(out / "pyspark_venv.tar.gz") as archive:
        names = archive.getnames()
    site = "lib/python3.11/site-packages"
    assert f"{site}/jobs/_resources/config/base.yaml" in names
    assert any(n.startswith(f"{site}/great_expectations/") for n in names)
    assert any(n.startswith(f"{site}/delta/") for n in names)  # delta-spark's Python API
    assert not any(n.startswith((f"{site}/pyspark/", f"{site}/py4j/")) for n in names)

    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(
        Bucket="lakehouse-dev-artifacts", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    uploaded = _upload(out)
    releases = "s3://lakehouse-dev-artifacts/releases"
    assert f"{releases}/0.1.0/pyspark_venv.tar.gz" in uploaded
    assert f"{releases}/jars/openlineage-spark_2.13-1.53.0.jar" in uploaded
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="lakehouse-dev-artifacts")["Contents"]}
    built = ("main.py", "manifest.json", "pyspark_venv.tar.gz")
    assert {f"releases/0.1.0/{name}" for name in built} <= keys


def _upload(out: Path) -> list[str]:
    from aws.package import upload_artifact

    return upload_artifact(out, load_settings("dev"))
