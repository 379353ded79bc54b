"""Results, ratios, the regression verdict against the baseline, and the report files.

Every benchmark's cost is its fastest round (the least disturbed by other work on a shared
machine), in CPU seconds (this process and the Spark JVM, see `benchmarks.cpu`) or, with
`metric="wall"`, in wall seconds. Its *ratio* is that cost divided by its reference's, measured in
the same run (`extra_info["reference"]`): plain Spark for the Spark layers, the orjson floor
for the generator, a plain Delta MERGE for the SCD2 merge, the same layer without rules for
a contract, our engine for GX. A benchmark regresses when its ratio exceeds the baseline's
ratio by more than the threshold. References themselves are not judged: a slower machine
slows them and what they normalise alike.
"""

from __future__ import annotations

import base64
import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the backend is chosen first, before pyplot loads

from contracts.html import render

__all__ = [
    "DEFAULT_METRIC",
    "DEFAULT_THRESHOLD",
    "METRICS",
    "Comparison",
    "Result",
    "baseline_document",
    "compare",
    "headline",
    "load_baseline",
    "load_results",
    "merge_runs",
    "ratios",
    "regressions",
    "write_report",
]

DEFAULT_THRESHOLD = 0.15
METRICS = ("cpu", "wall")
DEFAULT_METRIC = "cpu"
_BASELINE_FIELD = {"cpu": "ratio", "wall": "wall_ratio"}


