"""The deployable artifact: what EMR Serverless runs, under ``<artifacts_uri>/<version>/``.

``build_artifact`` writes into a folder:

- ``lakehouse-<version>-py3-none-any.whl``: ``jobs`` and ``aws``, with ``config/``
  (expectation suites included) and the lineage listener's pom inside;
- ``pyspark_venv.tar.gz``: a venv (venv-pack) with that wheel and the locked runtime
  dependencies (``uv export``), minus PySpark and py4j, which EMR's image provides;
  jobs get it through ``spark.archives`` (``aws/emr.py``);
- ``main.py``: the ``spark-submit`` entry script;
- ``manifest.json``: version, git commit, target platform and each file's SHA-256;
- ``mwaa/``: the DAG files with ``aws`` and ``jobs`` beside them, and the
  ``requirements.txt``, for the MWAA environment's bucket (:func:`build_mwaa_bundle`).

The archive is made for the application, not for the machine that builds it
(docs/adr/0005): every wheel is resolved for ``emr.image`` (CPython 3.11, manylinux up to
the image's glibc) and ``emr.architecture``, binary wheels only; ``bin/python`` links to
the image's interpreter and ``pyvenv.cfg`` names its folder. :func:`check_archive` then
reads the packed archive back and refuses it (``PackagingError``) if a native file is
for another architecture, Python or a newer glibc, or a link leaves the archive (other
than the interpreter's). ``upload_artifact`` copies the folder to the bucket, and the
listener jar to ``<artifacts_uri>/jars/``.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from aws.emr import ENTRY_SCRIPT, VENV_ARCHIVE, ArtifactLocation
from jobs import __version__
from jobs.common.config import PROJECT_ROOT, EmrImage, Settings
from jobs.common.errors import LakehouseError
from jobs.common.jars import required_artifacts

PROVIDED_BY_EMR = ("pyspark", "py4j")
# emr.architecture -> the machine name in wheel tags and the ELF e_machine of its files
MACHINES = {"X86_64": ("x86_64", 62), "ARM64": ("aarch64", 183)}
_ELF = b"\x7fELF"
MWAA_BUNDLE = "mwaa"
# terraform/modules/mwaa airflow_version; the provider pins are that release's constraints
MWAA_CONSTRAINTS = (
    "https://raw.githubusercontent.com/apache/airflow/constraints-3.0.6/constraints-3.12.txt"
)
MWAA_PROVIDERS = (
    "apache-airflow-providers-amazon[aiobotocore]==9.12.0",
    "apache-airflow-providers-openlineage==2.6.1",
)
_GLIBC = re.compile(rb"GLIBC_2\.([0-9]+)")
_EXTENSION = re.compile(r"\.cpython-(\d+)-([a-z0-9_]+)-linux-gnu\.so$")


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


@dataclass(frozen=True)
class Target:
    """The platform an archive is made for: the image's Python and glibc, an architecture."""

    image: EmrImage
    architecture: str  # emr.architecture: X86_64 | ARM64

    @classmethod
    def for_settings(cls, settings: Settings, architecture: str | None = None) -> Target:
        """The target of ``settings``' application (``architecture`` overrides it)."""
        chosen = architecture or settings.emr.architecture
        if chosen not in MACHINES:
            raise PackagingError(f"architecture {chosen!r}: expected one of {sorted(MACHINES)}")
        return cls(settings.emr.image, chosen)

    @property
    def machine(self) -> str:
        """``x86_64`` or ``aarch64``."""
        return MACHINES[self.architecture][0]

    @property
    def platform_tag(self) -> str:
        """The ``--python-platform`` for uv: manylinux up to the image's glibc."""
        return f"{self.machine}-manylinux_{self.image.glibc.replace('.', '_')}"


