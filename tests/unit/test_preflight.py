"""Damaged or surprising state stops a run before Spark, naming the file and the way out."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import table_names
from pipeline.errors import DamagedStateError, StorageFullError
from pipeline.run import preflight, repair, run_state, runner
from pipeline.storage import delta_log


def _landing(tmp_path: Path) -> Path:
    landing = tmp_path / "landing"
    (landing / table_names.EVENTS_DIR).mkdir(parents=True)
    (landing / table_names.EVENTS_DIR / "a.json").write_text('{"event_id": "1"}\n')
    return landing


def _marked_table(warehouse: Path, table: str, writer: str, batch: int) -> None:
    log = warehouse / table / "_delta_log"
    log.mkdir(parents=True, exist_ok=True)
    info = {"commitInfo": {"userMetadata": delta_log.batch_marker(writer, batch)}}
    (log / f"{batch:020d}.json").write_text(json.dumps(info) + "\n")


def _checkpoint(warehouse: Path, query: str, batches: int) -> Path:
    """A checkpoint as Spark leaves it after `batches` committed batches."""
    folder = warehouse / table_names.CHECKPOINTS_DIR / query
    (folder / "offsets").mkdir(parents=True)
    (folder / "commits").mkdir()
    (folder / "metadata").write_text('{"id":"5f2c"}\n')
    for batch in range(batches):
        (folder / "offsets" / str(batch)).write_text('v1\n{"batchWatermarkMs":0}\n{"index":3}')
        (folder / "commits" / str(batch)).write_text('v1\n{"nextBatchWatermarkMs":0}')
    return folder


def _warehouse(tmp_path: Path) -> Path:
    warehouse = tmp_path / "warehouse"
    _marked_table(warehouse, table_names.BRONZE_EVENTS, table_names.EVENTS_STREAM, 1)
    _checkpoint(warehouse, table_names.EVENTS_STREAM, 2)
    return warehouse


def test_a_sound_warehouse_passes(tmp_path: Path) -> None:
    assert preflight.check(_landing(tmp_path), _warehouse(tmp_path)) == []


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("offsets/1", 'v1\n{"batchWatermarkMs":0}\n{"ind', "line 3 is not valid JSON"),
        ("commits/1", "", "empty"),
        ("commits/1", "v1\n", "truncated after its version line"),
        ("offsets/1", "\x00\x00\x00", "is not a version"),
        ("metadata", '{"id":"5f', "not valid JSON"),
    ],
)
def test_a_damaged_checkpoint_file_is_named_with_the_way_out(
    tmp_path: Path, name: str, text: str, problem: str
) -> None:
    landing, warehouse = _landing(tmp_path), _warehouse(tmp_path)
    damaged = warehouse / table_names.CHECKPOINTS_DIR / table_names.EVENTS_STREAM / name
    damaged.write_text(text)
    with pytest.raises(DamagedStateError) as error:
        preflight.check(landing, warehouse)
    message = str(error.value)
    assert str(damaged) in message and problem in message
    assert "restore the file" in message and f"mv {warehouse} {warehouse}.damaged" in message


def test_spark_temporary_files_are_not_checked(tmp_path: Path) -> None:
    landing, warehouse = _landing(tmp_path), _warehouse(tmp_path)
    offsets = warehouse / table_names.CHECKPOINTS_DIR / table_names.EVENTS_STREAM / "offsets"
    (offsets / ".2.5f2c.tmp").write_text("v1\n{")  # a write a crash interrupted
    assert preflight.check(landing, warehouse) == []


def test_a_missing_checkpoint_beside_its_tables_is_refused(tmp_path: Path) -> None:
    landing, warehouse = _landing(tmp_path), _warehouse(tmp_path)
    checkpoint = warehouse / table_names.CHECKPOINTS_DIR / table_names.EVENTS_STREAM
    for path in sorted(checkpoint.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    checkpoint.rmdir()
    with pytest.raises(DamagedStateError, match="holds batch 1 of the 'events' stream") as error:
        preflight.check(landing, warehouse)
    assert f"{checkpoint} is missing" in str(error.value)
    assert "restore the checkpoint folder" in str(error.value)


def test_a_checkpoint_older_than_its_tables_is_refused(tmp_path: Path) -> None:
    landing, warehouse = _landing(tmp_path), tmp_path / "warehouse"
    _marked_table(warehouse, table_names.BRONZE_EVENTS, table_names.EVENTS_STREAM, 5)
    _checkpoint(warehouse, table_names.EVENTS_STREAM, 3)  # a backup from before batches 3 to 5
    with pytest.raises(DamagedStateError, match="has planned batches only up to 2"):
        preflight.check(landing, warehouse)


def test_a_missing_table_behind_a_checkpoint_is_refused(tmp_path: Path) -> None:
    landing, warehouse = _landing(tmp_path), tmp_path / "warehouse"
    _checkpoint(warehouse, table_names.EVENTS_STREAM, 2)
    with pytest.raises(DamagedStateError, match="batches 0 to 1 were written, but the table"):
        preflight.check(landing, warehouse)


def _earlier_layout(tmp_path: Path) -> Path:
    """A warehouse written with one query per layer, its last run finished."""
    warehouse = tmp_path / "warehouse"
    for query in repair.EARLIER_STREAMS:
        _checkpoint(warehouse, query, 3)
    newest = warehouse / table_names.CHECKPOINTS_DIR / "silver" / "newest_event_time"
    newest.mkdir()
    (newest / "1").write_text('{"newest": "2026-11-01T10:00:00+00:00"}')
    (newest / "4").write_text('{"newest": "2026-11-01T12:00:00+00:00"}')
    run_state.save_state(warehouse, run_state.RunState({}, run_state.table_versions(warehouse)))
    return warehouse


def test_a_warehouse_of_one_query_per_layer_is_adopted_once_keeping_what_it_read(
    tmp_path: Path,
) -> None:
    warehouse = _earlier_layout(tmp_path)
    checkpoints = warehouse / table_names.CHECKPOINTS_DIR
    message = repair.adopt_earlier_layout(warehouse)
    assert message is not None and "one query per layer" in message
    assert sorted(p.name for p in checkpoints.iterdir() if p.is_dir()) == [
        table_names.EVENTS_STREAM
    ]
    assert run_state.highest_batch(checkpoints / table_names.EVENTS_STREAM / "commits") == 2
    # silver's newest event time carries over, as the state of the last events batch
    newest = checkpoints / table_names.EVENTS_STREAM / "newest_event_time" / "2"
    assert "12:00:00" in newest.read_text()
    assert repair.adopt_earlier_layout(warehouse) is None


def test_a_warehouse_of_one_query_per_layer_left_mid_run_is_refused(tmp_path: Path) -> None:
    warehouse = _earlier_layout(tmp_path)
    silver = warehouse / table_names.CHECKPOINTS_DIR / "silver"
    (silver / "offsets" / "3").write_text('v1\n{"batchWatermarkMs":0}\n{"index":3}')
    with pytest.raises(DamagedStateError, match="last run did not finish"):
        repair.adopt_earlier_layout(warehouse)
    assert (silver / "offsets" / "3").exists()


def _unreadable_check(landing: Path, warehouse: Path) -> subprocess.CompletedProcess[str]:
    """`preflight.check` in a process that file permissions apply to, even run as root."""
    code = (
        "import sys; from pathlib import Path; from pipeline.run import preflight; "
        "preflight.check(Path(sys.argv[1]), Path(sys.argv[2]))"
    )
    without_override = (
        ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]
        if os.geteuid() == 0
        else []
    )
    return subprocess.run(
        [*without_override, sys.executable, "-c", code, str(landing), str(warehouse)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_an_unreadable_new_landing_file_is_named(tmp_path: Path) -> None:
    landing, warehouse = _landing(tmp_path), tmp_path / "warehouse"
    unreadable = landing / table_names.EVENTS_DIR / "a.json"
    unreadable.chmod(0)
    result = _unreadable_check(landing, warehouse)
    assert result.returncode != 0
    assert f"InputError: Cannot read the landing file {unreadable} (Permission denied)" in (
        result.stderr
    )
    assert "chmod a+r" in result.stderr


def test_a_landing_file_changed_after_a_run_read_it_is_reported(tmp_path: Path) -> None:
    landing, warehouse = _landing(tmp_path), _warehouse(tmp_path)
    files = run_state.landing_files(landing)
    state = run_state.RunState(
        run_state.fingerprints(landing, files), run_state.table_versions(warehouse)
    )
    run_state.save_state(warehouse, state)
    changed = landing / table_names.EVENTS_DIR / "a.json"
    with changed.open("a") as handle:
        handle.write('{"event_id": "2"}\n')
    warnings = preflight.check(landing, warehouse)
    assert len(warnings) == 1
    assert str(changed) in warnings[0] and "its new content is ignored" in warnings[0]
    assert run_state.is_up_to_date(landing, warehouse)  # not read again: nothing new to do


def test_a_state_file_of_an_older_version_still_loads(tmp_path: Path) -> None:
    landing, warehouse = _landing(tmp_path), _warehouse(tmp_path)
    state_file = warehouse / table_names.CHECKPOINTS_DIR / run_state.STATE_FILE
    versions = run_state.table_versions(warehouse)
    state_file.write_text(json.dumps({"landing_files": ["events/a.json"], "versions": versions}))
    assert run_state.is_up_to_date(landing, warehouse)
    assert preflight.check(landing, warehouse) == []


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        RuntimeError("Job aborted ... Caused by: java.io.IOException: No space left on device"),
    ],
)
def test_a_full_disk_anywhere_in_a_run_becomes_one_clear_error(
    tmp_path: Path, error: Exception
) -> None:
    with (
        pytest.raises(StorageFullError, match="is full") as raised,
        runner._storage_errors(tmp_path),
    ):
        raise error
    assert str(tmp_path) in str(raised.value) and "run again" in str(raised.value)
    assert raised.value.__cause__ is error


def test_other_failures_pass_through_unchanged(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="something else"), runner._storage_errors(tmp_path):
        raise ValueError("something else")


def test_temporary_log_files_of_a_killed_run_are_removed_and_nothing_else(tmp_path: Path) -> None:
    offsets = tmp_path / table_names.CHECKPOINTS_DIR / "gold_dim_user" / "offsets"
    commits = tmp_path / table_names.CHECKPOINTS_DIR / "bronze" / "commits"
    offsets.mkdir(parents=True)
    commits.mkdir(parents=True)
    left = [offsets / ".0.5d1c.tmp", offsets / "..0.5d1c.tmp.crc", commits / ".3.a1.tmp"]
    kept = [commits / "2", commits / ".2.crc", offsets.parent / "metadata"]
    for path in left + kept:
        path.write_text("v1\n")
    assert repair.remove_interrupted_writes(tmp_path) == [*sorted(left[:2]), left[2]]
    assert all(path.exists() for path in kept)
    assert not any(path.exists() for path in left)
