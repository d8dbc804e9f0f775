"""The figure ``make bench`` draws: every ratio against its aim, and how cost grows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Ratio:
    """One measured ratio and the most it may be (issue 17's aims)."""

    label: str
    value: float
    aim: float

    @property
    def met(self) -> bool:
        """True when the measured ratio is within its aim."""
        return self.value <= self.aim


def ratios(results: dict[str, Any]) -> list[Ratio]:
    """The ratios a ``results.json`` holds, each with its aim (parts not run are left out)."""
    found: list[Ratio] = []
    scd2, gold = results.get("scd2"), results.get("gold")
    bronze, quality = results.get("bronze"), results.get("quality")
    if isinstance(scd2, dict):
        found += [
            Ratio("SCD2 1% change / canonical MERGE", scd2["change_batch_over_canonical"], 1.5),
            Ratio("SCD2 replay / canonical replay", scd2["replay_over_canonical_replay"], 0.5),
        ]
    if isinstance(gold, dict):
        found += [
            Ratio("Gold next day, 1% touched / full", gold["next_day_over_full"], 0.25),
            Ratio("Gold same day, 1% late / full", gold["incremental_over_full"], 0.25),
            Ratio("Gold no-change rerun / full", gold["no_change_over_full"], 0.05),
        ]
    if isinstance(bronze, dict):
        found.append(Ratio("Bronze +1% / initial load", bronze["incremental_over_initial"], 0.12))
    if isinstance(quality, dict):
        found.append(Ratio("Quality gate / guarded write", quality["gate_over_silver_write"], 0.25))
    fixed = results.get("fixed")
    if isinstance(fixed, dict):  # seconds against the 4 s aim
        found += [
            Ratio("SCD2 100-key batch, s / 4 s", fixed["scd2"]["seconds"] / 4, 1.0),
            Ratio(
                "Gold job, ~1k customers next day, s / 4 s", fixed["gold"]["next_day_s"] / 4, 1.0
            ),
        ]
    for name, growth in (results.get("growth") or {}).items():
        found.append(
            Ratio(f"{name} cost at {growth['size_ratio']}x the table", growth["growth"], 1.5)
        )
    return found


def draw(results: dict[str, Any], target: Path) -> Path:
    """Write the PNG: ratios against aims (left), seconds against table size (right)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    import matplotlib.pyplot as plt

    found = ratios(results)
    growth: dict[str, Any] = results.get("growth") or {}
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 0.5 * max(len(found), 6) + 1.5))
    labels = [r.label for r in found]
    left.barh(
        labels,
        [r.value for r in found],
        color=["#2e7d32" if r.met else "#c62828" for r in found],
    )
    left.scatter([r.aim for r in found], labels, marker="|", s=400, color="black", label="aim")
    for n, r in enumerate(found):
        left.annotate(f"{r.value:.2f}", (r.value, n), xytext=(4, -4), textcoords="offset points")
    left.invert_yaxis()
    left.set_xlabel("measured ratio (green: within the aim, red: not yet)")
    left.set_title("make bench: ratios measured in one run")
    left.legend(loc="lower right")
    for name, data in growth.items():
        sizes = {k: v for k, v in data.items() if k.startswith("seconds_by_")}
        for _, by_size in sizes.items():
            xs = sorted(int(k) for k in by_size)
            right.plot(xs, [by_size[str(x)] for x in xs], marker="o", label=name)
    right.set_xscale("log")
    right.set_xlabel("table size (rows / customers)")
    right.set_ylabel("seconds for the same-size change")
    right.set_ylim(bottom=0)
    right.set_title("How cost grows with the table (aim: <= 1.5x at 4x)")
    if growth:
        right.legend()
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=90)
    plt.close(fig)
    return target
