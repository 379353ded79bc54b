"""The SDP definitions under `spark-pipelines` build the same tables as the local runner.

One landing directory (a few thousand generated events, a duplicated event, a line that is
not JSON and an event without a timestamp) goes through both: `spark-pipelines run` of
`spark-pipeline.yml` (its own Spark Connect server, Delta tables in its warehouse) and
`pipeline.run.runner.run_pipeline` (local Spark, `contracts.rules` enforced on both sides). SDP
runs twice, the second time incrementally over a day of events that landed after the first;
the runner runs once over everything. Every table both build is compared row for row.

Ignored: `_ingested_at` (bronze and silver tables), the time each side read a line; nothing
else. Not shared: `_event_log` (each side records its own updates; open-source SDP reports no
expectation counts) and, on Databricks only, `gold_user_versions`.

Only `nox -s lakeflow` runs this folder; `nox -s tests` leaves it out.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from pipeline import table_names
from pipeline.config import (
    DEFAULT_EXPECTATIONS_MODULE,
    SparkSettings,
    pii_key_from_file,
    spark_settings_from_environment,
)
from pipeline.lakeflow.local import LocalRun, run_spark_pipelines
from pipeline.lakeflow.run_events import RUNNER, SDP_FLOWS
from pipeline.lakeflow.settings import EXPECTATIONS, PII_KEY_REF
from pipeline.observe import event_log
from pipeline.observe.history import updates
from pipeline.run import runner
from pipeline.run.session import build_session
from pipeline.storage import tables
from pipeline.transforms.expectations import load_expectations
from scenarios import generator

PROJECT = Path(__file__).resolve().parents[2]
SPEC = PROJECT / "spark-pipeline.yml"
FIRST_EVENTS, LATER_EVENTS = 2_000, 1_000
NEXT_DAY = generator.DEFAULT_START + timedelta(days=1)

SHARED_TABLES: tuple[str, ...] = (
    table_names.BRONZE_EVENTS,
    table_names.BRONZE_QUARANTINE,
    table_names.SILVER_EVENTS,
    table_names.SILVER_QUARANTINE,
    table_names.SILVER_LATE_EVENTS,
    *table_names.GOLD_TABLES,
)
IGNORED_COLUMNS: tuple[str, ...] = ("_ingested_at",)
"""When each side read a line: differs by construction."""

pytestmark = pytest.mark.lakeflow


@dataclass(frozen=True)
class Runs:
    """The two warehouses built from one landing directory, and how long each took."""

    sdp: Path
    runner: Path
    sdp_seconds: float
    runner_seconds: float


def _add_faults(landing: Path) -> None:
    """A duplicated event, a line that is not JSON, and an event without a timestamp."""
    first_file = sorted((landing / "events").glob("events-*.json"))[0]
    event = orjson.loads(first_file.read_bytes().splitlines()[0])
    duplicated = orjson.dumps(dict(event, event_id=str(uuid.uuid4())))
    untimed = orjson.dumps({k: v for k, v in event.items() if k != "event_ts"} | {"event_id": "x"})
    faults = landing / "events" / "faults-00000.json"
    faults.write_bytes(b"\n".join([duplicated, duplicated, b"not json", untimed]) + b"\n")


def _fail_with_output(completed: subprocess.CompletedProcess[str], what: str) -> None:
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).splitlines()
        pytest.fail(f"spark-pipelines {what} exited {completed.returncode}:\n" + "\n".join(output))


@pytest.fixture(scope="module")
def settings() -> SparkSettings:
    defaults = spark_settings_from_environment(PROJECT / ".cache" / "jars")
    return SparkSettings(
        remote=None, jar_cache=defaults.jar_cache, shuffle_partitions=3, driver_memory="2g"
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lakeflow")
    generator.write_landing(root / "landing", events=FIRST_EVENTS, seed=11, files=3)
    _add_faults(root / "landing")
    (root / "pii.key").write_text(uuid.uuid4().hex + uuid.uuid4().hex, encoding="utf-8")
    return root


def _local_run(workspace: Path, warehouse: str) -> LocalRun:
    return LocalRun(
        spec=SPEC,
        warehouse=workspace / warehouse,
        landing=workspace / "landing",
        configuration={
            PII_KEY_REF: f"file:{workspace / 'pii.key'}",
            EXPECTATIONS: DEFAULT_EXPECTATIONS_MODULE,
        },
    )


@pytest.fixture(scope="module")
def runs(workspace: Path, settings: SparkSettings) -> Iterator[Runs]:
    started = time.monotonic()
    completed = run_spark_pipelines("run", _local_run(workspace, "sdp"), settings, capture=True)
    _fail_with_output(completed, "run")
    generator.write_landing(
        workspace / "landing", events=LATER_EVENTS, seed=12, files=1, start=NEXT_DAY
    )
    completed = run_spark_pipelines("run", _local_run(workspace, "sdp"), settings, capture=True)
    _fail_with_output(completed, "incremental run")
    sdp_seconds = time.monotonic() - started

    spark = build_session(settings)
    started = time.monotonic()
    runner.run_pipeline(
        spark,
        landing=workspace / "landing",
        warehouse=workspace / "runner",
        pii_key=pii_key_from_file(workspace / "pii.key"),
        expectations=load_expectations(DEFAULT_EXPECTATIONS_MODULE),
    )
    yield Runs(workspace / "sdp", workspace / "runner", sdp_seconds, time.monotonic() - started)


@pytest.fixture(scope="module")
def spark(runs: Runs, settings: SparkSettings) -> SparkSession:
    return build_session(settings)  # the session the runner used: getOrCreate returns it


def _table(spark: SparkSession, warehouse: Path, table: str) -> DataFrame:
    frame = spark.read.format("delta").load(str(warehouse / table))
    return frame.select(*sorted(c for c in frame.columns if c not in IGNORED_COLUMNS))


def test_dry_run_validates_the_graph(workspace: Path, settings: SparkSettings) -> None:
    completed = run_spark_pipelines(
        "dry-run", _local_run(workspace, "dry-run"), settings, capture=True
    )
    _fail_with_output(completed, "dry-run")
    output = completed.stdout + completed.stderr
    assert "Run is COMPLETED" in output
    assert not (workspace / "dry-run" / table_names.SILVER_EVENTS).exists()  # validated, not built


def test_each_sdp_run_is_an_update_of_the_event_log(runs: Runs) -> None:
    found = updates(event_log.read_events(runs.sdp))
    assert [(u.state, u.runner) for u in found] == [("COMPLETED", RUNNER)] * 2
    first = found[0]
    assert set(first.definitions) == {flow.name for flow in SDP_FLOWS}
    assert set(first.flows) == set(first.definitions)  # every flow reported its status
    assert {flow.status for flow in first.flows.values()} == {"COMPLETED"}
    # Rows from each table's Delta commits in the update: streaming tables gain rows in both,
    # a materialized view is recomputed whole each time.
    for table in (table_names.BRONZE_EVENTS, table_names.SILVER_EVENTS):
        written = sum(update.flows[table].output_rows for update in found)
        assert written == tables.count_rows(None, runs.sdp, table) > 0
    facts = found[-1].flows[table_names.GOLD_FACT_EVENTS].output_rows
    assert facts == tables.count_rows(None, runs.sdp, table_names.GOLD_FACT_EVENTS) > 0


def test_sdp_and_runner_build_the_same_tables(spark: SparkSession, runs: Runs) -> None:
    counts = {
        table: (_table(spark, runs.sdp, table).count(), _table(spark, runs.runner, table).count())
        for table in SHARED_TABLES
    }
    width = max(map(len, SHARED_TABLES))
    print(f"\n{'table':<{width}}  {'SDP':>7}  {'runner':>7}")
    for table, (sdp_rows, runner_rows) in counts.items():
        print(f"{table:<{width}}  {sdp_rows:>7,}  {runner_rows:>7,}")
    print(f"{'seconds':<{width}}  {runs.sdp_seconds:>7.1f}  {runs.runner_seconds:>7.1f}")
    print("(SDP: two runs, the second incremental; runner: one run)")

    events = FIRST_EVENTS + LATER_EVENTS
    assert counts[table_names.BRONZE_EVENTS][1] == events + 3  # two copies and the untimed event
    assert counts[table_names.BRONZE_QUARANTINE][1] == 1
    assert counts[table_names.SILVER_QUARANTINE][1] == 1
    for table in SHARED_TABLES:
        sdp_table, runner_table = _table(spark, runs.sdp, table), _table(spark, runs.runner, table)
        assert sdp_table.columns == runner_table.columns, table
        assertDataFrameEqual(sdp_table, runner_table)


def test_the_pii_key_is_in_no_table(spark: SparkSession, runs: Runs, workspace: Path) -> None:
    key = (workspace / "pii.key").read_text(encoding="utf-8")
    for table in SHARED_TABLES:
        if table.startswith(("silver", "gold")):
            frame = spark.read.format("delta").load(str(runs.sdp / table))
            text = frame.selectExpr("to_json(struct(*)) AS row")
            assert text.where(text.row.contains(key)).isEmpty(), table
