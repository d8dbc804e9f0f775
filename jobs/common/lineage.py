"""OpenLineage events for every job run: START, then exactly one of COMPLETE / FAIL / ABORT.

Built with openlineage-python from the run's summary: datasets named by storage
location (``s3://bucket`` + key in AWS, ``file`` + path locally), with their schema,
data source, output statistics from the Delta commit, data quality assertions from the
gate, and column lineage where the job declares it. The transport comes from the
standard OpenLineage configuration when one is present (``OPENLINEAGE_CONFIG``,
``openlineage.yml``, ``OPENLINEAGE_URL``, ``OPENLINEAGE__TRANSPORT__*``), else from
``lineage.transport`` in config: a ``file`` transport writes a JSON-lines file under
``$LAKEHOUSE_HOME/lineage/`` locally, and one object per event under
``<storage.root>/lineage/<run_id>/`` when the lake is on S3 (object stores do not append).

A lineage outage never fails a job: an emit error is logged and counted in the run
summary (``lineage.failed``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import traceback
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from pyspark.sql import SparkSession

    from jobs.common.config import Settings
    from jobs.common.paths import LakePaths
    from jobs.common.quality import GateReport
    from jobs.common.run_context import DatasetStats, RunContext, RunSummary

log = logging.getLogger(__name__)

PRODUCER = "https://github.com/lakehouse/lakehouse-pipeline/tree/main/jobs"
PARENT_ENV = "OPENLINEAGE_PARENT_ID"  # "<namespace>/<job name>/<run id>", as Airflow passes it
_STANDARD_CONFIG_ENV = ("OPENLINEAGE_CONFIG", "OPENLINEAGE_URL", "OPENLINEAGE_DISABLED")


@dataclass(frozen=True)
class ParentRun:
    """The run that started this one (an Airflow task instance)."""

    namespace: str
    job_name: str
    run_id: str

    @classmethod
    def parse(cls, value: str) -> ParentRun:
        """From ``<namespace>/<job name>/<run id>``.

        Raises:
            ValueError: not three non-empty parts.
        """
        parts = value.split("/")
        if len(parts) < 3 or not all(parts):
            raise ValueError(
                f"{PARENT_ENV} must be '<namespace>/<job name>/<run id>', found {value!r}"
            )
        try:
            uuid.UUID(parts[-1])
        except ValueError:
            raise ValueError(
                f"{PARENT_ENV}: the run id must be a UUID, found {parts[-1]!r} in {value!r}"
            ) from None
        return cls("/".join(parts[:-2]), parts[-2], parts[-1])


@dataclass(frozen=True)
class ColumnSource:
    """An input column a derived column is computed from."""

    dataset: str  # <layer>.<table>
    column: str


@dataclass
class LineageStats:
    """What the run's lineage emission did (in the run summary)."""

    run_id: str
    namespace: str
    transport: str
    emitted: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def dataset_name(location: str) -> tuple[str, str]:
    """OpenLineage (namespace, name) of a storage location, after the naming spec.

    ``s3://bucket/a/b`` -> (``s3://bucket``, ``a/b``); a local path -> (``file``, path);
    a JDBC table ``jdbc:postgresql://host:5432/db#table`` -> (``postgres://host:5432``,
    ``db.table``); an HTTP API -> (``https://host``, path).
    """
    if location.startswith("jdbc:"):
        url, _, table = location[len("jdbc:") :].partition("#")
        parsed = urlparse(url)
        scheme = "postgres" if parsed.scheme == "postgresql" else parsed.scheme
        if parsed.netloc:
            database = parsed.path.strip("/")
            return f"{scheme}://{parsed.netloc}", ".".join(p for p in (database, table) if p)
        return scheme, ".".join(p for p in (parsed.path, table) if p)  # sqlite: a file
    parsed = urlparse(location)
    if parsed.scheme in ("s3", "s3a", "gs", "abfss", "hdfs"):
        scheme = "s3" if parsed.scheme == "s3a" else parsed.scheme
        return f"{scheme}://{parsed.netloc}", parsed.path.lstrip("/")
    if parsed.scheme in ("http", "https", "kafka"):
        return f"{parsed.scheme}://{parsed.netloc}", parsed.path.lstrip("/") or "/"
    path = parsed.path if parsed.scheme == "file" else location
    return "file", str(Path(path).absolute())


