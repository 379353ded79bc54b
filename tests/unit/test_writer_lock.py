"""One writer per warehouse, tested with real processes: refuse, wait, take over a stale lock."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from clickstream import cli
from pipeline import config, table_names
from pipeline.errors import WarehouseBusyError
from pipeline.run.writer_lock import writer_lock

HOLD = """
import sys, time
from pathlib import Path
from pipeline.run.writer_lock import writer_lock
with writer_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@contextmanager
def _holder(warehouse: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the warehouse's lock for `seconds`."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(warehouse), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "locked"
        yield process
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_a_second_writer_is_refused_at_once_with_the_holder_named(tmp_path: Path) -> None:
    with _holder(tmp_path, 60) as holder:
        started = time.monotonic()
        with pytest.raises(WarehouseBusyError) as error, writer_lock(tmp_path):
            pass
        assert time.monotonic() - started < 5
    message = str(error.value)
    assert f"pid {holder.pid}" in message
    assert socket.gethostname() in message
    assert "--wait SECONDS" in message


def test_a_writer_waits_for_the_holder_to_finish(tmp_path: Path) -> None:
    lines: list[str] = []
    with _holder(tmp_path, 1.5) as holder:
        started = time.monotonic()
        with writer_lock(tmp_path, wait_seconds=60, notify=lines.append):
            assert time.monotonic() - started > 1  # held until the holder let go
    assert any(line.startswith("waiting up to 60 s") and str(holder.pid) in line for line in lines)


def test_waiting_too_short_is_refused(tmp_path: Path) -> None:
    with (
        _holder(tmp_path, 60),
        pytest.raises(WarehouseBusyError, match="after waiting 1 s"),
        writer_lock(tmp_path, wait_seconds=1),
    ):
        pass


def test_the_lock_of_a_killed_run_is_taken_over_with_a_line_saying_so(tmp_path: Path) -> None:
    with _holder(tmp_path, 60) as holder:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    lines: list[str] = []
    with writer_lock(tmp_path, notify=lines.append):
        pass
    assert len(lines) == 1
    assert "taking over the writer lock" in lines[0] and f"pid {holder.pid}" in lines[0]
    lines.clear()
    with writer_lock(tmp_path, notify=lines.append):  # released properly: nothing to take over
        pass
    assert lines == []


def test_the_lock_is_reentrant_within_a_process(tmp_path: Path) -> None:
    with writer_lock(tmp_path), writer_lock(tmp_path):
        pass
    with _holder(tmp_path, 0.1):
        pass  # released by both blocks: another process could take it


def test_a_second_clickstream_run_exits_non_zero_before_starting_spark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    (landing / table_names.EVENTS_DIR).mkdir(parents=True)
    monkeypatch.setenv(config.PII_KEY_ENV, "k" * 64)
    with _holder(warehouse, 60) as holder:
        started = time.monotonic()
        code = cli.main(["run", "--landing", str(landing), "--warehouse", str(warehouse)])
        assert time.monotonic() - started < 5
    assert code == 2
    error = capsys.readouterr().err
    assert "is being written by another run" in error and f"pid {holder.pid}" in error
    assert "starting Spark" not in error
