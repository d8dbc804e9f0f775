"""``lakehouse report``: the page from run records, and the page in a browser."""

from __future__ import annotations

import datetime as dt
import json
import re
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest

from jobs.common.config import Settings
from jobs.common.lineage import RunLineage, read_events
from jobs.common.paths import LakePaths
from jobs.common.run_context import DatasetStats, RunContext, RunRecorder, job_run
from jobs.main import main
from jobs.report import (
    Node,
    lineage_graph,
    page_link,
    quarantine_of,
    rows_per_day,
    table_names,
    write_report,
)
from tests.support.browser import look_at

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
JOBS = ["bronze.crm_customers", "silver.dim_customer", "gold.customer_360"]


def record_run(
    settings: Settings,
    lake: LakePaths,
    job: str,
    day: dt.date,
    reads: list[tuple[str, str]],
    writes: list[tuple[str, str, int, int]],
    fail: bool = False,
    attempt: int = 1,
) -> None:
    """One run's records as the runner leaves them: summary, gate page, lineage events."""
    ctx = RunContext(job, settings.env, day, attempt)
    lineage = RunLineage(settings, lake, ctx)

    def end(recorder: RunRecorder, error: BaseException | None) -> None:
        lineage.finish(recorder.summary, None, error)

    failing = pytest.raises(RuntimeError) if fail else nullcontext()
    with failing, job_run(ctx, lake, end) as run:
        lineage.start({})
        for name, location in reads:
            run.input(DatasetStats(name, location, 10))
        for name, location, rows, quarantined in writes:
            run.output(DatasetStats(name, location, rows, quarantined))
            gate = {"status": "passed", "expectations": 3, "failed": 0}
            gate["rows_quarantined"] = quarantined
            page = f"<html><head><title>gate {name}</title></head><body>{name}</body></html>"
            run.quality(name, json.dumps(gate), gate, page)
        if fail:
            raise RuntimeError("source unreachable")


@pytest.fixture
def recorded(settings: Settings, lake: LakePaths) -> LakePaths:
    """Two days of a three-job pipeline; day 2's Silver run failed once, then succeeded."""
    crm = f"{lake.sources}/crm/customers"
    bronze, silver = lake.table("bronze", "crm_customers"), lake.table("silver", "dim_customer")
    gold = lake.table("gold", "customer_360")
    for day, (kept, bad) in ((D1, (97, 3)), (D2, (20, 0))):
        record_run(
            settings, lake, JOBS[0], day, [("crm.customers", crm)], [(JOBS[0], bronze, kept, bad)]
        )
        if day == D2:
            record_run(settings, lake, JOBS[1], day, [(JOBS[0], bronze)], [], fail=True)
        record_run(
            settings,
            lake,
            JOBS[1],
            day,
            [(JOBS[0], bronze)],
            [(JOBS[1], silver, kept, 0)],
            attempt=2 if day == D2 else 1,
        )
        record_run(settings, lake, JOBS[2], day, [(JOBS[1], silver)], [(JOBS[2], gold, 50, 0)])
    return lake


def summaries_of(lake: LakePaths) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(Path(lake.runs).glob("*/summary.json"))]


def test_lineage_graph_puts_each_job_between_what_it_read_and_wrote_with_its_quarantine(
    settings: Settings, recorded: LakePaths
) -> None:
    graph = lineage_graph(
        read_events(recorded.lineage),
        table_names(settings, recorded),
        JOBS,
        quarantine_of(summaries_of(recorded)),
        recorded,
    )
    assert sorted(graph.nodes.values(), key=lambda n: n.key) == [
        Node("bronze.crm_customers", "dataset", 2),
        Node("gold.customer_360", "dataset", 6),
        Node("silver.dim_customer", "dataset", 4),
        Node("sources/crm/customers", "dataset", 0),
        Node("bronze.crm_customers", "job", 1),
        Node("gold.customer_360", "job", 5),
        Node("silver.dim_customer", "job", 3),
        Node("_quarantine.bronze_crm_customers", "quarantine", 2),
    ]
    assert sorted(graph.edges) == [
        ("dataset:bronze.crm_customers", "job:silver.dim_customer"),
        ("dataset:silver.dim_customer", "job:gold.customer_360"),
        ("dataset:sources/crm/customers", "job:bronze.crm_customers"),
        ("job:bronze.crm_customers", "dataset:bronze.crm_customers"),
        ("job:bronze.crm_customers", "quarantine:_quarantine.bronze_crm_customers"),
        ("job:gold.customer_360", "dataset:gold.customer_360"),
        ("job:silver.dim_customer", "dataset:silver.dim_customer"),
    ]


