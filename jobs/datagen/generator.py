"""A deterministic retail business, day by day: what each source system delivers.

Pure: no files, no clock, no global random state. One ``random.Random(seed)`` drives
every choice in a fixed order, so the same parameters give the same records, and the
first N days of a longer run equal a run of N days (nothing depends on the total).

What a day delivers, per source (what real sources do is part of it):

* CRM customers and cases (REST API extract): new, changed and deleted customers
  (``is_deleted`` markers), changes delivered a day late and out of order, exact
  duplicate records.
* Operational DB orders and products (JDBC): new orders, status changes of earlier
  orders, price changes; rows committed late (``updated_at`` on the previous day);
  from ``schema_change_day`` on, orders carry a new ``discount_amount`` column.
* Behaviour events (Kafka): at-least-once duplicates, late events, malformed lines.
* Returns (CSV file drop): one file per day with malformed lines.
* FX rates to USD: one document per date; now and then a currency has no rate.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

Record = dict[str, Any]

COUNTRIES: dict[str, tuple[str, list[str]]] = {
    "US": ("USD", ["New York", "Chicago", "Austin", "Seattle"]),
    "GB": ("GBP", ["London", "Manchester", "Leeds"]),
    "DE": ("EUR", ["Berlin", "Munich", "Hamburg"]),
    "FR": ("EUR", ["Paris", "Lyon"]),
    "JP": ("JPY", ["Tokyo", "Osaka"]),
    "CA": ("CAD", ["Toronto", "Vancouver"]),
    "AU": ("AUD", ["Sydney", "Melbourne"]),
}
USD_PER_UNIT = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "JPY": 0.0068, "CAD": 0.74, "AUD": 0.66}
FIRST_NAMES = [
    "Ada",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemi",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
]
LAST_NAMES = [
    "Smith",
    "Müller",
    "Martin",
    "Sato",
    "Brown",
    "Garcia",
    "Rossi",
    "Kowalski",
    "Nguyen",
    "Okafor",
    "Dubois",
    "Silva",
    "Jensen",
    "Khan",
    "Lee",
    "Walsh",
]
SEGMENTS = ["consumer", "small_business", "enterprise"]
CHANNELS = ["web", "mobile", "store"]
CATEGORIES = ["apparel", "home", "electronics", "beauty", "sports", "toys"]
EVENT_TYPES = ["page_view", "product_view", "search", "add_to_cart", "checkout"]
DEVICES = ["desktop", "mobile", "tablet"]
CASE_PRIORITIES = ["low", "medium", "high"]
ORDER_FLOW = {"placed": ["shipped", "shipped", "shipped", "cancelled"], "shipped": ["delivered"]}
RETURN_REASONS = ["damaged", "wrong_size", "not_as_described", "changed_mind"]

# Daily volumes at scale 1.0.
BASE_VOLUMES = {
    "initial_customers": 1000,
    "initial_products": 200,
    "new_customers": 20,
    "customer_updates": 40,
    "customer_deletes": 2,
    "product_updates": 5,
    "product_deletes": 2,  # on hard_delete_day only: rows removed from the source table
    "orders": 400,
    "order_updates": 120,
    "events": 5000,
    "new_cases": 30,
    "case_updates": 20,
}

ENTITIES = (
    "crm.customers",
    "crm.cases",
    "opdb.orders",
    "opdb.products",
    "events.behaviour",
    "returns.returns",
    "fx.rates",
)


@dataclass(frozen=True)
class GeneratorParams:
    """Knobs of the generator. ``scale`` multiplies every daily volume."""

    seed: int = 42
    scale: float = 1.0
    days: int = 5
    start_date: date = date(2026, 1, 1)
    malformed_rate: float = 0.01
    duplicate_rate: float = 0.01
    late_rate: float = 0.02
    schema_change_day: int = 4
    hard_delete_day: int = 3  # products deleted from the operational DB (no change column)

    def volume(self, name: str) -> int:
        """Daily volume of ``name`` at this scale (at least 1)."""
        return max(1, round(BASE_VOLUMES[name] * self.scale))


@dataclass
class DayBatch:
    """What the sources deliver on one day.

    ``records`` holds well-formed records per entity (duplicates included, as
    delivered); ``deletes`` the keys of rows the source deleted that day (hard deletes,
    seen only by comparing snapshots); ``raw_lines`` holds the exact text lines of
    line-oriented sources (events JSONL, returns CSV), malformed ones included;
    ``anomalies`` counts what was injected, so tests and the demo know what the
    pipeline must catch.
    """

    day: int
    date: date
    records: dict[str, list[Record]] = field(default_factory=dict)
    deletes: dict[str, list[Record]] = field(default_factory=dict)
    raw_lines: dict[str, list[str]] = field(default_factory=dict)
    anomalies: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, entity: str, anomaly: str, n: int = 1) -> None:
        """Add ``n`` to an anomaly counter."""
        per_entity = self.anomalies.setdefault(entity, {})
        per_entity[anomaly] = per_entity.get(anomaly, 0) + n


def ts(value: datetime) -> str:
    """ISO-8601 UTC with milliseconds, as the CRM API and the event stream send it."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


