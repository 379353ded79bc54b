"""The runner enforcing contracts end to end: counts, quarantine, fail, restarts, the ledger."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from clickstream import cli
from contracts import rules
from contracts.report import write_reports
from pipeline import table_names
from pipeline.config import PiiKey
from pipeline.errors import ExpectationFailedError, InvalidExpectationError
from pipeline.observe import event_log
from pipeline.run import jvm_output, runner
from pipeline.storage import tables
from pipeline.transforms import silver
from pipeline.transforms.expectations import Expectation
from scenarios import generator, invariants

# The generated events lie in [DEFAULT_START, DEFAULT_START + 1 day): the clock sits at the
# end of that window, so only the injected event is in the future.
CLOCK_NOW = generator.DEFAULT_START + timedelta(days=1)
FUTURE_TS = "2026-11-02T02:00:00.000Z"
RULES = rules.expectations(clock=lambda: CLOCK_NOW)

# Each injected row fails exactly one rule.
INJECTED_SILVER = {
    "event_type_known": 2,
    "user_key_present": 1,
    "event_time_not_in_future": 1,
    "price_not_negative": 1,
    "quantity_positive": 1,
}
# The null event_type is also a bronze warning.
INJECTED_BRONZE = {"event_id_is_uuid": 1, "event_ts_parseable": 1, "event_type_present": 1}
DROPPED = {name: n for name, n in INJECTED_SILVER.items() if name != "quantity_positive"}


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))


def _with_violations(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events with violations injected in place, plus a duplicate of a dropped event."""
    injected = [dict(event) for event in events]

    def change(index: int, **fields: Any) -> None:
        for name, value in fields.items():
            if isinstance(value, dict):
                injected[index][name] = {**injected[index][name], **value}
            else:
                injected[index][name] = value

    change(0, event_type="teleport")
    change(1, event_type=None)
    change(2, user={"user_id": None})
    change(3, event_ts=FUTURE_TS)
    change(4, properties={"price": -5.0, "product_id": "p-1", "currency": "EUR", "quantity": 1})
    change(5, properties={"price": 10.0, "product_id": "p-1", "currency": "EUR", "quantity": 0})
    change(6, event_id="event-not-a-uuid")
    change(7, event_ts="yesterday at noon")
    return [*injected, dict(injected[0])]


def _run(
    spark: SparkSession,
    tmp_path: Path,
    pii_key: PiiKey,
    expectations: dict[str, tuple[Expectation, ...]] | None = None,
) -> runner.RunSummary:
    return runner.run_pipeline(
        spark,
        landing=tmp_path / "landing",
        warehouse=tmp_path / "warehouse",
        pii_key=pii_key,
        expectations=RULES if expectations is None else expectations,
    )


def _failed_by_rule(spark: SparkSession, warehouse: Path, table: str) -> dict[str, int]:
    log = event_log.expectation_metrics(spark, warehouse).where(F.col("table") == table)
    rows = log.groupBy("rule").agg(F.sum("failed").alias("failed")).collect()
    return {row.rule: row.failed for row in rows}


