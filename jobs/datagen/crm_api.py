"""A local Salesforce-like CRM REST API over the generated CRM records.

``GET /api/v1/<entity>?updated_since=<ISO>&page_size=<n>&page=<k>`` with
``Authorization: Bearer <token>`` returns ``{"records": [...], "next_page": <k+1 or
null>, "total_size": n}``: every record delivered up to the simulated day whose
``updated_at`` >= ``updated_since``, ordered by (``updated_at``, id). Faults can be
queued (``429``, ``500``, ``timeout``, ``truncated``, ``expired_token``) to test a
client's retries; the demo runs it without faults.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

ID_FIELD = {"customers": "customer_id", "cases": "case_id"}


class CrmState:
    """Records visible through the API, and the faults still to inject."""

    def __init__(self, sources: Path, token: str) -> None:
        """Serve the CRM files under ``sources``; ``token`` is the valid bearer token."""
        self.sources = sources
        self.token = token
        self.records: dict[str, list[dict[str, Any]]] = {e: [] for e in ID_FIELD}
        self.faults: deque[str] = deque()
        self.requests: list[str] = []
        self.timeout_s = 5.0
        self.lock = threading.Lock()

    def deliver_day(self, day: date) -> None:
        """Make the records the CRM received on ``day`` visible."""
        for entity in ID_FIELD:
            path = self.sources / "crm" / entity / f"{day.isoformat()}.jsonl"
            lines = path.read_text(encoding="utf-8").splitlines()
            with self.lock:
                self.records[entity].extend(json.loads(line) for line in lines)

    def page(self, entity: str, since: str, size: int, number: int) -> dict[str, Any]:
        """Page ``number`` of the records updated since ``since``."""
        with self.lock:
            rows = [r for r in self.records[entity] if r["updated_at"] >= since]
        rows.sort(key=lambda r: (r["updated_at"], r[ID_FIELD[entity]]))
        chunk = rows[(number - 1) * size : number * size]
        more = number * size < len(rows)
        return {
            "records": chunk,
            "next_page": number + 1 if more else None,
            "total_size": len(rows),
        }


def _handler(state: CrmState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            state.requests.append(self.path)
            fault = state.faults.popleft() if state.faults else None
            if fault == "429":
                return self._send(429, b'{"error":"REQUEST_LIMIT_EXCEEDED"}', {"Retry-After": "0"})
            if fault == "500":
                return self._send(500, b'{"error":"SERVER_ERROR"}')
            if fault == "timeout":
                time.sleep(state.timeout_s)
            if (
                fault == "expired_token"
                or self.headers.get("Authorization") != f"Bearer {state.token}"
            ):
                return self._send(401, b'{"error":"INVALID_SESSION_ID"}')
            entity = url.path.rsplit("/", 1)[-1]
            if entity not in ID_FIELD:
                return self._send(404, b'{"error":"NOT_FOUND"}')
            query = parse_qs(url.query)
            body = json.dumps(
                state.page(
                    entity,
                    query.get("updated_since", [""])[0],
                    int(query.get("page_size", ["200"])[0]),
                    int(query.get("page", ["1"])[0]),
                )
            ).encode()
            if fault == "truncated":
                body = body[: len(body) // 2]
            return self._send(200, body)

    return Handler


@contextmanager
def serve_crm(state: CrmState, port: int = 0) -> Iterator[str]:
    """Run the API on loopback ``port`` (0: a free one) for the block; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1"
    finally:
        server.shutdown()
        server.server_close()
