"""`clickstream dlt run`: a user's own DLT / Lakeflow Python sources, run as written on local
Spark and Delta (`pipeline.dlt`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from clickstream.options import add_spark_options, add_wait, add_warehouse, say, start_spark
from pipeline.errors import ConfigurationError

__all__ = ["add_commands", "settings"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dlt = commands.add_parser(
        "dlt", help="run your own DLT / Lakeflow Python pipeline locally (`dlt run`)"
    )
    actions = dlt.add_subparsers(dest="dlt_command", required=True)
    run = actions.add_parser(
        "run",
        help="one update of the pipeline: new files in, tables, expectations, AUTO CDC, event log",
        description=(
            "Runs DLT / Lakeflow Python sources (.py, or notebooks exported as source) as "
            "written: each dataset is a Delta table under --warehouse, the event log is "
            "<warehouse>/_event_log (read it with `clickstream history` and `lineage`), and "
            "an update with nothing new starts no Spark."
        ),
    )
    run.set_defaults(handler=_run)
    run.add_argument("sources", nargs="+", type=Path, metavar="SOURCE.py", help="the sources")
    add_warehouse(run)
    run.add_argument(
        "--conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a pipeline setting, read by spark.conf.get and dbutils.widgets (repeatable)",
    )
    run.add_argument(
        "--full-refresh",
        action="store_true",
        help="empty every dataset and its checkpoints first, then read every file again",
    )
    add_wait(run)
    add_spark_options(run)


def settings(pairs: list[str]) -> dict[str, str]:
    """`--conf KEY=VALUE` values as a mapping."""
    found = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise ConfigurationError(
                f"--conf {pair!r}: write it as KEY=VALUE, for example --conf source.path=/data"
            )
        found[key.strip()] = value
    return found


def _run(args: argparse.Namespace) -> int:
    from pipeline.dlt.update import run_update
    from pipeline.observe.event_log import read_events
    from pipeline.observe.history import render_update, updates
    from pipeline.table_names import SPARK_LOG

    warehouse = args.warehouse
    outcome = run_update(
        args.sources,
        warehouse,
        settings(args.conf),
        start_spark=lambda: start_spark(args, warehouse / SPARK_LOG),
        full_refresh=args.full_refresh,
        say=say,
        wait_seconds=args.wait,
    )
    recorded = updates(read_events(warehouse, update_id=outcome.update_id))
    if recorded:
        print(render_update(recorded[0]))
    return 0
