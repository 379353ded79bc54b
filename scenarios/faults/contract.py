"""Fault injectors for generated events: each returns the faulty events and what to expect."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["Event", "InjectedViolations", "inject_contract_violations"]

Event = dict[str, Any]


@dataclass(frozen=True)
class InjectedViolations:
    """Events with contract violations, and the failed count each rule should report."""

    events: list[Event]
    failed: Mapping[str, Mapping[str, int]]
    """Per table, per rule: how many rows fail it (rules not listed: none)."""


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def inject_contract_violations(
    events: list[Event],
    *,
    seed: int,
    future_after: datetime,
    unknown_event_types: int = 3,
    missing_user_ids: int = 2,
    future_events: int = 2,
    negative_prices: int = 2,
    zero_quantities: int = 2,
    malformed_event_ids: int = 2,
    unparseable_timestamps: int = 2,
    copies_of_dropped: int = 2,
) -> InjectedViolations:
    """Break the contract rules of `contracts.rules` in distinct events, each in one way.

    Every changed event fails exactly one silver rule or one bronze rule, so the expected
    counts add up. Copies (same `event_id`) of events with an unknown type are appended:
    deduplication drops them, so they count once.

    Args:
        events: clean generated events (not changed; copies are returned).
        seed: chooses which events are broken.
        future_after: the clock of the time rule; future events are 2 hours after it.
        unknown_event_types: events whose type is not a known one (silver drops them).
        missing_user_ids: events without `user.user_id` (no user_key: dropped).
        future_events: events from 2 hours after `future_after` (dropped).
        negative_prices: events with a negative price (dropped).
        zero_quantities: events with quantity 0 (a silver warning: kept).
        malformed_event_ids: events whose id is not a UUID (a bronze warning).
        unparseable_timestamps: events whose `event_ts` does not parse (a bronze warning;
            silver quarantines them before its rules).
        copies_of_dropped: copies of unknown-type events (at most `unknown_event_types`).
    """
    kinds = {
        "unknown_event_types": unknown_event_types,
        "missing_user_ids": missing_user_ids,
        "future_events": future_events,
        "negative_prices": negative_prices,
        "zero_quantities": zero_quantities,
        "malformed_event_ids": malformed_event_ids,
        "unparseable_timestamps": unparseable_timestamps,
    }
    _check_counts(kinds, copies_of_dropped, len(events))
    rng = random.Random(seed)
    broken = [dict(event) for event in events]
    positions = iter(rng.sample(range(len(broken)), sum(kinds.values())))
    future_ts = _iso(future_after + timedelta(hours=2))
    unknown: list[int] = []
    for kind, count in kinds.items():
        for _ in range(count):
            index = next(positions)
            _break(kind, broken[index], future_ts, rng)
            if kind == "unknown_event_types":
                unknown.append(index)
    copies = [dict(broken[index]) for index in unknown[:copies_of_dropped]]
    return InjectedViolations(events=broken + copies, failed=_failed_counts(kinds))


def _check_counts(kinds: Mapping[str, int], copies_of_dropped: int, events: int) -> None:
    """Reject negative counts, more copies than unknown-type events, more violations than
    `events`."""
    if any(count < 0 for count in kinds.values()) or copies_of_dropped < 0:
        raise ValueError("Counts of injected violations must not be negative.")
    if copies_of_dropped > kinds["unknown_event_types"]:
        raise ValueError("copies_of_dropped must be at most unknown_event_types.")
    if sum(kinds.values()) > events:
        raise ValueError(f"{sum(kinds.values())} violations need at least as many events.")


def _break(kind: str, event: Event, future_ts: str, rng: random.Random) -> None:
    """Break one contract rule in `event` (in place), the one violation `kind` names."""
    if kind == "unknown_event_types":
        event["event_type"] = "teleport"
    elif kind == "missing_user_ids":
        event["user"] = {**event["user"], "user_id": None}
    elif kind == "future_events":
        event["event_ts"] = future_ts
    elif kind == "negative_prices":
        event["properties"] = {**event["properties"], "price": -9.99, "quantity": 1}
    elif kind == "zero_quantities":
        event["properties"] = {**event["properties"], "price": 9.99, "quantity": 0}
    elif kind == "malformed_event_ids":
        event["event_id"] = f"evt-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}"
    else:
        event["event_ts"] = "the day before yesterday"


def _failed_counts(kinds: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """Per table, per rule: how many rows fail it, from the count of each violation kind."""
    return {
        "bronze_events": {
            "event_id_is_uuid": kinds["malformed_event_ids"],
            "event_ts_parseable": kinds["unparseable_timestamps"],
        },
        "silver_events": {
            "event_type_known": kinds["unknown_event_types"],
            "user_key_present": kinds["missing_user_ids"],
            "event_time_not_in_future": kinds["future_events"],
            "price_not_negative": kinds["negative_prices"],
            "quantity_positive": kinds["zero_quantities"],
        },
    }