class RetailGenerator:
    """Generates :class:`DayBatch` objects for days 1..N, in order."""

    def __init__(self, params: GeneratorParams) -> None:
        """Set up state for ``params``; nothing is generated until iteration."""
        self.p = params
        self.rng = random.Random(params.seed)
        self.customers: dict[str, Record] = {}
        self.products: dict[str, Record] = {}
        self.orders: dict[str, Record] = {}
        self.cases: dict[str, Record] = {}
        self.fx: dict[str, float] = {c: v for c, v in USD_PER_UNIT.items() if c != "USD"}
        self._carry: dict[str, list[Record]] = {}
        self._returned: set[str] = set()
        self._product_ids: list[str] = []  # creation order (deleted ones stay listed)
        self._deleted_products: set[str] = set()
        # its own stream: the hard deletes leave every other draw as it was
        self._delete_rng = random.Random(params.seed + 1)
        self._seq = {"customer": 0, "product": 0, "order": 0, "case": 0, "return": 0}

    def days(self) -> Iterator[DayBatch]:
        """Yield the batch of each day, day 1 first."""
        for day in range(1, self.p.days + 1):
            yield self._day(day)

    # -- ids, times -------------------------------------------------------------------

    def _next_id(self, kind: str, prefix: str) -> str:
        self._seq[kind] += 1
        return f"{prefix}-{self._seq[kind]:07d}"

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _time_in(self, day: date) -> datetime:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return start + timedelta(milliseconds=self.rng.randrange(86_400_000))

    # -- the day ------------------------------------------------------------------------

    def _day(self, day: int) -> DayBatch:
        today = self.p.start_date + timedelta(days=day - 1)
        batch = DayBatch(day=day, date=today)
        for entity in ENTITIES:
            carried = self._carry.pop(entity, [])
            batch.records[entity] = list(carried)
            if carried:
                batch.count(entity, "late_arrivals", len(carried))
        late: dict[str, list[Record]] = {}
        if day == 1:
            self._initial_load(batch, today)
        self._customers(batch, today, late)
        self._products(batch, today)
        self._orders(batch, today, late)
        self._cases(batch, today)
        self._events(batch, today)
        self._returns(batch, today)
        self._fx(batch, today)
        for entity, rows in late.items():
            self._carry.setdefault(entity, []).extend(rows)
            batch.count(entity, "delivered_late_next_day", len(rows))
        return batch

    def _deliver(
        self, batch: DayBatch, entity: str, record: Record, late: dict[str, list[Record]]
    ) -> None:
        """Deliver today, or (late_rate) tomorrow with the same ``updated_at``."""
        if self.rng.random() < self.p.late_rate:
            late.setdefault(entity, []).append(dict(record))
        else:
            batch.records[entity].append(dict(record))

    def _initial_load(self, batch: DayBatch, today: date) -> None:
        for _ in range(self.p.volume("initial_customers")):
            created = self._time_in(today - timedelta(days=self.rng.randrange(1, 366)))
            customer = self._new_customer(created)
            batch.records["crm.customers"].append(dict(customer))
        for _ in range(self.p.volume("initial_products")):
            created = self._time_in(today - timedelta(days=self.rng.randrange(30, 366)))
            product = self._new_product(created)
            batch.records["opdb.products"].append(dict(product))

    def _new_customer(self, created: datetime) -> Record:
        rng = self.rng
        customer_id = self._next_id("customer", "C")
        country = rng.choice(sorted(COUNTRIES))
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        record = {
            "customer_id": customer_id,
            "first_name": first,
            "last_name": last,
            "email": f" {first}.{last}{self._seq['customer']}@Example.com ",
            "phone": f"+{rng.randrange(1, 99)} ({rng.randrange(100, 999)}) "
            f"{rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}",
            "country": country,
            "city": rng.choice(COUNTRIES[country][1]),
            "segment": rng.choice(SEGMENTS),
            "marketing_opt_in": rng.random() < 0.6,
            "created_at": ts(created),
            "updated_at": ts(created),
            "is_deleted": False,
        }
        self.customers[customer_id] = record
        return record

    def _new_product(self, created: datetime) -> Record:
        product_id = self._next_id("product", "P")
        record = {
            "product_id": product_id,
            "name": f"{self.rng.choice(CATEGORIES).title()} item {self._seq['product']}",
            "category": self.rng.choice(CATEGORIES),
            "list_price": round(self.rng.uniform(3, 400), 2),
            "currency": "USD",
            "updated_at": ts(created),
        }
        self.products[product_id] = record
        self._product_ids.append(product_id)
        return record

    def _active_customer_ids(self) -> list[str]:
        return [c for c, r in self.customers.items() if not r["is_deleted"]]

    def _customers(self, batch: DayBatch, today: date, late: dict[str, list[Record]]) -> None:
        entity = "crm.customers"
        for _ in range(self.p.volume("new_customers")):
            self._deliver(batch, entity, self._new_customer(self._time_in(today)), late)
        active = self._active_customer_ids()
        changes: list[tuple[datetime, str]] = sorted(
            (self._time_in(today), self.rng.choice(active))
            for _ in range(self.p.volume("customer_updates"))
        )
        for when, customer_id in changes:
            record = self.customers[customer_id]
            if record["is_deleted"] or ts(when) <= record["updated_at"]:
                continue
            field_name = self.rng.choice(["city", "segment", "marketing_opt_in", "email", "phone"])
            if field_name == "city":
                record["city"] = self.rng.choice(COUNTRIES[record["country"]][1])
            elif field_name == "segment":
                record["segment"] = self.rng.choice(SEGMENTS)
            elif field_name == "marketing_opt_in":
                record["marketing_opt_in"] = not record["marketing_opt_in"]
            elif field_name == "email":
                record["email"] = (
                    f"{record['first_name'].lower()}.{self.rng.randrange(10**6)}@mail.test"
                )
            else:
                record["phone"] = f"+1 555 {self.rng.randrange(1000000, 9999999)}"
            record["updated_at"] = ts(when)
            self._deliver(batch, entity, record, late)
        # Out of order: two changes of one customer on the same day, the newer one
        # delivered today and the older one tomorrow.
        if len(active) > 1 and batch.day > 1:
            customer_id = self.rng.choice(self._active_customer_ids())
            record = self.customers[customer_id]
            first_when = self._time_in(today)
            if ts(first_when) > record["updated_at"]:
                older = dict(record, segment=self.rng.choice(SEGMENTS), updated_at=ts(first_when))
                newer_when = first_when + timedelta(minutes=self.rng.randrange(1, 60))
                record.update(
                    city=self.rng.choice(COUNTRIES[record["country"]][1]), updated_at=ts(newer_when)
                )
                record["segment"] = older["segment"]
                batch.records[entity].append(dict(record))
                late.setdefault(entity, []).append(older)
                batch.count(entity, "out_of_order_pairs")
        candidates = self._active_customer_ids()
        for _ in range(min(self.p.volume("customer_deletes"), len(candidates))):
            record = self.customers[candidates.pop(self.rng.randrange(len(candidates)))]
            when = self._time_in(today)
            if ts(when) <= record["updated_at"]:
                continue
            record.update(is_deleted=True, updated_at=ts(when))
            batch.records[entity].append(dict(record))
            batch.count(entity, "deletes")
        self._duplicate(batch, entity)

    def _duplicate(self, batch: DayBatch, entity: str) -> None:
        """Re-deliver ``duplicate_rate`` of the records, each at a random later position."""
        rows = batch.records[entity]
        inserts = sorted(
            (self.rng.randrange(len(rows) + 1), n, dict(record))
            for n, record in enumerate(rows)
            if self.rng.random() < self.p.duplicate_rate
        )
        if not inserts:
            return
        merged: list[Record] = []
        start = 0
        for position, _, record in inserts:
            merged.extend(rows[start:position])
            merged.append(record)
            start = position
        merged.extend(rows[start:])
        batch.records[entity] = merged
        batch.count(entity, "exact_duplicates", len(inserts))

    def _products(self, batch: DayBatch, today: date) -> None:
        for _ in range(self.p.volume("product_updates")):
            record = self.products[self.rng.choice(self._product_ids)]
            when = self._time_in(today)
            if ts(when) <= record["updated_at"] or record["product_id"] in self._deleted_products:
                continue
            record.update(
                list_price=round(record["list_price"] * self.rng.uniform(0.8, 1.2), 2),
                updated_at=ts(when),
            )
            batch.records["opdb.products"].append(dict(record))
        if batch.day == self.p.hard_delete_day:
            live = [p for p in self._product_ids if p not in self._deleted_products]
            gone = self._delete_rng.sample(live, min(len(live), self.p.volume("product_deletes")))
            self._deleted_products.update(gone)
            batch.deletes["opdb.products"] = [{"product_id": p} for p in sorted(gone)]
            batch.count("opdb.products", "hard_deletes", len(gone))

    def _orders(self, batch: DayBatch, today: date, late: dict[str, list[Record]]) -> None:
        entity = "opdb.orders"
        with_discount = batch.day >= self.p.schema_change_day
        open_orders = sorted(
            o for o, r in self.orders.items() if r["status"] in ("placed", "shipped")
        )
        for order_id in self.rng.sample(
            open_orders, min(len(open_orders), self.p.volume("order_updates"))
        ):
            record = self.orders[order_id]
            when = self._time_in(today)
            if ts(when) <= record["updated_at"]:
                continue
            next_status = self.rng.choice(ORDER_FLOW[record["status"]])
            record.update(status=next_status, updated_at=ts(when))
            if with_discount:
                record.setdefault("discount_amount", 0.0)
            self._deliver(batch, entity, record, late)
        active = self._active_customer_ids()
        for _ in range(self.p.volume("orders")):
            when = self._time_in(today)
            customer = self.customers[self.rng.choice(active)]
            local_currency = COUNTRIES[customer["country"]][0]
            currency = local_currency if self.rng.random() < 0.7 else "USD"
            amount = round(self.rng.lognormvariate(3.8, 0.7) / USD_PER_UNIT[currency], 2)
            order: Record = {
                "order_id": self._next_id("order", "O"),
                "customer_id": customer["customer_id"],
                "product_id": self.rng.choice(self._product_ids),
                "order_ts": ts(when),
                "currency": currency,
                "amount": amount,
                "status": "placed",
                "channel": self.rng.choice(CHANNELS),
                "updated_at": ts(when),
            }
            if with_discount:
                order["discount_amount"] = (
                    round(amount * self.rng.choice([0.05, 0.1, 0.2]), 2)
                    if self.rng.random() < 0.2
                    else 0.0
                )
            self.orders[order["order_id"]] = order
            self._deliver(batch, entity, order, late)
        if batch.day == self.p.schema_change_day:
            batch.count(entity, "schema_change_added_column_discount_amount")

    def _cases(self, batch: DayBatch, today: date) -> None:
        entity = "crm.cases"
        open_cases = sorted(c for c, r in self.cases.items() if r["status"] != "closed")
        for case_id in self.rng.sample(
            open_cases, min(len(open_cases), self.p.volume("case_updates"))
        ):
            record = self.cases[case_id]
            when = self._time_in(today)
            if ts(when) <= record["updated_at"]:
                continue
            status = "pending" if record["status"] == "open" else "closed"
            record.update(status=status, updated_at=ts(when))
            if status == "closed":
                record["closed_at"] = ts(when)
                record["csat"] = self.rng.randint(1, 5) if self.rng.random() < 0.7 else None
            batch.records[entity].append(dict(record))
        active = self._active_customer_ids()
        for _ in range(self.p.volume("new_cases")):
            when = self._time_in(today)
            record = {
                "case_id": self._next_id("case", "S"),
                "customer_id": self.rng.choice(active),
                "subject": self.rng.choice(
                    ["Where is my order?", "Refund request", "Damaged item", "Account access"]
                ),
                "status": "open",
                "priority": self.rng.choice(CASE_PRIORITIES),
                "opened_at": ts(when),
                "closed_at": None,
                "csat": None,
                "updated_at": ts(when),
            }
            self.cases[record["case_id"]] = record
            batch.records[entity].append(dict(record))
        self._duplicate(batch, entity)

    def _events(self, batch: DayBatch, today: date) -> None:
        entity = "events.behaviour"
        active = self._active_customer_ids()
        rows: list[Record] = []
        # Hot loop (1M events at bench scale): times are formatted from integer
        # milliseconds; the random draws are the same as _time_in's.
        days = {False: today, True: today - timedelta(days=1)}
        prefix = {late: (f"{d.isoformat()}T", f"{d:%Y%m%d}") for late, d in days.items()}
        for _ in range(self.p.volume("events")):
            late_event = self.rng.random() < self.p.late_rate and batch.day > 1
            stamp, compact = prefix[late_event]
            ms = self.rng.randrange(86_400_000)
            customer_id = self.rng.choice(active)
            rows.append(
                {
                    "event_id": self._uuid(),
                    "customer_id": customer_id,
                    "session_id": f"{customer_id}-{compact}-{self.rng.randrange(3)}",
                    "event_type": self.rng.choice(EVENT_TYPES),
                    "event_ts": f"{stamp}{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:"
                    f"{ms // 1000 % 60:02d}.{ms % 1000:03d}Z",
                    "device": self.rng.choice(DEVICES),
                    "page": f"/p/{self.rng.choice(self._product_ids)}",
                }
            )
            if late_event:
                batch.count(entity, "late_events")
        batch.records[entity] = rows
        self._duplicate(batch, entity)
        lines = [json.dumps(r, separators=(",", ":")) for r in batch.records[entity]]
        self._inject_malformed(batch, entity, lines, self._broken_event)
        batch.raw_lines[entity] = lines

    def _broken_event(self, line: str) -> str:
        kind = self.rng.randrange(3)
        if kind == 0:
            return line[: self.rng.randrange(5, max(6, len(line) - 5))]  # truncated JSON
        record = json.loads(line)
        if kind == 1:
            del record["event_id"]
        else:
            record["event_ts"] = "yesterday-ish"
        return json.dumps(record, separators=(",", ":"))

    def _inject_malformed(
        self, batch: DayBatch, entity: str, lines: list[str], breaker: Any
    ) -> None:
        count = 0
        for i in range(len(lines)):
            if self.rng.random() < self.p.malformed_rate:
                lines[i] = breaker(lines[i])
                count += 1
        if count:
            batch.count(entity, "malformed", count)

    def _returns(self, batch: DayBatch, today: date) -> None:
        entity = "returns.returns"
        delivered = sorted(
            o
            for o, r in self.orders.items()
            if r["status"] == "delivered" and o not in self._returned
        )
        rows: list[Record] = []
        for order_id in delivered:
            if self.rng.random() >= 0.15:
                continue
            order = self.orders[order_id]
            self._returned.add(order_id)
            rows.append(
                {
                    "return_id": self._next_id("return", "R"),
                    "order_id": order_id,
                    "customer_id": order["customer_id"],
                    "return_ts": ts(self._time_in(today)),
                    "amount": f"{round(order['amount'] * self.rng.choice([1.0, 1.0, 0.5]), 2):.2f}",
                    "currency": order["currency"],
                    "reason": self.rng.choice(RETURN_REASONS),
                }
            )
        batch.records[entity] = rows
        self._duplicate(batch, entity)
        header = ",".join(RETURN_COLUMNS)
        lines = [",".join(str(r[c]) for c in RETURN_COLUMNS) for r in batch.records[entity]]
        self._inject_malformed(batch, entity, lines, self._broken_return)
        batch.raw_lines[entity] = [header, *lines]

    def _broken_return(self, line: str) -> str:
        fields = line.split(",")
        kind = self.rng.randrange(3)
        if kind == 0:
            fields[4] = "N/A"  # amount not a number
        elif kind == 1:
            fields = fields[:4]  # too few fields
        else:
            fields[3] = "31/02/2026"  # unparseable timestamp
        return ",".join(fields)

    def _fx(self, batch: DayBatch, today: date) -> None:
        rates = []
        for currency in sorted(self.fx):
            self.fx[currency] = round(self.fx[currency] * self.rng.uniform(0.99, 1.01), 6)
            if batch.day > 1 and self.rng.random() < 0.05:
                batch.count("fx.rates", "missing_rates")
                continue
            rates.append(
                {
                    "rate_date": today.isoformat(),
                    "currency": currency,
                    "usd_per_unit": self.fx[currency],
                }
            )
        batch.records["fx.rates"] = rates


RETURN_COLUMNS = (
    "return_id",
    "order_id",
    "customer_id",
    "return_ts",
    "amount",
    "currency",
    "reason",
)


def generate(params: GeneratorParams) -> Iterator[DayBatch]:
    """Yield each day's :class:`DayBatch` for ``params``."""
    return RetailGenerator(params).days()


def with_overrides(params: GeneratorParams, **changes: Any) -> GeneratorParams:
    """``params`` with the non-None ``changes`` applied."""
    return replace(params, **{k: v for k, v in changes.items() if v is not None})
