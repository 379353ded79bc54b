"""The moments a crash is most dangerous, recognised from the files a run writes.

Each kill point is a predicate over the warehouse's files (streaming checkpoints and Delta
logs), true while the run is inside that moment: an offset logged and not committed, data
files written and not yet in the Delta log, one table of a micro-batch written and not the
next, ... The harness (`scenarios.chaos`) polls the predicate; when it holds, it stops the
run's process group (SIGSTOP), checks it again on the frozen files, and only then kills it
(SIGKILL): a kill counted at a point happened there. Files older than the run's start are
ignored, so a point left by an earlier kill does not fire again before the run reaches it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.storage import delta_log
from pipeline.table_names import (
    BRONZE_EVENTS,
    BRONZE_QUARANTINE,
    CHECKPOINTS_DIR,
    EVENT_LOG,
    EVENTS_STREAM,
    GOLD_DAILY_ACTIVE_USERS,
    GOLD_DIM_DATE,
    GOLD_DIM_DEVICE,
    GOLD_DIM_PAGE,
    GOLD_DIM_USER,
    GOLD_DIM_USER_CHANGES,
    GOLD_FACT_EVENTS,
    GOLD_FUNNEL_DAILY,
    GOLD_SESSIONS,
    GOLD_TABLES,
    SILVER_EVENTS,
    SILVER_LATE_EVENTS,
    SILVER_QUARANTINE,
    USER_MERGE_WRITER,
    USER_STREAM,
)

__all__ = ["POINTS", "Files", "KillPoint"]


@dataclass
class Commit:
    """One Delta commit: its version, operation and batch marker."""

    version: int
    operation: str
    marker: tuple[str, int] | None
    added: frozenset[str]


@dataclass
class Files:
    """What a run has written to a warehouse since it started (`since_ns`), read on demand.

    Delta commit files never change once visible, so each is parsed once.
    """

    warehouse: Path
    since_ns: int
    _parsed: dict[Path, Commit | None] = field(default_factory=dict)

    def _new(self, directory: Path) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(directory) as entries:
                return [
                    entry
                    for entry in entries
                    if entry.name[0] not in "._" and entry.stat().st_mtime_ns >= self.since_ns
                ]
        except FileNotFoundError:
            return []

    def batches(self, query: str, folder: str) -> set[int]:
        """Batch numbers in a checkpoint's `offsets` or `commits` folder written since start."""
        directory = self.warehouse / CHECKPOINTS_DIR / query / folder
        return {int(e.name) for e in self._new(directory) if e.name.isdigit()}

    def all_batches(self, query: str, folder: str) -> set[int]:
        directory = self.warehouse / CHECKPOINTS_DIR / query / folder
        try:
            return {int(p.name) for p in directory.iterdir() if p.name.isdigit()}
        except FileNotFoundError:
            return set()

    def uncommitted(self, query: str) -> set[int]:
        """Batches of `query` planned since start whose commit entry is not written."""
        return self.batches(query, "offsets") - self.all_batches(query, "commits")

    def commits(self, table: str) -> list[Commit]:
        """The table's Delta commits written since start."""
        found = []
        for entry in self._new(self.warehouse / table / delta_log.LOG_DIR):
            if not entry.name.endswith(".json"):
                continue
            path = Path(entry.path)
            if path not in self._parsed:
                self._parsed[path] = _parse_commit(path)
            commit = self._parsed[path]
            if commit is not None:
                found.append(commit)
        return found

    def markers(self, table: str) -> set[tuple[str, int]]:
        return {c.marker for c in self.commits(table) if c.marker is not None}

    def unlogged_data_files(self, table: str) -> list[str]:
        """Data files written since start that no commit since start adds (yet)."""
        written = [
            e.name
            for e in self._new(self.warehouse / table)
            if e.is_file() and e.name.endswith((".parquet", ".bin"))
        ]
        if not written:
            return []
        added = {name for commit in self.commits(table) for name in commit.added}
        return [name for name in written if name not in added]


def _parse_commit(path: Path) -> Commit | None:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    actions: list[dict[str, Any]] = [json.loads(line) for line in lines if line.strip()]
    info: dict[str, Any] = next((a for a in actions if "commitInfo" in a), {"commitInfo": {}})
    adds = [a["add"] for a in actions if "add" in a]
    added = {Path(add["path"]).name for add in adds} | {
        Path(add["deletionVector"].get("pathOrInlineDv", "")).name
        for add in adds
        if add.get("deletionVector")
    }
    operation = str(info["commitInfo"].get("operation", ""))
    return Commit(int(path.stem), operation, delta_log.commit_marker(info), frozenset(added))


Predicate = Callable[[Files], str | None]
"""Returns what it saw when the run is at the point, else None."""


@dataclass(frozen=True)
class KillPoint:
    """A named dangerous moment and how to recognise it."""

    name: str
    description: str
    holds: Predicate
    full_refresh: bool = False


def _offset_logged(query: str) -> Predicate:
    def holds(files: Files) -> str | None:
        pending = files.uncommitted(query)
        return f"{query} offsets/{max(pending)} without commits/{max(pending)}" if pending else None

    return holds


def _data_before_log(table: str) -> Predicate:
    def holds(files: Files) -> str | None:
        unlogged = files.unlogged_data_files(table)
        return f"{table}: {len(unlogged)} data file(s) not in the log" if unlogged else None

    return holds


