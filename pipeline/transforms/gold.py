"""Gold: a star schema over silver events and the SCD2 user dimension, plus daily aggregates.

Every builder is a pure function from DataFrames to a DataFrame; `pipeline.run.runner` writes the
results as Delta tables. Surrogate keys are deterministic hashes of the natural key (and, for
the user dimension, of the version's start), so a rebuild gives every row the key it had.

Each dimension holds an "unknown member" with the reserved key -1 (Kimball): a fact whose
dimension value is missing points at it, so every event is in `gold_fact_events` exactly once
and inner joins to the dimensions lose nothing. An event gets the unknown user when no version
of its user is valid at its event time: before the user's first change, after a delete, or
when the event carries no user at all.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.table_names import (
    GOLD_DAILY_ACTIVE_USERS,
    GOLD_DIM_DATE,
    GOLD_DIM_DEVICE,
    GOLD_DIM_PAGE,
    GOLD_FACT_EVENTS,
    GOLD_FUNNEL_DAILY,
    GOLD_SESSIONS,
)
from pipeline.transforms.built_once import built_once
from pipeline.transforms.pseudonymize import hmac_sha256, with_key
from pipeline.transforms.scd2 import END_AT, START_AT, CdcOptions, apply_changes

__all__ = [
    "CLUSTERING",
    "DATE_SK",
    "DEVICE_COLUMNS",
    "DEVICE_SK",
    "DIM_USER_SCHEMA",
    "FUNNEL_STEPS",
    "PAGE_SK",
    "PAGE_TITLE_AT",
    "UNKNOWN_KEY",
    "USER_KEY",
    "USER_SK",
    "VERSION_USER_SK",
    "daily_active_users",
    "date_key",
    "date_members",
    "dim_date",
    "dim_device",
    "dim_page",
    "dim_user",
    "dim_user_from_versions",
    "empty_user_dimension",
    "fact_events",
    "funnel_daily",
    "gold_tables",
    "rekeyed_facts",
    "sessions",
    "surrogate_key",
    "user_cdc_options",
    "user_changes",
    "user_derived_columns",
    "with_unknown_user",
    "with_user_version",
]

UNKNOWN_KEY = -1
"""The surrogate key of every dimension's unknown member."""

USER_KEY = "user_key"
USER_SK = "user_sk"
PAGE_SK = "page_sk"
DEVICE_SK = "device_sk"
DATE_SK = "date_sk"
VERSION_USER_SK = "version_user_sk"
PAGE_TITLE_AT = "page_title_at"
DEVICE_COLUMNS = ("device_type", "device_os", "device_browser", "user_agent")
FUNNEL_STEPS = ("page_view", "add_to_cart", "checkout", "purchase")


def surrogate_key(*natural_key: Column) -> Column:
    """A 64-bit key from the natural key's values: nulls and boundaries count, -1 never occurs.

    The values are hashed as one JSON object, so ("a", null) and (null, "a") differ.
    Timestamps should be passed as numbers (`unix_micros`) so the key does not depend on the
    session time zone.
    """
    fields = F.struct(*[value.alias(f"k{i}") for i, value in enumerate(natural_key)])
    hashed = F.xxhash64(F.to_json(fields))
    return F.when(hashed == UNKNOWN_KEY, F.lit(UNKNOWN_KEY - 1)).otherwise(hashed)


def date_key(date: Column) -> Column:
    """The date dimension's key: yyyymmdd as an int (20261101), -1 for a null date."""
    smart = F.year(date) * 10_000 + F.month(date) * 100 + F.dayofmonth(date)
    return F.coalesce(smart, F.lit(UNKNOWN_KEY))


def _with_unknown_member(dimension: DataFrame, key: str) -> DataFrame:
    """The dimension plus its unknown member: `key` = -1, every other column null.

    Spark types the member's missing columns like the dimension's, so the dimension's
    schema is never asked for: Spark Declarative Pipelines forbids that in a query function.
    """
    unknown = dimension.sparkSession.range(1).select(F.lit(UNKNOWN_KEY).alias(key))
    return dimension.unionByName(unknown, allowMissingColumns=True)


