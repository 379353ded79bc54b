"""Runs the pipeline incrementally: landing JSON files -> bronze -> silver -> gold Delta tables.

Four Structured Streaming queries, each with `trigger(availableNow=True)` and a checkpoint
under `<warehouse>/_checkpoints/<query>`, run one after another:

1. `bronze`: the text files of `<landing>/events` -> `bronze_events` and `bronze_quarantine`,
   both written from one parse of each micro-batch with idempotent Delta writes.
2. `silver`: `bronze_events` -> `silver_events` through Spark's `dropDuplicatesWithinWatermark`.
3. `silver_accounting`: `bronze_events` -> `silver_quarantine` and `silver_late_events`.
4. `gold_dim_user`: the CDC files of `<landing>/user_changes` -> `gold_dim_user` (SCD2), each
   micro-batch merged into the Delta table by `pipeline.scd2.merge_changes`.

Then the rest of gold (the other dimensions, `gold_fact_events` and the aggregates) is
recomputed from `silver_events` and `gold_dim_user`, as a materialized view refresh would:
full recomputation is cheap at the sizes this runs locally.

Running again processes only files not seen before; a run killed midway resumes from its
checkpoints without losing or duplicating rows.

Expectations (`pipeline.expectations`) are passed in as data, per table. With rules for
`bronze_events` or `silver_events`, that query evaluates them in the same pass that writes the
table (all rules in one projection, counted by `observe` during the write): a row failing a
`fail` rule aborts that write before its commit and raises `ExpectationFailedError`, so the
batch stays uncommitted; `drop` rows go to the table's quarantine with the rule names; `warn`
rows are kept; the counts go to `_expectations_log`. Every write of a batch is an idempotent
Delta append keyed by the query and batch id. Rules for `gold_dim_user` and `gold_fact_events`
(warn and fail only) are evaluated over the whole table each run: the dimension's after its
merges, the facts' in the pass that replaces the table.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery

from pipeline import bronze, gold, scd2, silver
from pipeline import expectations as rules_engine
from pipeline.config import PiiKey
from pipeline.delta_tables import replace_table, table_exists
from pipeline.errors import ExpectationFailedError, InputError, InvalidExpectationError
from pipeline.expectations import Expectation, ExpectationMetric
from pipeline.pseudonymize import key_frame
from pipeline.schemas import USER_CHANGE_SCHEMA

EVENTS_DIR = "events"
USER_CHANGES_DIR = "user_changes"

BRONZE_EVENTS = "bronze_events"
BRONZE_QUARANTINE = "bronze_quarantine"
SILVER_EVENTS = "silver_events"
SILVER_QUARANTINE = "silver_quarantine"
SILVER_LATE_EVENTS = "silver_late_events"
EXPECTATIONS_LOG = "_expectations_log"
GOLD_DIM_USER = "gold_dim_user"
GOLD_DIM_PAGE = "gold_dim_page"
GOLD_DIM_DEVICE = "gold_dim_device"
GOLD_DIM_DATE = "gold_dim_date"
GOLD_FACT_EVENTS = "gold_fact_events"
GOLD_DAILY_ACTIVE_USERS = "gold_daily_active_users"
GOLD_FUNNEL_DAILY = "gold_funnel_daily"
GOLD_SESSIONS = "gold_sessions"
GOLD_TABLES: tuple[str, ...] = (
    GOLD_DIM_USER,
    GOLD_DIM_PAGE,
    GOLD_DIM_DEVICE,
    GOLD_DIM_DATE,
    GOLD_FACT_EVENTS,
    GOLD_DAILY_ACTIVE_USERS,
    GOLD_FUNNEL_DAILY,
    GOLD_SESSIONS,
)
TABLES: tuple[str, ...] = (
    BRONZE_EVENTS,
    BRONZE_QUARANTINE,
    SILVER_EVENTS,
    SILVER_QUARANTINE,
    SILVER_LATE_EVENTS,
    EXPECTATIONS_LOG,
    *GOLD_TABLES,
)
ENFORCED_TABLES: tuple[str, ...] = (BRONZE_EVENTS, SILVER_EVENTS, GOLD_DIM_USER, GOLD_FACT_EVENTS)
"""Tables whose writing query can enforce expectations."""
GOLD_ENFORCED_TABLES: tuple[str, ...] = (GOLD_DIM_USER, GOLD_FACT_EVENTS)
"""Gold tables with rules: `warn` and `fail` only, since every silver event must reach
`gold_fact_events` and a dimension version cannot be dropped without breaking its history.
Their rules may name `gold_dim_user` as a table (a view of it is registered while they run)."""

BRONZE_HIDDEN_COLUMNS: tuple[str, ...] = ("user", "_rescued_data", "_raw")
"""Bronze columns that may hold PII in clear: never shown in error samples."""


@dataclass(frozen=True)
class RunOptions:
    """Knobs of one pipeline run."""

    watermark_delay: str = silver.DEFAULT_WATERMARK_DELAY
    max_files_per_trigger: int = 16


@dataclass(frozen=True)
class TableCount:
    """Rows of one table before and after a run."""

    table: str
    before: int
    after: int

    @property
    def added(self) -> int:
        """Rows the run added."""
        return self.after - self.before


@dataclass(frozen=True)
class RunSummary:
    """What a run did, table by table."""

    counts: tuple[TableCount, ...]
    run_id: str | None = None

    def rows(self, table: str) -> int:
        """Rows in `table` after the run."""
        return next(count.after for count in self.counts if count.table == table)

    def render(self) -> str:
        """A short human-readable table of rows per table."""
        width = max(len(count.table) for count in self.counts)
        lines = [f"{'table':<{width}}  {'rows':>10}  {'added':>10}"]
        lines += [
            f"{count.table:<{width}}  {count.after:>10,}  {count.added:>+10,}"
            for count in self.counts
        ]
        return "\n".join(lines)


def table_path(warehouse: Path, table: str) -> str:
    """Where `table` lives: `<warehouse>/<table>`."""
    return str(warehouse / table)


def read_table(spark: SparkSession, warehouse: Path, table: str) -> DataFrame:
    """Read a Delta table of the warehouse."""
    return spark.read.format("delta").load(table_path(warehouse, table))


def count_rows(spark: SparkSession, warehouse: Path, table: str) -> int:
    """Rows in a warehouse table, 0 when it does not exist yet.

    Asks the Delta log first: a failed read of a missing table costs about 0.1 s.
    """
    if not table_exists(spark, table_path(warehouse, table)):
        return 0
    return read_table(spark, warehouse, table).count()


def _append_once(
    frame: DataFrame, path: str, *, query: str, batch_id: int, merge_schema: bool = False
) -> None:
    """Append a micro-batch idempotently: Delta skips a (query, batch) it already committed.

    `merge_schema` lets a table written before a column existed take it on (the quarantine
    tables gained `failed_expectations`).
    """
    writer = (
        frame.write.format("delta")
        .mode("append")
        .option("txnAppId", f"clickstream:{query}")
        .option("txnVersion", batch_id)
    )
    if merge_schema:
        writer = writer.option("mergeSchema", "true")
    writer.save(path)


def _run_available(
    query: StreamingQuery, failures: list[ExpectationFailedError] | None = None
) -> StreamingQuery:
    """Wait for an `availableNow` query to process everything there is, then return it.

    Raises:
        ExpectationFailedError: a batch failed an `expect_or_fail` rule (recorded in
            `failures` by `_recording`); the query stopped with that batch uncommitted.
    """
    try:
        query.awaitTermination()
    except StreamingQueryException as exc:
        if failures:
            raise failures[0] from exc
        raise
    return query


BatchFunction = Callable[[DataFrame, int], None]


def _recording(write_batch: BatchFunction, failures: list[ExpectationFailedError]) -> BatchFunction:
    """Wrap a foreachBatch function so that the typed error it raises survives the query.

    Spark reports an error in foreachBatch as a `StreamingQueryException` holding only text;
    the original is kept here and re-raised by `_run_available`. (On Spark Connect the
    function runs in another process: the text is all there is.)
    """

    def run(batch: DataFrame, batch_id: int) -> None:
        try:
            write_batch(batch, batch_id)
        except ExpectationFailedError as error:
            failures.append(error)
            raise

    return run


OBSERVATION_WAIT_SECONDS = 30.0
"""How long to wait for a write's observed metrics before counting again instead."""