def build_artifact(out: Path, target: Target) -> Path:
    """Build the artifact for ``target`` into ``out`` (emptied first); returns the manifest.

    Raises:
        PackagingError: a tool failed, a dependency has no wheel for the target, or the
            packed archive fails :func:`check_archive`.
    """
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    uv = _uv()
    _run(uv, "build", "--wheel", "--out-dir", str(out), str(PROJECT_ROOT))
    (wheel,) = out.glob("lakehouse-*.whl")
    venv = out / "venv"
    # any CPython of the image's minor version lays the venv out; it never ships
    _run(uv, "venv", "--python", target.image.python_version, str(venv))
    python = str(venv / "bin" / "python")
    requirements = out / "requirements.txt"
    requirements.write_text("\n".join(runtime_requirements()) + "\n")
    # a full pinned closure, installed as is (nothing pulls pyspark back in), each wheel
    # chosen for the target platform whatever this machine is; no source builds
    platform = (
        *("--python-platform", target.platform_tag),
        *("--python-version", target.image.python_version, "--only-binary", ":all:"),
    )
    for what in ("-r", str(requirements)), (str(wheel),):
        _run(uv, "pip", "install", "--python", python, *platform, "--no-deps", *what)
    _point_at_image_python(venv, target.image)
    archive = out / VENV_ARCHIVE
    _run(sys.executable, "-m", "venv_pack", "-p", str(venv), "-o", str(archive))
    shutil.rmtree(venv)
    check_archive(archive, target)
    shutil.copyfile(PROJECT_ROOT / "jobs" / "main.py", out / ENTRY_SCRIPT)
    build_mwaa_bundle(wheel, out / MWAA_BUNDLE)
    files = sorted(p for p in out.iterdir() if p.is_file() and not p.name.startswith("."))
    manifest = {
        "version": __version__,
        "commit": _commit(),
        "architecture": target.architecture,
        "python": target.image.python,
        "platform": f"cp{target.image.python_version.replace('.', '')}-{target.platform_tag}",
        "files": {p.name: _sha256(p) for p in files},
    }
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def build_mwaa_bundle(wheel: Path, folder: Path) -> None:
    """What MWAA's bucket gets: ``dags/`` (DAG files + our packages) and ``requirements.txt``.

    MWAA puts its ``dags/`` folder on ``sys.path``: ``aws`` and ``jobs`` (with ``config/``)
    from ``wheel`` sit beside the DAG files, ``.airflowignore`` keeps the scheduler from
    parsing them. The DAG code path imports no Spark (tests/dags), so the workers need
    nothing beyond MWAA's image: ``requirements.txt`` only names the providers the DAGs
    use, under MWAA's constraints (docs/adr/0005).
    """
    dags = folder / "dags"
    dags.mkdir(parents=True)
    for dag_file in sorted((PROJECT_ROOT / "dags").glob("*.py")):
        shutil.copyfile(dag_file, dags / dag_file.name)
    with zipfile.ZipFile(wheel) as packed:
        for name in packed.namelist():
            if name.split("/", 1)[0] in ("aws", "jobs"):
                packed.extract(name, dags)
    (dags / ".airflowignore").write_text("aws/\njobs/\n")
    (folder / "requirements.txt").write_text(
        "\n".join([f"--constraint {MWAA_CONSTRAINTS}", *MWAA_PROVIDERS]) + "\n"
    )


def _point_at_image_python(venv: Path, image: EmrImage) -> None:
    """``bin/python*`` -> the image's interpreter; ``pyvenv.cfg`` ``home`` -> its folder."""
    version = image.python_version
    for name in ("python", "python3", f"python{version}"):
        link = venv / "bin" / name
        link.unlink(missing_ok=True)
        link.symlink_to(image.python if name == "python" else "python")
    kept = [
        line
        for line in (venv / "pyvenv.cfg").read_text().splitlines()
        if line.split("=")[0].strip() not in ("home", "executable", "command", "uv")
    ]
    home = posixpath.dirname(image.python)
    (venv / "pyvenv.cfg").write_text("\n".join([f"home = {home}", *kept]) + "\n")


def check_archive(archive: Path, target: Target) -> None:
    """Refuse an archive that cannot start on ``target``'s image.

    Every native file (ELF) must be for the target's machine and need no glibc newer
    than the image's; an extension module must be for the image's CPython; a link must
    stay inside the archive, except ``bin/python`` -> the image's interpreter.

    Raises:
        PackagingError: listing every offending member (first 20).
    """
    problems: list[str] = []
    machine, e_machine = MACHINES[target.architecture]
    glibc = int(target.image.glibc.split(".")[1])
    cpython = target.image.python_version.replace(".", "")
    with tarfile.open(archive) as packed:
        for member in packed:
            name = member.name.removeprefix("./")
            if member.issym() or member.islnk():
                problems += _link_problems(name, member.linkname, target.image.python)
                continue
            if not member.isfile():
                continue
            tag = _EXTENSION.search(name)
            if tag and (tag.group(1) != cpython or tag.group(2) != machine):
                problems.append(f"{name}: built for cpython-{tag.group(1)}-{tag.group(2)}")
            handle = packed.extractfile(member)
            if handle is None or handle.read(4) != _ELF:
                continue
            data = _ELF + handle.read()
            found = int.from_bytes(data[18:20], "little")
            if found != e_machine:
                problems.append(f"{name}: ELF machine {found}, not {machine} ({e_machine})")
            needed = max((int(m) for m in _GLIBC.findall(data)), default=0)
            if needed > glibc:
                has = target.image.glibc
                problems.append(f"{name}: needs GLIBC_2.{needed}, the image has {has}")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise PackagingError(
            f"{archive} would not start on {target.architecture} with glibc "
            f"{target.image.glibc} and {target.image.python}:\n  {shown}{more}"
        )


def _link_problems(name: str, target: str, interpreter: str) -> list[str]:
    if posixpath.isabs(target):
        allowed = name == "bin/python" and target == interpreter
        return [] if allowed else [f"{name} -> {target}: a link outside the archive"]
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if resolved.startswith("../") or resolved == "..":
        return [f"{name} -> {target}: a link outside the archive"]
    return []


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
