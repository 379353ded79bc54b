"""`clickstream dlt run` on the customers example (a notebook-format DLT source, unchanged):
Auto Loader JSON with rescued data, a view with `expect` and `expect_or_drop`,
`create_target_table` and `apply_changes` with deletes and `except_column_list` into SCD type 2,
checked against the plain-Python reference model, the event log's counts, a rerun with
nothing new (no Spark), a second arrival read alone, and a full refresh equal to the
incremental result."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from pipeline.dlt.loader import UnsupportedFeatureError
from pipeline.dlt.runtime import ExpectationViolationError
from pipeline.dlt.update import UpdateOutcome, run_update
from pipeline.observe.event_log import read_events
from pipeline.observe.history import updates
from pipeline.storage import delta_log
from scenarios.scd_model import Change, scd2

PROJECT = Path(__file__).resolve().parents[2]
SOURCE = PROJECT / "examples" / "customers_cdc" / "pipeline.py"

FIRST = [
    {"customer_id": 1, "name": "Ada", "email": "ada@example.com", "tier": "gold",
     "operation": "UPSERT", "changed_at": "2026-01-01T10:00:00Z"},
    {"customer_id": 2, "name": "Bob", "email": "bob@example.com", "tier": "silver",
     "operation": "UPSERT", "changed_at": "2026-01-01T11:00:00Z"},
    {"customer_id": 1, "name": "Ada", "email": "ada@new.example.com", "tier": "gold",
     "operation": "UPSERT", "changed_at": "2026-01-02T10:00:00Z"},
    {"customer_id": None, "name": "Nobody", "operation": "UPSERT",
     "changed_at": "2026-01-02T10:00:00Z"},
    {"customer_id": 3, "name": "Cy", "email": "cy@example.com", "tier": "bronze",
     "operation": "UPSERT", "changed_at": "2026-01-03T10:00:00Z", "referrer": "ad"},
    "not json at all",
    {"customer_id": 2, "operation": "DELETE", "changed_at": "2026-01-04T10:00:00Z"},
    {"customer_id": "x7", "name": "Bad id", "operation": "UPSERT",
     "changed_at": "2026-01-04T10:00:00Z"},
]  # fmt: skip
SECOND = [  # a late change (between Ada's versions), a reordered pair, a duplicate
    {"customer_id": 1, "name": "Ada L.", "email": "ada@example.com", "tier": "gold",
     "operation": "UPSERT", "changed_at": "2026-01-01T18:00:00Z"},
    {"customer_id": 4, "name": "Di", "email": "di@example.com", "tier": "gold",
     "operation": "UPSERT", "changed_at": "2026-01-05T12:00:00Z"},
    {"customer_id": 4, "name": "Di", "email": "di@example.com", "tier": "silver",
     "operation": "UPSERT", "changed_at": "2026-01-05T09:00:00Z"},
    {"customer_id": 3, "name": "Cy", "email": "cy@example.com", "tier": "bronze",
     "operation": "UPSERT", "changed_at": "2026-01-03T10:00:00Z", "referrer": "ad"},
]  # fmt: skip
VALUES = ("name", "email", "tier")


def _land(landing: Path, name: str, records: list[Any]) -> None:
    landing.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    (landing / name).write_text("\n".join(lines) + "\n")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _model(records: list[Any]) -> set[tuple[Any, ...]]:
    """The documented AUTO CDC result (SCD2) of the records the view keeps."""
    changes = [
        Change(
            (r["customer_id"],),
            _time(r["changed_at"]),
            "delete" if r["operation"] == "DELETE" else "upsert",
            tuple((c, r.get(c)) for c in VALUES),
        )
        for r in records
        if isinstance(r, dict) and isinstance(r.get("customer_id"), int) and r.get("changed_at")
    ]
    return {(v.key[0], *(v.values[c] for c in VALUES), v.start, v.end) for v in scd2(changes)}


def _table(spark: SparkSession, warehouse: Path) -> set[tuple[Any, ...]]:
    rows = spark.read.format("delta").load(str(warehouse / "dim_customers")).collect()
    return {
        (
            r["customer_id"],
            *(r[c] for c in VALUES),
            r["__START_AT"].replace(tzinfo=UTC) if r["__START_AT"] else None,
            r["__END_AT"].replace(tzinfo=UTC) if r["__END_AT"] else None,
        )
        for r in rows
    }


def _update(spark: SparkSession, warehouse: Path, landing: Path, **kw: Any) -> UpdateOutcome:
    return run_update(
        [SOURCE],
        warehouse,
        {"customers.landing": str(landing)},
        start_spark=lambda: spark,
        **kw,
    )


def _quality(warehouse: Path, update_id: str) -> dict[str, Any]:
    for event in read_events(warehouse, update_id=update_id):
        details = json.loads(event["details"])
        quality = details.get("flow_progress", {}).get("data_quality")
        if quality:
            return dict(quality)
    return {}


@pytest.fixture(scope="module")
def first_update(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, UpdateOutcome]:
    root = tmp_path_factory.mktemp("dlt")
    landing, warehouse = root / "landing", root / "warehouse"
    _land(landing, "part-0001.json", FIRST)
    return landing, warehouse, _update(spark, warehouse, landing)


def test_every_line_lands_in_the_raw_table_with_what_it_did_not_fit(
    spark: SparkSession, first_update: tuple[Path, Path, UpdateOutcome]
) -> None:
    _landing, warehouse, _outcome = first_update
    raw = spark.read.format("delta").load(str(warehouse / "customers_raw"))
    assert raw.count() == len(FIRST)
    assert dict(raw.dtypes)["customer_id"] == "bigint"  # the schema hint
    assert dict(raw.dtypes)["name"] == "string"  # inferColumnTypes false
    rescued = {
        r["name"]: json.loads(r["_rescued_data"])
        for r in raw.where("_rescued_data IS NOT NULL").collect()
    }
    assert raw.where("name = 'Cy'").collect()[0]["referrer"] == "ad"  # inferred: a column
    assert set(rescued) == {"Bad id", None}
    assert rescued["Bad id"]["customer_id"] == "x7"
    assert rescued[None]["_unparsed_record"] == "not json at all"  # a row of nulls
    assert all(v["_file_path"].endswith("part-0001.json") for v in rescued.values())


def test_the_scd2_target_equals_the_documented_semantics_and_the_event_log_counts(
    spark: SparkSession, first_update: tuple[Path, Path, UpdateOutcome]
) -> None:
    _landing, warehouse, outcome = first_update
    assert _table(spark, warehouse) == _model(FIRST)
    columns = spark.read.format("delta").load(str(warehouse / "dim_customers")).columns
    assert "operation" not in columns and "_rescued_data" not in columns
    quality = _quality(warehouse, outcome.update_id)
    counts = {
        e["name"]: (e["passed_records"], e["failed_records"]) for e in quality["expectations"]
    }
    # The null id, "x7" (not a BIGINT) and the line that is not JSON fail has_key; that line
    # alone has no sequence and no operation; it fails two drop rules and is dropped once.
    assert counts["has_key"] == (5, 3)
    assert counts["has_sequence"] == (7, 1)
    assert counts["known_operation"] == (7, 1)
    assert quality["dropped_records"] == 3


def test_a_rerun_with_nothing_new_starts_no_spark_and_a_new_file_is_read_alone(
    spark: SparkSession, first_update: tuple[Path, Path, UpdateOutcome]
) -> None:
    landing, warehouse, _outcome = first_update

    def no_spark() -> SparkSession:
        raise AssertionError("an update with nothing new started Spark")

    again = run_update(
        [SOURCE], warehouse, {"customers.landing": str(landing)}, start_spark=no_spark
    )
    assert again.nothing_new
    assert updates(read_events(warehouse, update_id=again.update_id))[0].state == "COMPLETED"

    _land(landing, "part-0002.json", SECOND)
    second = _update(spark, warehouse, landing)
    assert not second.nothing_new
    raw = next(f for f in second.flows if f.flow.output == "customers_raw")
    assert raw.output_rows == len(SECOND)
    assert _table(spark, warehouse) == _model(FIRST + SECOND)

    refreshed = warehouse.parent / "refreshed"
    shutil.copytree(warehouse, refreshed, ignore=shutil.ignore_patterns(".writer.lock"))
    _update(spark, refreshed, landing, full_refresh=True)
    assert _table(spark, refreshed) == _table(spark, warehouse)
    raw_rows = spark.read.format("delta").load(str(refreshed / "customers_raw")).count()
    assert raw_rows == len(FIRST) + len(SECOND)


def test_an_unsupported_feature_stops_before_spark_or_any_table(tmp_path: Path) -> None:
    source = tmp_path / "kafka.py"
    source.write_text(
        "import dlt\n\n@dlt.table\ndef events():\n"
        '    return spark.readStream.format("kafka").option("subscribe", "t").load()\n'
    )

    def no_spark() -> SparkSession:
        raise AssertionError("Spark started for a source that cannot run")

    with pytest.raises(UnsupportedFeatureError, match=r"kafka.py:5: a Kafka source"):
        run_update([source], tmp_path / "wh", {}, start_spark=no_spark)
    assert not (tmp_path / "wh" / "events").exists()


def test_a_failing_expect_or_fail_rule_stops_the_flow_naming_it(
    spark: SparkSession, tmp_path: Path
) -> None:
    source = tmp_path / "strict.py"
    source.write_text(
        "import dlt\n\n"
        "@dlt.table\n"
        '@dlt.expect_or_fail("positive_amount", "amount > 0")\n'
        "def orders():\n"
        '    return spark.createDataFrame([(1, 5.0), (2, -1.0)], "id INT, amount DOUBLE")\n'
    )
    with pytest.raises(ExpectationViolationError, match=r"rule 'positive_amount' of 'orders'"):
        run_update([source], tmp_path / "wh", {}, start_spark=lambda: spark)
    assert delta_log.table_version(tmp_path / "wh" / "orders") is None  # nothing committed
    events = read_events(tmp_path / "wh")
    assert updates(events)[-1].state == "FAILED"


def test_auto_loader_reads_csv_columns_by_each_files_header(
    spark: SparkSession, tmp_path: Path
) -> None:
    source = tmp_path / "csv_source.py"
    source.write_text(
        "import dlt\n\n"
        "@dlt.table\n"
        "def raw():\n"
        '    return (spark.readStream.format("cloudFiles").option("cloudFiles.format", "csv")\n'
        '            .option("header", "true")\n'
        '            .option("cloudFiles.schemaHints", "id INT")\n'
        '            .load(spark.conf.get("landing")))\n'
    )
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_text("id,name\n1,ada\n2,bo,extra-token\n")
    (landing / "b.csv").write_text("name,colour,id\ncy,red,3\ndi,blue,four\n")
    run_update([source], tmp_path / "wh", {"landing": str(landing)}, start_spark=lambda: spark)
    rows = {
        (r["id"], r["name"], r["colour"], r["_rescued_data"])
        for r in spark.read.format("delta").load(str(tmp_path / "wh" / "raw")).collect()
    }
    b = (landing / "b.csv").resolve().as_uri().replace("file:///", "file:/")
    a = (landing / "a.csv").resolve().as_uri().replace("file:///", "file:/")
    assert rows == {
        (1, "ada", None, None),
        (3, "cy", "red", None),
        (None, "di", "blue", json.dumps({"id": "four", "_file_path": b}, separators=(",", ":"))),
        (
            None,
            None,
            None,
            json.dumps(
                {"_unparsed_record": "2,bo,extra-token", "_file_path": a}, separators=(",", ":")
            ),
        ),
    }

    # A later update infers from its new files only: a column only an already-read file
    # shows (rewritten after it was read, which Auto Loader ignores) does not appear.
    (landing / "a.csv").write_text("id,name,secret\n1,ada,s\n")
    (landing / "c.csv").write_text("id,name,size\n5,eve,L\n")
    run_update([source], tmp_path / "wh", {"landing": str(landing)}, start_spark=lambda: spark)
    raw = spark.read.format("delta").load(str(tmp_path / "wh" / "raw"))
    assert raw.columns == ["id", "name", "colour", "_rescued_data", "size"]
    assert raw.where("id = 5").select("name", "size").collect() == [("eve", "L")]
    assert raw.count() == 5
