"""The Airflow pieces the DAG files wire: one operator per runtime, the failure callback.

- :class:`EmrJobOperator` (dev/prod): the amazon provider's
  ``EmrServerlessStartJobOperator``, plus three guarantees: a retried task re-attaches
  to its previous try's run when that run is still going (it never starts a second run
  of the same job and date, so a table keeps one writer); the idempotency token is
  deterministic per task, date and try; the Airflow task's OpenLineage run reaches the
  job as its lineage parent.
- :class:`LocalJobOperator` (env ``local``): runs the same job in the Airflow worker's
  process (``jobs.main``), so ``airflow dags test`` builds real tables under
  ``LAKEHOUSE_HOME``.
- :func:`failure_callback`: logs and publishes to the SNS topic from config.

Requests themselves are built by the pure functions of ``aws/emr.py``. The DAG files
import Airflow through here where Airflow 3.0 (MWAA's) and 3.3 differ
(``CronDataIntervalTimetable``); ``tests/dags/test_dags_on_mwaa_airflow.py`` runs them on
MWAA's version.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from airflow.exceptions import AirflowException  # type: ignore[attr-defined]  # 3.0 and 3.3
from airflow.providers.amazon.aws.operators.emr import EmrServerlessStartJobOperator
from airflow.providers.amazon.aws.triggers.emr import EmrServerlessStartJobTrigger
from airflow.sdk import BaseOperator

try:  # Airflow >= 3.1: the Task SDK's timetable
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 3.0, which MWAA runs (3.0.6): core's
    from airflow.timetables.interval import (  # type: ignore[assignment]
        CronDataIntervalTimetable,
    )

from aws.emr import (
    BACKFILL_WINDOW,
    ArtifactLocation,
    active_run,
    client_token,
    configuration_overrides,
    job_class,
    job_driver,
    run_name,
    with_arguments,
    with_lineage_parent,
)
from aws.pipeline import FRESHNESS_TASK, TaskSpec, check_freshness, retry_args, waiter_attempts
from jobs.common.config import Settings
from jobs.common.errors import ConfigError
from jobs.common.lineage import PARENT_ENV
from jobs.common.paths import resolve_lake_paths

__all__ = ["CronDataIntervalTimetable"]  # for the DAG files
# newer providers-amazon (9.39 here) can inject the task's OpenLineage parent itself; MWAA's 9.12.0
# (Airflow 3.0.6) neither can nor accepts the switch
_PROVIDER_INJECTS_PARENT = (
    "openlineage_inject_parent_job_info"
    in inspect.signature(EmrServerlessStartJobOperator.__init__).parameters
)

log = logging.getLogger(__name__)


def lineage_parent(task_instance: Any) -> str | None:
    """``<namespace>/<job>/<run id>`` of the task's OpenLineage run (None without the provider)."""
    try:
        from airflow.providers.openlineage.plugins.macros import lineage_parent_id
    except ImportError:
        return None
    try:
        return str(lineage_parent_id(task_instance))
    except Exception as exc:  # lineage must never stop a job from running
        log.warning("no OpenLineage parent for %s: %s", task_instance, exc)
        return None


class EmrJobOperator(EmrServerlessStartJobOperator):
    """Start (or re-attach to) one job run on EMR Serverless and wait for it."""

    def execute(self, context: Any, event: dict[str, Any] | None = None) -> str | None:
        """Re-attach to a live run of this task, else start one (token: task, date, try)."""
        ti = context["ti"]
        name = str(self.name)
        self.client_request_token = client_token(name, ti.try_number)
        parent = lineage_parent(ti)
        if parent:
            self.job_driver = with_lineage_parent(self.job_driver, parent)
        running = active_run(self.hook.conn, self.application_id, name)
        if running is None:
            return super().execute(context, event)
        log.warning("run %s of %s is still going (an earlier try): waiting for it", running, name)
        self.job_id = running
        if self.deferrable:
            self.defer(
                trigger=EmrServerlessStartJobTrigger(
                    application_id=self.application_id,
                    job_id=running,
                    waiter_delay=self.waiter_delay,
                    waiter_max_attempts=self.waiter_max_attempts,
                    aws_conn_id=self.aws_conn_id,
                    region_name=self.region_name,
                    verify=self.verify,
                    botocore_config=self.botocore_config,
                    cancel_on_kill=self.cancel_on_kill,
                ),
                method_name="execute_complete",
                timeout=dt.timedelta(seconds=self.waiter_max_attempts * self.waiter_delay),
            )
        self.hook.get_waiter("serverless_job_completed").wait(
            applicationId=self.application_id,
            jobRunId=running,
            WaiterConfig={"Delay": self.waiter_delay, "MaxAttempts": self.waiter_max_attempts},
        )
        return running


