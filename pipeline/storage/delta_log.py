"""What a Delta table's transaction log says, read in plain Python: no JVM, no Spark job.

A run with nothing new must not start Spark, and row counts must not scan tables, so the
version and the row count of a table come from `<table>/_delta_log`: the last checkpoint
(Parquet, read with pyarrow) plus the JSON commits after it. The count is the sum of the
`numRecords` statistics of the live files minus the rows their deletion vectors delete.

Only what this project's tables use is read: classic single- and multi-part checkpoints and
JSON commits. Where the log holds something else (a V2 checkpoint, a file without
statistics), `row_count` returns None and the caller counts with Spark instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

__all__ = [
    "Commit",
    "TableState",
    "added_files",
    "batch_marker",
    "batch_output_rows",
    "column_bounds",
    "columns_with_statistics",
    "commit_marker",
    "commits",
    "committed_batch",
    "data_files_by_version",
    "live_files",
    "marked_output_rows",
    "may_hold",
    "output_rows",
    "read_state",
    "row_count",
    "table_version",
    "version_before",
]

LOG_DIR = "_delta_log"
_COMMIT = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(?:\.(\d{10})\.(\d{10}))?\.parquet$")


@dataclass(frozen=True)
class TableState:
    """A table's latest version and, when the log has the statistics, its row count."""

    version: int
    rows: int | None


def _log(path: Path) -> Path:
    return path / LOG_DIR


