"""The benchmark report without a JVM: what it says, what it draws, and that it stays narrow."""

from __future__ import annotations

import json
import re
from pathlib import Path

from benchmarks import report
from benchmarks.verdict import Result, Round, compare, history_entry


def _result(key: str, ratios: list[float], layer: str | None = "silver") -> Result:
    rounds = tuple(Round(cpu=r, wall=r / 2, reference_cpu=1.0, reference_wall=0.5) for r in ratios)
    return Result(key, key, "throughput", "plain_spark", 10_000, "events", rounds, layer)


def test_a_regression_is_named_drawn_against_its_band_and_kept_in_the_history(
    tmp_path: Path,
) -> None:
    results = {
        "silver": _result("silver", [6.1, 6.3, 6.2, 6.4, 6.2]),
        "bronze": _result("bronze", [3.0, 3.1, 2.9, 3.0, 3.05], "bronze"),
        "plain_spark": Result(
            "plain_spark", "plain_spark", "throughput", None, 10_000, "events", (Round(1, 0.5),)
        ),
    }
    ratios = [4.0 + i / 100 for i in range(12)]
    baseline = {
        "benchmarks": {
            "silver": {"ratios": {"cpu": ratios}},
            "bronze": {"ratios": {"cpu": [3.0 + i / 100 for i in range(12)]}},
        }
    }
    comparisons = compare(results, baseline, 0.15)
    history = [
        history_entry(comparisons, size="smoke", metric="cpu", commit=c, machine={}, verdict="")
        for c in ("a1", "b2", "c3")
    ]
    paths = report.write_report(
        tmp_path,
        results,
        comparisons,
        size="smoke",
        threshold=0.15,
        metric="cpu",
        baseline_path=tmp_path / "smoke.json",
        baseline_found=True,
        notes=["a note with <markup>"],
        history=history,
    )
    page = paths["html"].read_text(encoding="utf-8")
    assert "FAIL: 1 regression(s) beyond 15%" in page
    assert "silver (layer silver)" in page and "a note with &lt;markup&gt;" in page
    assert {"ratios.png", "history.png"} <= {p.name for p in tmp_path.glob("*.png")}
    assert not (tmp_path / "throughput.png").exists()  # one data size: no single-point curve
    widest = max(len(re.findall(r"<th>", table)) for table in page.split("<table")[1:])
    assert widest <= 7
    # a benchmark's name with its parameters is one long word: its cells may wrap anywhere, or
    # the table outgrows the page (seen in Chromium at 1280 px: the times table scrolled)
    first_cells = re.findall(r"<tr><td([^>]*)>", page)
    assert first_cells and all('class="name"' in cell for cell in first_cells)
    document = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert [c["status"] for c in document["comparisons"] if c["key"] == "silver"] == ["regression"]


def test_a_failed_correctness_check_fails_the_headline_even_without_a_regression(
    tmp_path: Path,
) -> None:
    results = {"silver": _result("silver", [4.0, 4.1])}
    paths = report.write_report(
        tmp_path,
        results,
        compare(results, None, 0.15),
        size="smoke",
        threshold=0.15,
        metric="cpu",
        baseline_path=tmp_path / "none.json",
        baseline_found=False,
        errored=True,
    )
    assert "FAIL: a benchmark failed its correctness checks" in paths["markdown"].read_text()


def test_runs_of_one_commit_on_one_day_get_their_own_label_on_the_history_axis() -> None:
    morning = {"commit": "7d5464e", "date": "2026-12-02T07:38:02+00:00"}
    noon = {"commit": "7d5464e", "date": "2026-12-02T11:27:41+00:00"}
    assert report.run_label(morning) == "7d5464e\n12-02 07:38"
    assert report.run_label(morning) != report.run_label(noon)
