"""The bronze stage: new landing files -> `bronze_events` and `bronze_quarantine`.

One streaming query over the text files of `<landing>/events` (checkpoint `bronze`). Each
micro-batch is parsed once (`pipeline.bronze.parse_lines`) and written to `bronze_events`;
the lines that are not JSON objects, and the objects a `drop` rule rejects, go to
`bronze_quarantine` with their raw text. The quarantine is written only when the batch has
such lines: the bronze write counts them as it goes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from pipeline import bronze, expectations
from pipeline.delta_tables import create_table_if_absent
from pipeline.enforcement import Contract, dropped_any, write_checked
from pipeline.streaming import BatchReport, append_once, in_parallel, report_batch, run_stream
from pipeline.tables import (
    BRONZE_EVENTS,
    BRONZE_QUARANTINE,
    BRONZE_STREAM,
    EVENTS_DIR,
    checkpoint_path,
    table_exists,
    table_path,
)

__all__ = ["BRONZE_HIDDEN_COLUMNS", "run_bronze"]

BRONZE_HIDDEN_COLUMNS: tuple[str, ...] = ("user", "_rescued_data", "_raw")
"""Bronze columns that may hold PII in clear: never shown in error samples."""


def run_bronze(
    spark: SparkSession,
    *,
    landing: Path,
    warehouse: Path,
    max_files_per_trigger: int,
    contract: Contract | None = None,
    on_batch: BatchReport | None = None,
) -> None:
    """Parse every landing file not read before into the bronze tables.

    Raises:
        ExpectationFailedError: a line failed an `expect_or_fail` rule of `bronze_events`;
            that micro-batch is not written, and the next run retries it.
    """
    lines = bronze.event_lines(
        spark, str(landing / EVENTS_DIR), max_files_per_trigger=max_files_per_trigger
    )

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        lines, metrics = _write_batch(
            spark, warehouse, bronze.parse_lines(batch), batch_id, contract
        )
        report_batch(on_batch, batch_id, lines, {BRONZE_EVENTS: metrics})

    run_stream(
        lines, write_batch, checkpoint=checkpoint_path(warehouse, BRONZE_STREAM), flow=BRONZE_EVENTS
    )


def _write_batch(
    spark: SparkSession,
    warehouse: Path,
    parsed: DataFrame,
    batch_id: int,
    contract: Contract | None,
) -> tuple[int, list[expectations.ExpectationMetric]]:
    """Write one batch; return the lines it held and its expectation metrics."""
    ingested_at = F.current_timestamp()
    # Counted while bronze is written: no pass over the batch of its own for the quarantine.
    counting = Observation(f"bronze:{uuid.uuid4().hex}")
    watched = parsed.observe(
        counting,
        F.count_if(F.col("_quarantine_reason").isNotNull()).alias("not_objects"),
        F.count(F.lit(1)).alias("lines"),
    )
    objects = watched.where(F.col("_quarantine_reason").isNull())
    events_path = table_path(warehouse, BRONZE_EVENTS)
    wrote: list[bool] = []

    def write_events(rows: DataFrame) -> bool:
        wrote.append(
            append_once(
                bronze.bronze_rows(rows, ingested_at=ingested_at),
                events_path,
                query=BRONZE_STREAM,
                batch_id=batch_id,
            )
        )
        return wrote[-1]

    metrics: list[expectations.ExpectationMetric] = []
    if contract is None:
        write_events(objects)
    else:
        metrics = write_checked(
            expectations.evaluate(objects, contract.rules),
            write_events,
            contract,
            hidden_columns=BRONZE_HIDDEN_COLUMNS,
        )
    # A replayed batch whose bronze write was skipped never counted: write its quarantine
    # (or skip it too, if that was committed as well) without knowing its size.
    not_objects = int(counting.get["not_objects"]) if wrote[-1] else None
    quarantine = _quarantine(parsed, ingested_at, not_objects, contract, metrics)
    writes: dict[str, Callable[[], object]] = {}
    if quarantine is None and not table_exists(warehouse, BRONZE_QUARANTINE):
        # The quarantine exists from the first run on, empty until a line needs it.
        empty = bronze.quarantine_rows(parsed, ingested_at=ingested_at)
        writes[BRONZE_QUARANTINE] = lambda: create_table_if_absent(
            spark, table_path(warehouse, BRONZE_QUARANTINE), empty.schema
        )
    if quarantine is not None:
        writes[BRONZE_QUARANTINE] = lambda: append_once(
            quarantine,
            table_path(warehouse, BRONZE_QUARANTINE),
            query=BRONZE_STREAM,
            batch_id=batch_id,
            merge_schema=True,
        )
    in_parallel(spark, writes)
    # A replay whose bronze write was skipped never ran the counting pass: count the lines.
    return (int(counting.get["lines"]) if wrote[-1] else parsed.count()), metrics


def _quarantine(
    parsed: DataFrame,
    ingested_at: Column,
    not_objects: int | None,
    contract: Contract | None,
    metrics: list[expectations.ExpectationMetric],
) -> DataFrame | None:
    """The batch's `bronze_quarantine` rows, or None when it has none.

    `not_objects` is None when the bronze write was skipped as already committed (a replay):
    then the quarantine is written (or skipped, if committed too) without knowing its size.
    """
    parts = []
    if not_objects is None or not_objects > 0:
        parts.append(bronze.quarantine_rows(parsed, ingested_at=ingested_at))
    if contract is not None and dropped_any(metrics):
        objects = parsed.where(F.col("_quarantine_reason").isNull())
        evaluated = expectations.evaluate(objects, contract.rules)
        parts.append(
            bronze.rule_quarantine_rows(
                expectations.dropped_rows(evaluated), ingested_at=ingested_at
            )
        )
    if not parts:
        return None
    quarantine = parts[0]
    for part in parts[1:]:
        quarantine = quarantine.unionByName(part)
    return quarantine
