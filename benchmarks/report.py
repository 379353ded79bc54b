"""The benchmark report: `results.json`, `report.md` and `report.html`, with their plots.

What the report shows is decided in `benchmarks.verdict`; here it is only drawn. Each judged
benchmark's ratios (one per paired round) are drawn against its baseline band; with more than
one data size (the full size), throughput and SCD2 merge cost against size too; with a
history folder, each ratio over the runs of the history, so a slow drift shows, not only a
step. Tables stay narrow: the verdicts in one, the times in another.
"""

from __future__ import annotations

import base64
import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the backend is chosen first, before pyplot loads

from benchmarks.verdict import Comparison, Result, regressions
from contracts.html import render
from pipeline.clock import utc_now_text

__all__ = ["headline", "run_label", "write_report"]


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
                    f"{end_to_end.median / plain.median:.2f}x wall, "
                    f"{end_to_end.median_cpu / plain.median_cpu:.2f}x CPU",
                )
            )
        duckdb = results.get(f"duckdb[events={events}]")
        lines.append(
            (
                "end-to-end / DuckDB (wall)",
                f"{end_to_end.median / duckdb.median:.1f}x" if duckdb else "DuckDB not installed",
            )
        )
    for name in ("silver_with_rules", "bronze_with_rules", "silver_with_drops", "gx_validate"):
        result = _largest(results, name)
        reference = results.get(result.versus or "") if result is not None else None
        if result is not None and reference is not None:
            lines.append(
                (
                    f"{name} / {reference.name} at {result.items:,} rows",
                    f"{result.median_cpu / reference.median_cpu:.2f}x CPU, "
                    f"{result.median / reference.median:.2f}x wall",
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
                f"{result.median:.2f} s ({_versus_text(results, result) or 'no plain MERGE'})",
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


def _sizes(results: Iterable[Result], family: str, param: str) -> int:
    return len({r.params.get(param) for r in results if r.family == family})


def _plot_throughput(results: Mapping[str, Result], out: Path) -> Path | None:
    """Throughput against data size: only with more than one size (a curve, not a point)."""
    series: dict[str, list[Result]] = {}
    for result in results.values():
        if result.family in ("throughput", "contracts") and "events" in result.params:
            series.setdefault(result.name, []).append(result)
    if not series or _sizes(results.values(), "throughput", "events") < 2:
        return None
    figure, axes = plt.subplots(figsize=(8, 5))
    for name, points in sorted(series.items()):
        points.sort(key=lambda result: result.items)
        axes.plot([p.items for p in points], [p.throughput for p in points], marker="o", label=name)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("events per run")
    axes.set_ylabel("events per second (median round)")
    axes.set_title("Throughput against data size")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small", ncol=2)
    return _save(figure, out)


def _plot_scd2(results: Mapping[str, Result], out: Path) -> Path | None:
    """SCD2 merge cost against the dimension's size: only with more than one size."""
    series: dict[str, list[Result]] = {}
    for result in results.values():
        if result.family == "scd2_merge":
            label = f"{result.name}, batch {result.params['batch_rows']:,}"
            series.setdefault(label, []).append(result)
    if not series or _sizes(results.values(), "scd2_merge", "dimension_rows") < 2:
        return None
    figure, axes = plt.subplots(figsize=(8, 5))
    for label, points in sorted(series.items()):
        points.sort(key=lambda result: result.params["dimension_rows"])
        axes.plot(
            [p.params["dimension_rows"] for p in points],
            [p.median for p in points],
            marker="o",
            linestyle="-" if label.startswith("scd2") else "--",
            label=label,
        )
    axes.set_xscale("log")
    axes.set_xlabel("rows in the dimension")
    axes.set_ylabel("seconds per merged batch (median round)")
    axes.set_title("SCD2 merge cost as the dimension and the batch grow")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    return _save(figure, out)


_COLOURS = {"regression": "tab:red", "faster": "tab:green", "not significant": "tab:orange"}


def _plot_ratios(comparisons: Sequence[Comparison], threshold: float, out: Path) -> Path | None:
    """Each judged benchmark's ratios of this run (dots; the median a bar) against its
    baseline's (the grey band: their range; the line: their median), on one scale: the
    baseline median is 1, the dotted line the threshold."""
    judged = [c for c in comparisons if c.ratios and c.baseline_ratio]
    if not judged:
        return None
    figure, axes = plt.subplots(figsize=(9, 0.5 * len(judged) + 1.6))
    for row, comparison in enumerate(judged):
        scale = comparison.baseline_ratio or 1.0
        band = [r / scale for r in comparison.baseline_ratios]
        axes.barh(row, max(band) - min(band), left=min(band), height=0.6, color="0.85")
        axes.plot([1, 1], [row - 0.3, row + 0.3], color="0.4", linewidth=1)
        axes.plot(
            [1 + threshold] * 2, [row - 0.3, row + 0.3], color="0.4", linestyle=":", linewidth=1
        )
        colour = _COLOURS.get(comparison.status, "tab:blue")
        now = [r / scale for r in comparison.ratios]
        axes.scatter(now, [row] * len(now), s=14, color=colour, alpha=0.7, zorder=3)
        axes.plot([statistics.median(now)] * 2, [row - 0.25, row + 0.25], color=colour, lw=2.5)
    axes.set_yticks(range(len(judged)), [c.key for c in judged], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel(
        "paired ratio / the baseline's median ratio\n"
        f"(grey: the baseline's range; dotted: the threshold, +{threshold:.0%})",
        fontsize=9,
    )
    axes.set_title("This run's paired ratios against the baseline band", fontsize=10)
    axes.grid(True, axis="x", alpha=0.3)
    return _save(figure, out)


def run_label(entry: Mapping[str, Any]) -> str:
    """A run of the history on the x axis: its commit, then month-day and time (UTC), so that
    runs of one commit on one day stay apart."""
    return f"{entry['commit']}\n{str(entry['date'])[5:16].replace('T', ' ')}"


def _plot_history(
    history: Sequence[Mapping[str, Any]],
    comparisons: Sequence[Comparison],
    threshold: float,
    out: Path,
) -> Path | None:
    """Each judged benchmark's median ratio over the runs of the history, divided by the
    baseline's median, with the threshold band: a drift shows as a slope."""
    judged = [c for c in comparisons if c.baseline_ratio]
    if len(history) < 2 or not judged:
        return None
    figure, axes = plt.subplots(figsize=(9, 5.6))
    axes.axhspan(1 - threshold, 1 + threshold, color="0.92", label=f"baseline ±{threshold:.0%}")
    positions = range(len(history))
    for comparison in judged:
        points = [
            (x, entry["benchmarks"][comparison.key]["ratio"] / (comparison.baseline_ratio or 1))
            for x, entry in zip(positions, history, strict=True)
            if entry["benchmarks"].get(comparison.key, {}).get("ratio")
        ]
        if points:
            axes.plot(*zip(*points, strict=True), marker="o", markersize=3, label=comparison.key)
    labels = [run_label(entry) for entry in history]
    step = max(1, len(labels) // 12)
    axes.set_xticks(list(positions)[::step], labels[::step], fontsize=7)
    axes.set_ylabel("median ratio / baseline median")
    axes.set_title("Ratios over the runs of the history", fontsize=10)
    axes.grid(True, alpha=0.3)
    # below the plot, so the plot keeps the page's width and long names are not cut off
    axes.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    return _save(figure, out)


def _save(figure: Any, out: Path) -> Path:
    figure.tight_layout()
    figure.savefig(out, dpi=110, bbox_inches="tight")  # a legend outside the axes included
    plt.close(figure)
    return out


# ------------------------------------------------------------------------------- reports


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _ratio_text(value: float | None, count: int) -> str:
    return "" if value is None else f"{value:.3f} ({count})"


_VERDICT_HEADER = (
    "benchmark",
    "layer",
    "ratio now (rounds)",
    "baseline (rounds)",
    "change",
    "p",
    "verdict",
)
_TIMES_HEADER = ("benchmark", "median s", "median CPU s", "rounds", "throughput", "read against")


def _verdict_rows(comparisons: Sequence[Comparison]) -> list[list[str]]:
    return [
        [
            c.key,
            c.layer or "",
            _ratio_text(c.ratio, len(c.ratios)),
            _ratio_text(c.baseline_ratio, len(c.baseline_ratios)),
            "" if c.change is None else f"{c.change:+.1%}",
            "" if c.p is None else (f"{c.p:.2g}" if c.tested else "(too few rounds)"),
            c.status,
        ]
        for c in comparisons
        if c.reference is not None
    ]


def _versus_text(results: Mapping[str, Result], result: Result) -> str:
    other = results.get(result.versus or "")
    if other is None:
        return ""
    return f"{other.key}: {result.median_cpu / other.median_cpu:.2f}x CPU"


def _figure(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.2f}"


def _time_rows(results: Mapping[str, Result]) -> list[list[str]]:
    return [
        [
            key,
            f"{result.median:.3f}",
            f"{result.median_cpu:.3f}",
            str(len(result.rounds)),
            f"{_figure(result.throughput)} {result.unit}/s",
            _versus_text(results, result),
        ]
        for key, result in sorted(results.items())
    ]


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
    history: Sequence[Mapping[str, Any]] = (),
    errored: bool = False,
) -> dict[str, Path]:
    """Write `results.json`, `report.md`, `report.html` and the plots into `report_dir`."""
    report_dir.mkdir(parents=True, exist_ok=True)
    failed = regressions(comparisons)
    verdict = _verdict(
        failed,
        threshold,
        errored=errored,
        baseline_path=baseline_path,
        baseline_found=baseline_found,
    )
    figures = headline(results)
    paths = {"json": report_dir / "results.json"}
    document = _document(
        results,
        comparisons,
        size=size,
        threshold=threshold,
        metric=metric,
        baseline_path=baseline_path,
        verdict=verdict,
        failed=failed,
        figures=figures,
        notes=notes,
    )
    paths["json"].write_text(json.dumps(document, indent=2), encoding="utf-8")
    plots = _draw_plots(report_dir, results, comparisons, history, threshold)
    page = _Page(
        size=size,
        verdict=verdict,
        method=_method(metric, threshold),
        baseline_path=baseline_path,
        failed=failed,
        notes=notes,
        figures=figures,
        verdict_rows=_verdict_rows(comparisons),
        time_rows=_time_rows(results),
        plots=plots,
    )
    paths["markdown"] = report_dir / "report.md"
    paths["markdown"].write_text(_markdown(page), encoding="utf-8")
    paths["html"] = report_dir / "report.html"
    paths["html"].write_text(_html(page), encoding="utf-8")
    return paths


def _verdict(
    failed: Sequence[Comparison],
    threshold: float,
    *,
    errored: bool,
    baseline_path: Path,
    baseline_found: bool,
) -> str:
    """The run's verdict in one line: PASS or FAIL, and why."""
    verdict = (
        f"FAIL: {len(failed)} regression(s) beyond {threshold:.0%}"
        if failed
        else f"PASS: no regression beyond {threshold:.0%}"
    )
    if errored:
        verdict = "FAIL: a benchmark failed its correctness checks or errored; " + verdict
    if not baseline_found:
        verdict += f" (no baseline at {baseline_path}: nothing judged)"
    return verdict


def _document(
    results: Mapping[str, Result],
    comparisons: Sequence[Comparison],
    *,
    size: str,
    threshold: float,
    metric: str,
    baseline_path: Path,
    verdict: str,
    failed: Sequence[Comparison],
    figures: Sequence[tuple[str, str]],
    notes: Sequence[str],
) -> dict[str, Any]:
    """`results.json`: the run's settings and verdict, then every result and comparison."""
    return {
        "size": size,
        "generated_at": utc_now_text(),
        "threshold": threshold,
        "metric": metric,
        "baseline": str(baseline_path),
        "verdict": verdict,
        "regressions": [c.describe() for c in failed],
        "headline": dict(figures),
        "notes": list(notes),
        "results": {key: _result_entry(result) for key, result in sorted(results.items())},
        "comparisons": [_comparison_entry(c) for c in comparisons],
    }


def _result_entry(result: Result) -> dict[str, Any]:
    """One result in `results.json`: its rounds, medians and what it measured."""
    return {
        "rounds": [vars(round_) for round_ in result.rounds],
        "median_seconds": result.median,
        "median_cpu_seconds": result.median_cpu,
        "items": result.items,
        "unit": result.unit,
        "throughput_per_s": result.throughput,
        "reference": result.reference,
        "layer": result.layer,
        "params": dict(result.params),
        **dict(result.details),
    }


def _comparison_entry(comparison: Comparison) -> dict[str, Any]:
    """One comparison in `results.json`: its ratios against the baseline, and its status."""
    return {
        "key": comparison.key,
        "reference": comparison.reference,
        "layer": comparison.layer,
        "ratio": comparison.ratio,
        "ratios": list(comparison.ratios),
        "baseline_ratio": comparison.baseline_ratio,
        "change": comparison.change,
        "p": comparison.p,
        "tested": comparison.tested,
        "status": comparison.status,
    }


def _draw_plots(
    report_dir: Path,
    results: Mapping[str, Result],
    comparisons: Sequence[Comparison],
    history: Sequence[Mapping[str, Any]],
    threshold: float,
) -> list[Path]:
    """The plots that have something to show, saved into `report_dir`, in the pages' order."""
    return [
        plot
        for plot in (
            _plot_ratios(comparisons, threshold, report_dir / "ratios.png"),
            _plot_history(history, comparisons, threshold, report_dir / "history.png"),
            _plot_throughput(results, report_dir / "throughput.png"),
            _plot_scd2(results, report_dir / "scd2_merge.png"),
        )
        if plot is not None
    ]


def _method(metric: str, threshold: float) -> str:
    """How the verdict is reached, in a sentence under it."""
    return (
        f"Each ratio is a benchmark's {'CPU' if metric == 'cpu' else 'wall'} time over its "
        "reference's in the same round (the two interleaved); a regression needs the median "
        f"ratio more than {threshold:.0%} above the baseline's and a one-sided Mann-Whitney "
        "test against the baseline's ratios at p < 1% / (benchmarks judged)."
    )


@dataclass(frozen=True)
class _Page:
    """What `report.md` and `report.html` both show, each in its own form."""

    size: str
    verdict: str
    method: str
    baseline_path: Path
    failed: Sequence[Comparison]
    notes: Sequence[str]
    figures: Sequence[tuple[str, str]]
    verdict_rows: Sequence[Sequence[str]]
    time_rows: Sequence[Sequence[str]]
    plots: Sequence[Path]


def _markdown(page: _Page) -> str:
    """`report.md`: the verdict, the headline figures, the two tables, then the plots."""
    lines = [
        f"# Benchmarks ({page.size})",
        "",
        f"**{page.verdict}**. Baseline: `{page.baseline_path}`. {page.method}",
        "",
        *[f"* REGRESSION {c.describe()}" for c in page.failed],
        *[f"* {note}" for note in page.notes],
        "",
        "## Headline figures",
        "",
        *_table(("what", "figure"), page.figures),
        "",
        "## Verdicts",
        "",
        *_table(_VERDICT_HEADER, page.verdict_rows),
        "",
        "## Times",
        "",
        *_table(_TIMES_HEADER, page.time_rows),
        "",
        *[f"![{plot.stem}]({plot.name})" for plot in page.plots],
        "",
    ]
    return "\n".join(lines)


def _html(page: _Page) -> str:
    """`report.html`: what `report.md` shows, laid out by its template, the plots inline."""
    return render(
        "benchmarks",
        "benchmarks.html.j2",
        size=page.size,
        verdict=page.verdict,
        method=page.method,
        failed=page.failed,
        notes=page.notes,
        figures=page.figures,
        verdict_header=_VERDICT_HEADER,
        verdict_rows=page.verdict_rows,
        times_header=_TIMES_HEADER,
        time_rows=page.time_rows,
        images=[(plot.stem, base64.b64encode(plot.read_bytes()).decode()) for plot in page.plots],
    )
