"""The quality gate: a table's expectation suite run on a staged DataFrame before the write.

Order of work, for one staged batch:

1. ``quarantine`` rules (row-level predicates) tag failing rows with the rule names;
   those rows are split off for the caller to write to the layer's quarantine table.
   A quarantine rate above the threshold fails the gate.
2. The whole suite runs through Great Expectations 1.x (one ephemeral context per
   process, a Spark dataframe asset, a ValidationDefinition per suite) on the rows
   that remain. GX resolves the suite's aggregate metrics together.
3. ``fail`` expectations that did not pass fail the gate (strict mode); ``warn`` ones
   are recorded. In ``warn-only`` mode nothing blocks: failures are reported as warnings.

The caller writes nothing when :class:`QualityGateError` is raised; the report (JSON per
table, an HTML page per run) is written under ``runs/<run_id>/quality/`` either way.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.common import delta_io
from jobs.common.errors import QualityGateError, ReconciliationError
from jobs.common.expectations import (
    ExpectationSpec,
    ForeignKeySpec,
    SuiteSpec,
    gx_class_name,
    load_suite,
    row_check,
)

if TYPE_CHECKING:
    from jobs.common.job import JobEnv
    from jobs.common.run_context import RunRecorder

# GX sends usage statistics by default; jobs run without internet access.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

log = logging.getLogger(__name__)

Mode = Literal["strict", "warn-only"]
FAILED_RULES = "_failed_rules"
SAMPLE = 5  # unexpected values shown per expectation


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result."""

    rule: str
    type: str
    action: str
    description: str
    kwargs: dict[str, Any]
    success: bool
    observed: Any
    unexpected_count: int | None
    unexpected_percent: float | None
    unexpected_sample: list[Any]

    def describe(self, table: str) -> str:
        """One line for an error message: table, column, expected, observed, values."""
        column = self.kwargs.get("column") or self.kwargs.get("column_list") or "-"
        expected = {k: v for k, v in self.kwargs.items() if k not in ("column", "column_list")}
        observed = (
            f"{self.unexpected_count} unexpected ({self.unexpected_percent:.2f}%)"
            if self.unexpected_count is not None and self.unexpected_percent is not None
            else f"observed {self.observed!r}"
        )
        shown = [v for v in self.unexpected_sample if v is not None]
        sample = f", e.g. {shown}" if shown else ""
        return f"{table}: {self.type} on {column} expected {expected or 'true'}: {observed}{sample}"


@dataclass
class GateReport:
    """What a gate found, as written to ``runs/<run_id>/quality/<layer>.<table>.json``."""

    layer: str
    table: str
    run_id: str
    mode: str
    suite: str | None
    rows_checked: int = 0
    rows_quarantined: int = 0
    quarantine_threshold: float = 0.0
    quarantined_by_rule: dict[str, int] = field(default_factory=dict)
    outcomes: list[ExpectationOutcome] = field(default_factory=list)
    status: str = "passed"  # passed | warned | failed | no-suite
    problems: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    reconciliation: Reconciliation | None = None

    @property
    def name(self) -> str:
        """``<layer>.<table>``."""
        return f"{self.layer}.{self.table}"

    @property
    def quarantine_rate(self) -> float:
        """Quarantined rows over rows checked."""
        return self.rows_quarantined / self.rows_checked if self.rows_checked else 0.0

    def to_json(self) -> str:
        """The report as JSON."""
        data = asdict(self)
        data["quarantine_rate"] = round(self.quarantine_rate, 6)
        if self.reconciliation:
            data["reconciliation"] = self.reconciliation.summary()
        return json.dumps(data, indent=2, default=str)

    def summary(self) -> dict[str, Any]:
        """The short form the run summary carries."""
        return {
            "status": self.status,
            "expectations": len(self.outcomes),
            "failed": sum(1 for o in self.outcomes if not o.success),
            "rows_quarantined": self.rows_quarantined,
            "problems": self.problems,
            **({"reconciliation": self.reconciliation.summary()} if self.reconciliation else {}),
        }