def _observed(observation: Observation) -> dict[str, Any] | None:
    """The metrics observed during an action, or None when the action never ran its query.

    Delta skips an idempotent append it has already committed (a batch replayed after a
    crash), and then nothing is observed: `Observation.get` would wait forever.
    """
    future = getattr(getattr(observation, "_jo", None), "future", None)
    if future is None:  # Spark Connect: the metrics arrive with the action's result
        try:
            return dict(observation.get)
        except Exception:
            return None
    deadline = time.monotonic() + OBSERVATION_WAIT_SECONDS
    while not future().isCompleted():
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)
    return dict(observation.get)


def _write_checked(
    evaluated: DataFrame,
    path: str,
    *,
    table: str,
    rules: Sequence[Expectation],
    query: str,
    batch_id: int,
    shape: Callable[[DataFrame], DataFrame] = rules_engine.without_evaluation,
    hidden_columns: Sequence[str] = (),
) -> list[ExpectationMetric]:
    """Append the rows of an evaluated micro-batch that no drop rule rejects, in one pass.

    The same pass counts every rule (`DataFrame.observe`) and stops at a row that fails a
    `fail` rule (`kept_or_stop`): the Delta write then aborts before its commit, so nothing of
    the batch is written, and the batch is counted again to raise `ExpectationFailedError`
    with the rule, the count and samples. A second pass over the batch happens only on that
    path, or when Delta skipped the write as already committed.

    Args:
        evaluated: `pipeline.expectations.evaluate` output.
        path: the table to append to.
        table: the table's name, for metrics and errors.
        rules: the rules evaluated.
        query: the streaming query, for idempotent writes.
        batch_id: the micro-batch, for idempotent writes.
        shape: turns the kept evaluated rows into the table's rows.
        hidden_columns: never shown in error samples.

    Returns:
        The metrics of every rule over the whole batch.
    """
    observation = Observation(f"expectations:{query}:{batch_id}:{uuid.uuid4().hex}")
    observed = evaluated.observe(observation, *rules_engine.metric_columns(rules))
    try:
        _append_once(
            shape(observed.where(rules_engine.kept_or_stop(rules))),
            path,
            query=query,
            batch_id=batch_id,
        )
    except Exception as error:
        if not rules_engine.stopped_by_fail_rule(error):
            raise
        metrics = rules_engine.measure(evaluated, table, rules)
        rules_engine.raise_on_failures(
            evaluated, table, rules, metrics, hidden_columns=hidden_columns
        )
        raise
    values = _observed(observation)
    if values is None:
        return rules_engine.measure(evaluated, table, rules)
    return rules_engine.metrics_from(values, table, rules)


