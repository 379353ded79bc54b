"""Each layer of the pipeline on its own, as one batch, for the layer benchmarks.

A run takes each micro-batch through bronze, silver and gold in one query
(`pipeline.run.events_stage`); timing a layer alone needs its input already there. These take
the whole input as micro-batch 0 of the layer's pure part (`check_*`) and its writes
(`write_*`), with the event log reporting it when asked, as the runner would.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.config import parse_delay
from pipeline.observe import event_log
from pipeline.run.bronze_stage import check_bronze, write_bronze
from pipeline.run.enforcement import Contract
from pipeline.run.gold_stage import user_dimension, write_gold
from pipeline.run.silver_stage import check_silver, write_silver
from pipeline.storage.tables import read_table
from pipeline.table_names import BRONZE_EVENTS, EVENTS_DIR, EVENTS_STREAM, SILVER_EVENTS
from pipeline.transforms.expectations import ExpectationMetric

__all__ = ["run_bronze", "run_gold", "run_silver"]

BATCH = 0


def _report(
    warehouse: Path,
    rows: Mapping[str, int | None],
    metrics: Mapping[str, Sequence[ExpectationMetric]],
) -> None:
    reporter = event_log.UpdateLog(warehouse, "benchmark").reporter(EVENTS_STREAM)
    reporter(BATCH, rows, metrics)


def run_bronze(
    spark: SparkSession,
    *,
    landing: Path,
    warehouse: Path,
    contract: Contract | None = None,
    log: bool = False,
) -> None:
    """Every landing event file through bronze, as one batch."""
    lines = (
        spark.read.option("recursiveFileLookup", "true")
        .text(str(landing / EVENTS_DIR))
        .select("value", F.col("_metadata.file_path").alias("_source_file"))
    )
    batch = check_bronze(lines, ingested_at=datetime.now(UTC), contract=contract)
    write_bronze(spark, warehouse, batch, batch_id=BATCH, contract=contract)
    if log:
        _report(warehouse, {BRONZE_EVENTS: batch.lines}, {BRONZE_EVENTS: batch.metrics})


def run_silver(
    spark: SparkSession,
    *,
    warehouse: Path,
    keys: DataFrame,
    watermark_delay: str,
    contract: Contract | None = None,
    log: bool = False,
) -> DataFrame | None:
    """Every `bronze_events` row through silver, as one batch; the silver rows it wrote."""
    state = Path(tempfile.mkdtemp(prefix="silver-state-", dir=warehouse))
    batch = check_silver(
        spark,
        warehouse,
        read_table(spark, warehouse, BRONZE_EVENTS),
        batch_id=BATCH,
        keys=keys,
        delay=parse_delay(watermark_delay),
        state=state,
        contract=contract,
    )
    write_silver(spark, warehouse, batch, batch_id=BATCH, state=state)
    if log:
        _report(warehouse, {SILVER_EVENTS: batch.read}, {SILVER_EVENTS: batch.metrics})
    return batch.events


def run_gold(spark: SparkSession, *, warehouse: Path, contract: Contract | None = None) -> None:
    """Every `silver_events` row through gold (facts, dimensions, aggregates), as one batch."""
    events = read_table(spark, warehouse, SILVER_EVENTS).localCheckpoint()
    dates = sorted(row[0] for row in events.select("event_date").distinct().collect())
    write_gold(
        spark,
        warehouse,
        events,
        dates=dates,
        users=user_dimension(spark, warehouse),
        batch_id=BATCH,
        contract=contract,
    )
