"""VACUUM of the warehouse's tables: which tables have files to delete, and deleting them.

Delta keeps the files a newer version no longer reads for `delta.deletedFileRetentionDuration`
(7 days by default), for time travel and for readers still on an older version. An erasure
or a key rotation asks for less (`--purge-now`: none); `clickstream optimize --vacuum` for
the default.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from urllib.parse import unquote

from pyspark.sql import SparkSession

from pipeline.run import run_state
from pipeline.run.session import session_settings
from pipeline.run.streaming import in_parallel
from pipeline.storage import delta_log
from pipeline.storage.tables import table_path

__all__ = ["DEFAULT_RETENTION_HOURS", "tables_with_removed_files", "vacuum_tables"]

DEFAULT_RETENTION_HOURS = 7 * 24
"""Delta's default `delta.deletedFileRetentionDuration`: what a VACUUM without `purge_now`
keeps (the project never changes the tables' retention)."""


def _data_files(warehouse: Path, tables: list[str]) -> set[Path]:
    """The data and deletion-vector files of the tables (their logs left out)."""
    found: set[Path] = set()
    for table in tables:
        for root, dirs, files in os.walk(warehouse / table):
            dirs[:] = [d for d in dirs if d != delta_log.LOG_DIR]
            found |= {Path(root) / n for n in files if n.endswith((".parquet", ".bin"))}
    return found


def tables_with_removed_files(warehouse: Path, retention_hours: int = 0) -> list[str]:
    """The tables that a VACUUM at `retention_hours` would delete files of: data files on disk
    that their latest version no longer reads (an earlier erasure's, a rewrite's, an aborted
    write's), written before the retention began.

    A file is removed after it was written, so one written within the retention was removed
    within it too, and VACUUM keeps it: a table holding only such files needs no VACUUM (each
    costs seconds of Spark jobs even when it deletes nothing).
    """
    cutoff = time.time() - retention_hours * 3600
    found = []
    for table in run_state.existing_tables(warehouse):
        path = warehouse / table
        versions = delta_log.data_files_by_version(path)
        live = {unquote(f) for f, _vector in versions[max(versions)]} if versions else set()
        removed = [
            f
            for f in _data_files(warehouse, [table])
            if not versions or str(f.relative_to(path)) not in live
        ]
        if any(f.stat().st_mtime < cutoff for f in removed):
            found.append(table)
    return found


_RETENTION_CHECK_OFF = {"spark.databricks.delta.retentionDurationCheck.enabled": "false"}
"""Delta refuses a VACUUM below its retention unless its check is switched off: only for
that command, and only when asked for less than the default retention."""


def vacuum_tables(
    spark: SparkSession, warehouse: Path, retention_hours: int, tables: list[str]
) -> int:
    """VACUUM the tables, at once (`in_parallel`: each spends most of its second listing
    files and reading the log on the driver); returns the data files deleted."""
    before = _data_files(warehouse, tables)
    below_default = retention_hours < DEFAULT_RETENTION_HOURS
    with session_settings(spark, _RETENTION_CHECK_OFF if below_default else {}):
        in_parallel(
            spark,
            {
                table: functools.partial(
                    spark.sql,
                    f"VACUUM delta.`{table_path(warehouse, table)}` RETAIN {retention_hours} HOURS",
                )
                for table in tables
            },
        )
    return len(before - _data_files(warehouse, tables))