# Airflow 3.0 (MWAA's) takes retry_exponential_backoff as a flag, later ones a multiplier
_BACKOFF_IS_FLAG = (
    inspect.signature(BaseOperator.__init__).parameters["retry_exponential_backoff"].default
    is False
)


def _no_provider_parent_injection() -> dict[str, Any]:
    """No OpenLineage parent from the provider, where it has the switch.

    Our runner parents the Spark listener under the job run (task -> job run -> Spark
    application); the provider's own injection would flatten that.
    """
    return {"openlineage_inject_parent_job_info": False} if _PROVIDER_INJECTS_PARENT else {}


def _task_retry_args(settings: Settings) -> dict[str, Any]:
    args = retry_args(settings)
    if _BACKOFF_IS_FLAG:
        args["retry_exponential_backoff"] = bool(args["retry_exponential_backoff"])
    return args


def window_arguments(job: str) -> list[str]:
    """``--window <backfill interval>`` for a Bronze job (see :data:`aws.emr.BACKFILL_WINDOW`)."""
    return ["--window", BACKFILL_WINDOW] if job_class(job) == "bronze" else []


class LocalJobOperator(BaseOperator):
    """Run one job on this machine, in the worker's process (env ``local``)."""

    template_fields: Sequence[str] = ("logical_date", "arguments")

    def __init__(
        self,
        *,
        job: str,
        env: str = "local",
        logical_date: str = "{{ ds }}",
        arguments: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job = job
        self.env = env
        self.logical_date = logical_date
        self.arguments = list(arguments)

    def execute(self, context: Any) -> None:
        """``lakehouse run <job> --env <env> --date <ds> --attempt <try>``, in process."""
        from jobs.main import main

        ti = context["ti"]
        parent = lineage_parent(ti)
        if parent:
            os.environ[PARENT_ENV] = parent
        try:
            argv = ["run", self.job, "--env", self.env, "--date", self.logical_date]
            code = main([*argv, "--attempt", str(ti.try_number), *self.arguments])
        finally:
            os.environ.pop(PARENT_ENV, None)
        if code != 0:
            raise AirflowException(
                f"{self.job} failed for {self.logical_date} (exit code {code}); "
                "its run summary under $LAKEHOUSE_HOME/runs/ has the error"
            )


def failure_message(context: Any) -> dict[str, str]:
    """What a failed task reports: DAG, task, date, try and the error."""
    ti = context["ti"]
    return {
        "dag_id": str(ti.dag_id),
        "task_id": str(ti.task_id),
        "logical_date": str(context.get("ds")),
        "try_number": str(ti.try_number),
        "error": str(context.get("exception"))[:1000],
    }


def failure_callback(topic_arn: str | None, region: str) -> Callable[[Any], None]:
    """A task failure callback: log the failure, publish it to ``topic_arn`` if set.

    A notification error is logged, never raised (the task has failed already).
    """

    def notify(context: Any) -> None:
        message = failure_message(context)
        log.error("task failed: %s", message)
        if not topic_arn:
            return
        try:
            import boto3

            boto3.client("sns", region_name=region).publish(
                TopicArn=topic_arn,
                Subject=f"lakehouse: {message['dag_id']}.{message['task_id']} failed"[:100],
                Message=json.dumps(message),
            )
        except Exception as exc:
            log.error("failure notification to %s not sent: %s", topic_arn, exc)

    return notify


def job_task(settings: Settings, task: TaskSpec, *, dag_id: str) -> BaseOperator:
    """The operator that runs ``task`` in ``settings``' runtime (EMR, or this machine)."""
    common: dict[str, Any] = {
        "task_id": task.task_id,
        "pool": task.pool or "default_pool",
        "execution_timeout": dt.timedelta(minutes=task.timeout_minutes),
        "on_failure_callback": failure_callback(
            settings.orchestration.failure_topic_arn, settings.emr.region
        ),
        **_task_retry_args(settings),
    }
    if settings.runtime == "local":
        return LocalJobOperator(
            job=task.job, env=settings.env, arguments=window_arguments(task.job), **common
        )
    emr = settings.emr
    missing = [k for k in ("application_id", "execution_role_arn") if not getattr(emr, k)]
    if missing or emr.application_id is None or emr.execution_role_arn is None:
        names = ", ".join(f"LAKEHOUSE__EMR__{k.upper()}" for k in missing)
        raise ConfigError(
            f"emr.{' and emr.'.join(missing)} not set for env {settings.env}: set {names} "
            "from the Terraform outputs (terraform/envs/<env>)"
        )
    return EmrJobOperator(
        application_id=emr.application_id,
        execution_role_arn=emr.execution_role_arn,
        job_driver=with_arguments(
            job_driver(
                settings, ArtifactLocation.for_settings(settings), task.job, "{{ ds }}",
                attempt="{{ ti.try_number }}",
            ),
            *window_arguments(task.job),
        ),
        configuration_overrides=configuration_overrides(
            settings, log_prefix=f"{dag_id}/{task.task_id}/{{{{ ds }}}}"
        ),
        # EMR stops the run at the task's timeout too (no orphan run after Airflow gives up)
        config={"executionTimeoutMinutes": task.timeout_minutes},
        name=run_name(task.job, "{{ ds }}", dag_id=dag_id),
        deferrable=True,
        waiter_delay=settings.orchestration.waiter_delay_seconds,
        waiter_max_attempts=waiter_attempts(settings, task.timeout_minutes),
        region_name=emr.region,
        **_no_provider_parent_injection(),
        **common,
    )  # fmt: skip


def freshness_task(settings: Settings) -> BaseOperator:
    """The daily SLA check (:func:`aws.pipeline.check_freshness`), run in the worker."""
    from airflow.providers.standard.operators.python import PythonOperator

    def check(ds: str, dag_run: Any) -> str:
        scheduled = str(getattr(dag_run, "run_type", "")).lower().endswith("scheduled")
        hours = settings.orchestration.freshness_hours if scheduled else None
        found = check_freshness(
            resolve_lake_paths(settings), dt.date.fromisoformat(ds), within_hours=hours
        )
        log.info("%s", found)
        return found

    return PythonOperator(
        task_id=FRESHNESS_TASK,
        python_callable=check,
        retries=0,
        on_failure_callback=failure_callback(
            settings.orchestration.failure_topic_arn, settings.emr.region
        ),
    )


def local_source_tasks(settings: Settings) -> tuple[BaseOperator, BaseOperator]:
    """Local mode's setup and teardown: the day happens in the local sources, then stops.

    Setup makes the logical date happen in the generated source systems (``lakehouse
    generate-data`` first) and starts the local CRM API on the crm source's
    ``base_url``; teardown stops the API, whatever the ingest tasks did.
    """
    from airflow.providers.standard.operators.python import PythonOperator

    from jobs.datagen.simulator import sources_down, sources_up

    base_url = str(settings.sources["crm"].options["base_url"])

    def up(ds: str) -> None:
        sources_up(resolve_lake_paths(settings), dt.date.fromisoformat(ds), base_url)

    def down() -> None:
        sources_down(resolve_lake_paths(settings))

    setup = PythonOperator(task_id="local_sources_up", python_callable=up, retries=0)
    teardown = PythonOperator(task_id="local_sources_down", python_callable=down)
    return setup.as_setup(), teardown.as_teardown(setups=setup)  # type: ignore[no-untyped-call]
