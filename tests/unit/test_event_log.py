"""The event log written and read without Spark (delta-rs), and what `history` makes of it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline import table_names
from pipeline.errors import ExpectationFailedError, RuleFailure, StorageFullError
from pipeline.observe import event_log, flows, history
from pipeline.transforms.expectations import ExpectationMetric


def _bronze_commit(warehouse: Path, batch_id: int, rows: int) -> None:
    """A Delta commit of `bronze_events` carrying the events stream's batch marker."""
    from pipeline.storage import delta_log

    log = warehouse / table_names.BRONZE_EVENTS / "_delta_log"
    log.mkdir(parents=True, exist_ok=True)
    info = {
        "commitInfo": {
            "operation": "WRITE",
            "operationMetrics": {"numOutputRows": str(rows)},
            "userMetadata": delta_log.batch_marker(table_names.EVENTS_STREAM, batch_id),
        }
    }
    (log / f"{batch_id:020d}.json").write_text(json.dumps(info) + "\n", encoding="utf-8")


def _metrics(passed: int, failed: int) -> list[ExpectationMetric]:
    return [
        ExpectationMetric(table_names.BRONZE_EVENTS, "event_ts_parseable", "drop", passed, failed)
    ]


def test_an_update_records_definitions_batches_once_and_its_end(tmp_path: Path) -> None:
    update = event_log.UpdateLog(tmp_path, "u-1")
    update.started(flows.FLOWS, cause="USER_ACTION", full_refresh=False, runner="test")
    _bronze_commit(tmp_path, 0, rows=9)
    read = {table_names.BRONZE_EVENTS: 10, table_names.BRONZE_QUARANTINE: 10}
    report = update.reporter(table_names.EVENTS_STREAM)
    report(0, read, {table_names.BRONZE_EVENTS: _metrics(passed=9, failed=1)})
    # A replay of the same batch (after a crash) adds nothing.
    assert not update.batch(
        table_names.EVENTS_STREAM, 0, flows.flows_of_stage(table_names.EVENTS_STREAM), read, {}
    )
    update.flows_ended(flows.flows_of_stage(table_names.EVENTS_STREAM), event_log.COMPLETED)
    update.finished(event_log.COMPLETED)

    events = event_log.read_events(tmp_path)
    assert [e["event_type"] for e in events[:2]] == ["create_update", "flow_definition"]
    assert {e["origin"]["update_id"] for e in events} == {"u-1"}
    [found] = history.updates(events)
    assert found.state == "COMPLETED" and found.runner == "test"
    bronze = found.flows[table_names.BRONZE_EVENTS]
    assert (bronze.batches, bronze.input_rows, bronze.output_rows) == (1, 10, 9)
    assert bronze.dropped_records == 1
    assert bronze.failed_expectations == {"event_ts_parseable": 1}
    assert found.flows[table_names.BRONZE_QUARANTINE].output_rows == 0
    quality = event_log.details(
        next(
            e
            for e in events
            if e["origin"]["flow_name"] == table_names.BRONZE_EVENTS
            and e["origin"]["batch_id"] == 0
        )
    )["data_quality"]
    assert quality["expectations"] == [
        {
            "name": "event_ts_parseable",
            "dataset": table_names.BRONZE_EVENTS,
            "action": "drop",
            "passed_records": 9,
            "failed_records": 1,
        }
    ]
    assert "u-1" in history.render_updates([found])
    assert "event_ts_parseable (1)" in history.render_update(found)


def test_a_failed_update_keeps_counts_never_samples(tmp_path: Path) -> None:
    samples = ({"event_id": "e-secret", "event_type": "teleport"},)
    error = ExpectationFailedError(
        table_names.SILVER_EVENTS,
        (RuleFailure("no_teleports", "nobody teleports", 1, samples),),
        40,
    )
    with (
        pytest.raises(ExpectationFailedError),
        event_log.recorded_update(
            tmp_path, "u-2", flows=flows.FLOWS, full_refresh=True, runner="test"
        ),
    ):
        raise error
    [found] = history.updates(event_log.read_events(tmp_path))
    assert found.state == "FAILED" and found.full_refresh
    assert found.error == (
        "ExpectationFailedError: Rows of silver_events failed expect_or_fail rules: "
        "no_teleports (1 rows), of 40 rows in the batch; the batch was not written."
    )
    assert "e-secret" not in json.dumps(found.to_json())


def test_ctrl_c_cancels_the_update(tmp_path: Path) -> None:
    with (
        pytest.raises(KeyboardInterrupt),
        event_log.recorded_update(
            tmp_path, "u-3", flows=flows.FLOWS, full_refresh=False, runner="test"
        ),
    ):
        raise KeyboardInterrupt
    assert [u.state for u in history.updates(event_log.read_events(tmp_path))] == ["CANCELED"]


def test_a_killed_update_shows_as_incomplete(tmp_path: Path) -> None:
    event_log.UpdateLog(tmp_path, "u-4").started(
        flows.FLOWS, cause="USER_ACTION", full_refresh=False, runner="test"
    )
    [found] = history.updates(event_log.read_events(tmp_path))
    assert found.state == history.NO_END_STATE


