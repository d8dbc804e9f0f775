"""Every path decision of the project: where sources, landing, lake tables and runs live.

Locally the root is ``$LAKEHOUSE_HOME`` (default ``./.lakehouse``) and holds everything.
In AWS the landing zone and each lake layer have their own bucket (``storage.layers``,
from the Terraform outputs) and ``storage.root`` holds the rest: run records, lineage,
control files. Quarantine tables sit beside Bronze. Transformations never see a path.

Object-store locations have one spelling: ``s3://``. Hadoop's ``s3a://`` and ``s3n://``
name the same objects, but Delta's DynamoDB log store keys a table by its path, scheme
included, so an ``s3a://`` writer and an ``s3://`` writer of one table would not
exclude each other. Every location made here is canonical (:func:`canonical_uri`);
``s3://`` is served by S3A locally (``fs.s3.impl``) and on EMR (its default connector
since EMR 7.10; EMRFS before).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from jobs.common.config import Settings

LAYERS = ("bronze", "silver", "gold", "_control", "_quarantine")
DEFAULT_HOME = ".lakehouse"
S3_ALIASES = ("s3a", "s3n")


def canonical_uri(uri: str) -> str:
    """``uri`` with an S3 scheme spelled ``s3://`` (``s3a://``, ``s3n://`` are aliases).

    Other locations (local paths, ``file://``, other stores) are returned unchanged.
    """
    scheme, sep, rest = uri.partition("://")
    if sep and scheme.lower() in (*S3_ALIASES, "s3"):
        return f"s3://{rest}"
    return uri


@dataclass(frozen=True)
class LakePaths:
    """Locations under one root (a local folder or an ``s3://`` prefix)."""

    root: str
    layer_roots: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", canonical_uri(self.root))
        object.__setattr__(
            self, "layer_roots", {k: canonical_uri(v) for k, v in self.layer_roots.items()}
        )

    @property
    def is_local(self) -> bool:
        """True when the root is a folder on this machine."""
        return "://" not in self.root

    def _join(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    @property
    def sources(self) -> str:
        """Generated source systems (local simulation of CRM, operational DB, stream, FX).

        Under the root unless ``storage.layers.sources`` puts them elsewhere (a lake on
        object storage fed by the local stand-ins of the demo and tests).
        """
        if "sources" in self.layer_roots:
            return self.layer_roots["sources"].rstrip("/")
        return self._join("sources")

    @property
    def landing(self) -> str:
        """File drops (the landing bucket in AWS)."""
        if "landing" in self.layer_roots:
            return self.layer_roots["landing"].rstrip("/")
        return self._join("landing")

    @property
    def runs(self) -> str:
        """One folder per run: summary, logs, quality results."""
        return self._join("runs")

    @property
    def lineage(self) -> str:
        """OpenLineage events written by the file transport."""
        return self._join("lineage")

    @property
    def warehouse(self) -> str:
        """Spark SQL warehouse folder (managed tables, local metastore)."""
        return self._join("lake", "_warehouse")

    def table(self, layer: str, name: str) -> str:
        """Storage location of table ``name`` in ``layer`` (one of :data:`LAYERS`)."""
        if layer not in LAYERS:
            raise ValueError(f"unknown lake layer '{layer}': expected one of {', '.join(LAYERS)}")
        if layer in self.layer_roots:
            return f"{self.layer_roots[layer].rstrip('/')}/{name}"
        if layer == "_quarantine" and "bronze" in self.layer_roots:
            return f"{self.layer_roots['bronze'].rstrip('/')}/_quarantine/{name}"
        return self._join("lake", layer, name)

    def run_dir(self, run_id: str) -> str:
        """Folder of one run."""
        return self._join("runs", run_id)

    def ensure_local_layout(self) -> None:
        """Create the local folders of the tree (those on object storage need none)."""
        for folder in (self.sources, self.landing, self.runs, self.lineage):
            if "://" not in folder:
                Path(folder).mkdir(parents=True, exist_ok=True)
        if not self.is_local:
            return
        for layer in LAYERS:
            Path(self._join("lake", layer)).mkdir(parents=True, exist_ok=True)


def resolve_lake_paths(settings: Settings, environ: Mapping[str, str] | None = None) -> LakePaths:
    """Pick the root: ``storage.root`` when set, else ``$LAKEHOUSE_HOME`` or ``./.lakehouse``."""
    if settings.storage.root:
        return LakePaths(
            settings.storage.root, {str(k): v for k, v in settings.storage.layers.items()}
        )
    environ = os.environ if environ is None else environ
    home = environ.get("LAKEHOUSE_HOME") or DEFAULT_HOME
    return LakePaths(
        str(Path(home).expanduser().resolve()),
        {str(k): v for k, v in settings.storage.layers.items()},
    )
