"""``lakehouse demo``: generate the sources, run the daily jobs day by day, summarise.

No cloud account: by default everything lands under ``$LAKEHOUSE_HOME``; with
``--storage s3`` the lake (tables, quarantine, ``_control``, run records, lineage) and
the landing zone live on an embedded S3 with Delta's DynamoDB log store
(``jobs.datagen.local_aws``, moto), configured as dev's lake is, while the source
systems' stand-ins stay under the home. Every job runs through the same runner as
``lakehouse run`` (one Spark session for the whole demo), so the demo is the pipeline,
not a separate code path.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from jobs.common.config import Settings, load_settings, with_source_options
from jobs.common.delta_io import current_version, read_table, table_exists
from jobs.common.errors import QualityGateError
from jobs.common.paths import LAYERS, LakePaths, resolve_lake_paths
from jobs.common.run_context import RunContext, RunSummary, read_run_summaries
from jobs.common.spark import build_spark_session, runtime_versions
from jobs.common.storage import list_folders
from jobs.console import JobResult, PipelineProgress
from jobs.datagen.generator import GeneratorParams
from jobs.datagen.simulator import SourceSimulator, drop_file, local_sources
from jobs.datagen.writer import DayManifest, write_dataset
from jobs.registry import daily_jobs
from jobs.report import write_report
from jobs.runner import execute

Echo = Callable[[str], None]


def generator_params(settings: Settings, args: argparse.Namespace) -> GeneratorParams:
    """Generator parameters: config defaults, overridden by command-line flags."""
    g = settings.generator
    return GeneratorParams(
        seed=args.seed if args.seed is not None else g.seed,
        scale=args.scale if args.scale is not None else g.scale,
        days=args.days if args.days is not None else g.days,
        start_date=args.start_date or g.start_date,
        malformed_rate=g.malformed_rate,
        duplicate_rate=g.duplicate_rate,
        late_rate=g.late_rate,
        schema_change_day=g.schema_change_day,
    )


def generate_sources(params: GeneratorParams, paths: LakePaths, echo: Echo) -> list[DayManifest]:
    """Write the generated source systems under the local home."""
    paths.ensure_local_layout()
    start = time.perf_counter()
    manifests = write_dataset(params, Path(paths.sources))
    rows = sum(sum(m.rows.values()) for m in manifests)
    echo(
        f"generated {params.days} days (seed {params.seed}, scale {params.scale}): "
        f"{rows:,} source records in {time.perf_counter() - start:.1f}s -> {paths.sources}"
    )
    return manifests


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table, right-aligned numbers."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        parts = [
            c.rjust(w) if n and isinstance(rows[n - 1][i], int | float) else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def run_demo(
    settings: Settings, paths: LakePaths, args: argparse.Namespace, echo: Echo = print
) -> int:
    """Run the demo; returns 0 when every job run succeeded."""
    if settings.env != "local" or not paths.is_local:
        raise ValueError("the demo runs only with env 'local' and a local LAKEHOUSE_HOME")
    home = Path(paths.root)
    if args.fresh and home.exists():
        if not (home / "sources").is_dir() and any(home.iterdir()):
            raise ValueError(f"refusing to delete {home}: it does not look like a lakehouse home")
        shutil.rmtree(home)
    started = time.perf_counter()
    echo(f"lakehouse demo: home {home}")
    if getattr(args, "storage", "local") == "s3":
        with lake_on_local_s3(settings, home, echo) as (s3_settings, s3_paths):
            return _demo(s3_settings, s3_paths, args, echo, started)
    return _demo(settings, paths, args, echo, started)


def _demo(
    settings: Settings, paths: LakePaths, args: argparse.Namespace, echo: Echo, started: float
) -> int:
    params = generator_params(settings, args)
    manifests = generate_sources(params, paths, echo)
    with local_sources(paths) as (simulator, crm_url):
        settings = with_source_options(settings, "crm", base_url=crm_url)
        return _run_days(
            settings, paths, params, manifests, simulator, echo, started, args.broken_batch
        )


@contextmanager
def lake_on_local_s3(
    settings: Settings, home: Path, echo: Echo
) -> Iterator[tuple[Settings, LakePaths]]:
    """An embedded S3 + DynamoDB log store for the block, and the settings of a lake on it.

    The lake is laid out as dev's (ops prefix, landing and a bucket per layer, the log
    store's table); the source systems' stand-ins stay under ``home``. The server's
    state is in memory: the lake is gone when the block ends.
    """
    from jobs.datagen.local_aws import S3Lake, create_lake, lake_environ, running_local_aws

    lake = S3Lake("lakehouse-demo")
    with running_local_aws(home / "local_aws") as aws:
        create_lake(aws, lake)
        overlay = lake_environ(aws, lake, sources=str(home / "sources"))
        saved = {k: os.environ.get(k) for k in aws.environ(lake.region)}
        os.environ.update(aws.environ(lake.region))  # boto3 and the JVM's credentials
        try:
            on_s3 = load_settings(
                settings.env,
                config_dir=Path(settings.config_dir),
                environ={**os.environ, **overlay},
            )
            paths = resolve_lake_paths(on_s3, environ={})
            echo(
                f"lake on an embedded S3 (moto, {aws.endpoint}) with the DynamoDB log store "
                f"(table {lake.log_table}): {paths.root}, "
                + ", ".join(f"{k} {v}" for k, v in lake.layers.items())
            )
            yield on_s3, paths
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _run_days(
    settings: Settings,
    paths: LakePaths,
    params: GeneratorParams,
    manifests: list[DayManifest],
    simulator: SourceSimulator,
    echo: Echo,
    started: float,
    broken_batch: bool = False,
) -> int:
    spark = build_spark_session(settings, paths, app_name="lakehouse:demo")
    versions = runtime_versions(spark)
    echo(f"runtime: Spark {versions['spark']}, Delta {versions['delta']} ({settings.spark.master})")
    summaries: list[RunSummary] = []
    jobs = [spec.name for spec in daily_jobs(settings)]
    total = params.days * len(jobs)
    try:
        with PipelineProgress(params.days, total) as progress:
            for _, runs in run_days(settings, paths, params, simulator, spark, progress=progress):
                summaries += runs
    except DayFailedError as exc:
        echo(f"  {exc.day} {exc.ctx.job}: FAILED: {exc.__cause__}")
        echo(f"  see {paths.run_dir(exc.ctx.run_id)}/summary.json")
        return 1
    echo("")
    echo(_summary(manifests, summaries, paths, spark, time.perf_counter() - started))
    code = 0
    if broken_batch:
        code = _broken_batch(
            settings, paths, spark, params.start_date + timedelta(params.days), echo
        )
    # beside the sources under the home, also when the lake is on the embedded S3
    page = Path(paths.sources).parent / "report" / "index.html"
    echo(f"\nreport: {write_report(settings, paths, jobs, str(page))} (open it in a browser)")
    return code


class DayFailedError(Exception):
    """A daily job failed (its summary is written); the days stop there."""

    def __init__(self, day: date, ctx: RunContext) -> None:
        super().__init__(f"{ctx.job} failed for {day}")
        self.day = day
        self.ctx = ctx


def run_days(
    settings: Settings,
    paths: LakePaths,
    params: GeneratorParams,
    simulator: SourceSimulator,
    spark: Any,
    skip: Collection[str] = (),
    last_day_skip: Collection[str] = (),
    progress: PipelineProgress | None = None,
) -> Iterator[tuple[date, list[RunSummary]]]:
    """Each generated day: the sources receive it, then every daily job runs once.

    Yields each day's run summaries, in run order. Jobs named in ``skip`` do not run
    (a test seeds only the tables it needs), those in ``last_day_skip`` not on the last
    day (a test runs them elsewhere: on the emulated EMR Serverless). ``progress``
    shows each job as it starts and ends.

    Raises:
        DayFailedError: a job failed (caused by its error); later jobs and days do not run.
    """
    daily = [spec for spec in daily_jobs(settings) if spec.name not in skip]
    for offset in range(params.days):
        day = params.start_date + timedelta(days=offset)
        simulator.run_day(day)
        runs = []
        last = offset == params.days - 1
        today = [s for s in daily if not (last and s.name in last_day_skip)]
        if progress:
            progress.day(day, len(today))
        for spec in today:
            ctx = RunContext(job=spec.name, env=settings.env, logical_date=day)
            if progress:
                progress.started(spec.name, day)
            try:
                runs.append(execute(ctx, settings, paths, spark))
            except Exception as exc:
                if progress:  # its FAILED summary is written
                    for summary in read_run_summaries(paths, f"{ctx.run_id}/").values():
                        progress.finished(JobResult.of_summary(summary))
                raise DayFailedError(day, ctx) from exc
            if progress:
                progress.finished(JobResult.of_run(runs[-1]))
        yield day, runs


BROKEN_EVENTS = 200


def _broken_batch(settings: Settings, paths: LakePaths, spark: Any, day: date, echo: Echo) -> int:
    """Land events that break a quarantine rule far over the threshold; show the stop.

    The Bronze job stops at its gate: nothing is written to Bronze, its quarantine
    table or Silver, and the stream checkpoint does not commit the batch.
    """
    bronze = paths.table("bronze", "events_behaviour")
    quarantine = paths.table("_quarantine", "bronze_events_behaviour")
    silver = paths.table("silver", "fct_events")
    before = {
        t: current_version(spark, t) for t in (bronze, quarantine, silver) if table_exists(spark, t)
    }
    lines = [
        json.dumps(
            {"event_id": f"broken-{n}", "customer_id": "C-0000001", "session_id": "s",
             "event_type": "Page View!", "event_ts": f"{day.isoformat()}T10:00:00Z",
             "device": "desktop", "page": "/"}
        )
        for n in range(BROKEN_EVENTS)
    ]  # fmt: skip
    staging = Path(paths.sources) / "staging" / "broken_events.jsonl"
    staging.parent.mkdir(parents=True, exist_ok=True)
    staging.write_text("\n".join(lines) + "\n")
    drop_file(staging, f"{paths.landing}/events", f"behaviour_{day.isoformat()}_broken.jsonl")
    echo(f"== Broken batch: {BROKEN_EVENTS} events with event_type 'Page View!' landed ==")
    ctx = RunContext(job="bronze.events_behaviour", env=settings.env, logical_date=day)
    try:
        execute(ctx, settings, paths, spark)
        echo("  the gate did not stop the batch: check config/expectations/bronze/")
        return 1
    except QualityGateError as exc:
        message = str(exc).replace("\n", "\n    ")
        echo(f"  bronze.events_behaviour FAILED at its gate:\n    {message}")
    after = {t: current_version(spark, t) for t in before}
    for table, version in before.items():
        echo(f"  {table}: Delta version {version} -> {after[table]}")
    echo(f"  report: {paths.run_dir(ctx.run_id)}/quality/index.html")
    echo("  The stream checkpoint did not commit the batch; every rerun stops on it until it")
    echo("  is accepted into quarantine or the rule is changed:")
    echo("  docs/runbooks/failed-quality-gate.md")
    return 0 if after == before else 1


def _extra(summary: RunSummary, key: str) -> object:
    return summary.outputs[0].extra.get(key) if summary.outputs else None


def _watermark(summary: RunSummary) -> str | None:
    mark = _extra(summary, "watermark_after")
    return ", ".join(f"{k}={v}" for k, v in mark.items()) if isinstance(mark, dict) else None


def _customer_360(spark: Any, paths: LakePaths) -> list[str]:
    """A few gold.customer_360 rows: the top customers by net revenue, one of each risk."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from jobs.gold.build import read_customer_360

    location = paths.table("gold", "customer_360")
    if not table_exists(spark, location):
        return []
    gold = read_customer_360(spark, location)
    pick = Window.partitionBy("churn_risk").orderBy(F.desc("net_revenue_usd"), "customer_id")
    shown = (
        gold.withColumn("_n", F.row_number().over(pick))
        .where("_n <= 2")
        .orderBy(F.desc("net_revenue_usd"), "customer_id")
        .select(
            "customer_id",
            "city",
            "orders_count",
            "gross_revenue_usd",
            "returns_usd",
            "net_revenue_usd",
            "days_since_last_order",
            "events_30d",
            "open_cases",
            F.format_string("%d%d%d", "r_score", "f_score", "m_score").alias("rfm"),
            "rfm_segment",
            "churn_risk",
            F.substring("email_sha256", 1, 12).alias("email_sha256"),
        )
        .collect()
    )
    as_of = gold.agg(F.max("as_of_date")).first()
    return [
        f"== gold.customer_360: {gold.count():,} customers as of {as_of[0] if as_of else '-'} "
        "(two per churn risk, by net revenue; definitions in docs/gold.md) ==",
        render_table(
            [
                "customer",
                "city",
                "orders",
                "gross usd",
                "returns usd",
                "net usd",
                "days since order",
                "events 30d",
                "open cases",
                "rfm",
                "segment",
                "churn",
                "email_sha256",
            ],
            [[_plain(v) for v in row] for row in shown],
        ),
        "",
    ]


