"""The `clickstream` command: `produce` generates landing data, `run` processes it."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import ClickstreamError, ConfigurationError

if TYPE_CHECKING:
    from pipeline.config import PiiKey
    from pipeline.expectations import Expectation

DEFAULT_JAR_CACHE = Path(".cache") / "jars"
DEFAULT_EXPECTATIONS_MODULE = "contracts.rules"
EXPECTATIONS_ATTRIBUTE = "EXPECTATIONS"
NO_EXPECTATIONS = "none"


def _timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no time zone; write it like 2026-11-01T00:00:00+00:00"
        )
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0, e.g. 60")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clickstream",
        description="Clickstream medallion pipeline on local Spark + Delta Lake.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    produce = commands.add_parser(
        "produce", help="generate clickstream events and user CDC changes as JSON lines"
    )
    produce.add_argument("--out", type=Path, required=True, help="landing directory to write")
    produce.add_argument("--events", type=int, required=True, help="number of events")
    produce.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    produce.add_argument(
        "--users", type=int, default=None, help="distinct users (default events/50)"
    )
    produce.add_argument("--files", type=int, default=4, help="event files to write (default 4)")
    produce.add_argument(
        "--start",
        type=_timestamp,
        default=None,
        help="start of the event time window, ISO-8601 with zone (default 2026-11-01T00:00Z)",
    )

    run = commands.add_parser("run", help="process new landing files into Delta tables")
    run.add_argument("--landing", type=Path, required=True, help="landing directory")
    run.add_argument("--warehouse", type=Path, required=True, help="Delta warehouse directory")
    run.add_argument(
        "--pii-key-file",
        type=Path,
        default=None,
        help="file holding the PII key (default: $CLICKSTREAM_PII_KEY, $CLICKSTREAM_PII_KEY_FILE)",
    )
    run.add_argument(
        "--watermark",
        default="1 hour",
        help="how late an event may be and still be deduplicated into silver (default '1 hour')",
    )
    run.add_argument(
        "--expectations",
        default=DEFAULT_EXPECTATIONS_MODULE,
        metavar="MODULE",
        help=(
            f"Python module whose {EXPECTATIONS_ATTRIBUTE} maps table names to rules "
            f"(default {DEFAULT_EXPECTATIONS_MODULE}); '{NO_EXPECTATIONS}' enforces none"
        ),
    )
    run.add_argument(
        "--wait",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help=(
            "when another run is writing the warehouse, wait up to SECONDS for it to finish "
            "(default 0: exit at once with a message naming it)"
        ),
    )
    run.add_argument(
        "--full-refresh",
        action="store_true",
        help=(
            "after processing new files, recompute every gold table from silver and the user "
            "change log (a Lakeflow full refresh); without it gold is maintained incrementally"
        ),
    )
    return parser


def _produce(args: argparse.Namespace) -> None:
    from pipeline import generator

    def show(done: int, total: int) -> None:
        print(f"\r  {done:,} / {total:,} events", end="", file=sys.stderr, flush=True)

    started = time.perf_counter()
    summary = generator.write_landing(
        args.out,
        events=args.events,
        seed=args.seed,
        users=args.users,
        files=args.files,
        start=args.start or generator.DEFAULT_START,
        progress=show,
    )
    elapsed = time.perf_counter() - started
    print(file=sys.stderr)
    print(
        f"wrote {summary.events:,} events in {len(summary.event_files)} files and "
        f"{summary.user_changes:,} user changes to {args.out} in {elapsed:.1f} s"
    )


def load_expectations(module_name: str) -> Mapping[str, Sequence[Expectation]]:
    """The rules per table held by `module_name`'s `EXPECTATIONS`, imported at run time.

    `pipeline` never imports the contracts statically (they are data given to the runner);
    this is how the command line finds them.

    Raises:
        ConfigurationError: the module cannot be imported, or has no such mapping of rules.
    """
    from pipeline.expectations import Expectation

    if module_name == NO_EXPECTATIONS:
        return {}
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"Cannot import the expectations module {module_name!r} ({exc}). Give an importable "
            f"module with --expectations, or --expectations {NO_EXPECTATIONS} to enforce none."
        ) from exc
    rules = getattr(module, EXPECTATIONS_ATTRIBUTE, None)
    if not isinstance(rules, Mapping) or not all(
        isinstance(rule, Expectation) for table_rules in rules.values() for rule in table_rules
    ):
        raise ConfigurationError(
            f"The module {module_name!r} has no {EXPECTATIONS_ATTRIBUTE} mapping table names to "
            "sequences of pipeline.expectations.Expectation."
        )
    return rules


def _up_to_date(args: argparse.Namespace) -> bool:
    """Print the summary and return True when the last run already processed everything.

    Plain Python (file listings and Delta logs): no JVM starts for a run with nothing new.
    """
    from pipeline import preflight, run_state

    if args.full_refresh:
        return False
    landing, warehouse = args.landing.resolve(), args.warehouse.resolve()
    warnings = preflight.check(landing, warehouse)
    if not run_state.is_up_to_date(landing, warehouse):
        return False
    for warning in warnings:
        print(warning, file=sys.stderr)
    try:
        summary = run_state.unchanged_summary(warehouse)
    except ValueError:  # a Delta log without row counts: let Spark count
        return False
    print("nothing new since the last run: no Spark work", file=sys.stderr)
    print(summary.render())
    return True


def _run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    from pipeline.config import parse_delay, pii_key_from_environment
    from pipeline.preflight import check_landing
    from pipeline.writer_lock import writer_lock

    pii_key = pii_key_from_environment(args.pii_key_file)
    parse_delay(args.watermark)
    check_landing(args.landing.resolve())
    # Held before the state is read and before Spark starts: a second writer fails at once.
    with writer_lock(args.warehouse, wait_seconds=args.wait, notify=_say):
        _run_locked(args, pii_key, started)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run_locked(args: argparse.Namespace, pii_key: PiiKey, started: float) -> None:
    if _up_to_date(args):
        print(f"done in {time.perf_counter() - started:.1f} s")
        return
    from pipeline.config import spark_settings_from_environment
    from pipeline.runner import RunOptions, run_pipeline
    from pipeline.session import build_session
    from pipeline.tables import EXPECTATIONS_LOG

    rules = load_expectations(args.expectations)
    print("starting Spark ...", file=sys.stderr, flush=True)
    spark = build_session(spark_settings_from_environment(DEFAULT_JAR_CACHE))
    try:
        summary = run_pipeline(
            spark,
            landing=args.landing,
            warehouse=args.warehouse,
            pii_key=pii_key,
            options=RunOptions(watermark_delay=args.watermark, full_refresh=args.full_refresh),
            progress=_say,
            expectations=rules,
        )
    finally:
        spark.stop()
    print(summary.render())
    if rules and not summary.skipped:
        print(f"expectation metrics: table {EXPECTATIONS_LOG}, run_id {summary.run_id}")
    print(f"done in {time.perf_counter() - started:.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `clickstream` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "produce":
            _produce(args)
        else:
            _run(args)
    except ClickstreamError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
