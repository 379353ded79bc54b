"""Whether a run has anything to do, decided in plain Python before any JVM starts.

After every successful run the runner records what it processed: the landing files it saw
when it started and the Delta version of every table when it finished. A later run with the
same landing files, the same table versions and no streaming batch left half done (an offset
logged without its commit) has no new input, so it does no Spark work at all: as Lakeflow
skips a flow whose inputs did not change. Anything else (a new file, a table written by
someone else, a run that failed midway) means work, and the stages find out what exactly.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import DamagedStateError
from pipeline.run.cost import UpdateCost
from pipeline.storage import delta_log
from pipeline.storage.tables import row_counts
from pipeline.table_names import (
    CHECKPOINTS_DIR,
    EVENTS_DIR,
    GOLD_DIM_USER_CHANGES,
    TABLES,
    USER_CHANGES_DIR,
)

__all__ = [
    "NEWEST_DIR",
    "RunState",
    "RunSummary",
    "TableCount",
    "batch_files",
    "batch_timestamp",
    "changed_files",
    "existing_tables",
    "fingerprints",
    "highest_batch",
    "is_up_to_date",
    "landing_files",
    "last_run_finished",
    "new_bytes",
    "record_maintenance",
    "save_state",
    "summary",
    "table_versions",
    "unchanged_summary",
    "unseen_files",
]

NEWEST_DIR = "newest_event_time"
"""The folder, inside the events checkpoint, of silver's newest event time after each batch
(the watermark's state between runs)."""

STATE_FILE = "last_run.json"
VERSIONED_TABLES: tuple[str, ...] = (*TABLES, GOLD_DIM_USER_CHANGES)


Fingerprint = tuple[int, int]
"""A landing file's size in bytes and modification time in nanoseconds."""


@dataclass(frozen=True)
class RunState:
    """The landing files a run started from (with their fingerprints, None when unknown)
    and the table versions it left."""

    landing_files: dict[str, Fingerprint | None]
    versions: dict[str, int | None]


def _visible(name: str) -> bool:
    """Spark's file sources skip names starting with '.' or '_' (temporary and metadata files)."""
    return not name.startswith((".", "_"))


def landing_files(landing: Path) -> tuple[str, ...]:
    """The input files under `landing`, as sorted paths relative to it."""
    found: list[str] = []
    for folder in (EVENTS_DIR, USER_CHANGES_DIR):
        directory = landing / folder
        if not directory.is_dir():
            continue
        for root, dirs, files in os.walk(directory):
            dirs[:] = [d for d in dirs if _visible(d)]
            base = Path(root).relative_to(landing)
            found += [str(base / name) for name in files if _visible(name)]
    return tuple(sorted(found))


def fingerprints(landing: Path, files: tuple[str, ...]) -> dict[str, Fingerprint | None]:
    """The size and modification time of each of `files` (None for a file gone meanwhile)."""
    found: dict[str, Fingerprint | None] = {}
    for name in files:
        try:
            stat = (landing / name).stat()
        except FileNotFoundError:
            found[name] = None
            continue
        found[name] = (stat.st_size, stat.st_mtime_ns)
    return found


def unseen_files(warehouse: Path, files: tuple[str, ...]) -> list[str]:
    """The files the last successful run did not see (all of them, before any run)."""
    state = _load_state(warehouse)
    seen = state.landing_files if state is not None else {}
    return [name for name in files if name not in seen]


def changed_files(landing: Path, warehouse: Path) -> list[tuple[str, Fingerprint, Fingerprint]]:
    """Landing files the last successful run saw that changed since: (name, then, now)."""
    state = _load_state(warehouse)
    if state is None:
        return []
    seen = {name: print_ for name, print_ in state.landing_files.items() if print_ is not None}
    now = fingerprints(landing, tuple(seen))
    return [
        (name, seen[name], current)
        for name, current in now.items()
        if current is not None and current != seen[name]
    ]


def new_bytes(landing: Path, warehouse: Path, files: tuple[str, ...]) -> int:
    """Bytes of the landing files the last successful run did not see (all, before any)."""
    return sum((landing / name).stat().st_size for name in unseen_files(warehouse, files))


def existing_tables(warehouse: Path) -> list[str]:
    """The tables of `VERSIONED_TABLES` the warehouse holds (a committed Delta version)."""
    return [table for table, version in table_versions(warehouse).items() if version is not None]


def table_versions(warehouse: Path) -> dict[str, int | None]:
    """The latest Delta version of every table of the warehouse (None when absent)."""
    return {table: delta_log.table_version(warehouse / table) for table in VERSIONED_TABLES}


def _state_file(warehouse: Path) -> Path:
    return warehouse / CHECKPOINTS_DIR / STATE_FILE


def save_state(warehouse: Path, state: RunState) -> None:
    """Record a successful run's state (written to a temporary file, then renamed)."""
    target = _state_file(warehouse)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    document = {
        "landing_files": {
            name: list(print_) if print_ else None for name, print_ in state.landing_files.items()
        },
        "versions": state.versions,
    }
    partial.write_text(json.dumps(document, indent=1), encoding="utf-8")
    partial.replace(target)


def record_maintenance(
    warehouse: Path,
    versions_before: dict[str, int | None],
    landing: Path | None = None,
    rewritten: tuple[str, ...] = (),
) -> None:
    """Record that an erasure or a key rotation changed tables (and rewrote landing files)
    without new input, so that the next run with nothing new still does no Spark work.

    The table versions are taken over only when the last run's state matched
    `versions_before`, the versions found when the maintenance began.
    """
    state = _load_state(warehouse)
    if state is None:
        return
    files = dict(state.landing_files)
    if landing is not None:
        files |= {n: p for n, p in fingerprints(landing, rewritten).items() if n in files}
    versions = table_versions(warehouse) if state.versions == versions_before else state.versions
    save_state(warehouse, RunState(files, versions))


def _load_state(warehouse: Path) -> RunState | None:
    try:
        document = json.loads(_state_file(warehouse).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    files = document["landing_files"]
    if isinstance(files, list):  # written before fingerprints were kept
        files = dict.fromkeys(files)
    return RunState(
        {
            name: (int(print_[0]), int(print_[1])) if print_ else None
            for name, print_ in files.items()
        },
        dict(document["versions"]),
    )


def highest_batch(directory: Path) -> int:
    """The highest batch number in a checkpoint's `offsets/` or `commits/` folder, or -1."""
    try:
        return max(
            (int(entry.name) for entry in directory.iterdir() if entry.name.isdigit()), default=-1
        )
    except FileNotFoundError:
        return -1


def _half_done_batches(warehouse: Path) -> list[str]:
    """Queries whose last planned batch was never committed (a run stopped inside it)."""
    checkpoints = warehouse / CHECKPOINTS_DIR
    if not checkpoints.is_dir():
        return []
    return [
        query.name
        for query in checkpoints.iterdir()
        if query.is_dir() and highest_batch(query / "offsets") > highest_batch(query / "commits")
    ]


def last_run_finished(warehouse: Path) -> bool:
    """Whether the last run recorded its end, and no table changed since."""
    state = _load_state(warehouse)
    return state is not None and state.versions == table_versions(warehouse)


def is_up_to_date(landing: Path, warehouse: Path) -> bool:
    """True when the last successful run already processed everything in `landing`.

    Reads only file listings, the runner's state file and the Delta logs' file names.
    """
    state = _load_state(warehouse)
    if state is None or tuple(sorted(state.landing_files)) != landing_files(landing):
        return False
    if state.versions != table_versions(warehouse):
        return False
    return not _half_done_batches(warehouse)


@dataclass(frozen=True)
class TableCount:
    """Rows of one table before and after a run."""

    table: str
    before: int
    after: int

    @property
    def added(self) -> int:
        """Rows the run added."""
        return self.after - self.before


@dataclass(frozen=True)
class RunSummary:
    """What a run did, table by table."""

    counts: tuple[TableCount, ...]
    run_id: str | None = None
    update_id: str | None = None
    """The event log's update: the run's id, also for a run that had nothing to do."""
    cost: UpdateCost | None = None
    """What the run cost the engine (`pipeline.run.cost`), the event log's commits included;
    all zeros but those for a run with nothing new."""

    def __post_init__(self) -> None:
        if self.update_id is None and self.run_id is not None:
            object.__setattr__(self, "update_id", self.run_id)

    @property
    def skipped(self) -> bool:
        """Whether the run found nothing new and did no work (it then has no run id)."""
        return self.run_id is None

    def rows(self, table: str) -> int:
        """Rows in `table` after the run."""
        return next(count.after for count in self.counts if count.table == table)

    def render(self) -> str:
        """A short human-readable table of rows per table."""
        width = max(len(count.table) for count in self.counts)
        lines = [f"{'table':<{width}}  {'rows':>10}  {'added':>10}"]
        lines += [
            f"{count.table:<{width}}  {count.after:>10,}  {count.added:>+10,}"
            for count in self.counts
        ]
        return "\n".join(lines)


def summary(
    before: dict[str, int],
    after: dict[str, int],
    run_id: str | None,
    *,
    cost: UpdateCost | None = None,
) -> RunSummary:
    """The summary of a run from the row counts before and after it."""
    return RunSummary(
        tuple(TableCount(table, before[table], after[table]) for table in TABLES),
        run_id,
        cost=cost,
    )


def unchanged_summary(warehouse: Path, update_id: str | None = None) -> RunSummary:
    """The summary of a run that had nothing to do: counts from the Delta logs, none added."""
    counts = row_counts(None, warehouse)
    return RunSummary(summary(counts, counts, None).counts, None, update_id)


def batch_files(checkpoint: Path, batch_id: int) -> int | None:
    """How many files micro-batch `batch_id` of a file-source query read, from its
    checkpoint's source log (`sources/0/<batch>`, or the compacted file holding it); None
    when the log does not say (a Delta source, or a log compacted away)."""
    sources = checkpoint / "sources" / "0"
    for name in (str(batch_id), f"{batch_id}.compact"):
        path = sources / name
        if path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()[1:]
            return sum(1 for line in lines if f'"batchId":{batch_id}' in line)
    return None


def batch_timestamp(checkpoint: Path, batch_id: int) -> datetime:
    """The time Spark gave micro-batch `batch_id` when it planned it, from its offset log.

    A replayed batch gets the time of its first attempt: what it writes does not change.

    Raises:
        DamagedStateError: the offset log has no entry for the batch, or one without a time.
    """
    path = checkpoint / "offsets" / str(batch_id)
    try:
        metadata = json.loads(path.read_text(encoding="utf-8").splitlines()[1])
        return datetime.fromtimestamp(int(metadata["batchTimestampMs"]) / 1000, UTC)
    except (OSError, IndexError, ValueError, KeyError, TypeError) as exc:
        raise DamagedStateError(
            f"The offset log entry {path} of the batch being written has no batch time "
            f"({exc}). Restore the checkpoint from a backup, or rebuild the warehouse from the "
            "landing files."
        ) from exc