def test_the_next_update_closes_a_killed_one_as_failed_interrupted(tmp_path: Path) -> None:
    killed = event_log.UpdateLog(tmp_path, "u-5")
    killed.started(flows.FLOWS, cause="USER_ACTION", full_refresh=False, runner="test")
    killed.flows_ended([flows.FLOWS[0]], "RUNNING")
    last_seen = event_log.read_events(tmp_path)[-1]["timestamp"]
    with event_log.recorded_update(
        tmp_path, "u-6", flows=flows.FLOWS, full_refresh=False, runner="test"
    ):
        pass
    before, after = history.updates(event_log.read_events(tmp_path))
    assert (before.update_id, before.state, before.interrupted) == ("u-5", "FAILED", True)
    assert before.shown_state == "FAILED (interrupted)"
    assert before.error is not None and f"last flow it reached: {flows.FLOWS[0].name}" in (
        before.error
    )
    # Its duration is not stretched to the next run's start.
    assert before.end is not None and before.end - last_seen < timedelta(milliseconds=1)
    assert (after.state, after.interrupted) == ("COMPLETED", False)
    assert "FAILED (interrupted)" in history.render_updates([before, after])
    # Closed once: a third update finds nothing open.
    with event_log.recorded_update(
        tmp_path, "u-7", flows=flows.FLOWS, full_refresh=False, runner="test"
    ):
        pass
    states = [u.shown_state for u in history.updates(event_log.read_events(tmp_path))]
    assert states == ["FAILED (interrupted)", "COMPLETED", "COMPLETED"]


def test_an_update_that_ended_is_not_closed_again_by_events_after_its_end(
    tmp_path: Path,
) -> None:
    with (
        pytest.raises(KeyboardInterrupt),
        event_log.recorded_update(
            tmp_path, "u-8", flows=flows.FLOWS, full_refresh=False, runner="test"
        ) as canceled,
    ):
        raise KeyboardInterrupt
    canceled.flows_ended([flows.FLOWS[0]], "COMPLETED")  # a batch in flight, reporting late
    with event_log.recorded_update(
        tmp_path, "u-9", flows=flows.FLOWS, full_refresh=False, runner="test"
    ):
        pass
    found = history.updates(event_log.read_events(tmp_path))
    assert [(u.state, u.error) for u in found] == [("CANCELED", None), ("COMPLETED", None)]


def test_reading_the_last_updates_or_one_reads_only_their_events(tmp_path: Path) -> None:
    for name in ("u-a", "u-b", "u-c"):
        with event_log.recorded_update(
            tmp_path, name, flows=flows.FLOWS, full_refresh=False, runner="test"
        ):
            pass
    every = event_log.read_events(tmp_path)
    last_two = event_log.read_events(tmp_path, last_updates=2)
    assert {e["origin"]["update_id"] for e in last_two} == {"u-b", "u-c"}
    assert last_two == [e for e in every if e["origin"]["update_id"] != "u-a"]
    [one] = history.updates(event_log.read_events(tmp_path, update_id="u-a"))
    assert (one.update_id, one.state) == ("u-a", "COMPLETED")
    assert event_log.read_events(tmp_path, update_id="u-z") == []


def test_spark_errors_lose_their_quoted_values() -> None:
    error = RuntimeError(
        "[CAST_INVALID_INPUT] The value 'jane@example.com' of the type \"STRING\" cannot be "
        'cast to "INT".\nJVM stacktrace: ...'
    )
    name, message = event_log.error_summary(error)
    assert name == "RuntimeError"
    assert "jane@example.com" not in message and "JVM" not in message
    assert message.startswith("[CAST_INVALID_INPUT] The value '…'")


def test_no_event_log_reads_as_no_events(tmp_path: Path) -> None:
    assert event_log.read_events(tmp_path) == []
    assert history.render_updates([]).startswith("no updates recorded yet")
    assert history.render_lineage([]).startswith("no lineage recorded yet")


def test_lineage_layers_follow_the_declared_flows() -> None:
    graph = flows.edges((f.output, f.inputs) for f in flows.FLOWS)
    layered = flows.layers(graph)
    assert layered[0] == [flows.LANDING_EVENTS, flows.LANDING_USER_CHANGES]
    assert layered[-1] == [table_names.GOLD_FUNNEL_DAILY]
    depth = {name: i for i, layer in enumerate(layered) for name in layer}
    assert all(depth[source] < depth[output] for source, output in graph)
    text = history.render_lineage(graph)
    assert "gold_fact_events         <- gold_dim_user, silver_events" in text


def test_a_cycle_is_refused() -> None:
    with pytest.raises(ValueError, match="cycle"):
        flows.layers([("a", "b"), ("b", "a")])


def test_an_end_state_the_log_cannot_record_never_hides_why_the_update_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(self: event_log.UpdateLog, state: str, error: BaseException | None) -> None:
        raise OSError(28, "No space left on device")

    update = event_log.recorded_update(
        tmp_path, "u-1", flows=flows.FLOWS, full_refresh=False, runner=event_log.RUNNER
    )
    with pytest.raises(StorageFullError, match="the disk is full") as caught, update:
        monkeypatch.setattr(event_log.UpdateLog, "finished", disk_full)
        raise StorageFullError("the disk is full")
    assert caught.value.__notes__ == [
        "The event log could not record the FAILED end state: [Errno 28] No space left on device"
    ]
