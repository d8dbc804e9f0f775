"""The jobs that ``lakehouse run <job>`` and ``spark-submit jobs/main.py run <job>`` know.

Bronze jobs are generated from ``config/sources.yaml``: one job per source entity,
named ``bronze.<source>_<entity>`` like the table it writes. Silver jobs come from
``config/tables.yaml``: ``silver.<table>``. Gold: ``gold.customer_360``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from jobs.common.config import Settings
from jobs.common.errors import ConfigError, UnknownJobError
from jobs.common.expectations import read_suite
from jobs.common.job import JobEnv
from jobs.common.lineage import ColumnSource
from jobs.common.tables import bronze_table_name

BATCH_SOURCE_TYPES = ("jdbc", "rest", "fx")
STREAM_SOURCE_TYPES = ("files", "kafka")


@dataclass(frozen=True)
class JobSpec:
    """A registered job."""

    name: str
    description: str
    body: Callable[[JobEnv], None]
    daily: bool  # part of the daily pipeline (the demo runs it for each day)
    column_lineage: Mapping[str, Sequence[ColumnSource]] | None = None  # output column sources
    depends_on: tuple[str, ...] = ()  # jobs whose tables it reads (same logical date)


def _deferred(target: str) -> Callable[..., None]:
    """The job body ``module:function``, imported when the job runs.

    The registry is read where Spark is not (the DAG files on Airflow's workers, MWAA):
    only a running job imports its layer's Spark code.
    """
    module, _, function = target.partition(":")

    def body(*args: Any, **kwargs: Any) -> None:
        getattr(importlib.import_module(module), function)(*args, **kwargs)

    body.__qualname__ = body.__name__ = target
    return body


def build_registry(settings: Settings) -> dict[str, JobSpec]:
    """Every job for ``settings``, in daily run order."""
    from jobs.gold.contract import COLUMN_LINEAGE, INPUTS

    ingest = _deferred("jobs.bronze.ingest:ingest")
    ingest_stream = _deferred("jobs.bronze.stream_ingest:ingest_stream")
    build_silver = _deferred("jobs.silver.build:build_silver")
    specs = [
        JobSpec(
            "runtime_check",
            "Spark + Delta MERGE round trip on the lake storage",
            _deferred("jobs.tools.runtime_check:run"),
            daily=False,
        ),
    ]
    for source, spec in settings.sources.items():
        if spec.type in BATCH_SOURCE_TYPES:
            body: Callable[..., None] = ingest
        elif spec.type in STREAM_SOURCE_TYPES:
            body = ingest_stream
        else:
            continue
        for entity in spec.entities:
            specs.append(
                JobSpec(
                    f"bronze.{bronze_table_name(source, entity)}",
                    f"ingest {source}.{entity} ({spec.type}) into Bronze",
                    partial(body, source=source, entity=entity),
                    daily=True,
                )
            )
    for table, silver in settings.silver.items():
        suite = read_suite(Path(settings.config_dir), "silver", table)
        referenced = sorted(
            {f"{fk.target[0]}.{fk.target[1]}" for fk in (suite.foreign_keys if suite else ())}
        )
        specs.append(
            JobSpec(
                f"silver.{table}",
                f"{silver.description} (from bronze.{silver.source})",
                partial(build_silver, table=table),
                daily=True,
                # its Bronze source, and the tables its foreign keys are checked against
                depends_on=(f"bronze.{silver.source}", *referenced),
            )
        )
    specs.append(
        JobSpec(
            "gold.customer_360",
            "customer-360 metrics as of the logical date (incremental from Silver's change feed)",
            _deferred("jobs.gold.build:build_customer_360"),
            daily=True,
            column_lineage=COLUMN_LINEAGE,
            depends_on=tuple(f"silver.{table}" for table in INPUTS.values()),
        )
    )
    specs.append(
        JobSpec(
            "maintenance",
            "OPTIMIZE (Z-ORDER where configured) and VACUUM every table (weekly)",
            _deferred("jobs.maintenance:run_maintenance"),
            daily=False,
        )
    )
    return {spec.name: spec for spec in specs}


def get_job(name: str, settings: Settings) -> JobSpec:
    """The job called ``name``.

    Raises:
        UnknownJobError: naming the job and listing the known ones.
    """
    jobs = build_registry(settings)
    try:
        return jobs[name]
    except KeyError:
        raise UnknownJobError(
            f"unknown job '{name}': expected one of {', '.join(sorted(jobs))}"
        ) from None


def daily_jobs(settings: Settings) -> list[JobSpec]:
    """Jobs of the daily pipeline, in run order (every job after the jobs it depends on).

    Raises:
        ConfigError: a job depends on a job that is not in the daily pipeline.
    """
    daily = [spec for spec in build_registry(settings).values() if spec.daily]
    names = {spec.name for spec in daily}
    for spec in daily:
        unknown = [d for d in spec.depends_on if d not in names]
        if unknown:
            raise ConfigError(
                f"job {spec.name} depends on {', '.join(unknown)}, not a daily job "
                f"(config/tables.yaml sources, foreign keys in config/expectations/)"
            )
    return daily
