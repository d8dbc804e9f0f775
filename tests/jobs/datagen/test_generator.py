from __future__ import annotations

import csv
import hashlib
import itertools
import json
from datetime import date
from pathlib import Path

import pytest

from jobs.datagen.generator import RETURN_COLUMNS, GeneratorParams, generate
from jobs.datagen.writer import write_dataset

PARAMS = GeneratorParams(seed=7, scale=0.2, days=4, schema_change_day=3)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _write(root: Path, params: GeneratorParams) -> dict[str, str]:
    write_dataset(params, root / "sources")
    return _digest(root)


def test_same_seed_writes_byte_identical_files(tmp_path: Path) -> None:
    first = _write(tmp_path / "a", PARAMS)
    second = _write(tmp_path / "b", PARAMS)
    assert first == second
    # 7 entity files + 1 manifest per day, and the products hard-deleted on day 3
    assert len(first) == 4 * 8 + 1
    assert "sources/opdb/products/2026-01-03.deletes.jsonl" in first


def test_other_seed_writes_other_data(tmp_path: Path) -> None:
    first = _write(tmp_path / "a", PARAMS)
    other = _write(tmp_path / "b", GeneratorParams(seed=8, scale=0.2, days=4, schema_change_day=3))
    assert first.keys() == other.keys()
    always_populated = [k for k in first if "customers" in k or "orders" in k or "behaviour" in k]
    assert len(always_populated) == 12
    assert all(first[k] != other[k] for k in always_populated)


def test_first_days_do_not_depend_on_the_total(tmp_path: Path) -> None:
    long_run = _write(tmp_path / "a", PARAMS)
    short_run = _write(
        tmp_path / "b", GeneratorParams(seed=7, scale=0.2, days=2, schema_change_day=3)
    )
    assert short_run == {
        k: v for k, v in long_run.items() if "2026-01-03" not in k and "2026-01-04" not in k
    }


def test_schema_change_adds_discount_amount_from_its_day_on() -> None:
    days = list(generate(PARAMS))
    new_orders = [
        [o for o in d.records["opdb.orders"] if o["order_ts"].startswith(d.date.isoformat())]
        for d in days
    ]
    assert all("discount_amount" not in o for d in new_orders[:2] for o in d)
    assert all("discount_amount" in o for d in new_orders[2:] for o in d)


def test_late_rows_arrive_next_day_with_previous_day_timestamps() -> None:
    days = list(generate(GeneratorParams(seed=3, scale=0.5, days=3, late_rate=0.05)))
    for day in days[1:]:
        late = [o for o in day.records["opdb.orders"] if o["updated_at"] < day.date.isoformat()]
        assert len(late) == day.anomalies["opdb.orders"]["late_arrivals"]
        assert late, f"expected late orders on {day.date}"


def test_out_of_order_pair_newer_version_arrives_first() -> None:
    days = list(generate(PARAMS))
    for today, tomorrow in itertools.pairwise(days[1:]):
        delivered_today = {
            (c["customer_id"], c["updated_at"]) for c in today.records["crm.customers"]
        }
        older_tomorrow = [
            c
            for c in tomorrow.records["crm.customers"]
            if c["updated_at"] < tomorrow.date.isoformat()
        ]
        assert any(
            cid == c["customer_id"] and c["updated_at"] < when
            for c in older_tomorrow
            for cid, when in delivered_today
        )


def test_deleted_customers_are_marked_and_place_no_later_orders() -> None:
    days = list(generate(PARAMS))
    deleted: set[str] = set()
    for day in days:
        ordering = {
            o["customer_id"]
            for o in day.records["opdb.orders"]
            if o["status"] == "placed" and o["order_ts"] >= day.date.isoformat()
        }
        assert not ordering & deleted
        deleted |= {c["customer_id"] for c in day.records["crm.customers"] if c["is_deleted"]}
    assert len(deleted) == sum(d.anomalies["crm.customers"]["deletes"] for d in days)


def test_injected_anomalies_match_the_files(tmp_path: Path) -> None:
    params = GeneratorParams(seed=11, scale=0.5, days=3, malformed_rate=0.05, duplicate_rate=0.05)
    manifests = write_dataset(params, tmp_path / "sources")
    for manifest in manifests:
        events = (tmp_path / "sources/events/behaviour" / f"{manifest.date}.jsonl").read_text()
        lines = events.splitlines()
        valid = []
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "event_id" in record and record["event_ts"][:4].isdigit():
                valid.append(line)
        counts = manifest.anomalies["events.behaviour"]
        assert len(lines) - len(valid) == counts["malformed"]
        assert len(valid) - len(set(valid)) <= counts["exact_duplicates"]
        with (tmp_path / "sources/returns" / f"returns_{manifest.date}.csv").open() as handle:
            rows = list(csv.reader(handle))
        assert tuple(rows[0]) == RETURN_COLUMNS
        assert manifest.rows["returns.returns"] == len(rows) - 1


def test_volumes_follow_scale() -> None:
    small = next(iter(generate(GeneratorParams(scale=0.1, days=1))))
    large = next(iter(generate(GeneratorParams(scale=1.0, days=1))))
    assert len(small.records["opdb.orders"]) < len(large.records["opdb.orders"]) / 5
    assert small.date == date(2026, 1, 1)


@pytest.mark.parametrize("entity", ["crm.customers", "crm.cases", "opdb.orders"])
def test_every_record_has_an_iso_utc_updated_at(entity: str) -> None:
    for day in generate(PARAMS):
        for record in day.records[entity]:
            assert record["updated_at"].endswith("Z") and len(record["updated_at"]) == 24
