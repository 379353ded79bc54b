"""The SCD engine on Spark and Delta: worked examples, errors, and properties against the model."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StructType

from pipeline.errors import ChangeFeedError
from pipeline.storage import delta_log, scd_merge
from pipeline.transforms import scd2
from scenarios.scd_model import Change, Version, scd1, scd2_problems
from scenarios.scd_model import scd2 as model_scd2
from tests.change_feeds import (
    DELETES,
    KEYS,
    SCHEMA,
    FeedRow,
    Layout,
    feeds,
    layouts,
    model_changes,
)

CHANGES = "id string, op string, seq long, v string"
BY_SEQ: dict[str, Any] = {
    "keys": ["id"],
    "sequence_by": "seq",
    "apply_as_deletes": "op = 'DELETE'",
    "except_column_list": ["op", "seq"],
}


def _plain(value: Any) -> Any:
    return tuple(_plain(v) for v in value) if isinstance(value, tuple) else value


def _collected(frame: DataFrame) -> list[tuple[Any, ...]]:
    return sorted((_plain(row) for row in frame.collect()), key=repr)


def _changes(spark: SparkSession, rows: Sequence[tuple[Any, ...]]) -> DataFrame:
    return spark.createDataFrame(list(rows), CHANGES)


# ------------------------------------------------------------------------- worked examples


def test_out_of_order_changes_deletes_and_reinserts(spark: SparkSession) -> None:
    changes = _changes(
        spark,
        [
            ("a", "UPDATE", 3, "y"),
            ("a", "INSERT", 1, "x"),
            ("a", "UPDATE", 2, "x"),  # equal to the open version: no new version
            ("a", "DELETE", 5, None),
            ("a", "UPDATE", 7, "z"),  # after a delete: a new version
            ("b", "DELETE", 1, None),  # deleting an absent key does nothing
        ],
    )
    table = scd2.apply_changes(changes, **BY_SEQ)
    assert table.columns == ["id", "v", scd2.START_AT, scd2.END_AT]
    assert table.schema[scd2.START_AT].dataType == LongType()
    assert _collected(table) == [("a", "x", 1, 3), ("a", "y", 3, 5), ("a", "z", 7, None)]


def test_a_struct_sequence_breaks_ties_and_types_the_interval(spark: SparkSession) -> None:
    changes = spark.createDataFrame(
        [("a", "2026-11-01", 2, "y"), ("a", "2026-11-01", 1, "x"), ("a", "2026-10-01", 9, "w")],
        "id string, day string, n long, v string",
    ).withColumn("day", F.to_date("day"))
    table = scd2.apply_changes(
        changes, keys=["id"], sequence_by=F.struct("day", "n"), column_list=["id", "v"]
    )
    start_type = table.schema[scd2.START_AT].dataType
    assert isinstance(start_type, StructType)
    assert start_type.fieldNames() == ["day", "n"]
    assert [(row.v, row[scd2.START_AT].n) for row in table.orderBy(scd2.START_AT).collect()] == [
        ("w", 9),
        ("x", 1),
        ("y", 2),
    ]


def test_untracked_columns_update_the_open_version_in_place(spark: SparkSession) -> None:
    changes = _changes(spark, [("a", "INSERT", 1, "x"), ("a", "UPDATE", 2, "x")])
    options = {**BY_SEQ, "except_column_list": ["op"], "track_history_except_column_list": ["seq"]}
    table = scd2.apply_changes(changes, **options)
    assert table.columns == ["id", "seq", "v", scd2.START_AT, scd2.END_AT]
    assert _collected(table) == [("a", 2, "x", 1, None)]


def test_scd1_keeps_the_latest_row_and_no_interval(spark: SparkSession) -> None:
    changes = _changes(
        spark,
        [
            ("a", "UPDATE", 2, None),  # keeps x: nulls are ignored
            ("a", "INSERT", 1, "x"),
            ("b", "INSERT", 1, "p"),
            ("b", "DELETE", 2, None),
            (None, "TRUNCATE", 3, None),
            ("a", "UPDATE", 4, None),  # after the truncate there is no x to keep
            ("c", "INSERT", 5, "q"),
        ],
    )
    table = scd2.apply_changes(
        changes,
        **BY_SEQ,
        stored_as_scd_type=1,
        ignore_null_updates=True,
        apply_as_truncates="op = 'TRUNCATE'",
    )
    assert table.columns == ["id", "v"]
    assert _collected(table) == [("a", None), ("c", "q")]


def test_a_target_is_read_as_history_so_a_late_change_splits_a_version(
    spark: SparkSession,
) -> None:
    first = scd2.apply_changes(
        _changes(spark, [("a", "INSERT", 1, "x"), ("a", "UPDATE", 5, "z")]), **BY_SEQ
    )
    late = _changes(spark, [("a", "UPDATE", 3, "y")])
    table = scd2.apply_changes(late, **BY_SEQ, target=first)
    assert _collected(table) == [("a", "x", 1, 3), ("a", "y", 3, 5), ("a", "z", 5, None)]


def test_scd1_target_rows_come_before_every_change(spark: SparkSession) -> None:
    target = spark.createDataFrame([("a", "x"), ("b", "y"), ("c", "z")], "id string, v string")
    changes = _changes(spark, [("a", "UPDATE", 1, None), ("b", "DELETE", 1, None)])
    table = scd2.apply_changes(
        changes, **BY_SEQ, stored_as_scd_type=1, ignore_null_updates=True, target=target
    )
    assert _collected(table) == [("a", "x"), ("c", "z")]


@pytest.mark.parametrize(
    ("rows", "options"),
    [
        ([("a", "INSERT", None, "x")], {}),
        ([(None, "INSERT", 1, "x")], {}),
        ([("a", "INSERT", 1, "x"), ("a", "UPDATE", 1, "y")], {}),
        ([("a", "INSERT", 1, "x")], {"apply_as_truncates": "op = 'TRUNCATE'"}),
        ([("a", "INSERT", 1, "x")], {"column_list": ["id", "v"]}),
        ([("a", "INSERT", 1, "x")], {"except_column_list": ["nope"]}),
        ([("a", "INSERT", 1, "x")], {"except_column_list": ["id"]}),
        ([("a", "INSERT", 1, "x")], {"stored_as_scd_type": 3}),
        ([("a", "INSERT", 1, "x")], {"stored_as_scd_type": 1, "track_history_column_list": []}),
        ([("a", "INSERT", 1, "x")], {"keys": "id"}),
    ],
    ids=[
        "null-sequence",
        "null-key",
        "conflicting-duplicate",
        "truncates-with-scd2",
        "both-column-lists",
        "unknown-column",
        "key-left-out",
        "scd-type-3",
        "track-history-with-scd1",
        "keys-as-a-string",
    ],
)
def test_invalid_feeds_and_options_raise_change_feed_errors(
    spark: SparkSession, rows: list[tuple[Any, ...]], options: dict[str, Any]
) -> None:
    with pytest.raises(ChangeFeedError):
        scd2.apply_changes(_changes(spark, rows), **{**BY_SEQ, **options})


def test_a_truncate_tied_with_a_change_is_ambiguous(spark: SparkSession) -> None:
    changes = _changes(spark, [("a", "INSERT", 1, "x"), (None, "TRUNCATE", 1, None)])
    with pytest.raises(ChangeFeedError, match="truncate"):
        scd2.apply_changes(
            changes, **BY_SEQ, stored_as_scd_type=1, apply_as_truncates="op = 'TRUNCATE'"
        )


# ---------------------------------------------------------------------- merge onto Delta


def test_merge_splits_a_written_interval_and_keeps_derived_columns(
    spark: SparkSession, tmp_path: Path
) -> None:
    path = str(tmp_path / "dim")
    options: dict[str, Any] = {
        **BY_SEQ,
        "derived_columns": {"sk": F.xxhash64("id", scd2.START_AT)},
    }
    scd_merge.merge_changes(
        spark,
        _changes(spark, [("a", "INSERT", 1, "x"), ("a", "UPDATE", 5, "z")]),
        path=path,
        **options,
    )
    late = _changes(spark, [("a", "UPDATE", 3, "y"), ("b", "INSERT", 4, "p")])
    scd_merge.merge_changes(spark, late, path=path, batch_id=7, app_id="test", **options)
    scd_merge.merge_changes(spark, late, path=path, batch_id=7, app_id="test", **options)  # a retry

    table = spark.read.format("delta").load(path)
    assert table.columns == ["sk", "id", "v", scd2.START_AT, scd2.END_AT]
    assert _collected(table.drop("sk")) == [
        ("a", "x", 1, 3),
        ("a", "y", 3, 5),
        ("a", "z", 5, None),
        ("b", "p", 4, None),
    ]
    expected_keys = table.select(F.xxhash64("id", scd2.START_AT).alias("sk"))
    assert _collected(table.select("sk")) == _collected(expected_keys)
    assert spark.read.format("delta").load(scd_merge.change_log_path(path)).count() == 4
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()
    assert detail is not None
    assert detail.clusteringColumns == ["id"]


def test_merge_writes_intervals_whose_struct_fields_are_not_nullable(
    spark: SparkSession, tmp_path: Path
) -> None:
    path = str(tmp_path / "dim")
    changes = _changes(spark, [("a", "INSERT", 1, "x"), ("a", "DELETE", 2, None)])
    sequence = F.struct(F.col("seq"), F.lit(0).alias("tie"))  # `tie` is NOT NULL
    scd_merge.merge_changes(spark, changes, path=path, **{**BY_SEQ, "sequence_by": sequence})
    scd_merge.merge_changes(
        spark,
        _changes(spark, [("b", "INSERT", 1, "y")]),
        path=path,
        **{**BY_SEQ, "sequence_by": sequence},
    )
    assert _collected(spark.read.format("delta").load(path)) == [
        ("a", "x", (1, 0), (2, 0)),
        ("b", "y", (1, 0), None),
    ]


def test_merge_rejects_a_bad_batch_before_writing_anything(
    spark: SparkSession, tmp_path: Path
) -> None:
    path = str(tmp_path / "dim")
    scd_merge.merge_changes(spark, _changes(spark, [("a", "INSERT", 1, "x")]), path=path, **BY_SEQ)
    with pytest.raises(ChangeFeedError):
        scd_merge.merge_changes(
            spark, _changes(spark, [("a", "UPDATE", 1, "y")]), path=path, **BY_SEQ
        )
    assert _collected(spark.read.format("delta").load(path)) == [("a", "x", 1, None)]
    assert spark.read.format("delta").load(scd_merge.change_log_path(path)).count() == 1


def test_merge_refuses_a_table_it_did_not_write(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "dim")
    _changes(spark, [("a", "INSERT", 1, "x")]).write.format("delta").save(path)
    with pytest.raises(ChangeFeedError, match="change log"):
        scd_merge.merge_changes(
            spark, _changes(spark, [("a", "UPDATE", 2, "y")]), path=path, **BY_SEQ
        )
    assert delta_log.table_version(Path(scd_merge.change_log_path(path))) is None


# ------------------------------------------------------------------ properties vs the model


def _options(layout: Layout) -> dict[str, Any]:
    return {
        "keys": list(KEYS),
        "sequence_by": F.struct("at", "n"),
        "apply_as_deletes": DELETES,
        **layout.options(),
    }


def _model_table(changes: list[Change], layout: Layout) -> Counter[tuple[Any, ...]]:
    def output(key: tuple[Any, ...], values: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(key[KEYS.index(c)] if c in KEYS else values[c] for c in layout.output_columns)

    if layout.scd_type == 1:
        rows = scd1(changes, ignore_null_updates=layout.ignore_null_updates)
        return Counter(output(key, values) for key, values in rows.items())
    versions = model_scd2(
        changes, tracked=layout.tracked, ignore_null_updates=layout.ignore_null_updates
    )
    return Counter((*output(v.key, v.values), v.start, v.end) for v in versions)


def _spark_table(table: DataFrame, layout: Layout) -> Counter[tuple[Any, ...]]:
    interval = [scd2.START_AT, scd2.END_AT] if layout.scd_type == 2 else []
    assert table.columns == [*layout.output_columns, *interval]
    return Counter(_plain(row) for row in table.collect())


def _versions(rows: Counter[tuple[Any, ...]], layout: Layout) -> list[Version]:
    key_positions = [layout.output_columns.index(k) for k in KEYS]
    return [Version(tuple(row[i] for i in key_positions), {}, row[-2], row[-1]) for row in rows]


@pytest.mark.property
@given(feeds(allow_truncates=True), layouts())
def test_apply_changes_equals_the_model(
    spark: SparkSession, rows: list[FeedRow], layout: Layout
) -> None:
    feed = [row for row in rows if layout.scd_type == 1 or row[2] != "TRUNCATE"]
    changes = model_changes(feed, layout)
    table = _spark_table(
        scd2.apply_changes(spark.createDataFrame(feed, SCHEMA), **_options(layout)), layout
    )
    assert table == _model_table(changes, layout)
    if layout.scd_type == 2:
        assert scd2_problems(_versions(table, layout), changes) == []


@pytest.mark.property
@given(feeds(allow_truncates=True, max_keys=6), layouts(), st.data())
def test_merging_batches_in_any_order_equals_applying_all_changes(
    spark: SparkSession,
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[FeedRow],
    layout: Layout,
    data: st.DataObject,
) -> None:
    feed = [row for row in rows if layout.scd_type == 1 or row[2] != "TRUNCATE"]
    batch_count = data.draw(st.integers(1, 3), label="batches")
    assignment = data.draw(
        st.lists(st.integers(0, batch_count - 1), min_size=len(feed), max_size=len(feed))
    )
    batches = [
        [r for r, b in zip(feed, assignment, strict=True) if b == i] for i in range(batch_count)
    ]
    arrival = data.draw(st.permutations([batch for batch in batches if batch]), label="arrival")
    path = str(tmp_path_factory.mktemp("scd") / "table")
    for batch in arrival:
        scd_merge.merge_changes(
            spark, spark.createDataFrame(batch, SCHEMA), path=path, **_options(layout)
        )
    table = _spark_table(spark.read.format("delta").load(path), layout)
    assert table == _model_table(model_changes(feed, layout), layout)
