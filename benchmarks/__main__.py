"""`python -m benchmarks`: run the suites, judge them against the baseline, write the report.

    python -m benchmarks                      # smoke size, judged against baseline/smoke.json
    python -m benchmarks --size full          # 10k, 100k and 1M events (tens of minutes)
    python -m benchmarks --save-baseline      # measure 3 runs and make their ratios the baseline
    python -m benchmarks --add-to-baseline    # measure 3 runs and add their ratios to it
    python -m benchmarks --history            # also append this run to benchmarks/history/

Exit status: 0 when every benchmark passed its correctness checks and none regressed; 1
otherwise. Each judged benchmark runs in rounds paired with its reference, and regresses
only when its median ratio is beyond the threshold and a Mann-Whitney test against the
baseline's ratios is significant (`benchmarks.verdict`). A benchmark that looks slower after
its rounds gets as many again, at once, in the same session, up to three batches in all
(`benchmarks.harness`), and all of its rounds are judged together.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.harness import slowdown_option
from benchmarks.profiles import PROFILES, SLOWDOWN_LAYERS
from benchmarks.verdict import (
    DEFAULT_METRIC,
    DEFAULT_THRESHOLD,
    METRICS,
    Result,
    baseline_document,
    compare,
    history_entry,
    load_baseline,
    load_history,
    load_results,
    pooled_baseline,
    regressions,
)
from pipeline.config import with_java_options

if TYPE_CHECKING:
    from benchmarks.verdict import Comparison

PROJECT = Path(__file__).resolve().parents[1]
SUITES = ("bench_throughput.py", "bench_contracts.py", "bench_scd2.py", "bench_incremental.py")
"""In this order: the cheap references first, while the machine is as it was at the start."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0]
    )
    _add_judging_arguments(parser)
    _add_baseline_arguments(parser)
    _add_location_arguments(parser)
    _add_run_arguments(parser)
    return parser


def _add_judging_arguments(parser: argparse.ArgumentParser) -> None:
    """`--size`, `--threshold`, `--metric`: what is measured and how it is judged."""
    parser.add_argument("--size", choices=sorted(PROFILES), default="smoke")
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=(
            "a median ratio this much above the baseline's, if significant, fails the run "
            "(default 0.15: 15%%)"
        ),
    )
    parser.add_argument(
        "--metric",
        choices=METRICS,
        default=DEFAULT_METRIC,
        help="judge CPU seconds (default: steadier on a shared machine) or wall seconds",
    )


def _add_baseline_arguments(parser: argparse.ArgumentParser) -> None:
    """`--save-baseline`, `--add-to-baseline`, `--baseline-runs`: measuring a baseline instead
    of judging against one."""
    parser.add_argument(
        "--save-baseline",
        action="store_true",
        help=(
            "measure --baseline-runs runs and write their ratios to "
            "benchmarks/baseline/<size>.json (to commit)"
        ),
    )
    parser.add_argument(
        "--add-to-baseline",
        action="store_true",
        help=(
            "measure --baseline-runs runs and add their ratios to the baseline's (runs from "
            "several sessions put the spread between sessions in it)"
        ),
    )
    parser.add_argument(
        "--baseline-runs",
        type=int,
        default=3,
        metavar="N",
        help="runs pooled into a saved baseline (default 3: the spread between runs counts)",
    )