def _dropped_any(metrics: Sequence[ExpectationMetric]) -> bool:
    return any(metric.failed for metric in metrics if metric.action == "drop")


def _log_metrics(
    spark: SparkSession,
    warehouse: Path,
    metrics: Sequence[ExpectationMetric],
    *,
    run_id: str,
    query: str,
    batch_id: int,
    once_per_run: bool = False,
) -> None:
    """Append the metrics of a micro-batch to `_expectations_log`, once per (query, batch).

    `once_per_run`: the query runs once in each run (a gold rebuild), not once per batch.
    """
    _append_once(
        rules_engine.log_rows(
            spark,
            metrics,
            run_id=run_id,
            query=query,
            batch_id=batch_id,
            logged_at=F.current_timestamp(),
        ),
        table_path(warehouse, EXPECTATIONS_LOG),
        query=f"{query}:{run_id}" if once_per_run else query,
        batch_id=batch_id,
    )


def _final_watermark(query: StreamingQuery) -> datetime | None:
    """The event-time watermark a finished query reached, or None if it processed nothing."""
    progress = query.lastProgress
    watermark = progress.get("eventTime", {}).get("watermark") if progress else None
    return datetime.fromisoformat(watermark) if watermark else None


def _checkpoint(warehouse: Path, query: str) -> str:
    return str(warehouse / "_checkpoints" / query)


@dataclass(frozen=True)
class _Contract:
    """The rules a query enforces and the run they are logged under."""

    rules: tuple[Expectation, ...]
    run_id: str