@dataclass(frozen=True)
class Reconciliation:
    """Where every row a run read went: written, quarantined, or deduplicated.

    ``source_rows`` comes from the source table's Delta log (rows its commits added in
    the versions read), not from the read itself, so a read that misses rows shows.
    ``unexplained`` = source rows - quarantined - applied - deduplicated; its share of
    the source rows must stay within ``max_row_loss``. ``duplicate_keys`` counts keys
    this run touched that now have more than one (current) row in the target: any is a
    failure (primary keys are unique, 100%).
    """

    source: str
    target: str
    versions: tuple[int, int]
    source_rows: int
    rows_read: int
    quarantined: int = 0
    applied: int = 0
    deduplicated: int = 0
    duplicate_keys: int = 0
    max_row_loss: float = 0.01
    written: bool = False  # False: only the read side is known yet

    @property
    def unexplained(self) -> int:
        """Rows neither written, quarantined nor deduplicated (read loss before the write)."""
        if not self.written:
            return self.source_rows - self.rows_read
        return self.source_rows - self.quarantined - self.applied - self.deduplicated

    @property
    def loss_rate(self) -> float:
        """``unexplained`` over the source rows."""
        return self.unexplained / self.source_rows if self.source_rows else 0.0

    def problems(self) -> list[str]:
        """What does not add up, one line each."""
        found = []
        if abs(self.loss_rate) > self.max_row_loss:
            first, last = self.versions
            side = (
                f"read {self.rows_read}"
                if not self.written
                else f"accounted for {self.source_rows - self.unexplained} "
                f"(quarantined {self.quarantined}, applied {self.applied}, "
                f"deduplicated {self.deduplicated})"
            )
            found.append(
                f"{self.source} -> {self.target}: {self.source} versions {first}..{last} added "
                f"{self.source_rows} rows, {side}: {self.unexplained} unexplained "
                f"({self.loss_rate:.2%}, at most {self.max_row_loss:.2%} allowed)"
            )
        if self.duplicate_keys:
            found.append(
                f"{self.target}: {self.duplicate_keys} keys of this run have more than "
                "one (current) row; primary keys must be unique"
            )
        return found

    def summary(self) -> dict[str, Any]:
        """The identity as numbers, for the run summary and the report."""
        return {
            "source": self.source,
            "source_versions": list(self.versions),
            "source_rows": self.source_rows,
            "rows_read": self.rows_read,
            "quarantined": self.quarantined,
            "applied": self.applied,
            "deduplicated": self.deduplicated,
            "unexplained": self.unexplained,
            "loss_rate": round(self.loss_rate, 6),
            "duplicate_keys": self.duplicate_keys,
            "checked": "read and write" if self.written else "read",
        }


def failure_reason() -> Column:
    """The quarantine ``_reason`` of a row the gate moved: its rule names."""
    return F.concat(F.lit("expectation failed: "), F.array_join(FAILED_RULES, ", "))


@dataclass(frozen=True)
class GateResult:
    """The rows to write, the rows to quarantine (with ``_failed_rules``), the report."""

    passed: DataFrame
    quarantined: DataFrame | None
    report: GateReport