# --------------------------------------------------------------------------- the user dimension


def user_changes(raw: DataFrame, *, keys: DataFrame) -> DataFrame:
    """The user CDC feed (`USER_CHANGE_SCHEMA` rows), pseudonymized and typed for the dimension.

    `user_id`, `email` and `full_name` become keyed hashes (`user_key` is the same HMAC as in
    silver, so facts join on it); `changed_at` becomes a UTC timestamp, null when it does not
    parse (the SCD engine then rejects the row as having no sequence value). The projection
    names every column it keeps, so the key columns are gone without a `drop` (which Spark
    Connect 4.2 plans by analysing the input: not possible inside a pipeline definition).
    """
    return with_key(raw, keys).select(
        hmac_sha256(F.col("user_id")).alias(USER_KEY),
        "operation",
        F.try_to_timestamp(F.col("changed_at")).alias("changed_at"),
        "sequence_num",
        hmac_sha256(F.col("email")).alias("email_hash"),
        hmac_sha256(F.col("full_name")).alias("full_name_hash"),
        "plan",
        "country",
        "city",
    )


def user_cdc_options() -> CdcOptions:
    """How the user dimension applies `user_changes`: SCD2 by `user_key`.

    Versions are ordered by `changed_at`, ties broken by `sequence_num`, so `__START_AT` and
    `__END_AT` are structs of the two and `__START_AT.changed_at` is when a version became
    valid. The operation and sequence columns are left out: a change that alters no attribute
    opens no version.
    """
    return {
        "keys": [USER_KEY],
        "sequence_by": F.struct("changed_at", "sequence_num"),
        "apply_as_deletes": "operation = 'DELETE'",
        "except_column_list": ["operation", "changed_at", "sequence_num"],
        "stored_as_scd_type": 2,
    }


def user_derived_columns() -> dict[str, Column]:
    """`user_sk`: a surrogate key per version, from `user_key` and the version's start."""
    start = F.col(START_AT)
    return {
        USER_SK: surrogate_key(
            F.col(USER_KEY),
            F.unix_micros(start.getField("changed_at")),
            start.getField("sequence_num"),
        )
    }


def with_unknown_user(versions: DataFrame) -> DataFrame:
    """The user dimension's versions (with `user_sk`) plus the unknown member."""
    return _with_unknown_member(versions, USER_SK)


DIM_USER_SCHEMA = (
    "user_sk bigint, user_key string, email_hash string, full_name_hash string, plan string, "
    "country string, city string, "
    "__START_AT struct<changed_at: timestamp, sequence_num: bigint>, "
    "__END_AT struct<changed_at: timestamp, sequence_num: bigint>"
)
"""The columns of `gold_dim_user` (`dim_user` output), for a dimension before any change."""


def empty_user_dimension(spark: SparkSession) -> DataFrame:
    """`gold_dim_user` before any user change arrived: the unknown member alone."""
    return with_unknown_user(spark.createDataFrame([], DIM_USER_SCHEMA))


def dim_user(changes: DataFrame) -> DataFrame:
    """`gold_dim_user` from all of `user_changes`, as one batch.

    The runner maintains the same table incrementally with `merge_changes`; this is what it
    must equal.
    """
    return dim_user_from_versions(apply_changes(changes, **user_cdc_options()))


def dim_user_from_versions(versions: DataFrame) -> DataFrame:
    """`gold_dim_user` from SCD2 versions of `user_changes` under `user_cdc_options`.

    The versions come from `apply_changes` here, and from Lakeflow's AUTO CDC
    (`create_auto_cdc_flow(..., stored_as_scd_type=2)`) on Databricks.
    """
    derived = user_derived_columns()
    return with_unknown_user(
        versions.select(*[column.alias(name) for name, column in derived.items()], "*")
    )


# ------------------------------------------------------------------------- other dimensions


@built_once
def _page_key() -> Column:
    url = F.col("page_url")
    return F.when(url.isNotNull(), surrogate_key(url)).otherwise(F.lit(UNKNOWN_KEY))


