from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from jobs.common.config import SecretRef, SilverTableSpec, load_settings
from jobs.common.errors import ConfigError
from tests.conftest import PROJECT_ROOT


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", target)
    return target


@pytest.mark.parametrize("env", ["local", "dev", "prod"])
def test_load_settings_resolves_every_environment(env: str) -> None:
    settings = load_settings(env, environ={})
    assert settings.env == env
    assert settings.runtime == ("local" if env == "local" else "emr")


def test_load_settings_overlay_overrides_base() -> None:
    dev = load_settings("dev", environ={})
    assert (dev.spark.master, dev.spark.shuffle_partitions, dev.spark.catalog) == (None, 64, "glue")
    assert dev.storage.root == "s3://lakehouse-dev-artifacts/ops"
    assert dev.storage.layers["bronze"] == "s3://lakehouse-dev-bronze"
    assert str(dev.sources["crm"].credentials) == "secretsmanager:lakehouse/dev/crm-token"
    assert dev.spark.driver_memory == "4g"  # inherited from base.yaml


def test_load_settings_is_frozen() -> None:
    settings = load_settings("local", environ={})
    with pytest.raises(ValueError, match="frozen"):
        settings.spark.shuffle_partitions = 8  # type: ignore[misc]


def test_unknown_key_in_overlay_names_key_and_file(config_dir: Path) -> None:
    (config_dir / "local.yaml").write_text("env: local\nspark:\n  shufle_partitions: 8\n")
    expected = (
        "invalid configuration:\n"
        f"  {config_dir / 'local.yaml'}: unknown key 'spark.shufle_partitions'"
    )
    with pytest.raises(ConfigError) as err:
        load_settings("local", config_dir=config_dir, environ={})
    assert str(err.value) == expected


def test_unknown_key_in_project_config_is_shown_relative() -> None:
    with pytest.raises(
        ConfigError,
        match=r"environment variable LAKEHOUSE__SPARK__COLOR: "
        r"unknown key 'spark\.color'",
    ):
        load_settings("local", environ={"LAKEHOUSE__SPARK__COLOR": "blue"})


def test_missing_key_names_key_and_files(config_dir: Path) -> None:
    base = (config_dir / "base.yaml").read_text()
    (config_dir / "base.yaml").write_text(base.replace("  driver_memory: 4g\n", ""))
    expected = (
        "invalid configuration:\n"
        f"  missing key 'spark.driver_memory': set it in {config_dir / 'base.yaml'} or "
        f"{config_dir / 'sources.yaml'} or {config_dir / 'tables.yaml'} or "
        f"{config_dir / 'local.yaml'}"
    )
    with pytest.raises(ConfigError) as err:
        load_settings("local", config_dir=config_dir, environ={})
    assert str(err.value) == expected


def test_invalid_value_names_key_and_file(config_dir: Path) -> None:
    (config_dir / "dev.yaml").write_text(
        "env: dev\nruntime: emr\nspark:\n  shuffle_partitions: 0\n"
    )
    with pytest.raises(
        ConfigError,
        match=r"dev\.yaml: invalid value for "
        r"'spark\.shuffle_partitions': Input should be greater",
    ):
        load_settings("dev", config_dir=config_dir, environ={})


def test_environment_variable_overrides_files() -> None:
    settings = load_settings(
        "local",
        environ={
            "LAKEHOUSE__SPARK__SHUFFLE_PARTITIONS": "16",
            "LAKEHOUSE__LOGGING__LEVEL": "DEBUG",
        },
    )
    assert (settings.spark.shuffle_partitions, settings.logging.level) == (16, "DEBUG")


def test_unknown_environment_is_rejected() -> None:
    with pytest.raises(
        ConfigError, match="unknown environment 'qa': expected one of local, dev, prod"
    ):
        load_settings("qa", environ={})


def test_missing_file_is_named(config_dir: Path) -> None:
    (config_dir / "prod.yaml").unlink()
    with pytest.raises(ConfigError, match=r"prod\.yaml: configuration file not found"):
        load_settings("prod", config_dir=config_dir, environ={})


def test_secret_reference_parses_kind_and_name() -> None:
    ref = SecretRef.model_validate("secretsmanager:arn:aws:secretsmanager:eu-west-1:1:secret:x")
    assert (ref.kind, ref.name) == ("secretsmanager", "arn:aws:secretsmanager:eu-west-1:1:secret:x")


def test_secret_value_instead_of_reference_is_rejected(config_dir: Path) -> None:
    sources = (config_dir / "sources.yaml").read_text()
    (config_dir / "sources.yaml").write_text(
        sources.replace("credentials: env:LAKEHOUSE_CRM_TOKEN", "credentials: hunter2")
    )
    with pytest.raises(
        ConfigError,
        match=r"sources\.yaml: invalid value for "
        r"'sources\.crm\.credentials'.*'secretsmanager:<name or "
        r"ARN>' or 'env:<VAR>'",
    ):
        load_settings("local", config_dir=config_dir, environ={})


def _silver(**fields: object) -> SilverTableSpec:
    base: dict[str, object] = {
        "description": "t", "source": "s", "keys": ["id"], "columns": {"id": "string"},
    }  # fmt: skip
    return SilverTableSpec.model_validate({**base, **fields})


def test_silver_change_options_are_checked_against_the_kind() -> None:
    spec = _silver(kind="scd2", sequence_by=["ts", "lsn"], tombstones=True)
    assert spec.sequence_columns == ["ts", "lsn"]
    assert _silver(kind="latest", sequence_by="ts", truncates="op = 'T'").sequence_columns == [
        "ts"
    ]
    with pytest.raises(ValidationError, match=r"\['tombstones'\] do not apply to kind 'latest'"):
        _silver(kind="latest", sequence_by="ts", tombstones=True)
    with pytest.raises(ValidationError, match=r"\['truncates'\] do not apply to kind 'scd2'"):
        _silver(kind="scd2", sequence_by="ts", truncates="op = 'T'")
    with pytest.raises(ValidationError, match="truncates needs sequence_by to be one column"):
        _silver(kind="latest", sequence_by=["ts", "lsn"], truncates="op = 'T'")
    with pytest.raises(ValidationError, match="kind 'scd2' needs sequence_by"):
        _silver(kind="scd2")