def _add_location_arguments(parser: argparse.ArgumentParser) -> None:
    """`--history`, `--report-dir`, `--baseline-dir`, `--cache-dir`: the directories a run
    reads and writes."""
    parser.add_argument(
        "--history",
        type=Path,
        nargs="?",
        const=PROJECT / "benchmarks" / "history",
        default=None,
        metavar="DIR",
        help=(
            "append this run (commit, date, machine, ratios) to DIR (default "
            "benchmarks/history) and draw each ratio over the runs there"
        ),
    )
    parser.add_argument("--report-dir", type=Path, default=PROJECT / "reports" / "benchmarks")
    parser.add_argument("--baseline-dir", type=Path, default=PROJECT / "benchmarks" / "baseline")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=PROJECT / ".cache" / "benchmarks",
        help="generated inputs kept between runs, and scratch space (give concurrent runs two)",
    )


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """`-k`, `--no-confirm`, `--inject-slowdown`: which benchmarks run, and how."""
    parser.add_argument(
        "-k", dest="select", default=None, help="run only the benchmarks pytest -k selects"
    )
    parser.add_argument(
        "--no-confirm",
        action="store_true",
        help="judge the first rounds only: what looks slower is not measured again at once",
    )
    parser.add_argument(
        "--inject-slowdown",
        type=slowdown_option,
        default=None,
        metavar="LAYER[:STRENGTH]",
        help=(
            f"make a layer's benchmarks ({', '.join(SLOWDOWN_LAYERS)}) cost STRENGTH more, "
            "0.5 unless given: a self-check of the verdict"
        ),
    )


def _pytest(
    args: argparse.Namespace, raw_json: Path, baseline_path: Path | None = None
) -> tuple[int, dict[str, Result]]:
    """Run the suites in a fresh interpreter; returns pytest's exit code and the results.

    With `baseline_path`, what looks slower than that baseline is measured again at once.
    """
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(PROJECT / "benchmarks" / "pytest.ini"),
        *[str(PROJECT / "benchmarks" / suite) for suite in SUITES],
        f"--size={args.size}",
        f"--benchmark-json={raw_json}",
        f"--cache-dir={args.cache_dir}",
    ]
    if args.select:
        command += ["-k", args.select]
    if baseline_path is not None:
        command += [
            f"--judge-against={baseline_path}",
            f"--threshold={args.threshold}",
            f"--metric={args.metric}",
        ]
    if args.inject_slowdown:
        command.append(f"--inject-slowdown={args.inject_slowdown}")
    raw_json.unlink(missing_ok=True)
    environment = with_java_options(PROFILES[args.size].jvm_options)
    code = subprocess.run(command, cwd=PROJECT, env=environment, check=False).returncode
    results = load_results(raw_json) if raw_json.is_file() else {}
    return code, results


def _commit() -> str:
    completed = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT, capture_output=True, text=True
    )
    return completed.stdout.strip() or "unknown"


def _machine() -> dict[str, Any]:
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _save_baseline(args: argparse.Namespace, baseline_path: Path) -> int:
    """Measure `--baseline-runs` runs and write their pooled ratios as the baseline, or with
    `--add-to-baseline` add them to the baseline's."""
    existing = load_baseline(baseline_path)
    if args.add_to_baseline and existing is None:
        print(
            f"No baseline at {baseline_path} to add to: save one first with --save-baseline.",
            file=sys.stderr,
        )
        return 2
    runs = []
    for number in range(1, args.baseline_runs + 1):
        print(f"\nBaseline run {number} of {args.baseline_runs}", flush=True)
        raw = args.report_dir / f"pytest-benchmark-baseline-{number}.json"
        code, results = _pytest(args, raw)
        if code != 0:
            print(f"Not saving a baseline: run {number} failed (pytest exited {code}).")
            return 1
        runs.append(results)
    args.baseline_dir.mkdir(parents=True, exist_ok=True)
    document = baseline_document(runs, args.size, _commit())
    if args.add_to_baseline and existing is not None:
        document = pooled_baseline(existing, document)
    baseline_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    sessions = len(document["sessions"])
    print(
        f"Baseline saved: {baseline_path}, {document['runs']} runs from {sessions} session(s) "
        "pooled (commit it)"
    )
    return 0


def _judged_run(
    args: argparse.Namespace, baseline_path: Path, baseline: dict[str, Any] | None
) -> tuple[int, dict[str, Result], list[Comparison], list[str]]:
    """One run, judged against the baseline; the results, their verdicts and notes."""
    judging = baseline_path if baseline is not None and not args.no_confirm else None
    code, results = _pytest(args, args.report_dir / "pytest-benchmark.json", judging)
    comparisons = compare(results, baseline, args.threshold, args.metric)
    again = sorted(key for key, result in results.items() if result.details.get("measured_again"))
    notes = ["measured again at once, all rounds judged: " + ", ".join(again)] if again else []
    return code, results, comparisons, notes


