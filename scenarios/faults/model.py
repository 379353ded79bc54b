"""What a fault generator returns: landing files grouped into deliveries, plus expectations.

An `Injection` is data only: the bytes to drop into the landing directory before each pipeline
run, and what the invariants may assume about them. Every expectation is stated the way the
pipeline sees the input, so the record counting rule below is the pipeline's own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, get_args

import orjson

from pipeline.errors import ClickstreamError, InputError

__all__ = [
    "UTF8_BOM",
    "ClockCase",
    "Conflict",
    "Delivery",
    "DriftCase",
    "FaultArgumentError",
    "Folder",
    "IncompatibleFaultsError",
    "Injection",
    "LandingFile",
    "PiiPlant",
    "count_records",
    "is_blank",
    "split_lines",
    "write_delivery",
]

Folder = Literal["events", "user_changes"]
UTF8_BOM = b"\xef\xbb\xbf"
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


class FaultArgumentError(ClickstreamError, ValueError):
    """Raised when a fault generator's knob is out of range; the message names the knob."""


class IncompatibleFaultsError(ClickstreamError, ValueError):
    """Raised when injections cannot be combined without breaking each other's expectations."""


# ------------------------------------------------------------------------ counting rule


def split_lines(content: bytes) -> list[bytes]:
    """Split a file into lines the way Spark's text source does.

    Lines end at ``\\n``, ``\\r\\n`` or ``\\r`` (Hadoop's ``LineRecordReader``); a final line
    break does not start another line; a UTF-8 byte-order mark at the very start of the file
    is dropped (``LineRecordReader`` skips it), so it is not part of the first line.
    """
    if content.startswith(UTF8_BOM):
        content = content[len(UTF8_BOM) :]
    if not content:
        return []
    lines = _LINE_BREAK.split(content)
    if lines[-1] == b"":
        lines.pop()
    return lines


def is_blank(line: bytes) -> bool:
    """True for a line bronze skips: empty or ASCII spaces only.

    Bronze keeps lines where Spark's ``trim`` leaves something, and ``trim`` removes ASCII
    spaces only, so a line of tabs would be a record. The generators never write a line whose
    blankness depends on that detail: for their output this rule and ``not line.strip()``
    agree.
    """
    return not line.strip(b" ")


def count_records(content: bytes) -> int:
    """The number of records bronze reads from a file: its non-blank lines (`split_lines`)."""
    return sum(1 for line in split_lines(content) if not is_blank(line))


# --------------------------------------------------------------------------- landing data


@dataclass(frozen=True)
class LandingFile:
    """One file to drop into the landing directory.

    Attributes:
        folder: ``events`` or ``user_changes``.
        name: A file name, unique over the whole scenario (a streaming file source ignores a
            name it has seen before); never hidden (``.`` or ``_`` first), as Spark skips those.
        content: The exact bytes.
    """

    folder: Folder
    name: str
    content: bytes

    def __post_init__(self) -> None:
        if self.folder not in get_args(Folder):
            raise InputError(f"folder must be one of {get_args(Folder)}, got {self.folder!r}")
        if (
            not self.name
            or "/" in self.name
            or self.name[0] in "._"
            or self.name != self.name.strip()
        ):
            raise InputError(
                f"file name {self.name!r} must be a plain, non-hidden name (no '/', not starting "
                "with '.' or '_'): Spark's file source skips hidden files"
            )

    @property
    def records(self) -> int:
        """Records bronze reads from this file (`count_records`)."""
        return count_records(self.content)


@dataclass(frozen=True)
class Delivery:
    """The files that land before one pipeline run."""

    files: tuple[LandingFile, ...]

    def folder(self, folder: Folder) -> tuple[LandingFile, ...]:
        """The files of one folder, in writing order."""
        return tuple(landing for landing in self.files if landing.folder == folder)


@dataclass(frozen=True)
class DriftCase:
    """One drifted value and where bronze must keep it.

    Attributes:
        kind: The drift kind (see `schema_drift`).
        event_id: The event that carries it.
        path: JSON path from the event root, e.g. ``("user", "loyalty_tier")``.
        value: The value as written (JSON-ready).
        where: ``rescued``: ``_rescued_data`` parsed as JSON holds `value` at `path` (and the
            typed column at `path`, if any, is null); ``typed``: the typed column at `path`
            holds it (a string column holds a JSON object as its compact JSON text, see
            `typed_text`); ``absent``: the field was removed, the typed column is null and
            nothing is rescued for it.
    """

    kind: str
    event_id: str
    path: tuple[str, ...]
    value: Any
    where: Literal["rescued", "typed", "absent"]

    @property
    def typed_text(self) -> str | None:
        """For a JSON object kept in a string column: the text Spark stores (compact JSON)."""
        if self.where != "typed" or not isinstance(self.value, dict):
            return None
        return orjson.dumps(self.value).decode()


@dataclass(frozen=True)
class ClockCase:
    """One event whose ``event_ts`` is skewed, in another zone or in another format.

    Attributes:
        kind: ``future``, ``zone_offset`` or ``format_<name>`` (see `clock_skew`).
        event_id: The event.
        event_ts: The value as written: a string, or an int for epoch milliseconds.
        instant: The UTC instant the written value denotes, None when it denotes none on its
            own (no zone).
        true_instant: When the event really happened (the clean event's time).
        expected: Where silver must put the event: ``silver`` (ISO-8601 variants Spark's cast
            reads; a zone-less value is read in the session time zone, UTC) or
            ``silver_quarantine`` (not ISO-8601).
        parsed_instant: The instant silver must hold for ``silver`` cases (the text read in
            UTC when it has no zone), None for quarantined ones.
    """

    kind: str
    event_id: str
    event_ts: str | int
    instant: datetime | None
    true_instant: datetime
    expected: Literal["silver", "silver_quarantine"]
    parsed_instant: datetime | None


