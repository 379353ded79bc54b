"""The `clickstream` command: `produce` generates landing data, `run` processes it;
`history` and `lineage` read the event log; `forget`, `verify-erasure` and `rotate-key` keep
its privacy promises; `optimize` keeps it fast; `dlt run` runs a user's own DLT / Lakeflow
sources. Each group of commands is a module of this
package that adds its parsers; this one composes them and reports errors."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from clickstream import dlt_run, maintain, observe, privacy, produce, run
from pipeline.errors import ClickstreamError

__all__ = ["CANCELED_EXIT", "main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clickstream",
        description="Clickstream medallion pipeline on local Spark + Delta Lake.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for group in (produce, run, observe, privacy, maintain, dlt_run):
        group.add_commands(commands)
    return parser


CANCELED_EXIT = 130
"""The exit status of a command stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells do)."""


def _cancel(signum: int, frame: object) -> None:
    # py4j logs the interrupted call with its stack trace; the process is ending, and says
    # so in one line (`main`).
    logging.disable(logging.ERROR)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `clickstream` console script.

    SIGTERM (what `kill`, systemd and CI runners send to stop a job) stops a command as Ctrl-C
    does: a run records its update `CANCELED`, keeps every batch it committed, and the next run
    resumes from its checkpoints.
    """
    args = _parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _cancel)
    try:
        code: int = args.handler(args)
    except ClickstreamError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        print(
            f"canceled ({stop or 'Ctrl-C'}): the batches committed before it stay; "
            "run again to resume",
            file=sys.stderr,
        )
        return CANCELED_EXIT
    finally:
        signal.signal(signal.SIGTERM, previous)
    return code
