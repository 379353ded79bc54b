"""Scenario reports: HTML for people, JSON for machines, JUnit XML for CI.

Everything here is pure Python over `ScenarioResult` values, so it is tested without a JVM.
The HTML page is self-contained (inline CSS and SVG, no scripts), so it opens from a CI
artifact as is.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from xml.etree import ElementTree

import orjson

from pipeline.flows import layers
from scenarios.invariants import Verdict

__all__ = [
    "ReportPaths",
    "ScenarioResult",
    "lineage_svg",
    "render_html",
    "render_json",
    "render_junit",
    "write_reports",
]


@dataclass(frozen=True)
class ScenarioResult:
    """One scenario's outcome: what was injected, the ledger, every verdict, samples."""

    name: str
    description: str
    injected: str
    seconds: float
    verdicts: tuple[Verdict, ...]
    ledger: Mapping[str, int] = field(default_factory=dict)
    quarantine_samples: tuple[Mapping[str, object], ...] = ()
    error: str | None = None
    lineage: tuple[tuple[str, str], ...] = ()
    """The table graph (input, output) of the scenario's newest update, from its event log."""
    updates: tuple[Mapping[str, object], ...] = ()
    """The scenario's pipeline updates: `update_id`, `state`, `seconds`, `output_rows`."""

    @property
    def passed(self) -> bool:
        """True when the scenario ran and every invariant held."""
        return self.error is None and all(verdict.passed for verdict in self.verdicts)


@dataclass(frozen=True)
class ReportPaths:
    """Where the three report files were written."""

    html: Path
    json: Path
    junit: Path