def _run_notes(args: argparse.Namespace, code: int, notes: list[str]) -> list[str]:
    """The report's notes on a run: a deliberate slowdown first, then `notes`, a DuckDB
    reference that is not installed and a pytest that failed."""
    slowdown = f"deliberate slowdown injected: {args.inject_slowdown} (a self-check)"
    first = [slowdown] if args.inject_slowdown else []
    last: list[str] = []
    if importlib.util.find_spec("duckdb") is None:
        last.append("DuckDB reference: not installed (pip install duckdb)")
    if code != 0:
        last.append(f"pytest exited {code}: a benchmark failed its correctness checks or errored")
    return [*first, *notes, *last]


def _append_to_history(
    args: argparse.Namespace, comparisons: Sequence[Comparison], verdict: str
) -> tuple[list[dict[str, Any]], str]:
    """Write this run into `--history`; returns the runs there, this one included, and a note
    saying where it went."""
    entry = history_entry(
        comparisons,
        size=args.size,
        metric=args.metric,
        commit=_commit(),
        machine=_machine(),
        verdict=verdict,
    )
    args.history.mkdir(parents=True, exist_ok=True)
    name = f"{entry['date'].replace(':', '')}-{entry['commit']}.json"
    (args.history / name).write_text(json.dumps(entry, indent=2) + "\n", encoding="utf-8")
    history = load_history(args.history, args.size)
    return history, f"appended to the history: {args.history / name} ({len(history)} runs)"


def _print_summary(
    headline: Sequence[tuple[str, str]],
    notes: Sequence[str],
    comparisons: Sequence[Comparison],
    failed: Sequence[Comparison],
) -> None:
    """The headline figures, the notes and every judged benchmark's comparison."""
    for what, figure in headline:
        print(f"{what:>55}: {figure}")
    for note in notes:
        print(note)
    for comparison in comparisons:
        if comparison.ratios:
            print(("REGRESSION " if comparison in failed else "  ") + comparison.describe())


def _exit_status(
    code: int, failed: Sequence[Comparison], baseline_path: Path, baseline_found: bool
) -> int:
    """1 when pytest failed or a benchmark regressed, else 0; prints the verdict of a run
    whose benchmarks all passed their correctness checks."""
    if code != 0:
        return 1
    if failed:
        layers = sorted({c.layer or c.key for c in failed})
        print(f"FAIL: {len(failed)} benchmark(s) regressed, in: {', '.join(layers)}")
        return 1
    print("PASS" if baseline_found else f"PASS (no baseline yet at {baseline_path})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run, judge, report; returns the exit status."""
    args = _parser().parse_args(argv)
    started = time.monotonic()
    args.report_dir.mkdir(parents=True, exist_ok=True)
    baseline_path = args.baseline_dir / f"{args.size}.json"
    if args.save_baseline or args.add_to_baseline:
        return _save_baseline(args, baseline_path)
    baseline = load_baseline(baseline_path)
    code, results, comparisons, notes = _judged_run(args, baseline_path, baseline)
    notes = _run_notes(args, code, notes)
    failed = regressions(comparisons)
    verdict = f"FAIL: {len(failed)} regression(s)" if failed else "PASS"
    history: list[dict[str, Any]] = []
    if args.history is not None:
        history, note = _append_to_history(args, comparisons, verdict)
        notes.append(note)

    from benchmarks import report  # matplotlib loads only when a report is drawn

    paths = report.write_report(
        args.report_dir,
        results,
        comparisons,
        size=args.size,
        threshold=args.threshold,
        metric=args.metric,
        baseline_path=baseline_path,
        baseline_found=baseline is not None,
        notes=notes,
        history=history,
        errored=code != 0,
    )
    _print_summary(report.headline(results), notes, comparisons, failed)
    print(f"Report: {paths['html']} and {paths['markdown']} ({time.monotonic() - started:.0f} s)")
    return _exit_status(code, failed, baseline_path, baseline is not None)


if __name__ == "__main__":
    sys.exit(main())
