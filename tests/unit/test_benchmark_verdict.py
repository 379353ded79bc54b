"""The benchmark verdict without a JVM: the rank test, the decision, the baseline, the history."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
from scipy import stats  # type: ignore[import-untyped]

from benchmarks.harness import DEFAULT_SLOWDOWN, Slowdown, parse_slowdown
from benchmarks.profiles import PROFILES, STEADY_JIT
from benchmarks.verdict import (
    ALPHA,
    BATCHES,
    Judge,
    Result,
    Round,
    baseline_document,
    compare,
    history_entry,
    load_history,
    mann_whitney_greater,
    pooled_baseline,
    regressions,
    smallest_p,
)
from pipeline.config import with_java_options


@pytest.mark.parametrize("seed", range(6))
def test_the_rank_test_is_exact_without_ties_and_normal_with_them(seed: int) -> None:
    rng = random.Random(seed)
    sample = [rng.gauss(1.1, 0.1) for _ in range(rng.randint(2, 5))]
    baseline = [rng.gauss(1.0, 0.1) for _ in range(rng.randint(3, 8))]
    # Exact: the share of all ways to place the sample among the ranks whose rank sum is at
    # least the observed one (enumerated here).
    ranked = sorted(sample + baseline)
    observed = sum(ranked.index(value) + 1 for value in sample)
    sums = [sum(c) for c in itertools.combinations(range(1, len(ranked) + 1), len(sample))]
    exact = sum(total >= observed for total in sums) / len(sums)
    assert mann_whitney_greater(sample, baseline) == pytest.approx(exact, rel=1e-9)
    tied = [round(value, 1) for value in sample], [round(value, 1) for value in baseline]
    normal = stats.mannwhitneyu(*tied, alternative="greater", method="asymptotic").pvalue
    assert mann_whitney_greater(*tied) == pytest.approx(normal, rel=1e-9)


def test_the_smallest_p_is_one_over_the_arrangements() -> None:
    assert smallest_p(4, 12) == pytest.approx(1 / 1820)
    assert mann_whitney_greater([20, 21, 22, 23], list(range(12))) == pytest.approx(1 / 1820)
    assert smallest_p(0, 5) == 1.0


def _result(key: str, ratios: list[float], *, layer: str = "silver") -> Result:
    rounds = tuple(
        Round(cpu=ratio, wall=ratio, reference_cpu=1.0, reference_wall=1.0) for ratio in ratios
    )
    return Result(key, key, "throughput", "plain_spark", 10, "events", rounds, layer)


def _baseline(key: str, ratios: list[float]) -> dict[str, object]:
    return {"benchmarks": {key: {"ratios": {"cpu": ratios, "wall": ratios}}}}


def _noisy(rng: random.Random, centre: float, count: int, spread: float = 0.03) -> list[float]:
    return [centre * (1 + rng.gauss(0, spread)) for _ in range(count)]


def test_an_unchanged_benchmark_passes_and_a_slower_one_fails_naming_its_layer() -> None:
    rng = random.Random(1)
    baseline = _baseline("silver", _noisy(rng, 4.0, 15))
    [same] = compare({"silver": _result("silver", _noisy(rng, 4.0, 5))}, baseline, 0.15)
    assert same.status == "ok" and same.tested
    [slower] = compare({"silver": _result("silver", _noisy(rng, 5.2, 5))}, baseline, 0.15)
    assert slower.status == "regression" and slower.p is not None and slower.p < ALPHA
    assert "(layer silver)" in slower.describe() and "+3" in slower.describe()
    [faster] = compare({"silver": _result("silver", _noisy(rng, 3.0, 5))}, baseline, 0.15)
    assert faster.status == "faster"


def test_a_shift_beyond_the_threshold_inside_the_baselines_spread_is_not_significant() -> None:
    baseline = _baseline("gold", [1.0, 1.3, 1.6, 0.7, 1.1, 1.5, 0.8, 1.2, 0.9, 1.4, 1.0, 1.25])
    [judged] = compare({"gold": _result("gold", [1.5, 0.9, 1.6, 1.2])}, baseline, 0.15)
    assert judged.change is not None and judged.change > 0.15
    assert judged.status == "not significant" and not regressions([judged])


def test_a_significant_shift_below_the_threshold_is_ok() -> None:
    baseline = _baseline("bronze", [1.0 + i / 1000 for i in range(15)])
    [judged] = compare(
        {"bronze": _result("bronze", [1.10 + i / 1000 for i in range(5)])}, baseline, 0.15
    )
    assert judged.p is not None and judged.p < 0.001 and judged.status == "ok"


def test_what_looks_slower_is_what_more_rounds_could_still_decide() -> None:
    """A regression or an unproven move up gets more rounds; within the threshold, or faster,
    it does not; and more rounds of the same shift turn 'not significant' into a regression."""
    rng = random.Random(5)
    judge = Judge(_baseline("silver", _noisy(rng, 4.0, 15, 0.08)), alpha=ALPHA / 10)
    assert not judge.looks_slower(_result("silver", [4.0, 4.1, 3.9, 4.2, 3.8]))
    assert not judge.looks_slower(_result("silver", [3.0, 3.1, 2.9, 3.2, 2.8]))
    few = _result("silver", [4.9, 4.1, 5.6, 4.3, 5.0])
    [first] = compare({"silver": few}, judge.baseline, judge.threshold, alpha=judge.alpha)
    assert first.status == "not significant" and judge.looks_slower(few)
    more = _result("silver", [4.9, 4.1, 5.6, 4.3, 5.0, 5.1, 5.3, 4.9, 5.2, 5.5])
    [both] = compare({"silver": more}, judge.baseline, judge.threshold, alpha=judge.alpha)
    assert both.status == "regression" and judge.looks_slower(more)
    assert judge.more_rounds(few, batches=1) and judge.more_rounds(few, batches=BATCHES - 1)
    assert not judge.more_rounds(few, batches=BATCHES)
    assert not judge.more_rounds(_result("silver", [4.0, 4.1, 3.9, 4.2, 3.8]), batches=1)


def test_a_regression_is_confirmed_by_one_more_batch_and_then_stands() -> None:
    """A first batch's regression gets a second batch (a noisy start fails no run); a
    regression over two batches is the verdict, with no third batch to re-judge it."""
    rng = random.Random(5)
    judge = Judge(_baseline("silver", _noisy(rng, 4.0, 15, 0.08)), alpha=ALPHA / 10)
    first = _result("silver", [5.6, 5.8, 5.5, 5.9, 5.7])
    [judged] = compare({"silver": first}, judge.baseline, judge.threshold, alpha=judge.alpha)
    assert judged.status == "regression" and judge.more_rounds(first, batches=1)
    both = _result("silver", [5.6, 5.8, 5.5, 5.9, 5.7, 5.4, 5.6, 5.8, 5.5, 5.7])
    assert not judge.more_rounds(both, batches=2)
    unproven = _result("silver", [4.9, 3.9, 5.6, 4.0, 5.0, 4.1, 4.8, 3.8, 5.1, 4.6])
    [judged] = compare({"silver": unproven}, judge.baseline, judge.threshold, alpha=judge.alpha)
    assert judged.status == "not significant" and judge.more_rounds(unproven, batches=2)


def test_too_few_rounds_for_the_test_are_judged_by_the_threshold_and_say_so() -> None:
    baseline = _baseline("end_to_end", [2.0, 2.1])
    [judged] = compare({"end_to_end": _result("end_to_end", [2.6, 2.7])}, baseline, 0.15)
    assert not judged.tested and judged.status == "regression"
    assert "threshold only" in judged.describe()


def test_the_significance_level_is_shared_by_the_benchmarks_judged() -> None:
    """With k benchmarks each is tested at ALPHA / k: a p that passes alone fails among many."""
    rng = random.Random(3)
    ratios = _noisy(rng, 1.0, 12, 0.01)
    shifted = [1.2, 1.21, 1.22, 1.23, 1.0]
    assert 0.01 / 20 < mann_whitney_greater(shifted, ratios) < 0.01
    alone = compare({"a": _result("a", shifted)}, _baseline("a", ratios), 0.15)
    many_results = {f"b{i}": _result(f"b{i}", _noisy(rng, 1.0, 4, 0.01)) for i in range(19)}
    many_baseline = {"benchmarks": {f"b{i}": {"ratios": {"cpu": ratios}} for i in range(19)}}
    many_baseline["benchmarks"]["a"] = {"ratios": {"cpu": ratios}}
    among = compare({"a": _result("a", shifted), **many_results}, many_baseline, 0.15)
    assert alone[0].status == "regression"
    assert next(c for c in among if c.key == "a").status == "not significant"


def test_references_and_correctness_benchmarks_are_not_judged() -> None:
    reference = Result(
        "plain_spark", "plain_spark", "throughput", None, 10, "events", (Round(1, 1),)
    )
    checks = Result(
        "scd2_correctness", "scd2_correctness", "scd2", None, 10, "changes", (Round(1, 1),)
    )
    statuses = {
        c.key: c.status
        for c in compare(
            {
                "plain_spark": reference,
                "scd2_correctness": checks,
                "silver": _result("silver", [1.0]),
            },
            None,
            0.15,
        )
    }
    assert statuses == {
        "plain_spark": "reference",
        "scd2_correctness": "not judged",
        "silver": "new",
    }


def test_a_saved_baseline_pools_every_round_of_every_run() -> None:
    runs = [
        {"silver": _result("silver", [4.0, 4.1])},
        {"silver": _result("silver", [4.2, 4.3, 4.4])},
    ]
    document = baseline_document(runs, "smoke", "abc1234")
    assert document["runs"] == 2 and document["commit"] == "abc1234"
    assert document["benchmarks"]["silver"]["ratios"]["cpu"] == [4.0, 4.1, 4.2, 4.3, 4.4]
    assert document["benchmarks"]["silver"]["layer"] == "silver"


def test_runs_added_to_a_baseline_pool_with_its_ratios_and_sessions() -> None:
    morning = baseline_document([{"silver": _result("silver", [4.0, 4.1])}], "smoke", "aaa1111")
    evening = baseline_document(
        [{"silver": _result("silver", [5.0]), "gold": _result("gold", [9.0])}], "smoke", "bbb2222"
    )
    pooled = pooled_baseline(morning, evening)
    assert pooled["benchmarks"]["silver"]["ratios"]["cpu"] == [4.0, 4.1, 5.0]
    assert pooled["benchmarks"]["gold"]["ratios"]["cpu"] == [9.0]
    assert pooled["runs"] == 2 and pooled["commit"] == "bbb2222"
    assert [session["commit"] for session in pooled["sessions"]] == ["aaa1111", "bbb2222"]
    older = {key: value for key, value in morning.items() if key != "sessions"}
    assert pooled_baseline(older, evening)["sessions"][0]["commit"] == "aaa1111"
    with pytest.raises(ValueError, match="cannot pool a full baseline into a smoke one"):
        pooled_baseline(morning, {**evening, "size": "full"})


def test_the_history_reads_back_one_size_in_date_order(tmp_path: Path) -> None:
    comparisons = compare({"silver": _result("silver", [4.0, 4.1, 4.2])}, None, 0.15)
    for date, size in (("2026-12-02", "smoke"), ("2026-12-01", "smoke"), ("2026-12-03", "full")):
        entry = history_entry(
            comparisons, size=size, metric="cpu", commit=date[-2:], machine={}, verdict="PASS"
        )
        entry["date"] = date
        (tmp_path / f"{date}.json").write_text(json.dumps(entry))
    history = load_history(tmp_path, "smoke")
    assert [entry["commit"] for entry in history] == ["01", "02"]
    assert history[0]["benchmarks"]["silver"]["ratio"] == pytest.approx(4.1)


def test_an_injected_slowdown_names_a_layer_and_a_strength() -> None:
    assert parse_slowdown("silver") == Slowdown("silver", DEFAULT_SLOWDOWN)
    assert parse_slowdown("gold:0.25") == Slowdown("gold", 0.25)
    for text in ("silverr", "silver:-1", "silver:fast", "silver:0"):
        with pytest.raises(ValueError, match="LAYER:STRENGTH"):
            parse_slowdown(text)


def test_a_run_of_a_few_benchmarks_is_tested_as_strictly_as_the_whole_suite() -> None:
    rng = random.Random(5)
    ratios = _noisy(rng, 1.0, 12, 0.01)
    shifted = [1.2, 1.21, 1.22, 1.23, 1.0]  # p about 0.007: enough alone, not among 20
    suite = {"benchmarks": {f"b{i}": {"ratios": {"cpu": ratios}} for i in range(20)}}
    [judged] = compare({"b0": _result("b0", shifted)}, suite, 0.15)
    assert judged.status == "not significant"


def test_the_smoke_size_steadies_every_jvm_and_keeps_the_users_java_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    smoke, full = PROFILES["smoke"].jvm_options, PROFILES["full"].jvm_options
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-Xss4m")
    assert with_java_options(smoke)["JAVA_TOOL_OPTIONS"] == f"-Xss4m {STEADY_JIT}"
    assert with_java_options(full)["JAVA_TOOL_OPTIONS"] == "-Xss4m"
    monkeypatch.delenv("JAVA_TOOL_OPTIONS")
    assert with_java_options(smoke)["JAVA_TOOL_OPTIONS"] == STEADY_JIT
    assert "JAVA_TOOL_OPTIONS" not in with_java_options(full)
