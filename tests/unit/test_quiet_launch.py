"""`jvm_output_to`: child processes write to the log file, this process to its terminal.

The JVM is stood in for by `sh`, which inherits file descriptors 1 and 2 the way pyspark's
`spark-submit` child does; no JVM starts here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.run.jvm_output import jvm_output_to

NOISY_CHILD = ["sh", "-c", "echo noise; echo err >&2"]


def _open_fds() -> set[str]:
    return {fd.name for fd in Path("/proc/self/fd").iterdir()}


def test_a_child_writes_to_the_file_and_this_process_to_its_terminal(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "spark.log"

    print("before")
    with jvm_output_to(log_file):
        subprocess.run(NOISY_CHILD, check=True)
    print("after")
    print("after, on stderr", file=sys.stderr)

    terminal = capfd.readouterr()
    assert terminal.out == "before\nafter\n"
    assert terminal.err == "after, on stderr\n"
    assert log_file.read_text() == "noise\nerr\n"


def test_a_child_started_inside_keeps_writing_to_the_file_after_the_block(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "spark.log"
    with jvm_output_to(log_file):
        child = subprocess.Popen(
            ["sh", "-c", "read line; echo late; echo later >&2"], stdin=subprocess.PIPE
        )
    print("ours")
    child.communicate(b"go\n")

    assert child.returncode == 0
    assert capfd.readouterr().out == "ours\n"
    assert log_file.read_text() == "late\nlater\n"


def test_the_file_is_appended_to_and_its_directory_created(tmp_path: Path) -> None:
    log_file = tmp_path / "_logs" / "nested" / "spark.log"

    for _ in range(2):
        with jvm_output_to(log_file):
            subprocess.run(NOISY_CHILD, check=True)

    assert log_file.read_text() == "noise\nerr\n" * 2


LAUNCHER = """
import subprocess, sys
from pathlib import Path
from pipeline.run.jvm_output import jvm_output_to
print("pending, unflushed", end="")
print("stderr before", file=sys.stderr)
with jvm_output_to(Path(sys.argv[1])):
    print("ours, inside")
    subprocess.run(["sh", "-c", "echo noise; echo err >&2"], check=True)
print("ours, after")
print("stderr after", file=sys.stderr)
"""


def test_in_a_process_of_its_own(tmp_path: Path) -> None:
    """Python's own streams write through fds 1 and 2 (pytest's capture does not)."""
    log_file = tmp_path / "spark.log"

    launcher = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(log_file)],
        capture_output=True,
        text=True,
        check=True,
    )

    assert launcher.stdout == "pending, unflushedours, after\n"
    assert launcher.stderr == "stderr before\nstderr after\n"
    assert log_file.read_text() == "ours, inside\nnoise\nerr\n"


def test_the_terminal_comes_back_when_the_block_raises(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "spark.log"
    fds_before = _open_fds()

    with pytest.raises(RuntimeError), jvm_output_to(log_file):
        raise RuntimeError("the gateway did not start")
    print("after")

    assert capfd.readouterr().out == "after\n"
    assert _open_fds() == fds_before


def test_no_descriptor_is_left_open(tmp_path: Path) -> None:
    fds_before = _open_fds()

    with jvm_output_to(tmp_path / "spark.log"):
        subprocess.run(NOISY_CHILD, check=True)

    assert _open_fds() == fds_before


def test_an_unwritable_log_file_changes_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")

    with pytest.raises(OSError), jvm_output_to(blocker / "spark.log"):
        pass
    print("still here")

    assert capfd.readouterr().out == "still here\n"
