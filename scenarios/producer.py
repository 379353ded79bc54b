"""`clickstream produce`: the generator's files written to a landing, local or in Azure storage.

One batch of files (`produce_batch`: the same names and bytes as `generator.write_landing`),
or a stream (`produce_stream`): one new file per interval under a folder of the ingest date,
holding the events that happened in that interval, until the duration ends or `stop` is set.
Files are never appended to or overwritten: a file source reads a file once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from pipeline.errors import InputError
from scenarios import generator

__all__ = ["LandingStore", "LocalLanding", "Produced", "produce_batch", "produce_stream"]


class LandingStore(Protocol):
    """Where produced files go: a local folder or a blob container folder."""

    def uri(self, relative: str) -> str:
        """The full name of `relative`, for messages."""
        ...

    def existing(self, names: list[str]) -> list[str]:
        """Those of `names` (paths under the landing) that the landing holds already."""
        ...

    def put(self, relative: str, data: bytes) -> bool:
        """Write a new file (False: the same bytes were there); never overwrite another."""
        ...


class LocalLanding:
    """A landing folder on this machine."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __str__(self) -> str:
        return str(self.root)

    def uri(self, relative: str) -> str:
        return str(self.root / relative)

    def existing(self, names: list[str]) -> list[str]:
        return [name for name in names if (self.root / name).exists()]

    def put(self, relative: str, data: bytes) -> bool:
        path = self.root / relative
        if path.exists():
            if path.read_bytes() == data:
                return False
            raise InputError(
                f"refusing to overwrite {path}: a streaming file source ignores a file name it "
                "has already seen; choose another --out or --seed"
            )
        generator.write_atomically(path, data)
        return True


@dataclass
class Produced:
    """What a produce wrote: each file (relative path, bytes, lines), and the totals."""

    files: list[tuple[str, int, int]] = field(default_factory=list)
    events: int = 0
    user_changes: int = 0
    stopped_early: bool = False

    @property
    def bytes(self) -> int:
        """Bytes written over all files."""
        return sum(size for _, size, _ in self.files)


def _refuse_existing(store: LandingStore, names: list[str]) -> None:
    for name in store.existing(names):
        raise InputError(
            f"refusing to overwrite {store.uri(name)}: a streaming file source ignores a "
            "file name it has already seen; choose another --out or --seed"
        )


def produce_batch(
    store: LandingStore,
    *,
    events: int,
    seed: int,
    users: int | None = None,
    files: int = 4,
    start: datetime = generator.DEFAULT_START,
    progress: Callable[[int, int], None] | None = None,
) -> Produced:
    """Write `generator.landing_contents` to `store`: byte for byte what a local
    `write_landing` writes with the same arguments, under the same relative paths.

    Raises:
        InputError: a file of that name exists already (nothing is written).
        ValueError: an argument is out of range.
    """
    names = [
        generator.user_changes_name(seed),
        *(generator.events_name(seed, i) for i in range(files)),
    ]
    _refuse_existing(store, names)
    produced = Produced()
    for name, data, lines in generator.landing_contents(
        events=events, seed=seed, users=users, files=files, start=start, progress=progress
    ):
        store.put(name, data)
        produced.files.append((name, len(data), lines))
    produced.events = events
    produced.user_changes = produced.files[0][2]
    return produced


def stream_names(seed: int, started: datetime, index: int, ingest_day: str) -> tuple[str, str]:
    """The event file and CDC file names of interval `index` of a stream started at `started`."""
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    return (
        f"events/{ingest_day}/events-s{seed}-{stamp}-{index:05d}.json",
        f"user_changes/{ingest_day}/user-changes-s{seed}-{stamp}-{index:05d}.json",
    )


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


def produce_stream(
    store: LandingStore,
    *,
    rate: float,
    duration: float,
    interval: float,
    seed: int,
    users: int | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    wait: Callable[[float], bool] = lambda seconds: _sleep(seconds),
    on_file: Callable[[str, int, int], None] | None = None,
) -> Produced:
    """Produce for `duration` seconds: every `interval` seconds, a new file with the events
    that happened in it (`rate` a second on average), under `events/<ingest date>/`; the user
    changes dated in the interval in a file of their own under `user_changes/<ingest date>/`
    (every user's INSERT in the first).

    Event times follow the wall clock: interval `i` holds the events of
    [start + i*width, start + (i+1)*width) and is written once that time has passed.

    Args:
        rate: Events per second, > 0.
        duration: Seconds to produce for, > 0.
        interval: Seconds between files, > 0; the duration is cut into
            ceil(duration / interval) equal intervals.
        seed: The generator's seed (also part of the file names, with the start time).
        users: Size of the user population (default: the generator's for the whole stream).
        now: The clock.
        wait: Waits up to the given seconds; True when asked to stop (Ctrl-C): the files
            written so far are complete, and nothing more is written.
        on_file: Called as ``on_file(relative_path, bytes, lines)`` after each file.

    Raises:
        ValueError: an argument is out of range.
    """
    for name, value in (("rate", rate), ("duration", duration), ("interval", interval)):
        if not value > 0:
            raise ValueError(f"--{name} must be > 0, got {value}")
    started = now().replace(microsecond=0)
    slices = max(1, math.ceil(duration / interval - 1e-9))
    width = timedelta(seconds=duration) / slices
    _, parts = generator.time_slices(
        events=round(rate * duration),
        seed=seed,
        users=users,
        slices=slices,
        start=started,
        duration=timedelta(seconds=duration),
    )
    produced = Produced()
    for index, part in enumerate(parts):
        due = started + width * (index + 1)
        if wait(max(0.0, (due - now()).total_seconds())):
            produced.stopped_early = True
            break
        events_file, changes_file = stream_names(seed, started, index, now().date().isoformat())
        written = [(changes_file, part.changes, part.change_count)] if part.change_count else []
        written.append((events_file, part.events, part.event_count))
        for name, data, lines in written:
            store.put(name, data)
            produced.files.append((name, len(data), lines))
            if on_file is not None:
                on_file(name, len(data), lines)
        produced.events += part.event_count
        produced.user_changes += part.change_count
    return produced
