"""Resolve secret references at job start. Values are returned, never logged or stored."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

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

    text = boto3.client("secretsmanager").get_secret_value(SecretId=ref.name)["SecretString"]
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return str(text)
    if not isinstance(doc, dict):
        return str(text)
    if field not in doc:
        raise ConfigError(f"secret {ref}: JSON secret has no '{field}' key")
    return str(doc[field])
