"""Combining faults: merge injections run by run, combine drawn faults, describe them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from scenarios.faults._common import (
    DEFAULT_WATERMARK_DELAY,
    MAX_FILES_PER_RUN,
    Event,
    check_events,
)
from scenarios.faults.cdc import out_of_order_changes
from scenarios.faults.clock import clock_skew
from scenarios.faults.corrupt import corrupt_records
from scenarios.faults.drift import schema_drift
from scenarios.faults.late import late_data
from scenarios.faults.model import (
    Delivery,
    FaultArgumentError,
    IncompatibleFaultsError,
    Injection,
)
from scenarios.faults.pii import pii_in_unexpected_places
from scenarios.faults.replay import duplicates
from scenarios.faults.volume import burst

__all__ = ["COMBINABLE_FAULTS", "FaultDraw", "combination", "compose", "describe", "split_events"]


def split_events(events: Sequence[Mapping[str, Any]], parts: int) -> list[list[Event]]:
    """Deal `events` round-robin into `parts` disjoint lists, each in the original order.

    Each part spans the same time window as the whole, so faults drawn from different parts
    can be combined without one part's events being much later than another's.
    """
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise FaultArgumentError(f"parts must be an int >= 1, got {parts!r}")
    return [[dict(event) for event in events[offset::parts]] for offset in range(parts)]


def compose(
    *injections: Injection,
    watermark_delay: timedelta = DEFAULT_WATERMARK_DELAY,
    max_files_per_delivery: int = MAX_FILES_PER_RUN,
) -> Injection:
    """Combine injections into one scenario: deliveries merged run by run.

    Delivery ``i`` of the result holds the files of every injection's delivery ``i``; counts
    are summed, id sets and case lists joined. The combination is refused when the parts'
    expectations would no longer hold: shared file names or event ids, or events in an
    earlier run late enough to move the watermark past events that one part needs on time
    (e.g. `clock_skew`'s future events with `late_data`'s within-watermark copies).

    Args:
        injections: One or more injections drawn from disjoint events (see `split_events`).
        watermark_delay: The pipeline's watermark delay.
        max_files_per_delivery: The most event files a run may hold and still be one
            micro-batch (the runner's ``max_files_per_trigger``).

    Returns:
        The combined injection.

    Raises:
        FaultArgumentError: If no injection is given.
        IncompatibleFaultsError: If the injections cannot be combined (a ValueError too).
    """
    if not injections:
        raise FaultArgumentError("compose needs at least one injection")
    runs = max(len(injection.deliveries) for injection in injections)
    _check_file_names(injections)
    _check_event_ids(injections)
    _check_watermark(injections, runs, watermark_delay)
    _check_files_per_run(injections, runs, max_files_per_delivery)

    latest = _by_delivery(injections, "max_event_time", runs)
    earliest = _by_delivery(injections, "min_on_time", runs)
    return Injection(
        deliveries=_merged_deliveries(injections, runs),
        injected=_summed(injections, "injected"),
        records=sum(injection.records for injection in injections),
        description=" ".join(injection.description for injection in injections),
        records_by_file=_summed(injections, "records_by_file"),
        quarantined=sum(injection.quarantined for injection in injections),
        unpredicted=sum(injection.unpredicted for injection in injections),
        event_ids=_union(injections, "event_ids"),
        silver_ids=_union(injections, "silver_ids"),
        maybe_silver_ids=_union(injections, "maybe_silver_ids"),
        late_ids=_union(injections, "late_ids"),
        silver_quarantine_ids=_union(injections, "silver_quarantine_ids"),
        duplicate_rows=sum(injection.duplicate_rows for injection in injections),
        drift=_joined(injections, "drift"),
        clock=_joined(injections, "clock"),
        pii=_joined(injections, "pii"),
        pii_values=_union(injections, "pii_values"),
        conflicts=_joined(injections, "conflicts"),
        changes=_merged_changes(injections, runs),
        corpus_records=_summed(injections, "corpus_records"),
        max_event_time=tuple(max(values, default=None) for values in latest),
        min_on_time=tuple(min(values, default=None) for values in earliest),
    )


def _check_file_names(injections: Sequence[Injection]) -> None:
    """Refuse injections that write the same file name."""
    names = Counter((f.folder, f.name) for injection in injections for f in injection.files)
    clashes = sorted(name for (_, name), count in names.items() if count > 1)
    if clashes:
        raise IncompatibleFaultsError(
            f"injections write the same file names {clashes[:3]}: draw them with other seeds"
        )


def _check_event_ids(injections: Sequence[Injection]) -> None:
    """Refuse injections that share event ids."""
    seen: set[str] = set()
    for injection in injections:
        shared = seen & injection.event_ids
        if shared:
            raise IncompatibleFaultsError(
                f"injections share {len(shared)} event ids (e.g. {min(shared)}): their "
                "expectations would collide; draw each fault from its own part of the clean "
                "events (split_events)"
            )
        seen |= injection.event_ids


def _check_watermark(injections: Sequence[Injection], runs: int, delay: timedelta) -> None:
    """Refuse a run whose on-time events the earlier runs' events would make late."""
    latest = _by_delivery(injections, "max_event_time", runs)
    reached: datetime | None = None
    for run in range(1, runs):
        reached = max([*latest[run - 1], *([reached] if reached else [])], default=None)
        if reached is None:
            continue
        watermark = reached - delay
        for injection in injections:
            needs = injection.min_on_time[run] if run < len(injection.min_on_time) else None
            if needs is not None and needs <= watermark:
                raise IncompatibleFaultsError(
                    f"run {run + 1} has events that must be on time from {needs.isoformat()}, "
                    f"but earlier runs move the watermark to {watermark.isoformat()} (events "
                    f"up to {reached.isoformat()}): '{injection.description}' cannot be "
                    "combined with faults whose events are that late (future timestamps?)"
                )


def _check_files_per_run(injections: Sequence[Injection], runs: int, max_files: int) -> None:
    """Refuse a run with more event files than one micro-batch reads."""
    for run in range(runs):
        files = sum(
            1
            for injection in injections
            if run < len(injection.deliveries)
            for f in injection.deliveries[run].files
            if f.folder == "events"
        )
        if files > max_files:
            raise IncompatibleFaultsError(
                f"run {run + 1} would hold {files} event files, more than {max_files}: the "
                "runner would split it into several micro-batches and the watermark could "
                "move between them; combine fewer faults"
            )


def _by_delivery(
    injections: Sequence[Injection], attribute: str, runs: int
) -> list[list[datetime]]:
    """Per run, the injections' values of the per-delivery `attribute` that are not None."""
    values: list[list[datetime]] = [[] for _ in range(runs)]
    for injection in injections:
        for index, value in enumerate(getattr(injection, attribute)):
            if value is not None:
                values[index].append(value)
    return values


def _merged_deliveries(injections: Sequence[Injection], runs: int) -> tuple[Delivery, ...]:
    """Per run, one delivery with the files of every injection's delivery of that run."""
    return tuple(
        Delivery(
            tuple(
                landing
                for injection in injections
                if run < len(injection.deliveries)
                for landing in injection.deliveries[run].files
            )
        )
        for run in range(runs)
    )


def _merged_changes(
    injections: Sequence[Injection], runs: int
) -> tuple[tuple[Mapping[str, Any], ...], ...]:
    """Per run, the CDC rows of every injection for that run; none when no injection has any."""
    has_changes = any(injection.changes for injection in injections)
    return tuple(
        tuple(
            row
            for injection in injections
            if run < len(injection.changes)
            for row in injection.changes[run]
        )
        for run in range(runs if has_changes else 0)
    )


def _joined(injections: Sequence[Injection], attribute: str) -> Any:
    """The injections' tuples of `attribute`, concatenated."""
    return tuple(item for injection in injections for item in getattr(injection, attribute))


def _union(injections: Sequence[Injection], attribute: str) -> frozenset[str]:
    """The union of the injections' sets of `attribute`."""
    return frozenset().union(*(getattr(injection, attribute) for injection in injections))


def _summed(injections: Sequence[Injection], attribute: str) -> dict[str, int]:
    """The injections' counts of `attribute`, summed per key."""
    total: Counter[str] = Counter()
    for injection in injections:
        total.update(getattr(injection, attribute))
    return dict(total)


# ---------------------------------------------------------------------------- combinations


@dataclass(frozen=True)
class FaultDraw:
    """One fault of a combination: its generator's name, seed and knobs (keyword arguments)."""

    fault: str
    seed: int
    knobs: tuple[tuple[str, Any], ...] = ()


COMBINABLE_FAULTS: dict[str, Callable[..., Injection]] = {
    "late_data": late_data,
    "schema_drift": schema_drift,
    "duplicates": duplicates,
    "pii_in_unexpected_places": pii_in_unexpected_places,
    "clock_skew": clock_skew,
    "burst": burst,
    "corrupt_records": corrupt_records,
    "out_of_order_changes": out_of_order_changes,
}
"""The faults `combination` accepts, by name; all but ``out_of_order_changes`` change events."""


def combination(
    events: Sequence[Mapping[str, Any]],
    changes: Sequence[Mapping[str, Any]],
    draws: Sequence[FaultDraw],
    *,
    corpus_dir: Path | None = None,
) -> Injection:
    """The faults of `draws` composed into one scenario, each on its own share of the events.

    The events are dealt round-robin into one part per event fault (`split_events`);
    ``out_of_order_changes`` works on `changes`. Late data and clock skew's future events
    cannot meet (the future events would move the watermark past the late copies that must be
    on time), so that pair is refused unless ``future_fraction`` is 0. Very small event lists
    can still make a combination impossible: `compose` then raises `IncompatibleFaultsError`.

    Args:
        events: Clean events (a few hundred or more).
        changes: Clean CDC rows, used when ``out_of_order_changes`` is drawn.
        draws: Distinct faults from `COMBINABLE_FAULTS`, at least one.
        corpus_dir: The JSON test suite for ``corrupt_records``, None to leave it out.

    Returns:
        The composed injection; ``injected`` counts per kind over all drawn faults.

    Raises:
        FaultArgumentError: An unknown or repeated fault, none, or a knob out of range.
        IncompatibleFaultsError: The drawn faults cannot be combined (a ValueError too).
    """
    names = [draw.fault for draw in draws]
    unknown = sorted(set(names) - set(COMBINABLE_FAULTS))
    if not draws or unknown or len(set(names)) != len(names):
        raise FaultArgumentError(
            f"draws must name distinct faults of {sorted(COMBINABLE_FAULTS)}, got {names}"
        )
    knobs = {draw.fault: dict(draw.knobs) for draw in draws}
    if "late_data" in knobs and knobs.get("clock_skew", {}).get("future_fraction", 0) > 0:
        raise IncompatibleFaultsError(
            "clock_skew's future events would move the watermark past late_data's late copies "
            "that must be on time: give clock_skew future_fraction=0 beside late_data"
        )
    check_events(events, minimum=2, why=" to draw faults from")
    event_draws = [draw for draw in draws if draw.fault != "out_of_order_changes"]
    parts = split_events(events, max(len(event_draws), 1))
    injections = []
    for draw, part in zip(event_draws, parts, strict=False):
        extra = {"corpus_dir": corpus_dir} if draw.fault == "corrupt_records" else {}
        injections.append(
            COMBINABLE_FAULTS[draw.fault](part, seed=draw.seed, **knobs[draw.fault], **extra)
        )
    if "out_of_order_changes" in knobs:
        seed = next(draw.seed for draw in draws if draw.fault == "out_of_order_changes")
        injections.append(out_of_order_changes(changes, seed=seed, **knobs["out_of_order_changes"]))
    return compose(*injections)


# ------------------------------------------------------------------------------ describing


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def describe(injection: Injection) -> str:
    """One paragraph for a report: what was injected and what the invariants expect."""
    runs = len(injection.deliveries)
    injected = ", ".join(
        f"{count:,} {kind.replace('_', ' ')}" for kind, count in injection.injected.items() if count
    )
    expected = []
    if injection.silver_ids or injection.maybe_silver_ids:
        maybe = len(injection.maybe_silver_ids)
        expected.append(
            f"{_plural(len(injection.silver_ids), 'event')} in silver_events"
            + (f" (and up to {maybe:,} more)" if maybe else "")
        )
    if injection.late_ids:
        expected.append(f"{len(injection.late_ids):,} late")
    if injection.duplicate_rows:
        expected.append(f"{_plural(injection.duplicate_rows, 'row')} dropped as duplicates")
    if injection.quarantined:
        expected.append(f"at least {injection.quarantined:,} lines in bronze_quarantine")
    if injection.silver_quarantine_ids:
        expected.append(f"{len(injection.silver_quarantine_ids):,} in silver_quarantine")
    if injection.unpredicted:
        expected.append(f"{injection.unpredicted:,} records whose placement is not predicted")
    if injection.drift:
        expected.append(f"{_plural(len(injection.drift), 'drifted value')} kept where recorded")
    if injection.pii_values:
        expected.append(f"none of {len(injection.pii_values):,} planted PII strings downstream")
    if injection.changes:
        expected.append(f"the SCD2 history of {len(injection.all_changes):,} CDC changes")
    return (
        f"{injection.description} In all, {_plural(injection.records, 'event record')} in "
        f"{_plural(len(injection.files), 'file')} over {_plural(runs, 'run')}"
        + (f"; injected: {injected}" if injected else "")
        + (f". Expected: {'; '.join(expected)}." if expected else ".")
    )
