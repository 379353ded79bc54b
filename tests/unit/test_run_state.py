"""Deciding, without a JVM, that a run has nothing to do; and the pure helpers of silver."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from pipeline import config, table_names
from pipeline.errors import ConfigurationError
from pipeline.run import run_state


def _table(warehouse: Path, name: str, version: int) -> None:
    log = warehouse / name / "_delta_log"
    log.mkdir(parents=True, exist_ok=True)
    (log / f"{version:020d}.json").write_text(json.dumps({"commitInfo": {}}) + "\n")


def _landing(tmp_path: Path) -> Path:
    landing = tmp_path / "landing"
    (landing / table_names.EVENTS_DIR).mkdir(parents=True)
    (landing / table_names.EVENTS_DIR / "a.json").write_text("{}\n")
    (landing / table_names.EVENTS_DIR / ".b.json.partial").write_text("{}\n")  # hidden: skipped
    (landing / table_names.USER_CHANGES_DIR).mkdir()
    (landing / table_names.USER_CHANGES_DIR / "c.json").write_text("{}\n")
    return landing


def _after_a_run(tmp_path: Path) -> tuple[Path, Path]:
    landing, warehouse = _landing(tmp_path), tmp_path / "warehouse"
    _table(warehouse, table_names.BRONZE_EVENTS, 0)
    files = run_state.landing_files(landing)
    run_state.save_state(
        warehouse,
        run_state.RunState(
            run_state.fingerprints(landing, files), run_state.table_versions(warehouse)
        ),
    )
    return landing, warehouse


def test_landing_files_are_what_spark_reads(tmp_path: Path) -> None:
    assert run_state.landing_files(_landing(tmp_path)) == ("events/a.json", "user_changes/c.json")


def test_a_warehouse_never_run_is_not_up_to_date(tmp_path: Path) -> None:
    assert not run_state.is_up_to_date(_landing(tmp_path), tmp_path / "warehouse")


def test_nothing_new_since_the_last_run_is_up_to_date(tmp_path: Path) -> None:
    landing, warehouse = _after_a_run(tmp_path)
    assert run_state.is_up_to_date(landing, warehouse)


def test_a_new_landing_file_is_work(tmp_path: Path) -> None:
    landing, warehouse = _after_a_run(tmp_path)
    (landing / table_names.EVENTS_DIR / "d.json").write_text("{}\n")
    assert not run_state.is_up_to_date(landing, warehouse)


def test_a_table_written_since_is_work(tmp_path: Path) -> None:
    landing, warehouse = _after_a_run(tmp_path)
    _table(warehouse, table_names.BRONZE_EVENTS, 1)
    assert not run_state.is_up_to_date(landing, warehouse)


def test_a_batch_planned_but_not_committed_is_work(tmp_path: Path) -> None:
    landing, warehouse = _after_a_run(tmp_path)
    offsets = warehouse / table_names.CHECKPOINTS_DIR / "silver" / "offsets"
    offsets.mkdir(parents=True)
    (offsets / "0").write_text("v1\n")
    assert not run_state.is_up_to_date(landing, warehouse)
    commits = offsets.parent / "commits"
    commits.mkdir()
    (commits / "0").write_text("v1\n")
    assert run_state.is_up_to_date(landing, warehouse)


@pytest.mark.parametrize(
    ("text", "delay"),
    [
        ("1 hour", timedelta(hours=1)),
        ("30 minutes", timedelta(minutes=30)),
        ("1 day 12 hours", timedelta(days=1, hours=12)),
        ("90 seconds", timedelta(seconds=90)),
    ],
)
def test_watermark_delays_parse_as_spark_writes_them(text: str, delay: timedelta) -> None:
    assert config.parse_delay(text) == delay


@pytest.mark.parametrize("text", ["", "hour", "1 fortnight", "-1 hour", "1 hour 2"])
def test_a_delay_that_is_no_duration_is_a_clear_error(text: str) -> None:
    with pytest.raises(ConfigurationError, match="watermark delay"):
        config.parse_delay(text)


def test_lookup_dates_cover_the_delay_around_each_day_and_the_state_window() -> None:
    from pipeline.transforms.silver import (
        lookup_dates,  # pure Python, but the module imports pyspark
    )

    day = date(2026, 11, 10)
    assert lookup_dates([day], delay=timedelta(hours=1), watermark=None, newest=None) == [
        day - timedelta(days=1),
        day,
        day + timedelta(days=1),
    ]
    newest = datetime(2026, 11, 12, 6, tzinfo=UTC)
    dates = lookup_dates(
        [day], delay=timedelta(hours=1), watermark=newest - timedelta(hours=1), newest=newest
    )
    assert dates == [day + timedelta(days=n) for n in range(-1, 3)]
