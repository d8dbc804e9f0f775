"""Resolve secret references at job start. Values are returned, never logged or stored."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from jobs.common.config import SecretRef
from jobs.common.errors import ConfigError


def resolve_secret(
    ref: SecretRef, environ: Mapping[str, str] | None = None, field: str = "password"
) -> str:
    """The secret's value: an environment variable, or a Secrets Manager secret.

    A Secrets Manager secret may be a plain string or a JSON object; for an object the
    ``field`` key is returned.

    Raises:
        ConfigError: the variable is unset or the JSON secret lacks ``field`` (the
            message names the reference, never the value).
    """
    if ref.kind == "env":
        environ = os.environ if environ is None else environ
        value = environ.get(ref.name)
        if not value:
            raise ConfigError(f"secret {ref}: environment variable {ref.name} is not set")
        return value
    import boto3

    with _no_wire_logs():
        client = boto3.client("secretsmanager")
        text = client.get_secret_value(SecretId=ref.name)["SecretString"]
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return str(text)
    if not isinstance(doc, dict):
        return str(text)
    if field not in doc:
        raise ConfigError(f"secret {ref}: JSON secret has no '{field}' key")
    return str(doc[field])


@contextmanager
def _no_wire_logs() -> Iterator[None]:
    """Hold the AWS SDK's loggers at INFO: at DEBUG they log response bodies (the secret)."""
    loggers = [logging.getLogger(name) for name in ("botocore", "boto3", "urllib3")]
    before = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logging.INFO, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        for logger, level in zip(loggers, before, strict=True):
            logger.setLevel(level)
