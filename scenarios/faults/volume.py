"""Volume: a burst of extra sessions at several times the normal event rate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from scenarios.faults._common import (
    MILLISECOND,
    Event,
    check_duration,
    check_events,
    copy_event,
    iso_ms,
    new_id,
    parse_ts,
    records_by_file,
    seeded,
    share,
    single_delivery,
)
from scenarios.faults.model import FaultArgumentError, Injection

__all__ = ["burst"]


def _sessions(events: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """The events grouped by session, each session in time order, sessions in first-seen order."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        grouped.setdefault(str(event.get("session_id")), []).append(event)
    return [sorted(group, key=lambda e: parse_ts(e["event_ts"])) for group in grouped.values()]


def burst(
    events: Sequence[Mapping[str, Any]],
    *,
    seed: int,
    factor: float = 10,
    burst_window: timedelta = timedelta(minutes=10),
) -> Injection:
    """Deliver `events` plus a burst of extra sessions inside one window, in one run.

    The normal rate is ``len(events)`` over their time span; inside a window of length
    `burst_window`, placed at random within the span, ``(factor - 1)`` times the normal count
    is added, so the window runs at about `factor` times the normal rate. The extra events are
    whole sessions replayed from random template sessions: a new ``session_id``, new
    ``event_id`` values, the same users, pages and gaps, shifted to start inside the window
    and cut at its end. Everything is written in one file in time order; every event must
    reach silver.

    Args:
        events: Clean events, at least two, spanning at least `burst_window`.
        seed: Any int; the same seed and knobs give byte-identical deliveries.
        factor: Event rate inside the window relative to the normal rate, >= 1.
        burst_window: Length of the burst, > 0 and at most the events' span.

    Returns:
        One delivery; counts ``burst_events`` and ``burst_sessions``; ``silver_ids`` include
        the burst's events.

    Raises:
        FaultArgumentError: If a knob is out of range.
    """
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not factor >= 1:
        raise FaultArgumentError(f"factor must be a number >= 1, got {factor!r}")
    check_duration("burst_window", burst_window, minimum=MILLISECOND)
    check_events(events, minimum=2, why=" (the normal rate needs a time span)")
    rng = seeded("burst", seed)
    times = [parse_ts(event["event_ts"]) for event in events]
    first, last = min(times), max(times)
    span = last - first
    if burst_window > span:
        raise FaultArgumentError(
            f"burst_window must be at most the span of the events ({span}), got {burst_window}"
        )

    extra = share(factor - 1, len(events) * (burst_window / span))
    start = first + rng.randint(0, (span - burst_window) // MILLISECOND) * MILLISECOND
    end = start + burst_window
    templates = _sessions(events)
    taken = {str(event["event_id"]) for event in events}
    added: list[Event] = []
    sessions = 0
    while len(added) < extra:
        template = rng.choice(templates)
        session_start = start + rng.randint(0, burst_window // MILLISECOND - 1) * MILLISECOND
        origin = parse_ts(template[0]["event_ts"])
        session_id = new_id(rng, taken)
        sessions += 1
        for step in template:
            instant = session_start + (parse_ts(step["event_ts"]) - origin)
            if instant >= end or len(added) == extra:
                break
            copy = copy_event(step)
            copy["event_id"] = new_id(rng, taken)
            copy["session_id"] = session_id
            copy["event_ts"] = iso_ms(instant)
            added.append(copy)
    return _injection(events, added, sessions, seed, factor, (start, end))


def _injection(
    events: Sequence[Mapping[str, Any]],
    added: list[Event],
    sessions: int,
    seed: int,
    factor: float,
    window: tuple[datetime, datetime],
) -> Injection:
    merged = sorted([*events, *added], key=lambda event: parse_ts(event["event_ts"]))
    deliveries = single_delivery("burst", seed, merged)
    by_file = records_by_file(deliveries)
    ids = frozenset(str(event["event_id"]) for event in merged)
    start, end = window
    return Injection(
        deliveries=deliveries,
        injected={"burst_events": len(added), "burst_sessions": sessions},
        records=sum(by_file.values()),
        description=(
            f"A burst of {len(added)} extra events in {sessions} sessions at {factor:.3g}x the "
            f"normal rate between {iso_ms(start)} and {iso_ms(end)}."
        ),
        records_by_file=by_file,
        event_ids=ids,
        silver_ids=ids,
        max_event_time=(max(parse_ts(event["event_ts"]) for event in merged),),
        min_on_time=(None,),
    )
