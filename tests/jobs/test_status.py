"""``lakehouse status`` from run summaries: latest run per job, freshness, gates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jobs.status import build_status, render_status


def _run(job: str, day: str, ended: str, status: str = "SUCCEEDED", **extra: Any) -> dict[str, Any]:
    return {
        "run_id": f"{job}__{day}__a1",
        "job": job,
        "env": "prod",
        "logical_date": day,
        "status": status,
        "ended_at": ended,
        "duration_s": 12.0,
        "inputs": [{"name": "src", "rows": 10}],
        "outputs": [
            {
                "name": job,
                "rows": 9,
                "rows_quarantined": 1,
                "extra": {"watermark_after": {"updated_at": f"{day}T23:00:00"}},
            }
        ],
        "quality": {},
        "notes": {},
        "error": None,
        **extra,
    }


def test_status_shows_the_latest_run_freshness_of_the_last_success_and_latest_gates() -> None:
    gate_ok = {"bronze.orders": {"status": "passed", "expectations": 5, "failed": 0}}
    gate_failed = {
        "bronze.orders": {
            "status": "failed",
            "expectations": 5,
            "failed": 1,
            "problems": ["order_id: 3 nulls"],
        }
    }
    summaries = [
        _run("bronze.orders", "2026-01-04", "2026-01-05T03:10:00+00:00", quality=gate_ok),
        _run(
            "bronze.orders",
            "2026-01-05",
            "2026-01-06T03:10:00+00:00",
            status="FAILED",
            outputs=[],
            quality=gate_failed,
            error={"type": "QualityGateError", "message": "gate bronze.orders failed\nmore"},
        ),
        _run("gold.customer_360", "2026-01-05", "2026-01-06T04:00:00+00:00"),
    ]
    text = render_status(
        build_status(summaries), datetime.fromisoformat("2026-01-06T05:00:00+00:00")
    )
    assert text == (
        "Last run per job (2 jobs, 1 not succeeded)\n"
        "  job                status     date        ended     took  read  written  quar.  note\n"
        "  bronze.orders      FAILED     2026-01-05  110m ago  12s   10    0        0      gate bronze.orders failed\n"  # noqa: E501
        "  gold.customer_360  SUCCEEDED  2026-01-05  60m ago   12s   10    9        1\n"
        "\n"
        "Freshness per table (last successful write)\n"
        "  table              written  date        watermark                       run\n"
        "  bronze.orders      25h ago  2026-01-04  updated_at=2026-01-04T23:00:00  bronze.orders__2026-01-04__a1\n"  # noqa: E501
        "  gold.customer_360  60m ago  2026-01-05  updated_at=2026-01-05T23:00:00  gold.customer_360__2026-01-05__a1\n"  # noqa: E501
        "\n"
        "Quality gates (latest result)\n"
        "  gate           status  expectations  failed  quarantined  problems\n"
        "  bronze.orders  failed  5             1       0            order_id: 3 nulls\n"
    )


def test_status_without_runs_says_how_to_get_some() -> None:
    assert render_status(build_status([]), datetime.now()) == (
        "no runs on record (run `lakehouse demo` or a job first)\n"
    )
