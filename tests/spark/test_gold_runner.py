"""The gold stage of the runner on generated data: exactly-once facts, point-in-time user keys,
an incrementally merged user dimension equal to the batch one, and no PII."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from pipeline import table_names
from pipeline.config import PiiKey
from pipeline.run import runner
from pipeline.storage import tables
from pipeline.transforms import gold
from pipeline.transforms.schemas import USER_CHANGE_SCHEMA
from scenarios import generator


def _read(spark: SparkSession, warehouse: Path, table: str) -> DataFrame:
    return tables.read_table(spark, warehouse, table)


def _rows(frame: DataFrame) -> list[tuple[Any, ...]]:
    return sorted((tuple(row) for row in frame.collect()), key=repr)


def _pii(landing: Path) -> set[str]:
    values: set[str] = set()
    for path in (landing / "events").glob("*.json"):
        for line in path.read_bytes().splitlines():
            user = orjson.loads(line)["user"]
            values.update(str(user[field]) for field in ("user_id", "email", "full_name", "ip"))
    return values


def _string_values(frame: DataFrame) -> DataFrame:
    columns = [f.name for f in frame.schema.fields if isinstance(f.dataType, StringType)]
    return frame.select(F.explode(F.array(*columns)).alias("value"))


def _late_update(landing: Path) -> dict[str, Any]:
    """An UPDATE of the first user, sequenced inside its first version (so it splits it)."""
    feed = next((landing / "user_changes").glob("*.json")).read_bytes()
    changes = [orjson.loads(line) for line in feed.splitlines()]
    mine = [c for c in changes if c["user_id"] == changes[0]["user_id"]]
    return dict(
        mine[0],
        operation="UPDATE",
        plan="late-plan",
        changed_at="2026-11-01T00:00:00.000Z",  # after the INSERT, before the window's events
        sequence_num=max(c["sequence_num"] for c in changes) + 1,
    )


def test_gold_tables_from_generated_data(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey, keys: DataFrame
) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    generator.write_landing(landing, events=400, seed=11, users=40, files=2)
    runner.run_pipeline(spark, landing=landing, warehouse=warehouse, pii_key=pii_key)
    late = landing / "user_changes" / "late.json"
    late.write_bytes(orjson.dumps(_late_update(landing)) + b"\n")
    summary = runner.run_pipeline(spark, landing=landing, warehouse=warehouse, pii_key=pii_key)
    for table in table_names.GOLD_TABLES:
        assert summary.rows(table) > 0, table
    assert {c.table: c.added for c in summary.counts}[table_names.GOLD_DIM_USER] == 1  # a split

    silver = _read(spark, warehouse, table_names.SILVER_EVENTS)
    facts = _read(spark, warehouse, table_names.GOLD_FACT_EVENTS)
    users = _read(spark, warehouse, table_names.GOLD_DIM_USER)
    # every silver event exactly once
    assert facts.count() == silver.count() == facts.select("event_id").distinct().count()
    assert facts.join(silver, "event_id", "left_anti").isEmpty()

    # each event points at the version valid at its time, whose attributes it carries
    placed = (
        facts.select("event_id", gold.USER_SK, "event_time")
        .join(users, gold.USER_SK)
        .join(silver.select("event_id", "email_hash", "country", "city"), "event_id")
    )
    assert placed.count() == silver.count()  # no event of generated data lacks a version
    mismatched = placed.where(
        (F.col("__START_AT.changed_at") > F.col("event_time"))
        | (F.col("__END_AT.changed_at") <= F.col("event_time"))
        | ~users["email_hash"].eqNullSafe(silver["email_hash"])
        | ~users["country"].eqNullSafe(silver["country"])
        | ~users["city"].eqNullSafe(silver["city"])
    )
    assert mismatched.isEmpty()

    # the incrementally merged dimension (a late change in a second run) equals the batch one
    raw_changes = spark.read.schema(USER_CHANGE_SCHEMA).json(str(landing / "user_changes"))
    expected = gold.dim_user(gold.user_changes(raw_changes, keys=keys))
    assert users.columns == expected.columns
    assert _rows(users) == _rows(expected)
    assert users.where(F.col("plan") == "late-plan").count() == 1

    # no clear PII anywhere in gold (nor in the user dimension's change log)
    pii = spark.createDataFrame([(value,) for value in _pii(landing)], "value string")
    log = spark.read.format("delta").load(
        tables.table_path(warehouse, table_names.GOLD_DIM_USER) + "__changes"
    )
    written = [(name, _read(spark, warehouse, name)) for name in table_names.GOLD_TABLES]
    for name, frame in [*written, ("change log", log)]:
        assert _string_values(frame).join(pii, "value", "left_semi").isEmpty(), name
