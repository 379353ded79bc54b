"""Argument types the command lines share (`argparse`'s `type=`): each turns a string into a
value or says, in the usage error, what to write instead."""

from __future__ import annotations

import argparse
from datetime import datetime

__all__ = ["positive_int", "seconds", "timestamp"]


def positive_int(text: str) -> int:
    """A whole number of 1 or more, such as a count of events or workers."""
    value = int(text) if text.strip().isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of 1 or more")
    return value


def seconds(text: str) -> float:
    """A number of seconds, 0 or more, such as how long to wait."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0, e.g. 60")
    return value


def timestamp(text: str) -> datetime:
    """An ISO-8601 instant with its time zone."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no time zone; write it like 2026-11-01T00:00:00+00:00"
        )
    return value
