"""A throwaway PostgreSQL server for the JDBC tests (a real server, started per session).

The server binaries come from Debian's ``postgresql`` package (``make test`` installs
it when missing). initdb refuses to run as root, so as root the cluster is owned by the
``postgres`` system user. Every statement is logged (``log_statement=all``) so tests
can show which predicate reached the database.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    database: str
    data_dir: Path

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.database}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def connect(self):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.database,
        )


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


def _as_owner(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def start_postgres() -> PostgresServer:
    initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError(
            "PostgreSQL server binaries not found: run `make test` (it installs "
            "the Debian package postgresql) or apt-get install postgresql"
        )
    root = Path(tempfile.mkdtemp(prefix="lakehouse-pg-"))
    data = root / "data"
    password = secrets.token_urlsafe(24)
    pwfile = root / "pw"
    pwfile.write_text(password)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(pwfile, "postgres")
    subprocess.run(
        _as_owner(
            [
                initdb,
                "-D",
                str(data),
                "-U",
                "lakehouse",
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
    )
    pwfile.unlink()
    port = free_port()
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c log_statement=all "
        "-c fsync=off -c timezone=UTC"
    )
    subprocess.run(
        _as_owner(
            [pg_ctl, "-D", str(data), "-o", options, "-l", str(data / "server.log"), "-w", "start"]
        ),
        check=True,
        capture_output=True,
    )
    server = PostgresServer("127.0.0.1", port, "lakehouse", password, "postgres", data)
    for _ in range(50):
        try:
            server.connect().close()
            return server
        except Exception:  # retry until the server accepts connections
            time.sleep(0.2)
    raise RuntimeError(f"PostgreSQL did not accept connections on port {port}")


def stop_postgres(server: PostgresServer) -> None:
    pg_ctl = find_bin("pg_ctl")
    if pg_ctl:
        subprocess.run(
            _as_owner([pg_ctl, "-D", str(server.data_dir), "-m", "immediate", "stop"]),
            capture_output=True,
        )
    shutil.rmtree(server.data_dir.parent, ignore_errors=True)
