"""One writer per warehouse: a lock file that names its holder, released by the kernel.

A run (incremental or full refresh) holds `<warehouse>/_writer.lock` from before its first
read of the warehouse's state until it ends. The lock is an advisory `flock` on that file, so
the kernel releases it when its process dies, however it dies; the file's text names the
holder (pid, host, start time, command) for the message a second writer gets. A run that
finds the text of a holder that no longer holds the lock (killed, say, by `kill -9`) says so
and takes the lock over. Readers (reports, `python -m contracts`) never take it: Delta gives
them a consistent snapshot while a run writes.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import WarehouseBusyError

__all__ = ["LOCK_FILE", "Holder", "writer_lock"]

LOCK_FILE = "_writer.lock"
POLL_SECONDS = 0.5

_held: dict[Path, int] = {}
"""Locks this process holds, by warehouse, with how many `writer_lock` blocks hold each."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a warehouse's lock."""

    pid: int
    host: str
    started: str
    command: str

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host}, started {self.started} ({self.command})"


def _me() -> Holder:
    return Holder(
        pid=os.getpid(),
        host=socket.gethostname(),
        started=f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}",
        # The program and its subcommand only: arguments may name a person (`forget`).
        command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:2]]),
    )


def _read_holder(handle: int) -> Holder | None:
    os.lseek(handle, 0, os.SEEK_SET)
    text = os.read(handle, 4096).decode("utf-8", errors="replace")
    try:
        fields = json.loads(text)
        return Holder(
            int(fields["pid"]), str(fields["host"]), str(fields["started"]), str(fields["command"])
        )
    except (ValueError, TypeError, KeyError):
        return None


def _write_holder(handle: int, holder: Holder | None) -> None:
    os.ftruncate(handle, 0)
    if holder is not None:
        os.pwrite(handle, json.dumps(holder.__dict__).encode("utf-8"), 0)
    os.fsync(handle)


def _try_lock(handle: int) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def writer_lock(
    warehouse: Path,
    *,
    wait_seconds: float = 0.0,
    notify: Callable[[str], None] = lambda _message: None,
) -> Iterator[None]:
    """Hold the warehouse's writer lock for the block; re-entrant within one process.

    Args:
        warehouse: the warehouse directory (created when absent).
        wait_seconds: how long to wait for another writer to finish; 0 fails at once.
        notify: called with a line when waiting starts, and when a stale lock is taken over.

    Raises:
        WarehouseBusyError: another process holds the lock (after `wait_seconds`), named.
    """
    warehouse = warehouse.resolve()
    if warehouse in _held:
        _held[warehouse] += 1
        try:
            yield
        finally:
            _held[warehouse] -= 1
        return
    warehouse.mkdir(parents=True, exist_ok=True)
    handle = os.open(warehouse / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(handle, warehouse, wait_seconds, notify)
        stale = _read_holder(handle)
        if stale is not None:
            notify(
                f"taking over the writer lock of {warehouse} left by a run that ended without "
                f"releasing it: {stale.describe()}; it resumes from the checkpoints"
            )
        _write_holder(handle, _me())
        _held[warehouse] = 1
        try:
            yield
        finally:
            del _held[warehouse]
            _write_holder(handle, None)
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        os.close(handle)


def _acquire(
    handle: int, warehouse: Path, wait_seconds: float, notify: Callable[[str], None]
) -> None:
    deadline = time.monotonic() + wait_seconds
    waiting = False
    while not _try_lock(handle):
        holder = _read_holder(handle)
        who = holder.describe() if holder else "another process"
        if time.monotonic() >= deadline:
            waited = f" after waiting {wait_seconds:g} s" if wait_seconds > 0 else ""
            raise WarehouseBusyError(
                f"The warehouse {warehouse} is being written by another run{waited}: {who}. "
                "One run writes a warehouse at a time. Wait for it to finish, or pass "
                "--wait SECONDS to wait for it; reading the tables meanwhile is safe."
            )
        if not waiting:
            notify(f"waiting up to {wait_seconds:g} s for the run writing {warehouse}: {who}")
            waiting = True
        time.sleep(POLL_SECONDS)
