"""Writes generated days as the source systems would hold them, under the local home.

Layout (one file per entity per day, so later days append and earlier bytes stay)::

    sources/crm/{customers,cases}/<date>.jsonl     CRM API records
    sources/opdb/{orders,products}/<date>.jsonl    rows committed to the DB that day
    sources/events/behaviour/<date>.jsonl          event stream messages (raw lines)
    sources/fx/rates/<date>.json                   FX document for that date
    sources/returns/returns_<date>.csv             the day's file drop (raw lines); the
                                                   day's simulation copies it to landing/
    sources/_manifest/<date>.json                  counts and injected anomalies
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.datagen.generator import DayBatch, GeneratorParams, generate


@dataclass(frozen=True)
class DayManifest:
    """What was written for one day."""

    date: str
    rows: dict[str, int]
    anomalies: dict[str, dict[str, int]]


def _write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as handle:
        for line in lines:
            handle.write(line)
            handle.write("\n")
    tmp.replace(path)


def _jsonl(records: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(r, separators=(",", ":")) for r in records]


def write_day(batch: DayBatch, sources: Path) -> DayManifest:
    """Write one day's files and its manifest; returns the manifest."""
    day = batch.date.isoformat()
    for entity in ("crm.customers", "crm.cases", "opdb.orders", "opdb.products"):
        system, name = entity.split(".")
        _write_lines(sources / system / name / f"{day}.jsonl", _jsonl(batch.records[entity]))
    for entity, keys in batch.deletes.items():  # rows the source deleted that day
        system, name = entity.split(".")
        _write_lines(sources / system / name / f"{day}.deletes.jsonl", _jsonl(keys))
    _write_lines(
        sources / "events" / "behaviour" / f"{day}.jsonl", batch.raw_lines["events.behaviour"]
    )
    fx_doc = {"base": "USD", "date": day, "rates": batch.records["fx.rates"]}
    _write_lines(sources / "fx" / "rates" / f"{day}.json", [json.dumps(fx_doc, indent=1)])
    _write_lines(sources / "returns" / f"returns_{day}.csv", batch.raw_lines["returns.returns"])
    rows = {entity: len(records) for entity, records in sorted(batch.records.items())}
    for entity, lines in batch.raw_lines.items():
        header = 1 if entity == "returns.returns" else 0
        rows[entity] = len(lines) - header
    manifest = DayManifest(date=day, rows=rows, anomalies=dict(sorted(batch.anomalies.items())))
    _write_lines(
        sources / "_manifest" / f"{day}.json",
        [json.dumps(manifest.__dict__, indent=1, sort_keys=True)],
    )
    return manifest


def write_dataset(params: GeneratorParams, sources: Path) -> list[DayManifest]:
    """Generate every day of ``params`` and write it; returns the manifests in day order."""
    return [write_day(batch, sources) for batch in generate(params)]
