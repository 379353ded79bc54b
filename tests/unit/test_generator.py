"""Unit tests for scenarios.generator (pure Python, no Spark)."""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest

from scenarios import generator
from scenarios.generator import (
    DEFAULT_START,
    LandingSummary,
    generate_events,
    generate_user_changes,
    write_landing,
)

SEED = 20261125
EVENTS = 4_000
USERS = 150
WINDOW = timedelta(days=1)

EVENT_KEYS = {
    "event_id",
    "event_type",
    "event_ts",
    "session_id",
    "user",
    "page",
    "device",
    "geo",
    "properties",
    "schema_version",
}
NESTED_KEYS = {
    "user": {"user_id", "email", "full_name", "ip"},
    "page": {"url", "referrer", "title"},
    "device": {"type", "os", "browser", "user_agent"},
    "geo": {"country", "city"},
    "properties": {"product_id", "price", "currency", "quantity"},
}
CHANGE_KEYS = {
    "user_id",
    "operation",
    "sequence_num",
    "changed_at",
    "email",
    "full_name",
    "plan",
    "country",
    "city",
}
TS_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
FUNNEL = ("add_to_cart", "checkout", "purchase")


def parse_ts(value: str) -> datetime:
    assert TS_PATTERN.match(value), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def by_session(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        sessions[event["session_id"]].append(event)
    return sessions


def profile_as_of(changes: list[dict[str, Any]], user_id: str, ts: datetime) -> dict[str, Any]:
    history = [c for c in changes if c["user_id"] == user_id and parse_ts(c["changed_at"]) <= ts]
    return history[-1]


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return generate_events(events=EVENTS, seed=SEED, users=USERS)


@pytest.fixture(scope="module")
def changes() -> list[dict[str, Any]]:
    return generate_user_changes(seed=SEED, users=USERS)


# ------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes(events: list[dict[str, Any]]) -> None:
    again = generate_events(events=EVENTS, seed=SEED, users=USERS)
    assert [orjson.dumps(e) for e in again] == [orjson.dumps(e) for e in events]
    assert generate_user_changes(seed=SEED, users=USERS) == generate_user_changes(
        seed=SEED, users=USERS
    )


@pytest.mark.parametrize("other", [SEED + 1, -SEED])
def test_different_seed_gives_different_output(events: list[dict[str, Any]], other: int) -> None:
    assert generate_events(events=EVENTS, seed=other, users=USERS) != events
    assert generate_user_changes(seed=other, users=USERS) != generate_user_changes(
        seed=SEED, users=USERS
    )


def test_event_count_is_exact() -> None:
    assert generate_events(events=0, seed=SEED) == []
    assert len(generate_events(events=1, seed=SEED)) == 1
    assert len(generate_events(events=777, seed=SEED, users=3)) == 777


# ------------------------------------------------------------------------- shape


def test_every_event_has_the_exact_shape(events: list[dict[str, Any]]) -> None:
    for event in events:
        assert set(event) == EVENT_KEYS
        for key, keys in NESTED_KEYS.items():
            assert set(event[key]) == keys, key
        assert uuid.UUID(event["event_id"]).version == 4
        assert uuid.UUID(event["session_id"]).version == 4
        assert event["event_type"] in {"page_view", "click", "search", *FUNNEL}
        assert event["schema_version"] == 1
        assert re.fullmatch(r"u-\d{6}", event["user"]["user_id"])
        assert "@" in event["user"]["email"]
        assert all(
            isinstance(event["user"][k], str) and event["user"][k] for k in NESTED_KEYS["user"]
        )
        assert event["page"]["url"].startswith("https://")
        assert event["page"]["referrer"] is None or event["page"]["referrer"].startswith("https://")
        assert event["device"]["type"] in {"desktop", "mobile", "tablet"}
        assert re.fullmatch(r"[A-Z]{2}", event["geo"]["country"])


def test_events_serialize_to_expected_json_types(events: list[dict[str, Any]]) -> None:
    for event in events:
        props = orjson.loads(orjson.dumps(event))["properties"]
        if props["product_id"] is None:
            assert props == {"product_id": None, "price": None, "currency": None, "quantity": None}
            continue
        assert re.fullmatch(r"sku-\d{5}", props["product_id"])
        assert isinstance(props["price"], float) and props["price"] > 0
        assert round(props["price"], 2) == props["price"]
        assert isinstance(props["quantity"], int) and props["quantity"] >= 1
        assert re.fullmatch(r"[A-Z]{3}", props["currency"])


def test_products_only_where_expected(events: list[dict[str, Any]]) -> None:
    for event in events:
        product_id = event["properties"]["product_id"]
        if event["event_type"] == "search":
            assert product_id is None
        elif event["event_type"] in (*FUNNEL, "click"):
            assert product_id is not None
        elif "/p/" in event["page"]["url"]:
            assert event["page"]["url"].endswith(f"/p/{product_id}")
        else:
            assert product_id is None


def test_urls_carry_no_pii(events: list[dict[str, Any]]) -> None:
    for event in events:
        for url in (event["page"]["url"], event["page"]["referrer"] or ""):
            assert "@" not in url
            assert event["user"]["user_id"] not in url
            assert event["user"]["email"].split("@")[0] not in url


def test_event_ts_is_iso_utc_millis_inside_window_and_sorted(events: list[dict[str, Any]]) -> None:
    stamps = [parse_ts(e["event_ts"]) for e in events]
    assert all(DEFAULT_START <= ts < DEFAULT_START + WINDOW for ts in stamps)
    assert stamps == sorted(stamps)
    assert stamps[-1] - stamps[0] > WINDOW * 0.9  # sessions are spread over the whole window


def test_window_respects_aware_non_utc_start_with_sub_millisecond_part() -> None:
    start = datetime(2026, 3, 1, 9, 30, 0, 500, tzinfo=timezone(timedelta(hours=2)))
    duration = timedelta(hours=1)
    stamps = [
        parse_ts(e["event_ts"])
        for e in generate_events(events=300, seed=SEED, start=start, duration=duration)
    ]
    assert all(start <= ts < start + duration for ts in stamps)


def test_event_ids_are_unique(events: list[dict[str, Any]]) -> None:
    assert len({e["event_id"] for e in events}) == len(events)


# ---------------------------------------------------------------------- sessions


def test_sessions_are_one_user_one_device_ordered_and_start_with_page_view(
    events: list[dict[str, Any]],
) -> None:
    sessions = by_session(events)
    assert len(sessions) > EVENTS // 20
    for session in sessions.values():
        assert session[0]["event_type"] == "page_view"
        assert len({e["user"]["user_id"] for e in session}) == 1
        assert len({orjson.dumps(e["device"]) for e in session}) == 1
        stamps = [parse_ts(e["event_ts"]) for e in session]
        gaps = [b - a for a, b in pairwise(stamps)]
        assert all(timedelta(seconds=1) <= gap <= timedelta(minutes=10) for gap in gaps)


def test_funnel_order_within_sessions(events: list[dict[str, Any]]) -> None:
    for session in by_session(events).values():
        seen: list[str] = []
        for event in session:
            step = event["event_type"]
            if step in FUNNEL[1:]:
                previous = FUNNEL[FUNNEL.index(step) - 1]
                assert previous in seen, f"{step} without an earlier {previous}"
            if step in FUNNEL:
                assert step not in seen, f"second {step} in one session"
            seen.append(step)
        carts = [e["properties"] for e in session if e["event_type"] in FUNNEL]
        assert all(c == carts[0] for c in carts)  # checkout and purchase are of the cart's product


def test_funnel_drop_off_is_plausible() -> None:
    sessions = by_session(generate_events(events=20_000, seed=SEED, users=400)).values()
    reached = {
        step: sum(any(e["event_type"] == step for e in s) for s in sessions) for step in FUNNEL
    }
    assert 0.2 < reached["add_to_cart"] / len(sessions) < 0.4
    assert 0.35 < reached["checkout"] / reached["add_to_cart"] < 0.65
    assert 0.55 < reached["purchase"] / reached["checkout"] < 0.85


def test_referrer_chains_within_a_session(events: list[dict[str, Any]]) -> None:
    for session in by_session(events).values():
        for before, after in pairwise(session):
            if after["page"]["url"] != before["page"]["url"]:
                assert after["page"]["referrer"] == before["page"]["url"]


# --------------------------------------------------------------------------- CDC


def test_every_user_has_one_insert_before_start(changes: list[dict[str, Any]]) -> None:
    inserts = [c for c in changes if c["operation"] == "INSERT"]
    assert sorted(c["user_id"] for c in inserts) == [f"u-{n:06d}" for n in range(1, USERS + 1)]
    assert all(parse_ts(c["changed_at"]) < DEFAULT_START for c in inserts)
    first_ops: dict[str, str] = {}
    for change in changes:
        first_ops.setdefault(change["user_id"], change["operation"])
    assert set(first_ops.values()) == {"INSERT"}


def test_change_rows_shape_and_order(changes: list[dict[str, Any]]) -> None:
    assert all(set(c) == CHANGE_KEYS for c in changes)
    assert all(c["plan"] in {"free", "pro", "enterprise"} for c in changes)
    stamps = [parse_ts(c["changed_at"]) for c in changes]
    assert stamps == sorted(stamps)
    assert [c["sequence_num"] for c in changes] == list(range(1, len(changes) + 1))
    later = [c for c in changes if c["operation"] != "INSERT"]
    assert all(DEFAULT_START <= parse_ts(c["changed_at"]) < DEFAULT_START + WINDOW for c in later)
    updates = sum(c["operation"] == "UPDATE" for c in changes)
    assert 0.15 * USERS < updates < 0.5 * USERS


def test_sequence_num_strictly_increasing_per_user(changes: list[dict[str, Any]]) -> None:
    per_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for change in changes:
        per_user[change["user_id"]].append(change)
    for history in per_user.values():
        for before, after in pairwise(history):
            assert after["sequence_num"] > before["sequence_num"]
            assert parse_ts(after["changed_at"]) > parse_ts(before["changed_at"])
            assert before["operation"] != "DELETE"


def test_updates_change_something(changes: list[dict[str, Any]]) -> None:
    latest: dict[str, dict[str, Any]] = {}
    for change in changes:
        if change["operation"] == "UPDATE":
            old, new = latest[change["user_id"]], change
            fields = ("email", "plan", "country", "city")
            assert any(old[f] != new[f] for f in fields)
        latest[change["user_id"]] = change


def test_no_events_for_a_user_after_its_delete() -> None:
    users, seed = 400, SEED
    changes = generate_user_changes(seed=seed, users=users)
    deleted = {
        c["user_id"]: parse_ts(c["changed_at"]) for c in changes if c["operation"] == "DELETE"
    }
    assert 2 <= len(deleted) <= 20
    events = generate_events(events=EVENTS, seed=seed, users=users)
    assert {
        e["user"]["user_id"] for e in events
    } & deleted.keys()  # deleted users were active before
    for event in events:
        user_id = event["user"]["user_id"]
        if user_id in deleted:
            assert parse_ts(event["event_ts"]) < deleted[user_id]


def test_events_carry_the_profile_version_in_force(
    events: list[dict[str, Any]], changes: list[dict[str, Any]]
) -> None:
    changed_users = {c["user_id"] for c in changes if c["operation"] == "UPDATE"}
    checked = 0
    for event in events:
        if event["user"]["user_id"] not in changed_users:
            continue
        profile = profile_as_of(changes, event["user"]["user_id"], parse_ts(event["event_ts"]))
        assert profile["operation"] in {"INSERT", "UPDATE"}
        assert (profile["email"], profile["full_name"]) == (
            event["user"]["email"],
            event["user"]["full_name"],
        )
        assert (profile["country"], profile["city"]) == (
            event["geo"]["country"],
            event["geo"]["city"],
        )
        checked += 1
    assert checked > 100


# ------------------------------------------------------------------ write_landing


def read_lines(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n")
    return [orjson.loads(line) for line in data.splitlines()]


def test_write_landing_files_match_generate_functions(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    summary = write_landing(
        tmp_path,
        events=EVENTS,
        seed=SEED,
        users=USERS,
        files=3,
        progress=lambda d, t: calls.append((d, t)),
    )
    names = sorted(p.name for p in (tmp_path / "events").iterdir())
    assert names == [f"events-s{SEED}-0000{i}.json" for i in range(3)]
    assert [p.name for p in (tmp_path / "user_changes").iterdir()] == [
        f"user-changes-s{SEED}-00000.json"
    ]
    assert summary == LandingSummary(
        events=EVENTS,
        event_files=tuple(tmp_path / "events" / name for name in names),
        user_changes=len(generate_user_changes(seed=SEED, users=USERS)),
        change_files=(tmp_path / "user_changes" / f"user-changes-s{SEED}-00000.json",),
    )
    per_file = [read_lines(p) for p in summary.event_files]
    assert [e for lines in per_file for e in lines] == generate_events(
        events=EVENTS, seed=SEED, users=USERS
    )
    assert read_lines(summary.change_files[0]) == generate_user_changes(seed=SEED, users=USERS)
    for index, lines in enumerate(per_file):  # file i holds the i-th third of the day
        assert lines
        assert all(
            DEFAULT_START + WINDOW * index / 3
            <= parse_ts(e["event_ts"])
            < DEFAULT_START + WINDOW * (index + 1) / 3
            for e in lines
        )
    assert calls == [(EVENTS, EVENTS)]


def test_write_landing_refuses_to_overwrite(tmp_path: Path) -> None:
    write_landing(tmp_path, events=10, seed=SEED, files=1)
    with pytest.raises(
        ValueError, match=rf"events-s{SEED}-00000\.json.*choose another --out or --seed"
    ):
        write_landing(tmp_path, events=10, seed=SEED, files=2)
    assert sorted(p.name for p in (tmp_path / "events").iterdir()) == [f"events-s{SEED}-00000.json"]
    write_landing(tmp_path, events=10, seed=SEED + 1, files=1)  # another seed lands beside it


def test_write_landing_progress_and_empty_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(generator, "_PROGRESS_EVERY", 100)
    calls: list[tuple[int, int]] = []
    summary = write_landing(
        tmp_path, events=250, seed=SEED, files=2, progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(100, 250), (200, 250), (250, 250)]
    assert sum(len(read_lines(p)) for p in summary.event_files) == 250

    calls.clear()
    empty = write_landing(
        tmp_path / "empty", events=0, seed=SEED, files=2, progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(0, 0)]
    assert [p.read_bytes() for p in empty.event_files] == [b"", b""]
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary files left behind


# -------------------------------------------------------------------- validation


NAIVE = datetime(2026, 11, 1)  # noqa: DTZ001 - deliberately naive, must be rejected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"events": -1}, "events must be >= 0"),
        ({"users": 0}, "users must be >= 1"),
        ({"start": NAIVE}, "start must be timezone-aware"),
        ({"duration": timedelta(0)}, "duration must be > 0"),
        ({"duration": timedelta(hours=-1)}, "duration must be > 0"),
    ],
)
def test_generate_events_validates(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_events(**{"events": 10, "seed": 1, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"users": 0}, "users must be >= 1"),
        ({"start": NAIVE}, "start must be timezone-aware"),
        ({"duration": timedelta(0)}, "duration must be > 0"),
    ],
)
def test_generate_user_changes_validates(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_user_changes(**{"users": 10, "seed": 1, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"files": 0}, "files must be >= 1"),
        ({"events": -5}, "events must be >= 0"),
        ({"users": -1}, "users must be >= 1"),
        ({"start": NAIVE}, "start must be timezone-aware"),
        ({"duration": timedelta(microseconds=-1)}, "duration must be > 0"),
    ],
)
def test_write_landing_validates_before_writing(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        write_landing(tmp_path, **{"events": 10, "seed": 1, **kwargs})
    assert not list(tmp_path.iterdir())


def test_default_start_is_aware_utc() -> None:
    assert datetime(2026, 11, 1, tzinfo=UTC) == DEFAULT_START
    assert DEFAULT_START.utcoffset() == timedelta(0)
