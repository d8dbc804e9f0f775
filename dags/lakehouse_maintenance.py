"""lakehouse_maintenance: weekly OPTIMIZE (Z-ORDER where configured) and VACUUM.

One job over every table; retention from config (`gold.maintenance`). Scheduled apart
from the daily window; Delta's optimistic concurrency resolves a commit that meets a
daily write.
"""

from __future__ import annotations

import os

from airflow.sdk import DAG

from aws.airflow_tasks import CronDataIntervalTimetable, job_task
from aws.pipeline import dag_args, maintenance_plan
from jobs.common.config import load_settings

settings = load_settings(os.environ.get("LAKEHOUSE_ENV", "local"))

with DAG(
    "lakehouse_maintenance",
    description="OPTIMIZE and VACUUM of every lake table",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable(settings.orchestration.maintenance_schedule, timezone="UTC"),
    **dag_args(settings),
) as dag:
    for task in maintenance_plan(settings):
        job_task(settings, task, dag_id=dag.dag_id)
