"""`clickstream run`: parse the options, then `pipeline.run.runner.run_pipeline` does the run
(every step of it, including the decision, before Spark starts, that nothing is new)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from clickstream.options import (
    add_key_file,
    add_spark_options,
    add_storage_options,
    add_wait,
    add_warehouse,
    blob_landing,
    pii_key,
    spark_settings,
)
from pipeline.config import (
    DEFAULT_EXPECTATIONS_MODULE,
    DEFAULT_WATERMARK_DELAY,
    EXPECTATIONS_ATTRIBUTE,
    NO_EXPECTATIONS,
)

__all__ = ["add_commands"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser("run", help="process new landing files into Delta tables")
    run.set_defaults(handler=_run)
    run.add_argument(
        "--landing",
        required=True,
        help=(
            "landing directory, or abfs://CONTAINER/PREFIX with --storage-account (its new "
            "files are copied to <warehouse>/_landing/ first)"
        ),
    )
    add_warehouse(run)
    add_storage_options(run)
    add_spark_options(run)
    add_key_file(run)
    run.add_argument(
        "--watermark",
        default=DEFAULT_WATERMARK_DELAY,
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
    add_wait(run)
    run.add_argument(
        "--full-refresh",
        action="store_true",
        help=(
            "after processing new files, recompute every gold table from silver and the user "
            "change log (a Lakeflow full refresh); without it gold is maintained incrementally"
        ),
    )
    run.add_argument(
        "--verbose",
        action="store_true",
        help="show Spark's own log lines on the terminal (default: in <warehouse>/_logs/spark.log)",
    )


def _run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from pipeline.run.progress import Progress
    from pipeline.run.runner import RunOptions, run_pipeline
    from pipeline.transforms.expectations import load_expectations

    key = pii_key(args.pii_key_file)
    landing = blob_landing(args, args.landing, "--landing") or Path(args.landing)
    display = Progress(sys.stderr)
    try:
        summary = run_pipeline(
            spark_settings(args),
            landing=landing,
            warehouse=args.warehouse,
            pii_key=key,
            options=RunOptions(
                watermark_delay=args.watermark,
                full_refresh=args.full_refresh,
                wait_seconds=args.wait,
                spark_log=not args.verbose,
            ),
            progress=display.line,
            expectations=load_expectations(args.expectations),
            display=display,
        )
    finally:
        display.close()
    print(summary.render())
    if summary.cost is not None:
        print(summary.cost.summary())
    print(
        f"update {summary.update_id}: `clickstream history --warehouse {args.warehouse}` shows it"
    )
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0
