"""The contract of each table: named rules with an action, a description and examples.

This module is the single source of truth: the runner enforces these rules (pass them to
`pipeline.run.runner.run_pipeline(expectations=...)`; `clickstream run` loads `EXPECTATIONS` from
here by default), and `contracts.gx_suites` turns the same rules into Great Expectations suites.

Bronze keeps every parsed line, so its rules only warn: silver quarantines what it cannot
place. Silver drops rows a consumer cannot use and fails the run where a row would mean that
the pipeline itself is broken (a missing key, a hash that is not a 64-character HMAC, which
could be clear PII). The gold rules check the star schema; they take DataFrames of the gold
tables and are wired into the runner with the gold stage.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from contracts.checks import (
    has_length,
    is_between,
    is_in,
    is_not_after,
    is_not_null,
    matches_regex,
)
from pipeline.table_names import BRONZE_EVENTS, GOLD_DIM_USER, GOLD_FACT_EVENTS, SILVER_EVENTS
from pipeline.transforms.expectations import Expectation, TableExpectations
from pipeline.transforms.gold import UNKNOWN_KEY
from pipeline.transforms.silver import event_time_sql

__all__ = [
    "DEFAULT_FUTURE_TOLERANCE",
    "EXPECTATIONS",
    "GOLD_SCHEMAS",
    "HMAC_HEX_LENGTH",
    "KNOWN_EVENT_TYPES",
    "UUID_PATTERN",
    "bronze_rules",
    "expectations",
    "gold_dim_user_rules",
    "gold_expectations",
    "gold_fact_events_rules",
    "silver_rules",
    "wall_clock",
]

KNOWN_EVENT_TYPES: tuple[str, ...] = (
    "page_view",
    "click",
    "search",
    "add_to_cart",
    "checkout",
    "purchase",
)
UUID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
HMAC_HEX_LENGTH = 64
DEFAULT_FUTURE_TOLERANCE = timedelta(minutes=10)

_EVENT_ID = "5f0c7d4e-2b1a-4c3d-9e8f-0a1b2c3d4e5f"
_HASH = "a" * HMAC_HEX_LENGTH
_PAST = datetime(2026, 11, 1, 12, tzinfo=UTC)
_FAR_FUTURE = datetime(2999, 1, 1, tzinfo=UTC)


def wall_clock() -> datetime:
    """The current time in UTC: the default clock of the time rules."""
    return datetime.now(UTC)


def _minutes(span: timedelta) -> str:
    minutes = round(span.total_seconds() / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def bronze_rules() -> tuple[Expectation, ...]:
    """Rules of `bronze_events` (evaluated on each parsed JSON object before it is written)."""
    return (
        Expectation(
            name="event_id_present",
            predicate=is_not_null("event_id"),
            action="warn",
            description="every event carries an event_id",
            passing_example={"event_id": _EVENT_ID},
            failing_example={"event_id": None},
            columns=("event_id",),
        ),
        Expectation(
            name="event_type_present",
            predicate=is_not_null("event_type"),
            action="warn",
            description="every event says what happened (event_type)",
            passing_example={"event_type": "click"},
            failing_example={"event_type": None},
            columns=("event_type",),
        ),
        Expectation(
            name="event_ts_present",
            predicate=is_not_null("event_ts"),
            action="warn",
            description="every event carries its event time (event_ts)",
            passing_example={"event_ts": "2026-11-01T12:00:00.000Z"},
            failing_example={"event_ts": None},
            columns=("event_ts",),
        ),
        Expectation(
            name="event_id_is_uuid",
            predicate=matches_regex("event_id", UUID_PATTERN, allow_null=True),
            action="warn",
            description="event_id is a lower-case UUID (a missing one is event_id_present's)",
            passing_example={"event_id": _EVENT_ID},
            failing_example={"event_id": "event-42"},
            columns=("event_id",),
        ),
        Expectation(
            name="event_ts_parseable",
            predicate=f"event_ts IS NULL OR ({event_time_sql('event_ts')}) IS NOT NULL",
            action="warn",
            description=(
                "event_ts is a time silver can place: ISO-8601 with a zone, epoch "
                "milliseconds or RFC 1123 (silver quarantines the others)"
            ),
            passing_example=(
                {"event_ts": "2026-11-01T12:00:00.250+02:00"},
                {"event_ts": "1793534400000"},
                {"event_ts": "Sun, 01 Nov 2026 10:00:00 GMT"},
            ),
            failing_example=(
                {"event_ts": "yesterday at noon"},
                {"event_ts": "2026-11-01T12:00:00"},
            ),
            columns=("event_id", "event_ts"),
        ),
    )


def _hash_rule(column: str) -> Expectation:
    return Expectation(
        name=f"{column}_is_hmac",
        predicate=has_length(column, HMAC_HEX_LENGTH, allow_null=True),
        action="fail",
        description=(
            f"{column} is a {HMAC_HEX_LENGTH}-character HMAC-SHA256 hex digest, never clear PII"
        ),
        passing_example={column: _HASH},
        failing_example={column: "ann@example.com"},
        columns=(column,),
    )


def silver_rules(
    *,
    clock: Callable[[], datetime] = wall_clock,
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
) -> tuple[Expectation, ...]:
    """Rules of `silver_events`, evaluated on each deduplicated, pseudonymized batch.

    Args:
        clock: returns the current time (aware); read once per evaluated batch.
        future_tolerance: how far past the clock an event time may be (device clock skew).
    """
    return (
        Expectation(
            name="event_id_present",
            predicate=is_not_null("event_id"),
            action="fail",
            description="silver rows are keyed by event_id (bronze rows without one are "
            "quarantined before), so a null means the pipeline is broken",
            passing_example={"event_id": _EVENT_ID},
            failing_example={"event_id": None},
            columns=("event_id",),
        ),
        Expectation(
            name="user_key_present",
            predicate=is_not_null("user_key"),
            action="drop",
            description="every event is attributed to a (pseudonymized) user",
            passing_example={"user_key": _HASH},
            failing_example={"user_key": None},
            columns=("user_key",),
        ),
        Expectation(
            name="session_id_present",
            predicate=is_not_null("session_id"),
            action="drop",
            description="every event belongs to a session",
            passing_example={"session_id": "s-000001"},
            failing_example={"session_id": None},
            columns=("session_id",),
        ),
        Expectation(
            name="event_type_known",
            predicate=is_in("event_type", KNOWN_EVENT_TYPES),
            action="drop",
            description=f"event_type is one of {', '.join(KNOWN_EVENT_TYPES)} (null is unknown)",
            passing_example={"event_type": "purchase"},
            failing_example=({"event_type": "teleport"}, {"event_type": None}),
            columns=("event_type",),
        ),
        *(_hash_rule(column) for column in ("user_key", "email_hash", "full_name_hash", "ip_hash")),
        Expectation(
            name="event_time_not_in_future",
            predicate=is_not_after(
                "event_time", clock=clock, tolerance=future_tolerance, allow_null=True
            ),
            action="drop",
            description=(
                f"event_time is at most {_minutes(future_tolerance)} after the time of processing"
            ),
            passing_example={"event_time": _PAST},
            failing_example={"event_time": _FAR_FUTURE},
            columns=("event_time",),
        ),
        Expectation(
            name="price_not_negative",
            predicate=is_between("price", min_value=0.0, allow_null=True),
            action="drop",
            description="a price, where there is one, is not negative",
            passing_example=({"price": 19.99}, {"price": None}),
            failing_example={"price": -5.0},
            columns=("price", "currency"),
        ),
        Expectation(
            name="quantity_positive",
            predicate=is_between("quantity", min_value=1, allow_null=True),
            action="warn",
            description="a quantity, where there is one, is at least 1",
            passing_example=({"quantity": 2}, {"quantity": None}),
            failing_example={"quantity": 0},
            columns=("quantity",),
        ),
    )


def gold_fact_events_rules(*, dim_user: str = GOLD_DIM_USER) -> tuple[Expectation, ...]:
    """Rules of `gold_fact_events`: every user key resolves in the user dimension.

    Args:
        dim_user: how SQL names the user dimension: a table or view name, or
            ``delta.`/path/to/gold_dim_user` ``. The examples assume it is empty.
    """
    return (
        Expectation(
            name="user_sk_in_dim_user",
            predicate=(f"user_sk = {UNKNOWN_KEY} OR user_sk IN (SELECT user_sk FROM {dim_user})"),
            action="fail",
            description=(
                "every fact's user_sk is a gold_dim_user version, or the unknown member "
                f"{UNKNOWN_KEY} (referential integrity)"
            ),
            passing_example={"user_sk": UNKNOWN_KEY},
            failing_example=({"user_sk": 987_654_321}, {"user_sk": None}),
            columns=("user_sk",),
        ),
    )


def gold_dim_user_rules() -> tuple[Expectation, ...]:
    """Rules of `gold_dim_user` (SCD Type 2): at most one open version per user."""
    return (
        Expectation(
            name="one_open_version_per_user",
            predicate=(
                "__END_AT IS NOT NULL OR "
                "count_if(__END_AT IS NULL) OVER (PARTITION BY user_key) <= 1"
            ),
            action="fail",
            description="each user_key has at most one version with __END_AT null (the open one)",
            passing_example=(
                {"user_sk": 1, "user_key": _HASH, "__START_AT": 1, "__END_AT": 2},
                {"user_sk": 2, "user_key": _HASH, "__START_AT": 2, "__END_AT": None},
            ),
            failing_example=(
                {"user_sk": 1, "user_key": _HASH, "__START_AT": 1, "__END_AT": None},
                {"user_sk": 2, "user_key": _HASH, "__START_AT": 2, "__END_AT": None},
            ),
            columns=("user_key", "user_sk", "__START_AT", "__END_AT"),
        ),
    )


GOLD_SCHEMAS: dict[str, str] = {
    GOLD_FACT_EVENTS: "event_id string, user_sk bigint",
    GOLD_DIM_USER: "user_sk bigint, user_key string, __START_AT bigint, __END_AT bigint",
}
"""The gold columns the gold rules read (the gold stage defines the full tables)."""


def expectations(
    *,
    clock: Callable[[], datetime] = wall_clock,
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
) -> dict[str, tuple[Expectation, ...]]:
    """The rules the runner enforces, per table: bronze, silver and gold."""
    return {
        BRONZE_EVENTS: bronze_rules(),
        SILVER_EVENTS: silver_rules(clock=clock, future_tolerance=future_tolerance),
        **gold_expectations(),
    }


def gold_expectations(*, dim_user: str = GOLD_DIM_USER) -> dict[str, tuple[Expectation, ...]]:
    """The gold rules per table, for the gold stage and for GX suites of the gold tables."""
    return {
        GOLD_FACT_EVENTS: gold_fact_events_rules(dim_user=dim_user),
        GOLD_DIM_USER: gold_dim_user_rules(),
    }


EXPECTATIONS: TableExpectations = expectations()
"""What `clickstream run --expectations contracts.rules` loads: the rules on the wall clock."""
