"""`python -m scenarios`: run the scenario catalog; the exit code is the quality gate."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import orjson
from pyspark.sql import SparkSession

from pipeline.config import PiiKey, pii_key_from_environment, spark_settings_from_environment
from pipeline.errors import ClickstreamError
from pipeline.session import build_session
from scenarios.catalog import CATALOG, Scenario, ScenarioContext

DEFAULT_JAR_CACHE = Path(".cache") / "jars"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scenarios", description=__doc__)
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this scenario (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument(
        "--events", type=int, default=5000, help="clean events per scenario (default 5000)"
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=Path("reports") / "scenarios",
        help="where to write report.json and the contract reports (default reports/scenarios)",
    )
    return parser


def _run_scenarios(
    spark: SparkSession, selected: list[Scenario], args: argparse.Namespace, pii_key: PiiKey
) -> tuple[list[dict[str, object]], int, int]:
    """Run each scenario in its own scratch directory; print and collect every verdict."""
    results: list[dict[str, object]] = []
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="scenarios-") as scratch:
        for index, scenario in enumerate(selected, start=1):
            print(f"[{index}/{len(selected)}] {scenario.name}: {scenario.description}", flush=True)
            started = time.perf_counter()
            context = ScenarioContext(
                spark=spark,
                workdir=Path(scratch) / scenario.name,
                seed=args.seed,
                pii_key=pii_key,
                events=args.events,
                report_dir=args.report_dir,
            )
            verdicts = scenario.check(context)
            elapsed = time.perf_counter() - started
            for verdict in verdicts:
                mark = "PASS" if verdict.passed else "FAIL"
                print(f"    {mark}  {verdict.name}\n          {verdict.evidence}", flush=True)
            failed += sum(not verdict.passed for verdict in verdicts)
            passed += sum(verdict.passed for verdict in verdicts)
            results.append(
                {
                    "scenario": scenario.name,
                    "seconds": round(elapsed, 2),
                    "passed": all(verdict.passed for verdict in verdicts),
                    "invariants": [asdict(verdict) for verdict in verdicts],
                }
            )
    return results, passed, failed


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected scenarios and return 0 only when every invariant held."""
    args = _parser().parse_args(argv)
    if args.list:
        for scenario in CATALOG:
            print(f"{scenario.name:<20} {scenario.description}")
        return 0
    unknown = set(args.only) - {scenario.name for scenario in CATALOG}
    if unknown:
        print(f"error: unknown scenario(s) {sorted(unknown)}; see --list", file=sys.stderr)
        return 2
    selected = [s for s in CATALOG if not args.only or s.name in args.only]
    try:
        pii_key = pii_key_from_environment()
        print("starting Spark ...", flush=True)
        spark = build_session(spark_settings_from_environment(DEFAULT_JAR_CACHE))
    except ClickstreamError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        results, passed, failed = _run_scenarios(spark, selected, args, pii_key)
    finally:
        spark.stop()
    args.report_dir.mkdir(parents=True, exist_ok=True)
    report = args.report_dir / "report.json"
    report.write_bytes(
        orjson.dumps({"seed": args.seed, "scenarios": results}, option=orjson.OPT_INDENT_2)
    )
    print(f"{passed} passed, {failed} failed")
    print(f"report: {report}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
