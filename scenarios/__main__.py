"""`python -m scenarios`: run the scenario catalog; the exit code is the quality gate."""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import SparkSession

from pipeline.arguments import positive_int
from pipeline.config import PiiKey, pii_key_from_environment, spark_settings_from_environment
from pipeline.errors import ClickstreamError
from pipeline.observe import event_log, history
from pipeline.run.session import SMALL_INPUT, build_session
from scenarios import invariants
from scenarios.catalog import CATALOG, Scenario, ScenarioContext
from scenarios.fuzz import FuzzCase, fuzz, run_case
from scenarios.report import ScenarioResult, update_summaries, write_reports

DEFAULT_WORKERS = 2
SMALL_SCENARIO_EVENTS = 20_000
"""Scenarios of at most this many events run on the settings of a small run (`SMALL_INPUT`),
their checks too, not only the pipeline's runs: measured on the checks of one scenario's
warehouse (warm), 20-35% less time than the default settings."""


def _fuzz_case(text: str) -> FuzzCase:
    try:
        return FuzzCase.from_json(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _selected(args: argparse.Namespace) -> list[Scenario]:
    """The catalog scenarios asked for, plus the fuzz ones."""
    selected = [s for s in CATALOG if not args.only or s.name in args.only]
    if args.fuzz_case is not None:
        case: FuzzCase = args.fuzz_case
        selected = [Scenario("fuzz_case", f"Fuzz case {case} again.", lambda c: run_case(c, case))]
    if args.fuzz:
        selected.append(
            Scenario(
                "fuzz",
                f"{args.fuzz} random combinations of faults, shrunk to the smallest on failure.",
                lambda context: fuzz(context, examples=args.fuzz),
            )
        )
    return selected


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
        "--fuzz",
        type=int,
        default=0,
        metavar="N",
        help="also run N random fault combinations (Hypothesis draws and shrinks them)",
    )
    parser.add_argument(
        "--fuzz-case",
        type=_fuzz_case,
        default=None,
        metavar="JSON",
        help="run one fuzz case again, as a failing --fuzz run prints it",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=DEFAULT_WORKERS,
        metavar="N",
        help=f"scenarios run at once, on one Spark application (default {DEFAULT_WORKERS})",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        metavar="DIR",
        help=(
            "keep each scenario's landing files and warehouse in DIR/<scenario> "
            "(default: a temporary folder, removed at the end)"
        ),
    )
    parser.add_argument(
        "--master",
        default=None,
        help=(
            "Spark master: local[N] or a standalone cluster's spark://HOST:PORT "
            "(default: $CLICKSTREAM_MASTER, else local[2])"
        ),
    )
    generic = parser.add_argument_group(
        "your own pipeline", "the scenarios on DLT / Lakeflow sources (docs/dlt.md)"
    )
    generic.add_argument(
        "--pipeline",
        nargs="+",
        type=Path,
        default=None,
        metavar="SOURCE.py",
        help="the pipeline's sources, run as `clickstream dlt run` runs them",
    )
    generic.add_argument(
        "--harness",
        type=Path,
        default=None,
        metavar="FILE",
        help="its harness file: inputs, keys, sequence, personal fields, datasets' roles",
    )
    generic.add_argument(
        "--records",
        type=positive_int,
        default=200,
        help="records per input and arrival (default 200)",
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=Path("reports") / "scenarios",
        help="where to write report.html, report.json, junit.xml and the contract reports",
    )
    return parser


def _run_one(scenario: Scenario, context: ScenarioContext) -> ScenarioResult:
    """Run a scenario; an exception fails it (with the error) instead of stopping the suite."""
    started = time.perf_counter()
    try:
        outcome = scenario.run(context)
        verdicts, injected, error = tuple(outcome.verdicts), outcome.injected, None
    except Exception as exc:  # the report must say which scenario broke and how
        verdicts, injected, error = (), "(not generated)", f"{type(exc).__name__}: {exc}"
    ledger: dict[str, int] = {}
    samples: tuple[dict[str, object], ...] = ()
    found: list[history.Update] = []
    if context.warehouse.exists():
        ledger = invariants.table_counts(context.spark, context.warehouse)
        samples = invariants.quarantine_samples(context.spark, context.warehouse)
        found = history.updates(event_log.read_events(context.warehouse))
    return ScenarioResult(
        name=scenario.name,
        description=scenario.description,
        injected=injected,
        seconds=time.perf_counter() - started,
        verdicts=verdicts,
        ledger=ledger,
        quarantine_samples=samples,
        error=error,
        lineage=tuple(history.lineage(found)),
        updates=update_summaries(found),
    )


def _print_result(result: ScenarioResult) -> None:
    for verdict in result.verdicts:
        mark = "PASS" if verdict.passed else "FAIL"
        print(f"    {mark}  {verdict.name}\n          {verdict.evidence}", flush=True)
    if result.error is not None:
        print(f"    ERROR {result.error}", flush=True)
    print(f"    ({result.seconds:.1f} s)", flush=True)


