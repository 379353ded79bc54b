"""The event log of real runs: updates and their end states, Databricks' queries, reconciliation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from pyspark.sql import SparkSession

from contracts import rules
from pipeline import table_names
from pipeline.config import PiiKey
from pipeline.errors import ExpectationFailedError
from pipeline.observe import event_log
from pipeline.observe.flows import FLOWS, edges
from pipeline.observe.history import updates
from pipeline.run import runner
from pipeline.transforms.expectations import Expectation
from scenarios import generator, invariants

RULES = rules.expectations(clock=lambda: generator.DEFAULT_START.replace(year=2100))
NO_TELEPORTS = Expectation(
    name="no_teleports",
    predicate="event_type <> 'teleport'",
    action="fail",
    description="nobody teleports",
    passing_example={"event_type": "click"},
    failing_example={"event_type": "teleport"},
    columns=("event_type",),
)
STRICT = {**RULES, table_names.SILVER_EVENTS: (*RULES[table_names.SILVER_EVENTS], NO_TELEPORTS)}

# Databricks' documented event-log queries, as written there (`event_log_raw`, `latest_update`
# and the `details:path` syntax on a VARIANT), against the views `register_views` makes. (Spark
# 4.2 does not bind named parameters in a query using `details:path`: the id is inlined.)
LINEAGE = """
SELECT details:flow_definition.output_dataset AS output_dataset,
       details:flow_definition.input_datasets AS input_dataset
FROM event_log_raw, latest_update
WHERE event_type = 'flow_definition' AND origin.update_id = latest_update.id
"""
OUTPUT_ROWS = """
SELECT origin.flow_name AS flow_name,
       SUM(Double(details:flow_progress.metrics.num_output_rows)) AS num_output_rows
FROM event_log_raw
WHERE event_type = 'flow_progress' AND origin.update_id = '{update}'
GROUP BY origin.flow_name
"""
# The data-quality query applies from_json to a `details:` path, which open-source SQL does not
# allow on a VARIANT: the view gives the same columns.
DATA_QUALITY = """
SELECT dataset, expectation, SUM(passing_records) AS passing_records,
       SUM(failing_records) AS failing_records
