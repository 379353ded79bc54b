"""Delta keeps min/max statistics on no personal column, and none on types it cannot index."""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from pipeline.storage.delta_tables import stats_columns, table_properties
from pipeline.transforms.schemas import EVENT_SCHEMA, PERSONAL_COLUMNS

BRONZE_SCHEMA = StructType([*EVENT_SCHEMA.fields, StructField("_rescued_data", StringType())])

SILVER_LIKE_SCHEMA = StructType(
    [
        StructField("event_id", StringType()),
        StructField("user_key", StringType()),
        StructField("email_hash", StringType()),
        StructField("has_rescued_data", BooleanType()),
        StructField("event_date", DateType()),
    ]
)


def test_bronze_statistics_leave_out_every_user_field_and_the_rescued_data() -> None:
    columns = stats_columns(BRONZE_SCHEMA)

    assert not [c for c in columns if c == "user" or c.startswith("user.")]
    assert "_rescued_data" not in columns
    assert {"page.url", "page.referrer", "properties.price", "properties.quantity"} <= set(columns)
    assert columns == [
        "event_id",
        "event_type",
        "event_ts",
        "session_id",
        "page.url",
        "page.referrer",
        "page.title",
        "device.type",
        "device.os",
        "device.browser",
        "device.user_agent",
        "geo.country",
        "geo.city",
        "properties.product_id",
        "properties.price",
        "properties.currency",
        "properties.quantity",
        "schema_version",
    ]


def test_types_delta_cannot_index_are_left_out_however_deeply_nested() -> None:
    schema = StructType(
        [
            StructField("flag", BooleanType()),
            StructField("tags", ArrayType(StringType())),
            StructField("attributes", MapType(StringType(), StringType())),
            StructField("payload", BinaryType()),
            StructField(
                "nested",
                StructType(
                    [
                        StructField("ok", BooleanType()),
                        StructField("items", ArrayType(StructType([StructField("x", LongType())]))),
                        StructField("inner", StructType([StructField("seen_at", TimestampType())])),
                    ]
                ),
            ),
            StructField("amount", DecimalType(10, 2)),
            StructField("local_ts", TimestampNTZType()),
        ]
    )

    assert stats_columns(schema) == ["nested.inner.seen_at", "amount", "local_ts"]


def test_a_silver_like_table_keeps_statistics_on_its_id_and_date_only() -> None:
    assert stats_columns(SILVER_LIKE_SCHEMA) == ["event_id", "event_date"]


def test_every_personal_column_is_left_out_whatever_its_type() -> None:
    schema = StructType(
        [StructField(name, StringType()) for name in sorted(PERSONAL_COLUMNS)]
        + [StructField("kept", LongType())]
    )

    assert stats_columns(schema) == ["kept"]


def test_table_properties_enable_deletion_vectors_and_list_the_stats_columns() -> None:
    properties = table_properties(SILVER_LIKE_SCHEMA)

    assert properties == {
        "delta.enableDeletionVectors": "true",
        "delta.dataSkippingStatsColumns": "event_id,event_date",
    }
    bronze = table_properties(BRONZE_SCHEMA)["delta.dataSkippingStatsColumns"]
    assert bronze.split(",") == stats_columns(BRONZE_SCHEMA)
    assert "user." not in bronze and "_rescued_data" not in bronze
