"""Silver's part of an `events` micro-batch: its bronze rows -> silver, its quarantine, late table.

The batch's `bronze_events` rows are split by `pipeline.transforms.silver.split_batch`: new events
(deduplicated within the watermark, pseudonymized, then under silver's rules) to
`silver_events`; rows that cannot be placed in time, and events a `drop` rule rejects, to
`silver_quarantine`; valid events behind the watermark that are no duplicates to
`silver_late_events`. Everything is decided from the micro-batch and the stream's own state:
the newest event time seen (kept beside the checkpoint, one small file per batch, so a
replayed batch sees what it saw the first time) and the placed events of the few days the
batch's rows can be duplicates of (`pipeline.transforms.silver.lookup_dates`), never a scan of the
whole
silver table. The silver rows written are kept in memory (a local checkpoint) as gold's input.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from pipeline.run.enforcement import Contract, checked_rows, dropped_any, in_memory
from pipeline.run.streaming import in_parallel
from pipeline.storage import delta_log
from pipeline.storage.delta_tables import append_once, create_table_if_absent
from pipeline.storage.tables import table_exists, table_path
from pipeline.table_names import EVENTS_STREAM, SILVER_EVENTS, SILVER_LATE_EVENTS, SILVER_QUARANTINE
from pipeline.transforms import expectations, silver

__all__ = ["SilverBatch", "check_silver", "write_silver"]

KEPT_STATES = 10


@dataclass(frozen=True)
class SilverBatch:
    """What silver made of a micro-batch, before it is written.

    Attributes:
        events: its new events under silver's rules, in memory: what `write_silver` writes
            to `silver_events`, and gold's input; None when the batch had no valid event.
        new_events: how many.
        late: its events behind the watermark (no duplicates); None when it has none.
        quarantine: its rows that cannot be placed in time, and those a `drop` rule
            rejected; None when it has none.
        shapes: what its parts look like, for the tables a first batch must create empty.
        read: the bronze rows it read.
        dates: the event dates of its new events.
        newest: the newest event time seen once the batch is done.
        metrics: the expectation metrics of `silver_events`' rules.
    """

    events: DataFrame | None
    new_events: int
    late: DataFrame | None
    quarantine: DataFrame | None
    shapes: silver.SilverBatch
    read: int
    dates: list[date]
    newest: datetime | None
    metrics: list[expectations.ExpectationMetric]


def check_silver(
    spark: SparkSession,
    warehouse: Path,
    rows: DataFrame,
    *,
    batch_id: int,
    keys: DataFrame,
    delay: timedelta,
    state: Path,
    contract: Contract | None = None,
) -> SilverBatch:
    """Split micro-batch `batch_id`'s bronze rows into silver's parts, and keep its new
    events in memory, under silver's rules (one pass).

    Args:
        spark: the session.
        warehouse: the warehouse.
        rows: the batch's `bronze_events` rows.
        batch_id: the micro-batch.
        keys: the key frame for pseudonymization.
        delay: the watermark delay.
        state: the folder of the newest event time after each batch.
        contract: silver's rules.

    Raises:
        ExpectationFailedError: an event failed an `expect_or_fail` rule of `silver_events`;
            nothing of silver's part of the batch is written, and the next run retries it.
    """
    newest_before = _newest_before(state, batch_id)
    watermark = newest_before - delay if newest_before is not None else None
    summary = silver.with_event_time(rows).agg(*silver.batch_summary(watermark=watermark)).first()
    assert summary is not None  # an aggregation has one row
    placed = _placed(spark, warehouse, summary, delay, watermark, newest_before, batch_id)
    split = silver.split_batch(rows, keys=keys, placed=placed, watermark=watermark, delay=delay)
    quarantine = [split.unplaceable] if summary["unplaceable"] else []
    events: DataFrame | None = None
    measured: dict[str, Any] = {"rows": 0, "dates": []}
    metrics: list[expectations.ExpectationMetric] = []
    valid = summary["rows"] - summary["unplaceable"]
    if valid == 0 or valid == summary["behind"]:
        pass  # no event of the batch can be new
    elif contract is None:
        events, measured = in_memory(split.events, {"dates": F.collect_set("event_date")})
    else:
        evaluated = expectations.evaluate(split.events, contract.rules)
        kept, measured, metrics = checked_rows(
            evaluated, contract, measures={"dates": F.collect_set("event_date")}
        )
        events = expectations.without_evaluation(kept, contract.rules)
        if dropped_any(metrics):
            quarantine.append(expectations.dropped_rows(evaluated, contract.rules))
    newest = max(
        (t for t in (newest_before, silver.newest_event_time(summary)) if t is not None),
        default=None,
    )
    return SilverBatch(
        events=events,
        new_events=int(measured["rows"]),
        late=split.late if summary["behind"] else None,
        quarantine=functools.reduce(DataFrame.unionByName, quarantine) if quarantine else None,
        shapes=split,
        read=int(summary["rows"]),
        dates=sorted(measured["dates"]),
        newest=newest,
        metrics=metrics,
    )


def write_silver(
    spark: SparkSession, warehouse: Path, batch: SilverBatch, *, batch_id: int, state: Path
) -> None:
    """Write micro-batch `batch_id` to the silver tables, once (a replayed batch skips what it
    committed before), then record the newest event time after it."""
    writes: dict[str, Callable[[], object]] = {}
    for table, rows, merge_schema in (
        (SILVER_EVENTS, batch.events, False),
        # The quarantine gained `failed_expectations` after some were written.
        (SILVER_QUARANTINE, batch.quarantine, True),
        (SILVER_LATE_EVENTS, batch.late, False),
    ):
        if rows is not None:
            writes[table] = functools.partial(
                append_once,
                rows,
                table_path(warehouse, table),
                query=EVENTS_STREAM,
                batch_id=batch_id,
                merge_schema=merge_schema,
            )
    # Every silver table exists from the first run on, empty until a row needs it.
    for table, shape in (
        (SILVER_EVENTS, batch.shapes.events),
        (SILVER_QUARANTINE, batch.shapes.unplaceable),
        (SILVER_LATE_EVENTS, batch.shapes.late),
    ):
        if table not in writes and not table_exists(warehouse, table):
            writes[table] = functools.partial(
                create_table_if_absent, spark, table_path(warehouse, table), shape.schema
            )
    in_parallel(spark, writes)
    _record_newest(state, batch_id, batch.newest)


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
    quarantine = None
    if delta_log.row_count(warehouse / SILVER_QUARANTINE):  # else nothing to read there
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
    version = delta_log.version_before(warehouse / table, EVENTS_STREAM, batch_id)
    if version is None:  # not written by the batch yet: its latest version, pinned
        version = delta_log.table_version(warehouse / table)
    if version is None or version < 0:
        return None
    return (
        spark.read.format("delta").option("versionAsOf", version).load(table_path(warehouse, table))
    )


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
