"""The scenario checks find what they look for: a differing row, a leaked personal value."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pyspark.sql import SparkSession

from pipeline import table_names
from pipeline.storage import tables
from scenarios import invariants, scenario_invariants


def test_multiset_difference_names_extra_and_missing_rows(spark: SparkSession) -> None:
    actual = spark.createDataFrame([(1, "a"), (1, "a"), (3, "c")], "k int, v string")
    expected = spark.createDataFrame([(3, "c"), (1, "a"), (2, "b")], "k int, v string")
    assert scenario_invariants.multiset_difference(actual, expected) == [
        "extra {'k': 1, 'v': 'a'}",
        "missing {'k': 2, 'v': 'b'}",
    ]
    assert scenario_invariants.multiset_difference(expected, expected.select("v", "k")) == []


def test_no_clear_pii_finds_a_value_or_its_unkeyed_hash_in_any_table(
    spark: SparkSession, tmp_path: Path
) -> None:
    unkeyed = hashlib.sha256(b"bob@example.com").hexdigest()
    for table, rows in (
        (table_names.SILVER_EVENTS, [("e1", "ok"), ("e2", "ann@example.com")]),
        (table_names.GOLD_SESSIONS, [("s1", unkeyed)]),
        (table_names.GOLD_DIM_PAGE, [("p1", "fine")]),
    ):
        spark.createDataFrame(rows, "id string, text string").write.format("delta").save(
            tables.table_path(tmp_path, table)
        )
    pii = ["ann@example.com", "bob@example.com"]
    verdict = invariants.no_clear_pii(
        spark,
        tmp_path,
        [table_names.SILVER_EVENTS, table_names.GOLD_SESSIONS, table_names.GOLD_DIM_PAGE],
        pii,
    )
    assert not verdict.passed
    assert "silver_events: an*" in verdict.evidence
    assert "gold_sessions: unkeyed SHA-256 of bo*" in verdict.evidence
    clean = invariants.no_clear_pii(spark, tmp_path, [table_names.GOLD_DIM_PAGE], pii)
    assert clean.passed, clean.evidence