def _run_bronze(
    spark: SparkSession,
    landing: Path,
    warehouse: Path,
    options: RunOptions,
    contract: _Contract | None = None,
) -> None:
    lines = bronze.event_lines(
        spark, str(landing / EVENTS_DIR), max_files_per_trigger=options.max_files_per_trigger
    )

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        parsed = bronze.parse_lines(batch)
        if contract is not None:
            _write_bronze_checked(spark, warehouse, parsed, batch_id, contract)
            return
        # No cache: the quarantine write needs only the raw text and the object check, so
        # Spark prunes the typed parse and the rescue from its plan; re-reading is cheaper.
        ingested_at = F.current_timestamp()
        _append_once(
            bronze.bronze_rows(parsed, ingested_at=ingested_at),
            table_path(warehouse, BRONZE_EVENTS),
            query="bronze",
            batch_id=batch_id,
        )
        _append_once(
            bronze.quarantine_rows(parsed, ingested_at=ingested_at),
            table_path(warehouse, BRONZE_QUARANTINE),
            query="bronze",
            batch_id=batch_id,
            merge_schema=True,
        )

    failures: list[ExpectationFailedError] = []
    writer = (
        lines.writeStream.foreachBatch(_recording(write_batch, failures))
        .option("checkpointLocation", _checkpoint(warehouse, "bronze"))
        .trigger(availableNow=True)
    )
    _run_available(writer.start(), failures)


def _write_bronze_checked(
    spark: SparkSession, warehouse: Path, parsed: DataFrame, batch_id: int, contract: _Contract
) -> None:
    """One bronze micro-batch under its rules: objects that fail drop rules join the quarantine."""
    ingested_at = F.current_timestamp()
    objects = parsed.where(F.col("_quarantine_reason").isNull())
    evaluated = rules_engine.evaluate(objects, contract.rules)
    metrics = _write_checked(
        evaluated,
        table_path(warehouse, BRONZE_EVENTS),
        table=BRONZE_EVENTS,
        rules=contract.rules,
        query="bronze",
        batch_id=batch_id,
        shape=lambda kept: bronze.bronze_rows(kept, ingested_at=ingested_at),
        hidden_columns=BRONZE_HIDDEN_COLUMNS,
    )
    quarantine = bronze.quarantine_rows(parsed, ingested_at=ingested_at)
    if _dropped_any(metrics):
        quarantine = quarantine.unionByName(
            bronze.rule_quarantine_rows(
                rules_engine.dropped_rows(evaluated), ingested_at=ingested_at
            )
        )
    _append_once(
        quarantine,
        table_path(warehouse, BRONZE_QUARANTINE),
        query="bronze",
        batch_id=batch_id,
        merge_schema=True,
    )
    _log_metrics(
        spark, warehouse, metrics, run_id=contract.run_id, query="bronze", batch_id=batch_id
    )


def _bronze_stream(spark: SparkSession, warehouse: Path) -> DataFrame:
    return spark.readStream.format("delta").load(table_path(warehouse, BRONZE_EVENTS))


def _run_silver(
    spark: SparkSession,
    warehouse: Path,
    keys: DataFrame,
    options: RunOptions,
    contract: _Contract | None = None,
) -> datetime | None:
    events = silver.silver_events(
        _bronze_stream(spark, warehouse), keys=keys, watermark_delay=options.watermark_delay
    )
    if contract is None:
        writer = (
            events.writeStream.format("delta")
            .outputMode("append")
            .option("checkpointLocation", _checkpoint(warehouse, "silver"))
            .trigger(availableNow=True)
        )
        return _final_watermark(_run_available(writer.start(table_path(warehouse, SILVER_EVENTS))))

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        evaluated = rules_engine.evaluate(batch, contract.rules)
        metrics = _write_checked(
            evaluated,
            table_path(warehouse, SILVER_EVENTS),
            table=SILVER_EVENTS,
            rules=contract.rules,
            query="silver",
            batch_id=batch_id,
        )
        if _dropped_any(metrics):
            # A second pass over the batch, for its few dropped rows only: cheaper, measured,
            # than caching every batch (`silver_with_drops` in benchmarks/ times this path).
            _append_once(
                rules_engine.dropped_rows(evaluated),
                table_path(warehouse, SILVER_QUARANTINE),
                query="silver",
                batch_id=batch_id,
                merge_schema=True,
            )
        _log_metrics(
            spark, warehouse, metrics, run_id=contract.run_id, query="silver", batch_id=batch_id
        )

    failures: list[ExpectationFailedError] = []
    checked_writer = (
        events.writeStream.foreachBatch(_recording(write_batch, failures))
        .outputMode("append")
        .option("checkpointLocation", _checkpoint(warehouse, "silver"))
        .trigger(availableNow=True)
    )
    return _final_watermark(_run_available(checked_writer.start(), failures))


