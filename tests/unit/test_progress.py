"""`pipeline.run.progress`: plain lines off a terminal, one status line rewritten on one."""

from __future__ import annotations

import io
import re
import threading
import time

import pytest

from pipeline.run.progress import ERASE_LINE, Progress, StageCount, describe, fit

E = ERASE_LINE


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class SlowTerminal(Terminal):
    """A terminal that lets other threads run between the characters it writes."""

    def write(self, text: str) -> int:
        for character in text:
            super().write(character)
            time.sleep(0)
        return len(text)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# Pure parts


def test_rate_is_rows_per_second_up_to_the_latest_batch() -> None:
    assert StageCount("silver", started=10.0, updated=14.0, batches=2, rows=42).rate == 10.5
    assert StageCount("silver", started=10.0, updated=10.0, batches=1, rows=42).rate is None


@pytest.mark.parametrize(
    ("count", "line"),
    [
        (StageCount("silver", 0.0, 0.0), "silver: started"),
        (
            StageCount("silver", 0.0, 2.0, batches=3, files_done=12, files_total=16, rows=42_000),
            "silver: batch 3, 12/16 files, 42,000 rows, 21,000 rows/s",
        ),
        (
            StageCount("bronze", 0.0, 3.0, batches=1, files_done=12, rows=1_000),
            "bronze: batch 1, 12 files, 1,000 rows, 333 rows/s",
        ),
        (
            StageCount("bronze", 0.0, 1.0, batches=1, files_total=1_600, rows=5),
            "bronze: batch 1, ?/1,600 files, 5 rows, 5 rows/s",
        ),
        (StageCount("gold", 0.0, 0.0, batches=1, rows=1), "gold: batch 1, 1 row"),
        (StageCount("gold", 0.0, 4.0, batches=2, rows=0), "gold: batch 2, 0 rows, 0 rows/s"),
    ],
)
def test_describe_a_running_stage(count: StageCount, line: str) -> None:
    assert describe(count) == line


@pytest.mark.parametrize(
    ("count", "line"),
    [
        (StageCount("silver", 0.0, 0.0), "silver: done"),
        (
            StageCount("silver", 0.0, 2.0, batches=3, files_done=16, files_total=16, rows=42_000),
            "silver: done, 3 batches, 16/16 files, 42,000 rows, 21,000 rows/s",
        ),
        (
            StageCount("gold", 0.0, 2.0, batches=1, rows=1_000),
            "gold: done, 1 batch, 1,000 rows, 500 rows/s",
        ),
    ],
)
def test_describe_a_finished_stage(count: StageCount, line: str) -> None:
    assert describe(count, finished=True) == line


@pytest.mark.parametrize(
    ("columns", "fitted"), [(80, "0123456789"), (11, "0123456789"), (10, "012345678"), (1, "")]
)
def test_fit_leaves_the_last_column_free(columns: int, fitted: str) -> None:
    assert fit("0123456789", columns) == fitted


# Off a terminal: plain lines


def test_plain_lines_for_stage_starts_and_batches(clock: FakeClock) -> None:
    out = io.StringIO()
    progress = Progress(out, clock=clock)

    progress.stage("silver")
    clock.now += 2.0
    progress.batch("silver", 4, 16, 10_000)
    clock.now += 2.0
    progress.batch("silver", 12, 16, 30_000)
    progress.line("gold: merging new user changes")
    progress.finish("silver")
    progress.close()

    assert out.getvalue() == (
        "silver: started\n"
        "silver: batch 1, 4/16 files, 10,000 rows, 5,000 rows/s\n"
        "silver: batch 2, 12/16 files, 40,000 rows, 10,000 rows/s\n"
        "gold: merging new user changes\n"
    )


def test_plain_lines_have_no_control_characters(clock: FakeClock) -> None:
    out = io.StringIO()
    progress = Progress(out, clock=clock, columns=10)

    progress.stage("bronze")
    progress.stage("users")
    clock.now += 1.0
    progress.batch("bronze", 1, 2, 100)
    progress.batch("users", None, None, 7)
    progress.line("a message longer than ten columns")
    progress.close()

    text = out.getvalue()
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", text)
    assert text.splitlines() == [
        "bronze: started",
        "users: started",
        "bronze: batch 1, 1/2 files, 100 rows, 100 rows/s",
        "users: batch 1, 7 rows, 7 rows/s",
        "a message longer than ten columns",
    ]


def test_a_batch_before_its_stage_starts_the_stage(clock: FakeClock) -> None:
    out = io.StringIO()
    progress = Progress(out, clock=clock)

    progress.batch("silver", None, None, 5)
    clock.now += 1.0
    progress.batch("silver", None, None, 5)

    assert out.getvalue() == "silver: batch 1, 5 rows\nsilver: batch 2, 10 rows, 10 rows/s\n"


def test_starting_a_stage_again_counts_from_zero(clock: FakeClock) -> None:
    out = io.StringIO()
    progress = Progress(out, clock=clock)
    progress.stage("silver")
    clock.now += 1.0
    progress.batch("silver", 1, 1, 1_000)

    clock.now += 10.0
    progress.stage("silver")
    clock.now += 1.0
    progress.batch("silver", 1, 1, 10)

    assert out.getvalue().splitlines()[-2:] == [
        "silver: started",
        "silver: batch 1, 1/1 files, 10 rows, 10 rows/s",
    ]


