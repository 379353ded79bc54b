"""Invariants a pipeline run must keep, each returning its verdict with the evidence."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from pipeline import runner
from pipeline.expectations import QUARANTINE_RULES_COLUMN
from pipeline.silver import with_event_time


@dataclass(frozen=True)
class Verdict:
    """The outcome of one invariant: its name, whether it held, and the figures behind it."""

    name: str
    passed: bool
    evidence: str


def non_blank_lines(files: Iterable[Path]) -> int:
    """Count the input records: lines with anything but whitespace, over all files."""
    return sum(1 for path in files for line in path.read_bytes().splitlines() if line.strip())


def ledger(spark: SparkSession, warehouse: Path, *, input_records: int) -> list[Verdict]:
    """Conservation: input = bronze + quarantine; bronze = silver + dropped + late + quarantine.

    Rows dropped as duplicates are the only rows not stored elsewhere, so they are counted
    directly (bronze rows per placed `event_id` beyond the first) rather than by difference.
    An event is placed once: in silver, or in the silver quarantine when it failed a drop rule
    (deduplication runs before the rules, so the copies of a quarantined event are
    duplicates, like the copies of a kept one).
    """
    counts = {table: runner.count_rows(spark, warehouse, table) for table in runner.TABLES}
    bronze_total = counts[runner.BRONZE_EVENTS] + counts[runner.BRONZE_QUARANTINE]
    bronze = with_event_time(runner.read_table(spark, warehouse, runner.BRONZE_EVENTS))
    placed = bronze.where(F.col("event_time").isNotNull())
    silver_ids = runner.read_table(spark, warehouse, runner.SILVER_EVENTS).select("event_id")
    quarantine = runner.read_table(spark, warehouse, runner.SILVER_QUARANTINE)
    rule_ids = quarantine.where(F.size(QUARANTINE_RULES_COLUMN) > 0).select("event_id")
    kept = counts[runner.SILVER_EVENTS] + rule_ids.count()
    # Rows of a placed event_id beyond the one silver (or the quarantine) holds were dropped.
    duplicates = (
        placed.join(silver_ids.unionByName(rule_ids), "event_id", "left_semi").count() - kept
    )
    accounted = (
        counts[runner.SILVER_EVENTS]
        + duplicates
        + counts[runner.SILVER_LATE_EVENTS]
        + counts[runner.SILVER_QUARANTINE]
    )
    return [
        Verdict(
            "input records = bronze_events + bronze_quarantine",
            input_records == bronze_total,
            f"{input_records:,} input = {counts[runner.BRONZE_EVENTS]:,} bronze + "
            f"{counts[runner.BRONZE_QUARANTINE]:,} quarantined ({bronze_total:,})",
        ),
        Verdict(
            "bronze_events = silver + duplicates + late + silver_quarantine",
            counts[runner.BRONZE_EVENTS] == accounted,
            f"{counts[runner.BRONZE_EVENTS]:,} bronze = {counts[runner.SILVER_EVENTS]:,} silver + "
            f"{duplicates:,} duplicates + {counts[runner.SILVER_LATE_EVENTS]:,} late + "
            f"{counts[runner.SILVER_QUARANTINE]:,} quarantined ({accounted:,})",
        ),
    ]


def unique_event_ids(spark: SparkSession, warehouse: Path) -> Verdict:
    """No `event_id` appears twice in silver."""
    silver = runner.read_table(spark, warehouse, runner.SILVER_EVENTS)
    repeated = silver.groupBy("event_id").count().where(F.col("count") > 1)
    examples = [row.event_id for row in repeated.limit(3).collect()]
    return Verdict(
        "no duplicate event_id in silver_events",
        not examples,
        f"repeated ids: {examples}" if examples else "every event_id appears once",
    )


def _string_values(table: DataFrame) -> DataFrame:
    columns = [f.name for f in table.schema.fields if isinstance(f.dataType, StringType)]
    return table.select(F.explode(F.array(*[F.col(c) for c in columns])).alias("value"))


def _masked(value: str) -> str:
    return value[:2] + "*" * max(len(value) - 2, 0)


def no_clear_pii(
    spark: SparkSession, warehouse: Path, tables: Iterable[str], pii_values: Iterable[str]
) -> Verdict:
    """No input PII value (email, name, IP, user id) appears as any string value of `tables`."""
    pii = spark.createDataFrame([(value,) for value in set(pii_values)], "value string")
    leaks: list[str] = []
    for table in tables:
        values = _string_values(runner.read_table(spark, warehouse, table))
        found = values.join(pii, "value", "left_semi").limit(3).collect()
        leaks += [f"{table}: {_masked(row.value)}" for row in found]
    return Verdict(
        "no clear PII in silver tables",
        not leaks,
        f"found: {leaks}" if leaks else "no input email, name, IP or user id in any string column",
    )