def test_injected_violations_are_counted_routed_and_accounted(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey
) -> None:
    events = _with_violations(generator.generate_events(events=60, seed=11))
    _write(tmp_path / "landing" / "events" / "a.json", events)
    summary = _run(spark, tmp_path, pii_key)
    warehouse = tmp_path / "warehouse"

    silver_failed = _failed_by_rule(spark, warehouse, table_names.SILVER_EVENTS)
    assert silver_failed == {
        rule.name: INJECTED_SILVER.get(rule.name, 0) for rule in RULES[table_names.SILVER_EVENTS]
    }
    bronze_failed = _failed_by_rule(spark, warehouse, table_names.BRONZE_EVENTS)
    assert bronze_failed == {
        rule.name: INJECTED_BRONZE.get(rule.name, 0) for rule in RULES[table_names.BRONZE_EVENTS]
    }
    log = event_log.expectation_metrics(spark, warehouse)
    assert {row.update_id for row in log.select("update_id").distinct().collect()} == {
        summary.run_id
    }

    quarantine = tables.read_table(spark, warehouse, table_names.SILVER_QUARANTINE)
    by_rule = quarantine.where(F.size("failed_expectations") > 0)
    routed: dict[str, int] = {}
    for row in by_rule.collect():
        assert row.reason == "failed expectations: " + ", ".join(row.failed_expectations)
        for name in row.failed_expectations:
            routed[name] = routed.get(name, 0) + 1
    assert routed == DROPPED
    structural = quarantine.where(F.size("failed_expectations") == 0).collect()
    assert [row.reason for row in structural] == [silver.REASON_BAD_EVENT_TS]

    # 61 lines: 60 events + 1 duplicate of a dropped event; 1 unplaceable; 5 dropped by rule.
    assert summary.rows(table_names.BRONZE_EVENTS) == 61
    assert summary.rows(table_names.SILVER_EVENTS) == 60 - 1 - sum(DROPPED.values())
    assert summary.rows(table_names.SILVER_LATE_EVENTS) == 0
    verdicts = invariants.ledger(
        spark,
        warehouse,
        input_records=61,
        duplicates=invariants.dropped_duplicates(spark, warehouse),
    )
    assert all(verdict.passed for verdict in verdicts), verdicts

    again = _run(spark, tmp_path, pii_key)
    assert again.skipped  # nothing new: no Spark work, no metrics either
    assert not {count.table: count.added for count in again.counts if count.added}

    reports = write_reports(
        spark, warehouse, RULES, tmp_path / "reports", run_id=summary.run_id, with_gx=False
    )
    payload = orjson.loads(reports.json_path.read_bytes())
    reported = {(rule["table"], rule["rule"]): rule for rule in payload["rules"]}
    for name, count in INJECTED_SILVER.items():
        assert reported[table_names.SILVER_EVENTS, name]["failed"] == count
        assert len(reported[table_names.SILVER_EVENTS, name]["samples"]) == count
    teleports = reported[table_names.SILVER_EVENTS, "event_type_known"]["samples"]
    assert sorted(map(str, (sample["event_type"] for sample in teleports))) == ["None", "teleport"]
    text = reports.json_path.read_text() + reports.html_path.read_text()
    assert not {str(event["user"][field]) for event in events for field in ("email", "ip")} & {
        word.strip('",') for word in text.split()
    }


def test_a_fail_rule_stops_the_run_before_anything_of_the_batch_is_written(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey
) -> None:
    events = generator.generate_events(events=40, seed=12)
    events[3] = dict(events[3], event_type="teleport")
    _write(tmp_path / "landing" / "events" / "a.json", events)
    no_teleports = Expectation(
        name="no_teleports",
        predicate="event_type <> 'teleport'",
        action="fail",
        description="nobody teleports",
        passing_example={"event_type": "click"},
        failing_example={"event_type": "teleport"},
        columns=("event_type",),
    )
    strict = {**RULES, table_names.SILVER_EVENTS: (*RULES[table_names.SILVER_EVENTS], no_teleports)}
    warehouse = tmp_path / "warehouse"

    with pytest.raises(ExpectationFailedError) as caught:
        _run(spark, tmp_path, pii_key, strict)
    error = caught.value
    assert (error.table, error.rule, error.failed, error.rows) == (
        table_names.SILVER_EVENTS,
        "no_teleports",
        1,
        40,
    )
    [sample] = error.failures[0].samples
    assert sample == {"event_id": events[3]["event_id"], "event_type": "teleport"}
    message = str(error)
    assert "rule 'no_teleports' (nobody teleports): 1 of 40 rows fail it" in message
    assert "stopped without committing anything" in message

    # Bronze committed its batch; nothing of the silver batch was written anywhere.
    assert tables.count_rows(spark, warehouse, table_names.BRONZE_EVENTS) == 40
    assert tables.count_rows(spark, warehouse, table_names.SILVER_EVENTS) == 0
    assert tables.count_rows(spark, warehouse, table_names.SILVER_QUARANTINE) == 0
    log = event_log.expectation_metrics(spark, warehouse)
    assert log.where(F.col("table") == table_names.SILVER_EVENTS).count() == 0

    # Failing again changes nothing; with the rule relaxed the batch is written exactly once.
    with pytest.raises(ExpectationFailedError):
        _run(spark, tmp_path, pii_key, strict)
    summary = _run(spark, tmp_path, pii_key)
    assert summary.rows(table_names.SILVER_EVENTS) == 39
    assert summary.rows(table_names.SILVER_QUARANTINE) == 1
    assert _failed_by_rule(spark, warehouse, table_names.SILVER_EVENTS)["event_type_known"] == 1


