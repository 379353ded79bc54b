"""The key registry admits only the warehouse's current PII key, through a rotation (no JVM)."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from pipeline.config import PiiKey
from pipeline.errors import DamagedStateError, PiiKeyMismatchError
from pipeline.privacy import key_registry
from pipeline.privacy.key_registry import REGISTRY_FILE, KeyRegistry, admit, check_value, load, save
from pipeline.table_names import PSEUDONYMIZED_TABLES

OLD_SECRET = b"0123456789abcdef-old"
NEW_SECRET = b"0123456789abcdef-new"
OLD_KEY = PiiKey(OLD_SECRET)
NEW_KEY = PiiKey(NEW_SECRET)


def _rotated(warehouse: Path) -> KeyRegistry:
    """The warehouse admitted with the old key, then rotated to the new one, saved."""
    registry = admit(warehouse, OLD_KEY).begin_rotation(NEW_KEY)
    for table in PSEUDONYMIZED_TABLES:
        registry = registry.table_rekeyed(table)
    registry = registry.end_rotation()
    save(warehouse, registry)
    return registry


def test_the_first_key_becomes_version_1_of_every_pseudonymized_table(tmp_path: Path) -> None:
    registry = admit(tmp_path, OLD_KEY)

    document = orjson.loads((tmp_path / REGISTRY_FILE).read_bytes())
    assert [v["version"] for v in document["versions"]] == [1]
    assert document["versions"][0]["check"] == check_value(OLD_KEY)
    assert document["versions"][0]["retired"] is None
    assert document["tables"] == dict.fromkeys(PSEUDONYMIZED_TABLES, 1)
    assert document["rotating_to"] is None
    assert registry.current.version == 1
    assert registry.tables == dict.fromkeys(PSEUDONYMIZED_TABLES, 1)
    assert load(tmp_path) == registry


def test_the_same_key_is_admitted_again_without_changing_the_registry(tmp_path: Path) -> None:
    first = admit(tmp_path, OLD_KEY)
    stored = (tmp_path / REGISTRY_FILE).read_bytes()

    assert admit(tmp_path, PiiKey(bytes(OLD_SECRET))) == first
    assert (tmp_path / REGISTRY_FILE).read_bytes() == stored


def test_another_key_is_refused_naming_the_key_version_and_rotate_key(tmp_path: Path) -> None:
    admit(tmp_path, OLD_KEY)
    stored = (tmp_path / REGISTRY_FILE).read_bytes()

    with pytest.raises(PiiKeyMismatchError) as error:
        admit(tmp_path, NEW_KEY)

    message = str(error.value)
    assert "key version 1" in message
    assert "rotate-key" in message
    assert (tmp_path / REGISTRY_FILE).read_bytes() == stored  # the refused key changed nothing


def test_an_unfinished_rotation_refuses_both_keys_until_rotate_key_runs_again(
    tmp_path: Path,
) -> None:
    save(tmp_path, admit(tmp_path, OLD_KEY).begin_rotation(NEW_KEY))

    for key in (OLD_KEY, NEW_KEY):
        with pytest.raises(PiiKeyMismatchError) as error:
            admit(tmp_path, key)
        message = str(error.value)
        assert "did not finish" in message
        assert "key version 2" in message
        assert "rotate-key" in message and "again" in message


def test_a_half_done_rotation_records_the_tables_already_rekeyed(tmp_path: Path) -> None:
    registry = admit(tmp_path, OLD_KEY).begin_rotation(NEW_KEY)
    registry = registry.table_rekeyed(PSEUDONYMIZED_TABLES[0])
    save(tmp_path, registry)

    reloaded = load(tmp_path)
    assert reloaded is not None
    assert reloaded.rotating_to is not None and reloaded.rotating_to.version == 2
    assert reloaded.tables[PSEUDONYMIZED_TABLES[0]] == 2
    assert all(reloaded.tables[t] == 1 for t in PSEUDONYMIZED_TABLES[1:])
    assert reloaded.begin_rotation(PiiKey(b"0123456789abcdef-third")) == reloaded  # same target


def test_after_a_rotation_the_new_key_is_admitted_and_the_old_one_is_retired(
    tmp_path: Path,
) -> None:
    _rotated(tmp_path)

    registry = admit(tmp_path, NEW_KEY)
    assert registry.current.version == 2
    assert registry.rotating_to is None
    assert registry.tables == dict.fromkeys(PSEUDONYMIZED_TABLES, 2)
    assert [v.version for v in registry.versions] == [1, 2]
    assert registry.versions[0].retired is not None
    assert registry.versions[1].retired is None

    with pytest.raises(PiiKeyMismatchError) as error:
        admit(tmp_path, OLD_KEY)
    message = str(error.value)
    assert "key version 1" in message
    assert "retired" in message
    assert "version 2" in message


def test_a_key_never_known_after_a_rotation_names_the_current_version(tmp_path: Path) -> None:
    _rotated(tmp_path)

    with pytest.raises(PiiKeyMismatchError, match="key version 2"):
        admit(tmp_path, PiiKey(b"0123456789abcdef-stranger"))


def test_check_values_tell_keys_apart_and_are_16_hex_digits() -> None:
    old, new = check_value(OLD_KEY), check_value(NEW_KEY)

    assert old != new
    assert check_value(PiiKey(bytes(OLD_SECRET))) == old
    for value in (old, new):
        assert re.fullmatch(r"[0-9a-f]{16}", value), value


def test_the_registry_file_never_holds_a_key(tmp_path: Path) -> None:
    _rotated(tmp_path)

    stored = (tmp_path / REGISTRY_FILE).read_bytes()
    for secret in (OLD_SECRET, NEW_SECRET):
        assert secret not in stored
        assert secret.hex().encode() not in stored
    assert check_value(OLD_KEY).encode() in stored  # the check value identifies the key instead
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write left no temporary file behind


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b"[]", id="not-an-object"),
        pytest.param(b'{"tables": {}}', id="no-versions"),
        pytest.param(b'{"versions": [{"version": 1}], "tables": {}}', id="version-incomplete"),
    ],
)
def test_a_damaged_registry_is_refused_with_damaged_state(tmp_path: Path, content: bytes) -> None:
    (tmp_path / REGISTRY_FILE).write_bytes(content)

    with pytest.raises(DamagedStateError, match="restore it from a backup"):
        admit(tmp_path, OLD_KEY)


def _valid_document() -> dict[str, object]:
    return {
        "versions": [{"version": 1, "check": check_value(OLD_KEY), "since": "2026-11-01"}],
        "tables": dict.fromkeys(PSEUDONYMIZED_TABLES, 1),
        "rotating_to": None,
    }


def test_a_non_numeric_table_version_is_damaged_state(tmp_path: Path) -> None:
    document = _valid_document()
    document["tables"] = {PSEUDONYMIZED_TABLES[0]: "one"}
    (tmp_path / REGISTRY_FILE).write_bytes(orjson.dumps(document))

    with pytest.raises(DamagedStateError):
        key_registry.load(tmp_path)


def test_a_registry_without_any_version_is_damaged_state(tmp_path: Path) -> None:
    document = _valid_document()
    document["versions"] = []
    (tmp_path / REGISTRY_FILE).write_bytes(orjson.dumps(document))

    with pytest.raises(DamagedStateError):
        admit(tmp_path, OLD_KEY)
