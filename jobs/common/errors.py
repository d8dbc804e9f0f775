"""Named exceptions. Each message says what was expected, what was found, and where."""

from __future__ import annotations


class LakehouseError(Exception):
    """Base class for every error this project raises on purpose."""


class ConfigError(LakehouseError):
    """A configuration file, overlay or environment override is invalid."""


class MissingJarError(LakehouseError):
    """A JVM dependency needed for a local Spark session is not in the jar cache."""


class UnknownJobError(LakehouseError):
    """A job name on the command line is not registered."""


class JobFailedError(LakehouseError):
    """A job ran and failed; the run summary holds the details."""


class TableNotFoundError(LakehouseError):
    """A Delta table was expected at a location that holds none."""


class TableChangedError(LakehouseError):
    """A table moved past the version a write was computed from (a write conflict: retry)."""


class SchemaDriftError(LakehouseError):
    """An incoming batch changes a table's schema incompatibly; nothing was written."""


class ConcurrentRunError(LakehouseError):
    """Another run holds the single-writer lock of a table, or committed to it first."""


class SourceError(LakehouseError):
    """A source could not be read (after the bounded retries its connector allows)."""


class QualityGateError(LakehouseError):
    """A quality gate failed before the write; nothing was written, progress did not move."""

    def __init__(self, message: str, report: object = None) -> None:
        super().__init__(message)
        self.report = report  # the gate's GateReport, for the run summary and lineage


class ReconciliationError(QualityGateError):
    """Rows read from a layer are not all accounted for (written, quarantined, deduplicated).

    Raised before the write when the read itself lost rows; after it when the writer's
    accounting does not add up (progress is then not recorded, so the run is retried).
    """
