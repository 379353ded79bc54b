"""A plain-Python reference model of SCD Type 1 and Type 2, to check the Spark engine against.

It replays the changes one by one in sequence order, as the Lakeflow documentation describes
them, with no cleverness: a dict of current rows (SCD1) or of open versions (SCD2). It shares
no code with `pipeline.transforms.scd2`, and it never starts a JVM.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

Kind = Literal["upsert", "delete", "truncate"]
Key = tuple[Hashable, ...]
Values = Mapping[str, Any]


class AmbiguousChangesError(ValueError):
    """Raised when two different changes share a key and a sequence value."""


@dataclass(frozen=True)
class Change:
    """One change: for a delete or a truncate, `values` is ignored (and best left empty)."""

    key: Key
    sequence: Any
    kind: Kind
    values: tuple[tuple[str, Any], ...] = ()

    def effect(self) -> tuple[Kind, tuple[tuple[str, Any], ...]]:
        """What the change does, whatever else its row held."""
        return (self.kind, self.values if self.kind == "upsert" else ())


@dataclass
class Version:
    """One SCD2 version: values valid from `start` (inclusive) to `end` (exclusive, None: open)."""

    key: Key
    values: dict[str, Any]
    start: Any
    end: Any = None


def deduplicated(changes: Iterable[Change]) -> list[Change]:
    """The changes with repeats dropped, in sequence order.

    Raises:
        AmbiguousChangesError: two changes with one key and sequence value differ in effect, or a
            truncate shares its sequence value with a change.
    """
    by_identity: dict[tuple[Any, ...], Change] = {}
    for change in changes:
        identity = (
            ("truncate", change.sequence)
            if change.kind == "truncate"
            else (
                change.key,
                change.sequence,
            )
        )
        kept = by_identity.setdefault(identity, change)
        if kept.effect() != change.effect():
            raise AmbiguousChangesError(f"{kept} and {change} share a key and a sequence value")
    unique = list(by_identity.values())
    truncated_at = {c.sequence for c in unique if c.kind == "truncate"}
    if any(c.sequence in truncated_at for c in unique if c.kind != "truncate"):
        raise AmbiguousChangesError("a truncate shares its sequence value with a change")
    return sorted(unique, key=lambda change: change.sequence)


def _filled(values: Values, current: Values | None, ignore_null_updates: bool) -> dict[str, Any]:
    if not ignore_null_updates or current is None:
        return dict(values)
    return {name: current[name] if value is None else value for name, value in values.items()}


def scd1(
    changes: Iterable[Change],
    *,
    ignore_null_updates: bool = False,
    initial: Mapping[Key, Values] | None = None,
) -> dict[Key, dict[str, Any]]:
    """The SCD1 table: key to current values. `initial` rows come before every change."""
    rows = {key: dict(values) for key, values in (initial or {}).items()}
    for change in deduplicated(changes):
        if change.kind == "truncate":
            rows.clear()
        elif change.kind == "delete":
            rows.pop(change.key, None)
        else:
            rows[change.key] = _filled(
                dict(change.values), rows.get(change.key), ignore_null_updates
            )
    return rows


def scd2(
    changes: Iterable[Change],
    *,
    tracked: Collection[str] | None = None,
    ignore_null_updates: bool = False,
) -> list[Version]:
    """The SCD2 table: every version. `tracked` None means every value column is tracked."""
    versions: list[Version] = []
    open_versions: dict[Key, Version] = {}
    for change in deduplicated(changes):
        if change.kind == "truncate":
            raise ValueError("SCD type 2 has no truncates")
        current = open_versions.get(change.key)
        if change.kind == "delete":
            if current is not None:
                current.end = change.sequence
                del open_versions[change.key]
            continue
        values = _filled(
            dict(change.values), None if current is None else current.values, ignore_null_updates
        )
        compared = values.keys() if tracked is None else tracked
        if current is not None and all(values[c] == current.values[c] for c in compared):
            current.values = values  # untracked columns change in place
            continue
        if current is not None:
            current.end = change.sequence
        version = Version(change.key, values, change.sequence)
        versions.append(version)
        open_versions[change.key] = version
    return versions


def scd2_problems(versions: Iterable[Version], changes: Iterable[Change]) -> list[str]:
    """Broken SCD2 invariants, described; empty when all hold.

    Per key: at most one open version; every version is non-empty (start < end); versions do
    not overlap; and where one version ends and the next does not start right there, a delete
    of that key is sequenced exactly at the end.
    """
    deletes = {(c.key, c.sequence) for c in changes if c.kind == "delete"}
    by_key: dict[Key, list[Version]] = {}
    for version in versions:
        by_key.setdefault(version.key, []).append(version)
    problems: list[str] = []
    for key, history in by_key.items():
        history.sort(key=lambda version: version.start)
        if sum(version.end is None for version in history) > 1:
            problems.append(f"{key}: more than one open version")
        for version in history:
            if version.end is not None and not version.start < version.end:
                problems.append(f"{key}: empty or reversed interval {version}")
        for earlier, later in pairwise(history):
            if earlier.end is None or earlier.end > later.start:
                problems.append(f"{key}: {earlier} overlaps {later}")
            elif earlier.end < later.start and (key, earlier.end) not in deletes:
                problems.append(f"{key}: gap after {earlier} without a delete")
        last = history[-1]
        if last.end is not None and (key, last.end) not in deletes:
            problems.append(f"{key}: {last} closed without a delete")
    return problems
