"""Gold: the SCD2 user dimension, then the star schema and aggregates, incrementally.

* `run_user_dimension`: one streaming query over the CDC files of `<landing>/user_changes`
  (checkpoint `gold_dim_user`); each micro-batch is merged into `gold_dim_user` by
  `pipeline.storage.scd_merge.merge_changes` (which touches only the batch's users), and the facts
  those
  changes re-key (a late change that splits a version, a user whose events came before
  their first change) get their new `user_sk`.
* `write_gold`: gold's part of an `events` micro-batch. The silver rows it wrote become new
  facts, new dimension members, and the aggregates of the days and sessions they touch,
  recomputed from the facts and written over those days, as Lakeflow refreshes a
  materialized view incrementally. Nothing reads the whole history.
* `refresh_gold` recomputes every gold table from silver and the user change log
  (`full_refresh`), as a Lakeflow full refresh does: the oracle the incremental tables equal.

Every write of a batch is idempotent or a recomputation of the batch's keys from the facts,
so a batch replayed after a crash gives the same tables.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from datetime import UTC, date, timedelta
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from pipeline.run import cost
from pipeline.run.enforcement import Contract, dim_user_view, write_checked
from pipeline.run.streaming import BatchReport, in_parallel, report_batch, run_stream
from pipeline.storage import delta_log, scd_merge
from pipeline.storage.delta_tables import (
    append_once,
    create_table_if_absent,
    replace_table,
    replace_where,
)
from pipeline.storage.tables import checkpoint_path, read_table, table_exists, table_path
from pipeline.table_names import (
    EVENTS_STREAM,
    GOLD_DAILY_ACTIVE_USERS,
    GOLD_DIM_DATE,
    GOLD_DIM_DEVICE,
    GOLD_DIM_PAGE,
    GOLD_DIM_USER,
    GOLD_FACT_EVENTS,
    GOLD_FUNNEL_DAILY,
    GOLD_SESSIONS,
    SILVER_EVENTS,
    USER_CHANGES_DIR,
    USER_MERGE_WRITER,
    USER_STREAM,
)
from pipeline.transforms import expectations as rules_engine
from pipeline.transforms import gold
from pipeline.transforms.schemas import USER_CHANGE_SCHEMA

__all__ = [
    "full_refresh",
    "refresh_gold",
    "run_user_dimension",
    "user_dimension",
    "write_gold",
]


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
        pseudonymized = gold.user_changes(batch, keys=keys)
        merged = scd_merge.merge_changes(
            spark,
            pseudonymized,
            path=path,
            derived_columns=gold.user_derived_columns(),
            # Not clustered by `user_key`: clustering needs statistics, and Delta keeps
            # none on pseudonyms (`pipeline.transforms.schemas.PERSONAL_COLUMNS`).
            cluster_by=(),
            batch_id=batch_id,
            app_id=USER_MERGE_WRITER,
            on_create=gold.with_unknown_user,
            **gold.user_cdc_options(),
        )
        changed = pseudonymized.groupBy(gold.USER_KEY).agg(F.min("changed_at").alias("since"))
        users = read_table(spark, warehouse, GOLD_DIM_USER)
        if merged.first is not None:
            earliest = merged.first["changed_at"]  # type: ignore[index]  # a Row
            _rekey_facts(spark, warehouse, changed, users, earliest.astimezone(UTC).date())
        if contract is None:
            report_batch(on_batch, batch_id, {GOLD_DIM_USER: merged.changes})
        else:
            _check_users(users, changed, contract, batch_id, merged.changes, on_batch)

    run_stream(
        changes, merge_batch, checkpoint=checkpoint_path(warehouse, USER_STREAM), flow=GOLD_DIM_USER
    )


def _rekey_facts(
    spark: SparkSession, warehouse: Path, changed: DataFrame, users: DataFrame, earliest: date
) -> None:
    """Give the facts of the changed users, from each one's earliest change on, the version
    now valid at their time. Facts before a user's earliest change of this batch keep theirs.

    The facts of the users and days concerned are rewritten in one commit
    (`replace_where`); none when no fact's version changed.
    """
    if not table_exists(warehouse, GOLD_FACT_EVENTS):
        return
    facts = read_table(spark, warehouse, GOLD_FACT_EVENTS)
    candidates = (
        facts.where(F.col("event_date") >= F.lit(earliest))
        .join(F.broadcast(changed), gold.USER_KEY)
        .where(F.col("event_time") >= F.col("since"))
    )
    current = gold.with_user_version(
        candidates.select("event_id", "event_date", "event_time", gold.USER_KEY, gold.USER_SK),
        users,
    )
    moved = (
        current.where(F.col(gold.VERSION_USER_SK) != F.col(gold.USER_SK))
        .select("event_date", gold.USER_KEY)
        .distinct()
        .collect()
    )
    if not moved:
        return
    dates = sorted({row["event_date"] for row in moved})
    keys = sorted({row[gold.USER_KEY] for row in moved})
    concerned = F.col("event_date").isin(dates) & F.col(gold.USER_KEY).isin(keys)
    rows = gold.with_user_version(facts.where(concerned), users).withColumn(
        gold.USER_SK, F.col(gold.VERSION_USER_SK)
    )
    replace_where(rows.select(*facts.columns), table_path(warehouse, GOLD_FACT_EVENTS), concerned)


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
        report_batch(on_batch, batch_id, {GOLD_DIM_USER: changes_read}, {GOLD_DIM_USER: metrics})
        rules_engine.raise_on_failures(
            evaluated, GOLD_DIM_USER, contract.rules, metrics, key_columns=(gold.USER_SK,)
        )


# ------------------------------------------------------------------- facts and aggregates


def write_gold(
    spark: SparkSession,
    warehouse: Path,
    events: DataFrame,
    *,
    dates: list[date],
    users: DataFrame,
    batch_id: int,
    contract: Contract | None = None,
) -> list[rules_engine.ExpectationMetric]:
    """Bring the star schema and the aggregates up to date with a batch's new silver rows.

    Args:
        spark: the batch's session (temporary views, such as the rules' `gold_dim_user`,
            live there).
        warehouse: the warehouse.
        events: the silver rows the batch wrote.
        dates: event dates covering every one of `events`.
        users: the user dimension (`user_dimension`), read once for the run.
        batch_id: the micro-batch.
        contract: the facts' rules.

    Returns:
        The expectation metrics of the facts' rules.

    Raises:
        ExpectationFailedError: a new fact fails an `expect_or_fail` rule; nothing of the
            batch's gold part is written, and the next run retries it.
    """
    facts_path = table_path(warehouse, GOLD_FACT_EVENTS)
    new_facts = gold.fact_events(events, users=users)
    if not table_exists(warehouse, GOLD_FACT_EVENTS):
        create_table_if_absent(
            spark, facts_path, new_facts.schema, cluster_by=gold.CLUSTERING[GOLD_FACT_EVENTS]
        )
    metrics: list[rules_engine.ExpectationMetric] = []
    with dim_user_view(users):
        if contract is None:
            append_once(new_facts, facts_path, query=EVENTS_STREAM, batch_id=batch_id)
        else:
            metrics = write_checked(
                rules_engine.evaluate(new_facts, contract.rules),
                lambda kept: append_once(
                    rules_engine.without_evaluation(kept, contract.rules),
                    facts_path,
                    query=EVENTS_STREAM,
                    batch_id=batch_id,
                ),
                contract,
            )
    writes: dict[str, Callable[[], None]] = {
        GOLD_DIM_PAGE: lambda: _merge_pages(warehouse, events),
        GOLD_DIM_DEVICE: lambda: _add_devices(warehouse, events),
        GOLD_DIM_DATE: lambda: _add_dates(spark, warehouse, dates),
        GOLD_SESSIONS: lambda: _refresh_aggregates(spark, warehouse, events, dates),
    }
    in_parallel(spark, writes)
    return metrics


def ensure_tables(spark: SparkSession, warehouse: Path, silver: StructType) -> None:
    """Create the gold tables that do not exist yet, empty (and clustered): every gold table
    exists after the first run, even when no event has reached gold yet.

    `silver` is the schema of `silver_events`' rows.
    """
    users = gold.empty_user_dimension(spark)
    events = spark.createDataFrame([], silver)
    shapes = gold.gold_tables(events, users)
    in_parallel(
        spark,
        {
            table: functools.partial(
                create_table_if_absent,
                spark,
                table_path(warehouse, table),
                shapes[table].schema,
                cluster_by=gold.CLUSTERING.get(table, ()),
            )
            for table in shapes
            if not table_exists(warehouse, table)
        },
    )


def _facts(spark: SparkSession, warehouse: Path, dates: Iterable[date]) -> DataFrame:
    """The facts of the given event dates (Delta skips the files of other dates)."""
    return read_table(spark, warehouse, GOLD_FACT_EVENTS).where(
        F.col("event_date").isin(sorted(set(dates)))
    )


def _merge_pages(warehouse: Path, events: DataFrame) -> None:
    """New pages join `gold_dim_page`; a title seen later than the stored one replaces it.

    The stored rows of the batch's pages and the batch's own are reduced to one row per page
    (the title seen last), and written over those pages.
    """
    spark = events.sparkSession
    path = table_path(warehouse, GOLD_DIM_PAGE)
    pages = gold.dim_page(events)
    if not table_exists(warehouse, GOLD_DIM_PAGE):
        replace_table(pages, path, cluster_by=gold.CLUSTERING[GOLD_DIM_PAGE])
        return
    touched = sorted(row[0] for row in pages.select(gold.PAGE_SK).collect())
    concerned = F.col(gold.PAGE_SK).isin(touched)
    stored = read_table(spark, warehouse, GOLD_DIM_PAGE).where(concerned)
    latest = F.max(F.struct(F.col(gold.PAGE_TITLE_AT), F.col("page_title")))
    merged = (
        stored.unionByName(pages)
        .groupBy(gold.PAGE_SK)
        .agg(
            F.first("page_url", ignorenulls=True).alias("page_url"),
            latest.getField("page_title").alias("page_title"),
            F.first("page_host", ignorenulls=True).alias("page_host"),
            F.first("page_path", ignorenulls=True).alias("page_path"),
            latest.getField(gold.PAGE_TITLE_AT).alias(gold.PAGE_TITLE_AT),
        )
    )
    replace_where(merged.select(*pages.columns), path, concerned)


def _add_devices(warehouse: Path, events: DataFrame) -> None:
    """Append the devices `gold_dim_device` does not hold yet (its unknown member first)."""
    spark = events.sparkSession
    members = gold.dim_device(events)
    if table_exists(warehouse, GOLD_DIM_DEVICE):
        stored = read_table(spark, warehouse, GOLD_DIM_DEVICE).select(gold.DEVICE_SK)
        members = members.join(stored, gold.DEVICE_SK, "left_anti")
    rows = members.collect()
    if rows:
        spark.createDataFrame(rows, members.schema).write.format("delta").mode("append").save(
            table_path(warehouse, GOLD_DIM_DEVICE)
        )


def _add_dates(spark: SparkSession, warehouse: Path, dates: list[date]) -> None:
    """Extend `gold_dim_date` to span the first to the last event date (and hold the unknown
    member, even before any event).

    The span it covers is read from its Delta log's statistics: no Spark job.
    """
    path = Path(table_path(warehouse, GOLD_DIM_DATE))
    known = (
        delta_log.column_bounds(path, "date") if table_exists(warehouse, GOLD_DIM_DATE) else None
    )
    if known is None and table_exists(warehouse, GOLD_DIM_DATE):
        bounds = (
            read_table(spark, warehouse, GOLD_DIM_DATE)
            .agg(F.min("date").cast("string"), F.max("date").cast("string"))
            .first()
        )
        known = None if bounds is None or bounds[0] is None else (bounds[0], bounds[1])
    span = sorted(dates)
    new_days: list[date] = []
    if known is None:
        new_days = _days(span[0], span[-1]) if span else []
    elif span:
        first, last = date.fromisoformat(known[0]), date.fromisoformat(known[1])
        new_days = [
            d for d in _days(min(first, span[0]), max(last, span[-1])) if not first <= d <= last
        ]
    created = not table_exists(warehouse, GOLD_DIM_DATE)
    if not new_days and not created:
        return
    calendar = spark.createDataFrame([(day,) for day in new_days], "date date")
    rows = gold.date_members(calendar, unknown_member=created)
    rows.write.format("delta").mode("append").save(str(path))


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _refresh_aggregates(
    spark: SparkSession, warehouse: Path, events: DataFrame, dates: list[date]
) -> None:
    """Recompute the sessions the new events touch, and the days they lie on: the sessions,
    the funnel and the daily active users of those days, each written over them.

    A touched session's facts lie on its stored days (from its stored start to its end) or
    on the batch's days, so only those days' facts and sessions are read.
    """
    touched = events.where(F.col("session_id").isNotNull()).select("session_id").distinct()
    stored_days: set[date] = set()
    if table_exists(warehouse, GOLD_SESSIONS):
        spans = (
            read_table(spark, warehouse, GOLD_SESSIONS)
            .join(touched, "session_id", "left_semi")
            .select(F.to_date("started_at").alias("first"), F.to_date("ended_at").alias("last"))
            .distinct()
            .collect()
        )
        stored_days = {day for row in spans for day in _days(row["first"], row["last"])}
    days = sorted(stored_days | set(dates))
    on_days = F.col("event_date").isin(days)
    # Kept in memory: it feeds two writes, and a Delta write computes its input again.
    facts = _facts(spark, warehouse, days).localCheckpoint()

    def sessions_and_funnel() -> None:
        renewed = gold.sessions(facts.join(touched, "session_id", "left_semi"))
        if table_exists(warehouse, GOLD_SESSIONS):
            kept = (
                read_table(spark, warehouse, GOLD_SESSIONS)
                .where(F.col("session_date").isin(days))
                .join(touched, "session_id", "left_anti")
            )
            renewed = kept.unionByName(renewed)
        sessions = renewed.localCheckpoint()
        replace_where(
            sessions,
            table_path(warehouse, GOLD_SESSIONS),
            F.col("session_date").isin(days),
            cluster_by=gold.CLUSTERING[GOLD_SESSIONS],
            days=("session_date", days),
        )
        with cost.flow(spark, GOLD_FUNNEL_DAILY):
            replace_where(
                gold.funnel_daily(sessions),
                table_path(warehouse, GOLD_FUNNEL_DAILY),
                on_days,
                days=("event_date", days),
            )

    in_parallel(
        spark,
        {
            GOLD_SESSIONS: sessions_and_funnel,
            GOLD_DAILY_ACTIVE_USERS: lambda: replace_where(
                gold.daily_active_users(facts),
                table_path(warehouse, GOLD_DAILY_ACTIVE_USERS),
                on_days,
                days=("event_date", days),
            ),
        },
    )


# ------------------------------------------------------------------------------ full refresh


def _change_log(warehouse: Path) -> Path:
    return Path(scd_merge.change_log_path(table_path(warehouse, GOLD_DIM_USER)))


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
    Silver and the user dimension are each read and computed once (`localCheckpoint`), not
    once per gold table: a check of a small warehouse takes 40% less time.
    """
    users = _logged_user_dimension(spark, warehouse).localCheckpoint()
    refreshed: dict[str, DataFrame] = {}
    if _has_change_log(warehouse):
        refreshed[GOLD_DIM_USER] = users
    if table_exists(warehouse, SILVER_EVENTS):
        silver = read_table(spark, warehouse, SILVER_EVENTS).localCheckpoint()
        refreshed |= gold.gold_tables(silver, users)
    return refreshed


def refresh_gold(spark: SparkSession, warehouse: Path) -> None:
    """Replace every gold table by its full recomputation (`full_refresh`), one commit each.

    One after the other: written at once, they share silver's Delta snapshot, and which flow
    computed it would differ between runs (`nox -s cost` counts each flow's jobs).

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
