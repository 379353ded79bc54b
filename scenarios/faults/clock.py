"""Clock problems: event times from the future, in other zones and in other formats."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

from scenarios.faults._common import (
    MILLISECOND,
    Event,
    check_disjoint_fractions,
    check_duration,
    check_events,
    copy_event,
    count_kinds,
    disjoint_shares,
    human,
    iso_ms,
    parse_ts,
    records_by_file,
    seeded,
    single_delivery,
    spread,
)
from scenarios.faults.model import ClockCase, Delivery, Injection
from scenarios.generator import EPOCH

__all__ = ["CLOCK_KINDS", "FORMAT_KINDS", "ZONE_OFFSETS", "clock_skew"]

FORMAT_KINDS = (
    "format_space_z",
    "format_naive",
    "format_epoch_millis",
    "format_rfc1123",
)
"""The other-format kinds `clock_skew` spreads ``format_fraction`` over."""

CLOCK_KINDS = ("future", "zone_offset", *FORMAT_KINDS)
"""Every kind `clock_skew` can produce."""

ZONE_OFFSETS = ("+05:30", "-08:00", "+09:45", "-03:30")
"""The UTC offsets of re-zoned timestamps (same instant, other wall-clock text)."""


def _zone(offset: str) -> timezone:
    sign = -1 if offset.startswith("-") else 1
    hours, minutes = offset[1:].split(":")
    return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))


def _seconds(instant: datetime) -> datetime:
    return instant.replace(microsecond=0)


def _case(
    kind: str, event: Event, true: datetime, rng: random.Random, max_future: timedelta
) -> ClockCase:
    """Rewrite the event's ``event_ts`` for `kind`; return what it now says and should become."""
    event_id = event["event_id"]
    written: str | int
    if kind == "future":
        low = max(max_future // 2 // MILLISECOND, 1)
        instant = true + rng.randint(low, max(max_future // MILLISECOND, low)) * MILLISECOND
        written = iso_ms(instant)
        case = ClockCase(kind, event_id, written, instant, true, "silver", instant)
    elif kind == "zone_offset":
        written = true.astimezone(_zone(rng.choice(ZONE_OFFSETS))).isoformat(
            timespec="milliseconds"
        )
        case = ClockCase(kind, event_id, written, true, true, "silver", true)
    elif kind == "format_space_z":  # "2026-11-01 10:00:00Z": ISO-8601 with a space, no millis
        written = true.strftime("%Y-%m-%d %H:%M:%SZ")
        at = _seconds(true)
        case = ClockCase(kind, event_id, written, at, true, "silver", at)
    elif kind == "format_naive":  # "2026-11-01T10:00:00.123": UTC wall clock without a zone
        written = true.replace(tzinfo=None).isoformat(timespec="milliseconds")
        case = ClockCase(kind, event_id, written, None, true, "silver_quarantine", None)
    elif kind == "format_epoch_millis":  # a JSON number
        written = (true - EPOCH) // MILLISECOND
        case = ClockCase(kind, event_id, written, true, true, "silver", true)
    else:  # format_rfc1123: "Sun, 01 Nov 2026 10:00:00 GMT"
        written = format_datetime(true, usegmt=True)
        at = _seconds(true)
        case = ClockCase(kind, event_id, written, at, true, "silver", at)
    event["event_ts"] = written
    return case


def clock_skew(
    events: Sequence[Mapping[str, Any]],
    *,
    seed: int,
    future_fraction: float = 0.02,
    zone_fraction: float = 0.05,
    format_fraction: float = 0.05,
    max_future: timedelta = timedelta(days=2),
) -> Injection:
    """Deliver `events` with skewed, re-zoned and re-formatted ``event_ts``, in one run.

    Disjoint shares of the events get:

    * ``future`` (``future_fraction``): ``event_ts`` moved ``max_future / 2`` to `max_future`
      ahead (a device clock running fast), still ISO-8601 UTC;
    * ``zone_offset`` (``zone_fraction``): the same instant written in another zone
      (`ZONE_OFFSETS`, e.g. ``2026-11-01T15:30:00.000+05:30``);
    * another format (``format_fraction``, spread evenly over `FORMAT_KINDS`):
      ``format_space_z`` ``"2026-11-01 10:00:00Z"``; ``format_naive``
      ``"2026-11-01T10:00:00.123"`` (UTC wall clock, no zone); ``format_epoch_millis``
      ``1793527200123`` as a JSON number; ``format_rfc1123``
      ``"Sun, 01 Nov 2026 10:00:00 GMT"``.

    Each `ClockCase` records what was written, the instant it denotes (None without a zone),
    the true instant and where silver must put the event
    (`pipeline.transforms.silver.parse_event_time`):
    ISO-8601 with a zone, epoch milliseconds and RFC 1123 must be in silver at
    ``parsed_instant``; ``format_naive`` has no single meaning and must be in
    silver_quarantine. Future events also move the watermark: ``max_event_time`` says how
    far, for combining with faults in later runs.

    Args:
        events: Clean events.
        seed: Any int; the same seed and knobs give byte-identical deliveries.
        future_fraction: Share of `events` from the future, in [0, 1].
        zone_fraction: Share written in another zone, in [0, 1].
        format_fraction: Share written in another format, in [0, 1]. The three add up to at
            most 1.
        max_future: How far ahead a future event may be, > 0.

    Returns:
        One delivery; ``clock`` lists every changed event; ``silver_ids`` and
        ``silver_quarantine_ids`` say where each event must land.

    Raises:
        FaultArgumentError: If a knob is out of range.
    """
    names = ("future_fraction", "zone_fraction", "format_fraction")
    fractions = (future_fraction, zone_fraction, format_fraction)
    check_disjoint_fractions(names, fractions)
    check_duration("max_future", max_future, minimum=MILLISECOND)
    check_events(events)
    rng = seeded("clock_skew", seed)

    counts = disjoint_shares(fractions, len(events))
    kinds = _choose_kinds(len(events), counts, rng)
    written, cases = _rewrite(events, kinds, max_future, rng)
    deliveries = single_delivery("clock", seed, written)
    return _injection(events, deliveries, kinds, cases, counts, max_future)


def _choose_kinds(total: int, counts: Sequence[int], rng: random.Random) -> dict[int, str]:
    """Which events get which kind: `counts` future, zone offset and other-format events (the
    formats spread evenly over `FORMAT_KINDS`), a seeded sample of the `total` events."""
    chosen = rng.sample(range(total), sum(counts))
    labels = ["future"] * counts[0] + ["zone_offset"] * counts[1]
    labels += spread(FORMAT_KINDS, counts[2], rng)
    return dict(zip(chosen, labels, strict=True))


def _rewrite(
    events: Sequence[Mapping[str, Any]],
    kinds: Mapping[int, str],
    max_future: timedelta,
    rng: random.Random,
) -> tuple[list[Mapping[str, Any]], list[ClockCase]]:
    """The events to write, those in `kinds` copied and rewritten, and a case per rewrite."""
    written: list[Mapping[str, Any]] = []
    cases: list[ClockCase] = []
    for index, event in enumerate(events):
        if index in kinds:
            changed = copy_event(event)
            cases.append(_case(kinds[index], changed, parse_ts(event["event_ts"]), rng, max_future))
            written.append(changed)
        else:
            written.append(event)
    return written, cases


def _injection(
    events: Sequence[Mapping[str, Any]],
    deliveries: tuple[Delivery],
    kinds: Mapping[int, str],
    cases: Sequence[ClockCase],
    counts: Sequence[int],
    max_future: timedelta,
) -> Injection:
    """The ledger: where each event must land and how far the watermark moves."""
    by_file = records_by_file(deliveries)
    ids = frozenset(event["event_id"] for event in events)
    quarantined = frozenset(c.event_id for c in cases if c.expected == "silver_quarantine")
    changed_ids = {c.event_id for c in cases}
    times = [parse_ts(e["event_ts"]) for e in events if e["event_id"] not in changed_ids]
    times += [c.parsed_instant for c in cases if c.parsed_instant is not None]
    return Injection(
        deliveries=deliveries,
        injected=count_kinds(CLOCK_KINDS, kinds),
        records=sum(by_file.values()),
        description=(
            f"{counts[0]} events come from up to {human(max_future)} in the future, {counts[1]} "
            f"carry their time in another zone and {counts[2]} in another format (space and Z, "
            "no zone, epoch milliseconds, RFC 1123)."
        ),
        records_by_file=by_file,
        event_ids=ids,
        silver_ids=ids - quarantined,
        silver_quarantine_ids=quarantined,
        clock=tuple(cases),
        max_event_time=(max(times, default=None),),
        min_on_time=(None,),
    )
