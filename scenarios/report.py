"""Scenario reports: HTML for people, JSON for machines, JUnit XML for CI.

Everything here is pure Python over `ScenarioResult` values, so it is tested without a JVM.
The HTML page is self-contained (inline CSS and SVG, no scripts), so it opens from a CI
artifact as is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from xml.etree import ElementTree

import orjson
from markupsafe import Markup

from contracts.html import render
from pipeline.observe import history
from pipeline.observe.flows import layers
from scenarios.invariants import Verdict

__all__ = [
    "ReportPaths",
    "ScenarioResult",
    "lineage_svg",
    "render_html",
    "render_json",
    "render_junit",
    "update_summaries",
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


def update_summaries(updates: Sequence[history.Update]) -> tuple[dict[str, object], ...]:
    """A scenario's updates as its report shows them: id, state, seconds, rows written."""
    return tuple(
        {
            "update_id": u.update_id,
            "state": u.state,
            "seconds": u.seconds,
            "output_rows": u.output_rows,
        }
        for u in updates
    )


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


def _ledger_chart(ledger: Mapping[str, int]) -> str:
    """A horizontal bar chart of the ledger counts, as inline SVG (`ledger.svg.j2`)."""
    if not ledger:
        return ""
    largest = max(max(ledger.values()), 1)
    bar_width = 520
    bars = [
        (name, count, 0 if count <= 0 else max(2, round(bar_width * count / largest)))
        for name, count in ledger.items()
    ]
    return render(
        "scenarios", "ledger.svg.j2", bars=bars, label_width=190, bar_width=bar_width, row=24
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
        arrows.append(_curve(points))
    nodes = [
        (name, left(column), middle(layered[column].index(name)) - NODE_HEIGHT // 2)
        for name, column in depth.items()
    ]
    return render(
        "scenarios",
        "lineage.svg.j2",
        width=width,
        height=height,
        arrows=arrows,
        nodes=nodes,
        node_width=NODE_WIDTH,
        node_height=NODE_HEIGHT,
    )


def render_html(results: Sequence[ScenarioResult], *, seed: int, generated_at: datetime) -> str:
    """The report for people: a summary, the lineage, then one section per scenario."""
    failed = [result for result in results if not result.passed]
    checks = sum(len(result.verdicts) for result in results)
    graph = next((result.lineage for result in results if result.lineage), ())
    return render(
        "scenarios",
        "scenarios.html.j2",
        results=results,
        status="All scenarios passed" if not failed else f"{len(failed)} scenario(s) failed",
        seed=seed,
        generated_at=generated_at.isoformat(timespec="seconds"),
        passed=len(results) - len(failed),
        checks=checks,
        held=checks - sum(not v.passed for result in results for v in result.verdicts),
        seconds=sum(result.seconds for result in results),
        lineage=Markup(lineage_svg(graph)),
        charts=[Markup(_ledger_chart(result.ledger)) for result in results],
    )