def _run_scenarios(
    spark: SparkSession, selected: list[Scenario], args: argparse.Namespace, pii_key: PiiKey
) -> list[ScenarioResult]:
    """Run each scenario in its own scratch directory, `args.workers` at a time.

    Each scenario gets its own session of the one Spark application (`newSession`: its own
    temporary views and settings, the same JVM): a pipeline run spends most of its time
    waiting on small jobs and commits, so two scenarios at once use two cores better than
    one. Each scenario's verdicts are printed together as it finishes.
    """
    printing = threading.Lock()
    total = len(selected)

    def run(index: int, scenario: Scenario, scratch: Path) -> ScenarioResult:
        context = ScenarioContext(
            spark=spark.newSession(),
            workdir=scratch / scenario.name,
            seed=args.seed,
            pii_key=pii_key,
            events=args.events,
            report_dir=args.report_dir,
        )
        result = _run_one(scenario, context)
        with printing:
            print(f"[{index}/{total}] {scenario.name}: {scenario.description}", flush=True)
            _print_result(result)
        return result

    kept = contextlib.nullcontext(str(args.workdir)) if args.workdir else None
    with (
        kept or tempfile.TemporaryDirectory(prefix="scenarios-") as scratch,
        ThreadPoolExecutor(max_workers=args.workers) as pool,
    ):
        futures = [
            pool.submit(run, index, scenario, Path(scratch))
            for index, scenario in enumerate(selected, start=1)
        ]
        return [future.result() for future in futures]


def _generic(args: argparse.Namespace) -> int:
    """The scenarios on a user's pipeline (`scenarios.generic.run`)."""
    from scenarios.generic.harness_file import read_harness
    from scenarios.generic.run import SCENARIOS, GenericRun, run_scenario

    if args.pipeline is None or args.harness is None:
        print("error: --pipeline and --harness go together", file=sys.stderr)
        return 2
    if args.list:
        for name in SCENARIOS:
            print(name)
        return 0
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        print(f"error: unknown scenario(s) {sorted(unknown)}; see --list", file=sys.stderr)
        return 2
    try:
        harness = read_harness(args.harness)
        missing = [str(p) for p in args.pipeline if not p.is_file()]
        if missing:
            raise ClickstreamError(f"no such source file: {', '.join(missing)}")
        log_file = args.report_dir / "spark.log"
        print(f"starting Spark ... (its log: {log_file})", flush=True)
        spark = build_session(
            spark_settings_from_environment(master=args.master), log_file=log_file
        )
        for key, value in SMALL_INPUT.items():
            spark.conf.set(key, value)
    except ClickstreamError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    run = GenericRun(
        spark, tuple(p.resolve() for p in args.pipeline), harness, args.seed, args.records
    )
    selected = [name for name in SCENARIOS if not args.only or name in args.only]
    results = []
    kept = contextlib.nullcontext(str(args.workdir)) if args.workdir else None
    try:
        with kept or tempfile.TemporaryDirectory(prefix="scenarios-") as scratch:
            for index, name in enumerate(selected, start=1):
                result = run_scenario(run, name, Path(scratch) / name)
                print(f"[{index}/{len(selected)}] {name}: {result.description}", flush=True)
                _print_result(result)
                results.append(result)
    finally:
        spark.stop()
    return _reported(results, args)


def _reported(results: list[ScenarioResult], args: argparse.Namespace) -> int:
    """Write the reports, print the totals; 0 only when every invariant held."""
    paths = write_reports(results, args.report_dir, seed=args.seed, generated_at=datetime.now(UTC))
    checks = [verdict for result in results for verdict in result.verdicts]
    failed = sum(not verdict.passed for verdict in checks)
    errors = sum(result.error is not None for result in results)
    print(f"{len(checks) - failed} passed, {failed + errors} failed")
    print(f"reports: {paths.html}  {paths.json}  {paths.junit}")
    return 1 if failed or errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected scenarios and return 0 only when every invariant held."""
    args = _parser().parse_args(argv)
    if args.pipeline is not None or args.harness is not None:
        return _generic(args)
    if args.list:
        for scenario in CATALOG:
            print(f"{scenario.name:<20} {scenario.description}")
        return 0
    unknown = set(args.only) - {scenario.name for scenario in CATALOG}
    if unknown:
        print(f"error: unknown scenario(s) {sorted(unknown)}; see --list", file=sys.stderr)
        return 2
    selected = _selected(args)
    try:
        pii_key = pii_key_from_environment()
        log_file = args.report_dir / "spark.log"
        print(f"starting Spark ... (its log: {log_file})", flush=True)
        settings = spark_settings_from_environment(master=args.master)
        spark = build_session(settings, log_file=log_file)
        if args.events <= SMALL_SCENARIO_EVENTS:
            for key, value in SMALL_INPUT.items():
                spark.conf.set(key, value)
    except ClickstreamError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        results = _run_scenarios(spark, selected, args, pii_key)
    finally:
        spark.stop()
    return _reported(results, args)


if __name__ == "__main__":
    sys.exit(main())
