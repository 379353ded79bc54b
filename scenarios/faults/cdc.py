"""Out-of-order CDC: user-profile changes arriving shuffled over several runs, with edge cases."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from scenarios.faults._common import (
    MILLISECOND,
    Event,
    check_bool,
    check_fraction,
    copy_event,
    event_file,
    file_name,
    iso_ms,
    json_lines,
    parse_ts,
    seeded,
    share,
)
from scenarios.faults.model import Delivery, FaultArgumentError, Injection

__all__ = ["OPERATIONS", "out_of_order_changes"]

OPERATIONS = frozenset({"INSERT", "UPDATE", "DELETE"})
_NEXT_PLAN = {"free": "pro", "pro": "enterprise", "enterprise": "free"}
_REINSERT_AFTER = (timedelta(minutes=1), timedelta(hours=6))


@dataclass(order=True)
class _Change:
    """A change and its place in the intended order: time, then position, then tie rank."""

    instant: datetime
    position: int
    tie_rank: int
    row: Event = field(compare=False)


def _check_changes(changes: Sequence[Mapping[str, Any]]) -> None:
    for row in changes:
        if (
            not isinstance(row.get("user_id"), str)
            or row.get("operation") not in OPERATIONS
            or not isinstance(row.get("changed_at"), str)
        ):
            raise FaultArgumentError(
                "changes must be CDC rows with a string user_id and changed_at and an operation "
                f"in {sorted(OPERATIONS)}, got {str(row)[:120]}"
            )


def _histories(changes: Sequence[Mapping[str, Any]]) -> dict[str, list[_Change]]:
    """Per user, the changes in their intended order (changed_at, then sequence_num)."""
    ordered = sorted(
        changes, key=lambda row: (parse_ts(row["changed_at"]), row.get("sequence_num") or 0)
    )
    histories: dict[str, list[_Change]] = defaultdict(list)
    for position, row in enumerate(ordered):
        change = _Change(parse_ts(row["changed_at"]), position, 0, copy_event(row))
        histories[row["user_id"]].append(change)
    return histories


def _add_deletes(
    histories: dict[str, list[_Change]],
    fraction: float,
    positions: Iterator[int],
    rng: random.Random,
) -> int:
    """DELETE a share of the users still alive, after their last change; none without changes."""
    horizon = max((c.instant for h in histories.values() for c in h), default=None)
    if horizon is None:
        return 0
    alive = sorted(
        user for user, history in histories.items() if history[-1].row["operation"] != "DELETE"
    )
    chosen = rng.sample(alive, share(fraction, len(alive)))
    for user in chosen:
        last = histories[user][-1]
        span_ms = max((horizon - last.instant) // MILLISECOND, 60_000)
        instant = last.instant + rng.randint(1, span_ms) * MILLISECOND
        row = dict(last.row, operation="DELETE", changed_at=iso_ms(instant))
        histories[user].append(_Change(instant, next(positions), 0, row))
    return len(chosen)


def _add_reinserts(
    histories: dict[str, list[_Change]],
    fraction: float,
    positions: Iterator[int],
    rng: random.Random,
) -> int:
    """INSERT a share of the deleted users again, a little after their DELETE."""
    deleted = sorted(
        user for user, history in histories.items() if history[-1].row["operation"] == "DELETE"
    )
    chosen = rng.sample(deleted, share(fraction, len(deleted)))
    low, high = (bound // MILLISECOND for bound in _REINSERT_AFTER)
    for user in chosen:
        last = histories[user][-1]
        instant = last.instant + rng.randint(low, high) * MILLISECOND
        row = dict(last.row, operation="INSERT", changed_at=iso_ms(instant), plan="free")
        histories[user].append(_Change(instant, next(positions), 0, row))
    return len(chosen)


def _add_ties(histories: dict[str, list[_Change]], fraction: float, rng: random.Random) -> int:
    """For a share of the users, an UPDATE with the same changed_at as one of their changes.

    It comes right after that change in sequence (its tie rank is higher): only sequence_num
    tells which of the two is current.
    """
    users = sorted(
        user
        for user, history in histories.items()
        if any(c.row["operation"] != "DELETE" for c in history)
    )
    chosen = rng.sample(users, share(fraction, len(users)))
    for user in chosen:
        history = histories[user]
        tied = rng.choice([c for c in history if c.row["operation"] != "DELETE"])
        plan = _NEXT_PLAN.get(str(tied.row.get("plan")), "pro")
        row = dict(tied.row, operation="UPDATE", plan=plan)
        history.append(_Change(tied.instant, tied.position, tied.tie_rank + 1, row))
        history.sort()
    return len(chosen)


def out_of_order_changes(
    changes: Sequence[Mapping[str, Any]],
    *,
    seed: int,
    batches: int = 3,
    shuffle: bool = True,
    delete_fraction: float = 0.05,
    reinsert_fraction: float = 0.5,
    tie_fraction: float = 0.05,
) -> Injection:
    """Deliver the CDC feed over `batches` runs, in shuffled arrival order, with edge cases.

    Added to `changes` (e.g. from `scenarios.generator.generate_user_changes`):

    * extra DELETEs: ``delete_fraction`` of the users still alive are deleted after their last
      change;
    * re-INSERTs: ``reinsert_fraction`` of the deleted users (original and extra deletes) come
      back with an INSERT 1 minute to 6 hours after their DELETE (plan ``free``);
    * ties: for ``tie_fraction`` of the users, an UPDATE (another plan) with exactly the
      ``changed_at`` of one of their INSERT / UPDATE rows, ordered after it.

    Then ``sequence_num`` is renumbered 1..n over all rows in their intended order
    (``changed_at``, then the original ``sequence_num``, ties after the row they tie), so it is
    unique, never null, and orders each user's history whether a consumer sequences by
    ``sequence_num`` alone or by ``(changed_at, sequence_num)``. Rows arrive in that order, or
    shuffled when `shuffle`, cut into `batches` consecutive deliveries of near-equal size (an
    UPDATE may arrive runs before its user's INSERT). The expected SCD2 history is left to the
    harness's reference model: ``changes`` holds every row in arrival order.

    Args:
        changes: Clean CDC rows.
        seed: Any int; the same seed and knobs give byte-identical deliveries.
        batches: Number of deliveries (pipeline runs), >= 1.
        shuffle: Whether arrival order is a random permutation.
        delete_fraction: Share of live users given an extra DELETE, in [0, 1].
        reinsert_fraction: Share of deleted users inserted again, in [0, 1].
        tie_fraction: Share of users given an UPDATE tied on ``changed_at``, in [0, 1].

    Returns:
        `batches` deliveries of one ``user_changes`` file each; ``changes`` per delivery;
        counts ``changes``, ``extra_deletes``, ``reinserts``, ``sequence_ties`` and
        ``arrivals_out_of_order`` (rows arriving after a later row of the same user).

    Raises:
        FaultArgumentError: If a knob is out of range or a row is not a CDC row.
    """
    _check_knobs(batches, shuffle, delete_fraction, reinsert_fraction, tie_fraction)
    _check_changes(changes)
    rng = seeded("out_of_order_changes", seed)

    histories = _histories(changes)
    positions = itertools.count(len(changes))  # added rows sort after originals at equal times
    deletes = _add_deletes(histories, delete_fraction, positions, rng)
    reinserts = _add_reinserts(histories, reinsert_fraction, positions, rng)
    ties = _add_ties(histories, tie_fraction, rng)
    rows = _renumbered(histories)
    if shuffle:
        rng.shuffle(rows)
    arrived = _cut(rows, batches)

    deliveries = [_delivery(seed, number, batch) for number, batch in enumerate(arrived, start=1)]
    order = "shuffled" if shuffle else "in order"
    return Injection(
        deliveries=tuple(deliveries),
        injected={
            "changes": len(rows),
            "extra_deletes": deletes,
            "reinserts": reinserts,
            "sequence_ties": ties,
            "arrivals_out_of_order": _arrivals_out_of_order(rows),
        },
        records=0,
        description=(
            f"{len(rows)} user changes arrive {order} over {batches} run(s), with {deletes} "
            f"extra delete(s), {reinserts} re-insert(s) after a delete and {ties} changed_at "
            "tie(s) broken by sequence_num."
        ),
        changes=tuple(arrived),
        max_event_time=(None,) * batches,
        min_on_time=(None,) * batches,
    )


def _check_knobs(
    batches: int,
    shuffle: bool,
    delete_fraction: float,
    reinsert_fraction: float,
    tie_fraction: float,
) -> None:
    """Reject a knob out of range, with an error naming it."""
    if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
        raise FaultArgumentError(f"batches must be an int >= 1, got {batches!r}")
    check_bool("shuffle", shuffle)
    check_fraction("delete_fraction", delete_fraction)
    check_fraction("reinsert_fraction", reinsert_fraction)
    check_fraction("tie_fraction", tie_fraction)


def _renumbered(histories: Mapping[str, list[_Change]]) -> list[Event]:
    """Every row in its intended order, ``sequence_num`` renumbered 1..n in that order."""
    intended = sorted(change for history in histories.values() for change in history)
    rows = []
    for sequence_num, change in enumerate(intended, start=1):
        change.row["sequence_num"] = sequence_num
        rows.append(change.row)
    return rows


def _cut(rows: Sequence[Event], batches: int) -> list[tuple[Event, ...]]:
    """`rows` cut into `batches` consecutive parts of near-equal size, the larger ones first."""
    size, extra = divmod(len(rows), batches)
    bounds = [0]
    for number in range(batches):
        bounds.append(bounds[-1] + size + (1 if number < extra else 0))
    return [tuple(rows[bounds[i] : bounds[i + 1]]) for i in range(batches)]


def _arrivals_out_of_order(rows: Sequence[Event]) -> int:
    """Rows arriving after a row of the same user with a higher ``sequence_num``."""
    latest_seen: dict[str, int] = {}
    out_of_order = 0
    for row in rows:
        seen = latest_seen.get(row["user_id"], 0)
        out_of_order += row["sequence_num"] < seen
        latest_seen[row["user_id"]] = max(seen, row["sequence_num"])
    return out_of_order


def _delivery(seed: int, number: int, batch: Sequence[Event]) -> Delivery:
    """Delivery `number`: one ``user_changes`` file of `batch`."""
    name = file_name("cdc", seed, number, "user-changes")
    return Delivery((event_file(name, json_lines(batch), folder="user_changes"),))