@dataclass(frozen=True)
class Result:
    """One benchmark of a run: its round times and what `conftest.record` said about it."""

    key: str
    name: str
    family: str
    reference: str | None
    versus: str | None
    items: int
    unit: str
    params: Mapping[str, int]
    times: tuple[float, ...]
    cpu: tuple[float, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> float:
        """The fastest round, in seconds."""
        return min(self.times)

    @property
    def best_cpu(self) -> float:
        """The least CPU time of a round (wall time when CPU was not recorded)."""
        return min(self.cpu) if self.cpu else self.best

    def cost(self, metric: str) -> float:
        """What the verdict compares: `best_cpu` or, for `wall`, `best`."""
        return self.best_cpu if metric == "cpu" else self.best

    @property
    def median(self) -> float:
        """The median round, in seconds."""
        return statistics.median(self.times)

    @property
    def throughput(self) -> float:
        """Items per second in the fastest round."""
        return self.items / self.best

    def with_rounds(self, other: Result) -> Result:
        """The same benchmark with the rounds of another run added."""
        return Result(
            self.key,
            self.name,
            self.family,
            self.reference,
            self.versus,
            self.items,
            self.unit,
            self.params,
            (*self.times, *other.times),
            (*self.cpu, *other.cpu),
            self.details,
        )


_RECORDED = {
    "key",
    "name",
    "family",
    "reference",
    "versus",
    "items",
    "unit",
    "params",
    "cpu_seconds",
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
            versus=info.get("versus"),
            items=int(info["items"]),
            unit=info["unit"],
            params=dict(info["params"]),
            times=tuple(float(t) for t in entry["stats"]["data"]),
            cpu=tuple(float(t) for t in info.get("cpu_seconds", ())),
            details={k: v for k, v in info.items() if k not in _RECORDED},
        )
    return results


def merge_runs(first: Mapping[str, Result], second: Mapping[str, Result]) -> dict[str, Result]:
    """Both runs' rounds per benchmark (the confirmation run re-measures a few)."""
    merged = dict(first)
    for key, result in second.items():
        merged[key] = merged[key].with_rounds(result) if key in merged else result
    return merged


def ratios(results: Mapping[str, Result], metric: str = DEFAULT_METRIC) -> dict[str, float]:
    """Each benchmark's cost over its reference's, where both were measured."""
    return {
        key: result.cost(metric) / results[result.reference].cost(metric)
        for key, result in results.items()
        if result.reference is not None and result.reference in results
    }


@dataclass(frozen=True)
class Comparison:
    """One benchmark against the baseline.

    `status` is `regression`, `ok`, `faster` (beyond the threshold the other way), `new` (no
    baseline ratio), `reference` (others are divided by it: not judged), `not judged` (no
    reference, such as the correctness benchmark, whose assertions are its verdict) or
    `no reference` (its reference did not run).
    """

    key: str
    reference: str | None
    seconds: float
    ratio: float | None
    baseline_ratio: float | None
    status: str

    @property
    def change(self) -> float | None:
        """The ratio's change against the baseline's: +0.20 is 20% slower."""
        if self.ratio is None or self.baseline_ratio is None:
            return None
        return self.ratio / self.baseline_ratio - 1

    def describe(self) -> str:
        """One line for the console and the report."""
        if self.ratio is None or self.baseline_ratio is None or self.change is None:
            return f"{self.key}: {self.status}"
        return (
            f"{self.key}: {self.ratio:.3f}x {self.reference} now, {self.baseline_ratio:.3f}x in "
            f"the baseline ({self.change:+.1%}): {self.status}"
        )


def compare(
    results: Mapping[str, Result],
    baseline: Mapping[str, Any] | None,
    threshold: float,
    metric: str = DEFAULT_METRIC,
) -> list[Comparison]:
    """Judge every benchmark of the run against the baseline's ratios of the same metric."""
    now = ratios(results, metric)
    known: Mapping[str, Any] = (baseline or {}).get("benchmarks", {})
    comparisons = []
    referenced = {r.reference for r in results.values()} | {r.versus for r in results.values()}
    for key, result in sorted(results.items()):
        ratio = now.get(key)
        before = known.get(key, {}).get(_BASELINE_FIELD[metric])
        if result.reference is None:
            status = "reference" if key in referenced else "not judged"
        elif ratio is None:
            status = "no reference"
        elif before is None:
            status = "new"
        elif ratio > before * (1 + threshold):
            status = "regression"
        elif ratio < before * (1 - threshold):
            status = "faster"
        else:
            status = "ok"
        comparisons.append(
            Comparison(key, result.reference, result.cost(metric), ratio, before, status)
        )
    return comparisons


def regressions(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """The comparisons that fail the run."""
    return [comparison for comparison in comparisons if comparison.status == "regression"]


def load_baseline(path: Path) -> dict[str, Any] | None:
    """The committed baseline of a size, or None when there is none yet."""
    if not path.is_file():
        return None
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def baseline_document(results: Mapping[str, Result], size: str) -> dict[str, Any]:
    """What `--save-baseline` commits: each benchmark's ratios, and its seconds for reading."""
    cpu, wall = ratios(results, "cpu"), ratios(results, "wall")
    return {
        "size": size,
        "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "note": "ratios (CPU, and wall) are judged; seconds depend on the machine and its load",
        "benchmarks": {
            key: {
                "ratio": cpu.get(key),
                "wall_ratio": wall.get(key),
                "reference": result.reference,
                "cpu_seconds": round(result.best_cpu, 4),
                "seconds": round(result.best, 4),
            }
            for key, result in sorted(results.items())
        },
    }


# ------------------------------------------------------------------------------ headline


def _largest(results: Mapping[str, Result], name: str) -> Result | None:
    candidates = [result for result in results.values() if result.name == name]
    return max(candidates, key=lambda result: result.items, default=None)


def headline(results: Mapping[str, Result]) -> list[tuple[str, str]]:
    """The figures the issue asks for, from this run, as (what, figure) pairs."""
    lines: list[tuple[str, str]] = []
    end_to_end = _largest(results, "end_to_end")
    if end_to_end is not None:
        events = end_to_end.params.get("events", end_to_end.items)
        lines.append((f"end-to-end at {events:,} events", f"{end_to_end.throughput:,.0f} events/s"))
        plain = results.get(end_to_end.reference or "")
        if plain is not None:
            lines.append(
                (
                    "end-to-end / plain Spark",
                    f"{end_to_end.best / plain.best:.2f}x wall, "
                    f"{end_to_end.best_cpu / plain.best_cpu:.2f}x CPU",
                )
            )
        duckdb = results.get(f"duckdb[events={events}]")
        lines.append(
            (
                "end-to-end / DuckDB (wall)",
                f"{end_to_end.best / duckdb.best:.1f}x" if duckdb else "DuckDB not installed",
            )
        )
    for name in ("silver_with_rules", "bronze_with_rules", "silver_with_drops", "gx_validate"):
        result = _largest(results, name)
        reference = results.get(result.versus or "") if result is not None else None
        if result is not None and reference is not None:
            lines.append(
                (
                    f"{name} / {reference.name} at {result.items:,} rows",
                    f"{result.best_cpu / reference.best_cpu:.2f}x CPU, "
                    f"{result.best / reference.best:.2f}x wall",
                )
            )
    for result in sorted(
        (r for r in results.values() if r.name == "scd2_merge"),
        key=lambda r: (r.params["dimension_rows"], r.params["batch_rows"]),
    ):
        lines.append(
            (
                f"SCD2 merge of {result.params['batch_rows']:,} changes into "
                f"{result.params['dimension_rows']:,} rows",
                f"{result.best:.2f} s ({_versus_text(results, result) or 'no plain MERGE'})",
            )
        )
    correctness = results.get("scd2_correctness")
    if correctness is not None:
        lines.append(
            (
                "SCD2 correctness",
                f"{correctness.details.get('checked')} histories checked, "
                f"{correctness.details.get('wrong')} wrong, "
                f"{correctness.throughput:,.0f} changes/s",
            )
        )
    return lines


# --------------------------------------------------------------------------------- plots


def _plot_throughput(results: Mapping[str, Result], out: Path) -> Path | None:
    series: dict[str, list[Result]] = {}
    for result in results.values():
        if result.family in ("throughput", "contracts") and "events" in result.params:
            series.setdefault(result.name, []).append(result)
    if not series:
        return None
    figure, axes = plt.subplots(figsize=(8, 5))
    for name, points in sorted(series.items()):
        points.sort(key=lambda result: result.items)
        axes.plot([p.items for p in points], [p.throughput for p in points], marker="o", label=name)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("events per run")
    axes.set_ylabel("events per second (fastest round)")
    axes.set_title("Throughput against data size")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small", ncol=2)
    figure.tight_layout()
    figure.savefig(out)
    plt.close(figure)
    return out


def _plot_scd2(results: Mapping[str, Result], out: Path) -> Path | None:
    series: dict[str, list[Result]] = {}
    for result in results.values():
        if result.family == "scd2_merge":
            label = f"{result.name}, batch {result.params['batch_rows']:,}"
            series.setdefault(label, []).append(result)
    if not series:
        return None
    figure, axes = plt.subplots(figsize=(8, 5))
    for label, points in sorted(series.items()):
        points.sort(key=lambda result: result.params["dimension_rows"])
        axes.plot(
            [p.params["dimension_rows"] for p in points],
            [p.best for p in points],
            marker="o",
            linestyle="-" if label.startswith("scd2") else "--",
            label=label,
        )
    axes.set_xscale("log")
    axes.set_xlabel("rows in the dimension")
    axes.set_ylabel("seconds per merged batch (fastest round)")
    axes.set_title("SCD2 merge cost as the dimension and the batch grow")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(out)
    plt.close(figure)
    return out


def _plot_ratios(comparisons: Sequence[Comparison], threshold: float, out: Path) -> Path | None:
    judged = [c for c in comparisons if c.ratio is not None]
    if not judged:
        return None
    figure, axes = plt.subplots(figsize=(11, 0.45 * len(judged) + 1.8))
    positions = range(len(judged))
    axes.barh(
        [p + 0.2 for p in positions],
        [c.ratio or 0 for c in judged],
        height=0.4,
        label="this run",
        color=["tab:red" if c.status == "regression" else "tab:blue" for c in judged],
    )
    axes.barh(
        [p - 0.2 for p in positions],
        [c.baseline_ratio or 0 for c in judged],
        height=0.4,
        label="baseline",
        color="tab:gray",
    )
    axes.set_yticks(list(positions), [c.key for c in judged], fontsize=8)
    for position, comparison in zip(positions, judged, strict=True):
        if comparison.change is not None:
            axes.annotate(
                f"{comparison.change:+.0%}",
                (comparison.ratio or 0, position + 0.2),
                xytext=(4, -3),
                textcoords="offset points",
                fontsize=7,
            )
    axes.set_xscale("log")
    axes.set_xlabel(f"cost / reference's cost (a regression is > baseline x {1 + threshold:.2f})")
    axes.set_title("Ratio to the reference measured in the same run, against the baseline")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(out)
    plt.close(figure)
    return out


# ------------------------------------------------------------------------------- reports


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _ratio_text(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _versus_text(results: Mapping[str, Result], result: Result) -> str:
    other = results.get(result.versus or "")
    if other is None:
        return ""
    return f"{other.key}: {result.best_cpu / other.best_cpu:.2f}x"


def _result_rows(
    results: Mapping[str, Result], comparisons: Sequence[Comparison]
) -> list[list[str]]:
    by_key = {c.key: c for c in comparisons}
    rows = []
    for key, result in sorted(results.items()):
        comparison = by_key[key]
        change = comparison.change
        rows.append(
            [
                key,
                f"{result.best:.3f}",
                f"{result.median:.3f}",
                f"{result.best_cpu:.3f}",
                str(len(result.times)),
                f"{result.throughput:,.0f} {result.unit}/s",
                result.reference or "",
                _versus_text(results, result),
                _ratio_text(comparison.ratio),
                _ratio_text(comparison.baseline_ratio),
                "" if change is None else f"{change:+.1%}",
                comparison.status,
            ]
        )
    return rows


_HEADER = (
    "benchmark",
    "min s",
    "median s",
    "min CPU s",
    "rounds",
    "throughput",
    "reference",
    "read against (CPU)",
    "ratio",
    "baseline ratio",
    "change",
    "verdict",
)


def write_report(
    report_dir: Path,
    results: Mapping[str, Result],
    comparisons: Sequence[Comparison],
    *,
    size: str,
    threshold: float,
    metric: str,
    baseline_path: Path,
    baseline_found: bool,
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """Write `results.json`, `report.md`, `report.html` and the plots into `report_dir`."""
    report_dir.mkdir(parents=True, exist_ok=True)
    failed = regressions(comparisons)
    verdict = (
        f"FAIL: {len(failed)} regression(s) beyond {threshold:.0%}"
        if failed
        else f"PASS: no regression beyond {threshold:.0%}"
    )
    if not baseline_found:
        verdict += f" (no baseline at {baseline_path}: nothing judged)"
    figures = headline(results)
    document = {
        "size": size,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "threshold": threshold,
        "metric": metric,
        "baseline": str(baseline_path),
        "verdict": verdict,
        "regressions": [c.describe() for c in failed],
        "headline": dict(figures),
        "notes": list(notes),
        "results": {
            key: {
                "seconds": list(result.times),
                "cpu_seconds": list(result.cpu),
                "min": result.best,
                "median": result.median,
                "items": result.items,
                "unit": result.unit,
                "throughput_per_s": result.throughput,
                "reference": result.reference,
                "params": dict(result.params),
                **dict(result.details),
            }
            for key, result in sorted(results.items())
        },
        "comparisons": [
            {
                "key": c.key,
                "reference": c.reference,
                "ratio": c.ratio,
                "baseline_ratio": c.baseline_ratio,
                "change": c.change,
                "status": c.status,
            }
            for c in comparisons
        ],
    }
    paths = {"json": report_dir / "results.json"}
    paths["json"].write_text(json.dumps(document, indent=2), encoding="utf-8")
    plots = [
        plot
        for plot in (
            _plot_throughput(results, report_dir / "throughput.png"),
            _plot_scd2(results, report_dir / "scd2_merge.png"),
            _plot_ratios(comparisons, threshold, report_dir / "ratios.png"),
        )
        if plot is not None
    ]
    rows = _result_rows(results, comparisons)
    markdown = [
        f"# Benchmarks ({size})",
        "",
        f"**{verdict}**. Baseline: `{baseline_path}`. Each ratio is the fastest round's "
        f"{'CPU' if metric == 'cpu' else 'wall'} time over its reference's, measured in the "
        "same run; throughput is from wall time.",
        "",
        *[f"* REGRESSION {c.describe()}" for c in failed],
        *[f"* {note}" for note in notes],
        "",
        "## Headline figures",
        "",
        *_table(("what", "figure"), figures),
        "",
        "## Every benchmark",
        "",
        *_table(_HEADER, rows),
        "",
        *[f"![{plot.stem}]({plot.name})" for plot in plots],
        "",
    ]
    paths["markdown"] = report_dir / "report.md"
    paths["markdown"].write_text("\n".join(markdown), encoding="utf-8")
    paths["html"] = report_dir / "report.html"
    paths["html"].write_text(
        render(
            "benchmarks",
            "benchmarks.html.j2",
            size=size,
            verdict=verdict,
            failed=failed,
            notes=notes,
            figures=figures,
            header=_HEADER,
            rows=rows,
            images=[(plot.stem, base64.b64encode(plot.read_bytes()).decode()) for plot in plots],
        ),
        encoding="utf-8",
    )
    return paths