def _between_writes(query: str, first: str, then: tuple[str, ...]) -> Predicate:
    """Batch N of `query` is in `first`, in none of `then`, and not committed."""

    def holds(files: Files) -> str | None:
        for batch in files.uncommitted(query):
            if (query, batch) in files.markers(first) and not any(
                (query, batch) in files.markers(table) for table in then
            ):
                return f"{query} batch {batch} in {first}, not yet in {', '.join(then)}"
        return None

    return holds


def _one_layer_written(files: Files) -> str | None:
    """Batch N of `events` is in bronze_events or in silver_events, not in both (the layers
    write at once), and not committed."""
    for batch in files.uncommitted(EVENTS_STREAM):
        marker = (EVENTS_STREAM, batch)
        bronze, silver = (
            marker in files.markers(BRONZE_EVENTS),
            marker in files.markers(SILVER_EVENTS),
        )
        if bronze != silver:
            written, missing = (
                (BRONZE_EVENTS, SILVER_EVENTS) if bronze else (SILVER_EVENTS, BRONZE_EVENTS)
            )
            return f"events batch {batch} in {written}, not yet in {missing}"
    return None


def _scd2_before_change_log(files: Files) -> str | None:
    """The MERGE (or first append) into gold_dim_user is committed, its change log is not."""
    for batch in files.uncommitted(USER_STREAM):
        merged = [c for c in files.commits(GOLD_DIM_USER) if c.operation in ("MERGE", "WRITE")]
        if merged and (USER_MERGE_WRITER, batch) not in files.markers(GOLD_DIM_USER_CHANGES):
            return f"{GOLD_DIM_USER} batch {batch} merged (v{merged[-1].version}), change log not"
    return None


GOLD_STAGE_TABLES = (
    GOLD_DIM_PAGE,
    GOLD_DIM_DEVICE,
    GOLD_DIM_DATE,
    GOLD_DAILY_ACTIVE_USERS,
    GOLD_SESSIONS,
    GOLD_FUNNEL_DAILY,
)


def _gold_stage_midway(files: Files) -> str | None:
    """Facts of events batch N written, some of its dimension and aggregate writes too."""
    for batch in files.uncommitted(EVENTS_STREAM):
        if (EVENTS_STREAM, batch) not in files.markers(GOLD_FACT_EVENTS):
            continue
        written = [t for t in GOLD_STAGE_TABLES if files.commits(t)]
        if written:
            return f"events batch {batch}: facts and {', '.join(written)} written, not committed"
    return None


def _refresh_midway(files: Files) -> str | None:
    """Some gold tables replaced by the full refresh, not all of them yet."""
    replaced = [
        table
        for table in GOLD_TABLES
        if any("REPLACE" in commit.operation for commit in files.commits(table))
    ]
    if replaced and len(replaced) < len(GOLD_TABLES):
        return f"full refresh replaced {len(replaced)} of {len(GOLD_TABLES)} gold tables"
    return None


POINTS: tuple[KillPoint, ...] = (
    KillPoint(
        "offset-logged:events",
        "the events query planned a batch (offset log entry), not committed it",
        _offset_logged(EVENTS_STREAM),
    ),
    KillPoint(
        "offset-logged:gold_dim_user",
        "the user dimension's query planned a batch (offset log entry), not committed it",
        _offset_logged(USER_STREAM),
    ),
    KillPoint(
        "data-files-before-log:bronze_events",
        "bronze_events data files written, its Delta log entry not",
        _data_before_log(BRONZE_EVENTS),
    ),
    KillPoint(
        "data-files-before-log:silver_events",
        "silver_events data files written, its Delta log entry not",
        _data_before_log(SILVER_EVENTS),
    ),
    KillPoint(
        "between-writes:bronze",
        "an events batch in bronze_events, not yet in bronze_quarantine",
        _between_writes(EVENTS_STREAM, BRONZE_EVENTS, (BRONZE_QUARANTINE,)),
    ),
    KillPoint(
        "between-writes:silver",
        "an events batch in silver_events, not yet in its quarantine or late table",
        _between_writes(EVENTS_STREAM, SILVER_EVENTS, (SILVER_QUARANTINE, SILVER_LATE_EVENTS)),
    ),
    KillPoint(
        "between-layers:events",
        "an events batch in bronze_events or silver_events, not in both",
        _one_layer_written,
    ),
    KillPoint(
        "scd2-merge:data-files",
        "gold_dim_user MERGE data files written, its Delta log entry not",
        _data_before_log(GOLD_DIM_USER),
    ),
    KillPoint(
        "scd2-merge:before-change-log",
        "gold_dim_user merged, the batch's change log append not",
        _scd2_before_change_log,
    ),
    KillPoint(
        "gold-stage:midway",
        "gold facts of a batch written, its dimensions and aggregates partly",
        _gold_stage_midway,
    ),
    KillPoint(
        "event-log:data-files",
        "_event_log data files written, its Delta log entry not",
        _data_before_log(EVENT_LOG),
    ),
    KillPoint(
        "full-refresh:midway",
        "a full refresh has replaced some gold tables, not all",
        _refresh_midway,
        full_refresh=True,
    ),
)
