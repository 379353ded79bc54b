"""Invariants a pipeline run must keep, each returning its verdict with the evidence."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from pipeline import table_names
from pipeline.observe import event_log
from pipeline.observe.event_log import details
from pipeline.observe.flows import FLOWS
from pipeline.storage import delta_log, tables
from pipeline.transforms.expectations import QUARANTINE_RULES_COLUMN
from pipeline.transforms.silver import with_event_time
from scenarios.faults.model import count_records

__all__ = [
    "Verdict",
    "dropped_duplicates",
    "event_log_reconciles",
    "ledger",
    "no_clear_pii",
    "non_blank_lines",
    "quarantine_samples",
    "table_counts",
    "unique_event_ids",
]


@dataclass(frozen=True)
class Verdict:
    """The outcome of one invariant: its name, whether it held, and the figures behind it."""

    name: str
    passed: bool
    evidence: str


def non_blank_lines(files: Iterable[Path]) -> int:
    """Count the input records over all files, as bronze reads them (`count_records`)."""
    return sum(count_records(path.read_bytes()) for path in files)


def ledger(
    spark: SparkSession, warehouse: Path, *, input_records: int, duplicates: int
) -> list[Verdict]:
    """Conservation: input = bronze + quarantine; bronze = silver + dropped + late + quarantine.

    Rows dropped as duplicates are the only rows not stored elsewhere, so they are counted
    directly (`dropped_duplicates`: bronze rows per placed `event_id` beyond the first) rather
    than by difference.
    An event is placed once: in silver, or in the silver quarantine when it failed a drop rule
    (deduplication runs before the rules, so the copies of a quarantined event are
    duplicates, like the copies of a kept one).
    """
    counts = {table: tables.count_rows(spark, warehouse, table) for table in table_names.TABLES}
    bronze_total = counts[table_names.BRONZE_EVENTS] + counts[table_names.BRONZE_QUARANTINE]
    accounted = (
        counts[table_names.SILVER_EVENTS]
        + duplicates
        + counts[table_names.SILVER_LATE_EVENTS]
        + counts[table_names.SILVER_QUARANTINE]
    )
    return [
        Verdict(
            "input records = bronze_events + bronze_quarantine",
            input_records == bronze_total,
            f"{input_records:,} input = {counts[table_names.BRONZE_EVENTS]:,} bronze + "
            f"{counts[table_names.BRONZE_QUARANTINE]:,} quarantined ({bronze_total:,})",
        ),
        Verdict(
            "bronze_events = silver + duplicates + late + silver_quarantine",
            counts[table_names.BRONZE_EVENTS] == accounted,
            f"{counts[table_names.BRONZE_EVENTS]:,} bronze = "
            f"{counts[table_names.SILVER_EVENTS]:,} silver + "
            f"{duplicates:,} duplicates + {counts[table_names.SILVER_LATE_EVENTS]:,} late + "
            f"{counts[table_names.SILVER_QUARANTINE]:,} quarantined ({accounted:,})",
        ),
    ]


def dropped_duplicates(spark: SparkSession, warehouse: Path) -> int:
    """Bronze rows dropped as duplicates: placeable rows of a kept `event_id` past the first.

    An id is "kept" when silver holds it or a contract rule quarantined it: copies of a
    quarantined row were dropped by deduplication before the rules ran. A copy of a kept
    event whose event time is further than the watermark delay from the kept one's, arriving
    behind the watermark, is late (it is in `silver_late_events`), not a duplicate.
    """
    if tables.count_rows(spark, warehouse, table_names.BRONZE_EVENTS) == 0:
        return 0
    bronze = with_event_time(tables.read_table(spark, warehouse, table_names.BRONZE_EVENTS))
    placed = bronze.where(F.col("event_time").isNotNull())
    kept_ids = []
    if tables.count_rows(spark, warehouse, table_names.SILVER_EVENTS):
        kept_ids.append(
            tables.read_table(spark, warehouse, table_names.SILVER_EVENTS).select("event_id")
        )
    if tables.count_rows(spark, warehouse, table_names.SILVER_QUARANTINE):
        quarantine = tables.read_table(spark, warehouse, table_names.SILVER_QUARANTINE)
        kept_ids.append(quarantine.where(F.size(QUARANTINE_RULES_COLUMN) > 0).select("event_id"))
    if not kept_ids:
        return 0
    kept = functools.reduce(DataFrame.unionByName, kept_ids)
    parts = {"placed": placed.join(kept, "event_id", "left_semi"), "kept": kept}
    if tables.count_rows(spark, warehouse, table_names.SILVER_LATE_EVENTS):
        late = tables.read_table(spark, warehouse, table_names.SILVER_LATE_EVENTS)
        parts["late"] = late.join(kept, "event_id", "left_semi")
    counted = functools.reduce(
        DataFrame.unionByName,
        [part.select(F.lit(name).alias("part")) for name, part in parts.items()],
    )
    counts = {row.part: int(row["count"]) for row in counted.groupBy("part").count().collect()}
    return counts.get("placed", 0) - counts.get("kept", 0) - counts.get("late", 0)


def unique_event_ids(spark: SparkSession, warehouse: Path) -> Verdict:
    """No `event_id` appears twice in silver."""
    if tables.count_rows(spark, warehouse, table_names.SILVER_EVENTS) == 0:
        return Verdict("no duplicate event_id in silver_events", True, "silver_events is empty")
    silver = tables.read_table(spark, warehouse, table_names.SILVER_EVENTS)
    repeated = silver.groupBy("event_id").count().where(F.col("count") > 1)
    examples = [row.event_id for row in repeated.limit(3).collect()]
    return Verdict(
        "no duplicate event_id in silver_events",
        not examples,
        f"repeated ids: {examples}" if examples else "every event_id appears once",
    )


def _string_values(frame: DataFrame, table: str) -> DataFrame:
    """Every string cell of `frame`, as (`table`, `value`)."""
    columns = [f.name for f in frame.schema.fields if isinstance(f.dataType, StringType)]
    return frame.select(
        F.lit(table).alias("table"),
        F.explode(F.array(*[F.col(c) for c in columns])).alias("value"),
    )


def _masked(value: str) -> str:
    return value[:2] + "*" * max(len(value) - 2, 0)


def no_clear_pii(
    spark: SparkSession, warehouse: Path, table_names: Iterable[str], pii_values: Iterable[str]
) -> Verdict:
    """No input PII value, nor its unkeyed SHA-256, is any string value of `tables`.

    An unkeyed hash of an e-mail is reversible by a dictionary attack, so finding one means
    the pseudonymization lost its key.
    """
    clear = set(pii_values)
    unkeyed = {hashlib.sha256(value.encode()).hexdigest(): value for value in clear}
    pii = spark.createDataFrame([(value,) for value in clear | set(unkeyed)], "value string")
    values = [
        _string_values(tables.read_table(spark, warehouse, table), table)
        for table in table_names
        if tables.count_rows(spark, warehouse, table) > 0
    ]
    found: list[Row] = []
    if values:  # one Spark job for every table
        every_value = functools.reduce(DataFrame.unionByName, values)
        found = every_value.join(pii, "value", "left_semi").limit(10).collect()
    leaks = [
        f"{row.table}: unkeyed SHA-256 of {_masked(unkeyed[row.value])}"
        if row.value in unkeyed
        else f"{row.table}: {_masked(row.value)}"
        for row in found
    ]
    return Verdict(
        "no clear PII in silver or gold tables",
        not leaks,
        f"found: {leaks}"
        if leaks
        else "no input email, name, IP or user id, nor its unkeyed SHA-256, in any string column",
    )


def table_counts(spark: SparkSession, warehouse: Path) -> dict[str, int]:
    """Rows per pipeline table, for the report's ledger."""
    return {table: tables.count_rows(spark, warehouse, table) for table in table_names.TABLES}


