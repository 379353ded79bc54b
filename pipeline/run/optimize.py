"""`clickstream optimize`: the warehouse kept fast after many small runs, as Databricks'
predictive optimization keeps a Lakeflow pipeline's tables.

Every run appends a few small files to each table it touches, and the event log about ten.
Optimizing:

* compacts each table's small files with Delta's `OPTIMIZE`, which on the gold tables with
  liquid clustering (`pipeline.transforms.gold.CLUSTERING`) also clusters their rows, so that a
  query with a predicate on a clustering column skips most files; statistics stay off the
  personal columns (`delta.dataSkippingStatsColumns`, set when each table was created);
* compacts the event log (delta-rs `optimize.compact`) and writes its checkpoint;
* with `vacuum`, deletes the files no version within Delta's retention (7 days) reads.

It is an update of the event log of its own (`clickstream optimize`), holds the writer lock,
and leaves the next run with nothing new as cheap as before (`run_state.record_maintenance`).
`dry_run` changes nothing: it reports each table's files, with no Spark.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import ConfigurationError
from pipeline.observe.event_log import new_update_id, recorded_update
from pipeline.run import run_state
from pipeline.run.cost import size
from pipeline.run.writer_lock import writer_lock
from pipeline.storage import delta_log
from pipeline.storage.tables import table_path
from pipeline.table_names import EVENT_LOG, GOLD_TABLES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = [
    "AUTO_OPTIMIZE_FILES",
    "GOLD_AUTO_OPTIMIZE_FILES",
    "RUNNER",
    "TableMaintenance",
    "auto_optimize_files",
    "compact_event_log",
    "compact_grown_tables",
    "optimize_warehouse",
    "render",
]

RUNNER = "clickstream optimize"
"""The program an optimization's update names in the event log."""
AUTO_OPTIMIZE_FILES = 64
"""A run ends by optimizing each bronze and silver table and the change log (which only runs
read, incrementally), and compacting the event log, past this many data files
(`compact_grown_tables`)."""
GOLD_AUTO_OPTIMIZE_FILES = 8
"""...and each gold table past this many: BI queries read the gold tables whole, and pay per
file (the decay benchmark: the facts' BI query 1.51x at 16 files against one run's 5). The
facts gain a file a run, so they are optimized every 8 runs; the other gold tables are
rewritten whole or merged into and stay at 1-4 files."""


@dataclass(frozen=True)
class TableMaintenance:
    """What optimizing did to one table (or, in a dry run, what it holds)."""

    table: str
    files_before: int
    bytes_before: int
    files_after: int
    bytes_after: int
    seconds: float = 0.0
    files_vacuumed: int | None = None


def render(results: list[TableMaintenance], *, dry_run: bool) -> str:
    """One line per table: files and bytes before and after, seconds, files vacuumed."""
    width = max((len(r.table) for r in results), default=5)
    if dry_run:
        lines = [f"{'table':<{width}}  {'files':>7}  {'bytes':>10}"]
        lines += [
            f"{r.table:<{width}}  {r.files_before:>7,}  {size(r.bytes_before):>10}" for r in results
        ]
        return "\n".join(lines)
    lines = [f"{'table':<{width}}  {'files':>16}  {'bytes':>22}  {'seconds':>7}  vacuumed"]
    for r in results:
        vacuumed = "" if r.files_vacuumed is None else f"{r.files_vacuumed:,} files"
        lines.append(
            f"{r.table:<{width}}  {r.files_before:>7,} -> {r.files_after:<6,}  "
            f"{size(r.bytes_before):>10} -> {size(r.bytes_after):<9}  {r.seconds:>7.1f}  {vacuumed}"
        )
    return "\n".join(lines)


def optimize_warehouse(
    spark: SparkSession | None,
    warehouse: Path,
    *,
    vacuum: bool = False,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
    wait_seconds: float = 0.0,
) -> list[TableMaintenance]:
    """Compact (and cluster) every table of `warehouse` and its event log (module docstring).

    Args:
        spark: the session; None for a dry run, which needs none.
        warehouse: a warehouse `clickstream run` wrote.
        vacuum: then delete the files no version within the default retention reads.
        dry_run: change nothing; report each table's files and bytes.
        progress: called with a short message per table.
        wait_seconds: how long to wait for a run writing the warehouse to finish.

    Raises:
        ConfigurationError: no warehouse at `warehouse`, or no session for a real run.
        WarehouseBusyError: a run writes the warehouse.
    """
    report = progress or (lambda _message: None)
    warehouse = warehouse.resolve()
    tables = run_state.existing_tables(warehouse)
    if not tables:
        raise ConfigurationError(
            f"No tables in {warehouse}: give the --warehouse that `clickstream run` wrote."
        )
    if dry_run:
        return [_unchanged(warehouse, table) for table in [*tables, EVENT_LOG]]
    if spark is None:
        raise ConfigurationError("optimizing needs a Spark session (only a dry run does not)")
    with (
        writer_lock(warehouse, wait_seconds=wait_seconds, notify=report),
        recorded_update(warehouse, new_update_id(), flows=(), full_refresh=False, runner=RUNNER),
    ):
        versions_before = run_state.table_versions(warehouse)
        to_vacuum = set(_tables_to_vacuum(warehouse)) if vacuum else set()
        with ThreadPoolExecutor(max_workers=2) as pool:  # OPTIMIZE spends its time on the driver
            futures = [
                pool.submit(_optimize_table, spark, warehouse, t, t in to_vacuum, report)
                for t in tables
            ]
            results = [future.result() for future in futures]
        results.append(compact_event_log(warehouse, report, vacuum=vacuum))
        run_state.record_maintenance(warehouse, versions_before)
    return results