def check(
    suite: SuiteSpec | None,
    staged: DataFrame,
    *,
    run_id: str,
    layer: str,
    table: str,
    mode: Mode,
    quarantine_threshold: float,
    references: Mapping[str, DataFrame | None] | None = None,
) -> GateResult:
    """Run ``suite`` on ``staged``; raise :class:`QualityGateError` when the gate fails.

    ``staged`` should be cached by the caller: it is read by the rule counts, by GX and
    by the write. ``references`` maps each foreign key's ``references`` to the values it
    may take (a one-column DataFrame).
    """
    start = time.perf_counter()
    threshold = (
        suite.quarantine_threshold
        if suite and suite.quarantine_threshold is not None
        else quarantine_threshold
    )
    report = GateReport(
        layer, table, run_id, mode, suite.source if suite else None, quarantine_threshold=threshold
    )
    if suite is None:
        report.status = "no-suite"
        return GateResult(staged, None, report)
    passed, quarantined = staged, None
    rules = [row_check(spec) for spec in suite.quarantine_rules]
    if rules:
        failed = F.filter(
            F.array(*[F.when(~r.passes, F.lit(r.rule)) for r in rules]), lambda x: x.isNotNull()
        )
        tagged = staged.withColumn(FAILED_RULES, failed)  # staged is cached by the caller
        counts = tagged.select(
            F.count("*").alias("rows"),
            *[F.sum((~r.passes).cast("long")).alias(f"r{i}") for i, r in enumerate(rules)],
            F.sum((F.size(FAILED_RULES) > 0).cast("long")).alias("bad"),
        ).first()
        assert counts is not None
        report.rows_checked = int(counts["rows"])
        report.rows_quarantined = int(counts["bad"] or 0)
        report.quarantined_by_rule = {
            r.rule: int(counts[f"r{i}"] or 0) for i, r in enumerate(rules) if counts[f"r{i}"]
        }
        passed = tagged.where(F.size(FAILED_RULES) == 0).drop(FAILED_RULES)
        quarantined = tagged.where(F.size(FAILED_RULES) > 0)
        if report.quarantine_rate > threshold:
            report.problems.append(
                f"{report.name}: quarantine rate {report.quarantine_rate:.2%} is above the "
                f"{threshold:.2%} threshold ({report.rows_quarantined} of "
                f"{report.rows_checked} rows: {report.quarantined_by_rule})"
            )
    report.outcomes = [
        *_validate(suite, passed),
        *[
            _foreign_key(fk, passed, (references or {}).get(fk.references))
            for fk in suite.foreign_keys
        ],
    ]
    if not rules:
        report.rows_checked = staged.count()
    for outcome in report.outcomes:
        if not outcome.success and outcome.action in ("fail", "quarantine"):
            report.problems.append(outcome.describe(report.name))
    warned = [o for o in report.outcomes if not o.success and o.action == "warn"]
    report.duration_s = round(time.perf_counter() - start, 3)
    if report.problems and mode == "strict":
        report.status = "failed"
        raise QualityGateError(
            f"quality gate {report.name} failed, nothing written:\n  "
            + "\n  ".join(report.problems),
            report,
        )
    if report.problems or warned:
        report.status = "warned"
        for outcome in warned:
            log.warning("quality warning: %s", outcome.describe(report.name))
        for problem in report.problems:
            log.warning("quality gate (warn-only mode): %s", problem)
    return GateResult(passed, quarantined, report)


def run_gate(job: JobEnv, layer: str, table: str, staged: DataFrame) -> GateResult:
    """:func:`check` with the job's suite and settings; the report is recorded either way."""
    settings = job.settings.quality
    suite = load_suite(Path(job.settings.config_dir), layer, table)
    references = {
        fk.references: _known_values(job, *fk.target)
        for fk in (suite.foreign_keys if suite else ())
    }
    report: GateReport | None = None
    try:
        result = check(
            suite,
            staged,
            run_id=job.ctx.run_id,
            layer=layer,
            table=table,
            mode=settings.mode,
            quarantine_threshold=settings.quarantine_threshold,
            references=references,
        )
        report = result.report
        return result
    except QualityGateError as exc:
        report = exc.report if isinstance(exc.report, GateReport) else None
        raise
    finally:
        if report is not None and report.status == "no-suite":
            _remember(job.recorder, report)  # for reconcile(); nothing to show yet
        elif report is not None:
            _record(job, report)


