"""Typed configuration, resolved once at the entry point.

Files are layered: ``config/base.yaml``, then ``config/sources.yaml`` (source specs,
as data), then ``config/<env>.yaml``, then environment variables
``LAKEHOUSE__SECTION__KEY=value`` (YAML-parsed). The merged mapping is validated into
frozen pydantic models. Every leaf remembers which file (or variable) set it, so an
unknown key names the file it is in and a missing key names the files that may set it.

Secrets never appear as values: a :class:`SecretRef` names a Secrets Manager secret
or an environment variable, and is resolved at job start by the IO layer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from jobs.common.errors import ConfigError

ENVIRONMENTS = ("local", "dev", "prod")
ENV_PREFIX = "LAKEHOUSE__"
# A source checkout holds config/ and jvm/ at its root; an installed wheel (EMR's venv
# archive, Airflow's workers) carries the same files under jobs/_resources/.
_PACKAGED = Path(__file__).resolve().parents[1] / "_resources"
PROJECT_ROOT = (
    _PACKAGED
    if (_PACKAGED / "config" / "base.yaml").is_file()
    else Path(__file__).resolve().parents[2]
)
DEFAULT_CONFIG_DIR = PROJECT_ROOT / "config"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SecretRef(_Frozen):
    """Where a secret lives, written ``secretsmanager:<name or ARN>`` or ``env:<VAR>``.

    The reference is a single scalar so an overlay replaces it whole.
    """

    kind: Literal["secretsmanager", "env"]
    name: str

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, str):
            kind, sep, name = value.partition(":")
            if not sep or kind not in ("secretsmanager", "env") or not name:
                raise ValueError(
                    f"expected 'secretsmanager:<name or ARN>' or 'env:<VAR>', found {value!r}"
                )
            return {"kind": kind, "name": name}
        return value

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


class StorageSettings(_Frozen):
    """Where the lake lives. ``root`` None means ``LAKEHOUSE_HOME`` (local runs).

    ``layers`` puts a layer in its own bucket (AWS: ``s3://lakehouse-<env>-bronze``, ...);
    a layer not listed lives under ``root``; ``sources`` (the local stand-ins of the
    source systems and the FX files) may live apart from a lake on object storage.
    ``delta_log_table`` is the DynamoDB table of Delta's ``S3DynamoDBLogStore``
    (docs/adr/0003), created by Terraform. S3 locations may be written ``s3a://``:
    every path made from them is ``s3://`` (``jobs.common.paths.canonical_uri``).
    """

    root: str | None
    artifacts_uri: str | None = None
    layers: dict[Literal["sources", "landing", "bronze", "silver", "gold"], str] = Field(
        default_factory=dict
    )
    delta_log_table: str | None = None


class MonitoringSettings(_Frozen):
    """Run metrics (``jobs.common.metrics``, monitoring/metrics.json).

    Every run writes its metrics into its summary; ``publish`` also sends them to
    CloudWatch: ``emf`` (Embedded Metric Format lines on stdout, which EMR Serverless
    ships to the job log group) or ``cloudwatch`` (``PutMetricData``).
    """

    namespace: str = "Lakehouse"
    publish: Literal["none", "emf", "cloudwatch"] = "none"


class SparkSettings(_Frozen):
    """Spark session settings; the builder in ``jobs.common.spark`` applies them.

    ``extra_conf`` is applied last. Its list-valued settings (``spark.jars``, the driver
    and executor class paths and Java options) are appended to the project's own rather
    than replacing them (``jobs.common.spark.APPENDED_SETTINGS``).
    """

    app_name: str
    master: str | None
    shuffle_partitions: int = Field(gt=0)
    driver_memory: str
    ui_enabled: bool
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"]
    catalog: Literal["in-memory", "hive", "glue"]
    extra_conf: dict[str, str]


class JvmSettings(_Frozen):
    """Local JVM dependencies: the pom listing them and the cache folder they land in."""

    pom: str
    jars_dir: str


class LoggingSettings(_Frozen):
    """Structured logging."""

    level: Literal["ERROR", "WARNING", "INFO", "DEBUG"]


class GeneratorSettings(_Frozen):
    """Defaults of the domain data generator (CLI flags override them)."""

    seed: int
    scale: float = Field(gt=0)
    days: int = Field(gt=0)
    start_date: date
    malformed_rate: float = Field(ge=0, le=0.5)
    duplicate_rate: float = Field(ge=0, le=0.5)
    late_rate: float = Field(ge=0, le=0.5)
    schema_change_day: int = Field(gt=0)


class EntitySpec(_Frozen):
    """One entity of a source system: its business key and incremental cursor.

    ``mode``: ``incremental`` (rows past the cursor's watermark) or ``snapshot`` (the
    whole table every run, compared with the last snapshot: upserts and hard deletes;
    ``jobs/bronze/snapshot.py``).
    """

    primary_key: list[str]
    cursor: str | None = None
    mode: Literal["incremental", "snapshot"] = "incremental"


class SourceSpec(_Frozen):
    """A source system, declared as data; connectors are chosen by ``type``."""

    type: Literal["jdbc", "rest", "kafka", "files", "fx"]
    description: str
    entities: dict[str, EntitySpec]
    credentials: SecretRef | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class SilverTableSpec(_Frozen):
    """A conformed Silver table built from one Bronze table (``config/tables.yaml``).

    ``kind``: ``scd2`` (history by ``sequence_by``, deletes where ``deletes`` holds),
    ``latest`` (one row per key, the newest by ``sequence_by``; TRUNCATE events where
    ``truncates`` holds) or ``first`` (one row per key, the first seen; a dedup).
    ``sequence_by`` is one column or several (compared in order). ``columns`` maps each
    stored column to its conformed type (see ``jobs/silver/conform.py``).
    """

    description: str
    kind: Literal["scd2", "latest", "first"]
    source: str
    keys: list[str]
    columns: dict[str, str]
    sequence_by: str | list[str] | None = None
    deletes: str | None = None
    except_columns: list[str] = Field(default_factory=list)
    track_history_except_columns: list[str] | None = None
    truncates: str | None = None  # latest: a SQL predicate true for TRUNCATE events
    tombstones: bool = False  # scd2: a delete also opens a row marked is_deleted
    current_valid_to: str | None = None  # scd2: SQL expression for open rows' valid_to

    @property
    def sequence_columns(self) -> list[str]:
        """``sequence_by`` as a list (empty when not given)."""
        if self.sequence_by is None:
            return []
        return [self.sequence_by] if isinstance(self.sequence_by, str) else list(self.sequence_by)

    @model_validator(mode="after")
    def _options_fit_the_kind(self) -> SilverTableSpec:
        scd2_only = {"tombstones": self.tombstones, "current_valid_to": self.current_valid_to}
        misplaced = [name for name, value in scd2_only.items() if value and self.kind != "scd2"]
        if self.truncates is not None and self.kind != "latest":
            misplaced.append("truncates")
        if misplaced:
            raise ValueError(f"{misplaced} do not apply to kind {self.kind!r}")
        if self.kind in ("scd2", "latest") and not self.sequence_columns:
            raise ValueError(f"kind {self.kind!r} needs sequence_by")
        if self.truncates is not None and len(self.sequence_columns) != 1:
            raise ValueError("truncates needs sequence_by to be one column")
        return self


class SegmentRuleSettings(_Frozen):
    """An RFM segment: inclusive score ranges (absent: 1-5)."""

    name: str
    r: tuple[int, int] = (1, 5)
    f: tuple[int, int] = (1, 5)
    m: tuple[int, int] = (1, 5)


class ChurnRiskSettings(_Frozen):
    """``churn_risk`` thresholds (see ``jobs.gold.customer_360.churn_risk``)."""

    high_after_days: int = Field(gt=0)
    medium_after_days: int = Field(gt=0)
    engaged_events_30d: int = Field(ge=0)
    unhappy_csat: float = Field(ge=1, le=5)


class Customer360Settings(_Frozen):
    """``gold.customer_360``: the documented, configurable parts of its metrics."""

    rfm_segments: list[SegmentRuleSettings]
    rfm_default: str
    churn_risk: ChurnRiskSettings


class MaintenanceSettings(_Frozen):
    """OPTIMIZE / VACUUM of every table (the maintenance job)."""

    vacuum_retention_hours: int = Field(ge=0)
    zorder_by: dict[str, list[str]] = Field(default_factory=dict)


class GoldSettings(_Frozen):
    """Gold tables."""

    customer_360: Customer360Settings
    maintenance: MaintenanceSettings


class SparkListenerSettings(_Frozen):
    """The openlineage-spark listener: one event pair per Spark action, under the job run.

    Its jar is listed in ``pom``; local runs read it from ``jars_dir`` (``make
    openlineage-spark``), EMR runs from ``<storage.artifacts_uri>/jars/``.
    """

    enabled: bool = False
    pom: str = "jvm/openlineage-spark/pom.xml"
    jars_dir: str = ".jars-lineage"


class LineageSettings(_Frozen):
    """OpenLineage events (``jobs.common.lineage``).

    ``transport`` is an openlineage-python transport config (``type``: file, console,
    http, ...); a standard OpenLineage config (``openlineage.yml``, ``OPENLINEAGE_*``)
    takes precedence. ``namespace`` defaults to ``lakehouse-<env>``.
    """

    enabled: bool = True
    namespace: str | None = None
    transport: dict[str, Any] = Field(default_factory=lambda: {"type": "file"})
    spark_listener: SparkListenerSettings = Field(default_factory=SparkListenerSettings)

    @property
    def spark_listener_on(self) -> bool:
        """The listener runs only when lineage itself is on."""
        return self.enabled and self.spark_listener.enabled


DELTA_LIB = "/usr/share/aws/delta/lib"


class EmrImage(_Frozen):
    """What the release's image provides, where (docs/adr/0005).

    ``python`` is the interpreter the venv archive links to; ``glibc`` the newest
    symbol version a native file in the archive may need (Amazon Linux 2023);
    ``jars`` go on every job's ``--jars``: Delta and its DynamoDB log store.
    """

    python: str = "/usr/bin/python3.11"
    python_version: str = "3.11"
    glibc: str = "2.34"
    jars: tuple[str, ...] = (
        f"{DELTA_LIB}/delta-spark.jar",
        f"{DELTA_LIB}/delta-storage.jar",
        f"{DELTA_LIB}/delta-storage-s3-dynamodb.jar",
    )


class EmrSettings(_Frozen):
    """The EMR Serverless application jobs run on (ids come from Terraform outputs).

    Sizes are spark-submit settings per job class (``bronze``, ``silver``, ``gold``,
    ``maintenance``); ``log_group`` receives driver and executor logs, next to S3.
    ``architecture`` is the application's (Terraform ``architecture``): the venv
    archive's native wheels are resolved for it.
    """

    release_label: str = "emr-spark-8.2.0"
    architecture: Literal["X86_64", "ARM64"] = "X86_64"
    image: EmrImage = Field(default_factory=EmrImage)
    application_id: str | None = None
    execution_role_arn: str | None = None
    region: str = "eu-west-1"
    log_group: str | None = None
    artifact_version: str | None = None  # None: the package version (jobs.__version__)
    sizes: dict[str, dict[str, str]] = Field(default_factory=dict)


class OrchestrationSettings(_Frozen):
    """How Airflow schedules the jobs (``dags/``) and how ``lakehouse backfill`` runs them."""

    schedule: str = "0 3 * * *"
    start_date: date = date(2026, 1, 1)
    catchup: bool = False
    retries: int = Field(default=1, ge=0)
    retry_delay_minutes: float = Field(default=5, gt=0)
    retry_exponential_backoff: bool = False
    max_retry_delay_minutes: float = Field(default=60, gt=0)
    timeout_minutes: dict[str, int] = Field(default_factory=lambda: {"default": 60})
    waiter_delay_seconds: int = Field(default=30, gt=0)
    freshness_hours: float = Field(default=26, gt=0)
    failure_topic_arn: str | None = None
    maintenance_schedule: str = "0 5 * * 0"

    def timeout_for(self, job: str) -> int:
        """Execution timeout of ``job`` in minutes: by job, by layer, else the default."""
        layer = job.split(".", 1)[0]
        table = self.timeout_minutes
        return table.get(job, table.get(layer, table["default"]))


class QualitySettings(_Frozen):
    """Quality gates (``jobs.common.quality``): suites in ``config/expectations/``."""

    mode: Literal["strict", "warn-only"]
    quarantine_threshold: float = Field(ge=0, le=1)
    max_row_loss: float = Field(ge=0, le=1)


class Settings(_Frozen):
    """The whole resolved configuration of one environment."""

    project: str
    env: Literal["local", "dev", "prod"]
    runtime: Literal["local", "emr"]
    storage: StorageSettings
    spark: SparkSettings
    jvm: JvmSettings
    logging: LoggingSettings
    generator: GeneratorSettings
    sources: dict[str, SourceSpec]
    quality: QualitySettings
    silver: dict[str, SilverTableSpec] = Field(default_factory=dict)
    gold: GoldSettings
    lineage: LineageSettings = Field(default_factory=LineageSettings)
    emr: EmrSettings = Field(default_factory=EmrSettings)
    orchestration: OrchestrationSettings = Field(default_factory=OrchestrationSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    config_dir: str = str(DEFAULT_CONFIG_DIR)  # where the files came from (suites live there)


def with_source_options(settings: Settings, source: str, **options: Any) -> Settings:
    """``settings`` with ``options`` set on ``source`` (a running local service's URL)."""
    spec = settings.sources[source]
    updated = spec.model_copy(update={"options": {**spec.options, **options}})
    return settings.model_copy(update={"sources": {**settings.sources, source: updated}})


def load_settings(
    env: str,
    *,
    config_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve the configuration of ``env`` into frozen :class:`Settings`.

    Args:
        env: one of ``local``, ``dev``, ``prod``.
        config_dir: folder holding ``base.yaml``, ``sources.yaml``, ``tables.yaml``
            and ``<env>.yaml``.
        environ: environment used for ``LAKEHOUSE__*`` overrides (default ``os.environ``).

    Returns:
        The validated, immutable settings.

    Raises:
        ConfigError: unknown environment, unreadable file, unknown key, missing key
            or invalid value; the message names the key and the file (or variable).

    Example:
        >>> settings = load_settings("local")
        >>> settings.spark.master
        'local[2]'

    """
    if env not in ENVIRONMENTS:
        raise ConfigError(f"unknown environment '{env}': expected one of {', '.join(ENVIRONMENTS)}")
    folder = config_dir or DEFAULT_CONFIG_DIR
    environ = os.environ if environ is None else environ
    layers = [
        folder / "base.yaml",
        folder / "sources.yaml",
        folder / "tables.yaml",
        folder / f"{env}.yaml",
    ]
    merged: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    for path in layers:
        _merge(merged, _read_yaml(path), _display(path), origin, ())
    _merge(merged, _env_overrides(environ), "", origin, (), env_names=True)
    try:
        return Settings.model_validate({**merged, "config_dir": str(folder)})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin, [_display(p) for p in layers])) from None


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{_display(path)}: configuration file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{_display(path)}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{_display(path)}: expected a mapping at the top, found {type(data).__name__}"
        )
    return data


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__")]
        node = tree
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = {"__env__": name, "value": yaml.safe_load(environ[name])}
    return tree


def _merge(
    into: dict[str, Any],
    layer: Mapping[str, Any],
    source: str,
    origin: dict[tuple[str, ...], str],
    prefix: tuple[str, ...],
    *,
    env_names: bool = False,
) -> None:
    for key, value in layer.items():
        path = (*prefix, str(key))
        if env_names and isinstance(value, dict) and "__env__" in value:
            into[key] = value["value"]
            origin[path] = f"environment variable {value['__env__']}"
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            origin.setdefault(path, source)
            _merge(into[key], value, source, origin, path, env_names=env_names)
        else:
            into[key] = value
            _mark(origin, path, value, source)


def _mark(
    origin: dict[tuple[str, ...], str], path: tuple[str, ...], value: Any, source: str
) -> None:
    origin[path] = source
    if isinstance(value, dict):
        for key, child in value.items():
            _mark(origin, (*path, str(key)), child, source)


def _describe(exc: ValidationError, origin: dict[tuple[str, ...], str], files: list[str]) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        key = ".".join(loc)
        if error["type"] == "extra_forbidden":
            lines.append(f"{_owner(origin, loc)}: unknown key '{key}'")
        elif error["type"] == "missing":
            lines.append(f"missing key '{key}': set it in {' or '.join(files)}")
        else:
            lines.append(f"{_owner(origin, loc)}: invalid value for '{key}': {error['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _owner(origin: dict[tuple[str, ...], str], loc: tuple[str, ...]) -> str:
    for end in range(len(loc), 0, -1):
        if loc[:end] in origin:
            return origin[loc[:end]]
    return "configuration"
