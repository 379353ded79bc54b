"""An erasure's landing scrub picks exactly a person's raw lines and rewrites files without them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.privacy.landing_scrub import (
    LandingMatch,
    is_persons_line,
    rewrite_without,
    scan_landing,
)

PERSON = "u-000001"
EMAIL = "jade.little1@yahoo.com"
NEW_EMAIL = "jadelittle1.1@gmail.com"
NAME = "Jade Little"
IP = "203.0.113.7"
OTHER = "u-000002"
OTHER_EMAIL = "meagan.scott2@gmail.com"
OTHER_NAME = "Meagan Scott"
OTHER_IP = "198.51.100.23"


def _event(user_id: str, email: str, full_name: str, ip: str, *, url: str = "/") -> bytes:
    record: dict[str, Any] = {
        "event_id": f"e-{user_id}-{url}",
        "event_type": "page_view",
        "user": {"user_id": user_id, "email": email, "full_name": full_name, "ip": ip},
        "page": {"url": f"https://shop.example.com{url}", "referrer": None, "title": "Shop"},
    }
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


def _change(user_id: str, email: str, full_name: str, operation: str = "UPDATE") -> bytes:
    record = {"user_id": user_id, "operation": operation, "email": email, "full_name": full_name}
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


PERSONS_EVENT = _event(PERSON, EMAIL, NAME, IP)
OTHERS_EVENT = _event(OTHER, OTHER_EMAIL, OTHER_NAME, OTHER_IP)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(PERSONS_EVENT, True, id="own-event"),
        pytest.param(
            _event(OTHER, OTHER_EMAIL, OTHER_NAME, OTHER_IP, url=f"/share?to={EMAIL}"),
            False,
            id="other-persons-event-mentioning-the-email",
        ),
        pytest.param(b'{"event_id": "e", "user": {"user_id": "u-000001", ', True, id="corrupt-id"),
        pytest.param(f"<<garbage {EMAIL} garbage>>\n".encode(), True, id="corrupt-email"),
        pytest.param(b'{"event_id": "e", "user": {"user_id": "u-000002", ', False, id="corrupt"),
        pytest.param(b"\xff\xfe not utf-8 at all\n", False, id="corrupt-bytes"),
        pytest.param(_change(PERSON, EMAIL, NAME), True, id="own-user-change"),
        pytest.param(_change(OTHER, EMAIL, OTHER_NAME), False, id="other-user-change-same-email"),
        pytest.param(
            _event("u-0000011", "x@example.com", "X Y", IP), False, id="id-prefix-well-formed"
        ),
        pytest.param(b'{"user": {"user_id": "u-0000011", ', False, id="id-prefix-corrupt"),
        pytest.param(
            orjson.dumps({"user": {"user_id": None, "email": EMAIL}}),
            True,
            id="no-owner-but-the-email",
        ),
    ],
)
def test_is_persons_line(line: bytes, expected: bool) -> None:
    assert is_persons_line(line, PERSON, [EMAIL]) is expected


def _landing(root: Path) -> Path:
    """A landing directory: two event files, a change file, and a hidden file being written."""
    events, changes = root / "events", root / "user_changes"
    events.mkdir(parents=True)
    changes.mkdir()
    (events / "events-00000.json").write_bytes(
        OTHERS_EVENT + PERSONS_EVENT + _event(PERSON, EMAIL, NAME, IP, url="/cart")
    )
    (events / "events-00001.json").write_bytes(
        OTHERS_EVENT + f'{{"corrupt": "{NEW_EMAIL}"\n'.encode()  # a corrupt line: the new e-mail
    )
    (events / "events-00002.json").write_bytes(OTHERS_EVENT)
    (changes / "user-changes-00000.json").write_bytes(
        _change(PERSON, EMAIL, NAME, "INSERT")
        + _change(OTHER, OTHER_EMAIL, OTHER_NAME, "INSERT")
        + _change(PERSON, NEW_EMAIL, NAME)
    )
    (events / ".events-00003.json.partial").write_bytes(
        _event(PERSON, "hidden@example.com", "Hidden Name", "192.0.2.99")
    )
    return root


def test_scan_landing_collects_the_persons_values_and_the_files_with_their_lines(
    tmp_path: Path,
) -> None:
    values, matches = scan_landing(_landing(tmp_path), PERSON)

    assert values.emails == {EMAIL, NEW_EMAIL}
    assert values.names == {NAME}
    assert values.ips == {IP}
    assert values.others == {OTHER_EMAIL, OTHER_NAME, OTHER_IP}
    assert matches == [
        LandingMatch("events/events-00000.json", 2),
        LandingMatch("events/events-00001.json", 1),
        LandingMatch("user_changes/user-changes-00000.json", 2),
    ]


def test_scan_landing_skips_hidden_files(tmp_path: Path) -> None:
    values, matches = scan_landing(_landing(tmp_path), PERSON)

    assert "hidden@example.com" not in values.emails
    assert "Hidden Name" not in values.names
    assert not any(Path(m.file).name.startswith(".") for m in matches)


def test_scan_landing_of_a_person_absent_finds_nothing(tmp_path: Path) -> None:
    values, matches = scan_landing(_landing(tmp_path), "u-999999")

    assert (values.emails, values.names, values.ips) == (set(), set(), set())
    assert matches == []
    assert EMAIL in values.others and OTHER_EMAIL in values.others


def test_rewrite_without_removes_exactly_the_persons_lines(tmp_path: Path) -> None:
    path = tmp_path / "events-00000.json"
    others = [
        OTHERS_EVENT,
        b'{"broken": \r\n',  # a corrupt line of nobody, with a Windows line end
        _event(OTHER, OTHER_EMAIL, OTHER_NAME, OTHER_IP, url="/p/sku-00001"),
        b"no newline at the end",
    ]
    path.write_bytes(
        PERSONS_EVENT
        + others[0]
        + others[1]
        + f"corrupt {NEW_EMAIL}\n".encode()
        + others[2]
        + _change(PERSON, EMAIL, NAME)
        + others[3]
    )

    removed = rewrite_without(path, PERSON, [EMAIL, NEW_EMAIL])

    assert removed == 3
    assert path.read_bytes() == b"".join(others)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary file left


def test_rewrite_without_leaves_a_file_without_the_person_untouched(tmp_path: Path) -> None:
    path = tmp_path / "events-00002.json"
    content = OTHERS_EVENT + b"corrupt but nobody's\n"
    path.write_bytes(content)
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = path.stat()

    assert rewrite_without(path, PERSON, [EMAIL]) == 0

    after = path.stat()
    assert after.st_mtime_ns == before.st_mtime_ns == 1_000_000_000_000_000_000
    assert after.st_ino == before.st_ino
    assert path.read_bytes() == content


def test_rewrite_without_keeps_an_emptied_file_under_its_name(tmp_path: Path) -> None:
    path = tmp_path / "events-00000.json"
    path.write_bytes(PERSONS_EVENT + PERSONS_EVENT)

    assert rewrite_without(path, PERSON, []) == 2
    assert path.read_bytes() == b""


def test_scan_then_rewrite_leaves_no_line_of_the_person(tmp_path: Path) -> None:
    landing = _landing(tmp_path)
    values, matches = scan_landing(landing, PERSON)

    removed = {m.file: rewrite_without(landing / m.file, PERSON, values.emails) for m in matches}

    assert removed == {m.file: m.lines for m in matches}
    assert scan_landing(landing, PERSON)[1] == []
    assert (landing / "events" / "events-00002.json").read_bytes() == OTHERS_EVENT
    assert (landing / "events" / ".events-00003.json.partial").exists()  # hidden: not scanned


def test_an_address_inside_a_longer_address_is_not_the_persons() -> None:
    line = b'corrupt "joan.lee7@x.com" and more'
    assert not is_persons_line(line, "u-000007", ["an.lee7@x.com"])
    assert is_persons_line(b"mail an.lee7@x.com.", "u-000007", ["an.lee7@x.com"])
