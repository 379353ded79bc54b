"""The silver stage: new `bronze_events` rows -> silver, its quarantine and its late table.

One streaming query over the Delta table `bronze_events` (checkpoint `silver`). Each
micro-batch is split by `pipeline.silver.split_batch`: new events (deduplicated within the
watermark, pseudonymized, then under silver's rules) to `silver_events`; rows that cannot be
placed in time, and events a `drop` rule rejects, to `silver_quarantine`; valid events behind
the watermark that are no duplicates to `silver_late_events`. Everything is decided from the
micro-batch and the stream's own state: the newest event time seen (kept beside the
checkpoint, one small file per batch, so a replayed batch sees what it saw the first time)
and the placed events of the few days the batch's rows can be duplicates of
(`pipeline.silver.lookup_dates`), never a scan of the whole silver table.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from pipeline import delta_log, expectations, silver
from pipeline.config import parse_delay
from pipeline.delta_tables import create_table_if_absent
from pipeline.enforcement import Contract, dropped_any, write_checked
from pipeline.streaming import BatchReport, append_once, in_parallel, report_batch, run_stream
from pipeline.tables import (
    BRONZE_EVENTS,
    SILVER_EVENTS,
    SILVER_LATE_EVENTS,
    SILVER_QUARANTINE,
    SILVER_STREAM,
    checkpoint_path,
    read_table,
    table_exists,
    table_path,
)

__all__ = ["run_silver"]

NEWEST_DIR = "newest_event_time"
"""The folder, inside the silver checkpoint, of the newest event time after each batch."""
KEPT_STATES = 10


def run_silver(
    spark: SparkSession,
    *,
    warehouse: Path,
    keys: DataFrame,
    watermark_delay: str,
    contract: Contract | None = None,
    on_batch: BatchReport | None = None,
) -> None:
    """Move every `bronze_events` row not processed before into the silver tables.

    Raises:
        ExpectationFailedError: an event failed an `expect_or_fail` rule of `silver_events`;
            that micro-batch is not written, and the next run retries it.
    """
    delay = parse_delay(watermark_delay)
    checkpoint = checkpoint_path(warehouse, SILVER_STREAM)
    newest_dir = Path(checkpoint) / NEWEST_DIR

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        newest_before = _newest_before(newest_dir, batch_id)
        watermark = newest_before - delay if newest_before is not None else None
        summary = (
            silver.with_event_time(batch).agg(*silver.batch_summary(watermark=watermark)).first()
        )
        assert summary is not None  # an aggregation has one row
        placed = _placed(spark, warehouse, summary, delay, watermark, newest_before, batch_id)
        split = silver.split_batch(
            batch, keys=keys, placed=placed, watermark=watermark, delay=delay
        )
        metrics = _write(spark, warehouse, split, summary, batch_id, contract)
        newest = max(
            (t for t in (newest_before, silver.newest_event_time(summary)) if t is not None),
            default=None,
        )
        _record_newest(newest_dir, batch_id, newest)
        report_batch(on_batch, batch_id, int(summary["rows"]), {SILVER_EVENTS: metrics})

    run_stream(
        spark.readStream.format("delta")
        # An erasure (`clickstream forget`) or a key rotation deletes or rewrites rows: those
        # commits hold nothing new for the stream, which would otherwise stop at them.
        .option("skipChangeCommits", "true")
        .load(table_path(warehouse, BRONZE_EVENTS)),
        write_batch,
        checkpoint=checkpoint,
        flow=SILVER_EVENTS,
    )


def _placed(
    spark: SparkSession,
    warehouse: Path,
    summary: Row,
    delay: timedelta,
    watermark: datetime | None,
    newest_before: datetime | None,
    batch_id: int,
) -> DataFrame | None:
    """The placed events this batch's rows may be duplicates of; None when there are none.

    Read as the tables were before the batch: a batch replayed after a crash must not take
    the rows it wrote itself the first time for earlier ones.
    """
    if not summary["dates"]:
        return None
    silver_rows = _before_batch(spark, warehouse, SILVER_EVENTS, batch_id)
    if silver_rows is None:
        return None
    quarantine = _before_batch(spark, warehouse, SILVER_QUARANTINE, batch_id)
    if quarantine is not None and expectations.QUARANTINE_RULES_COLUMN not in quarantine.columns:
        quarantine = None
    dates = silver.lookup_dates(
        summary["dates"], delay=delay, watermark=watermark, newest=newest_before
    )
    placed = silver.placed_events(silver_rows, quarantine)
    return placed.where(F.col("event_date").isin(dates))


def _before_batch(
    spark: SparkSession, warehouse: Path, table: str, batch_id: int
) -> DataFrame | None:
    """`table` as it was before `batch_id` wrote to it; None when it did not exist then."""
    if not table_exists(warehouse, table):
        return None
    version = delta_log.version_before(warehouse / table, SILVER_STREAM, batch_id)
    if version is None:
        return read_table(spark, warehouse, table)
    if version < 0:
        return None
    return (
        spark.read.format("delta").option("versionAsOf", version).load(table_path(warehouse, table))
    )


def _write(
    spark: SparkSession,
    warehouse: Path,
    split: silver.SilverBatch,
    summary: Row,
    batch_id: int,
    contract: Contract | None,
) -> list[expectations.ExpectationMetric]:
    """Write one batch: silver first (its rules may stop the batch), then the rest at once."""
    silver_path = table_path(warehouse, SILVER_EVENTS)
    quarantine = [split.unplaceable] if summary["unplaceable"] else []
    writes: dict[str, Callable[[], object]] = {}
    metrics: list[expectations.ExpectationMetric] = []
    if contract is None:
        append_once(split.events, silver_path, query=SILVER_STREAM, batch_id=batch_id)
    else:
        evaluated = expectations.evaluate(split.events, contract.rules)
        metrics = write_checked(
            evaluated,
            lambda kept: append_once(
                expectations.without_evaluation(kept, contract.rules),
                silver_path,
                query=SILVER_STREAM,
                batch_id=batch_id,
            ),
            contract,
        )
        if dropped_any(metrics):
            quarantine.append(expectations.dropped_rows(evaluated, contract.rules))
    if quarantine:
        rows = quarantine[0] if len(quarantine) == 1 else quarantine[0].unionByName(quarantine[1])
        writes[SILVER_QUARANTINE] = functools.partial(
            append_once,
            rows,
            table_path(warehouse, SILVER_QUARANTINE),
            query=SILVER_STREAM,
            batch_id=batch_id,
            merge_schema=True,
        )
    if summary["behind"]:
        writes[SILVER_LATE_EVENTS] = functools.partial(
            append_once,
            split.late,
            table_path(warehouse, SILVER_LATE_EVENTS),
            query=SILVER_STREAM,
            batch_id=batch_id,
        )
    # Both tables exist from the first run on, empty until a row needs them.
    for table, shape, written in (
        (SILVER_QUARANTINE, split.unplaceable, bool(quarantine)),
        (SILVER_LATE_EVENTS, split.late, bool(summary["behind"])),
    ):
        if not written and not table_exists(warehouse, table):
            writes[table] = functools.partial(
                create_table_if_absent, spark, table_path(warehouse, table), shape.schema
            )
    in_parallel(spark, writes)
    return metrics


def _newest_before(directory: Path, batch_id: int) -> datetime | None:
    """The newest event time seen before `batch_id`, as recorded after the batch before it."""
    earlier = [int(p.name) for p in directory.glob("[0-9]*") if int(p.name) < batch_id]
    if not earlier:
        return None
    value = json.loads((directory / str(max(earlier))).read_text(encoding="utf-8"))["newest"]
    return datetime.fromisoformat(value) if value else None


def _record_newest(directory: Path, batch_id: int, newest: datetime | None) -> None:
    """Record the newest event time after `batch_id`; keep the last `KEPT_STATES` records."""
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".{batch_id}.partial"
    partial.write_text(
        json.dumps({"newest": newest.isoformat() if newest else None}), encoding="utf-8"
    )
    partial.replace(directory / str(batch_id))
    for old in directory.glob("[0-9]*"):
        if int(old.name) <= batch_id - KEPT_STATES:
            old.unlink(missing_ok=True)