def _source_uri(namespace: str) -> str:
    """The data source's URI: the namespace, ``<scheme>:///`` for a bare scheme."""
    return namespace if "://" in namespace else f"{namespace}:///"


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def transport_config(settings: Settings, paths: LakePaths) -> dict[str, Any] | None:
    """The configured transport, or None to let the client use the standard config."""
    if any(os.environ.get(v) for v in _STANDARD_CONFIG_ENV) or any(
        k.startswith("OPENLINEAGE__TRANSPORT") for k in os.environ
    ):
        return None
    if Path("openlineage.yml").is_file():
        return None
    transport = dict(settings.lineage.transport)
    if transport.get("type") == "file" and "log_file_path" not in transport:
        if not paths.is_local:  # objects under the ops prefix: see ObjectStoreTransport
            return {"type": OBJECT_STORE, "prefix": paths.lineage}
        folder = Path(paths.root) / "lineage"
        folder.mkdir(parents=True, exist_ok=True)
        transport = {**transport, "log_file_path": str(folder / "events.jsonl"), "append": True}
    return transport


OBJECT_STORE = "object-store"


def _object_store_transport(prefix: str, run_id: str) -> Any:
    """A transport writing each event as its own object under ``<prefix>/<run_id>/``.

    S3 has no append, so the local file transport's one JSON-lines file becomes one
    object per event, named ``<eventTime>-<n>-<eventType>.json`` (a rerun of the same
    run id adds its events beside the earlier ones); :func:`read_events` reads them back.
    """
    from openlineage.client.serde import Serde
    from openlineage.client.transport.transport import Transport

    from jobs.common.storage import write_text

    class ObjectStoreTransport(Transport):
        kind = OBJECT_STORE

        def __init__(self) -> None:
            self.emitted = 0

        def emit(self, event: Any) -> None:
            self.emitted += 1
            kind = getattr(getattr(event, "eventType", None), "value", "event")
            name = f"{getattr(event, 'eventTime', '')}-{self.emitted:03d}-{kind}.json"
            write_text(f"{prefix}/{run_id}/{name}", Serde.to_json(event))

    return ObjectStoreTransport()


def read_events(lineage: str) -> list[dict[str, Any]]:
    """Every event under a lineage location: the JSON-lines file(s) or the event objects."""
    import json

    from jobs.common.storage import list_uris, read_text

    events: list[dict[str, Any]] = []
    for uri in list_uris(f"{lineage.rstrip('/')}/"):
        if uri.endswith(".jsonl"):
            events += [json.loads(line) for line in read_text(uri).splitlines() if line.strip()]
        elif uri.endswith(".json"):
            events.append(json.loads(read_text(uri)))
    return events


def _java(transport: Mapping[str, Any]) -> dict[str, str]:
    """An openlineage-python transport config in the Java client's terms.

    file: the listener's own file next to the Python one (two writers never share a
    file); http: ``timeout`` seconds -> ``timeoutInMillis``. Credentials (``auth``) are
    not copied into Spark settings, which the Spark UI and event log show: give the
    listener its own through ``OPENLINEAGE__TRANSPORT__AUTH__*`` in the job's environment.
    """
    kind = transport.get("type")
    if kind == OBJECT_STORE:  # the Java client writes no objects: the driver log instead
        return {"type": "console"}
    if kind == "file":
        path = Path(transport["log_file_path"])
        return {"type": "file", "location": str(path.with_name(f"spark-{path.name}"))}
    if kind == "http":
        java = {"type": "http", "url": str(transport["url"])}
        if "endpoint" in transport:
            java["endpoint"] = str(transport["endpoint"])
        if "timeout" in transport:
            java["timeoutInMillis"] = str(int(float(transport["timeout"]) * 1000))
        return java
    return {k: str(v) for k, v in transport.items() if k != "auth" and not isinstance(v, Mapping)}


