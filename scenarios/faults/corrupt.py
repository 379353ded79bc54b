"""Corrupt records: lines and files that are not clean newline-delimited JSON objects."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from scenarios.faults._common import (
    Event,
    assign_kinds,
    check_bool,
    check_events,
    check_fraction,
    copy_event,
    count_kinds,
    event_file,
    file_name,
    json_lines,
    latest,
    line,
    records_by_file,
    seeded,
    share,
)
from scenarios.faults.model import (
    UTF8_BOM,
    Delivery,
    FaultArgumentError,
    Injection,
    LandingFile,
    count_records,
)

__all__ = [
    "DEFAULT_CORPUS",
    "LINE_KINDS",
    "LONG_LINE_PAYLOAD",
    "NOT_OBJECT_KINDS",
    "corrupt_records",
]

DEFAULT_CORPUS = Path("/work/shared/corpora/json-test-suite/test_parsing")
"""Nicolas Seriot's JSONTestSuite ``test_parsing`` files (MIT licence), read in place."""

LINE_KINDS = (
    "truncated",
    "invalid_json",
    "top_level_array",
    "scalar",
    "invalid_utf8",
    "binary_garbage",
)
"""The kinds of corrupt line `corrupt_records` spreads ``corrupt_fraction`` over."""

NOT_OBJECT_KINDS = frozenset(LINE_KINDS) - {"invalid_utf8"}
"""Line kinds that are certainly not JSON objects, whatever the parser's leniency."""

LONG_LINE_PAYLOAD = 1_100_000
"""Characters of the huge string in the long line: the line is over 1 MB (and 1 MiB)."""

_FILE_EVENTS = 3  # valid events in each of the byte-order-mark and CRLF files
_BLANK_LINES = (b"\n", b"    \n")  # skipped by bronze: not records
_UTF8_MARKER = "@@invalid-utf8@@"
_INVALID_UTF8 = (
    b"\xff",  # never valid in UTF-8
    b"\xc3\x28",  # a lead byte followed by a non-continuation byte
    b"\xa0\xa1",  # continuation bytes without a lead byte
    b"\xe2\x28\xa1",  # a broken three-byte sequence
    b"\xf0\x28\x8c\xbc",  # a broken four-byte sequence
    b"\xc0\xaf",  # an overlong encoding of '/'
    b"\xed\xa0\x80",  # an encoded UTF-16 surrogate
    b"M\xfcnchen",  # Latin-1 text
)
_GARBAGE_BYTES = bytes(b for b in range(256) if b not in b"\r\n")
_SCALARS = (b"null", b"true", b"false", b"-0.5e3", b"42")


def _members(event: Event) -> list[tuple[bytes, bytes]]:
    return [(orjson.dumps(key), orjson.dumps(value)) for key, value in event.items()]


def _invalid_json(event: Event, rng: random.Random) -> bytes:
    """The event's JSON with a syntax error inside its first members (never after the end).

    The error sits before the closing brace on purpose: Spark's object check reads the outer
    object's keys only, so text after a complete object would not be noticed.
    """
    members = _members(event)
    first_key, first_value = members[0]
    rest = [key + b":" + value for key, value in members[1:]]
    variant = rng.randrange(3)
    if variant == 0:  # keys without quotes
        body = [key[1:-1] + b":" + value for key, value in members]
    elif variant == 1:  # no comma between the first two members
        body = [first_key + b":" + first_value + b" " + rest[0], *rest[1:]]
    else:  # no colon in the first member
        body = [first_key + b" " + first_value, *rest]
    return b"{" + b",".join(body) + b"}"


def _with_invalid_utf8(event: Event, rng: random.Random) -> bytes:
    """The event's JSON with invalid UTF-8 bytes inside the page title string."""
    page = event.get("page")
    if isinstance(page, dict) and isinstance(page.get("title"), str):
        page["title"] = page["title"] + _UTF8_MARKER
    else:
        event["note"] = _UTF8_MARKER
    raw = orjson.dumps(event)
    return raw.replace(_UTF8_MARKER.encode(), rng.choice(_INVALID_UTF8), 1)


def _corrupt_line(kind: str, event: Event, rng: random.Random) -> bytes:
    """One corrupt line (without its line break) made from `event`."""
    raw = orjson.dumps(event)
    if kind == "truncated":  # every proper prefix of an object is an unclosed object
        return raw[: rng.randrange(1, len(raw))]
    if kind == "invalid_json":
        return _invalid_json(event, rng)
    if kind == "top_level_array":
        return b"[" + raw + b"]"
    if kind == "scalar":
        return rng.choice((orjson.dumps(event["event_id"]), *_SCALARS))
    if kind == "invalid_utf8":
        return _with_invalid_utf8(event, rng)
    # binary_garbage: random bytes without line breaks, starting with NUL
    size = rng.randint(16, 160)
    return b"\x00" + bytes(rng.choice(_GARBAGE_BYTES) for _ in range(size - 1))


