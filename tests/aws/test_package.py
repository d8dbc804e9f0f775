"""The EMR artifact, built for real (wheel, venv archive) and uploaded to a moto S3."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import zipfile
from pathlib import Path

import boto3
import pytest

from aws.package import PackagingError, Target, check_archive
from jobs.common.config import load_settings
from jobs.main import main
from tests.support.moto_server import REGION, MotoServer

IMAGE_PYTHON = "/usr/bin/python3.11"  # emr-spark-8.2.0's interpreter (docs/adr/0005)


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
    assert manifest["architecture"] == "X86_64"
    assert manifest["platform"] == "cp311-x86_64-manylinux_2_34"
    with tarfile.open(out / "pyspark_venv.tar.gz") as archive:
        names = archive.getnames()
        _assert_starts_on_the_image(archive, machine=62)
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


def _assert_starts_on_the_image(archive: tarfile.TarFile, *, machine: int) -> None:
    """The interpreter link, ``pyvenv.cfg`` and every ELF file's machine and glibc needs."""
    python = archive.getmember("bin/python")
    assert python.issym() and python.linkname == IMAGE_PYTHON
    config = archive.extractfile("pyvenv.cfg")
    assert config is not None
    assert "home = /usr/bin" in config.read().decode().splitlines()
    outside = [m.name for m in archive.getmembers()
               if m.issym() and m.linkname.startswith("/") and m.name != "bin/python"]  # fmt: skip
    assert outside == []
    natives = 0
    for member in archive.getmembers():
        handle = archive.extractfile(member) if member.isfile() else None
        head = handle.read() if handle is not None else b""
        if head[:4] != b"\x7fELF":
            continue
        natives += 1
        assert int.from_bytes(head[18:20], "little") == machine, member.name
        needs = [int(v) for v in re.findall(rb"GLIBC_2\.([0-9]+)", head)]
        assert max(needs, default=0) <= 34, member.name  # Amazon Linux 2023: glibc 2.34
    assert natives > 20  # numpy, pandas, pyarrow, pydantic-core ...: the check saw them


@pytest.mark.slow
@pytest.mark.extended  # ~20 s (make test's budget): wheels for aarch64 from uv's cache
def test_the_arm64_archive_is_built_for_graviton_on_this_x86_machine(tmp_path: Path) -> None:
    # it cannot start here (no aarch64 machine or emulator): its files are checked instead
    out = tmp_path / "arm64"
    assert main(["package", "--out", str(out), "--architecture", "ARM64"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["architecture"], manifest["platform"]) == (
        "ARM64", "cp311-aarch64-manylinux_2_34",
    )  # fmt: skip
    with tarfile.open(out / "pyspark_venv.tar.gz") as archive:
        _assert_starts_on_the_image(archive, machine=183)
        assert any(re.search(r"cpython-311-aarch64-linux-gnu\.so$", n) for n in archive.getnames())


def _elf(machine: int, *, glibc: int = 17) -> bytes:
    header = b"\x7fELF\x02\x01\x01" + bytes(11) + machine.to_bytes(2, "little")
    return header + bytes(40) + f"GLIBC_2.{glibc}\x00GLIBC_2.3\x00".encode()


def _archive(path: Path, files: dict[str, bytes], links: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return path


GOOD_LINKS = {"bin/python": IMAGE_PYTHON, "bin/python3": "python"}
SITE = "lib/python3.11/site-packages"


@pytest.mark.parametrize(
    ("files", "links", "architecture", "reason"),
    [
        ({f"{SITE}/np/_core.cpython-311-x86_64-linux-gnu.so": _elf(62)}, GOOD_LINKS, "ARM64",
         "built for cpython-311-x86_64"),
        ({f"{SITE}/np/libgfortran.so.5": _elf(62)}, GOOD_LINKS, "ARM64",
         "ELF machine 62, not aarch64 (183)"),
        ({f"{SITE}/np/libopenblas.so": _elf(62, glibc=38)}, GOOD_LINKS, "X86_64",
         "needs GLIBC_2.38, the image has 2.34"),
        ({f"{SITE}/x/_speedups.cpython-312-x86_64-linux-gnu.so": _elf(62)}, GOOD_LINKS, "X86_64",
         "built for cpython-312-x86_64"),
        ({}, {"bin/python": "/root/.pyenv/versions/3.11.7/bin/python3.11"}, "X86_64",
         "bin/python -> /root/.pyenv/versions/3.11.7/bin/python3.11: a link outside"),
        ({}, {**GOOD_LINKS, f"{SITE}/certifi/cacert.pem": "../../../../../etc/ssl/cert.pem"},
         "X86_64", "cacert.pem -> ../../../../../etc/ssl/cert.pem: a link outside"),
    ],
    ids=["extension-arch", "library-arch", "newer-glibc", "other-python", "build-interpreter",
         "relative-escape"],
)  # fmt: skip
def test_the_archive_check_refuses_what_would_not_start_on_the_image(
    tmp_path: Path, files: dict[str, bytes], links: dict[str, str], architecture: str, reason: str
) -> None:
    archive = _archive(tmp_path / "venv.tar.gz", files, links)
    target = Target.for_settings(load_settings("dev", environ={}), architecture)
    with pytest.raises(PackagingError, match=re.escape(reason)):
        check_archive(archive, target)


def test_the_archive_check_accepts_an_archive_for_its_target(tmp_path: Path) -> None:
    files = {f"{SITE}/np/_core.cpython-311-aarch64-linux-gnu.so": _elf(183, glibc=28)}
    archive = _archive(tmp_path / "venv.tar.gz", files, GOOD_LINKS)
    check_archive(archive, Target.for_settings(load_settings("dev", environ={}), "ARM64"))