def write_reports(
    results: Sequence[ScenarioResult], directory: Path, *, seed: int, generated_at: datetime
) -> ReportPaths:
    """Write report.html, report.json and junit.xml into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(
        html=directory / "report.html",
        json=directory / "report.json",
        junit=directory / "junit.xml",
    )
    paths.json.write_bytes(render_json(results, seed=seed, generated_at=generated_at))
    paths.junit.write_bytes(render_junit(results))
    paths.html.write_text(
        render_html(results, seed=seed, generated_at=generated_at), encoding="utf-8"
    )
    return paths


def render_json(results: Sequence[ScenarioResult], *, seed: int, generated_at: datetime) -> bytes:
    """The machine-readable report."""
    document = {
        "seed": seed,
        "generated_at": generated_at.isoformat(),
        "passed": all(result.passed for result in results),
        "scenarios": [
            {
                **asdict(result),
                "passed": result.passed,
                "verdicts": [asdict(v) for v in result.verdicts],
            }
            for result in results
        ],
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2, default=str)


def render_junit(results: Sequence[ScenarioResult]) -> bytes:
    """JUnit XML: one test case per invariant, the evidence as the failure message."""
    cases = [(result, verdict) for result in results for verdict in result.verdicts]
    errors = [result for result in results if result.error is not None]
    suite = ElementTree.Element(
        "testsuite",
        name="scenarios",
        tests=str(len(cases) + len(errors)),
        failures=str(sum(not verdict.passed for _, verdict in cases)),
        errors=str(len(errors)),
        time=f"{sum(result.seconds for result in results):.2f}",
    )
    for result, verdict in cases:
        case = ElementTree.SubElement(
            suite, "testcase", classname=f"scenarios.{result.name}", name=verdict.name
        )
        if not verdict.passed:
            failure = ElementTree.SubElement(case, "failure", message=verdict.evidence)
            failure.text = verdict.evidence
    for result in errors:
        case = ElementTree.SubElement(
            suite, "testcase", classname=f"scenarios.{result.name}", name="scenario ran"
        )
        error = ElementTree.SubElement(case, "error", message=str(result.error))
        error.text = str(result.error)
    return bytes(ElementTree.tostring(suite, encoding="utf-8", xml_declaration=True))


_CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;
  color:#1f2328;background:#f6f8fa}
main{max-width:1080px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px} h2{font-size:20px;margin:0}
h3{font-size:15px;margin:18px 0 6px;color:#57606a}
.meta{color:#57606a;margin-bottom:18px}
.summary{display:flex;gap:12px;margin:16px 0 24px}
.tile{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:12px 18px;min-width:120px}
.tile b{display:block;font-size:24px}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:18px 22px;
  margin-bottom:18px}
.head{display:flex;align-items:center;gap:12px;flex-wrap:wrap}
.badge{font-weight:600;font-size:12px;padding:2px 10px;border-radius:12px;color:#fff}
.pass{background:#1a7f37} .fail{background:#cf222e}
.muted{color:#57606a}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{color:#57606a;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#ffebe9}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px;word-break:break-all}
nav a{margin-right:10px}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _ledger_chart(ledger: Mapping[str, int]) -> str:
    """A horizontal bar chart of the ledger counts, as inline SVG."""
    if not ledger:
        return ""
    largest = max(max(ledger.values()), 1)
    label_width, bar_width, row = 190, 520, 24
    height = row * len(ledger) + 8
    bars = []
    for index, (name, count) in enumerate(ledger.items()):
        y = 4 + index * row
        width = 0 if count <= 0 else max(2, round(bar_width * count / largest))
        bars.append(
            f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end" font-size="12">'
            f"{_e(name)}</text>"
            f'<rect x="{label_width}" y="{y + 3}" width="{width}" height="16" rx="3" '
            f'fill="#0969da" opacity="0.8"/>'
            f'<text x="{label_width + width + 6}" y="{y + 15}" font-size="12">{count:,}</text>'
        )
    total_width = label_width + bar_width + 80
    return (
        f'<svg role="img" aria-label="ledger" width="{total_width}" height="{height}" '
        f'viewBox="0 0 {total_width} {height}">{"".join(bars)}</svg>'
    )


NODE_WIDTH, NODE_HEIGHT, LAYER_GAP, ROW_GAP = 176, 26, 56, 12


def _curve(points: Sequence[tuple[int, int]]) -> str:
    """A smooth path through points left to right: one S-curve between each pair."""
    (x, y), *rest = points
    path = [f"M{x},{y}"]
    for nx, ny in rest:
        bend = (nx - x) // 2
        path.append(f"C{x + bend},{y} {nx - bend},{ny} {nx},{ny}")
        x, y = nx, ny
    return " ".join(path)


def lineage_svg(graph: Sequence[tuple[str, str]]) -> str:
    """The lineage graph as inline SVG: datasets in layers from left (landing files) to right
    (the last aggregates), an arrow from each input to what reads it. An arrow that skips
    layers runs through a free slot below each layer it crosses, never behind a box."""
    if not graph:
        return ""
    layered = layers(graph)
    depth = {name: column for column, names in enumerate(layered) for name in names}
    rows = [len(names) for names in layered]
    routes: list[list[tuple[int, int]]] = []
    for source, output in graph:
        route = [(depth[source], layered[depth[source]].index(source))]
        for column in range(depth[source] + 1, depth[output]):
            route.append((column, rows[column]))
            rows[column] += 1
        routes.append([*route, (depth[output], layered[depth[output]].index(output))])

    def left(column: int) -> int:
        return 8 + column * (NODE_WIDTH + LAYER_GAP)

    def middle(row: int) -> int:
        return 8 + row * (NODE_HEIGHT + ROW_GAP) + NODE_HEIGHT // 2

    width = 16 + len(layered) * NODE_WIDTH + (len(layered) - 1) * LAYER_GAP
    height = 16 + max(rows) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
    arrows = []
    for route in routes:
        (first_column, first_row), *between, (last_column, last_row) = route
        points = [(left(first_column) + NODE_WIDTH, middle(first_row))]
        for column, row in between:  # straight through the free slot, then on
            points += [(left(column), middle(row)), (left(column) + NODE_WIDTH, middle(row))]
        points.append((left(last_column) - 4, middle(last_row)))
        arrows.append(
            f'<path d="{_curve(points)}" fill="none" stroke="#8c959f" '
            'stroke-width="1.3" marker-end="url(#arrow)"/>'
        )
    nodes = []
    for name, column in depth.items():
        x, y = left(column), middle(layered[column].index(name)) - NODE_HEIGHT // 2
        landing = name.startswith("landing/")
        fill = "#fff8c5" if landing else "#dafbe1" if name.startswith("gold_") else "#ddf4ff"
        nodes.append(
            f'<g><title>{_e(name)}</title><rect x="{x}" y="{y}" width="{NODE_WIDTH}" '
            f'height="{NODE_HEIGHT}" rx="5" fill="{fill}" stroke="#57606a"/>'
            f'<text x="{x + NODE_WIDTH // 2}" y="{y + 17}" text-anchor="middle" '
            f'font-size="12" font-family="ui-monospace, monospace">{_e(name)}</text></g>'
        )
    marker = (
        '<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#8c959f"/></marker>'
        "</defs>"
    )
    return (
        f'<svg role="img" aria-label="lineage" viewBox="0 0 {width} {height}" '
        f'style="width:100%;max-width:{width}px;height:auto">{marker}'
        f"{''.join(arrows)}{''.join(nodes)}</svg>"
    )


def _updates_table(updates: Sequence[Mapping[str, object]]) -> str:
    if not updates:
        return "<p class='muted'>No update recorded.</p>"
    rows = "".join(
        f"<tr><td class='mono'>{_e(u['update_id'])}</td><td>{_e(u['state'])}</td>"
        f"<td class='num'>{float(str(u['seconds'] or 0)):.1f} s</td>"
        f"<td class='num'>{int(str(u['output_rows'])):,}</td></tr>"
        for u in updates
    )
    return (
        "<table style='width:auto'><tr><th>update</th><th>state</th><th>duration</th>"
        f"<th>rows written</th></tr>{rows}</table>"
    )


def _samples_table(samples: Sequence[Mapping[str, object]]) -> str:
    if not samples:
        return '<p class="muted">No quarantined rows.</p>'
    columns = list(dict.fromkeys(key for sample in samples for key in sample))
    head = "".join(f"<th>{_e(column)}</th>" for column in columns)
    rows = "".join(
        "<tr>"
        + "".join(f'<td class="mono">{_e(sample.get(column, ""))[:300]}</td>' for column in columns)
        + "</tr>"
        for sample in samples
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def _section(result: ScenarioResult) -> str:
    badge = (
        '<span class="badge pass">PASS</span>'
        if result.passed
        else ('<span class="badge fail">FAIL</span>')
    )
    verdict_rows = "".join(
        f'<tr class="{"" if verdict.passed else "bad"}">'
        f"<td>{'✓' if verdict.passed else '✗'}</td><td>{_e(verdict.name)}</td>"
        f'<td class="mono">{_e(verdict.evidence)}</td></tr>'
        for verdict in result.verdicts
    )
    ledger_rows = "".join(
        f'<tr><td>{_e(name)}</td><td class="num">{count:,}</td></tr>'
        for name, count in result.ledger.items()
    )
    error = (
        f'<h3>Error</h3><p class="mono">{_e(result.error)}</p>' if result.error is not None else ""
    )
    return f"""
