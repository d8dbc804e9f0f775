"""Entry point for ``spark-submit jobs/main.py ...`` and the ``lakehouse`` console script.

Both take the same arguments::

    lakehouse generate-data [--seed N] [--scale X] [--days N] [--start-date D]
    lakehouse demo [--days N] [--scale X] [--seed N] [--fresh] [--storage {local,s3}]
                   [--broken-batch]
    lakehouse run <job> --env {local,dev,prod} --date YYYY-MM-DD [--attempt N]
    lakehouse submit <job> --env {dev,prod} --date YYYY-MM-DD [--attempt N] [--no-wait]
    lakehouse backfill --from D1 --to D2 [--env E] [--jobs a,b] [--parallel N]
    lakehouse package [--out DIR] [--upload {dev,prod}] [--architecture {X86_64,ARM64}]
    lakehouse jobs
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date, timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a file by spark-submit: make `jobs` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.common.config import ENVIRONMENTS, Settings, load_settings
from jobs.common.errors import ConfigError, LakehouseError, MissingJarError, UnknownJobError
from jobs.common.logs import configure_logging
from jobs.common.paths import LakePaths, resolve_lake_paths
from jobs.common.run_context import RunContext

log = logging.getLogger("jobs.main")


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, found '{value}'") from None


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="lakehouse",
        description="Lakehouse pipeline on PySpark + Delta Lake (bronze, silver, gold).",
    )
    parser.add_argument(
        "--config-dir",
        type=Path,
        default=None,
        help="folder with base.yaml and the env overlays (default: ./config)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = commands.add_parser("generate-data", help="write generated source data (deterministic)")
    _generator_flags(gen)

    demo = commands.add_parser("demo", help="run the whole pipeline locally on generated data")
    _generator_flags(demo)
    demo.add_argument("--fresh", action="store_true", help="delete $LAKEHOUSE_HOME first")
    demo.add_argument(
        "--storage",
        choices=("local", "s3"),
        default="local",
        help="where the lake lives: local disk (default) or an embedded S3 + DynamoDB log "
        "store (moto), started and stopped by the demo",
    )
    demo.add_argument(
        "--broken-batch",
        action="store_true",
        help="after the days, land a broken event batch and show the gate stopping it",
    )

    run = commands.add_parser("run", help="run one job for one logical date")
    run.add_argument("job", help="job name (see `lakehouse jobs`)")
    run.add_argument("--env", choices=ENVIRONMENTS, required=True)
    run.add_argument("--date", type=_date, required=True, help="logical date YYYY-MM-DD (UTC)")
    run.add_argument("--attempt", type=int, default=1, help="attempt number (Airflow try)")
    run.add_argument(
        "--from",
        dest="window_from",
        type=_date,
        help="backfill: re-ingest from this date (inclusive), with --to",
    )
    run.add_argument(
        "--to", dest="window_to", type=_date, help="backfill: re-ingest up to this date (inclusive)"
    )
    run.add_argument(
        "--window",
        default="none",
        help="FIRST..LAST, the same as --from/--to; 'none': no window (Airflow templates it: "
        "a backfill run's data interval)",
    )

    submit = commands.add_parser(
        "submit", help="run one job on EMR Serverless (boto3), wait, exit with its state"
    )
    submit.add_argument("job", help="job name (see `lakehouse jobs`)")
    submit.add_argument("--env", choices=("dev", "prod"), required=True)
    submit.add_argument("--date", type=_date, required=True, help="logical date YYYY-MM-DD")
    submit.add_argument(
        "--attempt", type=int, default=1, help="same attempt: re-attach to its run; next: new run"
    )
    submit.add_argument("--no-wait", action="store_true", help="return once the run started")
    submit.add_argument("--from", dest="window_from", type=_date, help="Bronze: re-read from")
    submit.add_argument("--to", dest="window_to", type=_date, help="Bronze: re-read up to")

    backfill = commands.add_parser(
        "backfill", help="run the daily jobs over a date range (resumable, idempotent)"
    )
    backfill.add_argument("--env", choices=ENVIRONMENTS, default="local")
    backfill.add_argument("--from", dest="start", type=_date, required=True)
    backfill.add_argument("--to", dest="end", type=_date, required=True)
    backfill.add_argument("--jobs", help="comma list of daily jobs (default: all)")
    backfill.add_argument("--parallel", type=int, default=1, help="jobs at a time per wave")

    package = commands.add_parser(
        "package", help="build the EMR artifact (wheel, venv archive, entry script, manifest)"
    )
    package.add_argument("--out", type=Path, default=Path("dist/artifact"))
    package.add_argument(
        "--upload", choices=("dev", "prod"), help="then copy it to that env's artifacts bucket"
    )
    package.add_argument(
        "--architecture",
        choices=("X86_64", "ARM64"),
        help="the EMR application's (default: emr.architecture of the --upload env, else dev)",
    )

    pools = commands.add_parser(
        "pools", help="the Airflow pools the DAGs use, as JSON for `airflow pools import`"
    )
    pools.add_argument("--env", choices=ENVIRONMENTS, default="local")

    status = commands.add_parser(
        "status", help="last run per job, freshness per table, latest gate results"
    )
    status.add_argument("--env", choices=ENVIRONMENTS, default="local")

    report = commands.add_parser(
        "report",
        help="one HTML page: lineage graph, rows per day, gates, freshness, last runs",
    )
    report.add_argument("--env", choices=ENVIRONMENTS, default="local")
    report.add_argument("--out", help="where to write it (default: <lake root>/report/index.html)")

    commands.add_parser("jobs", help="list the jobs `run` knows")
    return parser


def _generator_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, help="random seed (same seed, same bytes)")
    parser.add_argument("--scale", type=float, help="multiplies every daily volume")
    parser.add_argument("--days", type=int, help="number of days to generate")
    parser.add_argument("--start-date", type=_date, help="first day YYYY-MM-DD")


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the command, return the process exit code.

    0 success; 1 a job failed (see its run summary); 2 usage, configuration or
    environment error (message on stderr).
    """
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except (ConfigError, MissingJarError, UnknownJobError) as exc:
        print(f"lakehouse: error: {exc}", file=sys.stderr)
        return 2
    except LakehouseError as exc:
        print(f"lakehouse: failed: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    env = getattr(args, "env", None) or "local"
    settings = load_settings(env, config_dir=args.config_dir)
    if args.command == "pools":
        import json

        from aws.pipeline import pools

        print(json.dumps(pools(settings), indent=2))
        return 0
    if args.command == "jobs":
        from jobs.registry import build_registry

        for spec in build_registry(settings).values():
            print(f"{spec.name:<28} {spec.description}")
        return 0
    quiet = "WARNING" if args.command in ("demo", "backfill") else None  # progress lines
    configure_logging(settings.logging.level, console_level=quiet)
    paths = resolve_lake_paths(settings)
    if args.command == "generate-data":
        from jobs.demo import generate_sources, generator_params

        params = generator_params(settings, args)
        generate_sources(params, paths, echo=print)
        return 0
    if args.command == "demo":
        from jobs.demo import run_demo

        return run_demo(settings, paths, args)
    if args.command == "submit":
        return _submit(settings, args)
    if args.command == "package":
        return _package(args)
    if args.command == "backfill":
        return _backfill(settings, paths, args)
    if args.command == "status":
        from jobs.common.run_context import read_run_summaries, utc_now
        from jobs.status import build_status, render_status

        view = build_status(read_run_summaries(paths).values())
        print(render_status(view, utc_now()), end="")
        return 0
    if args.command == "report":
        from jobs.registry import daily_jobs
        from jobs.report import write_report

        jobs = [spec.name for spec in daily_jobs(settings)]
        print(f"report: {write_report(settings, paths, jobs, args.out)}")
        return 0
    from jobs.registry import get_job
    from jobs.runner import execute

    get_job(args.job, settings)
    try:
        days = _window(args)
    except ValueError as exc:
        print(f"lakehouse: error: {exc}", file=sys.stderr)
        return 2
    window = (days[0], days[1] + timedelta(days=1)) if days else None
    ctx = RunContext(
        job=args.job, env=env, logical_date=args.date, attempt=args.attempt, window=window
    )
    try:
        summary = execute(ctx, settings, paths)
    except Exception as exc:  # the FAILED summary is already written
        print(f"lakehouse: job {ctx.job} failed (run {ctx.run_id}): {exc}", file=sys.stderr)
        return 1
    print(
        f"{summary.job} {summary.status} run_id={summary.run_id} "
        f"summary={paths.run_dir(summary.run_id)}/summary.json"
    )
    return 0


def _window(args: argparse.Namespace) -> tuple[date, date] | None:
    """The re-read window of ``--from/--to`` or ``--window FIRST..LAST`` (days inclusive).

    Raises:
        ValueError: half a window, a malformed one, or FIRST after LAST.
    """
    first, last = args.window_from, args.window_to
    if getattr(args, "window", "none") != "none":
        if first or last or ".." not in args.window:
            raise ValueError("--window is FIRST..LAST, without --from/--to")
        try:
            first, last = (date.fromisoformat(part) for part in args.window.split("..", 1))
        except ValueError:
            raise ValueError(
                f"--window: expected FIRST..LAST dates, found '{args.window}'"
            ) from None
    if not (first or last):
        return None
    if not (first and last) or first > last:
        raise ValueError("--from and --to go together, with --from <= --to")
    return first, last


def _package(args: argparse.Namespace) -> int:
    import json

    from aws.package import PackagingError, Target, build_artifact, upload_artifact

    settings = load_settings(args.upload or "dev")
    target = Target.for_settings(settings, args.architecture)
    try:
        manifest = json.loads(build_artifact(args.out, target).read_text())
    except PackagingError as exc:
        print(f"lakehouse package: {exc}", file=sys.stderr)
        return 1
    print(f"artifact {args.out} for {manifest['platform']} ({manifest['python']}): "
          f"{', '.join(manifest['files'])}")  # fmt: skip
    if args.upload:
        for uri in upload_artifact(args.out, load_settings(args.upload)):
            print(f"  uploaded {uri}")
    return 0


def _submit(settings: Settings, args: argparse.Namespace) -> int:
    from aws.submit import submit
    from jobs.registry import get_job

    get_job(args.job, settings)

    def started(run_id: str, links: tuple[str, ...]) -> None:
        print(f"{args.job} {args.date}: EMR Serverless job run {run_id}")
        for link in links:
            print(f"  logs: {link}")

    try:
        days = _window(args)
    except ValueError as exc:
        print(f"lakehouse: error: {exc}", file=sys.stderr)
        return 2
    window = (days[0].isoformat(), days[1].isoformat()) if days else None
    run = submit(
        settings, args.job, args.date.isoformat(), attempt=args.attempt,
        wait=not args.no_wait, on_start=started, window=window,
    )  # fmt: skip
    print(f"{run.name}: {run.state}{f' ({run.details})' if run.details else ''}")
    return 0 if run.state == "SUCCESS" or (args.no_wait and run.state not in ("FAILED",)) else 1


def _backfill(settings: Settings, paths: LakePaths, args: argparse.Namespace) -> int:
    from aws.backfill import run_backfill, waves
    from jobs.console import PipelineProgress

    jobs = [j.strip() for j in args.jobs.split(",")] if args.jobs else None
    if settings.runtime == "local":
        from jobs.runner import execute

        def run_one(job: str, day: date, attempt: int) -> str:
            ctx = RunContext(job=job, env=settings.env, logical_date=day, attempt=attempt)
            try:
                return execute(ctx, settings, paths).status
            except Exception:  # its FAILED summary is written; the backfill stops
                return "FAILED"
    else:
        from aws.submit import submit

        def run_one(job: str, day: date, attempt: int) -> str:
            run = submit(settings, job, day.isoformat(), attempt=attempt, prefix="backfill")
            return "SUCCEEDED" if run.state == "SUCCESS" else run.state

    before_day = None
    if settings.runtime == "local":  # the generated sources stand in for the real ones
        import os
        import secrets

        from jobs.datagen.simulator import CRM_TOKEN_VAR, sources_down, sources_up

        os.environ.setdefault(CRM_TOKEN_VAR, secrets.token_urlsafe(24))
        base_url = str(settings.sources["crm"].options["base_url"])

        def before_day(day: date) -> None:
            sources_up(paths, day, base_url)

    print(f"backfill {args.start} .. {args.end} ({settings.env}), {args.parallel} at a time")
    days = (args.end - args.start).days + 1
    per_day = sum(len(wave) for wave in waves(settings, jobs))
    try:
        with PipelineProgress(max(days, 0), max(days, 0) * per_day) as progress:
            result = run_backfill(
                settings, paths, args.start, args.end, run_one, jobs=jobs,
                parallel=args.parallel, before_day=before_day, progress=progress,
            )  # fmt: skip
    finally:
        if settings.runtime == "local":
            sources_down(paths)
    print(
        f"backfill: {len(result.ran)} run, {len(result.skipped)} already done, "
        f"{len(result.failed)} failed{': ' + ', '.join(result.failed) if result.failed else ''}"
    )
    return 0 if result.ok else 1


def console() -> None:
    """Console-script entry (``lakehouse``)."""
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main())
