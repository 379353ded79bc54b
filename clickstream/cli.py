"""The `clickstream` command: `produce` generates landing data, `run` processes it;
`history` and `lineage` read the event log; `forget`, `verify-erasure` and `rotate-key` keep
its privacy promises. Each group of commands is a module of this package that adds its
parsers; this one composes them and reports errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from clickstream import observe, privacy, produce, run
from pipeline.errors import ClickstreamError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clickstream",
        description="Clickstream medallion pipeline on local Spark + Delta Lake.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for group in (produce, run, observe, privacy):
        group.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `clickstream` console script."""
    args = _parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except ClickstreamError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return code
