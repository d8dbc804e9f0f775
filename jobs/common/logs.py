"""Structured JSON logs that carry the run's identity (run_id, job, env) on every line."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

_CONTEXT: ContextVar[Mapping[str, str]] = ContextVar(
    "lakehouse_log_context", default=MappingProxyType({})
)
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, context, extras."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as JSON."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_CONTEXT.get(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", console_level: str | None = None) -> None:
    """Send the ``jobs`` and ``aws`` loggers to stderr as JSON lines.

    ``console_level`` raises the bar for stderr only (the demo keeps its terminal
    readable); run log files still receive ``level``.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(console_level or level)
    for name in ("jobs", "aws"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level)
        logger.propagate = False
    # wire-level loggers print whole requests at DEBUG: py4j the JDBC password sent to
    # the JVM, botocore the Secrets Manager response. Never below WARNING.
    for name in ("py4j", "botocore", "boto3", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


@contextmanager
def log_context(log_file: Path | None = None, **fields: str) -> Iterator[None]:
    """Add ``fields`` to every log line inside the block; also copy lines to ``log_file``."""
    token = _CONTEXT.set({**_CONTEXT.get(), **fields})
    handler: logging.Handler | None = None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(JsonFormatter())
        for name in ("jobs", "aws"):
            logging.getLogger(name).addHandler(handler)
    try:
        yield
    finally:
        _CONTEXT.reset(token)
        if handler is not None:
            for name in ("jobs", "aws"):
                logging.getLogger(name).removeHandler(handler)
            handler.close()
