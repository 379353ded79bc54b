"""Explicit schemas of the raw inputs. Bronze parses with these; nothing is inferred."""

from __future__ import annotations

from pyspark.sql.types import (
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

__all__ = [
    "EVENT_SCHEMA",
    "PERSONAL_COLUMNS",
    "PII_FIELDS",
    "USER_CHANGE_SCHEMA",
]


def _strings(*names: str) -> list[StructField]:
    return [StructField(name, StringType()) for name in names]


EVENT_SCHEMA = StructType(
    [
        *_strings("event_id", "event_type", "event_ts", "session_id"),
        StructField("user", StructType(_strings("user_id", "email", "full_name", "ip"))),
        StructField("page", StructType(_strings("url", "referrer", "title"))),
        StructField("device", StructType(_strings("type", "os", "browser", "user_agent"))),
        StructField("geo", StructType(_strings("country", "city"))),
        StructField(
            "properties",
            StructType(
                [
                    StructField("product_id", StringType()),
                    StructField("price", DoubleType()),
                    StructField("currency", StringType()),
                    StructField("quantity", IntegerType()),
                ]
            ),
        ),
        StructField("schema_version", IntegerType()),
    ]
)
"""A raw clickstream event. `event_ts` stays a string here: silver parses it."""

USER_CHANGE_SCHEMA = StructType(
    [
        *_strings("user_id", "operation"),
        StructField("sequence_num", LongType()),
        *_strings("changed_at", "email", "full_name", "plan", "country", "city"),
    ]
)
"""A row of the user-profile CDC feed (INSERT / UPDATE / DELETE ordered by `sequence_num`)."""

PII_FIELDS: tuple[str, ...] = ("user.user_id", "user.email", "user.full_name", "user.ip")
"""Paths of the event fields that identify a person; silver keeps only their keyed hashes."""

PERSONAL_COLUMNS: frozenset[str] = frozenset(
    {
        "user",  # bronze: the typed PII fields in clear
        "_rescued_data",  # bronze: whatever the typed columns could not keep, PII included
        "raw_line",  # bronze quarantine: the raw line, PII included
        "user_key",
        "email_hash",
        "full_name_hash",
        "ip_hash",
        "user_sk",  # derived from `user_key`
    }
)
"""Top-level columns of any table that hold a person's data in clear or a pseudonym of it.

Delta keeps no statistics on them (`pipeline.storage.delta_tables.table_properties`): a file's
min/max
values live in `_delta_log` for the log's retention (30 days by default), after the file itself
is deleted, so an erased person would survive there."""