@built_once
def _device_key() -> Column:
    present = F.coalesce(*[F.col(c) for c in DEVICE_COLUMNS]).isNotNull()
    key = surrogate_key(*[F.col(c) for c in DEVICE_COLUMNS])
    return F.when(present, key).otherwise(F.lit(UNKNOWN_KEY))


def dim_page(events: DataFrame) -> DataFrame:
    """`gold_dim_page`: one row per page URL of silver, with its latest title, host and path.

    `page_title_at` is the event time the title was last seen at: a later batch's title
    replaces it only when seen later (`merge_pages`), so the incremental table equals this.
    """
    latest = F.max(F.struct("event_time", "page_title"))
    pages = (
        events.where(F.col("page_url").isNotNull())
        .groupBy("page_url")
        .agg(
            latest.getField("page_title").alias("title"), latest.getField("event_time").alias("at")
        )
    )
    return _with_unknown_member(
        pages.select(
            _page_key().alias(PAGE_SK),
            "page_url",
            F.col("title").alias("page_title"),
            F.try_parse_url(F.col("page_url"), F.lit("HOST")).alias("page_host"),
            F.try_parse_url(F.col("page_url"), F.lit("PATH")).alias("page_path"),
            F.col("at").alias(PAGE_TITLE_AT),
        ),
        PAGE_SK,
    )


def dim_device(events: DataFrame) -> DataFrame:
    """`gold_dim_device`: one row per (type, OS, browser, user agent) seen in silver.

    Distinct by grouping, not `distinct()`: Spark Connect 4.2 plans a deduplication by
    analysing its input at once, which fails in a pipeline whose input is not built yet.
    """
    devices = events.groupBy(*DEVICE_COLUMNS).agg(F.count(F.lit(1)).alias("events"))
    devices = devices.select(*DEVICE_COLUMNS)
    devices = devices.where(F.coalesce(*[F.col(c) for c in DEVICE_COLUMNS]).isNotNull())
    return _with_unknown_member(
        devices.select(_device_key().alias(DEVICE_SK), *DEVICE_COLUMNS), DEVICE_SK
    )


def dim_date(events: DataFrame) -> DataFrame:
    """`gold_dim_date`: every day from the first to the last event date, with calendar fields."""
    span = events.agg(F.min("event_date").alias("first"), F.max("event_date").alias("last"))
    days = span.select(F.explode(F.sequence("first", "last")).alias("date"))
    return date_members(days, unknown_member=True)


def date_members(days: DataFrame, *, unknown_member: bool) -> DataFrame:
    """`gold_dim_date` rows of the dates in `days`' column `date`, with calendar fields, and
    the unknown member when asked (a dimension's first rows)."""
    members = days.select(*_date_columns())
    return _with_unknown_member(members, DATE_SK) if unknown_member else members


@built_once
def _date_columns() -> tuple[Column | str, ...]:
    date = F.col("date")
    return (
        date_key(date).alias(DATE_SK),
        "date",
        F.year(date).alias("year"),
        F.quarter(date).alias("quarter"),
        F.month(date).alias("month"),
        F.date_format(date, "MMMM").alias("month_name"),
        F.dayofmonth(date).alias("day_of_month"),
        ((F.dayofweek(date) + 5) % 7 + 1).alias("iso_day_of_week"),  # Monday = 1
        F.date_format(date, "EEEE").alias("day_name"),
        F.weekofyear(date).alias("iso_week"),
        F.dayofweek(date).isin(1, 7).alias("is_weekend"),
    )


# ---------------------------------------------------------------------------------- facts


def _versions(users: DataFrame) -> DataFrame:
    return users.where(F.col(USER_KEY).isNotNull()).select(
        F.col(USER_KEY).alias("version_user_key"),
        F.col(USER_SK).alias("version_user_sk"),
        F.col(START_AT).getField("changed_at").alias("valid_from"),
        F.col(END_AT).getField("changed_at").alias("valid_to"),
    )


