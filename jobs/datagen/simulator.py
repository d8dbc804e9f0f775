"""Makes each generated day happen in the local source systems, for the demo.

On day D: the operational DB (SQLite) receives D's commits, the CRM API starts serving
what the CRM received on D, and D's files are dropped into the landing zone (returns
CSV; behaviour events as JSONL, the local stand-in for the Kafka topic).
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from jobs.common.paths import LakePaths
from jobs.datagen.crm_api import CrmState, serve_crm
from jobs.datagen.opdb import connect_sqlite, load_day

CRM_TOKEN_VAR = "LAKEHOUSE_CRM_TOKEN"


def drop_file(source: Path, folder: Path, name: str | None = None) -> None:
    """Land ``source`` in ``folder`` atomically (written under a name the glob skips)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name or source.name)
    partial = folder / f".{target.name}.partial"
    shutil.copyfile(source, partial)
    partial.replace(target)


class SourceSimulator:
    """The local source systems of one lakehouse home."""

    def __init__(self, paths: LakePaths, crm: CrmState) -> None:
        """Simulate the sources under ``paths``; ``crm`` backs the running CRM API."""
        self.sources = Path(paths.sources)
        self.landing = Path(paths.landing)
        self.crm = crm

    def run_day(self, day: date) -> None:
        """Apply everything the sources received on ``day``."""
        conn = connect_sqlite(self.sources / "opdb" / "opdb.sqlite")
        try:
            load_day(conn, "sqlite", self.sources, day)
        finally:
            conn.close()  # type: ignore[attr-defined]
        self.crm.deliver_day(day)
        stamp = day.isoformat()
        drop_file(self.sources / "returns" / f"returns_{stamp}.csv", self.landing / "returns")
        drop_file(
            self.sources / "events" / "behaviour" / f"{stamp}.jsonl",
            self.landing / "events",
            f"behaviour_{stamp}.jsonl",
        )


@contextmanager
def local_sources(paths: LakePaths) -> Iterator[tuple[SourceSimulator, str]]:
    """Start the local CRM API; yields the simulator and the API's base URL.

    The API's bearer token is ``$LAKEHOUSE_CRM_TOKEN`` (a random one when unset), the same
    variable the crm source's credentials reference locally.
    """
    token = os.environ.setdefault(CRM_TOKEN_VAR, secrets.token_urlsafe(24))
    state = CrmState(Path(paths.sources), token)
    with serve_crm(state) as url:
        yield SourceSimulator(paths, state), url
