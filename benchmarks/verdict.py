"""The regression verdict: this run's paired ratios against the baseline's distribution of them.

Every judged benchmark ran in pairs with its reference (`benchmarks.harness`), so each round
gives one ratio, subject cost over reference cost, in CPU seconds (or wall seconds with
`metric="wall"`). The baseline stores the ratios of several runs, not one number. A benchmark
regresses only when both hold:

* its median ratio is more than `threshold` above the baseline's median, and
* a one-sided Mann-Whitney test says its ratios are larger than the baseline's with
  p < `alpha` / k, k being the number of benchmarks the baseline judges (Bonferroni; the
  same k for a run of a few of them).

A first batch's verdict never fails a run alone: what looks slower gets another batch, and a
move not yet significant a third (`Judge.more_rounds`, `BATCHES`). So when nothing changed,
the chance that a run reports any regression is at most `alpha` (1%) at each look, and 3%
over the three looks, as long as the rounds of a run are like those of the baseline; the
threshold guards the rest. A benchmark with so few rounds that no outcome could reach that
p (the full size, where a round takes minutes) is judged by the threshold alone, and says so.

Pure Python: tested without a JVM.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.clock import utc_now_text

__all__ = [
    "ALPHA",
    "BATCHES",
    "DEFAULT_METRIC",
    "DEFAULT_THRESHOLD",
    "METRICS",
    "Comparison",
    "Judge",
    "Result",
    "Round",
    "baseline_document",
    "compare",
    "history_entry",
    "load_baseline",
    "load_history",
    "load_results",
    "looks_slower",
    "mann_whitney_greater",
    "pooled_baseline",
    "regressions",
    "smallest_p",
]

DEFAULT_THRESHOLD = 0.15
METRICS = ("cpu", "wall")
DEFAULT_METRIC = "cpu"
ALPHA = 0.01
"""The chance of any false alarm in a run when nothing changed, split over the judged benchmarks."""
BATCHES = 3
"""Batches of rounds at most (`Judge.more_rounds`). Ten rounds of silver slowed by 25% (+21%
and +25% measured) gave p = 0.001, just short of 1% / 10; the third batch is for such a
change, beyond the threshold but not yet proven."""


@dataclass(frozen=True)
class Round:
    """One timed round: the subject's CPU and wall seconds, and its reference's (if judged)."""

    cpu: float
    wall: float
    reference_cpu: float | None = None
    reference_wall: float | None = None

    def ratio(self, metric: str) -> float | None:
        """Subject cost over reference cost in this round; None without a reference."""
        subject, reference = (
            (self.cpu, self.reference_cpu) if metric == "cpu" else (self.wall, self.reference_wall)
        )
        if reference is None or reference <= 0:
            return None
        return subject / reference


@dataclass(frozen=True)
class Result:
    """One benchmark of a run: its rounds and what `harness.measure` said about it."""

    key: str
    name: str
    family: str
    reference: str | None
    items: int
    unit: str
    rounds: tuple[Round, ...]
    layer: str | None = None
    versus: str | None = None
    params: Mapping[str, int] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def times(self) -> tuple[float, ...]:
        """Wall seconds per round."""
        return tuple(r.wall for r in self.rounds)

    @property
    def median(self) -> float:
        """The median round, wall seconds."""
        return statistics.median(self.times)

    @property
    def median_cpu(self) -> float:
        """The median round, CPU seconds."""
        return statistics.median(r.cpu for r in self.rounds)

    @property
    def throughput(self) -> float:
        """Items per second in the median round."""
        return self.items / self.median

    def ratios(self, metric: str) -> tuple[float, ...]:
        """One ratio per paired round."""
        return tuple(r for r in (round_.ratio(metric) for round_ in self.rounds) if r is not None)


_RECORDED = {
    "key",
    "name",
    "family",
    "reference",
    "versus",
    "layer",
    "items",
    "unit",
    "params",
    "rounds",
}


def load_results(path: Path) -> dict[str, Result]:
    """The results in a pytest-benchmark JSON file (`--benchmark-json`), by key."""
    document = json.loads(path.read_text(encoding="utf-8"))
    results: dict[str, Result] = {}
    for entry in document.get("benchmarks", []):
        info = entry["extra_info"]
        results[info["key"]] = Result(
            key=info["key"],
            name=info["name"],
            family=info["family"],
            reference=info["reference"],
            items=int(info["items"]),
            unit=info["unit"],
            rounds=tuple(Round(**round_) for round_ in info["rounds"]),
            layer=info.get("layer"),
            versus=info.get("versus"),
            params=dict(info["params"]),
            details={k: v for k, v in info.items() if k not in _RECORDED},
        )
    return results


# ----------------------------------------------------------------------------- statistics


def smallest_p(n: int, m: int) -> float:
    """The smallest one-sided p-value a rank test of `n` against `m` values can give."""
    return 1 / math.comb(n + m, n) if n and m else 1.0


def mann_whitney_greater(sample: Sequence[float], baseline: Sequence[float]) -> float:
    """One-sided Mann-Whitney p-value that `sample` tends to be larger than `baseline`
    (scipy's `mannwhitneyu`).

    Exact when there are no ties and at most 40 values in all; otherwise the normal
    approximation with the tie and continuity corrections.
    """
    from scipy.stats import mannwhitneyu  # type: ignore[import-untyped]  # only a verdict pays

    if not sample or not baseline:
        return 1.0
    tied = len(set(sample) | set(baseline)) < len(sample) + len(baseline)
    exact = not tied and len(sample) + len(baseline) <= 40
    result = mannwhitneyu(
        sample, baseline, alternative="greater", method="exact" if exact else "asymptotic"
    )
    p = float(result.pvalue)
    return 1.0 if math.isnan(p) else p


# -------------------------------------------------------------------------------- verdict


@dataclass(frozen=True)
class Comparison:
    """One benchmark against the baseline.

    `status` is `regression`, `faster`, `ok`, `not significant` (its median moved beyond the
    threshold, but the test cannot tell it from the baseline's spread), `new` (no baseline
    ratios), `reference` (others are divided by it), `not judged` (no reference, such as the
    correctness benchmark, whose assertions are its verdict) or `no reference`.
    """

    key: str
    reference: str | None
    layer: str | None
    ratios: tuple[float, ...]
    baseline_ratios: tuple[float, ...]
    p: float | None
    tested: bool
    status: str

    @property
    def ratio(self) -> float | None:
        """This run's median ratio."""
        return statistics.median(self.ratios) if self.ratios else None

    @property
    def baseline_ratio(self) -> float | None:
        """The baseline's median ratio."""
        return statistics.median(self.baseline_ratios) if self.baseline_ratios else None

    @property
    def change(self) -> float | None:
        """The median ratio's change against the baseline's: +0.20 is 20% slower."""
        if self.ratio is None or self.baseline_ratio is None:
            return None
        return self.ratio / self.baseline_ratio - 1

    def describe(self) -> str:
        """One line for the console and the report; a regression names its layer."""
        if self.ratio is None or self.baseline_ratio is None or self.change is None:
            return f"{self.key}: {self.status}"
        layer = f" (layer {self.layer})" if self.layer else ""
        test = f"p={self.p:.2g}" if self.tested and self.p is not None else "threshold only"
        return (
            f"{self.key}{layer}: {self.ratio:.3f}x {self.reference} now (median of "
            f"{len(self.ratios)}), {self.baseline_ratio:.3f}x in the baseline (median of "
            f"{len(self.baseline_ratios)}): {self.change:+.1%}, {test}: {self.status}"
        )


def _baseline_ratios(
    baseline: Mapping[str, Any] | None, key: str, metric: str
) -> tuple[float, ...]:
    entry = (baseline or {}).get("benchmarks", {}).get(key, {})
    return tuple(float(value) for value in entry.get("ratios", {}).get(metric, ()))


def compare(
    results: Mapping[str, Result],
    baseline: Mapping[str, Any] | None,
    threshold: float,
    metric: str = DEFAULT_METRIC,
    alpha: float = ALPHA,
) -> list[Comparison]:
    """Judge every benchmark of the run against the baseline's ratios of the same metric."""
    referenced = {r.reference for r in results.values()} | {r.versus for r in results.values()}
    # The family is the suite the baseline judges, not this run's selection: a run of a few
    # benchmarks (-k) tests each as strictly as a whole run does.
    judged = {key for key, result in results.items() if result.ratios(metric)}
    known = (baseline or {}).get("benchmarks", {})
    judged |= {key for key in known if _baseline_ratios(baseline, key, metric)}
    alpha_each = alpha / max(len(judged), 1)
    comparisons = []
    for key, result in sorted(results.items()):
        now = result.ratios(metric)
        before = _baseline_ratios(baseline, key, metric)
        p: float | None = None
        tested = bool(now and before) and smallest_p(len(now), len(before)) < alpha_each
        if result.reference is None:
            status = "reference" if key in referenced else "not judged"
        elif not now:
            status = "no reference"
        elif not before:
            status = "new"
        else:
            change = statistics.median(now) / statistics.median(before) - 1
            if change < -threshold:
                p = mann_whitney_greater([-r for r in now], [-r for r in before])
                status = "faster" if not tested or p < alpha_each else "not significant"
            else:
                p = mann_whitney_greater(now, before)
                if change <= threshold:
                    status = "ok"
                else:
                    status = "regression" if not tested or p < alpha_each else "not significant"
        comparisons.append(
            Comparison(key, result.reference, result.layer, now, before, p, tested, status)
        )
    return comparisons


def regressions(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """The comparisons that fail the run."""
    return [comparison for comparison in comparisons if comparison.status == "regression"]


def looks_slower(comparison: Comparison) -> bool:
    """A regression, or a move beyond the threshold that its rounds cannot yet tell from the
    baseline's spread: more rounds give the test its power, or show a noisy start."""
    return comparison.status == "regression" or (
        comparison.status == "not significant" and (comparison.change or 0) > 0
    )


@dataclass(frozen=True)
class Judge:
    """The verdict's settings in a judged run, for the benchmarks to ask as they measure."""

    baseline: Mapping[str, Any]
    threshold: float = DEFAULT_THRESHOLD
    metric: str = DEFAULT_METRIC
    alpha: float = ALPHA

    def compare(self, result: Result) -> Comparison:
        """`result` so far against the baseline."""
        [comparison] = compare(
            {result.key: result}, self.baseline, self.threshold, self.metric, self.alpha
        )
        return comparison

    def looks_slower(self, result: Result) -> bool:
        """Whether `result` so far `looks_slower` against the baseline."""
        return looks_slower(self.compare(result))

    def more_rounds(self, result: Result, batches: int) -> bool:
        """Whether a benchmark that has had `batches` batches of rounds gets another, up to
        `BATCHES` in all: a regression in its first batch, to confirm it (a noisy start
        fails no run), and a move beyond the threshold not yet significant. A regression
        over two batches or more is the verdict: a third batch would only re-judge it."""
        if batches >= BATCHES:
            return False
        comparison = self.compare(result)
        if comparison.status == "regression":
            return batches == 1
        return looks_slower(comparison)


# ------------------------------------------------------------------------------- baseline


def load_baseline(path: Path) -> dict[str, Any] | None:
    """The committed baseline of a size, or None when there is none yet."""
    if not path.is_file():
        return None
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def baseline_document(
    runs: Sequence[Mapping[str, Result]], size: str, commit: str
) -> dict[str, Any]:
    """What `--save-baseline` commits: every paired ratio of each benchmark over `runs` (the
    distribution a later run is tested against), and median seconds for reading."""
    keys = sorted({key for run in runs for key in run})
    benchmarks: dict[str, Any] = {}
    for key in keys:
        measured = [run[key] for run in runs if key in run]
        first = measured[0]
        rounds = [round_ for result in measured for round_ in result.rounds]
        pooled = Result(first.key, first.name, first.family, first.reference, first.items,
                        first.unit, tuple(rounds), first.layer)  # fmt: skip
        benchmarks[key] = {
            "reference": first.reference,
            "layer": first.layer,
            "ratios": {metric: [round(r, 5) for r in pooled.ratios(metric)] for metric in METRICS},
            "cpu_seconds": round(pooled.median_cpu, 4),
            "seconds": round(pooled.median, 4),
        }
    saved_at = utc_now_text()
    return {
        "size": size,
        "saved_at": saved_at,
        "commit": commit,
        "runs": len(runs),
        "sessions": [{"commit": commit, "saved_at": saved_at, "runs": len(runs)}],
        "note": "each benchmark's paired ratios over all runs are judged; seconds are for reading",
        "benchmarks": benchmarks,
    }


def pooled_baseline(existing: Mapping[str, Any], added: Mapping[str, Any]) -> dict[str, Any]:
    """`added` (a `baseline_document` of new runs) pooled with the `existing` baseline: every
    ratio of both, and the sessions they were measured in (`--add-to-baseline`).

    A benchmark's median moves between runs more than its rounds move within one, and runs
    close together in time tend to agree; runs from several sessions put that spread in the
    baseline. The seconds shown for reading are the newest session's.

    Raises:
        ValueError: the two are of different sizes.
    """
    if existing.get("size") != added.get("size"):
        raise ValueError(
            f"cannot pool a {added.get('size')} baseline into a {existing.get('size')} one"
        )
    sessions = existing.get("sessions") or [
        {key: existing.get(key) for key in ("commit", "saved_at", "runs")}
    ]
    benchmarks: dict[str, Any] = {}
    for key in sorted({*existing["benchmarks"], *added["benchmarks"]}):
        old, new = existing["benchmarks"].get(key, {}), added["benchmarks"].get(key, {})
        benchmarks[key] = {
            **old,
            **new,
            "ratios": {
                metric: [
                    *old.get("ratios", {}).get(metric, ()),
                    *new.get("ratios", {}).get(metric, ()),
                ]
                for metric in METRICS
            },
        }
    return {
        **added,
        "runs": int(existing.get("runs", 0)) + int(added["runs"]),
        "sessions": [*sessions, *added["sessions"]],
        "benchmarks": benchmarks,
    }


# -------------------------------------------------------------------------------- history


def history_entry(
    comparisons: Iterable[Comparison],
    *,
    size: str,
    metric: str,
    commit: str,
    machine: Mapping[str, Any],
    verdict: str,
) -> dict[str, Any]:
    """One run for the history folder: when, where, which commit, and each ratio."""
    return {
        "date": utc_now_text(),
        "commit": commit,
        "machine": dict(machine),
        "size": size,
        "metric": metric,
        "verdict": verdict,
        "benchmarks": {
            c.key: {"ratio": c.ratio, "ratios": list(c.ratios), "status": c.status}
            for c in comparisons
            if c.ratios
        },
    }


def load_history(folder: Path, size: str) -> list[dict[str, Any]]:
    """The history entries of one size in `folder`, oldest first."""
    entries = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        entry = json.loads(path.read_text(encoding="utf-8"))
        if entry.get("size") == size:
            entries.append(entry)
    return sorted(entries, key=lambda entry: str(entry.get("date")))