def _load_corpus(corpus_dir: Path) -> list[tuple[str, bytes]]:
    """The corpus files, by name, with any that starts with a byte-order mark not first.

    A BOM at the very start of a landing file is dropped by the text source, one later is
    not; keeping such files off the first line makes every corpus file's record count
    independent of its position.
    """
    if not isinstance(corpus_dir, Path) or not corpus_dir.is_dir():
        raise FaultArgumentError(
            f"corpus_dir must be a directory of JSON test files (or None to skip the corpus), "
            f"got {corpus_dir!r}"
        )
    paths = sorted(corpus_dir.glob("*.json"))
    if not paths:
        raise FaultArgumentError(f"corpus_dir {corpus_dir} holds no *.json files")
    files = [(path.name, path.read_bytes()) for path in paths]
    return sorted(files, key=lambda item: (item[1].startswith(UTF8_BOM), item[0]))


def _mid_file_records(content: bytes) -> int:
    """Records `content` makes when it starts a line that is not the first of its file."""
    return count_records(b"\n" + content)  # the leading break only keeps a BOM from being first


def corrupt_records(
    events: Sequence[Mapping[str, Any]],
    *,
    seed: int,
    corrupt_fraction: float = 0.05,
    corpus_dir: Path | None = DEFAULT_CORPUS,
    allow_long_line: bool = True,
) -> Injection:
    """Deliver `events` with corrupt lines, odd files and a JSON parsing corpus, in one run.

    Line faults replace ``corrupt_fraction`` of `events`, spread evenly over `LINE_KINDS`:

    * ``truncated``: a proper prefix of the event's JSON;
    * ``invalid_json``: unquoted keys, a missing comma or a missing colon in the first members;
    * ``top_level_array``: the event inside ``[...]``;
    * ``scalar``: ``null``, ``true``, a number or the event id as a JSON string;
    * ``invalid_utf8``: the event with invalid UTF-8 bytes inside the page title (still an
      object once decoded with replacement characters, so its placement is not predicted);
    * ``binary_garbage``: 16 to 160 random bytes without line breaks, starting with NUL.

    File faults, each carrying clean events taken out of the main file: a file starting with a
    UTF-8 byte-order mark, a file with CRLF line endings, an empty file and, when
    `allow_long_line`, a line over 1 MB (a valid event plus a huge ``debug_payload`` string).
    The main file also holds two blank lines (empty, spaces), which are not records.

    With `corpus_dir`, every file of the JSON test suite becomes one line of one more landing
    file (its bytes followed by a line feed). A corpus file containing line breaks makes
    several records and one that is empty or blank makes none: ``corpus_records`` gives the
    count per corpus file, by the text source's rule. Whether each lands in bronze or in
    quarantine is not predicted: Spark's JSON parser is lenient and only reads an object's
    keys, so the harness checks conservation only.

    Args:
        events: Clean events.
        seed: Any int; the same seed and knobs give byte-identical deliveries.
        corrupt_fraction: Share of `events` replaced by corrupt lines, in [0, 1].
        corpus_dir: Directory of JSON test files, or None to leave the corpus out.
        allow_long_line: Whether to write the line over 1 MB.

    Returns:
        One delivery. ``quarantined`` counts the lines that are certainly not JSON objects
        (every kind but ``invalid_utf8``); ``unpredicted`` counts the ``invalid_utf8`` lines
        and the corpus records; ``silver_ids`` are the events that are written intact
        (including those in the byte-order-mark, CRLF and long-line files);
        ``maybe_silver_ids`` are the ``invalid_utf8`` events.

    Raises:
        FaultArgumentError: If a knob is out of range or `corpus_dir` is not a corpus.
    """
    check_fraction("corrupt_fraction", corrupt_fraction)
    check_bool("allow_long_line", allow_long_line)
    check_events(events)
    corpus = [] if corpus_dir is None else _load_corpus(corpus_dir)
    rng = seeded("corrupt_records", seed)

    kinds = assign_kinds(len(events), share(corrupt_fraction, len(events)), LINE_KINDS, rng)
    moved = _move_to_files(len(events), kinds, allow_long_line, rng)
    files = [
        _file(seed, "events", _main_content(events, kinds, moved, rng)),
        *_file_faults(events, moved, seed, rng),
    ]
    corpus_records = {name: _mid_file_records(content) for name, content in corpus}
    if corpus:
        content = b"".join(content + b"\n" for _, content in corpus)
        files.append(_file(seed, "json-test-suite", content))
    return _injection(events, files, kinds, corpus_records, moved)


class _Moved(NamedTuple):
    """The intact events taken out of the main file into the file faults, by index."""

    long_line: list[int]
    bom: list[int]
    crlf: list[int]


