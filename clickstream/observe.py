"""`clickstream history` and `clickstream lineage`: the warehouse's event log, read."""

from __future__ import annotations

import argparse

from clickstream.options import add_warehouse, existing_warehouse
from pipeline.errors import ConfigurationError

__all__ = ["add_commands"]

LINEAGE_LOOKBACK = 20
"""How many of the last updates `lineage` reads first for the newest flow definitions."""


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    history = commands.add_parser(
        "history", help="the last updates of a warehouse: state, duration, rows, expectations"
    )
    history.set_defaults(handler=_history)
    add_warehouse(history)
    history.add_argument("--update", default=None, metavar="ID", help="one update in detail")
    history.add_argument(
        "--limit", type=int, default=10, help="how many of the last updates (default 10)"
    )
    history.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lineage = commands.add_parser(
        "lineage", help="the table graph of the newest update, from its flow definitions"
    )
    lineage.set_defaults(handler=_lineage)
    add_warehouse(lineage)
    lineage.add_argument("--json", action="store_true", help="print the edges as JSON")


def _history(args: argparse.Namespace) -> int:
    import json

    from pipeline.observe.event_log import read_events
    from pipeline.observe.history import render_update, render_updates, updates

    warehouse = existing_warehouse(args.warehouse)
    if args.update is not None:
        chosen = updates(read_events(warehouse, update_id=args.update))
        if not chosen:
            known = ", ".join(u.update_id for u in updates(read_events(warehouse, last_updates=5)))
            raise ConfigurationError(
                f"No update {args.update!r} in {args.warehouse}'s event log; the last ones: "
                f"{known or 'none yet'}. `clickstream history --warehouse {args.warehouse}` "
                "lists them."
            )
        print(json.dumps(chosen[0].to_json(), indent=2) if args.json else render_update(chosen[0]))
        return 0
    shown = updates(read_events(warehouse, last_updates=args.limit if args.limit > 0 else None))
    if args.json:
        print(json.dumps([u.to_json() for u in shown], indent=2))
    else:
        print(render_updates(shown))
    return 0


def _lineage(args: argparse.Namespace) -> int:
    import json

    from pipeline.observe.event_log import read_events
    from pipeline.observe.history import lineage, render_lineage, updates

    warehouse = existing_warehouse(args.warehouse)
    # The newest update that defined flows: among the last few (maintenance defines none).
    graph = lineage(updates(read_events(warehouse, last_updates=LINEAGE_LOOKBACK)))
    graph = graph or lineage(updates(read_events(warehouse)))
    if args.json:
        print(json.dumps([{"input": a, "output": b} for a, b in graph], indent=2))
    else:
        print(render_lineage(graph))
    return 0