def _run_silver_accounting(
    spark: SparkSession, warehouse: Path, keys: DataFrame, watermark: datetime | None
) -> None:
    def write_batch(batch: DataFrame, batch_id: int) -> None:
        _append_once(
            silver.quarantine_rows(batch, keys=keys),
            table_path(warehouse, SILVER_QUARANTINE),
            query="silver_accounting",
            batch_id=batch_id,
            merge_schema=True,
        )
        # Rows the silver query dropped by rule are in the quarantine, not late: their
        # event_ids count as placed, like those in silver.
        quarantine = read_table(spark, warehouse, SILVER_QUARANTINE)
        placed_ids = silver.placed_event_ids(
            read_table(spark, warehouse, SILVER_EVENTS),
            quarantine if rules_engine.QUARANTINE_RULES_COLUMN in quarantine.columns else None,
        )
        _append_once(
            silver.late_rows(batch, silver=placed_ids, keys=keys, watermark=watermark),
            table_path(warehouse, SILVER_LATE_EVENTS),
            query="silver_accounting",
            batch_id=batch_id,
        )

    writer = (
        _bronze_stream(spark, warehouse)
        .writeStream.foreachBatch(write_batch)
        .option("checkpointLocation", _checkpoint(warehouse, "silver_accounting"))
        .trigger(availableNow=True)
    )
    _run_available(writer.start())


# ------------------------------------------------------------------------------------- gold


def _run_dim_user(
    spark: SparkSession, landing: Path, warehouse: Path, keys: DataFrame, options: RunOptions
) -> None:
    """Merge the CDC files not seen before into `gold_dim_user`, one micro-batch at a time."""
    path = table_path(warehouse, GOLD_DIM_USER)
    changes = (
        spark.readStream.schema(USER_CHANGE_SCHEMA)
        .option("maxFilesPerTrigger", options.max_files_per_trigger)
        .json(str(landing / USER_CHANGES_DIR))
    )

    def merge_batch(batch: DataFrame, batch_id: int) -> None:
        scd2.merge_changes(
            spark,
            gold.user_changes(batch, keys=keys),
            path=path,
            derived_columns=gold.user_derived_columns(),
            batch_id=batch_id,
            app_id=f"clickstream:{GOLD_DIM_USER}",
            **gold.user_cdc_options(),
        )

    writer = (
        changes.writeStream.foreachBatch(merge_batch)
        .option("checkpointLocation", _checkpoint(warehouse, GOLD_DIM_USER))
        .trigger(availableNow=True)
    )
    _run_available(writer.start())
    if table_exists(spark, path):
        versions = read_table(spark, warehouse, GOLD_DIM_USER)
        if versions.where(F.col(gold.USER_SK) == gold.UNKNOWN_KEY).isEmpty():
            unknown = gold.with_unknown_user(versions.limit(0))
            unknown.write.format("delta").mode("append").save(path)


def _user_dimension(spark: SparkSession, warehouse: Path, keys: DataFrame) -> DataFrame:
    """`gold_dim_user`, or an empty one (just the unknown member) before any CDC arrived."""
    if table_exists(spark, table_path(warehouse, GOLD_DIM_USER)):
        return read_table(spark, warehouse, GOLD_DIM_USER)
    no_changes = spark.createDataFrame([], USER_CHANGE_SCHEMA)
    return gold.dim_user(gold.user_changes(no_changes, keys=keys))


@contextmanager
def dim_user_view(users: DataFrame) -> Iterator[None]:
    """`gold_dim_user` as a temporary view, for gold rules that name it in SQL."""
    users.createOrReplaceTempView(GOLD_DIM_USER)
    try:
        yield
    finally:
        users.sparkSession.catalog.dropTempView(GOLD_DIM_USER)


def _check_dim_user(spark: SparkSession, warehouse: Path, contract: _Contract | None) -> None:
    """Evaluate `gold_dim_user`'s rules over the whole dimension after its merges."""
    if contract is None or not table_exists(spark, table_path(warehouse, GOLD_DIM_USER)):
        return
    users = read_table(spark, warehouse, GOLD_DIM_USER)
    with dim_user_view(users):
        evaluated = rules_engine.evaluate(users, contract.rules)
        metrics = rules_engine.measure(evaluated, GOLD_DIM_USER, contract.rules)
        _log_metrics(
            spark,
            warehouse,
            metrics,
            run_id=contract.run_id,
            query=GOLD_DIM_USER,
            batch_id=0,
            once_per_run=True,
        )
        rules_engine.raise_on_failures(
            evaluated, GOLD_DIM_USER, contract.rules, metrics, key_columns=(gold.USER_SK,)
        )


