"""Where each table of the warehouse lives, and how to read and count it.

Tables are Delta tables at `<warehouse>/<table>`; streaming checkpoints live under
`<warehouse>/_checkpoints/<query>`. Row counts and versions come from the Delta log
(`pipeline.storage.delta_log`), never from a scan, so this module imports no Spark at load
time: the runner asks it whether there is anything to do before it starts a JVM.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.storage import delta_log
from pipeline.table_names import CHECKPOINTS_DIR, TABLES

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "checkpoint_path",
    "count_rows",
    "read_table",
    "row_counts",
    "table_exists",
    "table_path",
]


def table_path(warehouse: Path, table: str) -> str:
    """Where `table` lives: `<warehouse>/<table>`."""
    return str(warehouse / table)


def checkpoint_path(warehouse: Path, query: str) -> str:
    """Where the streaming query `query` keeps its checkpoint."""
    return str(warehouse / CHECKPOINTS_DIR / query)


def table_exists(warehouse: Path, table: str) -> bool:
    """Whether the warehouse holds `table` (a committed Delta version), read from its log."""
    return delta_log.table_version(warehouse / table) is not None


def read_table(spark: SparkSession, warehouse: Path, table: str) -> DataFrame:
    """Read a Delta table of the warehouse."""
    return spark.read.format("delta").load(table_path(warehouse, table))


def count_rows(spark: SparkSession | None, warehouse: Path, table: str) -> int:
    """Rows in a warehouse table, 0 when it does not exist yet.

    From the Delta log's statistics; only a table whose log lacks them is counted by Spark
    (which then needs `spark`).
    """
    rows = delta_log.row_count(warehouse / table)
    if rows is not None:
        return rows
    if spark is None:
        raise ValueError(f"the Delta log of {table} has no row counts, and no Spark was given")
    return read_table(spark, warehouse, table).count()


def row_counts(spark: SparkSession | None, warehouse: Path) -> dict[str, int]:
    """Rows in every table of the catalogue (see `count_rows`)."""
    return {table: count_rows(spark, warehouse, table) for table in TABLES}
