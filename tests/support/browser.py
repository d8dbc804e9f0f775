"""Open a page in headless Chromium (the Debian package) as a person would, and look.

Playwright drives the system Chromium: it records console errors, uncaught page errors
and every request that leaves the file system (blocked: the report must need no
network), reads what rendered, and takes a full-page screenshot.

    python -m tests.support.browser PAGE.html SHOT.png   # prints what it saw
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")

# what the page shows, read in the browser after load
LOOK = """() => {
  const box = (el) => { const r = el.getBoundingClientRect(); return [r.width, r.height]; };
  const svg = (sel) => document.querySelector(sel + " svg");
  const texts = (sel) => [...document.querySelectorAll(sel + " svg text")]
    .map((t) => t.textContent.trim()).filter((t) => t);
  const rows = (sel) => [...document.querySelectorAll(sel + " tbody tr")]
    .map((tr) => [...tr.children].map((td) => td.textContent.trim()));
  return {
    title: document.title,
    lineage_box: svg("#lineage") ? box(svg("#lineage")) : null,
    lineage_texts: texts("#lineage"),
    lineage_marks: document.querySelectorAll("#lineage svg path, #lineage svg use").length,
    rows_box: svg("#rows") ? box(svg("#rows")) : null,
    rows_texts: texts("#rows"),
    rows_bars: document.querySelectorAll("#rows svg g[id^='patch'] path").length,
    gates: rows("#gates"),
    gate_links: [...document.querySelectorAll("#gates a")].map((a) => a.href),
    gate_locations: [...document.querySelectorAll("#gates code")].map((c) => c.textContent),
    freshness: rows("#freshness"),
    runs: rows("#runs"),
  };
}"""


@dataclass
class Seen:
    """What a page showed in the browser."""

    look: dict[str, Any]
    console_errors: list[str] = field(default_factory=list)
    blocked_requests: list[str] = field(default_factory=list)
    linked_titles: list[str] = field(default_factory=list)  # each gate link, opened


def chromium() -> str | None:
    """The system Chromium's executable, if installed."""
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


def look_at(page_file: Path, screenshot: Path, width: int = 1400) -> Seen:
    """Load ``page_file`` offline, read what rendered, screenshot the whole page."""
    from playwright.sync_api import sync_playwright

    executable = chromium()
    if executable is None:
        raise RuntimeError("no Chromium: apt-get install chromium (make test installs it)")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            seen = Seen(look={})

            def route(route: Any) -> None:
                url = route.request.url
                if url.startswith(("file:", "data:", "about:")):
                    route.continue_()
                else:
                    seen.blocked_requests.append(url)
                    route.abort()

            page.route("**/*", route)
            page.on(
                "console",
                lambda message: seen.console_errors.append(message.text)
                if message.type == "error"
                else None,
            )
            page.on("pageerror", lambda error: seen.console_errors.append(str(error)))
            page.goto(page_file.resolve().as_uri(), wait_until="load")
            seen.look = page.evaluate(LOOK)
            page.screenshot(path=str(screenshot), full_page=True)
            for link in seen.look["gate_links"]:
                page.goto(link, wait_until="load")
                seen.linked_titles.append(page.title())
        finally:
            browser.close()
    return seen


if __name__ == "__main__":
    found = look_at(Path(sys.argv[1]), Path(sys.argv[2]))
    print(json.dumps({**found.look, "console_errors": found.console_errors,
                      "blocked_requests": found.blocked_requests,
                      "linked_titles": found.linked_titles}, indent=1))  # fmt: skip