def _replace_facts(
    spark: SparkSession, warehouse: Path, facts: DataFrame, contract: _Contract | None
) -> None:
    """Replace `gold_fact_events`; with rules, in the pass that evaluates them.

    A row failing a `fail` rule aborts the `CREATE OR REPLACE` before it commits: the table
    keeps its previous content, and the facts are evaluated again to name the rule.
    """
    path = table_path(warehouse, GOLD_FACT_EVENTS)
    if contract is None:
        replace_table(facts, path, cluster_by=("event_date",))
        return
    evaluated = rules_engine.evaluate(facts, contract.rules)
    try:
        replace_table(
            rules_engine.without_evaluation(
                evaluated.where(rules_engine.kept_or_stop(contract.rules))
            ),
            path,
            cluster_by=("event_date",),
        )
    except Exception as error:
        if not rules_engine.stopped_by_fail_rule(error):
            raise
        metrics = rules_engine.measure(evaluated, GOLD_FACT_EVENTS, contract.rules)
        rules_engine.raise_on_failures(evaluated, GOLD_FACT_EVENTS, contract.rules, metrics)
        raise
    written = rules_engine.evaluate(read_table(spark, warehouse, GOLD_FACT_EVENTS), contract.rules)
    metrics = rules_engine.measure(written, GOLD_FACT_EVENTS, contract.rules)
    _log_metrics(
        spark,
        warehouse,
        metrics,
        run_id=contract.run_id,
        query=GOLD_FACT_EVENTS,
        batch_id=0,
        once_per_run=True,
    )


def _rebuild_gold(
    spark: SparkSession, warehouse: Path, keys: DataFrame, contracts: Mapping[str, _Contract]
) -> None:
    """Recompute the star schema and the aggregates from silver and the user dimension."""
    events = read_table(spark, warehouse, SILVER_EVENTS)

    def replace(table: str, frame: DataFrame, *cluster_by: str) -> None:
        replace_table(frame, table_path(warehouse, table), cluster_by=cluster_by)

    replace(GOLD_DIM_PAGE, gold.dim_page(events), gold.PAGE_SK)
    replace(GOLD_DIM_DEVICE, gold.dim_device(events), gold.DEVICE_SK)
    replace(GOLD_DIM_DATE, gold.dim_date(events), gold.DATE_SK)
    users = _user_dimension(spark, warehouse, keys)
    with dim_user_view(users):
        _replace_facts(
            spark,
            warehouse,
            gold.fact_events(events, users=users),
            contracts.get(GOLD_FACT_EVENTS),
        )
    facts = read_table(spark, warehouse, GOLD_FACT_EVENTS)
    replace(GOLD_DAILY_ACTIVE_USERS, gold.daily_active_users(facts), "event_date")
    replace(GOLD_FUNNEL_DAILY, gold.funnel_daily(facts), "event_date")
    replace(GOLD_SESSIONS, gold.sessions(facts), "session_date")


def _run_gold(
    spark: SparkSession,
    landing: Path,
    warehouse: Path,
    keys: DataFrame,
    options: RunOptions,
    contracts: Mapping[str, _Contract],
    report: Callable[[str], None],
) -> None:
    if (landing / USER_CHANGES_DIR).is_dir():
        report(f"gold: merging new user changes into {GOLD_DIM_USER} (SCD type 2)")
        _run_dim_user(spark, landing, warehouse, keys, options)
        _check_dim_user(spark, warehouse, contracts.get(GOLD_DIM_USER))
    if table_exists(spark, table_path(warehouse, SILVER_EVENTS)):
        report("gold: rebuilding the star schema and the aggregates")
        _rebuild_gold(spark, warehouse, keys, contracts)


def _check_landing(landing: Path) -> None:
    events = landing / EVENTS_DIR
    if not events.is_dir():
        raise InputError(
            f"The landing directory {landing} has no '{EVENTS_DIR}/' folder of JSON files. "
            f"Generate one with: clickstream produce --out {landing} --events 10000"
        )