FROM event_log_expectations WHERE update_id = '{update}'
GROUP BY dataset, expectation
"""


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))


def _run(spark: SparkSession, root: Path, pii_key: PiiKey, expectations: Any) -> runner.RunSummary:
    return runner.run_pipeline(
        spark,
        landing=root / "landing",
        warehouse=root / "warehouse",
        pii_key=pii_key,
        expectations=expectations,
    )


def test_a_run_a_rerun_and_a_failed_run_are_updates_with_their_metrics(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey
) -> None:
    warehouse = tmp_path / "warehouse"
    events = generator.generate_events(events=40, seed=21)
    events[0] = dict(events[0], event_type="teleport")  # fails the warn rule event_type_known
    _write(tmp_path / "landing" / "events" / "a.json", events)
    first = _run(spark, tmp_path, pii_key, RULES)
    rerun = _run(spark, tmp_path, pii_key, RULES)
    # A day later: past the watermark, so silver's rules see them.
    later = generator.generate_events(
        events=10, seed=22, start=generator.DEFAULT_START + timedelta(days=1)
    )
    later[4] = dict(later[4], event_type="teleport")
    _write(tmp_path / "landing" / "events" / "b.json", later)
    with pytest.raises(ExpectationFailedError):
        _run(spark, tmp_path, pii_key, STRICT)

    found = updates(event_log.read_events(warehouse))
    assert [u.state for u in found] == ["COMPLETED", "COMPLETED", "FAILED"]
    assert [u.update_id for u in found[:2]] == [first.run_id, rerun.update_id]
    assert rerun.skipped and not found[1].flows
    failed = found[2]
    assert failed.error is not None and failed.error.startswith("ExpectationFailedError: ")
    assert "no_teleports (1 rows)" in failed.error and "teleport'" not in failed.error
    assert later[4]["event_id"] not in failed.error  # the error keeps counts, never samples
    assert failed.flows[table_names.SILVER_EVENTS].status == "FAILED"
    assert failed.flows[table_names.BRONZE_EVENTS].status == "COMPLETED"
    assert failed.flows[table_names.BRONZE_EVENTS].output_rows == 10

    event_log.register_views(spark, warehouse)
    latest = spark.sql("SELECT id FROM latest_update").first()
    assert latest is not None and latest.id == failed.update_id
    lineage = {
        (str(row.output_dataset).strip('"'), str(row.input_dataset))
        for row in spark.sql(LINEAGE).collect()
    }
    declared = edges((flow.output, flow.inputs) for flow in FLOWS)
    assert {(output, source) for source, output in declared} == {
        (output, source) for output, inputs in lineage for source in orjson.loads(inputs)
    }
    written = {
        row.flow_name: row.num_output_rows
        for row in spark.sql(OUTPUT_ROWS.format(update=first.run_id)).collect()
    }
    assert written[table_names.BRONZE_EVENTS] == 40 == first.rows(table_names.BRONZE_EVENTS)
    assert written[table_names.SILVER_EVENTS] == first.rows(table_names.SILVER_EVENTS)
    assert written[table_names.GOLD_FACT_EVENTS] == first.rows(table_names.GOLD_FACT_EVENTS)
    quality = {
        (row.dataset, row.expectation): (row.passing_records, row.failing_records)
        for row in spark.sql(DATA_QUALITY.format(update=first.run_id)).collect()
    }
    assert quality[table_names.SILVER_EVENTS, "event_type_known"] == (39, 1)
    assert quality[table_names.BRONZE_EVENTS, "event_type_present"] == (40, 0)
    durations = {
        row.update_id: (row.state, row.duration_seconds)
        for row in spark.sql("SELECT * FROM event_log_updates").collect()
    }
    assert [durations[u.update_id][0] for u in found] == ["COMPLETED", "COMPLETED", "FAILED"]
    assert all(seconds >= 0 for _state, seconds in durations.values())

    verdicts = invariants.event_log_reconciles(warehouse, input_records=50)
    assert all(v.passed for v in verdicts), [v for v in verdicts if not v.passed]


def _clickstream_run(root: Path, pii_key: PiiKey) -> subprocess.Popen[str]:
    """A `clickstream run` process, its stderr (the progress lines) to read as it runs."""
    return subprocess.Popen(
        [sys.executable, "-m", "clickstream", "run", "--landing", str(root / "landing"),
         "--warehouse", str(root / "warehouse")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CLICKSTREAM_PII_KEY": pii_key.reveal().decode()},
    )  # fmt: skip


def _stop_when_events_start(process: subprocess.Popen[str], signum: int) -> int:
    """Send `signum` once the run's events stage has started; its exit status."""
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("events: started"):
            process.send_signal(signum)
            break
    with process:  # closes its pipe
        process.stderr.read()
        return process.wait(timeout=120)


def test_sigterm_cancels_a_run_and_a_killed_run_is_closed_by_the_next(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey
) -> None:
    generator.write_landing(tmp_path / "landing", events=400, seed=21, files=8)
    killed = _clickstream_run(tmp_path, pii_key)
    assert _stop_when_events_start(killed, signal.SIGKILL) == -signal.SIGKILL
    canceled = _clickstream_run(tmp_path, pii_key)  # closes the killed update as it starts
    assert _stop_when_events_start(canceled, signal.SIGTERM) == 130

    summary = _run(spark, tmp_path, pii_key, RULES)  # resumes from the checkpoints
    assert summary.rows(table_names.SILVER_EVENTS) == 400
    found = updates(event_log.read_events(tmp_path / "warehouse"))
    assert [u.shown_state for u in found] == ["FAILED (interrupted)", "CANCELED", "COMPLETED"]
    assert found[0].error is not None and "last flow it reached" in found[0].error
    assert found[1].flows and all(
        flow.status in ("COMPLETED", "CANCELED") for flow in found[1].flows.values()
    )
