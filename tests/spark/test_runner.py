"""The incremental runner on real Delta tables: conservation, idempotence, late data, restarts."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from pyspark.sql import SparkSession

from pipeline import table_names
from pipeline.config import PiiKey
from pipeline.errors import DamagedStateError, InputError
from pipeline.run import runner
from pipeline.storage import delta_tables, tables
from scenarios import generator


def _run(spark: SparkSession, tmp_path: Path, pii_key: PiiKey) -> runner.RunSummary:
    return runner.run_pipeline(
        spark, landing=tmp_path / "landing", warehouse=tmp_path / "warehouse", pii_key=pii_key
    )


def _write(path: Path, records: list[dict[str, object]], *extra_lines: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records) + b"".join(extra_lines))


def test_runs_are_incremental_conserve_every_line_and_refuse_a_lost_checkpoint(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey
) -> None:
    first = generator.write_landing(tmp_path / "landing", events=400, seed=1, files=2)
    _write(tmp_path / "landing" / "events" / "bad.json", [], b"not json\n\n[1]\n")
    summary = _run(spark, tmp_path, pii_key)
    assert summary.rows(table_names.BRONZE_EVENTS) == 400
    assert summary.rows(table_names.BRONZE_QUARANTINE) == 2
    assert summary.rows(table_names.SILVER_EVENTS) == 400

    again = _run(spark, tmp_path, pii_key)
    assert all(count.added == 0 for count in again.counts)

    generator.write_landing(tmp_path / "landing", events=100, seed=2, files=1)
    read_before = tmp_path / "landing" / "events" / "bad.json"
    with read_before.open("ab") as rewritten:  # changed after a run read it: not read again
        rewritten.write(orjson.dumps({"event_id": "x", "event_ts": "2026-11-01T10:00:00Z"}))
    said: list[str] = []
    third = runner.run_pipeline(
        spark,
        landing=tmp_path / "landing",
        warehouse=tmp_path / "warehouse",
        pii_key=pii_key,
        progress=said.append,
    )
    added = {count.table: count.added for count in third.counts}
    assert added[table_names.BRONZE_EVENTS] == 100
    assert added[table_names.BRONZE_QUARANTINE] == 0
    assert added[table_names.SILVER_EVENTS] + added[table_names.SILVER_LATE_EVENTS] == 100
    assert first.events == 400
    assert any(f"{read_before} changed after a run read it" in line for line in said)

    checkpoint = tmp_path / "warehouse" / table_names.CHECKPOINTS_DIR / table_names.EVENTS_STREAM
    shutil.rmtree(checkpoint)  # the tables stay: running now would read every file again
    with pytest.raises(DamagedStateError, match=f"{checkpoint} is missing"):
        _run(spark, tmp_path, pii_key)
    assert tables.count_rows(spark, tmp_path / "warehouse", table_names.BRONZE_EVENTS) == 500


def test_events_behind_the_watermark_are_kept_as_late(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey
) -> None:
    events = generator.generate_events(events=50, seed=3)
    _write(tmp_path / "landing" / "events" / "a.json", events)
    _run(spark, tmp_path, pii_key)

    late = dict(events[0], event_id="late-event", event_ts="2026-10-30T00:00:00.000Z")
    replay = dict(events[1])  # the same line again, behind the watermark: a duplicate
    # The same id with an event time two days off: Spark only promises to deduplicate copies
    # within the watermark delay, so behind the watermark this copy is late, not a duplicate.
    far_copy = dict(events[2], event_ts="2026-10-30T00:00:00.000Z")
    _write(tmp_path / "landing" / "events" / "b.json", [late, replay, far_copy])
    summary = _run(spark, tmp_path, pii_key)
    late_ids = sorted(
        row.event_id
        for row in tables.read_table(
            spark, tmp_path / "warehouse", table_names.SILVER_LATE_EVENTS
        ).collect()
    )
    assert late_ids == sorted(["late-event", str(events[2]["event_id"])])
    assert summary.rows(table_names.SILVER_EVENTS) == 50


def test_a_failure_between_two_writes_neither_loses_nor_duplicates(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator.write_landing(tmp_path / "landing", events=200, seed=4, files=1)
    _write(tmp_path / "landing" / "events" / "bad.json", [], b"not json\n")
    real_append = delta_tables.append_once

    def crash_on_quarantine(frame, path: str, *, query: str, batch_id: int, **options) -> bool:  # type: ignore[no-untyped-def]
        if path.endswith(table_names.BRONZE_QUARANTINE):
            raise RuntimeError("simulated crash after bronze_events was committed")
        return real_append(frame, path, query=query, batch_id=batch_id, **options)

    monkeypatch.setattr("pipeline.run.bronze_stage.append_once", crash_on_quarantine)
    with pytest.raises(Exception, match="simulated crash"):
        _run(spark, tmp_path, pii_key)
    assert tables.count_rows(spark, tmp_path / "warehouse", table_names.BRONZE_EVENTS) == 200

    monkeypatch.setattr("pipeline.run.bronze_stage.append_once", real_append)
    summary = _run(spark, tmp_path, pii_key)
    assert summary.rows(table_names.BRONZE_EVENTS) == 200
    assert summary.rows(table_names.BRONZE_QUARANTINE) == 1
    assert summary.rows(table_names.SILVER_EVENTS) == 200


def test_missing_landing_folder_is_a_clear_error(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey
) -> None:
    with pytest.raises(InputError, match="clickstream produce"):
        _run(spark, tmp_path, pii_key)


def test_a_first_run_where_nothing_reaches_silver_still_accounts_for_every_row(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey
) -> None:
    rows: list[dict[str, object]] = [{"event_type": "click", "event_ts": "2026-11-01T10:00:00Z"}]
    _write(tmp_path / "landing" / "events" / "a.json", rows * 3, b"[]\n")
    summary = _run(spark, tmp_path, pii_key)
    assert summary.rows(table_names.BRONZE_EVENTS) == 3
    assert summary.rows(table_names.BRONZE_QUARANTINE) == 1
    assert summary.rows(table_names.SILVER_EVENTS) == 0
    assert summary.rows(table_names.SILVER_QUARANTINE) == 3