def quarantine_samples(
    spark: SparkSession, warehouse: Path, *, per_table: int = 3
) -> tuple[dict[str, object], ...]:
    """A few quarantined rows of each quarantine table (silver ones are pseudonymized).

    A raw line can hold PII in clear, so the report shows its shape only: every letter and
    digit replaced by `x`, cut to 120 characters, with its length.
    """
    shape = F.substring(F.regexp_replace("raw_line", r"[\p{L}\p{N}]", "x"), 1, 120)
    samples: list[dict[str, object]] = []
    for table, columns in (
        (
            table_names.BRONZE_QUARANTINE,
            (
                "reason",
                shape.alias("raw_line_shape"),
                F.length("raw_line").alias("raw_line_chars"),
                "_source_file",
            ),
        ),
        (table_names.SILVER_QUARANTINE, ("reason", "event_id", "event_type", "_source_file")),
    ):
        if tables.count_rows(spark, warehouse, table) == 0:
            continue
        rows = tables.read_table(spark, warehouse, table).select(*columns).limit(per_table)
        samples += [{"table": table, **row.asDict()} for row in rows.collect()]
    return tuple(samples)


def event_log_reconciles(warehouse: Path, *, input_records: int) -> list[Verdict]:
    """The event log against the Delta logs and the ledger (plain Python, no Spark).

    * Each micro-batch event of a flow whose commits carry batch markers reports the rows
      of that batch's commit (`operationMetrics.numOutputRows`), and every marked commit
      has its one event: nothing counted twice, nothing committed unreported.
    * A batch's expectations add up: passed + failed = the rows its rules saw = the rows
      written + the rows drop rules kept out.
    * Over every update, the rows written to `bronze_events` and `bronze_quarantine` are
      the input records of the ledger.
    """
    events = [
        e
        for e in event_log.read_events(warehouse)
        if e["event_type"] == "flow_progress" and e["origin"]["batch_id"] is not None
    ]
    mismatches: list[str] = []
    sums: dict[str, int] = {}
    arithmetic: list[str] = []
    for flow in (f for f in FLOWS if f.marker is not None):
        logged: dict[int, list[int]] = {}
        for event in (e for e in events if e["origin"]["flow_name"] == flow.name):
            rows = details(event).get("metrics", {}).get("num_output_rows", 0)
            logged.setdefault(event["origin"]["batch_id"], []).append(int(rows))
        committed = {
            batch: rows
            for (writer, batch), rows in delta_log.marked_output_rows(
                warehouse / flow.output
            ).items()
            if writer == flow.marker
        }
        for batch in sorted(set(logged) | set(committed)):
            found, expected = logged.get(batch, []), committed.get(batch, [0])
            if len(found) != 1 or len(expected) != 1 or found[0] != expected[0]:
                mismatches.append(f"{flow.name} batch {batch}: log {found}, commits {expected}")
        sums[flow.name] = sum(sum(rows) for rows in logged.values())
    for event in events:
        body = details(event)
        quality = body.get("data_quality")
        written = body.get("metrics", {}).get("num_output_rows")
        if not quality or written is None:
            continue
        seen = {e["passed_records"] + e["failed_records"] for e in quality["expectations"]}
        if seen != {written + quality["dropped_records"]}:
            arithmetic.append(
                f"{event['origin']['flow_name']} batch {event['origin']['batch_id']}: rules saw "
                f"{sorted(seen)}, written {written} + dropped {quality['dropped_records']}"
            )
    bronze = sums.get(table_names.BRONZE_EVENTS, 0) + sums.get(table_names.BRONZE_QUARANTINE, 0)
    return [
        Verdict(
            "event log: each micro-batch's rows written = its Delta commit's operationMetrics",
            not mismatches and bool(events),
            "; ".join(mismatches[:5])
            or f"{len(events):,} micro-batch events, each matching its commit",
        ),
        Verdict(
            "event log: passed + failed of each rule = rows written + rows dropped",
            not arithmetic,
            "; ".join(arithmetic[:5]) or "every batch with rules adds up",
        ),
        Verdict(
            "event log: rows written to bronze over all updates = input records of the ledger",
            bronze == input_records,
            f"{bronze:,} written (bronze_events {sums.get(table_names.BRONZE_EVENTS, 0):,} + "
            f"bronze_quarantine {sums.get(table_names.BRONZE_QUARANTINE, 0):,}), "
            f"{input_records:,} input records",
        ),
    ]