def _plain(value: object) -> object:
    """Decimals as text with their scale (the table renders numbers right-aligned)."""
    from decimal import Decimal

    return f"{value:,.2f}" if isinstance(value, Decimal) else value


def _lineage_line(summaries: list[RunSummary], paths: LakePaths) -> str:
    emitted = sum(s.lineage.get("emitted", 0) for s in summaries)
    failed = sum(s.lineage.get("failed", 0) for s in summaries)
    transports = sorted({s.lineage.get("transport", "-") for s in summaries if s.lineage})
    if transports == ["file"]:
        where = f"{paths.lineage}/events.jsonl"
    elif transports == ["object-store"]:
        where = f"{paths.lineage}/<run_id>/ (one object per event)"
    else:
        where = f"transport {', '.join(transports) or 'none'}"
    return f"OpenLineage: {emitted} events ({failed} not delivered) -> {where}"


def _customer_history(spark: Any, paths: LakePaths) -> list[str]:
    """silver.dim_customer for three customers: most versions, deleted, late change."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    dim_path, bronze_path = (
        paths.table("silver", "dim_customer"),
        paths.table("bronze", "crm_customers"),
    )
    if not (table_exists(spark, dim_path) and table_exists(spark, bronze_path)):
        return []
    dim = read_table(spark, dim_path)
    per_key = dim.groupBy("customer_id").agg(
        F.count("*").alias("versions"), F.max(F.col("is_current").cast("int")).alias("open")
    )
    earlier = (
        Window.partitionBy("customer_id")
        .orderBy("_ingested_at")
        .rowsBetween(Window.unboundedPreceding, -1)
    )
    late = (
        read_table(spark, bronze_path)
        .withColumn("_seen", F.max("updated_at").over(earlier))
        .where(F.col("updated_at") < F.col("_seen"))
        .select("customer_id")
    )
    picks = [
        ("most versions", per_key.orderBy(F.desc("versions"), "customer_id")),
        ("deleted (no current row)", per_key.where("open = 0").orderBy("customer_id")),
        (
            "late change stitched in",
            per_key.join(late, "customer_id", "left_semi")
            .where("versions > 1")
            .orderBy("customer_id"),
        ),
    ]
    lines = ["== silver.dim_customer: history of three customers (SCD2) =="]
    for label, frame in picks:
        found = frame.select("customer_id").limit(1).collect()
        if not found:
            lines.append(f"{label}: none in this run")
            continue
        key = found[0][0]
        rows = (
            dim.where(F.col("customer_id") == key)
            .orderBy("valid_from")
            .select(
                "customer_id", "city", "segment", "email", "valid_from", "valid_to", "is_current"
            )
            .collect()
        )
        lines += [
            f"{label}: {key}",
            render_table(
                ["customer", "city", "segment", "email", "valid_from", "valid_to", "current"],
                [[*r] for r in rows],
            ),
        ]
    return [*lines, ""]


def _product_hard_deletes(spark: Any, paths: LakePaths) -> list[str]:
    """silver.dim_product for the products the source deleted (found by snapshot capture)."""
    from pyspark.sql import functions as F

    dim_path, bronze_path = (
        paths.table("silver", "dim_product"),
        paths.table("bronze", "opdb_products"),
    )
    if not (table_exists(spark, dim_path) and table_exists(spark, bronze_path)):
        return []
    bronze = read_table(spark, bronze_path)
    if "change_op" not in bronze.columns:
        return []
    deleted = (
        bronze.where(F.col("change_op") == "delete").select("product_id", "snapshot_at").collect()
    )
    rows = (
        read_table(spark, dim_path)
        .where(F.col("product_id").isin([r[0] for r in deleted]))
        .orderBy("product_id", "valid_from")
        .select("product_id", "list_price", "valid_from", "valid_to", "is_current")
        .collect()
    )
    seen = sorted({str(r[1])[:19] for r in deleted})
    return [
        "== silver.dim_product: products deleted in the source (snapshot capture) ==",
        f"the daily snapshot first missed them at {', '.join(seen) or '-'}: their last "
        "version closes there",
        render_table(
            ["product", "list_price", "valid_from", "valid_to", "current"], [[*r] for r in rows]
        ),
        "",
    ]


def _quality_rows(summaries: list[RunSummary]) -> list[list[object]]:
    """Per gate over the demo's days.

    Runs by status, rows its quarantine rules moved, rows its table's runs quarantined
    for any reason (unparseable, not conforming, a rule), rows the Bronze->Silver
    reconciliation could not account for, the last report page.
    """
    gates: dict[str, dict[str, Any]] = {}
    quarantined: dict[str, int] = {}
    for summary in summaries:
        for output in summary.outputs:
            quarantined[output.name] = quarantined.get(output.name, 0) + output.rows_quarantined
        for name, gate in summary.quality.items():
            row = gates.setdefault(
                name,
                {"passed": 0, "warned": 0, "failed": 0, "warnings": 0, "quarantined": 0},
            )
            status = "passed" if gate["status"] == "no-suite" else gate["status"]
            row[status] = row.get(status, 0) + 1
            row["warnings"] += gate["failed"] if gate["status"] == "warned" else 0
            row["quarantined"] += gate["rows_quarantined"]
            if "reconciliation" in gate:
                unexplained = gate["reconciliation"]["unexplained"]
                row["unexplained"] = row.get("unexplained", 0) + unexplained
            row["page"] = gate["page"]
    return [
        [
            name,
            *[g[k] for k in ("passed", "warned", "failed", "warnings", "quarantined")],
            quarantined.get(name, 0),
            g.get("unexplained", "-"),
            g["page"],
        ]
        for name, g in sorted(gates.items(), key=lambda item: LAYERS.index(item[0].split(".")[0]))
    ]


def _summary(
    manifests: list[DayManifest],
    summaries: list[RunSummary],
    paths: LakePaths,
    spark: object,
    elapsed: float,
) -> str:
    entities = sorted({e for m in manifests for e in m.rows})
    source_rows = [[m.date, *[m.rows.get(e, 0) for e in entities]] for m in manifests]
    anomaly_names = sorted({a for m in manifests for per in m.anomalies.values() for a in per})
    anomaly_rows = [
        [name, *[sum(m.anomalies.get(e, {}).get(name, 0) for m in manifests) for e in entities]]
        for name in anomaly_names
    ]
    run_rows = [
        [
            s.logical_date,
            s.job,
            s.status,
            s.duration_s,
            s.rows_in,
            s.rows_out,
            _extra(s, "duplicates_skipped"),
            s.rows_quarantined,
            s.outputs[0].delta_version if s.outputs else None,
            _watermark(s),
        ]
        for s in summaries
    ]
    table_rows = []
    for layer in LAYERS:
        folder = paths.table(layer, "x").rsplit("/", 1)[0]
        for table in list_folders(folder):
            name = table.rsplit("/", 1)[1]
            if not name.startswith("_") and table_exists(spark, table):  # type: ignore[arg-type]
                count = read_table(spark, table).count()  # type: ignore[arg-type]
                table_rows.append([f"{layer}.{name}", count, table])
    failed = sum(1 for s in summaries if s.status != "SUCCEEDED")
    return "\n".join(
        [
            "== Sources generated (records delivered per day) ==",
            render_table(["date", *entities], source_rows),
            "",
            "== Anomalies injected (what the pipeline must handle) ==",
            render_table(["anomaly", *entities], anomaly_rows),
            "",
            "== Job runs ==",
            render_table(
                [
                    "date",
                    "job",
                    "status",
                    "seconds",
                    "rows in",
                    "written",
                    "duplicates",
                    "quarantined",
                    "version",
                    "watermark after",
                ],
                run_rows,
            ),
            "",
            "== Quality gates (config/expectations/<layer>/<table>.yaml) ==",
            render_table(
                [
                    "gate",
                    "passed",
                    "warned",
                    "failed",
                    "warnings",
                    "by rules",
                    "quarantined (all reasons)",
                    "unexplained rows",
                    "last report page",
                ],
                _quality_rows(summaries),
            ),
            "",
            *_customer_history(spark, paths),
            *_product_hard_deletes(spark, paths),
            *_customer_360(spark, paths),
            "== Tables ==",
            render_table(["table", "rows", "location"], table_rows) if table_rows else "(none yet)",
            "",
            f"{len(summaries)} job runs, {failed} failed, in {elapsed:.0f}s.",
            f"Run summaries, metrics (CloudWatch EMF) and JSON logs: {paths.runs}/<run_id>/"
            if paths.is_local
            else f"Run summaries and metrics (CloudWatch EMF): {paths.runs}/<run_id>/ "
            "(logs: this console; on EMR a job's reach its log group)",
            "Last runs, table freshness and gate results: lakehouse status"
            if paths.is_local
            else "The embedded S3 is in memory: the lake ends with the demo (lakehouse status "
            "reads a lake that stays, local or in AWS)",
            f"Generated sources: {paths.sources}  file drops: {paths.landing}",
            _lineage_line(summaries, paths),
        ]
    )
