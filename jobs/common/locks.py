"""One writer per table.

Locally an exclusive ``flock`` on ``_control/locks/<table>.lock``; a second run fails
at once with :class:`ConcurrentRunError`. On S3 (several Spark drivers) exclusion comes
from Delta itself: every Bronze append carries ``txnAppId`` = table, so two drivers
committing the same table conflict (``ConcurrentTransactionException``) provided the
log store serialises commits (S3DynamoDBLogStore; see docs/adr/0003).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jobs.common.errors import ConcurrentRunError
from jobs.common.paths import LakePaths


@contextmanager
def table_lock(paths: LakePaths, table: str, holder: str) -> Iterator[None]:
    """Hold the single-writer lock of ``table`` for the block (no-op off the local disk)."""
    if not paths.is_local:
        yield
        return
    lock_file = Path(paths.table("_control", "locks")) / f"{table}.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = Path(lock_file).read_text(encoding="utf-8").strip() or "unknown"
            raise ConcurrentRunError(
                f"{table} is being written by another run ({owner}); lock {lock_file}"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{holder} pid={os.getpid()}".encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock; a killed process releases it too
