"""``lakehouse report``: one self-contained HTML page of what the pipeline did.

Built from the run records alone, local or on S3: the OpenLineage events the jobs
emitted (the lineage graph: sources -> Bronze -> Silver -> Gold, each job between the
datasets it read and wrote) and the run summaries (rows written and quarantined per
table and day, the quarantine tables in the graph, gate results with links to their
pages, freshness, the last run of each job; the same view as ``lakehouse status``).

The page needs no network: the graph (networkx's layered layout) and the charts are
drawn by matplotlib as inline SVG, text kept as text; the styles are inline too.
:func:`lineage_graph` and :func:`rows_per_day` are pure; :func:`render_report` makes
the page; :func:`write_report` reads the records and writes it.
"""

from __future__ import annotations

import html
import io
import os
import posixpath
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jobs.common.config import Settings
from jobs.common.lineage import dataset_name, read_events
from jobs.common.paths import LakePaths
from jobs.common.run_context import read_run_summaries, utc_now
from jobs.common.storage import write_text
from jobs.common.tables import declared_tables, quarantine_table_name
from jobs.status import StatusView, build_status

# columns of the lineage graph, left to right
LAYERS = ("bronze", "silver", "gold")  # jobs of other kinds (maintenance) are not drawn
COLUMNS = ("source", "bronze job", "bronze", "silver job", "silver", "gold job", "gold")
COLORS = {
    "source": "#9e9e9e",
    "bronze": "#b87333",
    "silver": "#7f8c8d",
    "gold": "#d4a017",
    "job": "#2c6fbb",
    "quarantine": "#c0392b",
}


@dataclass(frozen=True)
class Node:
    """A job or a dataset of the lineage graph."""

    name: str
    kind: str  # job | dataset | quarantine
    column: int  # index into COLUMNS

    @property
    def key(self) -> str:
        """Unique in the graph: a Bronze job and the table it writes share a name."""
        return node_key(self.kind, self.name)


def node_key(kind: str, name: str) -> str:
    """The graph key of the ``kind`` node called ``name``."""
    return f"{kind}:{name}"


@dataclass
class LineageGraph:
    """Jobs and datasets, and the edges input -> job -> output."""

    nodes: dict[str, Node] = field(default_factory=dict)  # by key
    edges: set[tuple[str, str]] = field(default_factory=set)  # (key, key)

    def add(self, node: Node) -> str:
        """Add ``node`` unless it is there; its key."""
        self.nodes.setdefault(node.key, node)
        return node.key


def _column(layer: str, kind: str) -> int:
    """The graph column of a ``layer`` (bronze, silver, gold) job or dataset."""
    return COLUMNS.index(f"{layer} job" if kind == "job" else layer)


def table_names(settings: Settings, paths: LakePaths) -> dict[tuple[str, str], str]:
    """OpenLineage (namespace, name) of every declared table -> ``<layer>.<table>``."""
    names = {}
    for table in declared_tables(settings):
        layer, name = table.split(".", 1)
        names[dataset_name(paths.table(layer, name))] = table
    return names


def _source_label(namespace: str, name: str, paths: LakePaths) -> str:
    """A short name for a source dataset: relative to the sources or landing folder."""
    for root, label in ((paths.sources, "sources"), (paths.landing, "landing")):
        root_ns, root_name = dataset_name(root)
        prefix = root_name.rstrip("/") + "/"
        # a local folder also holds file databases (namespace ``sqlite``)
        if name.startswith(prefix) and root_ns in (namespace, "file"):
            return f"{label}/{name[len(prefix) :]}"
    return f"{namespace}/{name}"


