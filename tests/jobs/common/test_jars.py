from __future__ import annotations

from pathlib import Path

import pytest

from jobs.common.config import load_settings
from jobs.common.errors import MissingJarError
from jobs.common.jars import Artifact, local_jars, required_artifacts
from jobs.common.paths import LakePaths
from jobs.common.spark import spark_conf
from tests.conftest import PROJECT_ROOT

POM = PROJECT_ROOT / "jvm" / "pom.xml"


def test_required_artifacts_are_the_direct_pom_dependencies() -> None:
    assert required_artifacts(POM) == [
        Artifact("io.delta", "delta-spark_4.1_2.13", "4.2.0"),
        Artifact("io.delta", "delta-storage", "4.2.0"),
        Artifact("org.postgresql", "postgresql", "42.7.8"),
        Artifact("org.xerial", "sqlite-jdbc", "3.50.3.0"),
        Artifact("org.apache.spark", "spark-sql-kafka-0-10_2.13", "4.1.1"),
        Artifact("org.apache.spark", "spark-token-provider-kafka-0-10_2.13", "4.1.1"),
        Artifact("org.apache.kafka", "kafka-clients", "3.9.1"),
        Artifact("org.apache.commons", "commons-pool2", "2.12.1"),
    ]


def test_missing_jar_message_names_artifact_file_and_fetch_command(tmp_path: Path) -> None:
    for artifact in required_artifacts(POM)[1:]:
        (tmp_path / artifact.file_name).write_bytes(b"")
    expected = (
        "missing JVM dependencies for a local Spark session:\n"
        "  io.delta:delta-spark_4.1_2.13:4.2.0 "
        f"(expected {tmp_path}/delta-spark_4.1_2.13-4.2.0.jar)\n"
        "Fetch them once with `make jars` (needs Maven Central); runs are offline after."
    )
    with pytest.raises(MissingJarError) as err:
        local_jars(POM, tmp_path)
    assert str(err.value) == expected


def test_local_session_conf_fails_without_jar_cache(tmp_path: Path) -> None:
    settings = load_settings("local", environ={"LAKEHOUSE__JVM__JARS_DIR": str(tmp_path)})
    with pytest.raises(MissingJarError, match=r"io\.delta:delta-spark_4\.1_2\.13:4\.2\.0"):
        spark_conf(settings, LakePaths(str(tmp_path)))


def test_local_jars_lists_the_whole_cache_when_complete() -> None:
    jars = local_jars(POM, PROJECT_ROOT / ".jars")
    names = {j.name for j in jars}
    assert {"delta-spark_4.1_2.13-4.2.0.jar", "delta-storage-4.2.0.jar"} <= names
