"""How far a run has got, for the person watching it: a status line on a terminal, plain lines
elsewhere.

On a terminal (the stream's `isatty()`) one status line at the bottom is rewritten in place
(a carriage return and ANSI "erase line"), showing each running stage's micro-batches, files,
rows and rate; messages and finished stages are printed above it. Anywhere else (a pipe, a CI
log) every stage start and every micro-batch is one plain line without control characters:

    silver: started
    silver: batch 3, 12/16 files, 40,000 rows, 21,000 rows/s

One `Progress` serves stages that run at once in different threads.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TextIO

__all__ = ["ERASE_LINE", "STAGE_SEPARATOR", "Progress", "StageCount", "describe", "fit"]

ERASE_LINE = "\r\x1b[2K"
"""Back to the start of the line, then erase it (ANSI "erase in line", whole line)."""

STAGE_SEPARATOR = " | "
"""Between the stages the status line shows when more than one runs."""


@dataclass(frozen=True)
class StageCount:
    """What a stage has done so far.

    Attributes:
        name: the stage, as the runner names it ("bronze", "silver", ...).
        started: clock reading when the stage started.
        updated: clock reading at its latest micro-batch (`started` before the first).
        batches: micro-batches finished.
        files_done: landing files read so far, when the stage reads files.
        files_total: landing files it will read in all, when known.
        rows: rows of all its micro-batches.
    """

    name: str
    started: float
    updated: float
    batches: int = 0
    files_done: int | None = None
    files_total: int | None = None
    rows: int = 0

    @property
    def rate(self) -> float | None:
        """Rows per second from the stage's start to its latest micro-batch; None before."""
        elapsed = self.updated - self.started
        return self.rows / elapsed if elapsed > 0 else None


def _files(done: int | None, total: int | None) -> str | None:
    if done is None and total is None:
        return None
    if total is None:
        return f"{done:,} files"
    return f"{'?' if done is None else f'{done:,}'}/{total:,} files"


def describe(count: StageCount, *, finished: bool = False) -> str:
    """One line about a stage.

    A running stage reads "silver: started" before its first micro-batch, then
    "silver: batch 3, 12/16 files, 40,000 rows, 21,000 rows/s"; a finished one
    "silver: done, 3 batches, 16/16 files, 120,000 rows, 21,000 rows/s", or "silver: done"
    when it had no micro-batch. Files are left out when the stage reports none, the rate
    when no time has passed.
    """
    if count.batches == 0:
        return f"{count.name}: {'done' if finished else 'started'}"
    if finished:
        parts = ["done", f"{count.batches:,} batch{'' if count.batches == 1 else 'es'}"]
    else:
        parts = [f"batch {count.batches:,}"]
    files = _files(count.files_done, count.files_total)
    if files is not None:
        parts.append(files)
    parts.append(f"{count.rows:,} row{'' if count.rows == 1 else 's'}")
    if count.rate is not None:
        parts.append(f"{count.rate:,.0f} rows/s")
    return f"{count.name}: {', '.join(parts)}"


def fit(text: str, columns: int) -> str:
    """Cut `text` to fewer than `columns` characters, so that a terminal never wraps it.

    A wrapped status line could not be erased: "erase line" clears only the last screen line.
    """
    return text if len(text) < columns else text[: max(columns - 1, 0)]


class Progress:
    """Report a run's stages and micro-batches on a stream, safely from several threads.

    A stage runs from `stage` (or its first `batch`) until `finish` or `close`; the status
    line shows every running stage, in the order they started.

    Args:
        stream: where to write; `sys.stderr` when None. Its `isatty()` chooses between the
            status line and plain lines.
        clock: seconds from any fixed origin, for the rates; `time.monotonic` by default.
        columns: the terminal's width, for the status line; asked of the terminal when None.

    Example:
        >>> import io
        >>> out, ticks = io.StringIO(), iter([0.0, 2.0])
        >>> progress = Progress(out, clock=lambda: next(ticks))
        >>> progress.stage("silver")
        >>> progress.batch("silver", 12, 16, 42_000)
        >>> print(out.getvalue(), end="")
        silver: started
        silver: batch 1, 12/16 files, 42,000 rows, 21,000 rows/s
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        columns: int | None = None,
    ) -> None:
        self._stream = sys.stderr if stream is None else stream
        self._clock = clock
        self._live = self._stream.isatty()
        self._columns = shutil.get_terminal_size().columns if columns is None else columns
        self._lock = threading.Lock()
        self._running: dict[str, StageCount] = {}
        self._shown = ""

    def stage(self, name: str) -> None:
        """Start stage `name` (again, from zero, if it ran before)."""
        with self._lock:
            now = self._clock()
            count = StageCount(name, started=now, updated=now)
            self._running[name] = count
            self._write(None if self._live else describe(count))

    def batch(self, stage: str, files_done: int | None, files_total: int | None, rows: int) -> None:
        """Count one finished micro-batch of `stage` (started now if `stage` was not called).

        Args:
            stage: the stage's name, as given to `stage`.
            files_done: landing files the stage has read so far, this batch's included; None
                when it reads no files.
            files_total: landing files it will read in all; None when unknown.
            rows: rows this micro-batch processed (not a running total: they are added up).
        """
        with self._lock:
            now = self._clock()
            count = self._running.get(stage) or StageCount(stage, started=now, updated=now)
            count = replace(
                count,
                updated=now,
                batches=count.batches + 1,
                files_done=files_done,
                files_total=files_total,
                rows=count.rows + rows,
            )
            self._running[stage] = count
            self._write(None if self._live else describe(count))

    def finish(self, stage: str) -> None:
        """End `stage`: on a terminal its last figures leave the status line for a line above."""
        with self._lock:
            self._write(self._finish(stage))

    def line(self, message: str) -> None:
        """Print `message` as a line of its own (above the status line, on a terminal)."""
        with self._lock:
            self._write(message)

    def close(self) -> None:
        """Finish every running stage and leave the terminal with no status line."""
        with self._lock:
            finished = [self._finish(stage) for stage in list(self._running)]
            self._write("\n".join(line for line in finished if line is not None) or None)

    def _finish(self, stage: str) -> str | None:
        """Stop showing `stage`; the line to print about it, on a terminal only."""
        count = self._running.pop(stage, None)
        if count is None or not self._live:
            return None
        return describe(count, finished=True)

    def _status(self) -> str:
        return fit(STAGE_SEPARATOR.join(map(describe, self._running.values())), self._columns)

    def _write(self, message: str | None) -> None:
        """Write `message` as a line (None: none), then, on a terminal, the status line anew."""
        if not self._live:
            if message is not None:
                self._stream.write(f"{message}\n")
            self._stream.flush()
            return
        status = self._status()
        if message is None and status == self._shown:
            return
        text = ERASE_LINE if self._shown else ""
        if message is not None:
            text += f"{message}\n"
        self._stream.write(text + status)
        self._stream.flush()
        self._shown = status
