"""Fault generators: faults present as asked, exact record counts, determinism, knob checks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import find, given
from hypothesis import strategies as st

from pipeline.errors import InputError
from scenarios import faults
from scenarios.faults import (
    Delivery,
    FaultArgumentError,
    IncompatibleFaultsError,
    Injection,
    LandingFile,
    count_records,
    split_lines,
    write_delivery,
)
from scenarios.faults._common import parse_ts
from scenarios.faults.replay import MAX_CONFLICT_SHIFT
from scenarios.faults.strategies import fault_draws
from scenarios.generator import generate_events, generate_user_changes

SEED = 11
ROOT = Path(__file__).resolve().parents[2]
EVENTS = 400
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return generate_events(events=EVENTS, seed=SEED, users=40)


# ---------------------------------------------------------------------------- helpers


def event_files(injection: Injection, delivery: int | None = None) -> list[LandingFile]:
    deliveries = injection.deliveries if delivery is None else (injection.deliveries[delivery],)
    return [f for d in deliveries for f in d.files if f.folder == "events"]


def records_of(files: list[LandingFile]) -> list[bytes]:
    """Non-blank lines, by the pipeline's splitting rule."""
    return [ln for f in files for ln in split_lines(f.content) if ln.strip(b" ")]


def objects(injection: Injection, delivery: int | None = None) -> list[dict[str, Any]]:
    """Every record that Python's strict JSON reads as an object."""
    found = []
    for record in records_of(event_files(injection, delivery)):
        try:
            value = orjson.loads(record)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def fingerprint(injection: Injection) -> list[list[tuple[str, str, bytes]]]:
    return [[(f.folder, f.name, f.content) for f in d.files] for d in injection.deliveries]


def contents(injection: Injection) -> list[list[bytes]]:
    return [[f.content for f in d.files] for d in injection.deliveries]


def check_common(injection: Injection) -> None:
    """Invariants every injection keeps: record counts, names, id bookkeeping."""
    files = event_files(injection)
    assert injection.records == sum(count_records(f.content) for f in files)
    assert dict(injection.records_by_file) == {f.name: count_records(f.content) for f in files}
    # The harness may count with Python's whitespace rule: it must agree on our output.
    assert injection.records == sum(1 for f in files for ln in f.content.splitlines() if ln.strip())
    names = [(f.folder, f.name) for d in injection.deliveries for f in d.files]
    assert len(names) == len(set(names))
    assert injection.silver_ids <= injection.event_ids
    assert not injection.silver_ids & injection.late_ids
    assert not injection.silver_ids & injection.maybe_silver_ids
    assert len(injection.max_event_time) in (0, len(injection.deliveries))
    assert 0 <= injection.quarantined + injection.unpredicted <= injection.records
    assert injection.description.endswith(".")


# ------------------------------------------------------------------ counting and writing


@pytest.mark.parametrize(
    ("content", "records"),
    [
        (b"", 0),
        (b"\n\n", 0),
        (b"   \n \r\n", 0),
        (b"a", 1),
        (b"a\nb\n", 2),
        (b"a\r\nb\r\n", 2),
        (b"a\rb\rc", 3),
        (b"a\n\r\nb", 2),
        (b"\xef\xbb\xbf{}\n", 1),
        (b"\xef\xbb\xbf\n{}\n", 1),  # Hadoop drops the BOM that starts a file
        (b"{}\n\xef\xbb\xbf\n", 2),  # ... but not one later in the file
        (b"\x00\xff\n", 1),
    ],
)
def test_count_records_follows_the_text_source(content: bytes, records: int) -> None:
    assert count_records(content) == records


def test_landing_file_rejects_hidden_or_nested_names() -> None:
    for name in ("", ".hidden.json", "_temporary.json", "a/b.json", " padded.json"):
        with pytest.raises(InputError, match="plain, non-hidden name"):
            LandingFile("events", name, b"")
    with pytest.raises(InputError, match="folder must be one of"):
        LandingFile("other", "x.json", b"")  # type: ignore[arg-type]


def test_write_delivery_writes_creates_folders_and_refuses_overwrite(tmp_path: Path) -> None:
    delivery = Delivery(
        (
            LandingFile("events", "a.json", b'{"x":1}\n'),
            LandingFile("user_changes", "c.json", b'{"y":2}\n'),
        )
    )
    write_delivery(tmp_path / "landing", delivery)
    assert (tmp_path / "landing" / "events" / "a.json").read_bytes() == b'{"x":1}\n'
    assert (tmp_path / "landing" / "user_changes" / "c.json").read_bytes() == b'{"y":2}\n'
    assert not list(tmp_path.rglob(".*"))  # no temporary file left behind

    clash = Delivery(
        (
            LandingFile("events", "b.json", b"new\n"),
            LandingFile("events", "a.json", b"other\n"),
        )
    )
    with pytest.raises(InputError, match=r"refusing to overwrite .*a\.json"):
        write_delivery(tmp_path / "landing", clash)
    assert (tmp_path / "landing" / "events" / "a.json").read_bytes() == b'{"x":1}\n'
    assert not (tmp_path / "landing" / "events" / "b.json").exists()  # checked before writing


