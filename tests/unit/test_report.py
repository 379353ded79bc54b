"""Scenario reports without a JVM: JUnit counts, JSON verdicts, HTML escaping and sections."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

import orjson

from pipeline.observe import flows
from scenarios import report
from scenarios.invariants import Verdict
from scenarios.report import ScenarioResult, write_reports

WHEN = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _results() -> list[ScenarioResult]:
    return [
        ScenarioResult(
            name="baseline",
            description="Clean data.",
            injected="nothing",
            seconds=3.5,
            verdicts=(Verdict("ledger", True, "5 = 5"), Verdict("unique ids", True, "ok")),
            ledger={"input": 5, "bronze_events": 5},
        ),
        ScenarioResult(
            name="duplicates",
            description="Replays.",
            injected="3 exact replays",
            seconds=4.0,
            verdicts=(Verdict("unique ids", False, "repeated ids: ['<script>x</script>']"),),
            ledger={"input": 8, "silver_events": 6},
            quarantine_samples=({"raw_line": "<b>not json</b>", "reason": "not a JSON object"},),
        ),
        ScenarioResult(
            name="crashed",
            description="Broke.",
            injected="-",
            seconds=0.1,
            verdicts=(),
            error="RuntimeError: boom",
        ),
    ]


def test_reports_agree_on_what_failed(tmp_path: Path) -> None:
    paths = write_reports(_results(), tmp_path, seed=7, generated_at=WHEN)

    suite = ElementTree.parse(paths.junit).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "1")
    failure = suite.find("testcase[@classname='scenarios.duplicates']/failure")
    assert failure is not None and "repeated ids" in (failure.get("message") or "")

    document = orjson.loads(paths.json.read_bytes())
    assert document["passed"] is False
    assert [s["passed"] for s in document["scenarios"]] == [True, False, False]

    page = paths.html.read_text(encoding="utf-8")
    assert page.count("<section") == 3
    assert "2 scenario(s) failed" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "&lt;b&gt;not json&lt;/b&gt;" in page
    assert "<svg" in page  # the ledger chart


def test_all_passing_is_said_in_the_title(tmp_path: Path) -> None:
    paths = write_reports(_results()[:1], tmp_path, seed=1, generated_at=WHEN)
    assert "<title>Scenario report: All scenarios passed</title>" in paths.html.read_text("utf-8")


def test_the_lineage_graph_draws_every_dataset_and_every_edge() -> None:
    graph = flows.edges((f.output, f.inputs) for f in flows.FLOWS)
    svg = report.lineage_svg(graph)
    names = {name for edge in graph for name in edge}
    assert all(f">{name}</text>" in svg for name in names)
    assert svg.count('marker-end="url(#arrow)"') == len(graph)
    assert report.lineage_svg([]) == ""


def test_the_html_report_shows_the_lineage_and_each_scenarios_updates() -> None:
    graph = tuple(flows.edges((f.output, f.inputs) for f in flows.FLOWS))
    result = ScenarioResult(
        name="baseline",
        description="d",
        injected="i",
        seconds=1.0,
        verdicts=(),
        lineage=graph,
        updates=({"update_id": "u-1", "state": "COMPLETED", "seconds": 2.5, "output_rows": 1234},),
    )
    page = report.render_html([result], seed=1, generated_at=datetime(2026, 12, 1, tzinfo=UTC))
    assert "<h2>Lineage</h2>" in page and 'aria-label="lineage"' in page
    assert "u-1" in page and "1,234" in page and "2.5 s" in page


def test_the_svg_charts_escape_names_and_end_at_their_closing_tag() -> None:
    svg = report.lineage_svg([("landing/<a&b>", "gold_<b>")])
    assert "<a&b>" not in svg and ">landing/&lt;a&amp;b&gt;</text>" in svg
    assert svg.startswith("<svg") and svg.endswith("</svg>")  # no newline: the page places it
    page = report.render_html(
        [ScenarioResult("s", "d", "i", 1.0, (), ledger={"<i>": 3})], seed=1, generated_at=WHEN
    )
    assert "<i>" not in page and ">&lt;i&gt;</text>" in page
