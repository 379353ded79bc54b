"""Silver: event time, deduplication within a watermark, and pseudonymized PII.

Bronze rows that cannot be placed in event time (no `event_id`, or an `event_ts` that does not
parse) go to `silver_quarantine` with a reason. Rows that arrive later than the watermark are
dropped by Spark's deduplication operator; `late_rows` recovers them, so that they are kept in
`silver_late_events` and counted instead of lost silently.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F

from pipeline.config import DEFAULT_WATERMARK_DELAY
from pipeline.transforms.built_once import built_once
from pipeline.transforms.expectations import QUARANTINE_RULES_COLUMN, no_failed_rules
from pipeline.transforms.pseudonymize import hmac_sha256, with_key

__all__ = [
    "EMAIL_PATTERN",
    "EPOCH",
    "REASON_BAD_EVENT_TS",
    "REASON_MISSING_EVENT_ID",
    "REDACTED_EMAIL",
    "SilverBatch",
    "batch_summary",
    "event_time_sql",
    "late_rows",
    "lookup_dates",
    "newest_event_time",
    "parse_event_time",
    "placed_events",
    "pseudonymized",
    "quarantine_rows",
    "redact_emails",
    "silver_events",
    "split_batch",
    "with_event_time",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

REASON_MISSING_EVENT_ID = "missing event_id"
# An e-mail address, also percent-encoded ("%40") as it appears in URL query strings.
EMAIL_PATTERN = r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
REDACTED_EMAIL = "[redacted-email]"
REASON_BAD_EVENT_TS = "event_ts missing, without a time zone, or not a timestamp"


def event_time_sql(text: str) -> str:
    """Spark SQL that parses the SQL expression `text` to a UTC instant; null when it has no
    single meaning. The one definition of event-time parsing: silver (`parse_event_time`) and
    the contract rules (and through them Great Expectations) use this text.

    Accepted: ISO-8601 with a zone (`Z`, `+05:30`, `-0800`; a space may replace the `T`),
    epoch milliseconds (a 12 to 14 digit number), and RFC 1123 (`Sun, 01 Nov 2026 10:00:00
    GMT`). A timestamp without a zone is rejected rather than guessed: the same text means
    different instants in different places.
    """
    value = f"trim({text})"
    # Backslashes doubled for the SQL string literal: the regex sees \\d.
    with_zone, epoch_millis, rfc_1123 = (
        r"(Z|[+-]\\d{2}:?\\d{2})$",
        r"^\\d{12,14}$",
        "^[A-Za-z]{3}, ",
    )
    return (
        f"CASE WHEN {value} RLIKE '{with_zone}' THEN try_to_timestamp({value}) "
        f"WHEN {value} RLIKE '{epoch_millis}' "
        f"THEN timestamp_millis(try_cast({value} AS BIGINT)) "
        f"WHEN {value} RLIKE '{rfc_1123}' THEN try_to_timestamp("
        f"regexp_replace({value}, '{rfc_1123}', ''), 'dd MMM yyyy HH:mm:ss z') END"
    )


@built_once
def parse_event_time(column: str) -> Column:
    """The UTC instant of the timestamp text in `column` (see `event_time_sql`)."""
    return F.expr(event_time_sql(f"`{column}`"))


def with_event_time(bronze: DataFrame) -> DataFrame:
    """Add `event_time`, the UTC instant of `event_ts` (see `parse_event_time`)."""
    # select, not withColumn: Spark Connect 4.2 may resolve a withColumn's input against the
    # catalog when the flow is defined, and a pipeline then loses the dependency on it.
    return bronze.select("*", parse_event_time("event_ts").alias("event_time"))


@built_once
def _quarantine_reason() -> Column:
    return F.when(F.col("event_id").isNull(), F.lit(REASON_MISSING_EVENT_ID)).when(
        F.col("event_time").isNull(), F.lit(REASON_BAD_EVENT_TS)
    )


def redact_emails(text: Column) -> Column:
    """Replace every e-mail address in free text (URLs, titles) by a fixed marker."""
    return F.regexp_replace(text, EMAIL_PATTERN, REDACTED_EMAIL)


@built_once
def _silver_columns() -> tuple[Column | str, ...]:
    """The silver projection: flat columns, PII replaced by keyed hashes, no rescued payload.

    Free-text page fields can carry an e-mail address where none is expected (a query string
    `?email=...`, a title): those addresses are redacted.

    `_rescued_data` may hold PII in clear (a renamed `Email` field, say), so silver carries only
    whether anything was rescued; the payload stays in bronze.
    """
    return (
        "event_id",
        "event_type",
        "event_time",
        F.to_date("event_time").alias("event_date"),
        "session_id",
        hmac_sha256(F.col("user.user_id")).alias("user_key"),
        hmac_sha256(F.col("user.email")).alias("email_hash"),
        hmac_sha256(F.col("user.full_name")).alias("full_name_hash"),
        hmac_sha256(F.col("user.ip")).alias("ip_hash"),
        redact_emails(F.col("page.url")).alias("page_url"),
        redact_emails(F.col("page.referrer")).alias("page_referrer"),
        redact_emails(F.col("page.title")).alias("page_title"),
        F.col("device.type").alias("device_type"),
        F.col("device.os").alias("device_os"),
        F.col("device.browser").alias("device_browser"),
        F.col("device.user_agent").alias("user_agent"),
        F.col("geo.country").alias("country"),
        F.col("geo.city").alias("city"),
        F.col("properties.product_id").alias("product_id"),
        F.col("properties.price").alias("price"),
        F.col("properties.currency").alias("currency"),
        F.col("properties.quantity").alias("quantity"),
        "schema_version",
        F.col("_rescued_data").isNotNull().alias("has_rescued_data"),
        "_source_file",
        "_ingested_at",
    )


def pseudonymized(events: DataFrame, keys: DataFrame, *extra: Column | str) -> DataFrame:
    """Project bronze-shaped rows (with `event_time`) to the silver columns plus `extra`.

    The projection names every column it keeps, so the key columns never pass it (no `drop`,
    which Spark Connect 4.2 plans by analysing the input: not possible inside a pipeline
    definition). `extra` must not name them.
    """
    return with_key(events, keys).select(*_silver_columns(), *extra)


def silver_events(
    bronze: DataFrame,
    *,
    keys: DataFrame,
    watermark_delay: str = DEFAULT_WATERMARK_DELAY,
    streaming: bool | None = None,
) -> DataFrame:
    """Bronze events to silver: valid rows, deduplicated on `event_id` within the watermark.

    Works on a streaming DataFrame (Spark's `dropDuplicatesWithinWatermark`; rows older than
    the watermark are dropped by Spark, recover them with `late_rows`) and on a static one,
    which is a single batch, so plain `dropDuplicates` has the same result.

    Args:
        bronze: rows shaped like `bronze_events`.
        keys: the one-row key frame from `pipeline.transforms.pseudonymize.key_frame`.
        watermark_delay: how late an event may arrive and still be deduplicated and kept,
            as a Spark interval string such as "1 hour".
        streaming: whether `bronze` is a streaming frame; asked of Spark when None (Spark
            Declarative Pipelines forbids asking inside a query function: say it there).
    """
    placed = with_event_time(bronze).where(_quarantine_reason().isNull())
    if bronze.isStreaming if streaming is None else streaming:
        deduplicated = placed.withWatermark(
            "event_time", watermark_delay
        ).dropDuplicatesWithinWatermark(["event_id"])
    else:  # a static frame is one batch: every duplicate is within the watermark
        deduplicated = placed.dropDuplicates(["event_id"])
    return pseudonymized(deduplicated, keys)


def quarantine_rows(bronze: DataFrame, *, keys: DataFrame) -> DataFrame:
    """Bronze rows that cannot enter silver, pseudonymized, with the reason.

    `failed_expectations` is empty: rows that fail silver's drop rules reach the same table
    from the silver query, with the rule names there.
    """
    timed = with_event_time(bronze)
    return pseudonymized(
        timed.where(_quarantine_reason().isNotNull()),
        keys,
        _quarantine_reason().alias("reason"),
        no_failed_rules(),
    )


def late_rows(
    bronze: DataFrame, *, silver: DataFrame, keys: DataFrame, watermark: datetime | None = None
) -> DataFrame:
    """Valid bronze rows whose `event_id` is absent from silver: those the watermark dropped.

    A row dropped as a duplicate has its `event_id` in silver, so only rows that were too late
    remain. Run it on bronze rows that the silver query has already processed.

    Args:
        bronze: bronze rows the silver query has processed.
        silver: the silver table.
        keys: the key frame for pseudonymization.
        watermark: the watermark the silver query has reached, when known. Every late row is
            older than it (watermarks only advance), so rows at or after it are skipped
            before the join: usually that leaves nothing to join.
    """
    timed = with_event_time(bronze).where(_quarantine_reason().isNull())
    if watermark is not None:
        timed = timed.where(F.col("event_time") < F.lit(watermark))
    missing = timed.join(silver.select("event_id"), on="event_id", how="left_anti")
    return pseudonymized(missing, keys)


def placed_events(silver: DataFrame, quarantine: DataFrame | None) -> DataFrame:
    """The events silver has placed: kept in silver, or quarantined by a drop rule.

    `event_id`, `event_time` and `event_date` of each. The copies of an event a rule
    quarantined are duplicates, not late. Rows quarantined because they cannot be placed in
    time at all (no `event_id`, no valid `event_ts`) are not placed.

    Args:
        silver: the silver table.
        quarantine: the silver quarantine, with `failed_expectations`; None when it has no
            such column (written before rules existed), so no rule put anything there.
    """
    columns = ("event_id", "event_time", "event_date")
    placed = silver.select(*columns)
    if quarantine is None:
        return placed
    ruled_out = quarantine.where(F.size(QUARANTINE_RULES_COLUMN) > 0).select(*columns)
    return placed.unionByName(ruled_out)


# ------------------------------------------------------------------- the runner's micro-batches


def lookup_dates(
    event_dates: Iterable[date],
    *,
    delay: timedelta,
    watermark: datetime | None,
    newest: datetime | None,
) -> list[date]:
    """The event dates of placed rows a micro-batch's rows may be duplicates of.

    A row is a duplicate of a placed row with its `event_id` whose event time is within the
    watermark delay of its own (Spark's promise for `dropDuplicatesWithinWatermark`), or
    after `watermark - delay` (the ids Spark's state still holds). So the placed rows to read
    are those of the days around the batch's days, and of the days since `watermark - delay`
    up to the `newest` event time seen: reading only them keeps the cost of a run in
    proportion to its new data, not to the table.
    """
    spread = math.ceil(delay / timedelta(days=1))
    days = {
        day + timedelta(days=shift) for day in event_dates for shift in range(-spread, spread + 1)
    }
    if watermark is not None and newest is not None:
        first = (watermark - delay).date()
        days |= {first + timedelta(days=n) for n in range((newest.date() - first).days + 1)}
    return sorted(days)


def _is_duplicate(row: str, placed: str, *, watermark: datetime | None, delay: timedelta) -> Column:
    """The join condition: the placed row has the same id, and an event time within the delay
    of the row's, or later than `watermark - delay` (see `lookup_dates`)."""
    same = F.col(f"{row}.event_id") == F.col(f"{placed}.event_id")
    distance = F.abs(
        F.unix_micros(F.col(f"{row}.event_time")) - F.unix_micros(F.col(f"{placed}.event_time"))
    )
    near = distance <= F.lit(delay // timedelta(microseconds=1))
    if watermark is not None:
        near = near | (F.col(f"{placed}.event_time") > F.lit(watermark - delay))
    return same & near


@dataclass(frozen=True)
class SilverBatch:
    """Where the rows of one bronze micro-batch go.

    Attributes:
        events: the new events for silver (deduplicated, pseudonymized, before the rules).
        late: valid events at or behind the watermark that are not duplicates, pseudonymized.
        unplaceable: rows without `event_id` or a valid `event_ts`, pseudonymized, with
            `reason` and an empty `failed_expectations`.
    """

    events: DataFrame
    late: DataFrame
    unplaceable: DataFrame


def split_batch(
    bronze: DataFrame,
    *,
    keys: DataFrame,
    placed: DataFrame | None,
    watermark: datetime | None,
    delay: timedelta,
) -> SilverBatch:
    """Split a micro-batch of bronze rows into silver's new events, late events and the rest.

    The streaming stage's own deduplication, with Spark's watermark semantics: a row is a
    duplicate when an event with its id was placed before (`placed`, see `_is_duplicate`)
    or is placed by this batch (the first copy of each id is kept); a valid row at or behind
    the watermark (`event_time <= watermark`, as Spark drops it) that is no duplicate is
    late. Every bronze row ends in exactly one of: the events, a duplicate, late, unplaceable.

    Args:
        bronze: a micro-batch of `bronze_events` rows.
        keys: the key frame for pseudonymization.
        placed: `placed_events` restricted to `lookup_dates`; None when silver is empty.
        watermark: the batch's watermark (the newest event time before it, minus `delay`);
            None before any event was seen.
        delay: the watermark delay.
    """
    timed = with_event_time(bronze)
    valid = timed.where(_quarantine_reason().isNull())
    if placed is not None:
        valid = valid.alias("row").join(
            placed.alias("placed"),
            _is_duplicate("row", "placed", watermark=watermark, delay=delay),
            "left_anti",
        )
    if watermark is None:
        on_time, behind = valid, valid.limit(0)
    else:
        on_time = valid.where(F.col("event_time") > F.lit(watermark))
        behind = valid.where(F.col("event_time") <= F.lit(watermark))
    firsts = on_time.dropDuplicates(["event_id"])
    late = behind.join(firsts.select("event_id"), "event_id", "left_anti")
    return SilverBatch(
        events=pseudonymized(firsts, keys),
        late=pseudonymized(late, keys),
        unplaceable=quarantine_rows(bronze, keys=keys),
    )


def newest_event_time(summary: Row) -> datetime | None:
    """The `batch_summary` newest event time as an aware UTC datetime, None for no event."""
    micros = summary["newest_micros"]
    return None if micros is None else EPOCH + timedelta(microseconds=micros)


def batch_summary(*, watermark: datetime | None) -> list[Column]:
    """Aggregates over a bronze micro-batch (with `with_event_time`): what the silver stage
    must read and write.

    `unplaceable` and `behind` (valid rows at or behind the watermark) count rows;
    `newest_micros` is the latest valid event time (microseconds since the epoch, UTC: a
    timestamp would reach Python in the local time zone) and `dates` the valid rows' event
    dates. Read them with `newest_event_time`.
    """
    timed = F.col("event_time")
    valid = _quarantine_reason().isNull()
    behind = valid & (timed <= F.lit(watermark)) if watermark is not None else F.lit(False)
    return [
        F.count(F.lit(1)).alias("rows"),
        F.count_if(~valid).alias("unplaceable"),
        F.count_if(behind).alias("behind"),
        F.max(F.when(valid, F.unix_micros(timed))).alias("newest_micros"),
        F.collect_set(F.when(valid, F.to_date(timed))).alias("dates"),
    ]