def lineage_graph(
    events: Iterable[Mapping[str, Any]],
    tables: Mapping[tuple[str, str], str],
    jobs: Iterable[str],
    quarantined: Mapping[str, str],
    paths: LakePaths,
) -> LineageGraph:
    """The graph of ``jobs`` from their COMPLETE events.

    ``tables`` names the lake's datasets (:func:`table_names`); any other dataset is a
    source. ``quarantined`` maps a job to the quarantine table it put rows in.
    """
    wanted = {job for job in jobs if job.split(".", 1)[0] in LAYERS}
    graph = LineageGraph()
    for event in events:
        job = event.get("job", {}).get("name")
        if event.get("eventType") != "COMPLETE" or job not in wanted:
            continue
        layer = job.split(".", 1)[0]
        runs = graph.add(Node(job, "job", _column(layer, "job")))
        for side in ("inputs", "outputs"):
            for dataset in event.get(side) or ():
                key = (dataset["namespace"], dataset["name"])
                if key in tables:
                    name = tables[key]
                    node = Node(name, "dataset", _column(name.split(".", 1)[0], "dataset"))
                else:
                    node = Node(_source_label(*key, paths), "dataset", 0)
                added = graph.add(node)
                graph.edges.add((added, runs) if side == "inputs" else (runs, added))
    for job, table in quarantined.items():
        if (runs := node_key("job", job)) in graph.nodes:
            column = _column(job.split(".", 1)[0], "dataset")
            graph.edges.add((runs, graph.add(Node(table, "quarantine", column))))
    return graph


def rows_per_day(summaries: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, tuple[int, int]]]:
    """Per table, per logical date: (rows written, rows quarantined) by successful runs."""
    found: dict[str, dict[str, tuple[int, int]]] = {}
    for summary in summaries:
        if summary.get("status") != "SUCCEEDED":
            continue
        for output in summary.get("outputs", []):
            days = found.setdefault(output["name"], {})
            written, quarantined = days.get(summary["logical_date"], (0, 0))
            days[summary["logical_date"]] = (
                written + int(output.get("rows") or 0),
                quarantined + int(output.get("rows_quarantined") or 0),
            )
    return {table: dict(sorted(days.items())) for table, days in sorted(found.items())}