def auto_optimize_files(table: str) -> int:
    """The data files past which a run optimizes `table` (the bound on what it reads, but for
    the files of the last run)."""
    return GOLD_AUTO_OPTIMIZE_FILES if table in GOLD_TABLES else AUTO_OPTIMIZE_FILES


def compact_grown_tables(
    spark: SparkSession, warehouse: Path, report: Callable[[str], None]
) -> list[TableMaintenance]:
    """Optimize the tables, and compact the event log, grown past `auto_optimize_files`: what
    a run does at its end, under its lock and update, as predictive optimization does on
    Databricks. Reads only Delta logs when none has grown."""
    tables = [
        t for t in run_state.VERSIONED_TABLES if _files(warehouse / t)[0] > auto_optimize_files(t)
    ]
    results = []
    if tables:
        versions_before = run_state.table_versions(warehouse)
        results = [_optimize_table(spark, warehouse, t, False, report) for t in tables]
        run_state.record_maintenance(warehouse, versions_before)
    if _files(Path(table_path(warehouse, EVENT_LOG)))[0] > AUTO_OPTIMIZE_FILES:
        results.append(compact_event_log(warehouse, report))
    return results


def _tables_to_vacuum(warehouse: Path) -> list[str]:
    from pipeline.run.vacuum import DEFAULT_RETENTION_HOURS, tables_with_removed_files

    return tables_with_removed_files(warehouse, DEFAULT_RETENTION_HOURS)


def _files(path: Path) -> tuple[int, int]:
    return delta_log.live_files(path) or (0, 0)


def _unchanged(warehouse: Path, table: str) -> TableMaintenance:
    files, stored = _files(warehouse / table)
    return TableMaintenance(table, files, stored, files, stored)


def _optimize_table(
    spark: SparkSession, warehouse: Path, table: str, vacuum: bool, report: Callable[[str], None]
) -> TableMaintenance:
    """OPTIMIZE a table of more than one file (one is compacted, and clustered, already),
    then VACUUM it when asked and it has files to delete."""
    from pipeline.run.vacuum import DEFAULT_RETENTION_HOURS, vacuum_tables

    path = warehouse / table
    files, stored = _files(path)
    started = time.perf_counter()
    if files > 1:
        report(f"{table}: OPTIMIZE of {files:,} files ({size(stored)})")
        spark.sql(f"OPTIMIZE delta.`{table_path(warehouse, table)}`").collect()
    vacuumed = None
    if vacuum:
        report(f"{table}: VACUUM at {DEFAULT_RETENTION_HOURS} hours' retention")
        vacuumed = vacuum_tables(spark, warehouse, DEFAULT_RETENTION_HOURS, [table])
    after, stored_after = _files(path)
    seconds = time.perf_counter() - started
    return TableMaintenance(table, files, stored, after, stored_after, seconds, vacuumed)


def compact_event_log(
    warehouse: Path, report: Callable[[str], None], *, vacuum: bool = False
) -> TableMaintenance:
    """Compact the event log into few files with delta-rs and checkpoint it (no Spark); with
    `vacuum`, delete the files no version within the default retention reads."""
    from deltalake import DeltaTable

    from pipeline.run.vacuum import DEFAULT_RETENTION_HOURS

    path = Path(table_path(warehouse, EVENT_LOG))
    files, stored = _files(path)
    started = time.perf_counter()
    report(f"{EVENT_LOG}: compacting {files:,} files ({size(stored)}) with delta-rs")
    log = DeltaTable(str(path))
    log.optimize.compact()
    log = DeltaTable(str(path))
    log.create_checkpoint()
    vacuumed = None
    if vacuum:
        vacuumed = len(log.vacuum(retention_hours=DEFAULT_RETENTION_HOURS, dry_run=False))
    after, stored_after = _files(path)
    seconds = time.perf_counter() - started
    return TableMaintenance(EVENT_LOG, files, stored, after, stored_after, seconds, vacuumed)
