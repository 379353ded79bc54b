"""Great Expectations, run on suites built from our rules, counts what our engine counts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from contracts import gx_suites, rules
from pipeline import table_names
from pipeline.transforms import bronze, expectations, silver
from pipeline.transforms.expectations import Expectation
from scenarios import generator

NOW = generator.DEFAULT_START + timedelta(days=1)
RULES: dict[str, tuple[Expectation, ...]] = {
    **rules.expectations(clock=lambda: NOW),
    **rules.gold_expectations(),
}

INJECTED = {
    table_names.BRONZE_EVENTS: {
        "event_id_present": 1,
        "event_type_present": 1,
        "event_ts_present": 1,
        "event_id_is_uuid": 1,
        "event_ts_parseable": 1,
    },
    table_names.SILVER_EVENTS: {
        "user_key_present": 1,
        "session_id_present": 1,
        "event_type_known": 2,  # one unknown, one null: null counts as failed
        "event_time_not_in_future": 1,
        "price_not_negative": 1,
        "quantity_positive": 1,
    },
    table_names.GOLD_FACT_EVENTS: {"user_sk_in_dim_user": 2},
    table_names.GOLD_DIM_USER: {"one_open_version_per_user": 2},
}


def _events() -> list[dict[str, Any]]:
    """Generated events with violations injected; each breaks the rules listed in INJECTED."""
    events = generator.generate_events(events=30, seed=21)
    changes: list[dict[str, Any]] = [
        {"event_type": "teleport"},
        {"event_type": None},  # also bronze's event_type_present
        {"user": {**events[2]["user"], "user_id": None}},
        {"session_id": None},
        {"event_ts": "2026-11-02T03:00:00Z"},
        {"properties": {"price": -1.0, "product_id": "p", "currency": "EUR", "quantity": 1}},
        {"properties": {"price": 1.0, "product_id": "p", "currency": "EUR", "quantity": 0}},
        {"event_id": "not-a-uuid"},
        {"event_ts": "yesterday"},  # bronze only: silver quarantines it before the rules
        {"event_ts": None},  # bronze only, likewise
        {"event_id": None},  # bronze only, likewise
    ]
    return [dict(event, **change) for event, change in zip(events, changes, strict=False)] + events[
        len(changes) :
    ]


def _local(spark: SparkSession, frame: DataFrame) -> DataFrame:
    """The frame's rows as a local relation: GX computes many metrics, each one re-reads it."""
    return spark.createDataFrame(frame.collect(), frame.schema)


@pytest.fixture(scope="module")
def frames(spark: SparkSession, keys: DataFrame) -> Iterator[dict[str, DataFrame]]:
    """Bronze and silver rows from injected events; hand-made gold tables with violations."""
    lines = spark.createDataFrame(
        [(orjson.dumps(event).decode(), "f.json") for event in _events()],
        "value string, _source_file string",
    )
    bronze_rows = _local(
        spark, bronze.bronze_rows(bronze.parse_lines(lines), ingested_at=F.current_timestamp())
    )
    dim_user = spark.createDataFrame(
        [(1, "u1", 1, 5), (2, "u1", 5, None), (3, "u2", 1, None), (4, "u2", 2, None)],
        rules.GOLD_SCHEMAS[table_names.GOLD_DIM_USER],
    )
    dim_user.createOrReplaceTempView(table_names.GOLD_DIM_USER)
    fact = spark.createDataFrame(
        [("e1", 1), ("e2", 2), ("e3", -1), ("e4", 99), ("e5", None)],
        rules.GOLD_SCHEMAS[table_names.GOLD_FACT_EVENTS],
    )
    yield {
        table_names.BRONZE_EVENTS: bronze_rows,
        table_names.SILVER_EVENTS: _local(spark, silver.silver_events(bronze_rows, keys=keys)),
        table_names.GOLD_FACT_EVENTS: fact,
        table_names.GOLD_DIM_USER: dim_user,
    }
    spark.catalog.dropTempView(table_names.GOLD_DIM_USER)


def _ours(frames: dict[str, DataFrame]) -> dict[str, dict[str, int]]:
    return {
        table: {
            metric.rule: metric.failed
            for metric in expectations.measure(
                expectations.evaluate(frame, RULES[table]), table, RULES[table]
            )
        }
        for table, frame in frames.items()
    }


def test_gx_counts_equal_ours_and_the_injected_counts_for_every_rule(
    spark: SparkSession, frames: dict[str, DataFrame], tmp_path: Path
) -> None:
    report = gx_suites.validate(frames, RULES, docs_dir=tmp_path / "docs")
    ours = _ours(frames)
    for table, table_rules in RULES.items():
        injected = {rule.name: INJECTED[table].get(rule.name, 0) for rule in table_rules}
        assert ours[table] == injected, table
        assert report.unexpected_by_rule(table) == injected, table
    assert all(result.success == (result.unexpected == 0) for result in report.results), (
        report.results
    )

    # GX ran on our session, and left no temporary view behind.
    assert SparkSession.getActiveSession() is spark
    assert not spark.catalog.tableExists(gx_suites.GX_BATCH_VIEW)
    assert report.docs_index is not None
    index = report.docs_index.read_text(encoding="utf-8")
    assert all(table in index for table in RULES)


def test_gx_validates_a_frame_of_another_session_of_the_application(
    spark: SparkSession, frames: dict[str, DataFrame]
) -> None:
    """Scenarios run side by side, each on its own session: GX must query the frame's session."""
    other = spark.newSession()
    bronze_rows = frames[table_names.BRONZE_EVENTS]
    frame = other.createDataFrame(bronze_rows.collect(), bronze_rows.schema)
    report = gx_suites.validate({table_names.BRONZE_EVENTS: frame}, RULES)
    injected = INJECTED[table_names.BRONZE_EVENTS]
    expected = {rule.name: injected.get(rule.name, 0) for rule in RULES[table_names.BRONZE_EVENTS]}
    assert report.unexpected_by_rule(table_names.BRONZE_EVENTS) == expected


def test_native_expectations_are_used_where_null_semantics_agree() -> None:
    kinds = {
        rule.name: type(gx_suites.gx_expectation(table, rule)).__name__
        for table, table_rules in RULES.items()
        for rule in table_rules
    }
    assert kinds["user_key_present"] == "ExpectColumnValuesToNotBeNull"
    assert kinds["email_hash_is_hmac"] == "ExpectColumnValueLengthsToEqual"
    assert kinds["event_id_is_uuid"] == "ExpectColumnValuesToMatchRegex"
    assert kinds["price_not_negative"] == "ExpectColumnValuesToBeBetween"
    assert kinds["event_time_not_in_future"] == "ExpectColumnValuesToBeBetween"
    # Null event types count as failed, which GX's ExpectColumnValuesToBeInSet would skip.
    assert kinds["event_type_known"] == "UnexpectedRowsExpectation"
    assert kinds["event_ts_parseable"] == "UnexpectedRowsExpectation"
    assert kinds["one_open_version_per_user"] == "UnexpectedRowsExpectation"


def test_a_python_predicate_without_sql_cannot_become_a_gx_expectation() -> None:
    rule = Expectation(
        name="opaque",
        predicate=lambda: F.lit(True),
        action="warn",
        description="opaque",
        passing_example={"x": 1},
        failing_example={"x": 0},
    )
    with pytest.raises(Exception, match="cannot run it"):
        gx_suites.gx_expectation("t", rule)