class RunLineage:
    """The lineage of one job run; :meth:`start` then one of :meth:`finish`."""

    def __init__(
        self,
        settings: Settings,
        paths: LakePaths,
        ctx: RunContext,
        client: OpenLineageClient | None = None,
    ) -> None:
        from openlineage.client.uuid import generate_new_uuid

        self.ctx = ctx
        self.paths = paths
        self.namespace = settings.lineage.namespace or f"lakehouse-{settings.env}"
        self.enabled = settings.lineage.enabled
        self._client = client
        self._settings = settings
        self.stats = LineageStats(str(generate_new_uuid()), self.namespace, "none")
        self.parent: ParentRun | None = None
        parent = os.environ.get(PARENT_ENV)
        try:
            self.parent = ParentRun.parse(parent) if parent else None
        except ValueError as exc:  # lineage never stops a job: run without the parent
            self.stats.errors.append(str(exc))
            log.warning("lineage parent ignored: %s", exc)

    def spark_listener_conf(self) -> dict[str, str]:
        """Spark settings that put the openlineage-spark listener's events under this run.

        The listener (``lineage.spark_listener``) emits one event pair per Spark action,
        parented to this run (whose own parent, the Airflow task, becomes the root), in
        the same namespace and over the same transport. Empty when the listener is off.
        """
        if not self._settings.lineage.spark_listener_on:
            return {}
        conf = {
            "spark.openlineage.namespace": self.namespace,
            "spark.openlineage.parentJobNamespace": self.namespace,
            "spark.openlineage.parentJobName": self.ctx.job,
            "spark.openlineage.parentRunId": self.stats.run_id,
        }
        if self.parent:
            conf |= {
                "spark.openlineage.rootParentJobNamespace": self.parent.namespace,
                "spark.openlineage.rootParentJobName": self.parent.job_name,
                "spark.openlineage.rootParentRunId": self.parent.run_id,
            }
        transport = transport_config(self._settings, self.paths)
        if transport is not None:  # else the listener reads the standard config too
            conf |= {f"spark.openlineage.transport.{k}": v for k, v in _java(transport).items()}
        return conf

    @property
    def client(self) -> OpenLineageClient:
        """The client, built on first use."""
        if self._client is None:
            from openlineage.client import OpenLineageClient

            config = transport_config(self._settings, self.paths)
            if config is not None and config.get("type") == OBJECT_STORE:
                self._client = OpenLineageClient(
                    transport=_object_store_transport(config["prefix"], self.ctx.run_id)
                )
            elif config is not None:
                self._client = OpenLineageClient(config={"transport": config})
            else:
                self._client = OpenLineageClient()
        return self._client

    def start(self, versions: Mapping[str, str]) -> None:
        """Emit START."""
        self._emit("START", versions, [], [])

    def finish(
        self,
        summary: RunSummary,
        spark: SparkSession | None,
        error: BaseException | None = None,
        column_lineage: Mapping[str, Sequence[ColumnSource]] | None = None,
        reports: Sequence[GateReport] = (),
    ) -> None:
        """Emit COMPLETE, FAIL (an error) or ABORT (interrupted).

        ``reports`` are the run's quality gates: their expectations become the outputs'
        data quality assertions.
        """
        outputs = [self._output(spark, o, reports, column_lineage) for o in summary.outputs]
        named = {o.name for o in summary.outputs}
        for report in reports:  # gated tables a failed run did not get to write
            if report.name not in named:
                location = self.paths.table(report.layer, report.table)
                outputs.append(self._dataset_out(location, _assertions(report), None, None))
        inputs = [self._input(spark, i) for i in summary.inputs]
        if error is None:
            state = "COMPLETE"
        elif isinstance(error, KeyboardInterrupt | SystemExit):
            state = "ABORT"
        else:
            state = "FAIL"
        self._emit(state, summary.versions, inputs, outputs, error)

    # -- building ----------------------------------------------------------------------

    def _run_facets(
        self, versions: Mapping[str, str], error: BaseException | None
    ) -> dict[str, Any]:
        from openlineage.client import __version__ as client_version
        from openlineage.client.generated import (
            error_message_run,
            nominal_time_run,
            parent_run,
            processing_engine_run,
        )

        start = dt.datetime.combine(self.ctx.logical_date, dt.time(), tzinfo=dt.UTC)
        facets: dict[str, Any] = {
            "nominalTime": nominal_time_run.NominalTimeRunFacet(
                nominalStartTime=_iso(start),
                nominalEndTime=_iso(start + dt.timedelta(days=1)),
            ),
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                version=versions.get("spark", "unknown"),
                name="spark",
                openlineageAdapterVersion=client_version,
            ),
        }
        if self.parent:
            facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=self.parent.run_id),
                job=parent_run.Job(namespace=self.parent.namespace, name=self.parent.job_name),
            )
        if error is not None and not isinstance(error, KeyboardInterrupt | SystemExit):
            facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=f"{type(error).__name__}: {error}",
                programmingLanguage="python",
                stackTrace="".join(traceback.format_exception(error))[-8000:],
            )
        return facets

    def _emit(
        self,
        state: str,
        versions: Mapping[str, str],
        inputs: list[InputDataset],
        outputs: list[OutputDataset],
        error: BaseException | None = None,
    ) -> None:
        from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
        from openlineage.client.generated import job_type_job

        if not self.enabled:
            return
        try:
            event = RunEvent(
                eventType=RunState[state],
                eventTime=_iso(dt.datetime.now(dt.UTC)),
                run=Run(runId=self.stats.run_id, facets=self._run_facets(versions, error)),
                job=Job(
                    namespace=self.namespace,
                    name=self.ctx.job,
                    facets={
                        "jobType": job_type_job.JobTypeJobFacet(
                            processingType="BATCH", integration="SPARK", jobType="JOB"
                        )
                    },
                ),
                inputs=inputs,
                outputs=outputs,
                producer=PRODUCER,
            )
            client = self.client
            self.stats.transport = client.transport.kind or "unknown"
            client.emit(event)
            self.stats.emitted += 1
        except Exception as exc:  # a lineage outage never fails the job
            self.stats.failed += 1
            self.stats.errors.append(f"{state}: {type(exc).__name__}: {str(exc)[:300]}")
            log.warning("lineage %s event not emitted: %s", state, exc)

    def _schema(self, spark: SparkSession | None, location: str) -> Any:
        from openlineage.client.generated import schema_dataset

        if spark is None or not location:
            return None
        from jobs.common import delta_io

        try:
            if not delta_io.table_exists(spark, location):
                return None
            schema = delta_io.read_table(spark, location).schema
        except Exception:  # a dataset that is not a Delta table (a source)
            return None
        return schema_dataset.SchemaDatasetFacet(
            fields=[
                schema_dataset.SchemaDatasetFacetFields(
                    name=f.name, type=f.dataType.simpleString(), ordinal_position=n + 1
                )
                for n, f in enumerate(schema.fields)
            ]
        )

    def _input(self, spark: SparkSession | None, stats: DatasetStats) -> InputDataset:
        from openlineage.client.event_v2 import InputDataset
        from openlineage.client.generated import datasource_dataset

        namespace, name = dataset_name(stats.location)
        facets: dict[str, Any] = {
            "dataSource": datasource_dataset.DatasourceDatasetFacet(
                name=namespace, uri=_source_uri(namespace)
            )
        }
        schema = self._schema(spark, stats.location)
        if schema is not None:
            facets["schema"] = schema
        return InputDataset(namespace=namespace, name=name, facets=facets)

    def _output(
        self,
        spark: SparkSession | None,
        stats: DatasetStats,
        reports: Sequence[Any],
        column_lineage: Mapping[str, Sequence[ColumnSource]] | None,
    ) -> OutputDataset:
        from openlineage.client.generated import output_statistics_output_dataset as out_stats

        report = next((r for r in reports if r.name == stats.name), None)
        size, files = _commit_size(spark, stats)
        statistics = out_stats.OutputStatisticsOutputDatasetFacet(
            rowCount=stats.rows, size=size, fileCount=files
        )
        dataset = self._dataset_out(
            stats.location,
            _assertions(report) if report else None,
            statistics,
            self._column_lineage(column_lineage) if column_lineage else None,
        )
        schema = self._schema(spark, stats.location)
        if schema is not None and dataset.facets is not None:
            dataset.facets["schema"] = schema
        return dataset

    def _dataset_out(
        self, location: str, assertions: Any, statistics: Any, lineage: Any
    ) -> OutputDataset:
        from openlineage.client.event_v2 import OutputDataset
        from openlineage.client.generated import datasource_dataset

        namespace, name = dataset_name(location)
        facets: dict[str, Any] = {
            "dataSource": datasource_dataset.DatasourceDatasetFacet(
                name=namespace, uri=_source_uri(namespace)
            )
        }
        if assertions is not None:
            facets["dataQualityAssertions"] = assertions
        if lineage is not None:
            facets["columnLineage"] = lineage
        output_facets = {"outputStatistics": statistics} if statistics is not None else {}
        return OutputDataset(
            namespace=namespace, name=name, facets=facets, outputFacets=output_facets
        )

    def _column_lineage(self, mapping: Mapping[str, Sequence[ColumnSource]]) -> Any:
        from openlineage.client.generated import column_lineage_dataset as cl

        fields = {}
        for column, sources in mapping.items():
            inputs = []
            for source in sources:
                layer, table = source.dataset.split(".", 1)
                namespace, name = dataset_name(self.paths.table(layer, table))
                inputs.append(cl.InputField(namespace=namespace, name=name, field=source.column))
            fields[column] = cl.Fields(inputFields=inputs)
        return cl.ColumnLineageDatasetFacet(fields=fields)


