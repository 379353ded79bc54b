"""Late data: copies of events that arrive one run later, inside or beyond the watermark."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from scenarios.faults._common import (
    DEFAULT_WATERMARK_DELAY,
    MILLISECOND,
    Event,
    check_duration,
    check_events,
    check_fraction,
    copy_event,
    event_file,
    file_name,
    human,
    iso_ms,
    json_lines,
    latest,
    line,
    new_id,
    parse_ts,
    records_by_file,
    seeded,
    share,
)
from scenarios.faults.model import Delivery, FaultArgumentError, Injection

__all__ = ["late_data"]

_Window = tuple[datetime, int]
"""Where a late copy's time is drawn: the latest instant and how many milliseconds before it."""


def late_data(
    events: Sequence[Mapping[str, Any]],
    *,
    seed: int,
    late_fraction: float = 0.05,
    within_fraction: float = 0.5,
    watermark_delay: timedelta = DEFAULT_WATERMARK_DELAY,
    max_lateness: timedelta = timedelta(hours=6),
) -> Injection:
    """Deliver `events` on time, then late copies of some of them in a second run.

    Delivery 1 holds `events` as given. Delivery 2 holds copies of a random sample of them,
    each with a new ``event_id`` and a new ``event_ts``, relative to ``M``, the latest
    ``event_ts`` of delivery 1 (after run 1 the watermark is ``M - watermark_delay``):

    * within the watermark: ``event_ts`` in ``[M - watermark_delay / 2, M]``; each such copy is
      written twice, so silver must keep it exactly once (one row dropped as a duplicate);
    * beyond the watermark: ``event_ts`` in ``[M - watermark_delay - max_lateness,
      M - watermark_delay * 3 / 2]``, well older than the watermark: these must be accounted
      as late (``silver_late_events``), not stored in silver.

    Args:
        events: Clean events (e.g. from `scenarios.generator.generate_events`), at least one.
        seed: Any int; the same seed and knobs give byte-identical deliveries.
        late_fraction: Share of `events` that get a late copy, in [0, 1].
        within_fraction: Share of the late copies that are within the watermark, in [0, 1];
            the rest are beyond it.
        watermark_delay: The pipeline's watermark delay (default 1 hour), > 0.
        max_lateness: How far beyond the watermark a copy may be, >= watermark_delay / 2.

    Returns:
        The two deliveries; ``silver_ids`` (every on-time event and every within copy),
        ``late_ids`` (the beyond copies), ``duplicate_rows`` (the second copies) and counts
        ``late_within_watermark``, ``late_beyond_watermark``, ``late_within_replays``.

    Raises:
        FaultArgumentError: If a knob is out of range or `events` is empty.
    """
    _check_knobs(late_fraction, within_fraction, watermark_delay, max_lateness)
    check_events(events, minimum=1, why=" (delivery 1 sets the watermark)")
    rng = seeded("late_data", seed)

    newest = max(parse_ts(event["event_ts"]) for event in events)
    late_count = share(late_fraction, len(events))
    within_count = share(within_fraction, late_count)
    sources = rng.sample(range(len(events)), late_count)
    taken = {event["event_id"] for event in events}
    within, beyond = _windows(newest, watermark_delay, max_lateness)
    copies = [
        _late_copy(events[source], within if number < within_count else beyond, taken, rng)
        for number, source in enumerate(sources)
    ]
    late_lines = _late_lines([copy for copy, _ in copies], within_count, rng)

    deliveries = (
        Delivery((event_file(file_name("late", seed, 1, "on-time"), json_lines(events)),)),
        Delivery((event_file(file_name("late", seed, 2, "late"), late_lines),)),
    )
    return _injection(events, deliveries, copies, within_count, taken, watermark_delay)


def _check_knobs(
    late_fraction: float,
    within_fraction: float,
    watermark_delay: timedelta,
    max_lateness: timedelta,
) -> None:
    """Reject a knob out of range, or a `max_lateness` below ``watermark_delay / 2``."""
    check_fraction("late_fraction", late_fraction)
    check_fraction("within_fraction", within_fraction)
    check_duration("watermark_delay", watermark_delay, minimum=2 * MILLISECOND)
    check_duration("max_lateness", max_lateness)
    if max_lateness < watermark_delay / 2:
        raise FaultArgumentError(
            f"max_lateness must be >= watermark_delay / 2 ({watermark_delay / 2}) so that copies "
            f"beyond the watermark are unambiguously late, got {max_lateness}"
        )


def _windows(
    newest: datetime, watermark_delay: timedelta, max_lateness: timedelta
) -> tuple[_Window, _Window]:
    """The windows within the watermark, ``[M - watermark_delay / 2, M]``, and beyond it,
    ``[M - watermark_delay - max_lateness, M - watermark_delay * 3 / 2]`` (``M``: `newest`)."""
    watermark = newest - watermark_delay
    within = (newest, watermark_delay // 2 // MILLISECOND)
    beyond_span_ms = (max_lateness - watermark_delay / 2) // MILLISECOND
    return within, (watermark - watermark_delay / 2, beyond_span_ms)


def _late_copy(
    event: Mapping[str, Any], window: _Window, taken: set[str], rng: random.Random
) -> tuple[Event, datetime]:
    """A copy of `event` with a new id (added to `taken`) and a time drawn in `window`; and
    that time."""
    copy = copy_event(event)
    copy["event_id"] = new_id(rng, taken)
    newest, span_ms = window
    instant = newest - rng.randint(0, span_ms) * MILLISECOND
    copy["event_ts"] = iso_ms(instant)
    return copy, instant


def _late_lines(copies: Sequence[Event], within_count: int, rng: random.Random) -> bytes:
    """The copies' lines in seeded order, each of the first `within_count` (within the
    watermark) twice: the sender retries."""
    once = [line(copy) for copy in copies]
    lines = [text for text in once[:within_count] for _ in range(2)] + once[within_count:]
    rng.shuffle(lines)
    return b"".join(lines)


def _injection(
    events: Sequence[Mapping[str, Any]],
    deliveries: tuple[Delivery, Delivery],
    copies: Sequence[tuple[Event, datetime]],
    within_count: int,
    taken: set[str],
    watermark_delay: timedelta,
) -> Injection:
    """The ledger: `copies` pairs each late copy with its time, the first `within_count`
    within the watermark; `taken` holds every event id written."""
    within, beyond = copies[:within_count], copies[within_count:]
    within_ids = {copy["event_id"] for copy, _ in within}
    beyond_ids = {copy["event_id"] for copy, _ in beyond}
    by_file = records_by_file(deliveries)
    late_count, beyond_count = len(copies), len(beyond)
    late_times = [parse_ts(copy["event_ts"]) for copy, _ in copies]
    return Injection(
        deliveries=deliveries,
        injected={
            "late_within_watermark": within_count,
            "late_beyond_watermark": beyond_count,
            "late_within_replays": within_count,
        },
        records=sum(by_file.values()),
        description=(
            f"A second run delivers late copies of {late_count} events: {beyond_count} well "
            f"beyond the {human(watermark_delay)} watermark and {within_count} within it "
            "(each sent twice)."
        ),
        records_by_file=by_file,
        event_ids=frozenset(taken),
        silver_ids=frozenset(e["event_id"] for e in events) | within_ids,
        late_ids=frozenset(beyond_ids),
        duplicate_rows=within_count,
        max_event_time=(latest(events), max(late_times, default=None)),
        min_on_time=(None, min((instant for _, instant in within), default=None)),
    )
