"""The landing zone's share of an erasure, in plain Python: which raw lines are a person's, and
files rewritten without them.

A line is the person's when it parses as an event whose `user.user_id` is theirs, or as a
user change whose `user_id` is theirs, or (a corrupt line, a renamed field) when its text holds
the quoted user id or one of the person's own e-mail addresses. Rewriting keeps the file's
name, so the streaming checkpoints, which remember files by path, never read it as new.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from pipeline.run.run_state import landing_files

__all__ = [
    "LandingMatch",
    "PersonValues",
    "email_pattern",
    "is_persons_line",
    "rewrite_without",
    "scan_landing",
]


@dataclass
class PersonValues:
    """What the person's own landing records carry, and what other people's records share."""

    emails: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    ips: set[str] = field(default_factory=set)
    others: set[str] = field(default_factory=set)
    """E-mail addresses, names and IPs carried by records of other user ids."""


@dataclass(frozen=True)
class LandingMatch:
    """A landing file (relative to the landing directory) and how many lines are the person's."""

    file: str
    lines: int


def _fields(record: object) -> tuple[str | None, dict[str, object]] | None:
    """(user id, the fields that may identify the person) of an event or a user change."""
    if not isinstance(record, dict):
        return None
    user = record.get("user")
    if isinstance(user, dict):
        return _text(user.get("user_id")), user
    if "user_id" in record:
        return _text(record.get("user_id")), record
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def email_pattern(email: str) -> str:
    """A regular expression (Python's and Java's alike) matching the address as a whole
    word: not `joan.lee7@x.com` when looking for `an.lee7@x.com`."""
    return rf"(?<![A-Za-z0-9._%+-]){re.escape(email)}(?![A-Za-z0-9-]|\.[A-Za-z0-9])"


def is_persons_line(line: bytes, user_id: str, emails: Iterable[str]) -> bool:
    """Whether a raw landing line belongs to the person (see the module's docstring)."""
    try:
        fields = _fields(orjson.loads(line))
    except orjson.JSONDecodeError:
        fields = None
    if fields is not None and fields[0] == user_id:
        return True
    if fields is not None and fields[0] is not None:
        return False  # another person's well-formed record
    if orjson.dumps(user_id) in line:
        return True
    text = line.decode("utf-8", errors="replace")
    return any(re.search(email_pattern(email), text) for email in emails)


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from handle


def scan_landing(landing: Path, user_id: str) -> tuple[PersonValues, list[LandingMatch]]:
    """The person's values found in the landing files, and the files holding their lines.

    Two passes: the first collects the values of the person's well-formed records (and the
    values of everyone else's), the second counts the lines `is_persons_line` picks.
    """
    values = PersonValues()
    files = landing_files(landing)
    for name in files:
        for line in _lines(landing / name):
            try:
                fields = _fields(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
            if fields is None:
                continue
            owner, carried = fields
            found = {k: _text(carried.get(k)) for k in ("email", "full_name", "ip")}
            if owner == user_id:
                _add(values.emails, found["email"])
                _add(values.names, found["full_name"])
                _add(values.ips, found["ip"])
            elif owner is not None:
                values.others.update(v for v in found.values() if v)
    matches = []
    for name in files:
        lines = _lines(landing / name)
        count = sum(is_persons_line(line, user_id, values.emails) for line in lines)
        if count:
            matches.append(LandingMatch(name, count))
    return values, matches


def _add(target: set[str], value: str | None) -> None:
    if value:
        target.add(value)


def rewrite_without(path: Path, user_id: str, emails: Iterable[str]) -> int:
    """Rewrite `path` without the person's lines (a hidden temporary file renamed over it, so
    readers see the old file or the new one); returns the lines removed."""
    emails = tuple(emails)
    kept: list[bytes] = []
    removed = 0
    for line in _lines(path):
        if is_persons_line(line, user_id, emails):
            removed += 1
        else:
            kept.append(line)
    if removed:
        partial = path.with_name(f".{path.name}.scrub")
        partial.write_bytes(b"".join(kept))
        partial.replace(path)
    return removed