def run_pipeline(
    spark: SparkSession,
    *,
    landing: Path,
    warehouse: Path,
    pii_key: PiiKey,
    options: RunOptions | None = None,
    progress: Callable[[str], None] | None = None,
    expectations: Mapping[str, Sequence[Expectation]] | None = None,
) -> RunSummary:
    """Process every landing file not processed before into the warehouse's Delta tables.

    Args:
        spark: the session to run on.
        landing: directory whose `events/` folder holds newline-delimited JSON files, and
            whose optional `user_changes/` folder holds the user CDC feed.
        warehouse: directory of the Delta tables and the streaming checkpoints.
        pii_key: the secret for keyed pseudonymization of PII.
        options: watermark and batch sizing; defaults when None.
        progress: called with a short message as each stage starts.
        expectations: rules per table (`ENFORCED_TABLES`), e.g. `contracts.rules.EXPECTATIONS`;
            none are enforced when None. Gold tables take warn and fail rules only.

    Returns:
        Row counts per table, before and after the run, and the run id of the metrics.

    Raises:
        InvalidExpectationError: a rule names a table no query writes, or does not fit it.
        ExpectationFailedError: rows failed an `expect_or_fail` rule; that batch and the
            stages after it were not written, and the next run retries the batch.
    """
    options = options or RunOptions()
    report = progress or (lambda _message: None)
    landing, warehouse = landing.resolve(), warehouse.resolve()
    _check_landing(landing)
    keys = key_frame(spark, pii_key)
    run_id = _new_run_id()
    contracts = _contracts(spark, keys, expectations or {}, run_id)
    before = {table: count_rows(spark, warehouse, table) for table in TABLES}
    report(f"bronze: reading new files in {landing / EVENTS_DIR}")
    _run_bronze(spark, landing, warehouse, options, contracts.get(BRONZE_EVENTS))
    if count_rows(spark, warehouse, BRONZE_EVENTS) or before[BRONZE_EVENTS]:
        report(f"silver: deduplicating within a {options.watermark_delay} watermark")
        watermark = _run_silver(spark, warehouse, keys, options, contracts.get(SILVER_EVENTS))
        report("silver: accounting for quarantined and late rows")
        _run_silver_accounting(spark, warehouse, keys, watermark)
    _run_gold(spark, landing, warehouse, keys, options, contracts, report)
    return RunSummary(
        tuple(
            TableCount(table, before[table], count_rows(spark, warehouse, table))
            for table in TABLES
        ),
        run_id=run_id,
    )


def _new_run_id() -> str:
    """A sortable, unique id for the metrics of one run: UTC start time and a random suffix."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def _contracts(
    spark: SparkSession,
    keys: DataFrame,
    rules_by_table: Mapping[str, Sequence[Expectation]],
    run_id: str,
) -> dict[str, _Contract]:
    """Check the rules against the tables' schemas before any query starts (no Spark job)."""
    unknown = sorted(set(rules_by_table) - set(ENFORCED_TABLES))
    if unknown:
        raise InvalidExpectationError(
            f"Expectations were given for {unknown}, but no query of the pipeline writes "
            f"those tables; rules can be enforced on {list(ENFORCED_TABLES)}."
        )
    dropping = sorted(
        f"{table}.{rule.name}"
        for table in GOLD_ENFORCED_TABLES
        for rule in rules_by_table.get(table, ())
        if rule.action == "drop"
    )
    if dropping:
        raise InvalidExpectationError(
            f"Rules {dropping} drop gold rows, but gold tables take only warn and fail rules: "
            "every silver event must reach gold_fact_events, and a dimension version cannot "
            "be dropped without breaking its history. Make them warn or fail, or drop the "
            "rows earlier, with a rule on silver_events."
        )
    if not any(rules_by_table.values()):
        return {}  # building the shapes below runs a Spark job (the SCD input check)
    lines = spark.createDataFrame([], "value string, _source_file string")
    parsed = bronze.parse_lines(lines)
    events = silver.silver_events(
        bronze.bronze_rows(parsed, ingested_at=F.current_timestamp()), keys=keys
    )
    users = gold.dim_user(
        gold.user_changes(spark.createDataFrame([], USER_CHANGE_SCHEMA), keys=keys)
    )
    shapes = {
        BRONZE_EVENTS: parsed,
        SILVER_EVENTS: events,
        GOLD_DIM_USER: users,
        GOLD_FACT_EVENTS: gold.fact_events(events, users=users),
    }
    contracts: dict[str, _Contract] = {}
    with dim_user_view(users):
        for table, rules in rules_by_table.items():
            if rules:
                rules_engine.check_rules(shapes[table], table, rules)
                contracts[table] = _Contract(tuple(rules), run_id)
    return contracts