def this_tree(**extra: str) -> dict[str, str]:
    """The environment for a child interpreter that imports this working tree's packages."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def test_faults_do_not_import_spark() -> None:
    code = "import sys, scenarios.faults; sys.exit('pyspark' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], env=this_tree(), check=False)
    assert run.returncode == 0


# ------------------------------------------------------------------------------- late data


def test_late_data_places_copies_within_and_beyond_the_watermark(
    events: list[dict[str, Any]],
) -> None:
    injection = faults.late_data(events, seed=SEED, late_fraction=0.1, within_fraction=0.3)
    check_common(injection)
    assert len(injection.deliveries) == 2
    late, within = 40, 12  # 10 % of 400; 30 % of 40
    assert dict(injection.injected) == {
        "late_within_watermark": within,
        "late_beyond_watermark": late - within,
        "late_within_replays": within,
    }
    clean_ids = {e["event_id"] for e in events}
    newest = max(parse_ts(e["event_ts"]) for e in events)
    on_time = objects(injection, 0)
    assert on_time == events
    copies = objects(injection, 1)
    assert len(copies) == late + within
    sent = Counter(c["event_id"] for c in copies)
    assert not sent.keys() & clean_ids
    for copy in copies:
        instant = parse_ts(copy["event_ts"])
        if copy["event_id"] in injection.late_ids:
            assert sent[copy["event_id"]] == 1
            assert newest - HOUR - timedelta(hours=6) <= instant <= newest - HOUR * 1.5
        else:
            assert sent[copy["event_id"]] == 2
            assert newest - HOUR / 2 <= instant <= newest
    assert len(injection.late_ids) == late - within
    assert injection.silver_ids == clean_ids | (sent.keys() - injection.late_ids)
    assert injection.duplicate_rows == within
    assert injection.records == EVENTS + late + within
    assert injection.max_event_time[0] == newest
    assert injection.min_on_time[0] is None
    assert injection.min_on_time[1] is not None
    assert injection.min_on_time[1] >= newest - HOUR / 2


def test_late_data_respects_the_watermark_delay(events: list[dict[str, Any]]) -> None:
    delay = timedelta(minutes=10)
    injection = faults.late_data(
        events, seed=SEED, late_fraction=0.2, watermark_delay=delay, max_lateness=delay
    )
    newest = max(parse_ts(e["event_ts"]) for e in events)
    for copy in objects(injection, 1):
        instant = parse_ts(copy["event_ts"])
        if copy["event_id"] in injection.late_ids:
            assert newest - 2 * delay <= instant <= newest - 1.5 * delay
        else:
            assert instant >= newest - delay / 2


@pytest.mark.parametrize(
    ("kwargs", "knob"),
    [
        ({"late_fraction": 1.5}, "late_fraction"),
        ({"late_fraction": -0.1}, "late_fraction"),
        ({"within_fraction": float("nan")}, "within_fraction"),
        ({"watermark_delay": timedelta(0)}, "watermark_delay"),
        ({"max_lateness": timedelta(minutes=20)}, "max_lateness"),
        ({"seed": "7"}, "seed"),
    ],
)
def test_late_data_validates_knobs(
    events: list[dict[str, Any]], kwargs: dict[str, Any], knob: str
) -> None:
    with pytest.raises(FaultArgumentError, match=knob):
        faults.late_data(events, **{"seed": SEED, **kwargs})


def test_late_data_needs_events() -> None:
    with pytest.raises(FaultArgumentError, match="events must hold at least 1"):
        faults.late_data([], seed=SEED)


# ---------------------------------------------------------------------------- schema drift


def at_path(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


def test_schema_drift_spreads_kinds_and_records_where_values_go(
    events: list[dict[str, Any]],
) -> None:
    injection = faults.schema_drift(events, seed=SEED, drift_fraction=0.1)
    check_common(injection)
    counts = dict(injection.injected)
    assert set(counts) == set(faults.DRIFT_KINDS)
    assert sum(counts.values()) == 40
    assert max(counts.values()) - min(counts.values()) <= 1
    written = {o.get("event_id"): o for o in objects(injection)}
    assert len(written) == EVENTS
    assert injection.silver_ids == {e["event_id"] for e in events}
    drifted = {case.event_id for case in injection.drift}
    assert len(drifted) == 40
    by_kind = Counter(case.kind for case in injection.drift if case.path != ("schema_version",))
    assert by_kind == counts
    for case in injection.drift:
        event = written[case.event_id]
        if case.where == "absent":
            assert case.path[-1] not in at_path(event, case.path[:-1])
        else:
            assert at_path(event, case.path) == case.value
        if case.kind in ("case_variant_name", "schema_version_bump"):
            assert "event_type" not in event
        if case.kind == "number_as_string":
            assert isinstance(case.value, str)
            float(case.value)
        if case.kind == "string_as_object":
            assert case.typed_text == orjson.dumps(case.value).decode()
    for event in events:  # everything else is untouched
        if event["event_id"] not in drifted:
            assert written[event["event_id"]] == event


def test_schema_drift_small_counts_and_validation(events: list[dict[str, Any]]) -> None:
    none = faults.schema_drift(events, seed=SEED, drift_fraction=0)
    assert sum(none.injected.values()) == 0
    assert objects(none) == events
    three = faults.schema_drift(events[:30], seed=SEED, drift_fraction=0.1)
    assert sum(three.injected.values()) == 3
    assert max(three.injected.values()) == 1
    with pytest.raises(FaultArgumentError, match="drift_fraction must be a number in"):
        faults.schema_drift(events, seed=SEED, drift_fraction=2)


# ------------------------------------------------------------------------- corrupt records

HAS_CORPUS = faults.DEFAULT_CORPUS.is_dir()


def classify(record: bytes, event_lines: set[bytes]) -> str:
    """Which corrupt kind a main-file record is, judged from its bytes alone."""
    if record.startswith(b"\x00"):
        return "binary_garbage"
    try:
        value = orjson.loads(record)
    except orjson.JSONDecodeError:
        try:
            record.decode()
        except UnicodeDecodeError:
            try:
                if isinstance(orjson.loads(record.decode(errors="replace")), dict):
                    return "invalid_utf8"
            except orjson.JSONDecodeError:
                pass
        if any(full.startswith(record) for full in event_lines):
            return "truncated"
        return "invalid_json"
    if isinstance(value, dict):
        return "clean"
    return "top_level_array" if isinstance(value, list) else "scalar"


def test_corrupt_records_line_kinds_are_present_in_the_bytes(
    events: list[dict[str, Any]],
) -> None:
    injection = faults.corrupt_records(
        events, seed=SEED, corrupt_fraction=0.15, corpus_dir=None, allow_long_line=False
    )
    check_common(injection)
    main, bom, crlf, empty = event_files(injection)
    assert [main.name.rsplit("-", 1)[1], bom.name, crlf.name, empty.name] == [
        "events.json",
        f"corrupt-s{SEED}-d1-bom.json",
        f"corrupt-s{SEED}-d1-crlf.json",
        f"corrupt-s{SEED}-d1-empty.json",
    ]
    counts = {kind: injection.injected[kind] for kind in faults.LINE_KINDS}
    assert sum(counts.values()) == 60  # 15 % of 400
    assert max(counts.values()) - min(counts.values()) <= 1
    event_lines = {orjson.dumps(e) for e in events}
    found = Counter(classify(record, event_lines) for record in records_of([main]))
    assert found == {"clean": EVENTS - 60 - 6, **counts}
    assert injection.quarantined == 60 - counts["invalid_utf8"]
    assert injection.unpredicted == counts["invalid_utf8"]
    assert len(injection.maybe_silver_ids) == counts["invalid_utf8"]
    assert injection.injected["blank_lines"] == 2
    assert len(main.content.splitlines()) == EVENTS - 6 + 2  # two blank lines, not records

    assert bom.content.startswith(faults.UTF8_BOM)
    assert crlf.content.count(b"\r\n") == crlf.content.count(b"\n") == 3
    assert empty.content == b""
    intact = objects(injection)
    assert len(intact) == EVENTS - 60  # the main file's clean events and the 3 + 3 moved ones
    assert {o["event_id"] for o in intact} == injection.silver_ids
    assert injection.records == EVENTS  # every victim is still one record; blank lines are not


def test_corrupt_records_long_line_is_a_valid_event_over_one_megabyte(
    events: list[dict[str, Any]],
) -> None:
    injection = faults.corrupt_records(events, seed=SEED, corpus_dir=None)
    check_common(injection)
    [long_file] = [f for f in event_files(injection) if f.name.endswith("long-line.json")]
    assert long_file.records == 1
    assert len(long_file.content) > 1_048_576
    event = orjson.loads(long_file.content)
    payload = event.pop("debug_payload")
    assert len(payload) == faults.corrupt.LONG_LINE_PAYLOAD
    assert event in events
    assert event["event_id"] in injection.silver_ids
    assert injection.injected["long_lines"] == 1


@pytest.mark.skipif(not HAS_CORPUS, reason="the JSON test suite corpus is not on this machine")
def test_corrupt_records_includes_every_corpus_file_by_the_splitting_rule(
    events: list[dict[str, Any]],
) -> None:
    injection = faults.corrupt_records(
        events[:50], seed=SEED, corrupt_fraction=0, allow_long_line=False
    )
    check_common(injection)
    corpus_files = sorted(faults.DEFAULT_CORPUS.glob("*.json"))
    assert sorted(injection.corpus_records) == [p.name for p in corpus_files]
    [landing] = [f for f in event_files(injection) if f.name.endswith("json-test-suite.json")]
    assert landing.records == sum(injection.corpus_records.values())
    assert injection.unpredicted == landing.records
    assert injection.injected["corpus_files"] == len(corpus_files) == 318
    assert not landing.content.startswith(faults.UTF8_BOM)
    for path in corpus_files:
        assert path.read_bytes() + b"\n" in landing.content
    records = injection.corpus_records
    assert records["y_object_with_newlines.json"] == 3  # '{\n"a": "b"\n}' is three lines
    assert records["n_array_newlines_unclosed.json"] == 3
    assert records["n_structure_no_data.json"] == 0  # empty
    assert records["n_single_space.json"] == 0  # blank
    assert records["n_structure_UTF8_BOM_no_data.json"] == 1  # a BOM inside a file is text
    assert records["y_object_empty.json"] == 1
    assert sum(1 for n in records.values() if n != 1) == 7


def test_corrupt_records_validates_knobs(events: list[dict[str, Any]], tmp_path: Path) -> None:
    with pytest.raises(FaultArgumentError, match="corrupt_fraction"):
        faults.corrupt_records(events, seed=SEED, corrupt_fraction=1.01)
    with pytest.raises(FaultArgumentError, match="corpus_dir"):
        faults.corrupt_records(events, seed=SEED, corpus_dir=tmp_path / "missing")
    with pytest.raises(FaultArgumentError, match=r"corpus_dir .* holds no"):
        faults.corrupt_records(events, seed=SEED, corpus_dir=tmp_path)
    with pytest.raises(FaultArgumentError, match="allow_long_line"):
        faults.corrupt_records(events, seed=SEED, allow_long_line="yes")  # type: ignore[arg-type]


def test_corrupt_records_with_few_events(events: list[dict[str, Any]]) -> None:
    injection = faults.corrupt_records(events[:2], seed=SEED, corrupt_fraction=0.5, corpus_dir=None)
    check_common(injection)
    assert injection.records == 2
    assert sum(injection.injected[k] for k in faults.LINE_KINDS) == 1
    empty = faults.corrupt_records([], seed=SEED, corpus_dir=None)
    assert empty.records == 0
    assert [f.name.rsplit("-", 1)[1] for f in event_files(empty)] == ["events.json", "empty.json"]


# ------------------------------------------------------------------------------ duplicates


def test_duplicates_replays_conflicts_and_redelivers(events: list[dict[str, Any]]) -> None:
    injection = faults.duplicates(events, seed=SEED, exact_fraction=0.05, conflicting_fraction=0.02)
    check_common(injection)
    assert dict(injection.injected) == {
        "exact_replays": 20,
        "conflicting_payloads": 8,
        "redelivered_files": 1,
        "redelivered_records": injection.injected["redelivered_records"],
    }
    clean = {e["event_id"]: e for e in events}
    first_run = records_of(event_files(injection, 0))
    assert len(first_run) == EVENTS + 20
    seen = Counter(orjson.loads(r)["event_id"] for r in first_run)
    assert seen.keys() == clean.keys()
    replayed = [event_id for event_id, n in seen.items() if n == 2]
    assert len(replayed) == 20 and max(seen.values()) == 2
    for event_id in replayed:  # the same bytes again, later
        positions = [i for i, r in enumerate(first_run) if orjson.loads(r)["event_id"] == event_id]
        assert first_run[positions[0]] == first_run[positions[1]] == orjson.dumps(clean[event_id])

    conflicting, again = event_files(injection, 1)
    copies = [orjson.loads(r) for r in records_of([conflicting])]
    assert len(copies) == 8
    assert not {c["event_id"] for c in copies} & set(replayed)
    for copy, conflict in zip(copies, injection.conflicts, strict=True):
        original = clean[copy["event_id"]]
        assert conflict.event_id == copy["event_id"]
        assert (conflict.kept_event_ts, conflict.kept_page_url) == (
            original["event_ts"],
            original["page"]["url"],
        )
        shift = abs(parse_ts(copy["event_ts"]) - parse_ts(original["event_ts"]))
        assert timedelta(0) < shift <= MAX_CONFLICT_SHIFT
        assert copy["page"]["url"] != original["page"]["url"] == conflict.kept_page_url
    second = event_files(injection, 0)[1]
    assert again.content == second.content and again.name != second.name
    assert injection.injected["redelivered_records"] == second.records > 0
    assert injection.silver_ids == clean.keys()
    assert injection.duplicate_rows == 20 + 8 + second.records
    assert injection.records == EVENTS + injection.duplicate_rows


def test_disjoint_fractions_that_round_past_the_events_are_cut_not_an_error(
    events: list[dict[str, Any]],
) -> None:
    # Half and half of one event round to one event each: the first fraction gets it.
    one = events[:1]
    injection = faults.duplicates(one, seed=SEED, exact_fraction=0.5, conflicting_fraction=0.5)
    check_common(injection)
    assert injection.injected["exact_replays"] == 1
    assert injection.injected["conflicting_payloads"] == 0
    skewed = faults.clock_skew(
        one, seed=SEED, future_fraction=0.5, zone_fraction=0.5, format_fraction=0.0
    )
    assert sum(skewed.injected.values()) == 1


def test_duplicates_without_redelivery_and_validation(events: list[dict[str, Any]]) -> None:
    injection = faults.duplicates(events, seed=SEED, redeliver_file=False)
    check_common(injection)
    assert [f.name for f in event_files(injection, 1)] == [f"dup-s{SEED}-d2-conflicting.json"]
    assert injection.duplicate_rows == 20 + 8
    with pytest.raises(FaultArgumentError, match="exact_fraction \\+ conflicting_fraction"):
        faults.duplicates(events, seed=SEED, exact_fraction=0.7, conflicting_fraction=0.4)
    with pytest.raises(FaultArgumentError, match="conflicting_fraction must be"):
        faults.duplicates(events, seed=SEED, conflicting_fraction=-1)
    with pytest.raises(FaultArgumentError, match="redeliver_file"):
        faults.duplicates(events, seed=SEED, redeliver_file=1)  # type: ignore[arg-type]


# ----------------------------------------------------------------------- out-of-order CDC


@pytest.fixture(scope="module")
def changes() -> list[dict[str, Any]]:
    return generate_user_changes(seed=SEED, users=200)


def by_user(rows: Any) -> dict[str, list[dict[str, Any]]]:
    histories: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: r["sequence_num"]):
        histories.setdefault(row["user_id"], []).append(row)
    return histories


def test_out_of_order_changes_adds_edge_cases_and_shuffles(changes: list[dict[str, Any]]) -> None:
    injection = faults.out_of_order_changes(
        changes, seed=SEED, batches=3, delete_fraction=0.1, reinsert_fraction=0.5, tie_fraction=0.1
    )
    check_common(injection)
    assert injection.records == 0 and len(injection.deliveries) == 3
    files = [f for d in injection.deliveries for f in d.files]
    assert [f.folder for f in files] == ["user_changes"] * 3
    for delivery, batch in zip(injection.deliveries, injection.changes, strict=True):
        [landing] = delivery.files
        assert [orjson.loads(r) for r in split_lines(landing.content)] == list(batch)
    sizes = [len(batch) for batch in injection.changes]
    assert max(sizes) - min(sizes) <= 1

    rows = injection.all_changes
    counts = injection.injected
    original_deletes = sum(c["operation"] == "DELETE" for c in changes)
    alive = 200 - original_deletes
    assert counts["extra_deletes"] == int(0.1 * alive + 0.5)  # fractions round half up
    assert counts["reinserts"] == int(0.5 * (original_deletes + counts["extra_deletes"]) + 0.5)
    assert counts["sequence_ties"] == 20
    added = counts["extra_deletes"] + counts["reinserts"] + counts["sequence_ties"]
    assert counts["changes"] == len(rows) == len(changes) + added

    numbers = [r["sequence_num"] for r in rows]
    assert all(isinstance(n, int) for n in numbers)
    assert sorted(numbers) == list(range(1, len(rows) + 1))
    assert numbers != sorted(numbers)  # shuffled
    assert counts["arrivals_out_of_order"] > 0
    strip = [{k: v for k, v in c.items() if k != "sequence_num"} for c in changes]
    written = [{k: v for k, v in r.items() if k != "sequence_num"} for r in rows]
    assert all(row in written for row in strip)  # every original row is delivered

    ties = reinserts = deletes = 0
    for history in by_user(rows).values():
        stamps = [parse_ts(r["changed_at"]) for r in history]
        assert stamps == sorted(stamps)  # sequence_num agrees with changed_at
        assert history[0]["operation"] == "INSERT"
        for before, after in pairwise(history):
            if before["changed_at"] == after["changed_at"]:
                ties += 1
                assert after["operation"] == "UPDATE" and after["plan"] != before["plan"]
            if before["operation"] == "DELETE":
                assert after["operation"] == "INSERT"
                reinserts += 1
        deletes += sum(r["operation"] == "DELETE" for r in history)
    assert ties == counts["sequence_ties"]
    assert reinserts == counts["reinserts"]
    assert deletes == original_deletes + counts["extra_deletes"]


def test_out_of_order_changes_is_deterministic_per_seed(changes: list[dict[str, Any]]) -> None:
    first = faults.out_of_order_changes(changes, seed=SEED)
    assert fingerprint(first) == fingerprint(faults.out_of_order_changes(changes, seed=SEED))
    assert contents(first) != contents(faults.out_of_order_changes(changes, seed=SEED + 1))


def test_out_of_order_changes_in_order_and_validation(changes: list[dict[str, Any]]) -> None:
    injection = faults.out_of_order_changes(changes, seed=SEED, batches=1, shuffle=False)
    [batch] = injection.changes
    assert [r["sequence_num"] for r in batch] == list(range(1, len(batch) + 1))
    assert injection.injected["arrivals_out_of_order"] == 0
    few = faults.out_of_order_changes(changes[:2], seed=SEED, batches=4, delete_fraction=0)
    assert [len(b) for b in few.changes] == [1, 1, 0, 0]
    assert [d.files[0].content for d in few.deliveries][2:] == [b"", b""]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"batches": 0}, "batches"),
        ({"batches": True}, "batches"),
        ({"shuffle": "no"}, "shuffle"),
        ({"delete_fraction": 2}, "delete_fraction"),
        ({"reinsert_fraction": -0.5}, "reinsert_fraction"),
        ({"tie_fraction": None}, "tie_fraction"),
    ]
    for kwargs, knob in cases:
        with pytest.raises(FaultArgumentError, match=knob):
            faults.out_of_order_changes(changes, **{"seed": SEED, **kwargs})
    with pytest.raises(FaultArgumentError, match="changes must be CDC rows"):
        faults.out_of_order_changes([{"user_id": "u", "operation": "MERGE"}], seed=SEED)


# ------------------------------------------------------------------------------------- PII


def test_pii_is_planted_where_it_is_not_expected(events: list[dict[str, Any]]) -> None:
    injection = faults.pii_in_unexpected_places(events, seed=SEED, pii_fraction=0.1)
    check_common(injection)
    counts = dict(injection.injected)
    assert set(counts) == set(faults.PII_KINDS) and sum(counts.values()) == 40
    assert max(counts.values()) - min(counts.values()) <= 1
    assert Counter(p.kind for p in injection.pii) == counts
    written = {o["event_id"]: o for o in objects(injection)}
    clean = {e["event_id"]: e for e in events}
    assert injection.silver_ids == clean.keys() == written.keys()
    for plant in injection.pii:
        event = written[plant.event_id]
        text = at_path(event, plant.path)
        email = clean[plant.event_id]["user"]["email"]
        assert all(value in text for value in plant.values)
        assert set(plant.values) <= injection.pii_values
        assert {email, email.replace("@", "%40")} <= injection.pii_values
        if plant.kind == "url_query_clear":
            assert text.endswith(f"email={email}")
        if plant.kind == "url_query_encoded":
            assert "%40" in text and "@" not in text
        if plant.kind == "free_text_note":
            assert clean[plant.event_id]["user"]["full_name"] in text
            assert "note" not in clean[plant.event_id]["properties"]
    planted = {p.event_id for p in injection.pii}
    for event_id, event in clean.items():
        if event_id not in planted:
            assert written[event_id] == event
    raw = b"".join(f.content for f in event_files(injection))
    assert all(value.encode() in raw for plant in injection.pii for value in plant.values)


def test_pii_validates_its_fraction(events: list[dict[str, Any]]) -> None:
    with pytest.raises(FaultArgumentError, match="pii_fraction must be a number in"):
        faults.pii_in_unexpected_places(events, seed=SEED, pii_fraction=1.2)


# ---------------------------------------------------------------------------------- clock


def test_clock_skew_writes_each_kind_and_its_instants(events: list[dict[str, Any]]) -> None:
    week = timedelta(days=7)
    injection = faults.clock_skew(
        events,
        seed=SEED,
        future_fraction=0.02,
        zone_fraction=0.05,
        format_fraction=0.05,
        max_future=week,
    )
    check_common(injection)
    counts = dict(injection.injected)
    assert counts["future"] == 8 and counts["zone_offset"] == 20
    assert [counts[k] for k in faults.FORMAT_KINDS] == [5, 5, 5, 5]
    assert Counter(c.kind for c in injection.clock) == counts
    written = {o["event_id"]: o for o in objects(injection)}
    clean = {e["event_id"]: e for e in events}
    for case in injection.clock:
        true = parse_ts(clean[case.event_id]["event_ts"])
        assert case.true_instant == true
        text = written[case.event_id]["event_ts"]
        assert text == case.event_ts
        if case.kind == "future":
            assert parse_ts(text) == case.instant
            assert true + week / 2 <= parse_ts(text) <= true + week
        elif case.kind == "zone_offset":
            assert text[-6:] in faults.ZONE_OFFSETS and parse_ts(text) == true
        elif case.kind == "format_space_z":
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", text)
            assert parse_ts(text) == case.instant == true.replace(microsecond=0)
        elif case.kind == "format_naive":
            assert datetime.fromisoformat(text).tzinfo is None and case.instant is None
            assert datetime.fromisoformat(text).replace(tzinfo=UTC) == true
        elif case.kind == "format_epoch_millis":
            assert isinstance(text, int)
            assert datetime.fromtimestamp(text / 1000, UTC) == true == case.instant
        else:
            assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", text)
            assert parsedate_to_datetime(text) == case.instant == true.replace(microsecond=0)
        assert (case.expected == "silver") == (case.parsed_instant is not None)
    quarantined = {c.event_id for c in injection.clock if c.expected == "silver_quarantine"}
    assert len(quarantined) == 5  # only the zone-less kind
    assert injection.silver_quarantine_ids == quarantined
    assert injection.silver_ids == clean.keys() - quarantined
    futures = [c.instant for c in injection.clock if c.kind == "future" and c.instant]
    assert injection.max_event_time[0] == max(futures)
    unchanged = clean.keys() - {c.event_id for c in injection.clock}
    assert all(written[i] == clean[i] for i in unchanged)


def test_clock_skew_validates_knobs(events: list[dict[str, Any]]) -> None:
    with pytest.raises(FaultArgumentError, match="future_fraction \\+ zone_fraction"):
        faults.clock_skew(events, seed=SEED, future_fraction=0.5, zone_fraction=0.6)
    with pytest.raises(FaultArgumentError, match="max_future must be a timedelta"):
        faults.clock_skew(events, seed=SEED, max_future=timedelta(0))
    with pytest.raises(FaultArgumentError, match="format_fraction"):
        faults.clock_skew(events, seed=SEED, format_fraction=3)


# --------------------------------------------------------------------------------- volume


def test_burst_adds_sessions_at_the_asked_rate(events: list[dict[str, Any]]) -> None:
    window = timedelta(minutes=30)
    injection = faults.burst(events, seed=SEED, factor=10, burst_window=window)
    check_common(injection)
    times = [parse_ts(e["event_ts"]) for e in events]
    span = max(times) - min(times)
    normal = EVENTS * (window / span)
    extra = injection.injected["burst_events"]
    assert extra == int(9 * normal + 0.5)
    written = objects(injection)
    stamps = [parse_ts(o["event_ts"]) for o in written]
    assert stamps == sorted(stamps)
    clean = {e["event_id"]: e for e in events}
    added = [o for o in written if o["event_id"] not in clean]
    assert len(added) == extra == injection.records - EVENTS
    start = min(parse_ts(o["event_ts"]) for o in added)
    assert max(parse_ts(o["event_ts"]) for o in added) - start < window
    sessions = {o["session_id"] for o in added}
    assert len(sessions) == injection.injected["burst_sessions"]
    assert not sessions & {e["session_id"] for e in events}
    assert injection.silver_ids == clean.keys() | {o["event_id"] for o in added}
    in_window = sum(1 for t in stamps if start <= t < start + window)
    assert in_window >= 9 * normal  # about factor x the normal count


def test_burst_factor_one_adds_nothing_and_validation(events: list[dict[str, Any]]) -> None:
    assert faults.burst(events, seed=SEED, factor=1).injected["burst_events"] == 0
    with pytest.raises(FaultArgumentError, match="factor must be a number >= 1"):
        faults.burst(events, seed=SEED, factor=0.5)
    with pytest.raises(FaultArgumentError, match="burst_window must be at most the span"):
        faults.burst(events, seed=SEED, burst_window=timedelta(days=3))
    with pytest.raises(FaultArgumentError, match="burst_window must be a timedelta"):
        faults.burst(events, seed=SEED, burst_window=timedelta(0))
    with pytest.raises(FaultArgumentError, match="events must hold at least 2"):
        faults.burst(events[:1], seed=SEED)


# -------------------------------------------------------------------------------- compose


def test_compose_merges_deliveries_run_by_run(
    events: list[dict[str, Any]], changes: list[dict[str, Any]]
) -> None:
    late_part, drift_part, dup_part = faults.split_events(events, 3)
    late = faults.late_data(late_part, seed=SEED, late_fraction=0.1)
    drift = faults.schema_drift(drift_part, seed=SEED)
    dups = faults.duplicates(dup_part, seed=SEED)
    cdc = faults.out_of_order_changes(changes, seed=SEED, batches=3)
    combined = faults.compose(late, drift, dups, cdc)
    check_common(combined)
    assert len(combined.deliveries) == 3
    assert [f.name for f in combined.deliveries[0].files] == [
        *(f.name for f in late.deliveries[0].files),
        *(f.name for f in drift.deliveries[0].files),
        *(f.name for f in dups.deliveries[0].files),
        *(f.name for f in cdc.deliveries[0].files),
    ]
    assert [f.name for f in combined.deliveries[2].files] == [cdc.deliveries[2].files[0].name]
    assert combined.records == late.records + drift.records + dups.records
    assert combined.injected == {**late.injected, **drift.injected, **dups.injected, **cdc.injected}
    assert combined.silver_ids == late.silver_ids | drift.silver_ids | dups.silver_ids
    assert combined.late_ids == late.late_ids
    assert combined.duplicate_rows == late.duplicate_rows + dups.duplicate_rows
    assert combined.drift == drift.drift and combined.conflicts == dups.conflicts
    assert combined.changes == cdc.changes
    assert combined.max_event_time[0] == max(
        t for t in (late.max_event_time[0], drift.max_event_time[0], dups.max_event_time[0]) if t
    )
    assert combined.min_on_time[1] == late.min_on_time[1]
    paragraph = faults.describe(combined)
    assert paragraph.startswith(late.description)
    assert f"{combined.records:,} event records" in paragraph
    assert f"{len(combined.late_ids):,} late" in paragraph
    assert "\n" not in paragraph


def test_compose_sums_counts_of_the_same_kind(events: list[dict[str, Any]]) -> None:
    first, second = faults.split_events(events, 2)
    both = faults.compose(
        faults.schema_drift(first, seed=1, drift_fraction=0.2),
        faults.schema_drift(second, seed=2, drift_fraction=0.2),
    )
    assert sum(both.injected.values()) == 80  # 20 % of 200, twice
    assert len(both.deliveries) == 1 and len(both.deliveries[0].files) == 2


def test_compose_refuses_combinations_that_break_expectations(
    events: list[dict[str, Any]],
) -> None:
    first, second = faults.split_events(events, 2)
    with pytest.raises(IncompatibleFaultsError, match=r"share .* event ids"):
        faults.compose(
            faults.schema_drift(events, seed=1), faults.pii_in_unexpected_places(events, seed=2)
        )
    with pytest.raises(IncompatibleFaultsError, match="same file names"):
        faults.compose(faults.schema_drift(first, seed=1), faults.schema_drift(second, seed=1))
    late = faults.late_data(first, seed=SEED, late_fraction=0.2)
    future = faults.clock_skew(second, seed=SEED, future_fraction=0.1)
    with pytest.raises(IncompatibleFaultsError, match="run 2 has events that must be on time"):
        faults.compose(late, future)
    faults.compose(late, faults.clock_skew(second, seed=SEED, future_fraction=0))
    parts = faults.split_events(events, 3)
    corrupt = [faults.corrupt_records(p, seed=i, corpus_dir=None) for i, p in enumerate(parts)]
    with pytest.raises(IncompatibleFaultsError, match="15 event files, more than 12"):
        faults.compose(*corrupt, max_files_per_delivery=12)
    with pytest.raises(FaultArgumentError, match="at least one injection"):
        faults.compose()
    with pytest.raises(FaultArgumentError, match="parts must be"):
        faults.split_events(events, 0)


def test_split_events_deals_round_robin(events: list[dict[str, Any]]) -> None:
    parts = faults.split_events(events, 3)
    assert [len(p) for p in parts] == [134, 133, 133]
    assert sorted(e["event_id"] for p in parts for e in p) == sorted(e["event_id"] for e in events)
    assert parts[1][0] == events[1]


# ---------------------------------------------------------------------- properties and fuzz


@cache
def small_sample() -> list[dict[str, Any]]:
    return generate_events(events=60, seed=SEED, users=10)


@cache
def fuzz_inputs() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return generate_events(events=300, seed=SEED), generate_user_changes(seed=SEED, users=20)


fraction = st.floats(min_value=0, max_value=1)


@pytest.mark.property
@given(
    seed=st.integers(-(2**40), 2**40),
    corrupt=fraction,
    drift=fraction,
    pii=fraction,
    exact=fraction,
    conflicting=fraction,
    zone=st.floats(min_value=0, max_value=0.49),
    fmt=st.floats(min_value=0, max_value=0.49),
    redeliver=st.booleans(),
)
def test_records_always_equal_the_non_blank_lines(
    seed: int,
    corrupt: float,
    drift: float,
    pii: float,
    exact: float,
    conflicting: float,
    zone: float,
    fmt: float,
    redeliver: bool,
) -> None:
    sample = small_sample()
    exact, conflicting = exact / 2, conflicting / 2
    for injection in (
        faults.corrupt_records(
            sample, seed=seed, corrupt_fraction=corrupt, corpus_dir=None, allow_long_line=False
        ),
        faults.schema_drift(sample, seed=seed, drift_fraction=drift),
        faults.pii_in_unexpected_places(sample, seed=seed, pii_fraction=pii),
        faults.duplicates(
            sample,
            seed=seed,
            exact_fraction=exact,
            conflicting_fraction=conflicting,
            redeliver_file=redeliver,
        ),
        faults.clock_skew(sample, seed=seed, zone_fraction=zone, format_fraction=fmt),
        faults.late_data(sample, seed=seed, late_fraction=drift, within_fraction=pii),
    ):
        check_common(injection)
        assert injection.records == len(records_of(event_files(injection)))


def every_fault(seed: int) -> tuple[faults.FaultDraw, ...]:
    """Each combinable fault once, with its default knobs (no future events beside late data)."""
    no_future = (("future_fraction", 0.0),)
    return tuple(
        faults.FaultDraw(name, seed + i, no_future if name == "clock_skew" else ())
        for i, name in enumerate(sorted(faults.COMBINABLE_FAULTS))
    )


@pytest.mark.property
@given(draws=fault_draws(max_faults=4))
def test_drawn_combinations_are_consistent_and_deterministic(
    draws: tuple[faults.FaultDraw, ...],
) -> None:
    events, changes = fuzz_inputs()
    injection = faults.combination(events, changes, draws)
    check_common(injection)
    assert injection.records == len(records_of(event_files(injection)))
    assert fingerprint(injection) == fingerprint(faults.combination(events, changes, draws))
    assert 1 <= len(injection.description.split(". ")) <= 8


def test_a_drawn_combination_shrinks_to_fewer_faults_and_no_knobs() -> None:
    """The point of drawing by structure: the smallest case with two faults is two faults whose
    knobs are all at their simplest, not whatever a shrunk integer seed happened to give."""
    smallest = find(fault_draws(), lambda draws: len(draws) >= 2)
    assert len(smallest) == 2
    assert all(value in (0, 0.0, 1, 1.0, False) for draw in smallest for _, value in draw.knobs), (
        smallest
    )


def test_a_combination_is_refused_when_it_cannot_hold(
    events: list[dict[str, Any]], changes: list[dict[str, Any]]
) -> None:
    late = faults.FaultDraw("late_data", 1)
    with pytest.raises(FaultArgumentError, match="distinct faults"):
        faults.combination(events, changes, ())
    with pytest.raises(FaultArgumentError, match="distinct faults"):
        faults.combination(events, changes, (late, late))
    with pytest.raises(FaultArgumentError, match="distinct faults"):
        faults.combination(events, changes, (faults.FaultDraw("gremlins", 1),))
    with pytest.raises(FaultArgumentError, match="late_fraction"):
        too_late = faults.FaultDraw("late_data", 1, (("late_fraction", 2.0),))
        faults.combination(events, changes, (too_late,))
    future = faults.FaultDraw("clock_skew", 2, (("future_fraction", 0.05),))
    with pytest.raises(faults.IncompatibleFaultsError, match="future_fraction=0"):
        faults.combination(events, changes, (late, future))
    everything = faults.combination(events, changes, every_fault(1))
    check_common(everything)
    assert everything.changes and everything.late_ids and everything.drift


# --------------------------------------------------------------------------- determinism

GENERATORS: dict[str, Callable[[list[dict[str, Any]], int], Injection]] = {
    "late_data": lambda ev, seed: faults.late_data(ev, seed=seed, late_fraction=0.1),
    "schema_drift": lambda ev, seed: faults.schema_drift(ev, seed=seed),
    "corrupt_records": lambda ev, seed: faults.corrupt_records(ev, seed=seed),
    "duplicates": lambda ev, seed: faults.duplicates(ev, seed=seed),
    "clock_skew": lambda ev, seed: faults.clock_skew(ev, seed=seed),
    "burst": lambda ev, seed: faults.burst(ev, seed=seed),
    "pii_in_unexpected_places": lambda ev, seed: faults.pii_in_unexpected_places(ev, seed=seed),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generators_are_deterministic_per_seed(events: list[dict[str, Any]], name: str) -> None:
    generate = GENERATORS[name]
    first, again, other = generate(events, SEED), generate(events, SEED), generate(events, -SEED)
    assert fingerprint(first) == fingerprint(again)
    assert contents(first) != contents(other)  # not only the names
    check_common(other)


def test_generators_never_modify_their_input(
    events: list[dict[str, Any]], changes: list[dict[str, Any]]
) -> None:
    before = orjson.dumps([events, changes])
    for generate in GENERATORS.values():
        generate(events, SEED)
    faults.out_of_order_changes(changes, seed=SEED, delete_fraction=0.5, tie_fraction=0.5)
    faults.combination(events, changes, every_fault(SEED))
    assert orjson.dumps([events, changes]) == before


def test_bytes_do_not_depend_on_hash_randomization() -> None:
    code = (
        "import hashlib, sys\n"
        "from scenarios.generator import generate_events, generate_user_changes\n"
        "from scenarios import faults\n"
        "events = generate_events(events=300, seed=5)\n"
        "changes = generate_user_changes(seed=5, users=20)\n"
        "no_future = (('future_fraction', 0.0),)\n"
        "draws = [faults.FaultDraw(name, 5 + i, no_future * (name == 'clock_skew'))\n"
        "         for i, name in enumerate(sorted(faults.COMBINABLE_FAULTS))]\n"
        "injection = faults.combination(events, changes, draws)\n"
        "digest = hashlib.sha256()\n"
        "for delivery in injection.deliveries:\n"
        "    for landing in delivery.files:\n"
        "        digest.update(landing.name.encode() + landing.content)\n"
        "print(digest.hexdigest())\n"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            env=this_tree(PYTHONHASHSEED=hash_seed),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hash_seed in ("1", "2")
    }
    assert len(digests) == 1
