"""Seeded records for any input of a harness file, and the faults of today's scenarios applied
to them, as landing lines.

`changes` draws the records of one arrival: keys from a pool (so keys change more than
once), sequence values increasing from `start`, values by field type. The faults
(`FAULTS`) each rewrite an arrival and say what they did, so the invariants know what every
line must become: a duplicate, a late or reordered change, a delete, a line that is not a
record, a record with a new field, a changed type or a missing field, personal data in free
text, a burst. Everything derives from the seed: the same seed gives the same lines.
"""

from __future__ import annotations

import csv
import io
import json
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from scenarios.generic.harness_file import Field, Input

__all__ = ["FAULTS", "Arrival", "changes", "lines", "with_fault"]

START = datetime(2026, 1, 1, tzinfo=UTC)
_WORDS = ("alpha", "delta", "ocean", "green", "ridge", "maple", "quartz", "lumen", "harbor")
_FIRST = ("Ada", "Bo", "Chen", "Dana", "Eli", "Fatima", "Goran", "Hana", "Ivo", "Jun")
_LAST = ("Lovelace", "Berg", "Okafor", "Silva", "Novak", "Tanaka", "Weber", "Rossi")
Record = dict[str, Any]


@dataclass
class Arrival:
    """One delivery of an input: its records, and the lines that land (a record's line, or a
    line a fault wrote), with what the faults did."""

    records: list[Record]
    corrupt: list[str] = field(default_factory=list)
    """Lines that are not records (they must end in the raw dataset's rescued data)."""
    notes: dict[str, int] = field(default_factory=dict)
    """Per fault, how many records or lines it touched."""


