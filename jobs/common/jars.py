"""Local JVM dependencies: resolved once from Maven Central by ``make jars``, then offline.

``jvm/pom.xml`` is the single list. Its direct dependencies are required; their
transitive jars land in the same cache folder and are put on the classpath too.
On EMR Serverless none of this runs: the release's bundled Delta jars are used.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from jobs.common.config import PROJECT_ROOT, Settings, load_settings
from jobs.common.errors import MissingJarError

_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
FETCH_COMMAND = "make jars"


@dataclass(frozen=True)
class Artifact:
    """A Maven coordinate."""

    group_id: str
    artifact_id: str
    version: str

    @property
    def coordinate(self) -> str:
        """``group:artifact:version``."""
        return f"{self.group_id}:{self.artifact_id}:{self.version}"

    @property
    def file_name(self) -> str:
        """Name that ``mvn dependency:copy-dependencies`` gives the jar."""
        return f"{self.artifact_id}-{self.version}.jar"


def required_artifacts(pom: Path) -> list[Artifact]:
    """Direct dependencies declared in ``pom``, with ``${properties}`` expanded."""
    root = ET.parse(pom).getroot()
    props = {
        el.tag.split("}", 1)[1]: (el.text or "").strip()
        for el in root.findall("m:properties/*", _NS)
    }

    def text(node: ET.Element, tag: str) -> str:
        raw = node.findtext(f"m:{tag}", default="", namespaces=_NS).strip()
        return re.sub(r"\$\{([^}]+)\}", lambda m: props.get(m.group(1), m.group(0)), raw)

    return [
        Artifact(text(dep, "groupId"), text(dep, "artifactId"), text(dep, "version"))
        for dep in root.findall("m:dependencies/m:dependency", _NS)
    ]


def local_jars(pom: Path, jars_dir: Path, fetch_command: str = FETCH_COMMAND) -> list[Path]:
    """All jars of the local cache, after checking that every required one is there.

    Raises:
        MissingJarError: a required artifact is absent; the message names it, the
            file expected and the command that fetches it.

    """
    missing = [a for a in required_artifacts(pom) if not (jars_dir / a.file_name).is_file()]
    if missing:
        names = "\n  ".join(f"{a.coordinate} (expected {jars_dir / a.file_name})" for a in missing)
        raise MissingJarError(
            f"missing JVM dependencies for a local Spark session:\n  {names}\n"
            f"Fetch them once with `{fetch_command}` (needs Maven Central); runs are offline after."
        )
    return sorted(jars_dir.glob("*.jar"))


# The S3 path on this machine (tests, `lakehouse demo --storage s3`): S3A and the SDK v1
# DynamoDB client from Maven Central (jvm/s3/pom.xml), and Delta's S3DynamoDBLogStore,
# which no Maven mirror here serves: a jar built from Delta's v4.2.0 tag, kept beside the
# project in ../shared/jars (its README says how it was built), never inside it.
S3_POM = Path("jvm/s3/pom.xml")
S3_JARS_DIR = Path(".jars-test/s3")
LOG_STORE_JAR = "delta-storage-s3-dynamodb-4.2.0.jar"
SHARED_JARS_VAR = "LAKEHOUSE_SHARED_JARS"


def s3_jars(project_root: Path, environ: dict[str, str] | None = None) -> list[Path]:
    """Jars a local session needs for a lake on S3 with the DynamoDB log store.

    Raises:
        MissingJarError: the S3 jar cache is not fetched (names ``make s3-jars``), or the
            log store's jar is not in the shared folder (names the file and the variable
            that points elsewhere).
    """
    jars = local_jars(project_root / S3_POM, project_root / S3_JARS_DIR, "make s3-jars")
    environ = dict(os.environ) if environ is None else environ
    shared = Path(environ.get(SHARED_JARS_VAR) or project_root.parent / "shared" / "jars")
    log_store = shared / LOG_STORE_JAR
    if not log_store.is_file():
        raise MissingJarError(
            f"missing Delta's S3DynamoDBLogStore jar: expected {log_store}\n"
            "io.delta:delta-storage-s3-dynamodb:4.2.0 does not resolve from this machine's "
            "Maven mirror; a build of Delta's v4.2.0 tag is kept in ../shared/jars beside "
            f"the project (see its README), or set {SHARED_JARS_VAR} to the folder holding it."
        )
    return [*jars, log_store]


def session_jars(settings: Settings) -> list[Path]:
    """Local jars of a session: the ``jvm/pom.xml`` cache, plus the lineage listener's.

    Raises:
        MissingJarError: a required jar is not in its cache (names the fetch command).

    """
    jars = local_jars(PROJECT_ROOT / settings.jvm.pom, PROJECT_ROOT / settings.jvm.jars_dir)
    listener = settings.lineage.spark_listener
    if settings.lineage.spark_listener_on:
        jars += local_jars(
            PROJECT_ROOT / listener.pom, PROJECT_ROOT / listener.jars_dir, "make openlineage-spark"
        )
    return jars


def spark_submit_args(jars: list[Path]) -> list[str]:
    """``spark-submit`` flags that put ``jars`` on driver and executors."""
    return [
        "--jars",
        ",".join(str(j) for j in jars),
        "--driver-class-path",
        ":".join(str(j) for j in jars),
    ]


if __name__ == "__main__":
    import sys

    try:
        args = spark_submit_args(session_jars(load_settings("local")))
    except MissingJarError as exc:
        sys.exit(f"lakehouse: error: {exc}")
    print(" ".join(args))
