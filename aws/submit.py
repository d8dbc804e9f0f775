"""``lakehouse submit``: one job run on EMR Serverless, started with boto3 and waited for.

The request is the one the DAG sends (``aws/emr.py``), named ``adhoc.<job>.<date>``
and with a token from the name and ``--attempt``: running the same command again
(after a dropped connection, say) re-attaches to the same run instead of starting a
second one; ``--attempt 2`` starts a new run. The wait polls with exponential backoff
(5 s, x1.5, at most ``orchestration.waiter_delay_seconds``, as the DAG's waiter) up to
the job's timeout; the exit code is 0 only for SUCCESS.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws.emr import (
    ArtifactLocation,
    active_run,
    client_token,
    configuration_overrides,
    job_driver,
    live_writer,
    run_name,
)
from jobs.common.config import Settings
from jobs.common.errors import ConcurrentRunError, ConfigError

TERMINAL = ("SUCCESS", "FAILED", "CANCELLED")
ADHOC = "adhoc"


@dataclass(frozen=True)
class SubmittedRun:
    """A job run and how it ended."""

    application_id: str
    run_id: str
    name: str
    state: str
    details: str
    log_links: tuple[str, ...]


def start_request(
    settings: Settings,
    job: str,
    logical_date: str,
    *,
    attempt: int = 1,
    prefix: str = ADHOC,
    window: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The ``StartJobRun`` arguments for ``job`` at ``logical_date``.

    Raises:
        ConfigError: the EMR application or role is not configured for the env.
    """
    emr = settings.emr
    if not emr.application_id or not emr.execution_role_arn:
        raise ConfigError(
            f"emr.application_id / emr.execution_role_arn are not set for env {settings.env}: "
            "set LAKEHOUSE__EMR__APPLICATION_ID and LAKEHOUSE__EMR__EXECUTION_ROLE_ARN from "
            "the Terraform outputs"
        )
    name = run_name(job, logical_date, dag_id=prefix)
    timeout = settings.orchestration.timeout_for(job)
    return {
        "applicationId": emr.application_id,
        "executionRoleArn": emr.execution_role_arn,
        "name": name,
        "clientToken": client_token(name, attempt),
        "jobDriver": job_driver(
            settings,
            ArtifactLocation.for_settings(settings),
            job,
            logical_date,
            attempt=attempt,
            window=window,
        ),
        "configurationOverrides": configuration_overrides(
            settings, log_prefix=f"{prefix}/{job}/{logical_date}"
        ),
        "executionTimeoutMinutes": timeout,
    }


def log_links(settings: Settings, request: dict[str, Any], run_id: str) -> tuple[str, ...]:
    """Where the run's driver logs land: S3 and the CloudWatch console."""
    monitoring = request["configurationOverrides"]["monitoringConfiguration"]
    app = request["applicationId"]
    s3_logs = monitoring["s3MonitoringConfiguration"]["logUri"]
    links = [f"{s3_logs}applications/{app}/jobs/{run_id}/"]
    cloudwatch = monitoring.get("cloudWatchLoggingConfiguration")
    if cloudwatch:
        group = cloudwatch["logGroupName"].replace("/", "$252F")
        links.append(
            f"https://{settings.emr.region}.console.aws.amazon.com/cloudwatch/home?region="
            f"{settings.emr.region}#logsV2:log-groups/log-group/{group}"
        )
    return tuple(links)


def submit(
    settings: Settings,
    job: str,
    logical_date: str,
    *,
    attempt: int = 1,
    prefix: str = ADHOC,
    client: Any = None,
    wait: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    on_start: Callable[[str, tuple[str, ...]], None] | None = None,
    window: tuple[str, str] | None = None,
) -> SubmittedRun:
    """Start ``job`` for ``logical_date`` (or re-attach to its live run) and wait for it."""
    if client is None:
        import boto3

        client = boto3.client("emr-serverless", region_name=settings.emr.region)
    request = start_request(
        settings, job, logical_date, attempt=attempt, prefix=prefix, window=window
    )
    run_id = active_run(client, request["applicationId"], request["name"])
    other = live_writer(client, request["applicationId"], job, besides=request["name"])
    if run_id is None and other is not None:
        raise ConcurrentRunError(
            f"{job} is being written by run {other}: one writer per table; "
            "wait for it to finish (or cancel it) and submit again"
        )
    if run_id is None:
        run_id = str(client.start_job_run(**request)["jobRunId"])
    links = log_links(settings, request, run_id)
    if on_start:
        on_start(run_id, links)
    state, details = "SUBMITTED", ""
    longest = float(settings.orchestration.waiter_delay_seconds)
    delay, waited = min(5.0, longest), 0.0
    limit = settings.orchestration.timeout_for(job) * 60
    while True:
        run = client.get_job_run(applicationId=request["applicationId"], jobRunId=run_id)["jobRun"]
        state, details = str(run["state"]), str(run.get("stateDetails") or "")
        if state in TERMINAL or not wait or waited >= limit:
            break
        sleep(delay)
        waited += delay
        delay = min(delay * 1.5, longest)
    return SubmittedRun(request["applicationId"], run_id, request["name"], state, details, links)
