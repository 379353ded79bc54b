"""Helpers shared by the fault generators: seeding, knob checks, kinds, ids, times, files."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from pipeline import config
from pipeline.config import parse_delay
from scenarios.faults.model import (
    Delivery,
    FaultArgumentError,
    Folder,
    LandingFile,
    count_records,
)

__all__ = [
    "DEFAULT_WATERMARK_DELAY",
    "MAX_FILES_PER_RUN",
    "MILLISECOND",
    "Event",
    "assign_kinds",
    "check_bool",
    "check_disjoint_fractions",
    "check_duration",
    "check_events",
    "check_fraction",
    "chronological",
    "copy_event",
    "count_kinds",
    "disjoint_shares",
    "event_file",
    "file_name",
    "human",
    "iso_ms",
    "json_lines",
    "latest",
    "line",
    "new_id",
    "parse_ts",
    "records_by_file",
    "seeded",
    "share",
    "single_delivery",
    "spread",
]

MILLISECOND = timedelta(milliseconds=1)
"""The resolution of the events' time stamps."""
DEFAULT_WATERMARK_DELAY = parse_delay(config.DEFAULT_WATERMARK_DELAY)
"""The pipeline's default watermark delay (`pipeline.config.DEFAULT_WATERMARK_DELAY`)."""
MAX_FILES_PER_RUN = config.DEFAULT_MAX_FILES_PER_TRIGGER
"""The runner's default ``max_files_per_trigger``: a delivery with more event files than this
is read in several micro-batches, and the watermark could move between them."""

Event = dict[str, Any]


def seeded(generator: str, seed: int) -> random.Random:
    """The generator's own random stream: the same seed gives other draws in another generator."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise FaultArgumentError(f"seed must be an int, got {seed!r}")
    return random.Random(f"scenarios.faults.{generator}:{seed}")


def check_fraction(name: str, value: float) -> None:
    """Reject a fraction outside [0, 1] (or not a number) with an error naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise FaultArgumentError(f"{name} must be a number in [0, 1], got {value!r}")


def check_disjoint_fractions(names: Sequence[str], values: Sequence[float]) -> None:
    """Reject each fraction outside [0, 1], then fractions of disjoint samples adding up to > 1."""
    for name, value in zip(names, values, strict=True):
        check_fraction(name, value)
    if sum(values) > 1:
        listed = " + ".join(names)
        raise FaultArgumentError(
            f"{listed} must add up to at most 1 (they select disjoint events), got {sum(values):g}"
        )


def check_bool(name: str, value: object) -> None:
    """Reject a flag that is not a bool with an error naming it."""
    if not isinstance(value, bool):
        raise FaultArgumentError(f"{name} must be a bool, got {value!r}")


def check_duration(name: str, value: timedelta, *, minimum: timedelta = timedelta(0)) -> None:
    """Reject a non-timedelta or one not above `minimum`."""
    if not isinstance(value, timedelta) or value <= minimum:
        raise FaultArgumentError(f"{name} must be a timedelta > {minimum}, got {value!r}")


def check_events(events: Sequence[Mapping[str, Any]], *, minimum: int = 0, why: str = "") -> None:
    """Reject an event list that is too short, or has events without an id or a time."""
    if len(events) < minimum:
        raise FaultArgumentError(
            f"events must hold at least {minimum} event(s){why}, got {len(events)}"
        )
    seen: set[str] = set()
    for event in events:
        event_id = event.get("event_id")
        if not isinstance(event_id, str) or not isinstance(event.get("event_ts"), str):
            raise FaultArgumentError(
                "events must be clean generator events with string event_id and event_ts, "
                f"got {str(event)[:120]}"
            )
        if event_id in seen:
            raise FaultArgumentError(f"events must have unique event_id values: {event_id} twice")
        seen.add(event_id)


def share(fraction: float, total: float) -> int:
    """``fraction * total`` rounded half up: the count a fraction knob asks for."""
    return math.floor(fraction * total + 0.5)


