"""The daily pipeline over generated days, and table snapshots, in a driver of their own.

``python -m tests.support.lake_days run <result.json> --days N --scale X [--run-days M]
[--skip jobs] [--last-day-skip jobs]``
    generates the sources (seed 42) and runs every daily job for each day (the first M),
    as the demo does, on the lake the configuration names (``LAKEHOUSE__*``: local or S3);
``python -m tests.support.lake_days snapshot <folder> [<location> ...]``
    writes each table (default: every Delta table of the lake) as Parquet under
    ``<folder>/<layer>.<table>``, so a test process without the S3 jars can compare it.

The result JSON lists each run (job, day, status, outputs with their Delta version)
and the lake's tables by name.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from jobs.common.config import load_settings, with_source_options
from jobs.common.delta_io import read_table, table_exists
from jobs.common.paths import LAYERS, LakePaths, resolve_lake_paths
from jobs.common.spark import build_spark_session
from jobs.common.storage import list_folders
from jobs.datagen.generator import GeneratorParams
from jobs.datagen.simulator import local_sources
from jobs.datagen.writer import write_dataset
from jobs.demo import run_days


def lake_tables(spark: Any, paths: LakePaths) -> dict[str, str]:
    """Every Delta table of the lake: ``<layer>.<name>`` -> location."""
    found = {}
    for layer in LAYERS:
        folder = paths.table(layer, "x").rsplit("/", 1)[0]
        for location in list_folders(folder):
            name = location.rsplit("/", 1)[1]
            if not name.startswith("_") and table_exists(spark, location):
                found[f"{layer}.{name}"] = location
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lake_days")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run")
    run.add_argument("result", type=Path)
    run.add_argument("--days", type=int, default=2)
    run.add_argument("--run-days", type=int, help="run the first N days only (default: all)")
    run.add_argument("--skip", default="", help="comma list of daily jobs not to run")
    run.add_argument("--last-day-skip", default="", help="... not to run on the last day")
    run.add_argument("--scale", type=float, default=0.05)
    run.add_argument("--seed", type=int, default=42)
    snap = commands.add_parser("snapshot")
    snap.add_argument("folder", type=Path)
    snap.add_argument("locations", nargs="*")
    args = parser.parse_args(argv)

    settings = load_settings("local")
    paths = resolve_lake_paths(settings)
    paths.ensure_local_layout()
    spark = build_spark_session(settings, paths, app_name=f"lake-days-{args.command}")
    if args.command == "snapshot":
        tables = (
            {location: location for location in args.locations}
            if args.locations
            else lake_tables(spark, paths)
        )
        for name, location in tables.items():
            target = args.folder / name.replace("/", "_").replace(":", "_")
            read_table(spark, location).write.mode("overwrite").parquet(str(target))
        print(json.dumps({"tables": tables}))
        return 0
    params = GeneratorParams(seed=args.seed, scale=args.scale, days=args.days)
    write_dataset(params, Path(paths.sources))
    runs: list[dict[str, Any]] = []
    with local_sources(paths) as (simulator, crm_url):
        settings = with_source_options(settings, "crm", base_url=crm_url)
        ran = replace(params, days=args.run_days or params.days)
        skip, last_day_skip = ([job for job in jobs.split(",") if job]
                               for jobs in (args.skip, args.last_day_skip))  # fmt: skip
        days = run_days(settings, paths, ran, simulator, spark, skip, last_day_skip)
        for day, summaries in days:
            for s in summaries:
                runs.append(
                    {"job": s.job, "day": day.isoformat(), "status": s.status,
                     "run_id": s.run_id,
                     "outputs": [{"name": o.name, "location": o.location,
                                  "version": o.delta_version, "rows": o.rows}
                                 for o in s.outputs]}
                )  # fmt: skip
    result = {"runs": runs, "tables": lake_tables(spark, paths), "root": paths.root}
    args.result.write_text(json.dumps(result, indent=2))
    print(json.dumps({"runs": len(runs), "tables": len(result["tables"])}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
