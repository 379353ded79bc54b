"""The BI queries the decay benchmark times: one per gold table, as a dashboard asks them.

Each filters on the table's liquid clustering column where it has one
(`pipeline.transforms.gold.CLUSTERING`: `event_date`, `session_date`, `page_sk`), which is
what lets `clickstream optimize` make it read few files; the small dimensions and aggregates
are read whole.
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame

from pipeline import table_names
from pipeline.storage.tables import table_path

__all__ = ["BI_QUERIES", "bi_query", "files_read"]

BI_QUERIES: dict[str, str] = {
    table_names.GOLD_FACT_EVENTS: (
        "SELECT event_type, count(*) AS events FROM {table} "
        "WHERE event_date = DATE'{day}' GROUP BY event_type"
    ),
    table_names.GOLD_SESSIONS: (
        "SELECT count(*) AS sessions, avg(duration_seconds) AS seconds FROM {table} "
        "WHERE session_date = DATE'{day}'"
    ),
    table_names.GOLD_DIM_PAGE: "SELECT count(*) AS pages FROM {table} WHERE page_sk IS NOT NULL",
    table_names.GOLD_DIM_USER: (
        "SELECT count(*) AS open_versions FROM {table} WHERE __END_AT IS NULL"
    ),
    table_names.GOLD_DIM_DEVICE: "SELECT count(*) AS devices FROM {table}",
    table_names.GOLD_DIM_DATE: "SELECT count(*) AS days FROM {table}",
    table_names.GOLD_DAILY_ACTIVE_USERS: ("SELECT * FROM {table} WHERE event_date = DATE'{day}'"),
    table_names.GOLD_FUNNEL_DAILY: "SELECT * FROM {table} WHERE event_date = DATE'{day}'",
}


def bi_query(table: str, warehouse: Path, day: str) -> str:
    """The BI query of `table` in `warehouse`, for the day `day` (`2026-11-01`)."""
    return BI_QUERIES[table].format(table=f"delta.`{table_path(warehouse, table)}`", day=day)


def files_read(frame: DataFrame) -> int:
    """Data files the scans of `frame` read, from Spark's scan metrics (after data skipping)."""
    frame.collect()
    plan = frame._jdf.queryExecution().executedPlan()
    if plan.nodeName().startswith("AdaptiveSparkPlan"):
        plan = plan.executedPlan()
    nodes, read = [plan], 0
    while nodes:
        node = nodes.pop()
        metrics = node.metrics()
        if metrics.contains("numFiles"):
            read += int(metrics.get("numFiles").get().value())
        children = node.children()
        nodes += [children.apply(index) for index in range(children.size())]
    return read
