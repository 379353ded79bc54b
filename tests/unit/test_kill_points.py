"""The crash harness's kill points recognise their moment from files alone (no JVM)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pipeline import table_names
from pipeline.storage import delta_log
from scenarios.chaos import RANDOM, _enough, plan
from scenarios.kill_points import POINTS, Files

POINT = {point.name: point for point in POINTS}


def _commit(
    warehouse: Path,
    table: str,
    version: int,
    *,
    marker: tuple[str, int] | None = None,
    adds: tuple[str, ...] = (),
    operation: str = "WRITE",
) -> None:
    log = warehouse / table / "_delta_log"
    log.mkdir(parents=True, exist_ok=True)
    info: dict[str, object] = {"operation": operation}
    if marker is not None:
        info["userMetadata"] = delta_log.batch_marker(*marker)
    actions = [{"commitInfo": info}, *({"add": {"path": name}} for name in adds)]
    (log / f"{version:020d}.json").write_text("\n".join(json.dumps(a) for a in actions) + "\n")


def _batch_file(warehouse: Path, query: str, folder: str, batch: int) -> None:
    directory = warehouse / table_names.CHECKPOINTS_DIR / query / folder
    directory.mkdir(parents=True, exist_ok=True)
    (directory / str(batch)).write_text("v1\n{}\n")


def _run_start() -> int:
    """A run start a second ago: the kernel stamps files from a coarse clock, up to a tick
    behind `time.time_ns()`, so a file written right after "now" can look older than it."""
    return time.time_ns() - 10**9


def test_an_offset_without_its_commit_is_the_offset_logged_point(tmp_path: Path) -> None:
    files = Files(tmp_path, _run_start())
    assert POINT["offset-logged:events"].holds(files) is None
    _batch_file(tmp_path, "events", "offsets", 3)
    assert POINT["offset-logged:events"].holds(files) == "events offsets/3 without commits/3"
    _batch_file(tmp_path, "events", "commits", 3)
    assert POINT["offset-logged:events"].holds(files) is None


def test_files_older_than_the_run_do_not_fire(tmp_path: Path) -> None:
    _batch_file(tmp_path, "events", "offsets", 0)  # left by a run killed before this one
    assert POINT["offset-logged:events"].holds(Files(tmp_path, time.time_ns() + 10**9)) is None


def test_data_files_not_yet_in_the_log_are_the_data_files_point(tmp_path: Path) -> None:
    files = Files(tmp_path, _run_start())
    point = POINT["data-files-before-log:bronze_events"]
    table = tmp_path / table_names.BRONZE_EVENTS
    table.mkdir()
    (table / "part-0001.snappy.parquet").write_bytes(b"PAR1")
    assert point.holds(files) == "bronze_events: 1 data file(s) not in the log"
    _commit(tmp_path, table_names.BRONZE_EVENTS, 0, adds=("part-0001.snappy.parquet",))
    assert point.holds(files) is None


def test_one_table_of_a_batch_written_and_not_the_next_is_between_writes(tmp_path: Path) -> None:
    files = Files(tmp_path, _run_start())
    point = POINT["between-writes:bronze"]
    _batch_file(tmp_path, "events", "offsets", 1)
    _commit(tmp_path, table_names.BRONZE_EVENTS, 1, marker=("events", 1))
    assert point.holds(files) == "events batch 1 in bronze_events, not yet in bronze_quarantine"
    _commit(tmp_path, table_names.BRONZE_QUARANTINE, 1, marker=("events", 1))
    assert point.holds(files) is None


def test_one_layer_of_a_batch_written_and_not_the_other_is_between_layers(
    tmp_path: Path,
) -> None:
    files = Files(tmp_path, _run_start())
    point = POINT["between-layers:events"]
    _batch_file(tmp_path, "events", "offsets", 1)
    _commit(tmp_path, table_names.SILVER_EVENTS, 1, marker=("events", 1))
    assert point.holds(files) == "events batch 1 in silver_events, not yet in bronze_events"
    _commit(tmp_path, table_names.BRONZE_EVENTS, 1, marker=("events", 1))
    assert point.holds(files) is None


def test_a_merged_dimension_without_its_change_log_is_inside_the_scd2_merge(
    tmp_path: Path,
) -> None:
    files = Files(tmp_path, _run_start())
    point = POINT["scd2-merge:before-change-log"]
    _batch_file(tmp_path, table_names.GOLD_DIM_USER, "offsets", 2)
    _commit(tmp_path, table_names.GOLD_DIM_USER, 5, operation="WRITE")
    assert point.holds(files) is not None
    _commit(
        tmp_path,
        f"{table_names.GOLD_DIM_USER}__changes",
        3,
        marker=("clickstream:gold_dim_user", 2),
    )
    assert point.holds(files) is None


def test_a_refresh_that_replaced_some_gold_tables_is_midway(tmp_path: Path) -> None:
    files = Files(tmp_path, _run_start())
    point = POINT["full-refresh:midway"]
    _commit(tmp_path, table_names.GOLD_DIM_PAGE, 4, operation="CREATE OR REPLACE TABLE AS SELECT")
    assert point.holds(files) == "full refresh replaced 1 of 8 gold tables"


def test_the_plan_is_seeded_and_leads_with_every_point_in_turn() -> None:
    first = [trial for _, trial in zip(range(30), plan(7), strict=False)]
    again = [trial for _, trial in zip(range(30), plan(7), strict=False)]
    assert first == again
    leaders = {trial.kills[0] for trial in first[: len(POINTS) + 2]}
    assert leaders == {point.name for point in POINTS} | {RANDOM}
    assert all(t.stage == "full-refresh" for t in first if t.kills[0] == "full-refresh:midway")


def test_enough_needs_the_count_and_every_point() -> None:
    assert not _enough([], 1)
