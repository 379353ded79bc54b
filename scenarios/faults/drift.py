"""Schema drift: events whose shape departs from `EVENT_SCHEMA` in the ways producers drift."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from scenarios.faults._common import (
    Event,
    assign_kinds,
    check_events,
    check_fraction,
    copy_event,
    count_kinds,
    latest,
    records_by_file,
    seeded,
    share,
    single_delivery,
)
from scenarios.faults.model import DriftCase, Injection

__all__ = ["DRIFT_KINDS", "schema_drift"]

DRIFT_KINDS = (
    "added_top_level_field",
    "added_nested_field",
    "removed_field",
    "number_as_string",
    "string_as_object",
    "case_variant_name",
    "schema_version_bump",
)
"""The kinds `schema_drift` spreads its drifted events over."""

_CHANNELS = ("email", "social", "search", "display")
_TIERS = ("bronze", "silver", "gold", "platinum")
_DISTRICTS = ("Centre", "North", "South", "East", "West", "Old Town")


def _renamed(event: Event, old: str, new: str) -> Event:
    """`event` with key `old` renamed to `new`, in the same position."""
    return {new if key == old else key: value for key, value in event.items()}


def _drift(kind: str, event: Event, rng: random.Random) -> tuple[Event, list[DriftCase]]:
    """Apply one drift kind to a copy of `event`; return it and where its values must be."""
    event_id = event["event_id"]
    if kind == "added_top_level_field":
        campaign = {"id": f"cmp-{rng.randrange(1000):03d}", "channel": rng.choice(_CHANNELS)}
        event["campaign"] = campaign
        return event, [DriftCase(kind, event_id, ("campaign",), campaign, "rescued")]
    if kind == "added_nested_field":
        tier = rng.choice(_TIERS)
        event["user"]["loyalty_tier"] = tier
        return event, [DriftCase(kind, event_id, ("user", "loyalty_tier"), tier, "rescued")]
    if kind == "removed_field":
        browser = event["device"].pop("browser")
        return event, [DriftCase(kind, event_id, ("device", "browser"), browser, "absent")]
    if kind == "number_as_string":
        price = event["properties"]["price"]
        text = "12.50" if price is None else f"{price:.2f}"
        event["properties"]["price"] = text
        return event, [DriftCase(kind, event_id, ("properties", "price"), text, "rescued")]
    if kind == "string_as_object":
        city = {"name": event["geo"]["city"], "district": rng.choice(_DISTRICTS)}
        event["geo"]["city"] = city
        return event, [DriftCase(kind, event_id, ("geo", "city"), city, "typed")]
    if kind == "case_variant_name":
        event_type = event["event_type"]
        return _renamed(event, "event_type", "Event_Type"), [
            DriftCase(kind, event_id, ("Event_Type",), event_type, "rescued")
        ]
    # schema_version_bump: version 2 of the producer renamed event_type to event_name
    event_type = event["event_type"]
    bumped = _renamed(event, "event_type", "event_name")
    bumped["schema_version"] = 2
    return bumped, [
        DriftCase(kind, event_id, ("event_name",), event_type, "rescued"),
        DriftCase(kind, event_id, ("schema_version",), 2, "typed"),
    ]


def schema_drift(
    events: Sequence[Mapping[str, Any]], *, seed: int, drift_fraction: float = 0.1
) -> Injection:
    """Deliver `events` with a share of them drifted from the schema, in one run.

    The drifted events are spread as evenly as possible over `DRIFT_KINDS` (counts differ by
    at most one; which kinds get the extra one depends on the seed):

    * ``added_top_level_field``: a new object ``campaign`` -> rescued at ``campaign``;
    * ``added_nested_field``: ``user.loyalty_tier`` -> rescued at ``user.loyalty_tier``;
    * ``removed_field``: ``device.browser`` deleted -> typed column null, nothing rescued;
    * ``number_as_string``: ``properties.price`` as a string such as ``"12.50"`` -> typed
      price null, the string rescued at ``properties.price``;
    * ``string_as_object``: ``geo.city`` as ``{"name": ..., "district": ...}`` -> kept in the
      typed string column as its compact JSON text (Spark reads any JSON value into a string
      column), not rescued;
    * ``case_variant_name``: ``event_type`` renamed ``Event_Type`` -> typed event_type null,
      rescued at ``Event_Type`` (JSON field matching is case-sensitive);
    * ``schema_version_bump``: ``schema_version`` 2 (typed) with ``event_type`` renamed
      ``event_name`` -> rescued at ``event_name``.

    No kind touches ``event_id`` or ``event_ts``, so every event must reach silver.

    Args:
        events: Clean events.
        seed: Any int; the same seed and knobs give byte-identical deliveries.
        drift_fraction: Share of `events` to drift, in [0, 1].

    Returns:
        One delivery; ``drift`` lists per event the JSON path, the value and where bronze must
        keep it; ``injected`` counts events per kind.

    Raises:
        FaultArgumentError: If a knob is out of range.
    """
    check_fraction("drift_fraction", drift_fraction)
    check_events(events)
    rng = seeded("schema_drift", seed)
    count = share(drift_fraction, len(events))
    kinds = assign_kinds(len(events), count, DRIFT_KINDS, rng)

    written: list[Event] = []
    cases: list[DriftCase] = []
    for index, event in enumerate(events):
        if index in kinds:
            drifted, found = _drift(kinds[index], copy_event(event), rng)
            written.append(drifted)
            cases += found
        else:
            written.append(dict(event))
    deliveries = single_delivery("drift", seed, written)
    by_file = records_by_file(deliveries)
    injected = count_kinds(DRIFT_KINDS, kinds)
    ids = frozenset(event["event_id"] for event in events)
    return Injection(
        deliveries=deliveries,
        injected=injected,
        records=sum(by_file.values()),
        description=(
            f"{count} of {len(events)} events drift from the schema over {len(DRIFT_KINDS)} kinds "
            "(added, removed, retyped and case-renamed fields, a schema_version bump)."
        ),
        records_by_file=by_file,
        event_ids=ids,
        silver_ids=ids,
        drift=tuple(cases),
        max_event_time=(latest(events),),
        min_on_time=(None,),
    )
