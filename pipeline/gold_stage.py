"""The gold stages: the SCD2 user dimension, then the star schema and aggregates, incrementally.

* `run_user_dimension`: one streaming query over the CDC files of `<landing>/user_changes`
  (checkpoint `gold_dim_user`); each micro-batch is merged into `gold_dim_user` by
  `pipeline.scd2.merge_changes` (which touches only the batch's users), and the facts those
  changes re-key (a late change that splits a version, a user whose events came before
  their first change) get their new `user_sk`.
* `run_gold`: one streaming query over the Delta table `silver_events` (checkpoint `gold`);
  each micro-batch of new silver rows becomes new facts, new dimension members, and the
  aggregates of the days and sessions it touches, recomputed from the facts and merged by key,
  as Lakeflow refreshes a materialized view incrementally. Nothing reads the whole history.
* `refresh_gold` recomputes every gold table from silver and the user change log
  (`full_refresh`), as a Lakeflow full refresh does: the oracle the incremental tables equal.

Every write of a batch is idempotent or a recomputation of the batch's keys from the facts,
so a batch replayed after a crash gives the same tables.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from pipeline import cost, delta_log, gold, scd2
from pipeline import expectations as rules_engine
from pipeline.delta_tables import create_table_if_absent, replace_rows, replace_table
from pipeline.enforcement import Contract, dim_user_view, write_checked
from pipeline.schemas import USER_CHANGE_SCHEMA
from pipeline.streaming import BatchReport, append_once, in_parallel, report_batch, run_stream
from pipeline.tables import (
    GOLD_DAILY_ACTIVE_USERS,
    GOLD_DIM_DATE,
    GOLD_DIM_DEVICE,
    GOLD_DIM_PAGE,
    GOLD_DIM_USER,
    GOLD_FACT_EVENTS,
    GOLD_FUNNEL_DAILY,
    GOLD_SESSIONS,
    GOLD_STREAM,
    SILVER_EVENTS,
    USER_CHANGES_DIR,
    USER_MERGE_WRITER,
    USER_STREAM,
    checkpoint_path,
    read_table,
    table_exists,
    table_path,
)

__all__ = ["full_refresh", "refresh_gold", "run_gold", "run_user_dimension", "user_dimension"]

UNKNOWN_WRITER = f"{USER_STREAM}:unknown"


# --------------------------------------------------------------------------- user dimension


def user_dimension(spark: SparkSession, warehouse: Path) -> DataFrame:
    """`gold_dim_user`, or the unknown member alone before any user change arrived."""
    if table_exists(warehouse, GOLD_DIM_USER):
        return read_table(spark, warehouse, GOLD_DIM_USER)
    return gold.empty_user_dimension(spark)


def run_user_dimension(
    spark: SparkSession,
    *,
    landing: Path,
    warehouse: Path,
    keys: DataFrame,
    max_files_per_trigger: int,
    contract: Contract | None = None,
    on_batch: BatchReport | None = None,
) -> None:
    """Merge the CDC files not seen before into `gold_dim_user`, and re-key the facts.

    Raises:
        ChangeFeedError: a batch of changes cannot be applied (a null key or sequence value,
            conflicting changes at one sequence value); nothing of it is written.
        ExpectationFailedError: the merged dimension fails an `expect_or_fail` rule.
    """
    changes = (
        spark.readStream.schema(USER_CHANGE_SCHEMA)
        .option("maxFilesPerTrigger", max_files_per_trigger)
        .option("recursiveFileLookup", "true")  # date folders of a streaming producer
        .json(str(landing / USER_CHANGES_DIR))
    )
    path = table_path(warehouse, GOLD_DIM_USER)

    def merge_batch(batch: DataFrame, batch_id: int) -> None:
        spark = batch.sparkSession  # temporary views (the rules' gold_dim_user) live there
        created = not table_exists(warehouse, GOLD_DIM_USER)
        pseudonymized = gold.user_changes(batch, keys=keys).localCheckpoint()
        changes_read = pseudonymized.count()
        scd2.merge_changes(
            spark,
            pseudonymized,
            path=path,
            derived_columns=gold.user_derived_columns(),
            # Not clustered by `user_key`: clustering needs statistics, and Delta keeps none on
            # pseudonyms (`pipeline.schemas.PERSONAL_COLUMNS`).
            cluster_by=(),
            batch_id=batch_id,
            app_id=USER_MERGE_WRITER,
            **gold.user_cdc_options(),
        )
        if created or _unknown_member_missing(Path(path)):
            unknown = gold.with_unknown_user(read_table(spark, warehouse, GOLD_DIM_USER).limit(0))
            append_once(unknown, path, query=UNKNOWN_WRITER, batch_id=0)
        changed = pseudonymized.groupBy(gold.USER_KEY).agg(F.min("changed_at").alias("since"))
        users = read_table(spark, warehouse, GOLD_DIM_USER)
        _rekey_facts(spark, warehouse, changed, users)
        if contract is None:
            report_batch(on_batch, batch_id, changes_read)
        else:
            _check_users(users, changed, contract, batch_id, changes_read, on_batch)

    run_stream(
        changes, merge_batch, checkpoint=checkpoint_path(warehouse, USER_STREAM), flow=GOLD_DIM_USER
    )


def _unknown_member_missing(path: Path) -> bool:
    """Whether the batch that created `gold_dim_user` was killed before adding the unknown
    member (its replay finds the table, so it cannot tell by the table's absence).

    Read from the member's commit marker. The creating batch's commits are among the table's
    first, and its replay is the stream's next batch, so while the log is shorter than the
    markers `committed_batch` reads the answer is exact; past that, the member is there.
    """
    version = delta_log.table_version(path)
    if version is None or version >= delta_log.MARKER_SCAN_LIMIT:
        return False
    return delta_log.committed_batch(path, UNKNOWN_WRITER) is None


def _rekey_facts(
    spark: SparkSession, warehouse: Path, changed: DataFrame, users: DataFrame
) -> None:
    """Give the facts of the changed users, from each one's earliest change on, the version
    now valid at their time. Facts before a user's earliest change of this batch keep theirs."""
    if not table_exists(warehouse, GOLD_FACT_EVENTS):
        return
    earliest = changed.agg(F.min(F.to_date("since")).alias("day")).first()
    if earliest is None or earliest["day"] is None:
        return
    facts = read_table(spark, warehouse, GOLD_FACT_EVENTS)
    candidates = (
        facts.where(F.col("event_date") >= F.lit(earliest["day"]))
        .join(changed, gold.USER_KEY)
        .where(F.col("event_time") >= F.col("since"))
    )
    rekeyed = gold.rekeyed_facts(candidates, users)
    dates = sorted(row.event_date for row in rekeyed.select("event_date").distinct().collect())
    if not dates:
        return
    target = F.col("t.event_date").isin(dates)
    (
        DeltaTable.forPath(spark, table_path(warehouse, GOLD_FACT_EVENTS))
        .alias("t")
        .merge(rekeyed.alias("s"), (F.col("t.event_id") == F.col("s.event_id")) & target)
        .whenMatchedUpdate(set={gold.USER_SK: F.col(f"s.{gold.USER_SK}")})
        .execute()
    )


def _check_users(
    users: DataFrame,
    changed: DataFrame,
    contract: Contract,
    batch_id: int,
    changes_read: int,
    on_batch: BatchReport | None,
) -> None:
    """Evaluate `gold_dim_user`'s rules on the versions of the users this batch changed,
    and report their counts (before failing on a `fail` rule: the counts are kept)."""
    touched = users.join(changed.select(gold.USER_KEY), gold.USER_KEY, "left_semi")
    with dim_user_view(users):
        evaluated = rules_engine.evaluate(touched, contract.rules)
        metrics = rules_engine.measure(evaluated, GOLD_DIM_USER, contract.rules)
        report_batch(on_batch, batch_id, changes_read, {GOLD_DIM_USER: metrics})
        rules_engine.raise_on_failures(
            evaluated, GOLD_DIM_USER, contract.rules, metrics, key_columns=(gold.USER_SK,)
        )


# ------------------------------------------------------------------- facts and aggregates


def run_gold(
    spark: SparkSession,
    *,
    warehouse: Path,
    contract: Contract | None = None,
    on_batch: BatchReport | None = None,
) -> None:
    """Bring the star schema and the aggregates up to date with the new silver rows.

    Raises:
        ExpectationFailedError: a new fact fails an `expect_or_fail` rule; nothing of that
            micro-batch is written, and the next run retries it.
    """

    def write_batch(events: DataFrame, batch_id: int) -> None:
        # The batch's own session: temporary views (the rules' gold_dim_user) live there.
        rows, metrics = _write_batch(events.sparkSession, warehouse, events, batch_id, contract)
        report_batch(on_batch, batch_id, rows, {GOLD_FACT_EVENTS: metrics})

    run_stream(
        spark.readStream.format("delta")
        .option("skipChangeCommits", "true")  # erasures and key rotations: nothing new
        .load(table_path(warehouse, SILVER_EVENTS)),
        write_batch,
        checkpoint=checkpoint_path(warehouse, GOLD_STREAM),
        flow=GOLD_FACT_EVENTS,
    )


def _ensure_tables(warehouse: Path, shapes: dict[str, DataFrame]) -> None:
    """Create the gold tables that do not exist yet, empty and clustered, from their shapes.

    Every gold table exists after the first run, even one no row has reached yet.
    """
    missing = [table for table in shapes if not table_exists(warehouse, table)]
    in_parallel(
        next(iter(shapes.values())).sparkSession,
        {
            table: functools.partial(
                create_table_if_absent,
                shapes[table].sparkSession,
                table_path(warehouse, table),
                shapes[table].schema,
                cluster_by=gold.CLUSTERING.get(table, ()),
            )
            for table in missing
        },
    )


def _write_batch(
    spark: SparkSession,
    warehouse: Path,
    batch: DataFrame,
    batch_id: int,
    contract: Contract | None,
) -> tuple[int, list[rules_engine.ExpectationMetric]]:
    """Write one batch of silver rows to gold; return how many it held, and the facts'
    expectation metrics."""
    events = batch.localCheckpoint()  # read the new silver rows once, for every table below
    users = user_dimension(spark, warehouse)
    facts_path = table_path(warehouse, GOLD_FACT_EVENTS)
    new_facts = gold.fact_events(events, users=users)
    _ensure_tables(warehouse, gold.gold_tables(events, users))
    metrics: list[rules_engine.ExpectationMetric] = []
    with dim_user_view(users):
        if contract is None:
            append_once(new_facts, facts_path, query=GOLD_STREAM, batch_id=batch_id)
        else:
            metrics = write_checked(
                rules_engine.evaluate(new_facts, contract.rules),
                lambda kept: append_once(
                    rules_engine.without_evaluation(kept, contract.rules),
                    facts_path,
                    query=GOLD_STREAM,
                    batch_id=batch_id,
                ),
                contract,
            )
    dates = sorted(row.event_date for row in events.select("event_date").distinct().collect())
    writes: dict[str, Callable[[], None]] = {
        GOLD_DIM_PAGE: lambda: _merge_pages(warehouse, events),
        GOLD_DIM_DEVICE: lambda: _add_members(
            warehouse, GOLD_DIM_DEVICE, gold.dim_device(events), gold.DEVICE_SK
        ),
        GOLD_DIM_DATE: lambda: _add_dates(spark, warehouse, dates),
        GOLD_DAILY_ACTIVE_USERS: lambda: _refresh_daily_active_users(spark, warehouse, dates),
        GOLD_SESSIONS: lambda: _refresh_sessions_and_funnel(spark, warehouse, events, dates),
    }
    in_parallel(spark, writes)
    return events.count(), metrics


def _facts(spark: SparkSession, warehouse: Path, dates: Iterable[date]) -> DataFrame:
    """The facts of the given event dates (Delta skips the files of other dates)."""
    return read_table(spark, warehouse, GOLD_FACT_EVENTS).where(
        F.col("event_date").isin(sorted(set(dates)))
    )


def _merge_pages(warehouse: Path, events: DataFrame) -> None:
    """New pages join `gold_dim_page`; a title seen later than the stored one replaces it."""
    pages = gold.dim_page(events)
    path = table_path(warehouse, GOLD_DIM_PAGE)
    newer = F.struct(F.col(f"s.{gold.PAGE_TITLE_AT}"), F.col("s.page_title")) > F.struct(
        F.col(f"t.{gold.PAGE_TITLE_AT}"), F.col("t.page_title")
    )
    (
        DeltaTable.forPath(events.sparkSession, path)
        .alias("t")
        .merge(pages.alias("s"), F.col(f"t.{gold.PAGE_SK}") == F.col(f"s.{gold.PAGE_SK}"))
        .whenMatchedUpdate(
            condition=newer,
            set={
                "page_title": F.col("s.page_title"),
                gold.PAGE_TITLE_AT: F.col(f"s.{gold.PAGE_TITLE_AT}"),
            },
        )
        .whenNotMatchedInsertAll()
        .execute()
    )


def _add_members(warehouse: Path, table: str, members: DataFrame, key: str) -> None:
    """Append the members of a small dimension that it does not hold yet."""
    spark = members.sparkSession
    if table_exists(warehouse, table):
        members = members.join(read_table(spark, warehouse, table).select(key), key, "left_anti")
    rows = members.collect()
    if rows:
        spark.createDataFrame(rows, members.schema).write.format("delta").mode("append").save(
            table_path(warehouse, table)
        )


def _add_dates(spark: SparkSession, warehouse: Path, dates: list[date]) -> None:
    """Extend `gold_dim_date` to span the first to the last event date (and hold the unknown
    member, even before any event)."""
    span = list(dates)
    if table_exists(warehouse, GOLD_DIM_DATE):
        known = read_table(spark, warehouse, GOLD_DIM_DATE).agg(
            F.min("date").alias("first"), F.max("date").alias("last")
        )
        span += [value for row in known.collect() for value in row if value is not None]
    ends = [(min(span),), (max(span),)] if span else []
    calendar = spark.createDataFrame(ends, "event_date date")
    _add_members(warehouse, GOLD_DIM_DATE, gold.dim_date(calendar), gold.DATE_SK)


def _rewrite_days(warehouse: Path, table: str, rows: DataFrame, days: list[date]) -> None:
    """Replace the rows of the given days (column `event_date`) of a small table by `rows`.

    One row per day: the table is rewritten whole, which costs less than a MERGE.
    """
    path = table_path(warehouse, table)
    spark = rows.sparkSession
    if table_exists(warehouse, table):
        kept = read_table(spark, warehouse, table).where(~F.col("event_date").isin(days))
        rows = kept.unionByName(rows)
    rows.localCheckpoint().write.format("delta").mode("overwrite").save(path)


def _refresh_daily_active_users(spark: SparkSession, warehouse: Path, dates: list[date]) -> None:
    """Recompute the touched days of `gold_daily_active_users` from their facts."""
    if dates:
        rows = gold.daily_active_users(_facts(spark, warehouse, dates))
        _rewrite_days(warehouse, GOLD_DAILY_ACTIVE_USERS, rows, dates)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _refresh_sessions_and_funnel(
    spark: SparkSession, warehouse: Path, events: DataFrame, dates: list[date]
) -> None:
    """Recompute the sessions the new events touch, then the funnel of their start days.

    A touched session's facts lie on its known days (from its stored start to its end) or
    on the batch's days, so only those days' facts are read.
    """
    touched = events.where(F.col("session_id").isNotNull()).select("session_id").distinct()
    sessions_path = table_path(warehouse, GOLD_SESSIONS)
    stored: list[Row] = []
    if table_exists(warehouse, GOLD_SESSIONS):
        stored = (
            read_table(spark, warehouse, GOLD_SESSIONS)
            .join(touched, "session_id", "left_semi")
            .select(
                "session_id",
                F.to_date("started_at").alias("first"),
                F.to_date("ended_at").alias("last"),
            )
            .collect()
        )
    old_days = {day for row in stored for day in _days(row["first"], row["last"])}
    session_facts = _facts(spark, warehouse, old_days | set(dates)).join(
        touched, "session_id", "left_semi"
    )
    rows = gold.sessions(session_facts).localCheckpoint()
    known = [row.session_id for row in stored]
    # New sessions are appended; only the sessions already stored are replaced, by a MERGE.
    rows.where(~F.col("session_id").isin(known)).write.format("delta").mode("append").save(
        sessions_path
    )
    if known:
        replace_rows(
            rows.where(F.col("session_id").isin(known)),
            sessions_path,
            keys=["session_id"],
            touched=spark.createDataFrame([(key,) for key in known], "session_id string"),
            target_filter=F.col("t.session_date").isin(sorted(old_days)),
        )
    funnel_days = sorted(
        {row.session_date for row in rows.select("session_date").distinct().collect()} | old_days
    )
    if funnel_days:
        with cost.flow(spark, GOLD_FUNNEL_DAILY):
            started = read_table(spark, warehouse, GOLD_SESSIONS).where(
                F.col("session_date").isin(funnel_days)
            )
            _rewrite_days(warehouse, GOLD_FUNNEL_DAILY, gold.funnel_daily(started), funnel_days)


# ------------------------------------------------------------------------------ full refresh


def _change_log(warehouse: Path) -> Path:
    return Path(scd2.change_log_path(table_path(warehouse, GOLD_DIM_USER)))


def _has_change_log(warehouse: Path) -> bool:
    log = _change_log(warehouse)
    return table_exists(log.parent, log.name)


def _logged_user_dimension(spark: SparkSession, warehouse: Path) -> DataFrame:
    """`gold_dim_user` recomputed from every change in its change log."""
    if not _has_change_log(warehouse):
        return gold.empty_user_dimension(spark)
    return gold.dim_user(spark.read.format("delta").load(str(_change_log(warehouse))))


def full_refresh(spark: SparkSession, warehouse: Path) -> dict[str, DataFrame]:
    """Every gold table recomputed from `silver_events` and the user change log.

    The incremental tables must equal these, row for row: the scenarios and the properties
    check it, and `refresh_gold` writes them. Without a change log (no user change ever
    arrived) there is no `gold_dim_user`, and every fact points at the unknown member.
    """
    users = _logged_user_dimension(spark, warehouse)
    refreshed: dict[str, DataFrame] = {}
    if _has_change_log(warehouse):
        refreshed[GOLD_DIM_USER] = users
    if table_exists(warehouse, SILVER_EVENTS):
        refreshed |= gold.gold_tables(read_table(spark, warehouse, SILVER_EVENTS), users)
    return refreshed


def refresh_gold(spark: SparkSession, warehouse: Path) -> None:
    """Replace every gold table by its full recomputation (`full_refresh`), one commit each.

    Run after the streaming stages, so that their checkpoints and the tables agree.
    """
    with cost.flow(spark, GOLD_DIM_USER):
        users = _logged_user_dimension(spark, warehouse).localCheckpoint()
        if table_exists(warehouse, GOLD_DIM_USER):
            replace_table(users, table_path(warehouse, GOLD_DIM_USER))
    if not table_exists(warehouse, SILVER_EVENTS):
        return
    tables = gold.gold_tables(read_table(spark, warehouse, SILVER_EVENTS), users)
    for table, frame in tables.items():
        with cost.flow(spark, table):
            replace_table(
                frame, table_path(warehouse, table), cluster_by=gold.CLUSTERING.get(table, ())
            )
