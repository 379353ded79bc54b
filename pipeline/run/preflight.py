"""Checks of a warehouse's state and its landing files before a run touches Spark.

Plain Python over file listings, checkpoint files and Delta logs, so that damaged or
surprising state stops a run with a message naming the file and the way out, before Spark
would fail with a stack trace, or worse, silently reprocess input into existing tables:

* a checkpoint file that is truncated or not what Spark wrote (`DamagedStateError`);
* a checkpoint folder missing, or older than the tables it feeds (`DamagedStateError`): a
  stream would read its input again from the start;
* a table gone while its stream's checkpoint says it was written (`DamagedStateError`);
* a new landing file that cannot be read (`InputError`, e.g. permission denied);
* a landing file that changed after a run read it: like Auto Loader, the pipeline does not
  read a file twice, so its new content is ignored; `check` returns a warning naming it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import DamagedStateError, InputError
from pipeline.run import run_state
from pipeline.storage import delta_log
from pipeline.table_names import (
    BRONZE_EVENTS,
    CHECKPOINTS_DIR,
    EVENTS_DIR,
    EVENTS_STREAM,
    GOLD_DIM_USER_CHANGES,
    USER_MERGE_WRITER,
    USER_STREAM,
)

__all__ = [
    "STREAMS",
    "check",
    "check_landing",
]

STREAMS: dict[str, tuple[str, str]] = {
    EVENTS_STREAM: (BRONZE_EVENTS, EVENTS_STREAM),
    USER_STREAM: (GOLD_DIM_USER_CHANGES, USER_MERGE_WRITER),
}
"""Each streaming query (its checkpoint folder) -> the table every one of its batches
appends to, and the writer name of its batch markers there
(`pipeline.storage.delta_tables.append_once`)."""


def check_landing(landing: Path) -> None:
    """Raise `InputError` unless `landing` has the `events/` folder a run reads."""
    if not (landing / EVENTS_DIR).is_dir():
        raise InputError(
            f"The landing directory {landing} has no '{EVENTS_DIR}/' folder of JSON files. "
            f"Generate one with: clickstream produce --out {landing} --events 10000"
        )


def check(landing: Path, warehouse: Path) -> list[str]:
    """Raise on damaged state or unreadable new input; return warnings to show the user.

    Raises:
        DamagedStateError: a checkpoint file is damaged, or a checkpoint and its tables
            disagree; the message names the file and the way out.
        InputError: a landing file not read before cannot be opened.
    """
    for path, problem in _damaged_checkpoint_files(warehouse / CHECKPOINTS_DIR):
        raise DamagedStateError(
            f"The checkpoint file {path} is damaged ({problem}). Without it the stream cannot "
            "tell which input it has processed, so nothing was run. Way out: restore the file "
            f"(or the whole folder {path.parent.parent}) from a backup taken with the tables; "
            "or rebuild every table from the landing files: move the warehouse aside "
            f"(mv {warehouse} {warehouse}.damaged) and run again."
        )
    _check_streams_match_tables(warehouse)
    files = run_state.landing_files(landing)
    for name in run_state.unseen_files(warehouse, files):
        try:
            with (landing / name).open("rb"):
                pass
        except OSError as exc:
            raise InputError(
                f"Cannot read the landing file {landing / name} ({exc.strerror}). Nothing was "
                "run. Make it readable (e.g. chmod a+r on it) or move it out of the landing "
                "folder, then run again."
            ) from exc
    return [
        f"warning: the landing file {landing / name} changed after a run read it "
        f"({then[0]:,} -> {now[0]:,} bytes). Like Auto Loader, the pipeline reads a file once: "
        "its new content is ignored. To load it, write it as a new file."
        for name, then, now in run_state.changed_files(landing, warehouse)
    ]


def _check_streams_match_tables(warehouse: Path) -> None:
    for query, (table, writer) in STREAMS.items():
        checkpoint = warehouse / CHECKPOINTS_DIR / query
        planned = run_state.highest_batch(checkpoint / "offsets")
        committed = run_state.highest_batch(checkpoint / "commits")
        path = warehouse / table
        written = delta_log.committed_batch(path, writer) if path.is_dir() else None
        if written is not None and written > planned:
            state = (
                "is missing"
                if not checkpoint.is_dir()
                else f"has planned batches only up to {planned}"
            )
            raise DamagedStateError(
                f"The table {path} holds batch {written} of the '{query}' stream, but the "
                f"stream's checkpoint {checkpoint} {state}. Running now would read the stream's "
                "input again into tables that hold it (duplicates, or batches skipped as "
                "written), so nothing was run. Way out: restore the checkpoint folder from a "
                "backup taken with the tables; or rebuild every table from the landing files: "
                f"move the warehouse aside (mv {warehouse} {warehouse}.damaged) and run again."
            )
        if committed >= 0 and delta_log.table_version(path) is None:
            raise DamagedStateError(
                f"The '{query}' stream's checkpoint {checkpoint} says batches 0 to {committed} "
                f"were written, but the table {path} is missing. Nothing was run. Way out: "
                "restore the table from a backup; or rebuild every table from the landing "
                f"files: move the warehouse aside (mv {warehouse} {warehouse}.damaged) and "
                "run again."
            )


def _visible_files(directory: Path) -> Iterator[Path]:
    if directory.is_dir():
        yield from (p for p in sorted(directory.iterdir()) if p.is_file() and p.name[0] != ".")


def _damaged_checkpoint_files(checkpoints: Path) -> Iterator[tuple[Path, str]]:
    """Every checkpoint file Spark (or silver's newest-time record) would fail to read."""
    if not checkpoints.is_dir():
        return
    for query in sorted(p for p in checkpoints.iterdir() if p.is_dir()):
        metadata = query / "metadata"
        if metadata.exists():
            problem = _json_problem(_text(metadata), key="id")
            if problem:
                yield metadata, problem
        for folder, skip_lines in (("offsets", "-"), ("commits", None)):
            for path in _visible_files(query / folder):
                problem = _log_problem(_text(path), skip=skip_lines)
                if problem:
                    yield path, problem
        for source in sorted((query / "sources").glob("*")):
            for path in _visible_files(source):
                problem = _log_problem(_text(path), skip=None, header_only=True)
                if problem:
                    yield path, problem
        for path in _visible_files(query / "newest_event_time"):
            problem = _json_problem(_text(path), key="newest")
            if problem:
                yield path, problem


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return "\0"


def _json_problem(text: str, *, key: str) -> str | None:
    try:
        document = json.loads(text)
    except ValueError:
        return "not valid JSON" if text.strip() else "empty"
    if not isinstance(document, dict) or key not in document:
        return f"a JSON document without '{key}'"
    return None


def _log_problem(text: str, *, skip: str | None, header_only: bool = False) -> str | None:
    """What is wrong with a Spark metadata log file ('v1', then one JSON value per line)."""
    lines = text.split("\n")
    if not text.strip():
        return "empty"
    if not lines[0].startswith("v") or not lines[0][1:].isdigit():
        return f"its first line {lines[0][:40]!r} is not a version such as 'v1'"
    entries = [(n, line) for n, line in enumerate(lines[1:], start=2) if line and line != skip]
    if not entries and not header_only:
        return "truncated after its version line"
    for number, line in entries:
        try:
            json.loads(line)
        except ValueError:
            return f"line {number} is not valid JSON (truncated?)"
    return None