@dataclass(frozen=True)
class PiiPlant:
    """Personal data planted where the pipeline does not expect it.

    Attributes:
        kind: Where (see `pii_in_unexpected_places`).
        event_id: The event.
        path: JSON path of the field that carries it, e.g. ``("page", "url")``.
        values: The personal values inside that field's text, each as it appears (clear e-mail,
            its percent-encoded form, the full name).
    """

    kind: str
    event_id: str
    path: tuple[str, ...]
    values: tuple[str, ...]


@dataclass(frozen=True)
class Conflict:
    """An `event_id` sent again later with a different payload; silver keeps the first."""

    event_id: str
    kept_event_ts: str
    kept_page_url: str
    other_event_ts: str
    other_page_url: str


@dataclass(frozen=True)
class Injection:
    """A generated scenario input and what the invariants may assume about it.

    Run the pipeline once after writing each delivery (`write_delivery`). Sets of event ids
    are exact unless stated otherwise.

    Attributes:
        deliveries: The files landing before each run, in order.
        injected: What was injected, by kind, e.g. ``{"late_beyond_watermark": 7}``.
        records: Non-blank lines over all event files (`count_records`): bronze_events +
            bronze_quarantine must equal it.
        description: One sentence for the report: what was injected.
        records_by_file: Records per event file name.
        quarantined: Lines that are certainly not JSON objects: bronze_quarantine holds at
            least these.
        unpredicted: Lines whose bronze / quarantine placement is not predicted (corpus files,
            invalid UTF-8); bronze_events holds at least ``records - quarantined - unpredicted``
            and, when this is 0, exactly that.
        event_ids: Every event id written (kept, dropped, late or corrupted); injections to be
            combined must not share one.
        silver_ids: Ids that must be in silver_events (once each).
        maybe_silver_ids: Ids that may or may not reach silver_events (placement not
            predicted). silver_events ids lie between `silver_ids` and their union with these.
        late_ids: Ids that must be in silver_late_events and not in silver_events.
        silver_quarantine_ids: Ids that must be in silver_quarantine.
        duplicate_rows: Valid rows that must be dropped as duplicates of an id kept in silver.
        drift: Drifted values and where bronze keeps them.
        clock: Skewed, re-zoned and re-formatted timestamps.
        pii: Personal data planted in unexpected fields.
        pii_values: Every planted personal value (clear and encoded forms): no silver or gold
            string may contain one.
        conflicts: Ids sent again with another payload in a later run.
        changes: Per delivery, the CDC rows in the order they were written.
        corpus_records: Records each JSON-test-suite file contributed, by its file name.
        max_event_time: Per delivery, the latest instant any of its event lines may parse to
            (None when none): what the watermark may advance to.
        min_on_time: Per delivery, the earliest instant of a new event that must not be late
            (None when nothing in it depends on the watermark).
    """

    deliveries: tuple[Delivery, ...]
    injected: Mapping[str, int]
    records: int
    description: str
    records_by_file: Mapping[str, int] = field(default_factory=dict)
    quarantined: int = 0
    unpredicted: int = 0
    event_ids: frozenset[str] = frozenset()
    silver_ids: frozenset[str] = frozenset()
    maybe_silver_ids: frozenset[str] = frozenset()
    late_ids: frozenset[str] = frozenset()
    silver_quarantine_ids: frozenset[str] = frozenset()
    duplicate_rows: int = 0
    drift: tuple[DriftCase, ...] = ()
    clock: tuple[ClockCase, ...] = ()
    pii: tuple[PiiPlant, ...] = ()
    pii_values: frozenset[str] = frozenset()
    conflicts: tuple[Conflict, ...] = ()
    changes: tuple[tuple[Mapping[str, Any], ...], ...] = ()
    corpus_records: Mapping[str, int] = field(default_factory=dict)
    max_event_time: tuple[datetime | None, ...] = ()
    min_on_time: tuple[datetime | None, ...] = ()

    @property
    def all_changes(self) -> tuple[Mapping[str, Any], ...]:
        """Every CDC row in arrival order (delivery by delivery)."""
        return tuple(row for batch in self.changes for row in batch)

    @property
    def files(self) -> tuple[LandingFile, ...]:
        """Every file of every delivery."""
        return tuple(landing for delivery in self.deliveries for landing in delivery.files)


# ------------------------------------------------------------------------------ writing


def write_delivery(landing: Path, delivery: Delivery) -> None:
    """Write a delivery's files under ``landing/<folder>/<name>``, each atomically.

    Each file is written under a hidden temporary name (file sources skip dot files) and then
    linked into place, which fails if the target exists, so a reader never sees a half-written
    file and nothing is overwritten. Every target is checked before anything is written.

    Raises:
        InputError: If a target file already exists (a ValueError too).
    """
    targets = [landing / landing_file.folder / landing_file.name for landing_file in delivery.files]
    for target in targets:
        if target.exists():
            raise InputError(
                f"refusing to overwrite {target}: a streaming file source ignores a file name it "
                "has already seen; write this scenario into a fresh landing directory"
            )
    if len(set(targets)) != len(targets):
        raise InputError("a delivery names the same file twice; file names must be unique")
    for landing_file, target in zip(delivery.files, targets, strict=True):
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(landing_file.content)
        try:
            os.link(partial, target)
        except FileExistsError as error:
            raise InputError(
                f"refusing to overwrite {target}: it appeared while writing"
            ) from error
        finally:
            partial.unlink()