def test_the_stream_is_flushed_after_every_write(clock: FakeClock) -> None:
    class CountingFlushes(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1

    out = CountingFlushes()
    progress = Progress(out, clock=clock)
    progress.stage("silver")
    progress.batch("silver", None, None, 1)
    progress.line("hello")

    assert out.flushes == 3


def test_stderr_by_default(capsys: pytest.CaptureFixture[str], clock: FakeClock) -> None:
    progress = Progress(clock=clock)
    progress.line("hello")

    assert capsys.readouterr() == ("", "hello\n")


# On a terminal: one status line


def test_the_status_line_is_rewritten_in_place(clock: FakeClock) -> None:
    out = Terminal()
    progress = Progress(out, clock=clock, columns=80)

    progress.stage("silver")
    clock.now += 2.0
    progress.batch("silver", 4, 16, 10_000)
    clock.now += 2.0
    progress.batch("silver", 12, 16, 30_000)

    assert out.getvalue() == (
        "silver: started"
        f"{E}silver: batch 1, 4/16 files, 10,000 rows, 5,000 rows/s"
        f"{E}silver: batch 2, 12/16 files, 40,000 rows, 10,000 rows/s"
    )


def test_messages_appear_above_the_status_line(clock: FakeClock) -> None:
    out = Terminal()
    progress = Progress(out, clock=clock, columns=80)

    progress.line("starting")
    progress.stage("silver")
    progress.line("silver: deduplicating within a 10 minutes watermark")

    assert out.getvalue() == (
        "starting\n"
        "silver: started"
        f"{E}silver: deduplicating within a 10 minutes watermark\n"
        "silver: started"
    )


def test_stages_running_at_once_share_the_status_line(clock: FakeClock) -> None:
    out = Terminal()
    progress = Progress(out, clock=clock, columns=80)

    progress.stage("silver")
    progress.stage("users")
    clock.now += 1.0
    progress.batch("users", 1, 1, 20)

    assert out.getvalue() == (
        "silver: started"
        f"{E}silver: started | users: started"
        f"{E}silver: started | users: batch 1, 1/1 files, 20 rows, 20 rows/s"
    )


def test_a_finished_stage_leaves_its_figures_above_the_status_line(clock: FakeClock) -> None:
    out = Terminal()
    progress = Progress(out, clock=clock, columns=80)
    progress.stage("silver")
    progress.stage("users")
    clock.now += 2.0
    progress.batch("silver", 16, 16, 42_000)
    out.seek(0)
    out.truncate()

    progress.finish("silver")
    progress.finish("silver")

    assert out.getvalue() == (
        f"{E}silver: done, 1 batch, 16/16 files, 42,000 rows, 21,000 rows/s\nusers: started"
    )


def test_close_finishes_every_stage_and_clears_the_status_line(clock: FakeClock) -> None:
    out = Terminal()
    progress = Progress(out, clock=clock, columns=80)
    progress.stage("silver")
    progress.stage("users")
    clock.now += 1.0
    progress.batch("users", None, None, 3)
    out.seek(0)
    out.truncate()

    progress.close()
    progress.close()

    assert out.getvalue() == f"{E}silver: done\nusers: done, 1 batch, 3 rows, 3 rows/s\n"


def test_close_clears_a_status_line_of_no_stage(clock: FakeClock) -> None:
    out = Terminal()
    progress = Progress(out, clock=clock, columns=80)

    progress.line("only a message")
    progress.close()

    assert out.getvalue() == "only a message\n"


def test_the_status_line_is_cut_to_the_terminal_width(clock: FakeClock) -> None:
    out = Terminal()
    progress = Progress(out, clock=clock, columns=12)

    progress.stage("silver")
    progress.stage("users")
    progress.line("a message is never cut")

    assert out.getvalue() == f"silver: sta{E}a message is never cut\nsilver: sta"


def test_an_unchanged_status_line_is_not_written_again(clock: FakeClock) -> None:
    out = Terminal()
    progress = Progress(out, clock=clock, columns=12)
    progress.stage("silver")
    progress.stage("users")
    progress.stage("gold")

    progress.finish("gold")
    progress.finish("not running")

    assert out.getvalue() == f"silver: sta{E}gold: done\nsilver: sta"


# Threads


@pytest.mark.parametrize("stream", [io.StringIO, SlowTerminal])
def test_stages_in_threads_do_not_mix_their_writes(
    stream: type[io.StringIO], clock: FakeClock
) -> None:
    out = stream()
    progress = Progress(out, clock=clock, columns=1_000)
    stages = [f"stage{number}" for number in range(3)]
    batches = 20

    def run(stage: str) -> None:
        progress.stage(stage)
        for done in range(1, batches + 1):
            progress.batch(stage, done, batches, 10)
            progress.line(f"{stage} wrote batch {done}")

    threads = [threading.Thread(target=run, args=(stage,)) for stage in stages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    progress.close()

    lines = out.getvalue().replace(E, "\n").splitlines()
    well_formed = re.compile(
        r"stage\d: (started|batch \d+, \d+/20 files, \d+ rows"
        r"|done, 20 batches, 20/20 files, 200 rows)"
        r"|stage\d wrote batch \d+"
    )
    for line in lines:
        assert all(well_formed.fullmatch(part) for part in line.split(" | ")), line
    for stage in stages:
        assert sum(line == f"{stage} wrote batch {batches}" for line in lines) == 1
    if stream is io.StringIO:
        assert {f"{stage}: batch 20, 20/20 files, 200 rows" for stage in stages} <= set(lines)
    else:
        assert sorted(lines[-3:]) == [
            f"{stage}: done, 20 batches, 20/20 files, 200 rows" for stage in stages
        ]
