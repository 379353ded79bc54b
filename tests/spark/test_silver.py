"""Silver on static frames: event time, quarantine reasons, dedup, PII columns."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.transforms import bronze, silver


def _now() -> Column:
    return F.lit("2026-11-25 00:00:00").cast("timestamp")


def _bronze(spark: SparkSession, *records: str) -> DataFrame:
    lines = spark.createDataFrame(
        [(r, "f.json") for r in records], "value string, _source_file string"
    )
    return bronze.bronze_rows(bronze.parse_lines(lines), ingested_at=_now())


def _event(event_id: str, ts: str, email: str = "ann@example.com") -> str:
    return (
        f'{{"event_id":"{event_id}","event_type":"click","event_ts":"{ts}",'
        f'"user":{{"user_id":"u-000001","email":"{email}","full_name":"Ann Bee",'
        '"ip":"198.51.100.7"}}'
    )


def test_event_time_parses_iso_8601_with_zone_to_utc(spark: SparkSession) -> None:
    frame = silver.with_event_time(_bronze(spark, _event("a", "2026-11-01T12:00:00.250+02:00")))
    [row] = frame.select(
        F.date_format("event_time", "yyyy-MM-dd HH:mm:ss.SSS").alias("t")
    ).collect()
    assert row.t == "2026-11-01 10:00:00.250"


def test_duplicates_are_removed_and_pii_replaced(spark: SparkSession, keys: DataFrame) -> None:
    frame = _bronze(
        spark,
        _event("a", "2026-11-01T10:00:00Z"),
        _event("a", "2026-11-01T10:00:05Z", email="other@example.com"),
        _event("b", "2026-11-01T10:01:00Z"),
    )
    rows = silver.silver_events(frame, keys=keys).collect()
    assert sorted(row.event_id for row in rows) == ["a", "b"]
    flat = {str(value) for row in rows for value in row.asDict().values()}
    assert not flat & {
        "ann@example.com",
        "other@example.com",
        "Ann Bee",
        "198.51.100.7",
        "u-000001",
    }
    assert all(len(row.email_hash) == 64 for row in rows)
    assert {"user", "_rescued_data"}.isdisjoint(rows[0].asDict())


def test_unplaceable_rows_are_quarantined_with_a_reason(
    spark: SparkSession, keys: DataFrame
) -> None:
    frame = _bronze(
        spark,
        '{"event_type":"click","event_ts":"2026-11-01T10:00:00Z"}',
        _event("c", "yesterday at noon"),
        _event("d", "2026-11-01T10:00:00Z"),
    )
    reasons = {row.reason for row in silver.quarantine_rows(frame, keys=keys).collect()}
    assert reasons == {silver.REASON_MISSING_EVENT_ID, silver.REASON_BAD_EVENT_TS}
    assert [row.event_id for row in silver.silver_events(frame, keys=keys).collect()] == ["d"]


def test_late_rows_are_those_valid_rows_missing_from_silver(
    spark: SparkSession, keys: DataFrame
) -> None:
    frame = _bronze(
        spark,
        _event("kept", "2026-11-01T10:00:00Z"),
        _event("kept", "2026-11-01T07:00:00Z"),
        _event("late", "2026-11-01T07:00:00Z"),
        '{"event_type":"click"}',
    )
    silver_table = silver.silver_events(frame.where(F.col("event_ts") > "2026-11-01T09"), keys=keys)
    late = silver.late_rows(frame, silver=silver_table, keys=keys).collect()
    assert [row.event_id for row in late] == ["late"]


def test_emails_in_page_fields_are_redacted(spark: SparkSession, keys: DataFrame) -> None:
    record = (
        '{"event_id":"e","event_ts":"2026-11-01T10:00:00Z","page":{'
        '"url":"https://shop.example.com/p?email=ann.bee%40mail.example.org&x=1",'
        '"referrer":"https://mail.example.org/?to=ann.bee@mail.example.org",'
        '"title":"Order for Ann.Bee+shop@Mail.Example.ORG"}}'
    )
    [row] = silver.silver_events(_bronze(spark, record), keys=keys).collect()
    assert row.page_url == f"https://shop.example.com/p?email={silver.REDACTED_EMAIL}&x=1"
    assert row.page_referrer == f"https://mail.example.org/?to={silver.REDACTED_EMAIL}"
    assert row.page_title == f"Order for {silver.REDACTED_EMAIL}"


def test_event_time_formats_and_zones(spark: SparkSession) -> None:
    texts = {
        "2026-11-01T10:00:00.000Z": "2026-11-01 10:00:00",
        "2026-11-01T15:30:00+05:30": "2026-11-01 10:00:00",
        "2026-11-01T02:00:00-0800": "2026-11-01 10:00:00",
        "2026-11-01 10:00:00Z": "2026-11-01 10:00:00",
        "1793527200000": "2026-11-01 10:00:00",
        "Sun, 01 Nov 2026 10:00:00 GMT": "2026-11-01 10:00:00",
        "2026-11-01T10:00:00": None,
        "2026-13-45T10:00:00Z": None,
        "yesterday": None,
    }
    frame = spark.createDataFrame([(text,) for text in texts], "event_ts string")
    parsed = silver.with_event_time(frame).select(
        "event_ts", F.date_format("event_time", "yyyy-MM-dd HH:mm:ss").alias("utc")
    )
    assert {row.event_ts: row.utc for row in parsed.collect()} == texts
