"""The deployable artifact: what EMR Serverless runs, under ``<artifacts_uri>/<version>/``.

``build_artifact`` writes into a folder:

- ``lakehouse-<version>-py3-none-any.whl``: ``jobs`` and ``aws``, with ``config/``
  (expectation suites included) and the lineage listener's pom inside;
- ``pyspark_venv.tar.gz``: a relocatable venv (venv-pack) with that wheel and the
  locked runtime dependencies (``uv export``), minus PySpark and py4j, which EMR's
  image provides; jobs get it through ``spark.archives`` (``aws/emr.py``);
- ``main.py``: the ``spark-submit`` entry script;
- ``manifest.json``: version, git commit, Python, platform and each file's SHA-256.

The archive holds compiled wheels for the machine that builds it: production
archives are built on the EMR base OS (Amazon Linux 2023, x86_64 or arm64 to match
the application), e.g. in CI on that image; a local build proves the packaging.
``upload_artifact`` copies the folder to the bucket, and the listener jar to
``<artifacts_uri>/jars/``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

from aws.emr import ENTRY_SCRIPT, VENV_ARCHIVE, ArtifactLocation
from jobs import __version__
from jobs.common.config import PROJECT_ROOT, Settings
from jobs.common.errors import LakehouseError
from jobs.common.jars import required_artifacts

PROVIDED_BY_EMR = ("pyspark", "py4j")


class PackagingError(LakehouseError):
    """The artifact could not be built or uploaded."""


def _uv() -> str:
    local = PROJECT_ROOT / ".tools" / "uv" / "bin" / "uv"
    found = str(local) if local.is_file() else shutil.which("uv")
    if not found:
        raise PackagingError("uv is needed to build the artifact: `make bootstrap` installs it")
    return found


def _run(*command: str, cwd: Path = PROJECT_ROOT) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PackagingError(f"{' '.join(command[:3])} failed:\n{result.stderr[-2000:]}")
    return result.stdout


def runtime_requirements() -> list[str]:
    """The locked runtime dependencies (no dev group), minus what EMR provides."""
    exported = _run(
        _uv(), "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project",
        "--no-header", "--no-annotate",
    )  # fmt: skip
    lines = [line.strip() for line in exported.splitlines()]
    return [
        line
        for line in lines
        if line and not line.startswith("#") and line.split("==")[0] not in PROVIDED_BY_EMR
    ]


def build_artifact(out: Path) -> Path:
    """Build the artifact into ``out`` (emptied first); returns the manifest's path."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    uv = _uv()
    _run(uv, "build", "--wheel", "--out-dir", str(out), str(PROJECT_ROOT))
    (wheel,) = out.glob("lakehouse-*.whl")
    venv = out / "venv"
    _run(uv, "venv", "--python", sys.executable, "--seed", str(venv))
    python = str(venv / "bin" / "python")
    requirements = out / "requirements.txt"
    requirements.write_text("\n".join(runtime_requirements()) + "\n")
    # a full pinned closure: installed as is, so nothing pulls pyspark back in
    _run(uv, "pip", "install", "--python", python, "--no-deps", "-r", str(requirements))
    _run(uv, "pip", "install", "--python", python, "--no-deps", str(wheel))
    _run(sys.executable, "-m", "venv_pack", "-p", str(venv), "-o", str(out / VENV_ARCHIVE))
    shutil.rmtree(venv)
    shutil.copyfile(PROJECT_ROOT / "jobs" / "main.py", out / ENTRY_SCRIPT)
    files = sorted(p for p in out.iterdir() if p.is_file() and not p.name.startswith("."))
    manifest = {
        "version": __version__,
        "commit": _commit(),
        "python": platform.python_version(),
        "platform": f"{platform.system()}-{platform.machine()}",
        "files": {p.name: _sha256(p) for p in files},
    }
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def upload_artifact(out: Path, settings: Settings, client: object = None) -> list[str]:
    """Copy the built folder to ``<artifacts_uri>/<version>/`` and the listener jar to jars/."""
    import boto3

    manifest = json.loads((out / "manifest.json").read_text())
    target = ArtifactLocation.for_settings(settings, manifest["version"])
    s3 = client or boto3.client("s3", region_name=settings.emr.region)
    uploads = [
        (out / name, f"{target.root}/{name}") for name in [*manifest["files"], "manifest.json"]
    ]
    listener = settings.lineage.spark_listener
    if settings.lineage.spark_listener_on:
        (jar,) = required_artifacts(PROJECT_ROOT / listener.pom)
        local = PROJECT_ROOT / listener.jars_dir / jar.file_name
        if not local.is_file():
            raise PackagingError(f"{local} is missing: fetch it with `make openlineage-spark`")
        base = (settings.storage.artifacts_uri or "").rstrip("/")
        uploads.append((local, f"{base}/jars/{jar.file_name}"))
    done = []
    for path, uri in uploads:
        parsed = urlparse(uri)
        s3.upload_file(str(path), parsed.netloc, parsed.path.lstrip("/"))  # type: ignore[attr-defined]
        done.append(uri)
    return done


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _commit() -> str:
    try:
        return _run("git", "rev-parse", "HEAD").strip()
    except (PackagingError, OSError):
        return "unknown"