<section id="{_e(result.name)}">
  <div class="head"><h2>{_e(result.name)}</h2>{badge}
    <span class="muted">{result.seconds:.1f} s</span></div>
  <p>{_e(result.description)}</p>
  <h3>Injected</h3><p>{_e(result.injected)}</p>
  {error}
  <h3>Ledger</h3>
  <table style="width:auto;min-width:340px">{ledger_rows}</table>
  {_ledger_chart(result.ledger)}
  <h3>Invariants</h3>
  <table><tr><th></th><th>invariant</th><th>evidence</th></tr>{verdict_rows}</table>
  <h3>Updates (event log)</h3>
  {_updates_table(result.updates)}
  <h3>Quarantine samples</h3>
  {_samples_table(result.quarantine_samples)}
</section>"""


def render_html(results: Sequence[ScenarioResult], *, seed: int, generated_at: datetime) -> str:
    """The report for people: a summary, then one section per scenario."""
    failed = [result for result in results if not result.passed]
    checks = sum(len(result.verdicts) for result in results)
    failed_checks = sum(not v.passed for result in results for v in result.verdicts)
    status = "All scenarios passed" if not failed else f"{len(failed)} scenario(s) failed"
    navigation = " ".join(
        f'<a href="#{_e(r.name)}">{"✓" if r.passed else "✗"} {_e(r.name)}</a>' for r in results
    )
    sections = "".join(_section(result) for result in results)
    graph = next((result.lineage for result in results if result.lineage), ())
    lineage = (
        "<h2>Lineage</h2><p class='muted'>From the <code>flow_definition</code> events of the "
        "event log (<code>clickstream lineage</code> prints it): landing files on the left, "
        f"each table after what it reads.</p>{lineage_svg(graph)}"
        if graph
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Scenario report: {_e(status)}</title><style>{_CSS}</style></head>
<body><main>
<h1>Scenario report</h1>
<div class="meta">{_e(status)} · seed {seed} · {_e(generated_at.isoformat(timespec="seconds"))}
</div>
<div class="summary">
  <div class="tile"><b>{len(results)}</b>scenarios</div>
  <div class="tile"><b>{len(results) - len(failed)}</b>passed</div>
  <div class="tile"><b>{checks - failed_checks}/{checks}</b>invariants held</div>
  <div class="tile"><b>{sum(r.seconds for r in results):.0f} s</b>run time</div>
</div>
<nav>{navigation}</nav>
{lineage}
{sections}
</main></body></html>
"""
