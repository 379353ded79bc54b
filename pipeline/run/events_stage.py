"""The `events` stage: each micro-batch of new landing files through bronze, silver and gold.

One Structured Streaming query over the text files of `<landing>/events` (checkpoint
`events`, `trigger(availableNow=True)`). Each micro-batch goes through the layers in turn,
each handing the next the rows it wrote, kept in memory rather than read back:

1. `pipeline.run.bronze_stage.write_bronze`: lines -> `bronze_events`, `bronze_quarantine`;
2. `pipeline.run.silver_stage.write_silver`: those bronze rows -> `silver_events`,
   `silver_quarantine`, `silver_late_events`;
3. `pipeline.run.gold_stage.write_gold`: those silver rows -> facts, dimension members, and the
   aggregates of the days and sessions they touch.

One query instead of one per layer: a query's start, its planning and its reading of a Delta
table's new versions cost Spark jobs of their own, paid by every run however small. Every
write of a batch happens once (`pipeline.storage.delta_tables.append_once`) or recomputes what the
batch touched, and a replayed batch makes the same rows (its time is the one it was planned
with), so a run killed midway resumes from the checkpoint without losing or duplicating rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from pipeline.observe.flows import flows_of_stage
from pipeline.run import run_state
from pipeline.run.bronze_stage import check_bronze, write_bronze
from pipeline.run.enforcement import Contract
from pipeline.run.gold_stage import ensure_tables, user_dimension, write_gold
from pipeline.run.silver_stage import NEWEST_DIR, check_silver, write_silver
from pipeline.run.streaming import BatchReport, in_parallel, report_batch, run_stream
from pipeline.storage.tables import checkpoint_path, table_exists
from pipeline.table_names import (
    BRONZE_EVENTS,
    BRONZE_QUARANTINE,
    EVENTS_DIR,
    EVENTS_STREAM,
    GOLD_DIM_USER,
    GOLD_FACT_EVENTS,
    GOLD_TABLES,
    SILVER_EVENTS,
)
from pipeline.transforms import bronze
from pipeline.transforms.expectations import ExpectationMetric

__all__ = ["run_events"]


def run_events(
    spark: SparkSession,
    *,
    landing: Path,
    warehouse: Path,
    keys: DataFrame,
    delay: timedelta,
    max_files_per_trigger: int,
    contracts: Mapping[str, Contract],
    on_batch: BatchReport | None = None,
) -> None:
    """Take every landing event file not read before through bronze, silver and gold.

    Args:
        spark: the session.
        landing: the landing directory (its `events/` folder is read).
        warehouse: the warehouse.
        keys: the key frame for pseudonymization.
        delay: the watermark delay.
        max_files_per_trigger: landing files per micro-batch.
        contracts: the rules per table.
        on_batch: called after each micro-batch.

    Raises:
        ExpectationFailedError: a row failed an `expect_or_fail` rule; the batch stops there
            (what it wrote before stays, exactly once), and the next run retries it.
    """
    checkpoint = Path(checkpoint_path(warehouse, EVENTS_STREAM))
    state = checkpoint / NEWEST_DIR
    lines = bronze.event_lines(
        spark, str(landing / EVENTS_DIR), max_files_per_trigger=max_files_per_trigger
    )
    flows = flows_of_stage(EVENTS_STREAM)
    silver_flows = [f.name for f in flows if f.inputs == (BRONZE_EVENTS,)]
    gold_flows = [f.name for f in flows if f.output in GOLD_TABLES]
    # The user dimension, read in the session of the query's batches, where temporary views
    # (the rules' gold_dim_user) must live.
    users: list[DataFrame] = []

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        session = batch.sparkSession
        bronze_part = check_bronze(
            batch,
            ingested_at=run_state.batch_timestamp(checkpoint, batch_id),
            contract=contracts.get(BRONZE_EVENTS),
        )

        def to_bronze() -> None:
            write_bronze(
                session,
                warehouse,
                bronze_part,
                batch_id=batch_id,
                contract=contracts.get(BRONZE_EVENTS),
            )
            report_batch(
                on_batch,
                batch_id,
                {BRONZE_EVENTS: bronze_part.lines, BRONZE_QUARANTINE: bronze_part.lines},
                {BRONZE_EVENTS: bronze_part.metrics},
            )

        def to_silver_and_gold() -> None:
            silver_part = check_silver(
                session,
                warehouse,
                bronze_part.rows,
                batch_id=batch_id,
                keys=keys,
                delay=delay,
                state=state,
                contract=contracts.get(SILVER_EVENTS),
            )

            def to_silver() -> None:
                write_silver(session, warehouse, silver_part, batch_id=batch_id, state=state)
                report_batch(
                    on_batch,
                    batch_id,
                    dict.fromkeys(silver_flows, silver_part.read),
                    {SILVER_EVENTS: silver_part.metrics},
                )

            def to_gold() -> None:
                metrics: list[ExpectationMetric] = []
                if silver_part.events is not None and silver_part.new_events:
                    if not users:
                        users.append(user_dimension(session, warehouse))
                    metrics = write_gold(
                        session,
                        warehouse,
                        silver_part.events,
                        dates=silver_part.dates,
                        users=users[0],
                        batch_id=batch_id,
                        contract=contracts.get(GOLD_FACT_EVENTS),
                    )
                elif not all(table_exists(warehouse, t) for t in GOLD_TABLES if t != GOLD_DIM_USER):
                    ensure_tables(session, warehouse, silver_part.shapes.events.schema)
                report_batch(
                    on_batch,
                    batch_id,
                    dict.fromkeys(gold_flows, silver_part.new_events),
                    {GOLD_FACT_EVENTS: metrics},
                )

            in_parallel(session, {SILVER_EVENTS: to_silver, GOLD_FACT_EVENTS: to_gold})

        # Each layer's rows are in memory: the layers write at once, each table once, and a
        # layer's rule that stops the batch stops none of the layers before it.
        in_parallel(session, {BRONZE_EVENTS: to_bronze, SILVER_EVENTS: to_silver_and_gold})

    run_stream(lines, write_batch, checkpoint=str(checkpoint), flow=BRONZE_EVENTS)
