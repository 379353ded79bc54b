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
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from pipeline.observe.flows import flows_of_stage
from pipeline.run import run_state
from pipeline.run.bronze_stage import BronzeBatch, check_bronze, write_bronze
from pipeline.run.enforcement import Contract
from pipeline.run.gold_stage import ensure_tables, user_dimension, write_gold
from pipeline.run.silver_stage import SilverBatch, check_silver, write_silver
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
    state = checkpoint / run_state.NEWEST_DIR
    lines = bronze.event_lines(
        spark, str(landing / EVENTS_DIR), max_files_per_trigger=max_files_per_trigger
    )
    flows = flows_of_stage(EVENTS_STREAM)
    run = _EventsRun(
        warehouse=warehouse,
        keys=keys,
        delay=delay,
        contracts=contracts,
        on_batch=on_batch,
        checkpoint=checkpoint,
        state=state,
        silver_flows=[f.name for f in flows if f.inputs == (BRONZE_EVENTS,)],
        gold_flows=[f.name for f in flows if f.output in GOLD_TABLES],
    )

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        _write_batch(run, batch, batch_id)

    run_stream(lines, write_batch, checkpoint=str(checkpoint), flow=BRONZE_EVENTS)


@dataclass(frozen=True)
class _EventsRun:
    """What every micro-batch of one `run_events` call shares.

    Attributes:
        warehouse, keys, delay, contracts, on_batch: as given to `run_events`.
        checkpoint: the query's checkpoint directory.
        state: silver's newest event time per batch, under the checkpoint.
        silver_flows: the flows silver's part of a batch reads for.
        gold_flows: the flows gold's part of a batch reads for.
        users: the user dimension once read, in the session of the query's batches, where
            temporary views (the rules' gold_dim_user) must live; empty until then.
    """

    warehouse: Path
    keys: DataFrame
    delay: timedelta
    contracts: Mapping[str, Contract]
    on_batch: BatchReport | None
    checkpoint: Path
    state: Path
    silver_flows: list[str]
    gold_flows: list[str]
    users: list[DataFrame] = field(default_factory=list)


def _write_batch(run: _EventsRun, batch: DataFrame, batch_id: int) -> None:
    """Take one micro-batch of landing lines through bronze, silver and gold."""
    session = batch.sparkSession
    bronze_part = check_bronze(
        batch,
        ingested_at=run_state.batch_timestamp(run.checkpoint, batch_id),
        contract=run.contracts.get(BRONZE_EVENTS),
    )
    # Each layer's rows are in memory: the layers write at once, each table once, and a
    # layer's rule that stops the batch stops none of the layers before it.
    in_parallel(
        session,
        {
            BRONZE_EVENTS: lambda: _write_bronze_part(run, session, bronze_part, batch_id),
            SILVER_EVENTS: lambda: _write_silver_and_gold(run, session, bronze_part, batch_id),
        },
    )


def _write_bronze_part(
    run: _EventsRun, session: SparkSession, bronze_part: BronzeBatch, batch_id: int
) -> None:
    """Write the batch's bronze tables, then report what bronze's flows read."""
    write_bronze(
        session,
        run.warehouse,
        bronze_part,
        batch_id=batch_id,
        contract=run.contracts.get(BRONZE_EVENTS),
    )
    report_batch(
        run.on_batch,
        batch_id,
        {BRONZE_EVENTS: bronze_part.lines, BRONZE_QUARANTINE: bronze_part.lines},
        {BRONZE_EVENTS: bronze_part.metrics},
    )


def _write_silver_and_gold(
    run: _EventsRun, session: SparkSession, bronze_part: BronzeBatch, batch_id: int
) -> None:
    """Make silver's rows of the batch's bronze rows, then write them and gold's at once."""
    silver_part = check_silver(
        session,
        run.warehouse,
        bronze_part.rows,
        batch_id=batch_id,
        keys=run.keys,
        delay=run.delay,
        state=run.state,
        contract=run.contracts.get(SILVER_EVENTS),
    )
    in_parallel(
        session,
        {
            SILVER_EVENTS: lambda: _write_silver_part(run, session, silver_part, batch_id),
            GOLD_FACT_EVENTS: lambda: _write_gold_part(run, session, silver_part, batch_id),
        },
    )


def _write_silver_part(
    run: _EventsRun, session: SparkSession, silver_part: SilverBatch, batch_id: int
) -> None:
    """Write the batch's silver tables, then report what silver's flows read."""
    write_silver(session, run.warehouse, silver_part, batch_id=batch_id, state=run.state)
    report_batch(
        run.on_batch,
        batch_id,
        dict.fromkeys(run.silver_flows, silver_part.read),
        {SILVER_EVENTS: silver_part.metrics},
    )


def _write_gold_part(
    run: _EventsRun, session: SparkSession, silver_part: SilverBatch, batch_id: int
) -> None:
    """Gold's part of the batch: the facts and aggregates of its new silver events, or, when
    it has none, the gold tables a first run has not created yet."""
    metrics: list[ExpectationMetric] = []
    if silver_part.events is not None and silver_part.new_events:
        metrics = write_gold(
            session,
            run.warehouse,
            silver_part.events,
            dates=silver_part.dates,
            users=_user_dimension_once(run, session),
            batch_id=batch_id,
            contract=run.contracts.get(GOLD_FACT_EVENTS),
        )
    elif not all(table_exists(run.warehouse, t) for t in GOLD_TABLES if t != GOLD_DIM_USER):
        ensure_tables(session, run.warehouse, silver_part.shapes.events.schema)
    report_batch(
        run.on_batch,
        batch_id,
        dict.fromkeys(run.gold_flows, silver_part.new_events),
        {GOLD_FACT_EVENTS: metrics},
    )


def _user_dimension_once(run: _EventsRun, session: SparkSession) -> DataFrame:
    """The user dimension, read by the first batch that needs it and kept for the run."""
    if not run.users:
        run.users.append(user_dimension(session, run.warehouse))
    return run.users[0]
