"""EMR Serverless job runs as data: the requests Airflow and ``lakehouse submit`` send.

Pure functions from settings and plain values to the ``StartJobRun`` pieces, so the
DAG files only wire tasks and every request shape is unit-tested:

- :func:`job_driver`: ``sparkSubmit`` with the versioned artifact's entry script, the
  job's arguments, the Python venv archive (``spark.archives``), the image's Delta and
  log-store jars and the lineage listener's (``--jars``), and the job class's sizes;
- :func:`configuration_overrides`: logs to S3 and CloudWatch, Spark defaults;
- :func:`run_name` and :func:`client_token`: deterministic per task and date, so a
  retried request never starts a second run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from jobs import __version__
from jobs.common.config import Settings
from jobs.common.spark import listener_jar_uri

ENTRY_SCRIPT = "main.py"
VENV_ARCHIVE = "pyspark_venv.tar.gz"
VENV_ALIAS = "environment"  # the archive is unpacked under this name on every node
PYTHON = f"./{VENV_ALIAS}/bin/python"
PARENT_CONF = "spark.emr-serverless.driverEnv.OPENLINEAGE_PARENT_ID"
# A Bronze task of an Airflow *backfill* run re-reads its data interval ("none" otherwise:
# a scheduled or manual run continues from the watermark; EMR refuses empty arguments).
BACKFILL_WINDOW = (
    "{% if dag_run.run_type == 'backfill' %}{{ data_interval_start | ds }}..{{ ds }}"
    "{% else %}none{% endif %}"
)
ACTIVE_STATES = ("SUBMITTED", "PENDING", "SCHEDULED", "RUNNING", "QUEUED")
_TOKEN_CHARS = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class ArtifactLocation:
    """A deployable build: ``<artifacts_uri>/<version>/`` (see ``aws/package.py``)."""

    root: str

    @classmethod
    def for_settings(cls, settings: Settings, version: str | None = None) -> ArtifactLocation:
        """The build ``version`` (default: config's ``emr.artifact_version``, else ours)."""
        base = settings.storage.artifacts_uri
        if not base:
            raise ValueError(
                f"storage.artifacts_uri is not set for env {settings.env}: "
                "EMR runs read their code from the artifacts bucket"
            )
        chosen = version or settings.emr.artifact_version or __version__
        return cls(f"{base.rstrip('/')}/{chosen}")

    @property
    def entry_point(self) -> str:
        """The ``spark-submit`` entry script (``jobs/main.py``)."""
        return f"{self.root}/{ENTRY_SCRIPT}"

    @property
    def venv_archive(self) -> str:
        """The packed Python environment (our wheel and its dependencies)."""
        return f"{self.root}/{VENV_ARCHIVE}"


def job_class(job: str) -> str:
    """The size class of ``job``: the layer of its name (``silver.fct_orders`` -> silver)."""
    return job.split(".", 1)[0]


def job_driver(
    settings: Settings,
    artifact: ArtifactLocation,
    job: str,
    logical_date: str,
    *,
    attempt: str | int = 1,
    window: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The ``jobDriver`` of one job run (``logical_date`` may be a template, ``{{ ds }}``).

    ``window`` (first, last day) makes a Bronze job re-read that window instead of
    continuing from its watermark.
    """
    conf: dict[str, str] = {
        "spark.archives": f"{artifact.venv_archive}#{VENV_ALIAS}",
        "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": PYTHON,
        "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": PYTHON,
        "spark.executorEnv.PYSPARK_PYTHON": PYTHON,
        **settings.emr.sizes.get(job_class(job), {}),
    }
    # One --jars list (spark-submit's --jars replaces a --conf spark.jars): the image's
    # Delta and log-store jars, and the lineage listener, which the driver loads when its
    # SparkContext starts (on the classpath from the start, not from session settings).
    jars = list(settings.emr.image.jars)
    if settings.lineage.spark_listener_on:
        jars.append(listener_jar_uri(settings))
    params = ["--jars", ",".join(jars)] if jars else []
    for key, value in conf.items():
        params += ["--conf", f"{key}={value}"]
    arguments = ["run", job, "--env", settings.env, "--date", logical_date]
    arguments += ["--attempt", str(attempt)]
    if window:
        arguments += ["--from", window[0], "--to", window[1]]
    return {
        "sparkSubmit": {
            "entryPoint": artifact.entry_point,
            "entryPointArguments": arguments,
            "sparkSubmitParameters": " ".join(params),
        }
    }


def with_arguments(driver: dict[str, Any], *arguments: str) -> dict[str, Any]:
    """``driver`` with ``arguments`` appended to the entry point's."""
    submit = dict(driver["sparkSubmit"])
    submit["entryPointArguments"] = [*submit["entryPointArguments"], *arguments]
    return {**driver, "sparkSubmit": submit}


def with_lineage_parent(driver: dict[str, Any], parent: str) -> dict[str, Any]:
    """``driver`` whose Spark driver gets ``OPENLINEAGE_PARENT_ID`` = ``parent``.

    ``parent`` (``<namespace>/<job>/<run id>``) is the Airflow task's OpenLineage run:
    the job's events and the Spark listener's then hang under the task. Applying it
    again replaces the earlier value.
    """
    submit = dict(driver["sparkSubmit"])
    key = f"{PARENT_CONF}="
    params = submit.get("sparkSubmitParameters", "").split(" ")
    kept: list[str] = []
    for token in params:
        if token.startswith(key) and kept and kept[-1] == "--conf":
            kept.pop()
            continue
        if token:
            kept.append(token)
    submit["sparkSubmitParameters"] = " ".join([*kept, "--conf", f"{key}{parent}"])
    return {**driver, "sparkSubmit": submit}


def live_runs(client: Any, application_id: str) -> list[dict[str, Any]]:
    """Runs of the application that have not finished yet."""
    from botocore.exceptions import ClientError

    pages = client.get_paginator("list_job_runs").paginate(
        applicationId=application_id, states=list(ACTIVE_STATES)
    )
    try:
        return [run for page in pages for run in page.get("jobRuns", [])]
    except ClientError as exc:  # moto: an application without runs is "not found"
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        client.get_application(applicationId=application_id)  # a real "not found" raises
        return []


def active_run(client: Any, application_id: str, name: str) -> str | None:
    """The id of a run called ``name`` that has not finished yet, if any."""
    found = [r for r in live_runs(client, application_id) if r.get("name") == name]
    return str(found[0]["id"]) if found else None


def live_writer(client: Any, application_id: str, job: str, *, besides: str) -> str | None:
    """The name of a live run of ``job`` other than ``besides`` (another writer), if any."""
    marker = f".{job}."
    names = [str(r.get("name") or "") for r in live_runs(client, application_id)]
    return next((n for n in names if marker in n and n != besides), None)


def configuration_overrides(settings: Settings, *, log_prefix: str) -> dict[str, Any]:
    """Logs to ``<storage.root>/<log_prefix>`` on S3 and to the CloudWatch log group."""
    if not settings.storage.root:
        raise ValueError(f"storage.root is not set for env {settings.env}")
    monitoring: dict[str, Any] = {
        "s3MonitoringConfiguration": {
            "logUri": f"{settings.storage.root.rstrip('/')}/logs/emr/{log_prefix.strip('/')}/"
        }
    }
    if settings.emr.log_group:
        monitoring["cloudWatchLoggingConfiguration"] = {
            "enabled": True,
            "logGroupName": settings.emr.log_group,
            "logStreamNamePrefix": log_prefix.strip("/"),
        }
    return {"monitoringConfiguration": monitoring}


def run_name(job: str, logical_date: str, *, dag_id: str | None = None) -> str:
    """A readable, unique-per-date name: ``lakehouse_daily.silver.fct_orders.2026-01-05``."""
    return ".".join(p for p in (dag_id, job, logical_date) if p)


def client_token(*parts: object) -> str:
    """An idempotency token from ``parts`` (at most 64 characters, as EMR requires).

    The same parts give the same token: EMR Serverless returns the existing run for a
    repeated token instead of starting another one.
    """
    readable = _TOKEN_CHARS.sub("-", ".".join(str(p) for p in parts))[:40]
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:23]
    return f"{readable}.{digest}"
