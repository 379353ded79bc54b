"""Duplicates: replayed lines, reused event ids with another payload, a file sent twice."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from scenarios.faults._common import (
    Event,
    check_bool,
    check_disjoint_fractions,
    check_events,
    copy_event,
    disjoint_shares,
    event_file,
    file_name,
    iso_ms,
    json_lines,
    latest,
    parse_ts,
    records_by_file,
    seeded,
)
from scenarios.faults.model import Conflict, Delivery, Injection, LandingFile

__all__ = ["MAX_CONFLICT_SHIFT", "duplicates"]

MAX_CONFLICT_SHIFT = timedelta(seconds=5)
"""How far a conflicting copy's ``event_ts`` is from the original's, at most."""


def _conflicting(
    event: Mapping[str, Any], pages: Sequence[Mapping[str, Any]], rng: random.Random
) -> Event:
    """The same event id with another ``event_ts`` (a few seconds off) and another page."""
    copy = copy_event(event)
    shift_ms = rng.randint(1, MAX_CONFLICT_SHIFT // timedelta(milliseconds=1))
    shift = timedelta(milliseconds=shift_ms if rng.random() < 0.5 else -shift_ms)
    copy["event_ts"] = iso_ms(parse_ts(event["event_ts"]) + shift)
    url = event["page"]["url"]
    others = [page for page in pages if page["url"] != url]
    if others:
        copy["page"] = copy_event(rng.choice(others))
    else:
        copy["page"]["url"] = f"{url}#retry"
    return copy


def duplicates(
    events: Sequence[Mapping[str, Any]],
    *,
    seed: int,
    exact_fraction: float = 0.05,
    conflicting_fraction: float = 0.02,
    redeliver_file: bool = True,
) -> Injection:
    """Deliver `events` with duplicates: replays, reused ids and a file delivered twice.

    Delivery 1 holds every event once plus, for ``exact_fraction`` of them, the same line
    again somewhere later (a sender retry). It is split into two files at three quarters.
    Delivery 2 (the next run) holds, for ``conflicting_fraction`` of the events (disjoint from
    the replayed ones), the same ``event_id`` with another payload: ``event_ts`` up to
    `MAX_CONFLICT_SHIFT` away and another page; and, when `redeliver_file`, the second file of
    delivery 1 again, byte for byte, under a new name.

    Silver must hold each event id once, with the payload that arrived first: the conflicting
    copies come a run later, so which one is kept is determined. Every other row is dropped as
    a duplicate (or, for rows older than the watermark, dropped with its id already in silver:
    the ledger counts those as duplicates too).

    Args:
        events: Clean events with unique ids.
        seed: Any int; the same seed and knobs give byte-identical deliveries.
        exact_fraction: Share of `events` replayed byte for byte, in [0, 1].
        conflicting_fraction: Share of `events` sent again with another payload, in [0, 1];
            with `exact_fraction` at most 1.
        redeliver_file: Whether delivery 2 repeats a file of delivery 1 under another name.

    Returns:
        Two deliveries; ``silver_ids`` (every event, = silver rows), ``duplicate_rows``
        (replays + conflicting copies + the redelivered file's records) and ``conflicts``.

    Raises:
        FaultArgumentError: If a knob is out of range.
    """
    check_disjoint_fractions(
        ("exact_fraction", "conflicting_fraction"), (exact_fraction, conflicting_fraction)
    )
    check_bool("redeliver_file", redeliver_file)
    check_events(events)
    rng = seeded("duplicates", seed)

    exact_count, conflicting_count = disjoint_shares(
        (exact_fraction, conflicting_fraction), len(events)
    )
    chosen = rng.sample(range(len(events)), exact_count + conflicting_count)
    replayed, conflicting = chosen[:exact_count], sorted(chosen[exact_count:])
    order = _order_with_replays(len(events), replayed, rng)
    cut = len(order) - max(1, len(order) // 4) if order else 0
    first = _file(seed, 1, "events-a", (events[index] for index in order[:cut]))
    second = _file(seed, 1, "events-b", (events[index] for index in order[cut:]))
    pages = [event["page"] for event in events]
    conflicts = [(index, _conflicting(events[index], pages, rng)) for index in conflicting]

    later = [_file(seed, 2, "conflicting", (copy for _, copy in conflicts))]
    if redeliver_file:
        later.append(event_file(file_name("dup", seed, 2, "events-b-again"), second.content))
    deliveries = (Delivery((first, second)), Delivery(tuple(later)))
    resent = order[cut:] if redeliver_file else None
    return _injection(events, deliveries, exact_count, conflicts, resent)


def _order_with_replays(count: int, replayed: Sequence[int], rng: random.Random) -> list[int]:
    """Every event index once, in order, with each of `replayed` again somewhere later."""
    # (position, 0) for every event, (a later position, 1) for its replay: once sorted, a
    # replay always follows its original.
    keyed = [((index, 0), index) for index in range(count)]
    keyed += [((rng.randint(index, count - 1), 1), index) for index in replayed]
    return [index for _, index in sorted(keyed)]


def _file(seed: int, delivery: int, part: str, events: Iterable[Mapping[str, Any]]) -> LandingFile:
    """The file `part` of `delivery`: `events` as JSON lines."""
    return event_file(file_name("dup", seed, delivery, part), json_lines(events))


def _conflict(event: Mapping[str, Any], copy: Event) -> Conflict:
    """What silver keeps (the original `event`) and what it drops (the conflicting `copy`)."""
    return Conflict(
        event_id=copy["event_id"],
        kept_event_ts=event["event_ts"],
        kept_page_url=event["page"]["url"],
        other_event_ts=copy["event_ts"],
        other_page_url=copy["page"]["url"],
    )


def _injection(
    events: Sequence[Mapping[str, Any]],
    deliveries: tuple[Delivery, Delivery],
    exact_count: int,
    conflicts: Sequence[tuple[int, Event]],
    resent: Sequence[int] | None,
) -> Injection:
    """The ledger: `conflicts` pairs an event index with its copy; `resent` lists the events of
    the file delivered again (None when no file is)."""
    by_file = records_by_file(deliveries)
    redelivered = 0 if resent is None else len(resent)  # one record per event line
    ids = frozenset(event["event_id"] for event in events)
    later_times = [parse_ts(copy["event_ts"]) for _, copy in conflicts]
    later_times += [parse_ts(events[index]["event_ts"]) for index in resent or ()]
    again = "" if resent is None else f" and a file of {redelivered} records is delivered again"
    return Injection(
        deliveries=deliveries,
        injected={
            "exact_replays": exact_count,
            "conflicting_payloads": len(conflicts),
            "redelivered_files": 0 if resent is None else 1,
            "redelivered_records": redelivered,
        },
        records=sum(by_file.values()),
        description=(
            f"{exact_count} events are replayed byte for byte, {len(conflicts)} event ids "
            f"come back a run later with another payload{again}."
        ),
        records_by_file=by_file,
        event_ids=ids,
        silver_ids=ids,
        duplicate_rows=exact_count + len(conflicts) + redelivered,
        conflicts=tuple(_conflict(events[index], copy) for index, copy in conflicts),
        max_event_time=(latest(events), max(later_times, default=None)),
        min_on_time=(None, None),
    )