def reconcile(job: JobEnv, layer: str, table: str, accounting: Reconciliation) -> None:
    """Check ``accounting`` and record it in ``<layer>.<table>``'s report.

    Called twice by a Silver build: before the write with the read side only (a lossy
    read stops the job with nothing written), and after it with the writer's counts.

    Raises:
        ReconciliationError: in strict mode, when the identity does not hold.
    """
    name = f"{layer}.{table}"
    report = next((r for r in gate_reports(job.recorder) if r.name == name), None)
    if report is None:  # run_gate was not called (nothing staged)
        report = GateReport(layer, table, job.ctx.run_id, job.settings.quality.mode, None)
        report.status = "no-suite"
    before = report.reconciliation.problems() if report.reconciliation else []
    report.reconciliation = accounting
    problems = accounting.problems()
    # the read-side check's lines give way to the full check's (warn-only keeps going)
    report.problems = [p for p in report.problems if p not in before] + problems
    if problems:
        report.status = "failed" if report.mode == "strict" else "warned"
    _record(job, report)
    if problems and report.mode == "strict":
        stage = (
            "after the write, progress not recorded" if accounting.written else "nothing written"
        )
        raise ReconciliationError(
            f"reconciliation {accounting.source} -> {name} failed, {stage}:\n  "
            + "\n  ".join(problems),
            report,
        )
    for problem in problems:
        log.warning("reconciliation (warn-only mode): %s", problem)


def gate_reports(recorder: RunRecorder) -> list[GateReport]:
    """The gate reports a run has made so far (for its HTML page and lineage events)."""
    return [r for r in recorder.gate_reports.values() if isinstance(r, GateReport)]


def _remember(recorder: RunRecorder, report: GateReport) -> None:
    """Keep ``report`` as the run's latest for its table (replacing an earlier one)."""
    recorder.gate_reports.pop(report.name, None)
    recorder.gate_reports[report.name] = report


def _record(job: JobEnv, report: GateReport) -> None:
    _remember(job.recorder, report)
    job.recorder.quality(
        report.name, report.to_json(), report.summary(), render_html(gate_reports(job.recorder))
    )


def _known_values(job: JobEnv, layer: str, table: str, column: str) -> DataFrame | None:
    """Every value of ``column`` in a table; for SCD2 tables, in any version.

    So an order of a since-deleted customer is not an orphan. None when the table does
    not exist yet: the check is then reported as skipped.
    """
    location = job.paths.table(layer, table)
    if not delta_io.table_exists(job.spark, location):
        return None
    return delta_io.read_table(job.spark, location).select(F.col(f"`{column}`"))