def _move_to_files(
    total: int, kinds: Mapping[int, str], allow_long_line: bool, rng: random.Random
) -> _Moved:
    """A seeded sample of the intact events: one for the long line (when allowed), then up to
    `_FILE_EVENTS` each for the byte-order-mark and the CRLF files."""
    intact = [index for index in range(total) if index not in kinds]
    wanted = 2 * _FILE_EVENTS + (1 if allow_long_line else 0)
    moved = rng.sample(intact, min(len(intact), wanted))
    long_line, moved = (moved[:1], moved[1:]) if allow_long_line else ([], moved)
    return _Moved(long_line, sorted(moved[:_FILE_EVENTS]), sorted(moved[_FILE_EVENTS:]))


def _file(seed: int, part: str, content: bytes) -> LandingFile:
    """The landing file `part` of the one delivery."""
    return event_file(file_name("corrupt", seed, 1, part), content)


def _main_content(
    events: Sequence[Mapping[str, Any]],
    kinds: Mapping[int, str],
    moved: _Moved,
    rng: random.Random,
) -> bytes:
    """The events not `moved`, those in `kinds` as corrupt lines, with blank lines inserted."""
    leaving = {*moved.long_line, *moved.bom, *moved.crlf}
    main_lines: list[bytes] = []
    for index, event in enumerate(events):
        if index in kinds:
            main_lines.append(_corrupt_line(kinds[index], copy_event(event), rng) + b"\n")
        elif index not in leaving:
            main_lines.append(line(event))
    for blank in _BLANK_LINES:
        main_lines.insert(rng.randint(0, len(main_lines)), blank)
    return b"".join(main_lines)


def _file_faults(
    events: Sequence[Mapping[str, Any]], moved: _Moved, seed: int, rng: random.Random
) -> list[LandingFile]:
    """The byte-order-mark and CRLF files (when they have events), the empty file and the
    long-line file (when allowed)."""
    files = []
    if moved.bom:
        content = UTF8_BOM + json_lines(events[index] for index in moved.bom)
        files.append(_file(seed, "bom", content))
    if moved.crlf:
        content = b"".join(line(events[index])[:-1] + b"\r\n" for index in moved.crlf)
        files.append(_file(seed, "crlf", content))
    files.append(_file(seed, "empty", b""))
    files += [_file(seed, "long-line", _long_line(events[index], rng)) for index in moved.long_line]
    return files


def _long_line(event: Mapping[str, Any], rng: random.Random) -> bytes:
    """`event` with a ``debug_payload`` of `LONG_LINE_PAYLOAD` seeded characters, as a line."""
    huge = copy_event(event)
    pattern = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(64))
    huge["debug_payload"] = (pattern * (LONG_LINE_PAYLOAD // 64 + 1))[:LONG_LINE_PAYLOAD]
    return line(huge)


def _injection(
    events: Sequence[Mapping[str, Any]],
    files: list[LandingFile],
    kinds: Mapping[int, str],
    corpus_records: Mapping[str, int],
    moved: _Moved,
) -> Injection:
    """The ledger: the corrupt lines' kinds, the file faults and the corpus records."""
    deliveries = (Delivery(tuple(files)),)
    by_file = records_by_file(deliveries)
    ids = [event["event_id"] for event in events]
    unreadable = {ids[index] for index, kind in kinds.items() if kind in NOT_OBJECT_KINDS}
    maybe = {ids[index] for index, kind in kinds.items() if kind == "invalid_utf8"}
    quarantined = len(unreadable)
    corpus_part = (
        f", plus {len(corpus_records)} JSON-test-suite files as {sum(corpus_records.values())} "
        "records"
        if corpus_records
        else ""
    )
    return Injection(
        deliveries=deliveries,
        injected=_injected(kinds, corpus_records, moved),
        records=sum(by_file.values()),
        description=(
            f"{len(kinds)} of {len(events)} events are replaced by corrupt lines (truncated, "
            "invalid JSON, arrays, scalars, invalid UTF-8, binary garbage) beside a "
            "byte-order-mark file, a CRLF file, an empty file"
            f"{' and a line over 1 MB' if moved.long_line else ''}{corpus_part}."
        ),
        records_by_file=by_file,
        quarantined=quarantined,
        unpredicted=len(maybe) + sum(corpus_records.values()),
        event_ids=frozenset(ids),
        silver_ids=frozenset(ids) - unreadable - maybe,
        maybe_silver_ids=frozenset(maybe),
        corpus_records=dict(corpus_records),
        max_event_time=(latest(events),),
        min_on_time=(None,),
    )


def _injected(
    kinds: Mapping[int, str], corpus_records: Mapping[str, int], moved: _Moved
) -> dict[str, int]:
    """Counts per corrupt line kind, then per file fault and of the corpus."""
    return count_kinds(LINE_KINDS, kinds) | {
        "blank_lines": len(_BLANK_LINES),
        "bom_file_events": len(moved.bom),
        "crlf_file_events": len(moved.crlf),
        "empty_files": 1,
        "long_lines": len(moved.long_line),
        "corpus_files": len(corpus_records),
        "corpus_records": sum(corpus_records.values()),
    }
