"""lakehouse_daily: every source into Bronze (in parallel) -> Silver -> Gold -> freshness.

Tasks are the daily jobs of config (one per source entity, Silver table and Gold
table), each after the jobs whose tables it reads. In dev/prod each task is an EMR
Serverless job run; with LAKEHOUSE_ENV=local the same jobs run on this machine, so
`airflow dags test lakehouse_daily 2026-01-05` builds real tables under LAKEHOUSE_HOME.
"""

from __future__ import annotations

import os

from airflow.sdk import DAG

from aws.airflow_tasks import (
    CronDataIntervalTimetable,
    freshness_task,
    job_task,
    local_source_tasks,
)
from aws.pipeline import dag_args, daily_plan
from jobs.common.config import load_settings

settings = load_settings(os.environ.get("LAKEHOUSE_ENV", "local"))

with DAG(
    "lakehouse_daily",
    description="Bronze -> Silver -> Gold customer-360, then the freshness check",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable(settings.orchestration.schedule, timezone="UTC"),
    **dag_args(settings),
) as dag:
    plan = daily_plan(settings)
    tasks = {task.task_id: job_task(settings, task, dag_id=dag.dag_id) for task in plan}
    for task in plan:
        for upstream in task.upstream:
            tasks[upstream] >> tasks[task.task_id]
    tasks["gold.customer_360"] >> freshness_task(settings)
    if settings.runtime == "local":  # the generated sources stand in for the real ones
        sources_up, sources_down = local_source_tasks(settings)
        for task in plan:
            if not task.upstream:
                sources_up >> tasks[task.task_id] >> sources_down