@cache
def _context() -> Any:
    """One ephemeral GX context per process, with one Spark data source."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # no tqdm bars in job logs
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    context.data_sources.add_spark(name="lakehouse")
    return context


def _validate(suite: SuiteSpec, frame: DataFrame) -> list[ExpectationOutcome]:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    context = _context()
    # A definition per suite content: a changed suite file is a new definition.
    digest = hashlib.sha256(suite.model_dump_json().encode()).hexdigest()[:12]
    name = f"{suite.layer}.{suite.table}.{digest}"
    source = context.data_sources.get("lakehouse")
    try:
        definition = context.validation_definitions.get(name)
    except Exception:  # first use in this process: build asset, suite, definition
        asset = source.add_dataframe_asset(name=name)
        batch = asset.add_batch_definition_whole_dataframe("staged")
        gx_suite = context.suites.add(gx.ExpectationSuite(name=name))
        for index, entry in enumerate(suite.expectations):
            cls = getattr(gxe, gx_class_name(entry.type))
            gx_suite.add_expectation(cls(**entry.gx_kwargs, meta={"index": index}))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=gx_suite)
        )
    result = definition.run(
        batch_parameters={"dataframe": frame},
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE},
    )
    outcomes = []
    for item in result.results:
        spec: ExpectationSpec = suite.expectations[int(item.expectation_config.meta["index"])]
        detail = item.result or {}
        outcomes.append(
            ExpectationOutcome(
                rule=spec.rule,
                type=spec.type,
                action=spec.action,
                description=spec.description,
                kwargs=spec.gx_kwargs,
                success=bool(item.success),
                observed=detail.get("observed_value"),
                unexpected_count=detail.get("unexpected_count"),
                unexpected_percent=detail.get("unexpected_percent"),
                unexpected_sample=list(detail.get("partial_unexpected_list") or [])[:SAMPLE],
            )
        )
        if item.exception_info and item.exception_info.get("raised_exception"):
            outcomes[-1] = _errored(outcomes[-1], item.exception_info)
    order = {spec.rule: i for i, spec in enumerate(suite.expectations)}
    return sorted(outcomes, key=lambda o: order[o.rule])  # GX returns them in any order


def _foreign_key(
    fk: ForeignKeySpec, frame: DataFrame, allowed: DataFrame | None
) -> ExpectationOutcome:
    """Share of non-NULL ``fk.column`` values found in ``allowed``, with orphans listed."""
    kwargs = {"column": fk.column, "references": fk.references, "min_ratio": fk.min_ratio}
    if allowed is None:
        return ExpectationOutcome(
            fk.rule, "foreign_key", fk.action, fk.description, kwargs, True,
            f"skipped: {fk.references.rsplit('.', 1)[0]} does not exist yet", None, None, [],
        )  # fmt: skip
    values = frame.select(F.col(f"`{fk.column}`").alias("v")).where("v IS NOT NULL")
    known = allowed.select(F.col(allowed.columns[0]).alias("v")).distinct()
    found = values.join(known.withColumn("known", F.lit(True)), "v", "left").cache()
    try:
        counts = found.agg(
            F.count("*").alias("total"), F.count_if(F.col("known").isNull()).alias("missing")
        ).first()
        assert counts is not None
        total, missing = int(counts["total"]), int(counts["missing"])
        orphans = found.where("known IS NULL").select("v").distinct().orderBy("v")
        sample = [r.v for r in orphans.limit(SAMPLE).collect()] if missing else []
    finally:
        found.unpersist()
    ratio = 1 - missing / total if total else 1.0
    return ExpectationOutcome(
        rule=fk.rule,
        type="foreign_key",
        action=fk.action,
        description=fk.description,
        kwargs=kwargs,
        success=ratio >= fk.min_ratio,
        observed=round(ratio, 6),
        unexpected_count=missing,
        unexpected_percent=100 * missing / total if total else 0.0,
        unexpected_sample=sample,
    )


def _errored(outcome: ExpectationOutcome, info: dict[str, Any]) -> ExpectationOutcome:
    message = str(info.get("exception_message") or "expectation raised")
    return ExpectationOutcome(
        **{**asdict(outcome), "success": False, "observed": f"error: {message[:300]}"}
    )


def render_html(reports: list[GateReport]) -> str:
    """A self-contained page of a run's gate results (the run summary links to it)."""
    rows = []
    for report in reports:
        rows.append(
            f"<h2>{html.escape(report.name)}: {html.escape(report.status)}</h2>"
            f"<p>suite {html.escape(str(report.suite))} · mode {html.escape(report.mode)} · "
            f"rows checked {report.rows_checked} · quarantined {report.rows_quarantined} "
            f"({report.quarantine_rate:.2%}, threshold {report.quarantine_threshold:.2%}) · "
            f"{report.duration_s}s</p>"
        )
        if report.problems:
            items = "".join(f"<li>{html.escape(p)}</li>" for p in report.problems)
            rows.append(f"<ul class=problems>{items}</ul>")
        if report.reconciliation:
            numbers = report.reconciliation.summary()
            cells = "".join(
                f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
                for k, v in numbers.items()
            )
            rows.append(f"<h3>reconciliation</h3><table>{cells}</table>")
        cells = "".join(
            "<tr class={}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td></tr>".format(
                "ok" if o.success else "bad",
                html.escape(o.rule),
                html.escape(o.action),
                "pass" if o.success else "FAIL",
                html.escape(json.dumps(o.kwargs, default=str)),
                html.escape(
                    str(o.observed)
                    if o.unexpected_count is None
                    else f"{o.unexpected_count} ({(o.unexpected_percent or 0):.2f}%)"
                ),
                html.escape(json.dumps(o.unexpected_sample, default=str)),
                html.escape(o.description),
            )
            for o in report.outcomes
        )
        rows.append(
            "<table><tr><th>rule</th><th>action</th><th>result</th><th>expected</th>"
            f"<th>observed</th><th>sample</th><th>description</th></tr>{cells}</table>"
        )
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}"
        ".bad{background:#fdd}.ok{background:#efe}.problems{color:#a00}"
    )
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>Quality gates</title>"
        f"<style>{style}</style></head><body><h1>Quality gates</h1>{''.join(rows)}</body></html>"
    )