def test_rows_per_day_counts_successful_runs_only(recorded: LakePaths) -> None:
    assert rows_per_day(summaries_of(recorded)) == {
        "bronze.crm_customers": {"2026-01-01": (97, 3), "2026-01-02": (20, 0)},
        "gold.customer_360": {"2026-01-01": (50, 0), "2026-01-02": (50, 0)},
        "silver.dim_customer": {"2026-01-01": (97, 0), "2026-01-02": (20, 0)},
    }


def test_the_report_renders_offline_in_chromium_with_graph_charts_gates_and_runs(
    recorded: LakePaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEHOUSE_HOME", recorded.root)
    assert main(["report"]) == 0
    page = Path(recorded.root) / "report" / "index.html"
    html = page.read_text()
    assert re.findall(r"(?:src|href)=\"(?:https?:)?//[^\"]*", html) == []  # nothing to fetch

    shot = tmp_path / "report.png"
    seen = look_at(page, shot)
    look = seen.look
    assert (seen.console_errors, seen.blocked_requests) == ([], [])
    assert look["title"] == "lakehouse report (local)"
    # the graph drew: sized, every node named, marks for nodes and edges
    assert look["lineage_box"][0] > 800 and look["lineage_box"][1] > 150
    # each job and the table it writes share a name: both labels show
    nodes = [*JOBS, *JOBS, "sources/crm/customers", "_quarantine.bronze_crm_customers"]
    headers = ["source", "bronze job", "bronze", "silver job", "silver", "gold job", "gold"]
    assert sorted(look["lineage_texts"]) == sorted([*nodes, *headers])
    assert look["lineage_marks"] >= 7  # one arrow per edge at least
    # one chart per table, two days each, bars drawn
    assert look["rows_box"][0] > 800
    assert {"bronze.crm_customers", "silver.dim_customer", "gold.customer_360"} <= set(
        look["rows_texts"]
    )
    assert {"01-01", "01-02"} <= set(look["rows_texts"])
    assert look["rows_bars"] >= 3 * 2 * 2
    assert look["gates"] == [
        [gate, "passed", "3", "0", quarantined, "", "report"]
        for gate, quarantined in (
            ("bronze.crm_customers", "0"),
            ("gold.customer_360", "0"),
            ("silver.dim_customer", "0"),
        )
    ]
    assert seen.linked_titles == [f"gate {g}" for g in sorted(JOBS)]
    assert [row[:3] for row in look["runs"]] == [
        [job, "SUCCEEDED", "2026-01-02"] for job in sorted(JOBS)
    ]
    assert [row[0] for row in look["freshness"]] == sorted(JOBS)
    assert shot.stat().st_size > 50_000  # a full page, not a blank one


@pytest.mark.parametrize(
    ("page", "report", "link"),
    [
        ("/h/runs/r1/quality/index.html", "/h/report/index.html", "../runs/r1/quality/index.html"),
        ("s3://ops/p/runs/r1/q.html", "s3://ops/p/report/index.html", "../runs/r1/q.html"),
        ("s3://ops/p/runs/r1/q.html", "/tmp/report.html", "s3://ops/p/runs/r1/q.html"),
        ("s3://ops/p/runs/r1/q.html", "s3://other/report.html", "s3://ops/p/runs/r1/q.html"),
    ],
)
def test_gate_pages_are_linked_relatively_where_they_are_served_together(
    page: str, report: str, link: str
) -> None:
    assert page_link(page, report) == link


def test_a_lake_without_runs_gets_a_page_that_says_so(
    settings: Settings, lake: LakePaths, tmp_path: Path
) -> None:
    out = tmp_path / "empty.html"
    assert write_report(settings, lake, JOBS, str(out)) == str(out)
    text = out.read_text()
    assert "<p>no lineage events</p>" in text and "<p>no successful runs</p>" in text
