"""Duplicates: replayed lines, reused event ids with another payload, a file sent twice."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from scenarios.faults._common import (
    Event,
    check_events,
    check_fraction,
    check_fractions_total,
    copy_event,
    event_file,
    file_name,
    iso_ms,
    latest,
    line,
    parse_ts,
    records_by_file,
    seeded,
    share,
)
from scenarios.faults.model import Conflict, Delivery, FaultArgumentError, Injection, LandingFile

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
    check_fraction("exact_fraction", exact_fraction)
    check_fraction("conflicting_fraction", conflicting_fraction)
    check_fractions_total(
        ("exact_fraction", "conflicting_fraction"), (exact_fraction, conflicting_fraction)
    )
    if not isinstance(redeliver_file, bool):
        raise FaultArgumentError(f"redeliver_file must be a bool, got {redeliver_file!r}")
    check_events(events)
    rng = seeded("duplicates", seed)

    exact_count = share(exact_fraction, len(events))
    conflicting_count = share(conflicting_fraction, len(events))
    chosen = rng.sample(range(len(events)), exact_count + conflicting_count)
    replayed, conflicting = chosen[:exact_count], sorted(chosen[exact_count:])

    # (position, 0) for every event, (a later position, 1) for its replay: once sorted, a
    # replay always follows its original.
    keyed = [((index, 0), index) for index in range(len(events))]
    keyed += [((rng.randint(index, len(events) - 1), 1), index) for index in replayed]
    order = [index for _, index in sorted(keyed)]
    cut = len(order) - max(1, len(order) // 4) if order else 0
    first = event_file(
        file_name("dup", seed, 1, "events-a"), b"".join(line(events[i]) for i in order[:cut])
    )
    second = event_file(
        file_name("dup", seed, 1, "events-b"), b"".join(line(events[i]) for i in order[cut:])
    )

    pages = [event["page"] for event in events]
    copies = [_conflicting(events[index], pages, rng) for index in conflicting]
    later: list[LandingFile] = [
        event_file(file_name("dup", seed, 2, "conflicting"), b"".join(map(line, copies)))
    ]
    if redeliver_file:
        later.append(event_file(file_name("dup", seed, 2, "events-b-again"), second.content))
    deliveries = (Delivery((first, second)), Delivery(tuple(later)))

    by_file = records_by_file(deliveries)
    redelivered = second.records if redeliver_file else 0
    ids = frozenset(event["event_id"] for event in events)
    later_times = [parse_ts(copy["event_ts"]) for copy in copies]
    if redeliver_file:
        later_times += [parse_ts(events[index]["event_ts"]) for index in order[cut:]]
    again = f" and a file of {redelivered} records is delivered again" if redeliver_file else ""
    return Injection(
        deliveries=deliveries,
        injected={
            "exact_replays": exact_count,
            "conflicting_payloads": conflicting_count,
            "redelivered_files": 1 if redeliver_file else 0,
            "redelivered_records": redelivered,
        },
        records=sum(by_file.values()),
        description=(
            f"{exact_count} events are replayed byte for byte, {conflicting_count} event ids "
            f"come back a run later with another payload{again}."
        ),
        records_by_file=by_file,
        event_ids=ids,
        silver_ids=ids,
        duplicate_rows=exact_count + conflicting_count + redelivered,
        conflicts=tuple(
            Conflict(
                event_id=copy["event_id"],
                kept_event_ts=events[index]["event_ts"],
                kept_page_url=events[index]["page"]["url"],
                other_event_ts=copy["event_ts"],
                other_page_url=copy["page"]["url"],
            )
            for index, copy in zip(conflicting, copies, strict=True)
        ),
        max_event_time=(latest(events), max(later_times, default=None)),
        min_on_time=(None, None),
    )