def quarantine_of(summaries: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Job -> the quarantine table of its output, for jobs that quarantined rows."""
    found = {}
    for summary in summaries:
        for output in summary.get("outputs", []):
            if int(output.get("rows_quarantined") or 0) > 0:
                layer, table = output["name"].split(".", 1)
                found[summary["job"]] = f"_quarantine.{quarantine_table_name(layer, table)}"
    return found


# -- drawing -----------------------------------------------------------------------------


def _svg(figure: Any) -> str:
    """A matplotlib figure as inline SVG markup (text kept as text)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # labels stay <text>: searchable, crisp
    matplotlib.rcParams["svg.hashsalt"] = "lakehouse-report"  # stable ids
    import matplotlib.pyplot as plt

    return plt


def layered_positions(graph: LineageGraph) -> dict[str, tuple[float, float]]:
    """(x, y) per node key: x its column, y its place down the column.

    Down each column nodes follow their inputs' places (one barycentre sweep, left to
    right), so each pipeline reads across the page.
    """
    rank: dict[str, float] = {}
    positions: dict[str, tuple[float, float]] = {}
    for column in sorted({n.column for n in graph.nodes.values()}):
        here = [k for k, n in graph.nodes.items() if n.column == column]

        def place(key: str) -> tuple[float, int, str]:
            inputs = [rank[a] for a, b in graph.edges if b == key and a in rank]
            node = graph.nodes[key]
            middle = sum(inputs) / len(inputs) if inputs else float("inf")
            return middle, node.kind == "quarantine", node.name

        for index, key in enumerate(sorted(here, key=place)):
            rank[key] = index
            positions[key] = (float(column), (len(here) - 1) / 2 - index)
    return positions


def _color(node: Node) -> str:
    """Jobs and quarantine tables by kind, other datasets by their column."""
    return COLORS[COLUMNS[node.column] if node.kind == "dataset" else node.kind]


def draw_lineage(graph: LineageGraph) -> str:
    """The lineage graph as SVG: one column per layer, jobs between their datasets."""
    import networkx as nx

    plt = _pyplot()
    g = nx.DiGraph(sorted(graph.edges))
    g.add_nodes_from(graph.nodes)  # a job that read and wrote nothing
    positions = layered_positions(graph)
    columns = Counter(node.column for node in graph.nodes.values())
    tallest = max(columns.values())
    figure, axes = plt.subplots(figsize=(17, max(4.0, 0.42 * tallest)))
    colors = [_color(graph.nodes[key]) for key in g.nodes]
    forward = [(a, b) for a, b in g.edges if graph.nodes[a].column < graph.nodes[b].column]
    backward = [(a, b) for a, b in g.edges if graph.nodes[a].column >= graph.nodes[b].column]
    nx.draw_networkx_nodes(g, positions, ax=axes, node_color=colors, node_size=120)
    nx.draw_networkx_edges(
        g, positions, ax=axes, edgelist=forward, edge_color="#8a8a8a", arrowsize=8, width=0.7
    )
    nx.draw_networkx_edges(
        g,
        positions,
        ax=axes,
        edgelist=backward,
        edge_color="#8a8a8a",
        arrowsize=8,
        width=0.7,
        connectionstyle="arc3,rad=0.35",
    )
    for key, (x, y) in positions.items():
        name = graph.nodes[key].name
        axes.annotate(
            name,
            (x, y),
            xytext=(0, 7),
            textcoords="offset points",
            ha="center",
            fontsize=7,
            color="#1d1d1d",
            gid=f"node-{key}",
        )
    for column in sorted(columns):  # x of a node is its column
        axes.annotate(
            COLUMNS[column],
            (column, 1),
            xycoords=("data", "axes fraction"),
            xytext=(0, 12),
            textcoords="offset points",
            ha="center",
            fontsize=9,
            fontweight="bold",
        )
    axes.set_axis_off()
    svg = _svg(figure)
    plt.close(figure)
    return svg


def draw_rows(rows: Mapping[str, Mapping[str, tuple[int, int]]]) -> str:
    """Small multiples: per table, rows written and quarantined per day (bars)."""
    plt = _pyplot()
    tables = list(rows)
    per_row = 4
    lines = max(1, -(-len(tables) // per_row))
    figure, grid = plt.subplots(
        lines, per_row, figsize=(16, 2.6 * lines), squeeze=False, constrained_layout=True
    )
    for index, axes in enumerate(grid.flat):
        if index >= len(tables):
            axes.set_axis_off()
            continue
        table = tables[index]
        days = list(rows[table])
        written = [rows[table][d][0] for d in days]
        quarantined = [rows[table][d][1] for d in days]
        spots = range(len(days))
        bars = axes.bar([s - 0.2 for s in spots], written, 0.4, color="#2c6fbb", label="written")
        axes.bar_label(bars, fontsize=6, fmt="{:,.0f}")
        bad = axes.bar(
            [s + 0.2 for s in spots], quarantined, 0.4, color=COLORS["quarantine"], label="quar."
        )
        axes.bar_label(bad, fontsize=6, fmt=lambda v: f"{v:,.0f}" if v else "")
        axes.set_title(table, fontsize=9)
        axes.set_xticks(list(spots), [d[5:] for d in days], fontsize=7)
        axes.tick_params(axis="y", labelsize=7)
        axes.spines[["top", "right"]].set_visible(False)
        axes.set_ylim(bottom=0, top=max([*written, *quarantined, 1]) * 1.2)
        if index == 0:
            axes.legend(fontsize=7, frameon=False)
    svg = _svg(figure)
    plt.close(figure)
    return svg


# -- the page ----------------------------------------------------------------------------

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px 32px; color: #1d1d1d; }
h1 { font-size: 22px; margin-bottom: 2px; } h2 { font-size: 17px; margin-top: 30px; }
.meta { color: #666; } figure { margin: 8px 0; overflow-x: auto; }
figure svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #e2e2e2; padding: 4px 10px; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.passed, .SUCCEEDED { color: #1e7b34; } .failed, .FAILED { color: #b3261e; font-weight: 600; }
.warned { color: #a05a00; }
"""


def _cell(value: object) -> str:
    if isinstance(value, int):
        return f'<td class="n">{value:,}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def _table(table_id: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(f"<tr>{''.join(_cell(v) for v in row)}</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _page_cell(link: str | None) -> str:
    """A link to a gate's page; a location no browser opens (``s3://``) shown as text."""
    if link is None:
        return "<td></td>"
    if "://" in link:
        return f"<td><code>{html.escape(link)}</code></td>"
    return f'<td><a href="{html.escape(link)}">report</a></td>'


def _status(status: str) -> str:
    return f'<td class="{html.escape(status)}">{html.escape(status)}</td>'


def render_report(
    view: StatusView,
    graph: LineageGraph,
    rows: Mapping[str, Mapping[str, tuple[int, int]]],
    env: str,
    now: datetime,
    location: str,
) -> str:
    """The whole page, to be written at ``location`` (gate pages link from there)."""
    gates = "".join(
        "<tr>"
        + _cell(g.gate)
        + _status(g.status)
        + _cell(g.expectations)
        + _cell(g.failed)
        + _cell(g.rows_quarantined)
        + _cell("; ".join(g.problems))
        + _page_cell(page_link(g.page, location) if g.page else None)
        + "</tr>"
        for g in view.gates
    )
    runs = "".join(
        "<tr>"
        + _cell(r.job)
        + _status(r.status)
        + _cell(r.logical_date)
        + _cell(r.ended_at.strftime("%Y-%m-%d %H:%M:%S"))
        + f'<td class="n">{r.duration_s:.1f}s</td>'
        + _cell(r.rows_read)
        + _cell(r.rows_written)
        + _cell(r.rows_quarantined)
        + _cell(r.note)
        + "</tr>"
        for r in view.runs
    )
    failed = sum(1 for r in view.runs if r.status != "SUCCEEDED")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>lakehouse report ({html.escape(env)})</title>
<style>{STYLE}</style></head>
<body>
<h1>Lakehouse pipeline report</h1>
<p class="meta">environment {html.escape(env)} &middot; generated {now:%Y-%m-%d %H:%M:%S} UTC
&middot; {len(view.runs)} jobs, {failed} not succeeded in their last run</p>
<h2>Lineage</h2>
<p class="meta">From the jobs' OpenLineage events: each job (blue) between the datasets it
read and wrote; grey: sources; red: quarantine tables that received rows.</p>
<figure id="lineage">{draw_lineage(graph) if graph.nodes else "<p>no lineage events</p>"}</figure>
<h2>Rows written and quarantined per day</h2>
<figure id="rows">{draw_rows(rows) if rows else "<p>no successful runs</p>"}</figure>
<h2>Quality gates (latest result)</h2>
<table id="gates"><thead><tr><th>gate</th><th>status</th><th>expectations</th><th>failed</th>
<th>quarantined</th><th>problems</th><th>page</th></tr></thead><tbody>{gates}</tbody></table>
<h2>Freshness (last successful write)</h2>
{
        _table(
            "freshness",
            ("table", "written at", "logical date", "watermark", "run"),
            (
                (
                    t.table,
                    f"{t.written_at:%Y-%m-%d %H:%M}",
                    t.logical_date,
                    t.watermark,
                    t.run_id,
                )
                for t in view.tables
            ),
        )
    }
<h2>Last run of each job</h2>
<table id="runs"><thead><tr><th>job</th><th>status</th><th>date</th><th>ended</th><th>took</th>
<th>read</th><th>written</th><th>quarantined</th><th>note</th></tr></thead>
<tbody>{runs}</tbody></table>
</body></html>
"""


def page_link(page: str, report: str) -> str:
    """How the report at ``report`` links to ``page``.

    A relative path when both are in one place (local, or one bucket: served together,
    the link works), else the page's location.
    """
    scheme, _, rest = report.partition("://")
    page_scheme, _, page_rest = page.partition("://")
    if not rest and not page_rest:  # both local
        return os.path.relpath(page, Path(report).parent)
    bucket, _, key = rest.partition("/")
    page_bucket, _, page_key = page_rest.partition("/")
    if rest and (scheme, bucket) == (page_scheme, page_bucket):
        return posixpath.relpath(page_key, posixpath.dirname(key))
    return page


def write_report(
    settings: Settings, paths: LakePaths, jobs: Iterable[str], out: str | None = None
) -> str:
    """Read the run records of ``paths``, write the page; returns where it went.

    ``out`` defaults to ``<root>/report/index.html`` (local folder or S3 prefix).
    """
    location = out or f"{paths.root}/report/index.html"
    summaries = list(read_run_summaries(paths).values())
    quarantined = quarantine_of(summaries)
    graph = lineage_graph(
        read_events(paths.lineage), table_names(settings, paths), jobs, quarantined, paths
    )
    page = render_report(
        build_status(summaries),
        graph,
        rows_per_day(summaries),
        settings.env,
        utc_now(),
        location,
    )
    write_text(location, page)
    return location
