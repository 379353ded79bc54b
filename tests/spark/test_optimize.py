"""`clickstream optimize` on a warehouse of small runs: fewer files, the same rows,
an update of its own, and the invariants still true for the runs after it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from benchmarks.bi_queries import files_read
from pipeline import table_names
from pipeline.config import PiiKey
from pipeline.observe import event_log
from pipeline.observe.history import updates
from pipeline.run import optimize, runner
from pipeline.run.session import session_settings
from pipeline.storage import delta_log, tables
from pipeline.storage.delta_tables import create_table_if_absent
from pipeline.transforms import gold
from scenarios import generator
from scenarios.scenario_invariants import gold_equals_full_refresh


def _arrive(root: Path, seed: int, day: int) -> None:
    """A small arrival of events and user changes, a day after the previous one."""
    generator.write_landing(
        root / "landing",
        events=60,
        seed=seed,
        users=6,
        files=1,
        start=generator.DEFAULT_START + timedelta(days=day),
    )


def _run(spark: SparkSession, root: Path, pii_key: PiiKey) -> runner.RunSummary:
    return runner.run_pipeline(
        spark, landing=root / "landing", warehouse=root / "warehouse", pii_key=pii_key
    )


def test_optimize_compacts_keeps_every_row_and_the_runs_after_it_stay_right(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey
) -> None:
    warehouse = tmp_path / "warehouse"
    for day, seed in enumerate((31, 32)):
        _arrive(tmp_path, seed, day)
        _run(spark, tmp_path, pii_key)
    counts = tables.row_counts(spark, warehouse)
    dry = optimize.optimize_warehouse(None, warehouse, dry_run=True)
    assert {r.table for r in dry} >= {*table_names.TABLES, table_names.EVENT_LOG}
    assert all(r.files_before == r.files_after for r in dry)
    assert len(updates(event_log.read_events(warehouse))) == 2  # a dry run records nothing

    done = optimize.optimize_warehouse(spark, warehouse, vacuum=True)
    by_table = {r.table: r for r in done}
    fact = by_table[table_names.GOLD_FACT_EVENTS]
    assert fact.files_before > 1 and fact.files_after == 1
    assert by_table[table_names.EVENT_LOG].files_after == 1
    assert all(r.files_after <= max(r.files_before, 1) for r in done)
    assert tables.row_counts(spark, warehouse) == counts
    found = updates(event_log.read_events(warehouse))
    assert [(u.runner, u.state) for u in found[-1:]] == [(optimize.RUNNER, "COMPLETED")]
    assert f"{fact.files_before:>7,} -> 1" in optimize.render(done, dry_run=False)

    # Nothing new after it: still no Spark work. New data after it: incremental = full refresh.
    assert _run(spark, tmp_path, pii_key).skipped
    _arrive(tmp_path, 34, 2)
    summary = _run(spark, tmp_path, pii_key)
    assert summary.rows(table_names.BRONZE_EVENTS) == counts[table_names.BRONZE_EVENTS] + 60
    verdict = gold_equals_full_refresh(spark, warehouse)
    assert verdict.passed, verdict.evidence


def test_a_run_optimizes_the_tables_grown_past_the_threshold(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(optimize, "AUTO_OPTIMIZE_FILES", 1)
    monkeypatch.setattr(optimize, "GOLD_AUTO_OPTIMIZE_FILES", 1)
    warehouse = tmp_path / "warehouse"
    for day, seed in enumerate((41, 42)):
        _arrive(tmp_path, seed, day)
        _run(spark, tmp_path, pii_key)
    # Each table the second run grew past one file was optimized back to one; the event log
    # too, before the update's end was appended to it.
    for table in (table_names.BRONZE_EVENTS, table_names.GOLD_FACT_EVENTS):
        files = delta_log.live_files(warehouse / table)
        assert files is not None and files[0] == 1, table
    log_files = delta_log.live_files(warehouse / table_names.EVENT_LOG)
    assert log_files is not None and log_files[0] == 2
    assert _run(spark, tmp_path, pii_key).skipped  # and the state still says nothing is new


def _optimize_commits(warehouse: Path) -> int:
    """The OPTIMIZE commits in the warehouse's table logs."""
    return sum(
        '"operation":"OPTIMIZE"' in commit.read_text(encoding="utf-8")
        for commit in warehouse.glob("*/_delta_log/*.json")
    )


def test_an_optimize_killed_midway_loses_nothing_and_the_next_run_closes_it(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey
) -> None:
    warehouse = tmp_path / "warehouse"
    for day, seed in enumerate((51, 52)):
        _arrive(tmp_path, seed, day)
        _run(spark, tmp_path, pii_key)
    counts = tables.row_counts(spark, warehouse)
    before = _optimize_commits(warehouse)
    optimizing = subprocess.Popen(
        [sys.executable, "-m", "clickstream", "optimize", "--warehouse", str(warehouse)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with optimizing:  # killed once a table's OPTIMIZE is committed, the others not all yet
        while _optimize_commits(warehouse) == before and optimizing.poll() is None:
            time.sleep(0.01)
        optimizing.send_signal(signal.SIGKILL)
        assert optimizing.wait(timeout=60) == -signal.SIGKILL
    assert _optimize_commits(warehouse) > before

    _arrive(tmp_path, 53, 2)
    summary = _run(spark, tmp_path, pii_key)
    assert summary.rows(table_names.BRONZE_EVENTS) == counts[table_names.BRONZE_EVENTS] + 60
    assert summary.rows(table_names.GOLD_FACT_EVENTS) == counts[table_names.GOLD_FACT_EVENTS] + 60
    verdict = gold_equals_full_refresh(spark, warehouse)
    assert verdict.passed, verdict.evidence
    found = updates(event_log.read_events(warehouse))
    assert [(u.runner, u.shown_state) for u in found[-2:]] == [
        (optimize.RUNNER, "FAILED (interrupted)"),
        (event_log.RUNNER, "COMPLETED"),
    ]


def test_clustering_lets_a_point_query_on_the_clustering_column_skip_files(
    spark: SparkSession, tmp_path: Path
) -> None:
    path = str(tmp_path / table_names.GOLD_FACT_EVENTS)
    days = 30
    rows = spark.range(0, 3000).select(
        "id",
        F.date_add(
            F.lit(generator.DEFAULT_START.date()), (F.col("id") / 10 % days).cast("int")
        ).alias("event_date"),
        F.sha2(F.col("id").cast("string"), 256).alias("user_key"),  # personal: no statistics
    )
    create_table_if_absent(
        spark, path, rows.schema, cluster_by=gold.CLUSTERING[table_names.GOLD_FACT_EVENTS]
    )
    for part in range(10):  # ten small runs, each touching every day
        rows.where(F.col("id") % 10 == part).write.format("delta").mode("append").save(path)
    one_day = (
        spark.read.format("delta")
        .load(path)
        .where(F.col("event_date") == generator.DEFAULT_START.date())
    )
    files_before = delta_log.live_files(Path(path))
    assert files_before is not None and files_read(one_day) == files_before[0]

    # Files a few kB apiece, so that this small table is cut into many clustered files.
    with session_settings(spark, {"spark.databricks.delta.optimize.maxFileSize": "8192"}):
        spark.sql(f"OPTIMIZE delta.`{path}`").collect()
    files_after = delta_log.live_files(Path(path))
    assert files_after is not None and files_after[0] >= 10
    assert files_read(one_day) <= files_after[0] // 5  # at most 20% of the files
    assert "user_key" not in (delta_log.columns_with_statistics(Path(path)) or set())
