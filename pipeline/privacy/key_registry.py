"""Which PII key made the warehouse's pseudonyms: key versions, their check values, rotations.

`<warehouse>/_pii_keys.json` lists every key version the warehouse has known, each with a check
value (the key's HMAC of a fixed text: it identifies the key without revealing it), when it
became current and when it was retired, and which version produced the pseudonyms of each
table. A run admits only the current key (`admit`): after `clickstream rotate-key`, a run with
the retired key refuses instead of writing pseudonyms that join nothing. A rotation in progress
is recorded, so a rotation killed midway is finished by running it again.

Plain Python and JSON: no JVM starts to check a key.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, replace
from pathlib import Path

import orjson

from pipeline.clock import utc_now_text
from pipeline.config import PiiKey
from pipeline.errors import DamagedStateError, PiiKeyMismatchError
from pipeline.table_names import PSEUDONYMIZED_TABLES

__all__ = [
    "REGISTRY_FILE",
    "KeyRegistry",
    "KeyVersion",
    "admit",
    "check_value",
    "load",
    "save",
]

REGISTRY_FILE = "_pii_keys.json"
_CHECK_TEXT = b"clickstream: PII key check value"


def check_value(key: PiiKey) -> str:
    """The key's check value: the hex HMAC-SHA256 of a fixed text, cut to 16 digits.

    It tells keys apart; it is no pseudonym of any person and gives nothing away about the key.
    """
    return hmac.new(key.reveal(), _CHECK_TEXT, hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class KeyVersion:
    """One key the warehouse has known."""

    version: int
    check: str
    since: str
    retired: str | None = None


@dataclass(frozen=True)
class KeyRegistry:
    """The key versions of a warehouse, the rotation in progress if any, and per table the
    key version that produced its pseudonyms."""

    versions: tuple[KeyVersion, ...]
    tables: dict[str, int]
    rotating_to: KeyVersion | None = None

    @property
    def current(self) -> KeyVersion:
        """The key version runs must use."""
        return self.versions[-1]

    def version_of(self, key: PiiKey) -> KeyVersion | None:
        """The version of `key`, None when the warehouse never knew it."""
        check = check_value(key)
        return next((v for v in self.versions if hmac.compare_digest(v.check, check)), None)

    def begin_rotation(self, new_key: PiiKey) -> KeyRegistry:
        """The registry with a rotation to `new_key` in progress."""
        if self.rotating_to is not None:
            return self
        target = KeyVersion(self.current.version + 1, check_value(new_key), utc_now_text())
        return replace(self, rotating_to=target)

    def table_rekeyed(self, table: str) -> KeyRegistry:
        """The registry with `table`'s pseudonyms made by the rotation's new key."""
        assert self.rotating_to is not None
        return replace(self, tables={**self.tables, table: self.rotating_to.version})

    def end_rotation(self) -> KeyRegistry:
        """The registry with the rotation's key current and the old one retired."""
        assert self.rotating_to is not None
        retired = replace(self.current, retired=utc_now_text())
        return KeyRegistry(
            versions=(*self.versions[:-1], retired, self.rotating_to),
            tables=dict.fromkeys(PSEUDONYMIZED_TABLES, self.rotating_to.version),
        )


def _path(warehouse: Path) -> Path:
    return warehouse / REGISTRY_FILE


def load(warehouse: Path) -> KeyRegistry | None:
    """The warehouse's key registry, None before its first run.

    Raises:
        DamagedStateError: the file is not a registry.
    """
    path = _path(warehouse)
    if not path.exists():
        return None
    try:
        document = orjson.loads(path.read_bytes())
        rotating = document.get("rotating_to")
        registry = KeyRegistry(
            versions=tuple(KeyVersion(**v) for v in document["versions"]),
            tables={str(t): int(v) for t, v in document["tables"].items()},
            rotating_to=KeyVersion(**rotating) if rotating else None,
        )
        if not registry.versions:
            raise ValueError("no key version")
        return registry
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise DamagedStateError(
            f"The key registry {path} is damaged ({exc}). It records which PII key made the "
            "pseudonyms; restore it from a backup of the warehouse."
        ) from exc


def save(warehouse: Path, registry: KeyRegistry) -> None:
    """Write the registry atomically (a temporary file renamed over the old one)."""
    document = {
        "versions": [v.__dict__ for v in registry.versions],
        "tables": registry.tables,
        "rotating_to": registry.rotating_to.__dict__ if registry.rotating_to else None,
    }
    warehouse.mkdir(parents=True, exist_ok=True)
    temporary = _path(warehouse).with_suffix(".tmp")
    temporary.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    temporary.replace(_path(warehouse))


def admit(warehouse: Path, key: PiiKey) -> KeyRegistry:
    """Check that `key` made the warehouse's pseudonyms; a warehouse without a registry takes
    `key` as its version 1. Call it holding the writer lock.

    Raises:
        PiiKeyMismatchError: a rotation is unfinished, or `key` is a retired version, or a key
            the warehouse never knew.
    """
    registry = load(warehouse)
    if registry is None:
        registry = KeyRegistry(
            versions=(KeyVersion(1, check_value(key), utc_now_text()),),
            tables=dict.fromkeys(PSEUDONYMIZED_TABLES, 1),
        )
        save(warehouse, registry)
        return registry
    if registry.rotating_to is not None:
        raise PiiKeyMismatchError(
            f"A rotation of the PII key of {warehouse} to key version "
            f"{registry.rotating_to.version} did not finish. Finish it first: run "
            "`clickstream rotate-key --new-key-file FILE` again with the same current and new "
            "keys; nothing else may write the warehouse until then."
        )
    known = registry.version_of(key)
    current = registry.current
    if known is None:
        raise PiiKeyMismatchError(
            f"The PII key given is not the key of {warehouse} (key version {current.version}, "
            f"current since {current.since}): its pseudonyms would join nothing already there. "
            "Pass the warehouse's key ($CLICKSTREAM_PII_KEY, $CLICKSTREAM_PII_KEY_FILE or "
            "--pii-key-file); to change keys, use `clickstream rotate-key`."
        )
    if known.version != current.version:
        raise PiiKeyMismatchError(
            f"The PII key given is key version {known.version} of {warehouse}, retired on "
            f"{known.retired} when `clickstream rotate-key` re-keyed the warehouse to version "
            f"{current.version}. Pseudonyms made with it would join nothing: pass the new key "
            "(the file given to rotate-key as --new-key-file)."
        )
    return registry
