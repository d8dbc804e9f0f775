"""Validate OpenLineage events against the official JSON Schemas.

The schemas are the unmodified copies in ``tests/support/openlineage_spec/`` (vendored
from ``../shared/openlineage-spec``; see its README).

Every schema file is registered by its ``$id``; an event is validated against
``OpenLineage.json#/$defs/RunEvent`` and each facet against the schema its own
``_schemaURL`` names. Formats (date-time, uri, uuid) are checked with explicit
checkers, so a missing optional format package cannot turn the checks off.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

SPEC = Path(__file__).resolve().parent / "openlineage_spec"


def _date_time(value: object) -> bool:
    if not isinstance(value, str) or "T" not in value:
        return False
    dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


def _uri(value: object) -> bool:
    return isinstance(value, str) and bool(urlparse(value).scheme)


def _uuid(value: object) -> bool:
    return isinstance(value, str) and str(uuid.UUID(value)) == value


def format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    checker.checks("date-time", raises=ValueError)(_date_time)
    checker.checks("uri")(_uri)
    checker.checks("uuid", raises=ValueError)(_uuid)
    return checker


@cache
def registry() -> tuple[Registry, str]:
    if not (SPEC / "OpenLineage.json").is_file():
        raise FileNotFoundError(f"OpenLineage JSON Schemas not found under {SPEC}")
    resources = []
    root_id = ""
    for path in [SPEC / "OpenLineage.json", *sorted((SPEC / "facets").glob("*.json"))]:
        document = json.loads(path.read_text())
        resources.append((document["$id"], Resource.from_contents(document)))
        if path.name == "OpenLineage.json":
            root_id = document["$id"]
    return Registry().with_resources(resources), root_id


def _validate(instance: Any, ref: str) -> list[str]:
    reg, _ = registry()
    validator = Draft202012Validator({"$ref": ref}, registry=reg, format_checker=format_checker())
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def _facets(event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []

    def collect(where: str, facets: dict[str, Any] | None) -> None:
        for name, facet in (facets or {}).items():
            found.append((f"{where}.{name}", facet))

    collect("run", event.get("run", {}).get("facets"))
    collect("job", event.get("job", {}).get("facets"))
    for kind in ("inputs", "outputs"):
        for n, dataset in enumerate(event.get(kind) or []):
            collect(f"{kind}[{n}]", dataset.get("facets"))
            collect(f"{kind}[{n}].inputFacets", dataset.get("inputFacets"))
            collect(f"{kind}[{n}].outputFacets", dataset.get("outputFacets"))
    return found


def validation_errors(event: dict[str, Any]) -> list[str]:
    """Every way ``event`` breaks the RunEvent schema or its facets' schemas."""
    _, root = registry()
    errors = _validate(event, f"{root}#/$defs/RunEvent")
    for where, facet in _facets(event):
        url = facet.get("_schemaURL")
        if not url:
            errors.append(f"{where}: no _schemaURL")
            continue
        errors += [f"{where}: {e}" for e in _validate(facet, url)]
    return errors