def test_a_crash_before_the_metrics_are_logged_neither_loses_nor_duplicates(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = generator.generate_events(events=30, seed=16)
    events[0] = dict(events[0], event_type="teleport")
    _write(tmp_path / "landing" / "events" / "a.json", events)
    real_batch = event_log.UpdateLog.batch

    def crash_on_silver(self: event_log.UpdateLog, stage: str, *args: Any) -> bool:
        if stage == table_names.EVENTS_STREAM:
            raise RuntimeError("simulated crash after silver_events and its quarantine")
        return real_batch(self, stage, *args)

    monkeypatch.setattr(event_log.UpdateLog, "batch", crash_on_silver)
    with pytest.raises(Exception, match="simulated crash"):
        _run(spark, tmp_path, pii_key)
    monkeypatch.setattr(event_log.UpdateLog, "batch", real_batch)
    # The replay skips both committed writes and counts the batch again, as it was.
    summary = _run(spark, tmp_path, pii_key)
    assert summary.rows(table_names.SILVER_EVENTS) == 29
    assert summary.rows(table_names.SILVER_QUARANTINE) == 1
    assert _failed_by_rule(spark, tmp_path / "warehouse", table_names.SILVER_EVENTS) == {
        rule.name: int(rule.name == "event_type_known") for rule in RULES[table_names.SILVER_EVENTS]
    }


def test_bronze_drop_rules_send_the_raw_line_to_the_bronze_quarantine(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey
) -> None:
    events = generator.generate_events(events=20, seed=13)
    events[0] = dict(events[0], event_id="event-not-a-uuid")
    _write(tmp_path / "landing" / "events" / "a.json", events)
    strict_ids = tuple(
        replace(rule, action="drop") if rule.name == "event_id_is_uuid" else rule
        for rule in RULES[table_names.BRONZE_EVENTS]
    )
    summary = _run(spark, tmp_path, pii_key, {table_names.BRONZE_EVENTS: strict_ids})
    assert summary.rows(table_names.BRONZE_EVENTS) == 19
    [row] = tables.read_table(
        spark, tmp_path / "warehouse", table_names.BRONZE_QUARANTINE
    ).collect()
    assert orjson.loads(row.raw_line)["event_id"] == "event-not-a-uuid"
    assert row.failed_expectations == ["event_id_is_uuid"]
    assert row.reason == "failed expectations: event_id_is_uuid"
    assert summary.rows(table_names.SILVER_EVENTS) == 19


def test_rules_for_an_unknown_table_or_column_fail_before_any_query(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey
) -> None:
    generator.write_landing(tmp_path / "landing", events=5, seed=14, files=1)
    with pytest.raises(InvalidExpectationError, match="no query of the pipeline writes"):
        _run(spark, tmp_path, pii_key, {"gold_sessions": rules.gold_dim_user_rules()})
    with pytest.raises(InvalidExpectationError, match="does not fit"):
        _run(spark, tmp_path, pii_key, {table_names.SILVER_EVENTS: rules.bronze_rules()})
    assert not (tmp_path / "warehouse").exists()


def test_the_command_line_reports_a_failed_rule_and_exits_non_zero(
    spark: SparkSession,
    tmp_path: Path,
    pii_key: PiiKey,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    generator.write_landing(tmp_path / "landing", events=10, seed=15, files=1)
    module = f"strict_rules_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "from pipeline.transforms.expectations import Expectation\n"
        "EXPECTATIONS = {'silver_events': (Expectation(name='never', predicate='false',"
        " action='fail', description='no row is good enough', passing_example={'x': 1},"
        " failing_example={'x': 0}),)}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("CLICKSTREAM_PII_KEY", pii_key.reveal().decode())
    # The runner builds and stops a session of its own: hand it the shared one, keep it running.
    monkeypatch.setattr(runner, "build_session", lambda _settings, **_options: spark)
    monkeypatch.setattr(spark, "stop", lambda: None)
    code = cli.main(
        [
            "run",
            "--landing",
            str(tmp_path / "landing"),
            "--warehouse",
            str(tmp_path / "warehouse"),
            "--expectations",
            module,
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "error: Table silver_events: 1 expect_or_fail rule(s) failed" in err
    assert "rule 'never' (no row is good enough): 10 of 10 rows fail it" in err

    # The failed run is a FAILED update of the event log, which `history` shows.
    assert cli.main(["history", "--warehouse", str(tmp_path / "warehouse"), "--json"]) == 0
    [update] = orjson.loads(capsys.readouterr().out)
    assert update["state"] == "FAILED" and update["runner"] == "clickstream run"
    assert update["error"].startswith("ExpectationFailedError: Rows of silver_events failed")
    assert update["flows"]["silver_events"]["status"] == "FAILED"
    assert cli.main(["history", "--warehouse", str(tmp_path / "warehouse")]) == 0
    assert f"{update['update_id']}  " in capsys.readouterr().out


def test_failed_tasks_are_raised_not_logged_as_java_stack_traces(spark: SparkSession) -> None:
    # The JVM writes its log to the stderr it was started with, which pytest cannot capture:
    # check that the loggers that printed a failed rule's stack traces (about 270 lines in
    # the `contract_fail` scenario) print no errors. The failure itself reaches the caller.
    log4j = spark.sparkContext._jvm.org.apache.logging.log4j  # type: ignore[union-attr]
    printing = [
        name
        for name in jvm_output.QUERY_FAILURE_LOGGERS
        if log4j.LogManager.getLogger(name).isErrorEnabled()
    ]
    assert printing == []
    with pytest.raises(Exception, match="a row failed"):
        spark.range(3).select(F.raise_error(F.lit("a row failed"))).collect()


def test_gold_rules_are_logged_each_run_and_a_failing_one_keeps_the_previous_facts(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey
) -> None:
    generator.write_landing(tmp_path / "landing", events=40, seed=17, users=6, files=1)
    warehouse = tmp_path / "warehouse"
    first = _run(spark, tmp_path, pii_key, RULES)
    facts = tables.count_rows(spark, warehouse, table_names.GOLD_FACT_EVENTS)
    versions = tables.count_rows(spark, warehouse, table_names.GOLD_DIM_USER)
    assert facts == first.rows(table_names.SILVER_EVENTS) == 40
    log = event_log.expectation_metrics(spark, warehouse)
    gold_log = {
        (row.table, row.rule): (row.passed, row.failed)
        for row in log.where(F.col("table").startswith("gold_")).collect()
    }
    assert gold_log == {
        (table_names.GOLD_FACT_EVENTS, "user_sk_in_dim_user"): (facts, 0),
        # the versions of the users the batch changed: all of them, not the unknown member
        (table_names.GOLD_DIM_USER, "one_open_version_per_user"): (versions - 1, 0),
    }

    no_purchases = Expectation(
        name="no_purchases",
        predicate="event_type <> 'purchase'",
        action="fail",
        description="nobody buys",
        passing_example={"event_type": "click"},
        failing_example={"event_type": "purchase"},
        columns=("event_type",),
    )
    purchases = tables.read_table(spark, warehouse, table_names.GOLD_FACT_EVENTS).where(
        F.col("event_type") == "purchase"
    )
    assert purchases.count() > 0
    strict = {
        **RULES,
        table_names.GOLD_FACT_EVENTS: (*RULES[table_names.GOLD_FACT_EVENTS], no_purchases),
    }
    generator.write_landing(
        tmp_path / "landing",
        events=40,
        seed=18,
        users=6,
        files=1,
        # Within the watermark and before the rules' clock (the end of the first day).
        start=generator.DEFAULT_START + timedelta(hours=23, minutes=20),
        duration=timedelta(minutes=30),
    )
    with pytest.raises(ExpectationFailedError) as caught:
        _run(spark, tmp_path, pii_key, strict)
    assert (caught.value.table, caught.value.rule) == (table_names.GOLD_FACT_EVENTS, "no_purchases")
    # Silver took the new batch; the fact table kept the previous run's content.
    assert tables.count_rows(spark, warehouse, table_names.SILVER_EVENTS) == 80
    assert tables.count_rows(spark, warehouse, table_names.GOLD_FACT_EVENTS) == facts

    summary = _run(spark, tmp_path, pii_key, RULES)
    assert summary.rows(table_names.GOLD_FACT_EVENTS) == 80


def test_gold_tables_take_no_drop_rules(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey
) -> None:
    generator.write_landing(tmp_path / "landing", events=5, seed=19, files=1)
    dropping = tuple(replace(rule, action="drop") for rule in RULES[table_names.GOLD_FACT_EVENTS])
    with pytest.raises(InvalidExpectationError, match="gold tables take only warn and fail"):
        _run(spark, tmp_path, pii_key, {table_names.GOLD_FACT_EVENTS: dropping})