def with_user_version(events: DataFrame, users: DataFrame) -> DataFrame:
    """`events` (with `user_key` and `event_time`) plus `version_user_sk`: the key of the
    user's version valid at the event time, -1 (the unknown member) when none is.

    Valid means `__START_AT.changed_at <= event_time < __END_AT.changed_at` (an open version
    has no end). Versions of one user never overlap on that axis, so each event matches at
    most one.
    """
    event, version = events.alias("event"), _versions(users).alias("version")
    valid = (
        (F.col("event.user_key") == F.col("version.version_user_key"))
        & (F.col("version.valid_from") <= F.col("event.event_time"))
        & (
            F.col("version.valid_to").isNull()
            | (F.col("event.event_time") < F.col("version.valid_to"))
        )
    )
    return event.join(version, valid, "left").select(
        "event.*",
        F.coalesce(F.col("version.version_user_sk"), F.lit(UNKNOWN_KEY)).alias(VERSION_USER_SK),
    )


def fact_events(events: DataFrame, *, users: DataFrame) -> DataFrame:
    """`gold_fact_events`: one row per silver event, with surrogate keys to every dimension.

    The user key is point in time (`with_user_version`): the version of the event's user
    valid at its event time, or the unknown member.

    Args:
        events: silver events.
        users: the user dimension (`dim_user`, or the table the runner maintains).
    """
    return with_user_version(events, users).select(*_fact_columns())


@built_once
def _fact_columns() -> tuple[Column | str, ...]:
    return (
        "event_id",
        "event_type",
        "event_time",
        "event_date",
        "session_id",
        date_key(F.col("event_date")).alias(DATE_SK),
        F.col(VERSION_USER_SK).alias(USER_SK),
        _page_key().alias(PAGE_SK),
        _device_key().alias(DEVICE_SK),
        "user_key",
        "country",
        "city",
        "product_id",
        "price",
        "currency",
        "quantity",
    )


def rekeyed_facts(facts: DataFrame, users: DataFrame) -> DataFrame:
    """The facts among `facts` whose user version changed: `event_id`, `event_date` and the
    new `user_sk`. A late user change splits a version, or opens the first one of a user
    whose events came first, and the facts after it must point at the new version.
    """
    current = with_user_version(
        facts.select("event_id", "event_date", "event_time", USER_KEY, USER_SK), users
    )
    return current.where(F.col(VERSION_USER_SK) != F.col(USER_SK)).select(
        "event_id", "event_date", F.col(VERSION_USER_SK).alias(USER_SK)
    )


# ----------------------------------------------------------------------------- aggregates


def daily_active_users(facts: DataFrame) -> DataFrame:
    """`gold_daily_active_users`: distinct users, sessions and events per event date."""
    return facts.groupBy("event_date").agg(*_active_user_aggregates())


@built_once
def _active_user_aggregates() -> tuple[Column, ...]:
    return (
        date_key(F.col("event_date")).alias(DATE_SK),
        F.count_distinct(USER_KEY).alias("active_users"),
        F.count_distinct("session_id").alias("sessions"),
        F.count(F.lit(1)).alias("events"),
    )


def _at_or_after(bound: Column) -> Callable[[Column], Column]:
    return lambda time: time >= bound


def _session_summary(facts: DataFrame) -> DataFrame:
    """One row per session: its user, first and last event, counts, and when it reached each
    funnel step. A step is reached by the first event of its type at or after the time the
    previous step was reached.
    """
    aggregates, reached = _session_columns()
    collected = facts.where(F.col("session_id").isNotNull()).groupBy("session_id").agg(*aggregates)
    return collected.select(
        "session_id",
        USER_KEY,
        "started_at",
        "ended_at",
        "event_count",
        "page_view_count",
        *reached,
    )