def _assertions(report: Any) -> Any:
    from openlineage.client.generated import data_quality_assertions_dataset as dq

    assertions = [
        dq.Assertion(
            assertion=o.type,
            success=bool(o.success),
            column=_column_of(o.kwargs),
            severity="error" if o.action == "fail" else "warn",
            name=o.rule,
            description=o.description or None,
        )
        for o in report.outcomes
    ]
    if report.reconciliation is not None:
        rec = report.reconciliation
        assertions.append(
            dq.Assertion(
                assertion="reconciliation",
                success=not rec.problems(),
                severity="error",
                name=f"reconciliation({rec.source})",
                expected=f"unexplained rows <= {rec.max_row_loss:.2%} of {rec.source_rows}",
            )
        )
    return dq.DataQualityAssertionsDatasetFacet(assertions=assertions)


def _column_of(kwargs: Mapping[str, Any]) -> str | None:
    column = kwargs.get("column") or kwargs.get("column_A")
    if column is None and kwargs.get("column_list"):
        column = ",".join(kwargs["column_list"])
    return str(column) if column is not None else None


def _commit_size(spark: SparkSession | None, stats: DatasetStats) -> tuple[int | None, int | None]:
    """(bytes, files) the run's Delta commit added, from its operation metrics."""
    if not stats.rows:  # nothing written: no commit of this run to describe
        return 0, 0
    if spark is None or stats.delta_version is None:
        return None, None
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    try:
        rows = (
            DeltaTable.forPath(spark, stats.location)
            .history()
            .where(F.col("version") == stats.delta_version)
            .select("operationMetrics")
            .collect()
        )
    except Exception:
        return None, None
    if not rows:
        return None, None
    metrics = rows[0]["operationMetrics"] or {}
    size = metrics.get("numOutputBytes") or metrics.get("numTargetBytesAdded")
    files = metrics.get("numFiles") or metrics.get("numTargetFilesAdded")
    return (int(size) if size else None), (int(files) if files else None)