def disjoint_shares(fractions: Sequence[float], total: int) -> list[int]:
    """The counts of disjoint samples the fractions ask for (`share` each), cut so that they
    add up to at most `total`: two halves of one event round to one event each, and only the
    first gets it."""
    counts: list[int] = []
    for fraction in fractions:
        counts.append(min(share(fraction, total), total - sum(counts)))
    return counts


def spread(kinds: Sequence[str], count: int, rng: random.Random) -> list[str]:
    """`count` kind labels, as even as possible (counts differ by at most one), seeded order."""
    order = list(kinds)
    rng.shuffle(order)
    labels = [order[index % len(order)] for index in range(count)]
    rng.shuffle(labels)
    return labels


def assign_kinds(
    total: int, count: int, kinds: Sequence[str], rng: random.Random
) -> dict[int, str]:
    """A seeded sample of `count` of the indexes below `total`, each with a kind (`spread`)."""
    chosen = rng.sample(range(total), count)
    return dict(zip(chosen, spread(kinds, count, rng), strict=True))


def count_kinds(kinds: Sequence[str], labels: Mapping[int, str]) -> dict[str, int]:
    """How many `labels` are of each of `kinds`, in the order of `kinds` (zeros included)."""
    return {kind: sum(1 for label in labels.values() if label == kind) for kind in kinds}


def new_id(rng: random.Random, taken: set[str]) -> str:
    """A fresh uuid4 string not in `taken` (and add it there)."""
    while True:
        candidate = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if candidate not in taken:
            taken.add(candidate)
            return candidate


def parse_ts(text: str) -> datetime:
    """An ISO-8601 timestamp with a zone, as an aware UTC datetime."""
    return datetime.fromisoformat(text).astimezone(UTC)


def iso_ms(instant: datetime) -> str:
    """ISO-8601 UTC with milliseconds and 'Z', as the clean generator writes it."""
    return instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def human(duration: timedelta) -> str:
    """A duration in its largest whole unit, e.g. ``1 hour``, ``90 minutes``, ``2 days``."""
    for unit, size in (
        ("day", timedelta(days=1)),
        ("hour", timedelta(hours=1)),
        ("minute", timedelta(minutes=1)),
        ("second", timedelta(seconds=1)),
    ):
        if duration >= size and duration % size == timedelta(0):
            count = duration // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return str(duration)


def copy_event(event: Mapping[str, Any]) -> Event:
    """A deep copy of a JSON-ready event."""
    copied: Event = orjson.loads(orjson.dumps(event))
    return copied


def line(value: Any) -> bytes:
    """One newline-terminated JSON line."""
    return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)


def json_lines(values: Iterable[Any]) -> bytes:
    """Newline-terminated JSON lines, one per value, joined."""
    return b"".join(map(line, values))


def chronological(events: Iterable[Event]) -> list[Event]:
    """Events sorted by `event_ts` (stable)."""
    return sorted(events, key=lambda event: parse_ts(event["event_ts"]))


def event_file(name: str, content: bytes, folder: Folder = "events") -> LandingFile:
    """A landing file."""
    return LandingFile(folder=folder, name=name, content=content)


def file_name(generator: str, seed: int, delivery: int, part: str) -> str:
    """A unique, readable landing file name, e.g. ``late-s7-d1-on-time.json``."""
    sign = "m" if seed < 0 else ""
    return f"{generator}-s{sign}{abs(seed)}-d{delivery}-{part}.json"


def single_delivery(generator: str, seed: int, events: Iterable[Any]) -> tuple[Delivery]:
    """One run delivering `events` in one file, e.g. ``clock-s7-d1-events.json``."""
    return (Delivery((event_file(file_name(generator, seed, 1, "events"), json_lines(events)),)),)


def records_by_file(deliveries: Sequence[Delivery]) -> dict[str, int]:
    """Records per event file name over all deliveries."""
    return {
        landing.name: count_records(landing.content)
        for delivery in deliveries
        for landing in delivery.files
        if landing.folder == "events"
    }


def latest(events: Iterable[Mapping[str, Any]]) -> datetime | None:
    """The latest `event_ts` of `events`, None when there are none."""
    return max((parse_ts(event["event_ts"]) for event in events), default=None)
