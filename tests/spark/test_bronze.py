"""Bronze parsing: typed columns, rescued data with Auto Loader semantics, quarantine."""

from __future__ import annotations

import json

import orjson
import pytest
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.transforms import bronze


def _now() -> Column:
    return F.lit("2026-11-25 00:00:00").cast("timestamp")


def _lines(spark: SparkSession, *lines: str) -> DataFrame:
    return spark.createDataFrame(
        [(line, "file:/landing/f.json") for line in lines], "value string, _source_file string"
    )


def _bronze(spark: SparkSession, *lines: str) -> list[dict[str, object]]:
    parsed = bronze.parse_lines(_lines(spark, *lines))
    return [
        row.asDict(recursive=True)
        for row in bronze.bronze_rows(parsed, ingested_at=_now()).collect()
    ]


def _rescued(row: dict[str, object]) -> dict[str, object]:
    text = row["_rescued_data"]
    assert isinstance(text, str)
    return dict(json.loads(text))


def test_clean_record_has_typed_columns_and_no_rescued_data(spark: SparkSession) -> None:
    [row] = _bronze(
        spark, '{"event_id":"e1","user":{"user_id":"u1"},"properties":{"price":9.5,"quantity":2}}'
    )
    assert row["event_id"] == "e1"
    assert row["user"]["user_id"] == "u1"  # type: ignore[index]
    assert row["properties"]["price"] == 9.5  # type: ignore[index]
    assert row["properties"]["quantity"] == 2  # type: ignore[index]
    assert row["_rescued_data"] is None
    assert row["_source_file"] == "file:/landing/f.json"


def test_unknown_top_level_field_is_rescued_with_its_json_value(spark: SparkSession) -> None:
    [row] = _bronze(spark, '{"event_id":"e1","campaign":{"id":7,"tags":["a","b"]}}')
    assert _rescued(row) == {
        "campaign": {"id": 7, "tags": ["a", "b"]},
        "_file_path": "file:/landing/f.json",
    }


def test_unknown_nested_field_is_rescued_at_its_path(spark: SparkSession) -> None:
    [row] = _bronze(spark, '{"event_id":"e1","user":{"user_id":"u1","loyalty_tier":"gold"}}')
    assert row["user"]["user_id"] == "u1"  # type: ignore[index]
    assert _rescued(row)["user"] == {"loyalty_tier": "gold"}


def test_type_mismatch_keeps_the_original_value(spark: SparkSession) -> None:
    [row] = _bronze(
        spark,
        '{"event_id":"e1","properties":{"price":"12.50","quantity":1.5},"schema_version":"2"}',
    )
    assert row["properties"]["price"] is None  # type: ignore[index]
    rescued = _rescued(row)
    assert rescued["properties"] == {"price": "12.50", "quantity": 1.5}
    assert rescued["schema_version"] == "2"


def test_object_where_a_struct_is_expected_to_be_scalar_is_rescued(spark: SparkSession) -> None:
    [row] = _bronze(spark, '{"event_id":"e1","geo":"DE"}')
    assert row["geo"] is None
    assert _rescued(row)["geo"] == "DE"


def test_case_only_name_difference_is_rescued(spark: SparkSession) -> None:
    [row] = _bronze(spark, '{"Event_Id":"e1","user":{"Email":"a@b.example"}}')
    assert row["event_id"] is None
    rescued = _rescued(row)
    assert rescued["Event_Id"] == "e1"
    assert rescued["user"] == {"Email": "a@b.example"}


def test_explicit_null_is_not_rescued(spark: SparkSession) -> None:
    [row] = _bronze(spark, '{"event_id":"e1","page":{"referrer":null}}')
    assert row["_rescued_data"] is None


def test_byte_order_mark_is_ignored(spark: SparkSession) -> None:
    [row] = _bronze(spark, '\ufeff{"event_id":"e1"}')
    assert row["event_id"] == "e1"


@pytest.mark.parametrize(
    "line", ["not json", "[1, 2]", "42", '"text"', '{"event_id": "e1"', "null"]
)
def test_lines_that_are_not_json_objects_are_quarantined_with_raw_text(
    spark: SparkSession, line: str
) -> None:
    parsed = bronze.parse_lines(_lines(spark, line))
    assert bronze.bronze_rows(parsed, ingested_at=_now()).count() == 0
    [row] = bronze.quarantine_rows(parsed, ingested_at=_now()).collect()
    assert row.raw_line == line
    assert row.reason == bronze.QUARANTINE_NOT_AN_OBJECT
    assert row._source_file == "file:/landing/f.json"


def test_every_non_blank_line_lands_in_exactly_one_table(spark: SparkSession) -> None:
    good = [orjson.dumps({"event_id": f"e{i}"}).decode() for i in range(5)]
    lines = [*good, "", "   ", "garbage", "[]", '{"event_id": "e9", "x": 1}']
    parsed = bronze.parse_lines(_lines(spark, *lines))
    events = bronze.bronze_rows(parsed, ingested_at=_now()).count()
    quarantined = bronze.quarantine_rows(parsed, ingested_at=_now()).count()
    assert (events, quarantined) == (6, 2)
    assert events + quarantined == sum(1 for line in lines if line.strip())


def test_repeated_keys_keep_the_last_value_and_do_not_fail(spark: SparkSession) -> None:
    [row] = _bronze(spark, '{"event_id":"a","event_id":"b","x":1,"x":2,"user":{"k":1,"k":2}}')
    assert row["event_id"] == "b"
    rescued = _rescued(row)
    assert json.loads(str(rescued[bronze.UNPARSED_RECORD_KEY])) == {
        "event_id": "b",
        "x": 2,
        "user": {"k": 2},
    }


def test_a_repeated_known_key_keeps_the_whole_record(spark: SparkSession) -> None:
    [row] = _bronze(spark, '{"event_id":"a","event_id":"b"}')
    assert row["event_id"] == "b"
    assert json.loads(str(_rescued(row)[bronze.UNPARSED_RECORD_KEY])) == {"event_id": "b"}