def _value(spec: Field, rng: random.Random, key_number: int) -> Any:
    if spec.values:
        return rng.choice(spec.values)
    kind = spec.type
    if kind in ("long", "int"):
        return rng.randrange(1, 10_000)
    if kind == "double":
        return round(rng.uniform(1, 1_000), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "date":
        return (START + timedelta(days=rng.randrange(365))).date().isoformat()
    if kind == "timestamp":
        return (START + timedelta(seconds=rng.randrange(86_400 * 365))).isoformat()
    if kind == "email":
        return f"{rng.choice(_FIRST).lower()}.{key_number}@example.com"
    if kind == "name":
        return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    if kind == "text":
        return " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(2, 7)))
    if kind == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return f"{spec.name}-{rng.randrange(1_000)}"


def _key(spec: Field, number: int) -> Any:
    if spec.type == "uuid":
        return str(uuid.UUID(int=number, version=4))
    return number if spec.type in ("long", "int") else f"{spec.name}-{number}"


def _sequence_value(spec: Field, at: datetime, seed: int, index: int) -> Any:
    """A sequence field's value for the `index`-th record of the arrival drawn with `seed`:
    increasing within an arrival and from one arrival to the next."""
    if spec.type == "timestamp":
        return at.isoformat()
    if spec.type == "date":
        return at.date().isoformat()
    return seed * 1_000_000 + index + 1


def changes(
    source: Input, *, seed: int, count: int, keys: int, start: datetime, step: timedelta
) -> list[Record]:
    """`count` upserts about `keys` distinct keys (each its own key when the input's records
    are not changes), their sequence values `start`, `start + step`, ... (in that order)."""
    rng = random.Random(f"{source.name}:{seed}")
    records = []
    for index in range(count):
        number = rng.randrange(1, keys + 1) if source.changes else seed * 1_000_000 + index + 1
        record: Record = {}
        for spec in source.fields:
            if spec.role == "key":
                record[spec.name] = _key(spec, number)
            elif spec.role == "sequence":
                record[spec.name] = _sequence_value(spec, start + step * index, seed, index)
            elif spec.delete is not None:
                record[spec.name] = spec.values[0] if spec.values else "UPSERT"
            else:
                record[spec.name] = _value(spec, rng, number)
        records.append(record)
    return records


# ---------------------------------------------------------------------- faults


def _pick(rng: random.Random, records: Sequence[Record], share: float) -> list[int]:
    return sorted(rng.sample(range(len(records)), max(1, int(len(records) * share))))


def _duplicates(source: Input, arrival: Arrival, rng: random.Random) -> None:
    chosen = _pick(rng, arrival.records, 0.1)
    arrival.records += [dict(arrival.records[i]) for i in chosen]
    arrival.notes["duplicates"] = len(chosen)


def _out_of_order(source: Input, arrival: Arrival, rng: random.Random) -> None:
    rng.shuffle(arrival.records)
    arrival.notes["out_of_order"] = len(arrival.records)


def _late(source: Input, arrival: Arrival, rng: random.Random) -> None:
    """Some records' sequence values moved a day (and seven seconds) back: changes that arrive
    after later ones. The seconds keep them off the 10-minute grid of the others, so no two
    changes of a key share a sequence value (which AUTO CDC refuses as ambiguous)."""
    sequence = next((f for f in source.fields if f.role == "sequence"), None)
    if sequence is None:
        return
    chosen = _pick(rng, arrival.records, 0.1)
    for i in chosen:
        value = arrival.records[i][sequence.name]
        if sequence.type == "timestamp":
            at = datetime.fromisoformat(value) - timedelta(days=1, seconds=7)
            arrival.records[i][sequence.name] = at.isoformat()
        elif sequence.type == "date":
            day = datetime.fromisoformat(value) - timedelta(days=1)
            arrival.records[i][sequence.name] = day.date().isoformat()
        else:
            arrival.records[i][sequence.name] = value - 500_007
    arrival.notes["late"] = len(chosen)


def _deletes(source: Input, arrival: Arrival, rng: random.Random) -> None:
    marker = source.delete_field
    if marker is None or marker.delete is None:
        return
    chosen = _pick(rng, arrival.records, 0.1)
    kept = (*source.keys, *source.sequences, marker.name)
    for i in chosen:
        record = {k: v for k, v in arrival.records[i].items() if k in kept}
        record[marker.name] = marker.delete
        arrival.records[i] = record
    arrival.notes["deletes"] = len(chosen)


def _corrupt(source: Input, arrival: Arrival, rng: random.Random) -> None:
    chosen = _pick(rng, arrival.records, 0.05)
    for i in chosen:
        text = json.dumps(_nested(arrival.records[i]))
        arrival.corrupt.append(text[: max(1, len(text) // 2)])  # a truncated line
    arrival.notes["corrupt"] = len(chosen)


def _new_field(source: Input, arrival: Arrival, rng: random.Random) -> None:
    chosen = _pick(rng, arrival.records, 0.2)
    for i in chosen:
        arrival.records[i]["harness_new_field"] = rng.choice(_WORDS)
    arrival.notes["new_field"] = len(chosen)


def _changed_type(source: Input, arrival: Arrival, rng: random.Random) -> None:
    """A number field holding text: what a producer that changed a type sends (a key field
    when the input has no other number)."""
    numeric = [f for f in source.fields if f.type in ("long", "int", "double")]
    numbers = [f.name for f in numeric if not f.role] or [f.name for f in numeric]
    if not numbers:
        return
    chosen = _pick(rng, arrival.records, 0.05)
    for i in chosen:
        arrival.records[i][numbers[0]] = f"n/a-{rng.randrange(100)}"
    arrival.notes["changed_type"] = len(chosen)


def _missing_field(source: Input, arrival: Arrival, rng: random.Random) -> None:
    optional = [f.name for f in source.fields if f.role is None and f.delete is None]
    if not optional:
        return
    chosen = _pick(rng, arrival.records, 0.05)
    for i in chosen:
        arrival.records[i].pop(optional[-1], None)
    arrival.notes["missing_field"] = len(chosen)


def _pii_in_text(source: Input, arrival: Arrival, rng: random.Random) -> None:
    texts = [f.name for f in source.fields if f.type == "text"]
    if not texts:
        return
    chosen = _pick(rng, arrival.records, 0.1)
    for i in chosen:
        arrival.records[i][texts[0]] = f"call me at jane.doe{i}@example.org, thanks"
    arrival.notes["pii_in_text"] = len(chosen)


def _burst(source: Input, arrival: Arrival, rng: random.Random) -> None:
    extra = [dict(r) for r in arrival.records for _ in range(4)]
    arrival.records += extra
    arrival.notes["burst"] = len(extra)


FAULTS: dict[str, Callable[[Input, Arrival, random.Random], None]] = {
    "duplicates": _duplicates,
    "out_of_order": _out_of_order,
    "late": _late,
    "deletes": _deletes,
    "corrupt": _corrupt,
    "new_field": _new_field,
    "changed_type": _changed_type,
    "missing_field": _missing_field,
    "pii_in_text": _pii_in_text,
    "burst": _burst,
}
"""The fault families, each rewriting an arrival in place (a fault that has nothing to act on
in an input, such as deletes without a delete marker, leaves it alone)."""


def with_fault(source: Input, records: list[Record], fault: str | None, seed: int) -> Arrival:
    """`records` as an arrival, rewritten by `fault` (None: as they are)."""
    arrival = Arrival([dict(r) for r in records])
    if fault is not None:
        FAULTS[fault](source, arrival, random.Random(f"{fault}:{seed}"))
    return arrival


def lines(source: Input, arrival: Arrival) -> list[str]:
    """The lines that land: records as JSON lines (or CSV rows with a header), then the
    corrupt lines."""
    if source.format == "json":
        return [json.dumps(_nested(r)) for r in arrival.records] + arrival.corrupt
    names = [f.name for f in source.fields]
    extra = sorted({k for r in arrival.records for k in r} - set(names))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, [*names, *extra], lineterminator="\n")
    writer.writeheader()
    writer.writerows(arrival.records)
    return buffer.getvalue().splitlines() + arrival.corrupt


def _nested(record: Record) -> dict[str, Any]:
    """A record with each dotted name (`user.email`) a field of a nested object."""
    found: dict[str, Any] = {}
    for name, value in record.items():
        *parents, leaf = name.split(".")
        level = found
        for parent in parents:
            level = level.setdefault(parent, {})
        level[leaf] = value
    return found