def _commit_versions(log: Path) -> list[int]:
    try:
        names = [entry.name for entry in log.iterdir()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(int(match.group(1)) for name in names if (match := _COMMIT.match(name)))


def table_version(path: Path) -> int | None:
    """The latest committed version of the Delta table at `path`; None when there is none."""
    versions = _commit_versions(_log(path))
    return versions[-1] if versions else None


def _checkpoint_parts(log: Path, up_to: int) -> tuple[int, list[Path]] | None:
    """The newest complete classic checkpoint at or before `up_to`: its version and files."""
    parts: dict[int, dict[int, Path]] = {}
    expected: dict[int, int] = {}
    for entry in log.iterdir():
        match = _CHECKPOINT.match(entry.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version > up_to:
            continue
        part, total = (int(match.group(2)), int(match.group(3))) if match.group(2) else (1, 1)
        parts.setdefault(version, {})[part] = entry
        expected[version] = total
    for version in sorted(parts, reverse=True):
        if len(parts[version]) == expected[version]:
            return version, [parts[version][i] for i in sorted(parts[version])]
    return None


def _file_key(action: dict[str, Any]) -> tuple[str, str]:
    vector = action.get("deletionVector") or {}
    unique = f"{vector.get('storageType', '')}{vector.get('pathOrInlineDv', '')}"
    return str(action["path"]), f"{unique}@{vector.get('offset', '')}"


def _checkpoint_adds(files: list[Path]) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq  # imported here: only a count that needs a checkpoint pays

    for file in files:
        table = pq.read_table(file, columns=["add"])
        for add in table.column("add").to_pylist():
            if add is not None:
                yield add


def _commit_actions(log: Path, version: int) -> Iterator[dict[str, Any]]:
    with (log / f"{version:020d}.json").open("rb") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def added_files(path: Path, version: int) -> list[Path]:
    """The data files the commit of `version` added to the table at `path` (its `add`
    actions; a path the same commit removes again is left out)."""
    log = _log(path)
    added: list[str] = []
    removed: set[str] = set()
    for action in _commit_actions(log, version):
        if "add" in action:
            added.append(str(action["add"]["path"]))
        elif "remove" in action:
            removed.add(str(action["remove"]["path"]))
    return [path / unquote(name) for name in added if name not in removed]


def _rows(add: dict[str, Any]) -> int | None:
    stats = add.get("stats")
    if not stats:
        return None
    records = json.loads(stats).get("numRecords")
    if records is None:
        return None
    deleted = (add.get("deletionVector") or {}).get("cardinality", 0)
    return int(records) - int(deleted)


def read_state(path: Path) -> TableState | None:
    """The latest version and row count of the Delta table at `path`; None when absent.

    `rows` is None when the log cannot give it without reading data (see the module doc).
    """
    replayed = _replay(path)
    if replayed is None:
        return None
    latest, live = replayed
    if live is None:
        return TableState(latest, None)
    counts = [_rows(add) for add in live.values()]
    if any(count is None for count in counts):
        return TableState(latest, None)
    return TableState(latest, sum(count for count in counts if count is not None))


def live_files(path: Path) -> tuple[int, int] | None:
    """How many data files the latest version of the table at `path` reads, and their bytes;
    None when there is no table."""
    replayed = _replay(path)
    if replayed is None:
        return None
    _latest, live = replayed
    adds = (live or {}).values()
    return len(adds), sum(int(add.get("size", 0)) for add in adds)


def _replay(path: Path) -> tuple[int, dict[tuple[str, str], dict[str, Any]] | None] | None:
    """The latest version of the table at `path` and its live `add` actions, replayed from its
    log; None when absent, no actions when commits were cleaned up without a usable
    checkpoint."""
    log = _log(path)
    versions = _commit_versions(log)
    if not versions:
        return None
    latest = versions[-1]
    checkpoint = _checkpoint_parts(log, latest)
    live: dict[tuple[str, str], dict[str, Any]] = {}
    first = 0
    if checkpoint is not None:
        checkpoint_version, files = checkpoint
        live = {_file_key(add): add for add in _checkpoint_adds(files)}
        first = checkpoint_version + 1
    known = set(versions)
    if any(version not in known for version in range(first, latest + 1)):
        return latest, None
    for version in range(first, latest + 1):
        for action in _commit_actions(log, version):
            if "add" in action:
                live[_file_key(action["add"])] = action["add"]
            elif "remove" in action:
                live.pop(_file_key(action["remove"]), None)
    return latest, live


def _column_ranges(path: Path, column: str) -> list[tuple[str, str] | None] | None:
    """Per live file of the table at `path` holding a value of the top-level `column`, its
    least and greatest value as the log's statistics write them (None for a file without
    them); None when the log cannot be replayed without Spark."""
    replayed = _replay(path)
    live = None if replayed is None else replayed[1]
    if live is None:
        return None
    ranges: list[tuple[str, str] | None] = []
    for add in live.values():
        stats = json.loads(add.get("stats") or "{}")
        rows, nulls = stats.get("numRecords"), (stats.get("nullCount") or {}).get(column)
        if rows is not None and rows == nulls:
            continue  # only nulls of the column here
        low = (stats.get("minValues") or {}).get(column)
        high = (stats.get("maxValues") or {}).get(column)
        ranges.append(None if low is None or high is None else (str(low), str(high)))
    return ranges


def columns_with_statistics(path: Path) -> set[str] | None:
    """The top-level columns any live file of the table at `path` keeps min/max statistics
    on (a struct by its name); None when the log cannot be replayed without Spark."""
    replayed = _replay(path)
    live = None if replayed is None else replayed[1]
    if live is None:
        return None
    found: set[str] = set()
    for add in live.values():
        stats = json.loads(add.get("stats") or "{}")
        found |= set(stats.get("minValues") or {}) | set(stats.get("maxValues") or {})
    return found


def may_hold(path: Path, column: str, values: Iterable[str]) -> bool:
    """Whether the table at `path` may hold a row whose top-level `column` is one of `values`
    (as its log's statistics write them: dates as `2026-11-01`), by the live files' min/max
    statistics: False only when every file's range leaves them all out. True when a file has
    no statistics for the column, or the log cannot be read without Spark."""
    wanted = sorted(set(values))
    ranges = _column_ranges(path, column)
    if ranges is None:
        return path.is_dir()
    return any(
        found is None or any(found[0] <= value <= found[1] for value in wanted) for found in ranges
    )


def column_bounds(path: Path, column: str) -> tuple[str, str] | None:
    """The least and greatest value of a top-level column of the table at `path`, as its
    log's file statistics write them (JSON text: dates as `2026-11-01`); None when the table
    is absent, holds no value of the column, or a live file has no statistics for it."""
    ranges = _column_ranges(path, column)
    if not ranges or any(found is None for found in ranges):
        return None
    return min(found[0] for found in ranges if found), max(found[1] for found in ranges if found)


def data_files_by_version(path: Path) -> dict[int, frozenset[tuple[str, str]]] | None:
    """The data files each version of the table at `path` reads, as (relative path, deletion
    vector) pairs: a file read with another deletion vector is another set of rows. Replayed
    from its JSON commits; None when a commit is gone (cleaned up after a checkpoint)."""
    log = _log(path)
    versions = _commit_versions(log)
    if not versions or versions != list(range(versions[-1] + 1)):
        return None
    live: set[tuple[str, str]] = set()
    files: dict[int, frozenset[tuple[str, str]]] = {}
    for version in versions:
        for action in _commit_actions(log, version):
            if "add" in action:
                live.add(_file_key(action["add"]))
            elif "remove" in action:
                live.discard(_file_key(action["remove"]))
        files[version] = frozenset(live)
    return files


def row_count(path: Path) -> int | None:
    """Rows of the Delta table at `path` from its log: 0 when absent, None when unknown."""
    state = read_state(path)
    if state is None:
        return 0
    return state.rows


MARKER_KEY = "clickstream"
"""The key of the batch marker a writer puts in a commit's `userMetadata` (`batch_marker`)."""
MARKER_SCAN_LIMIT = 200
"""How many of the newest commits `committed_batch` reads, at most."""


def batch_marker(writer: str, batch_id: int) -> str:
    """The `userMetadata` of a commit that writes micro-batch `batch_id` of `writer`."""
    return json.dumps({MARKER_KEY: {"writer": writer, "batch": batch_id}}, sort_keys=True)


def commit_marker(action: dict[str, Any]) -> tuple[str, int] | None:
    """The (writer, batch) of a `commitInfo` action's batch marker; None when unmarked."""
    metadata = (action.get("commitInfo") or {}).get("userMetadata")
    if not metadata:
        return None
    try:
        marker = json.loads(metadata)[MARKER_KEY]
        return str(marker["writer"]), int(marker["batch"])
    except (ValueError, TypeError, KeyError):
        return None


def _newest_marker(path: Path, writer: str) -> tuple[int, int] | None:
    """The newest commit marked by `writer`: (its table version, its batch), or None."""
    for version in reversed(_commit_versions(_log(path))[-MARKER_SCAN_LIMIT:]):
        for action in _commit_actions(_log(path), version):
            if "commitInfo" in action:
                marker = commit_marker(action)
                if marker is not None and marker[0] == writer:
                    return version, marker[1]
                break
    return None


def committed_batch(path: Path, writer: str) -> int | None:
    """The last micro-batch `writer` committed to the table at `path`, from commit markers.

    A writer's batches are written in order, each at most once, so its newest marker tells
    whether a replayed batch already reached this table. Only the newest
    `MARKER_SCAN_LIMIT` commits are read: a replayed batch is the table's last work by its
    writer, written just before the run that replays it stopped.
    """
    newest = _newest_marker(path, writer)
    return None if newest is None else newest[1]


def version_before(path: Path, writer: str, batch_id: int) -> int | None:
    """The table version a batch saw before it wrote: its own commit's version minus one.

    None when the batch has not written this table (so its latest version is what it saw);
    -1 when its commit created the table.
    """
    newest = _newest_marker(path, writer)
    if newest is None or newest[1] != batch_id:
        return None
    return newest[0] - 1


def _output_rows(info: dict[str, Any]) -> int:
    """The rows a commit wrote, from its `operationMetrics` (0 when it has none)."""
    metrics = info.get("operationMetrics") or {}
    return int(metrics.get("numOutputRows", metrics.get("num_added_rows", 0)))


def _commit_info(log: Path, version: int) -> dict[str, Any]:
    for action in _commit_actions(log, version):
        if "commitInfo" in action:
            return dict(action["commitInfo"])
    return {}


def batch_output_rows(path: Path, writer: str, batch_id: int) -> int:
    """The rows micro-batch `batch_id` of `writer` wrote to the table at `path`: the
    `numOutputRows` of its marked commit, 0 when it wrote none (among the newest
    `MARKER_SCAN_LIMIT` commits)."""
    log = _log(path)
    if not log.is_dir():
        return 0
    for version in reversed(_commit_versions(log)[-MARKER_SCAN_LIMIT:]):
        info = _commit_info(log, version)
        if commit_marker({"commitInfo": info}) == (writer, batch_id):
            return _output_rows(info)
    return 0


def output_rows(path: Path, after: int | None, up_to: int | None) -> int:
    """The rows the commits of versions `after` (exclusive) to `up_to` wrote, from their
    `operationMetrics`; `after` None counts from the table's first version."""
    if up_to is None:
        return 0
    log = _log(path)
    first = -1 if after is None else after
    return sum(_output_rows(_commit_info(log, v)) for v in range(first + 1, up_to + 1))


def marked_output_rows(path: Path) -> dict[tuple[str, int], list[int]]:
    """The rows each marked commit of the table's log wrote, per (writer, batch): one entry
    per commit (two would be a batch written twice). Reads every commit file kept."""
    log = _log(path)
    found: dict[tuple[str, int], list[int]] = {}
    if not log.is_dir():
        return found
    for version in _commit_versions(log):
        info = _commit_info(log, version)
        marker = commit_marker({"commitInfo": info})
        if marker is not None:
            found.setdefault(marker, []).append(_output_rows(info))
    return found


@dataclass(frozen=True)
class Commit:
    """One commit: its operation (`WRITE`, `MERGE`, ...) and the data files it added.

    A file a deletion vector marks is added again with the vector and removed in the same
    commit: it is not counted, since no data file was written for it.
    """

    operation: str
    files: int
    bytes: int


def _commit(log: Path, version: int) -> Commit:
    operation = ""
    added: dict[str, int] = {}
    removed: set[str] = set()
    for action in _commit_actions(log, version):
        if "commitInfo" in action:
            operation = str(action["commitInfo"].get("operation", ""))
        elif "add" in action:
            added[str(action["add"]["path"])] = int(action["add"].get("size", 0))
        elif "remove" in action:
            removed.add(str(action["remove"]["path"]))
    written = [size for path, size in added.items() if path not in removed]
    return Commit(operation, len(written), sum(written))


def commits(path: Path, after: int | None, up_to: int | None) -> list[Commit]:
    """The commits of versions `after` (exclusive) to `up_to` of the table at `path`;
    `after` None counts from the table's first version, `up_to` None means none."""
    if up_to is None:
        return []
    log = _log(path)
    first = -1 if after is None else after
    return [_commit(log, version) for version in range(first + 1, up_to + 1)]