@built_once
def _session_columns() -> tuple[tuple[Column, ...], tuple[Column, ...]]:
    """The aggregates of a session's events, and when it reached each funnel step."""
    aggregates = (
        F.min(F.struct("event_time", USER_KEY)).getField(USER_KEY).alias(USER_KEY),
        F.min("event_time").alias("started_at"),
        F.max("event_time").alias("ended_at"),
        F.count(F.lit(1)).alias("event_count"),
        F.count_if(F.col("event_type") == "page_view").alias("page_view_count"),
        *[
            F.collect_list(F.when(F.col("event_type") == step, F.col("event_time"))).alias(
                f"{step}_times"  # collect_list skips the nulls of other event types
            )
            for step in FUNNEL_STEPS
        ],
    )
    reached: list[Column] = []
    previous: Column | None = None
    for step in FUNNEL_STEPS:
        times = F.col(f"{step}_times")
        at = F.array_min(times if previous is None else F.filter(times, _at_or_after(previous)))
        reached.append(at.alias(f"{step}_at"))
        previous = at
    return aggregates, tuple(reached)


def funnel_daily(sessions: DataFrame) -> DataFrame:
    """`gold_funnel_daily`: sessions reaching each step of view -> cart -> checkout -> purchase.

    From `gold_sessions` rows (`sessions`): a session counts on the date it started, and
    reaches a step when it has an event of that type at or after the time it reached the
    previous step, so a purchase without a checkout before it does not count. Rates are step
    over previous step; `conversion_rate` is purchases over page views; all are null when the
    denominator is 0.
    """
    counts = sessions.groupBy(F.col("session_date").alias("event_date")).agg(
        date_key(F.col("session_date")).alias(DATE_SK),
        *[F.count(f"{step}_at").alias(f"{step}_sessions") for step in FUNNEL_STEPS],
    )
    rates = [
        F.try_divide(F.col(f"{step}_sessions"), F.col(f"{previous}_sessions")).alias(f"{step}_rate")
        for previous, step in pairwise(FUNNEL_STEPS)
    ]
    conversion = F.try_divide(
        F.col(f"{FUNNEL_STEPS[-1]}_sessions"), F.col(f"{FUNNEL_STEPS[0]}_sessions")
    ).alias("conversion_rate")
    return counts.select("*", *rates, conversion)


def sessions(facts: DataFrame) -> DataFrame:
    """`gold_sessions`: one row per session: user, start, end, duration, events, conversion,
    and when it reached each funnel step (`page_view_at`, ..., `purchase_at`).

    `converted` means the session reached a purchase through the funnel (see `funnel_daily`).
    """
    return _session_summary(facts).select(*_session_row())


@built_once
def _session_row() -> tuple[Column | str, ...]:
    started = F.col("started_at")
    return (
        "session_id",
        F.to_date(started).alias("session_date"),
        date_key(F.to_date(started)).alias(DATE_SK),
        USER_KEY,
        "started_at",
        "ended_at",
        ((F.unix_micros("ended_at") - F.unix_micros(started)) / 1e6).alias("duration_seconds"),
        "event_count",
        "page_view_count",
        F.col(f"{FUNNEL_STEPS[-1]}_at").isNotNull().alias("converted"),
        *[f"{step}_at" for step in FUNNEL_STEPS],
    )


# ---------------------------------------------------------------------------- full refresh


def gold_tables(events: DataFrame, users: DataFrame) -> dict[str, DataFrame]:
    """Every gold table but the user dimension, recomputed from all of silver (`events`)
    and the user dimension: a full refresh, which the incremental tables must equal."""
    facts = fact_events(events, users=users)
    session_rows = sessions(facts)
    return {
        GOLD_DIM_PAGE: dim_page(events),
        GOLD_DIM_DEVICE: dim_device(events),
        GOLD_DIM_DATE: dim_date(events),
        GOLD_FACT_EVENTS: facts,
        GOLD_DAILY_ACTIVE_USERS: daily_active_users(facts),
        GOLD_FUNNEL_DAILY: funnel_daily(session_rows),
        GOLD_SESSIONS: session_rows,
    }


CLUSTERING: dict[str, tuple[str, ...]] = {
    GOLD_DIM_PAGE: (PAGE_SK,),
    GOLD_FACT_EVENTS: ("event_date",),
    GOLD_SESSIONS: ("session_date",),
}
"""The liquid clustering keys of the gold tables that grow with the history. The others (one
row per day or per device) fit in one file: clustering would have nothing to skip, and they
are rewritten whole when they change."""
