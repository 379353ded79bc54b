"""`python -m benchmarks`: run the suites, judge them against the baseline, write the report.

    python -m benchmarks                      # smoke size, judged against baseline/smoke.json
    python -m benchmarks --size full          # 10k, 100k and 1M events (tens of minutes)
    python -m benchmarks --save-baseline      # measure and make this run the baseline

Exit status: 0 when every benchmark passed its correctness checks and no ratio regressed
beyond the threshold; 1 otherwise. A benchmark that looks regressed is measured again, with
its reference, in a second pytest run, and fails only if the fastest rounds of both runs
still show the regression: a neighbour's burst of work rarely hits the same benchmark twice.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks import report
from benchmarks.conftest import SLOWDOWN_LAYERS
from benchmarks.profiles import PROFILES

PROJECT = Path(__file__).resolve().parents[1]
SUITES = ("bench_throughput.py", "bench_contracts.py", "bench_scd2.py", "bench_incremental.py")
"""In this order: the cheap references first, while the machine is as it was at the start."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--size", choices=sorted(PROFILES), default="smoke")
    parser.add_argument(
        "--threshold",
        type=float,
        default=report.DEFAULT_THRESHOLD,
        help="a ratio this much above the baseline's fails the run (default 0.15: 15%%)",
    )
    parser.add_argument(
        "--metric",
        choices=report.METRICS,
        default=report.DEFAULT_METRIC,
        help="judge CPU seconds (default: steadier on a shared machine) or wall seconds",
    )
    parser.add_argument(
        "--save-baseline",
        action="store_true",
        help="write this run's ratios to benchmarks/baseline/<size>.json (to commit)",
    )
    parser.add_argument("--report-dir", type=Path, default=PROJECT / "reports" / "benchmarks")
    parser.add_argument("--baseline-dir", type=Path, default=PROJECT / "benchmarks" / "baseline")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=PROJECT / ".cache" / "benchmarks",
        help="generated inputs kept between runs, and scratch space (give concurrent runs two)",
    )
    parser.add_argument(
        "-k", dest="select", default=None, help="run only the benchmarks pytest -k selects"
    )
    parser.add_argument(
        "--no-confirm",
        action="store_true",
        help="fail at the first measurement of a regression, without measuring it again",
    )
    parser.add_argument(
        "--inject-slowdown",
        choices=SLOWDOWN_LAYERS,
        default=None,
        help="give a layer an extra shuffle, to see the verdict catch it (a self-check)",
    )
    return parser


def _pytest(
    args: argparse.Namespace, raw_json: Path, only: Sequence[str] = ()
) -> tuple[int, dict[str, report.Result]]:
    """Run the suites in a fresh interpreter; returns pytest's exit code and the results."""
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
    if only:
        command.append(f"--bench-only={';'.join(only)}")
    if args.inject_slowdown:
        command.append(f"--inject-slowdown={args.inject_slowdown}")
    raw_json.unlink(missing_ok=True)
    code = subprocess.run(command, cwd=PROJECT, check=False).returncode
    results = report.load_results(raw_json) if raw_json.is_file() else {}
    return code, results


def main(argv: Sequence[str] | None = None) -> int:
    """Run, judge, report; returns the exit status."""
    args = _parser().parse_args(argv)
    started = time.monotonic()
    args.report_dir.mkdir(parents=True, exist_ok=True)
    baseline_path = args.baseline_dir / f"{args.size}.json"
    baseline = report.load_baseline(baseline_path)
    notes: list[str] = []
    if args.inject_slowdown:
        notes.append(f"deliberate slowdown injected: an extra shuffle in {args.inject_slowdown}")

    code, results = _pytest(args, args.report_dir / "pytest-benchmark.json")
    comparisons = report.compare(results, baseline, args.threshold, args.metric)
    suspects = report.regressions(comparisons)
    if suspects and not args.no_confirm and not args.save_baseline:
        print(
            "\nRe-measuring what looks regressed, with its reference:\n  "
            + "\n  ".join(c.describe() for c in suspects),
            flush=True,
        )
        keys = sorted({c.key for c in suspects} | {c.reference for c in suspects if c.reference})
        again_code, again = _pytest(args, args.report_dir / "pytest-benchmark-confirm.json", keys)
        code = code or again_code
        results = report.merge_runs(results, again)
        comparisons = report.compare(results, baseline, args.threshold, args.metric)
        notes.append(
            "re-measured in a second run (the fastest round of both counts): " + ", ".join(keys)
        )
    if not any(result.name == "duckdb" for result in results.values()):
        notes.append("DuckDB reference: not installed (pip install duckdb)")
    if code != 0:
        notes.append(f"pytest exited {code}: a benchmark failed its correctness checks or errored")

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
    )
    for what, figure in report.headline(results):
        print(f"{what:>55}: {figure}")
    failed = report.regressions(comparisons)
    for comparison in failed:
        print(f"REGRESSION {comparison.describe()}")
    if args.save_baseline:
        if code != 0:
            print("Not saving a baseline: the run failed.")
            return 1
        args.baseline_dir.mkdir(parents=True, exist_ok=True)
        document = report.baseline_document(results, args.size)
        baseline_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"Baseline saved: {baseline_path} (commit it)")
    print(f"Report: {paths['html']} and {paths['markdown']} ({time.monotonic() - started:.0f} s)")
    if code != 0:
        return 1
    if failed and not args.save_baseline:
        print(f"FAIL: {len(failed)} benchmark(s) regressed beyond {args.threshold:.0%}")
        return 1
    print("PASS" if baseline is not None else f"PASS (no baseline yet at {baseline_path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
