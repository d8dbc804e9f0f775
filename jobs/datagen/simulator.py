"""Makes each generated day happen in the local source systems, for the demo.

On day D: the operational DB (SQLite) receives D's commits, the CRM API starts serving
what the CRM received on D, and D's files are dropped into the landing zone (returns
CSV; behaviour events as JSONL, the local stand-in for the Kafka topic).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import date
from pathlib import Path

from jobs.common.paths import LakePaths
from jobs.common.storage import copy_file
from jobs.datagen.crm_api import CrmState, serve_crm
from jobs.datagen.opdb import connect_sqlite, load_day

CRM_TOKEN_VAR = "LAKEHOUSE_CRM_TOKEN"


def drop_file(source: Path, folder: Path | str, name: str | None = None) -> None:
    """Land ``source`` in ``folder`` (local or S3) atomically: a reader never sees part of it."""
    copy_file(source, f"{str(folder).rstrip('/')}/{name or source.name}")


class SourceSimulator:
    """The local source systems of one lakehouse home."""

    def __init__(self, paths: LakePaths, crm: CrmState) -> None:
        """Simulate the sources under ``paths``; ``crm`` backs the running CRM API."""
        self.sources = Path(paths.sources)
        self.landing = paths.landing
        self.crm = crm

    def run_day(self, day: date) -> None:
        """Apply everything the sources received on ``day``."""
        land_day(self.sources, self.landing, day)
        self.crm.deliver_day(day)


def land_day(sources: Path, landing: str, day: date) -> None:
    """``day``'s commits into the operational DB and its files into the landing zone.

    Both are idempotent (upserts; a file dropped again replaces itself). The landing
    zone is a local folder or an S3 prefix.
    """
    conn = connect_sqlite(sources / "opdb" / "opdb.sqlite")
    try:
        load_day(conn, "sqlite", sources, day)
    finally:
        conn.close()  # type: ignore[attr-defined]
    stamp = day.isoformat()
    drop_file(sources / "returns" / f"returns_{stamp}.csv", f"{landing}/returns")
    drop_file(
        sources / "events" / "behaviour" / f"{stamp}.jsonl",
        f"{landing}/events",
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


# -- the local sources as a service (Airflow's local mode) ---------------------------------


def _pid_file(paths: LakePaths) -> Path:
    return Path(paths.sources) / "crm_api.pid"


def sources_up(paths: LakePaths, day: date, base_url: str) -> int:
    """Make ``day`` happen in the local sources; (re)start the CRM API as a process.

    The operational DB and the landing zone receive ``day`` (both idempotent); the CRM
    API, serving every day up to ``day``, runs in the background on ``base_url``'s
    port until :func:`sources_down`, so separate task processes can read it. Its token
    is ``$LAKEHOUSE_CRM_TOKEN``, which the crm source's credentials read too.

    Returns:
        The API's process id.

    Raises:
        ConfigError: ``$LAKEHOUSE_CRM_TOKEN`` is unset, or the API did not come up.
    """
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request
    from urllib.parse import urlparse

    from jobs.common.errors import ConfigError

    if not os.environ.get(CRM_TOKEN_VAR):
        raise ConfigError(
            f"{CRM_TOKEN_VAR} is not set: the local CRM API and the crm source share it "
            "(any value; export it where Airflow runs)"
        )
    land_day(Path(paths.sources), paths.landing, day)  # the CRM part: the API process
    sources_down(paths)
    port = urlparse(base_url).port or 80
    process = subprocess.Popen(
        [sys.executable, "-m", "jobs.datagen.simulator", paths.root, day.isoformat(), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives the task that started it
    )
    _pid_file(paths).write_text(str(process.pid))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base_url}/health", timeout=1).close()
            return process.pid
        except urllib.error.HTTPError:  # it answers (401 without the token): up
            return process.pid
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.2)
    raise ConfigError(f"the local CRM API did not start on {base_url} (port in use?)")


def sources_down(paths: LakePaths) -> None:
    """Stop the background CRM API, if one runs."""
    import signal

    pid_file = _pid_file(paths)
    if not pid_file.is_file():
        return
    with suppress(ProcessLookupError, ValueError):
        os.kill(int(pid_file.read_text()), signal.SIGTERM)
    pid_file.unlink(missing_ok=True)


def _serve_until_killed(root: str, day: date, port: int) -> None:
    """Process entry of :func:`sources_up`: serve every CRM day up to ``day``."""
    import signal
    import threading

    state = CrmState(Path(LakePaths(root).sources), os.environ[CRM_TOKEN_VAR])
    days = sorted(
        date.fromisoformat(p.stem) for p in (state.sources / "crm" / "customers").glob("*.jsonl")
    )
    for delivered in (d for d in days if d <= day):
        state.deliver_day(delivered)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with serve_crm(state, port):
        stop.wait()


if __name__ == "__main__":
    import sys

    _serve_until_killed(sys.argv[1], date.fromisoformat(sys.argv[2]), int(sys.argv[3]))
