"""Bronze's part of an `events` micro-batch: landing lines -> `bronze_events`, `bronze_quarantine`.

`check_bronze` parses the batch's lines once (`pipeline.transforms.bronze.parse_lines`) into
`bronze_events` rows under bronze's rules, and keeps them in memory (a local checkpoint: a
Delta write does not read a cached frame, it computes it again): silver takes them from
there, while `write_bronze` writes them. The lines that are not JSON objects, and the objects
a `drop` rule rejects, go to `bronze_quarantine` with their raw text; the quarantine is
written only when the batch has such lines (the parse counts them as it goes).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from pipeline.run.enforcement import Contract, checked_rows, dropped_any
from pipeline.run.streaming import in_parallel
from pipeline.storage.delta_tables import append_once, create_table_if_absent
from pipeline.storage.tables import table_exists, table_path
from pipeline.table_names import BRONZE_EVENTS, BRONZE_QUARANTINE, EVENTS_STREAM
from pipeline.transforms import bronze, expectations

__all__ = ["BRONZE_HIDDEN_COLUMNS", "BronzeBatch", "check_bronze", "write_bronze"]

BRONZE_HIDDEN_COLUMNS: tuple[str, ...] = ("user", "_rescued_data", "_raw")
"""Bronze columns that may hold PII in clear: never shown in error samples."""


@dataclass(frozen=True)
class BronzeBatch:
    """What bronze made of a micro-batch, before it is written.

    Attributes:
        rows: its `bronze_events` rows, in memory: what `write_bronze` writes, and silver's
            input.
        parsed: its lines parsed (`parse_lines`, not kept: the quarantine computes its rows
            from it when the batch has any).
        lines: the non-blank lines it held.
        not_objects: how many of them are not JSON objects.
        ingested_at: the batch's ingestion time, as a column.
        metrics: the expectation metrics of `bronze_events`' rules.
    """

    rows: DataFrame
    parsed: DataFrame
    lines: int
    not_objects: int
    ingested_at: Column
    metrics: list[expectations.ExpectationMetric]


def check_bronze(
    lines: DataFrame, *, ingested_at: datetime, contract: Contract | None = None
) -> BronzeBatch:
    """Parse micro-batch `lines` (`pipeline.transforms.bronze.event_lines` columns) under bronze's
    rules,
    in one pass, and keep its `bronze_events` rows in memory.

    `ingested_at` is the micro-batch's own time, the same when it is replayed, so that a
    replay makes the same rows.

    Raises:
        ExpectationFailedError: a line failed an `expect_or_fail` rule of `bronze_events`;
            nothing of the batch is written.
    """
    ingested = F.lit(ingested_at)
    parsed = bronze.parse_lines(lines)
    # Counted while the rows are made: no pass over the batch of its own for the quarantine.
    counting = Observation(f"bronze:{uuid.uuid4().hex}")
    watched = parsed.observe(
        counting,
        F.count_if(F.col("_quarantine_reason").isNotNull()).alias("not_objects"),
        F.count(F.lit(1)).alias("lines"),
    )
    objects = watched.where(F.col("_quarantine_reason").isNull())
    metrics: list[expectations.ExpectationMetric] = []
    if contract is None:
        rows = bronze.bronze_rows(objects, ingested_at=ingested).localCheckpoint()
    else:
        kept, _, metrics = checked_rows(
            expectations.evaluate(objects, contract.rules),
            contract,
            hidden_columns=BRONZE_HIDDEN_COLUMNS,
        )
        rows = bronze.bronze_rows(kept, ingested_at=ingested)
    counts = counting.get
    return BronzeBatch(
        rows, parsed, int(counts["lines"]), int(counts["not_objects"]), ingested, metrics
    )


def write_bronze(
    spark: SparkSession,
    warehouse: Path,
    batch: BronzeBatch,
    *,
    batch_id: int,
    contract: Contract | None = None,
) -> None:
    """Write micro-batch `batch_id` to the bronze tables, once: a replayed batch skips what
    it committed before."""
    writes: dict[str, Callable[[], object]] = {
        BRONZE_EVENTS: lambda: append_once(
            batch.rows, table_path(warehouse, BRONZE_EVENTS), query=EVENTS_STREAM, batch_id=batch_id
        )
    }
    quarantine = _quarantine(batch, contract)
    if quarantine is not None:
        writes[BRONZE_QUARANTINE] = lambda: append_once(
            quarantine,
            table_path(warehouse, BRONZE_QUARANTINE),
            query=EVENTS_STREAM,
            batch_id=batch_id,
            merge_schema=True,
        )
    elif not table_exists(warehouse, BRONZE_QUARANTINE):
        # The quarantine exists from the first run on, empty until a line needs it.
        empty = bronze.quarantine_rows(batch.parsed, ingested_at=batch.ingested_at)
        writes[BRONZE_QUARANTINE] = lambda: create_table_if_absent(
            spark, table_path(warehouse, BRONZE_QUARANTINE), empty.schema
        )
    in_parallel(spark, writes)


def _quarantine(batch: BronzeBatch, contract: Contract | None) -> DataFrame | None:
    """The batch's `bronze_quarantine` rows, or None when it has none."""
    parts = []
    if batch.not_objects:
        parts.append(bronze.quarantine_rows(batch.parsed, ingested_at=batch.ingested_at))
    if contract is not None and dropped_any(batch.metrics):
        objects = batch.parsed.where(F.col("_quarantine_reason").isNull())
        evaluated = expectations.evaluate(objects, contract.rules)
        parts.append(
            bronze.rule_quarantine_rows(
                expectations.dropped_rows(evaluated), ingested_at=batch.ingested_at
            )
        )
    if not parts:
        return None
    quarantine = parts[0]
    for part in parts[1:]:
        quarantine = quarantine.unionByName(part)
    return quarantine
