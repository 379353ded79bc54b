"""The generic harness's pure parts: the harness file, seeded records and faults (no JVM)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from contracts.rules import UUID_PATTERN
from pipeline.errors import ConfigurationError
from scenarios.generic.harness_file import FAULT_NAMES, harness_from, read_harness
from scenarios.generic.records import FAULTS, START, changes, lines, with_fault

PROJECT = Path(__file__).resolve().parents[2]


def _records(seed: int = 1, count: int = 40) -> list[dict[str, object]]:
    source = read_harness(PROJECT / "examples/customers_cdc/harness.yml").inputs["changes"]
    return changes(source, seed=seed, count=count, keys=10, start=START, step=timedelta(hours=1))


def test_the_examples_harness_files_are_read() -> None:
    customers = read_harness(PROJECT / "examples/customers_cdc/harness.yml")
    changes_input = customers.inputs["changes"]
    assert changes_input.keys == ("customer_id",)
    assert changes_input.sequence == "changed_at"
    assert changes_input.personal == ("name", "email")
    assert customers.datasets["dim_customers"].role == "cdc_target"
    orders = read_harness(PROJECT / "examples/orders/harness.yml")
    assert orders.inputs["orders"].format == "csv"
    assert orders.settings == {"min_amount": "1"}


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"inputs": {}}, r"harness.landing: the --conf key"),
        ({"landing": "l", "inputs": {"a": {"fields": {"x": {"type": "long"}}}}}, r"role: key"),
        (
            {"landing": "l", "inputs": {"a": {"fields": {"x": {"type": "float", "role": "key"}}}}},
            r"inputs.a.fields.x.type: 'float' is not one of long",
        ),
        (
            {"landing": "l", "inputs": {"a": {"format": "xml", "fields": {}}}},
            r"inputs.a.format: 'xml'",
        ),
        (
            {
                "landing": "l",
                "inputs": {"a": {"fields": {"x": {"type": "long", "role": "key"}}}},
                "datasets": {"t": {"role": "cdc_target"}},
            },
            r"datasets.t: a cdc_target's input needs a field with role: sequence",
        ),
        (
            {
                "landing": "l",
                "inputs": {
                    "a": {"format": "csv", "fields": {"u.x": {"type": "long", "role": "key"}}}
                },
            },
            r"inputs.a.fields: u.x: dotted \(nested\) names need format: json",
        ),
        (
            {
                "landing": "l",
                "inputs": {
                    "a": {"changes": "no", "fields": {"x": {"type": "long", "role": "key"}}}
                },
            },
            r"inputs.a.changes: true or false, not 'no'",
        ),
        (
            {
                "landing": "l",
                "inputs": {"a": {"fields": {"x": {"type": "long", "role": "key"}}}},
                "datasets": {"t": {"role": "raw"}, "q": {"role": "raw"}, "c": {"role": "cleaned"}},
            },
            r"datasets.c: a has raw datasets t, q: say which one's rows its expectations judge",
        ),
        (
            {
                "landing": "l",
                "inputs": {"a": {"fields": {"x": {"type": "long", "role": "key"}}}},
                "datasets": {"c": {"role": "cleaned", "judges": "t"}},
            },
            r"datasets.c.judges: 't' is not a raw dataset of a \(none\)",
        ),
        (
            {
                "landing": "l",
                "inputs": {
                    "a": {
                        "fields": {
                            "x": {"type": "long", "role": "key"},
                            "s": {"type": "string", "role": "sequence"},
                        }
                    }
                },
            },
            r"fields.s: a sequence field is one of timestamp, date, long, int, not string",
        ),
        (
            {
                "landing": "l",
                "inputs": {"a": {"fields": {"x": {"type": "long", "role": "key"}}}},
                "full_refresh_differs_in": {"late": ""},
            },
            r"full_refresh_differs_in.late: say why a full refresh differs there",
        ),
        (
            {
                "landing": "l",
                "inputs": {"a": {"fields": {"x": {"type": "long", "role": "key"}}}},
                "run_time_columns": "_ingested_at",
            },
            r"run_time_columns: a list of column names",
        ),
        (
            {
                "landing": "l",
                "inputs": {"a": {"fields": {"x": {"type": "long", "role": "key", "colour": 1}}}},
            },
            r"fields.x: unknown key\(s\) colour",
        ),
    ],
)
def test_a_malformed_harness_file_is_named_by_path(data: object, named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        harness_from(data)


def test_records_are_seeded_and_keys_change_more_than_once() -> None:
    first, again, other = _records(1), _records(1), _records(2)
    assert first == again and first != other
    keys = [r["customer_id"] for r in first]
    assert len(set(keys)) < len(keys)  # keys repeat: a CDC target sees updates
    assert [r["changed_at"] for r in first] == sorted(str(r["changed_at"]) for r in first)


def test_each_fault_does_what_it_says() -> None:
    source = read_harness(PROJECT / "examples/customers_cdc/harness.yml").inputs["changes"]
    records = _records()
    duplicated = with_fault(source, records, "duplicates", 3)
    assert len(duplicated.records) == len(records) + duplicated.notes["duplicates"]
    deleted = with_fault(source, records, "deletes", 3)
    deletes = [r for r in deleted.records if r["operation"] == "DELETE"]
    assert len(deletes) == deleted.notes["deletes"]
    assert all(set(r) == {"customer_id", "changed_at", "operation"} for r in deletes)
    corrupt = with_fault(source, records, "corrupt", 3)
    for line in corrupt.corrupt:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
    late = with_fault(source, records, "late", 3)
    moved = [(a, b) for a, b in zip(late.records, records, strict=True) if a != b]
    assert len(moved) == late.notes["late"]
    assert all(str(a["changed_at"]) < str(b["changed_at"]) for a, b in moved)
    for fault in FAULTS:  # every fault leaves every line landable
        arrival = with_fault(source, records, fault, 3)
        assert len(lines(source, arrival)) == len(arrival.records) + len(arrival.corrupt)


def test_csv_lines_have_a_header_and_every_field() -> None:
    orders = read_harness(PROJECT / "examples/orders/harness.yml").inputs["orders"]
    records = changes(orders, seed=1, count=5, keys=5, start=START, step=timedelta(minutes=5))
    written = lines(orders, with_fault(orders, records, "new_field", 1))
    assert written[0].startswith("order_id,ordered_at,country,quantity,amount")
    assert len(written) == 6


def test_the_clickstream_harness_file_nests_fields_and_gives_events_keys_of_their_own() -> None:
    harness = read_harness(PROJECT / "pipeline/lakeflow/harness.yml")
    events = harness.inputs["events"]
    assert not events.changes and harness.inputs["user_changes"].changes
    assert harness.run_time_columns == ("_ingested_at",)
    assert "user.email" in events.personal
    first = changes(events, seed=1, count=30, keys=5, start=START, step=timedelta(minutes=1))
    second = changes(events, seed=2, count=30, keys=5, start=START, step=timedelta(minutes=1))
    ids = [r["event_id"] for r in first + second]
    assert len(set(ids)) == 60  # no key recurs, across arrivals either
    assert all(re.fullmatch(UUID_PATTERN, str(i)) for i in ids)
    line = json.loads(lines(events, with_fault(events, first, None, 1))[0])
    assert set(line["user"]) == {"user_id", "email", "full_name", "ip"}
    assert "user.email" not in line
    corrupt = with_fault(events, first, "corrupt", 1).corrupt[0]
    assert corrupt.startswith('{"event_id"') and '"user": {' in corrupt


def test_a_struct_sequence_orders_changes_and_every_fault_keeps_its_fields() -> None:
    harness = read_harness(PROJECT / "pipeline/lakeflow/harness.yml")
    feed = harness.inputs["user_changes"]
    assert feed.sequences == ("changed_at", "sequence_num")
    first = changes(feed, seed=1, count=20, keys=4, start=START, step=timedelta(minutes=10))
    second = changes(feed, seed=2, count=20, keys=4, start=START, step=timedelta(minutes=10))
    numbers = [r["sequence_num"] for r in first + second]
    assert numbers == sorted(numbers) and len(set(numbers)) == 40
    deletes = with_fault(feed, second, "deletes", 2)
    removed = [r for r in deletes.records if r["operation"] == "DELETE"]
    assert removed and all(
        set(r) == {"user_id", "changed_at", "sequence_num", "operation"} for r in removed
    )
    late = with_fault(feed, second, "late", 2)
    moved = [r for r, o in zip(late.records, second, strict=True) if r != o]
    assert moved and all(
        r["sequence_num"] == o["sequence_num"] for r, o in zip(late.records, second, strict=True)
    )


def test_the_fault_names_a_harness_file_may_refuse_are_the_fault_families() -> None:
    assert tuple(FAULTS) == FAULT_NAMES
    with pytest.raises(ConfigurationError, match=r"inputs.a.refuses: 'typo' is not one of"):
        harness_from(
            {
                "landing": "l",
                "inputs": {
                    "a": {"refuses": ["typo"], "fields": {"x": {"type": "long", "role": "key"}}}
                },
            }
        )
