"""Gold builders on hand-made data: point-in-time user keys around version boundaries, the
dimensions' unknown members, and the aggregates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.transforms import gold
from pipeline.transforms.pseudonymize import hmac_sha256, with_key
from pipeline.transforms.schemas import USER_CHANGE_SCHEMA

EVENTS = (
    "event_id string, event_type string, event_time timestamp, session_id string, "
    "user_id string, page_url string, page_title string, device_type string, device_os string, "
    "device_browser string, user_agent string, country string, city string, product_id string, "
    "price double, currency string, quantity int"
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def silver_like(
    spark: SparkSession, keys: DataFrame, events: list[tuple[str, str, str, str, str | None]]
) -> DataFrame:
    """Silver-shaped events from (event_id, event_type, event_time, session_id, user_id)."""
    rows = [
        (
            event_id,
            event_type,
            at(time),
            session,
            user,
            "https://shop.example.com/p/1?ref=x",
            "Product 1",
            "mobile",
            "iOS",
            "Safari",
            "Mozilla/5.0",
            "DE",
            "Berlin",
            None,
            None,
            None,
            None,
        )
        for event_id, event_type, time, session, user in events
    ]
    raw = spark.createDataFrame(rows, EVENTS)
    user_key = hmac_sha256(F.col("user_id")).alias("user_key")
    keyed = with_key(raw, keys).select(*raw.columns, user_key)
    return keyed.drop("user_id").withColumn("event_date", F.to_date("event_time"))


def user_changes(spark: SparkSession, keys: DataFrame, rows: list[tuple[Any, ...]]) -> DataFrame:
    """Pseudonymized changes from (user_id, operation, sequence_num, changed_at, plan)."""
    full = [
        (user, op, seq, changed, f"{user}@example.com", user.upper(), plan, "DE", "Berlin")
        for user, op, seq, changed, plan in rows
    ]
    return gold.user_changes(spark.createDataFrame(full, USER_CHANGE_SCHEMA), keys=keys)


@pytest.fixture(scope="module")
def users(spark: SparkSession, keys: DataFrame) -> DataFrame:
    return gold.dim_user(
        user_changes(
            spark,
            keys,
            [
                ("u1", "INSERT", 1, "2026-11-01T10:00:00.000Z", "free"),
                ("u1", "UPDATE", 2, "2026-11-01T12:00:00.000Z", "pro"),
                ("u1", "UPDATE", 3, "2026-11-01T12:00:00.000Z", "enterprise"),  # a tie
                ("u1", "DELETE", 4, "2026-11-01T14:00:00.000Z", None),
                ("u1", "INSERT", 5, "2026-11-01T16:00:00.000Z", "free"),
            ],
        )
    ).cache()


def test_each_event_gets_the_version_valid_at_its_time(
    spark: SparkSession, keys: DataFrame, users: DataFrame
) -> None:
    events = silver_like(
        spark,
        keys,
        [
            ("before-insert", "page_view", "2026-11-01 09:59:59.999", "s", "u1"),
            ("at-insert", "page_view", "2026-11-01 10:00:00", "s", "u1"),
            ("before-update", "page_view", "2026-11-01 11:59:59.999", "s", "u1"),
            ("at-tied-updates", "page_view", "2026-11-01 12:00:00", "s", "u1"),
            ("before-delete", "page_view", "2026-11-01 13:59:59.999", "s", "u1"),
            ("at-delete", "page_view", "2026-11-01 14:00:00", "s", "u1"),
            ("while-deleted", "page_view", "2026-11-01 15:00:00", "s", "u1"),
            ("at-reinsert", "page_view", "2026-11-01 16:00:00", "s", "u1"),
            ("no-user", "page_view", "2026-11-01 12:00:00", "s", None),
            ("user-without-changes", "page_view", "2026-11-01 12:00:00", "s", "u2"),
        ],
    )
    facts = gold.fact_events(events, users=users)
    plans = {
        row.event_id: (row.plan, row.user_sk == gold.UNKNOWN_KEY)
        for row in facts.join(users.select(gold.USER_SK, "plan"), gold.USER_SK, "left").collect()
    }
    assert plans == {
        "before-insert": (None, True),
        "at-insert": ("free", False),
        "before-update": ("free", False),
        "at-tied-updates": ("enterprise", False),  # the "pro" version lasts no time at all
        "before-delete": ("enterprise", False),
        "at-delete": (None, True),
        "while-deleted": (None, True),
        "at-reinsert": ("free", False),
        "no-user": (None, True),
        "user-without-changes": (None, True),
    }


def test_the_user_dimension_has_versions_and_an_unknown_member(users: DataFrame) -> None:
    rows = users.orderBy(F.col("__START_AT").asc_nulls_first()).collect()
    assert [(row.user_sk == gold.UNKNOWN_KEY, row.plan) for row in rows] == [
        (True, None),
        (False, "free"),
        (False, "pro"),
        (False, "enterprise"),
        (False, "free"),
    ]
    assert users.columns[:2] == [gold.USER_SK, gold.USER_KEY]
    assert "user_id" not in users.columns
    assert "email" not in users.columns
    assert users.select(gold.USER_SK).distinct().count() == len(rows)


def test_dimensions_cover_every_fact_and_the_calendar(
    spark: SparkSession, keys: DataFrame, users: DataFrame
) -> None:
    events = silver_like(
        spark,
        keys,
        [
            ("a", "page_view", "2026-11-01 10:00:00", "s", "u1"),
            ("b", "page_view", "2026-11-03 10:00:00", "s", "u1"),
        ],
    ).union(
        silver_like(spark, keys, [("c", "page_view", "2026-11-03 11:00:00", "s", "u1")])
        .withColumn("page_url", F.lit(None).cast("string"))
        .withColumn("device_type", F.lit(None).cast("string"))
        .withColumn("device_os", F.lit(None).cast("string"))
        .withColumn("device_browser", F.lit(None).cast("string"))
        .withColumn("user_agent", F.lit(None).cast("string"))
    )
    facts = gold.fact_events(events, users=users)
    for dimension, key in (
        (gold.dim_page(events), gold.PAGE_SK),
        (gold.dim_device(events), gold.DEVICE_SK),
        (gold.dim_date(events), gold.DATE_SK),
    ):
        assert facts.join(dimension, key, "left_anti").isEmpty(), key
        assert dimension.where(F.col(key) == gold.UNKNOWN_KEY).count() == 1, key
    assert facts.where(F.col(gold.PAGE_SK) == gold.UNKNOWN_KEY).count() == 1
    assert facts.where(F.col(gold.DEVICE_SK) == gold.UNKNOWN_KEY).count() == 1

    page = gold.dim_page(events).where(F.col("page_url").isNotNull()).first()
    assert page is not None
    assert (page.page_host, page.page_path) == ("shop.example.com", "/p/1")
    calendar = gold.dim_date(events).where(F.col("date").isNotNull()).orderBy("date").collect()
    assert [row.date_sk for row in calendar] == [20261101, 20261102, 20261103]
    assert (calendar[0].day_name, calendar[0].iso_day_of_week, calendar[0].is_weekend) == (
        "Sunday",
        7,
        True,
    )


def test_aggregates_count_sessions_funnels_and_active_users(
    spark: SparkSession, keys: DataFrame, users: DataFrame
) -> None:
    events = silver_like(
        spark,
        keys,
        [
            ("1", "page_view", "2026-11-01 10:00:00", "s1", "a"),
            ("2", "add_to_cart", "2026-11-01 10:01:00", "s1", "a"),
            ("3", "purchase", "2026-11-01 10:02:00", "s1", "a"),  # no checkout before it
            ("4", "page_view", "2026-11-01 23:59:00", "s2", "b"),
            ("5", "add_to_cart", "2026-11-01 23:59:30", "s2", "b"),
            ("6", "checkout", "2026-11-02 00:00:10", "s2", "b"),
            ("7", "purchase", "2026-11-02 00:01:00", "s2", "b"),
            ("8", "add_to_cart", "2026-11-02 09:00:00", "s3", "a"),  # before the view
            ("9", "page_view", "2026-11-02 09:01:00", "s3", "a"),
        ],
    )
    facts = gold.fact_events(events, users=users)

    funnel = {row.date_sk: row for row in gold.funnel_daily(gold.sessions(facts)).collect()}
    first, second = funnel[20261101], funnel[20261102]
    assert [first[f"{step}_sessions"] for step in gold.FUNNEL_STEPS] == [2, 2, 1, 1]
    assert (first.add_to_cart_rate, first.checkout_rate, first.purchase_rate) == (1.0, 0.5, 1.0)
    assert first.conversion_rate == 0.5
    assert [second[f"{step}_sessions"] for step in gold.FUNNEL_STEPS] == [1, 0, 0, 0]
    assert (second.add_to_cart_rate, second.checkout_rate, second.conversion_rate) == (
        0.0,
        None,
        0.0,
    )

    by_session = {row.session_id: row for row in gold.sessions(facts).collect()}
    assert {s: (r.converted, r.event_count, r.date_sk) for s, r in by_session.items()} == {
        "s1": (False, 3, 20261101),
        "s2": (True, 4, 20261101),
        "s3": (False, 2, 20261102),
    }
    assert by_session["s2"].duration_seconds == 120.0

    active = {
        row.date_sk: (row.active_users, row.sessions, row.events)
        for row in gold.daily_active_users(facts).collect()
    }
    assert active == {20261101: (2, 2, 5), 20261102: (2, 2, 4)}
