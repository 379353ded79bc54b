"""`clickstream optimize`: compaction, clustering and (on demand) VACUUM of a warehouse."""

from __future__ import annotations

import argparse
import time

from clickstream.options import (
    add_spark_options,
    add_wait,
    add_warehouse,
    existing_warehouse,
    say,
    start_spark,
)

__all__ = ["add_commands"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    optimize = commands.add_parser(
        "optimize",
        help="compact and cluster every table and the event log; VACUUM with --vacuum",
    )
    optimize.set_defaults(handler=_optimize)
    add_warehouse(optimize)
    optimize.add_argument(
        "--vacuum",
        action="store_true",
        help=("then delete the files no table version within Delta's retention (7 days) reads"),
    )
    optimize.add_argument(
        "--dry-run",
        action="store_true",
        help="change nothing: show each table's files and bytes (no Spark)",
    )
    add_wait(optimize)
    add_spark_options(optimize)


def _optimize(args: argparse.Namespace) -> int:
    from pipeline.run.optimize import optimize_warehouse, render
    from pipeline.table_names import SPARK_LOG

    started = time.perf_counter()
    warehouse = existing_warehouse(args.warehouse)
    spark = None if args.dry_run else start_spark(args, warehouse / SPARK_LOG)
    try:
        results = optimize_warehouse(
            spark,
            warehouse,
            vacuum=args.vacuum,
            dry_run=args.dry_run,
            progress=say,
            wait_seconds=args.wait,
        )
    finally:
        if spark is not None:
            spark.stop()
    print(render(results, dry_run=args.dry_run))
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0
