"""producer -> Azure storage (Azurite) -> `clickstream run --landing abfs://...` gives the same
tables as the local path with the same seed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from pipeline import table_names
from pipeline.storage import tables
from tests.azure.conftest import ACCOUNT, CONTAINER, PROJECT, Emulator

KEY = "test-key-for-the-azure-tests-0123456789"
# When a row was processed differs between two runs; where it came from is compared apart.
PROCESSING_TIME = {"_ingested_at", "_processed_at", "_quarantined_at", "_loaded_at"}


def _clickstream(*arguments: str, environment: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "clickstream", *arguments],
        env={
            **os.environ,
            **environment,
            "CLICKSTREAM_PII_KEY": KEY,
            "CLICKSTREAM_JAR_CACHE": str(PROJECT / ".cache" / "jars"),
        },
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


_landing_path = r"file:[^\"]*/(events|user_changes)/"


def _rows(warehouse: Path) -> dict[str, Counter[str]]:
    """Each table's rows as JSON text, minus processing times, with the landing's path cut."""
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = SparkSession.getActiveSession()
    assert spark is not None
    found: dict[str, Counter[str]] = {}
    for table in table_names.TABLES:
        if not tables.table_exists(warehouse, table):
            found[table] = Counter()
            continue
        frame = tables.read_table(spark, warehouse, table)
        kept = [name for name in frame.columns if name not in PROCESSING_TIME]
        text = F.to_json(F.struct(*kept))
        as_json = frame.select(F.regexp_replace(text, _landing_path, "<landing>/$1/"))
        found[table] = Counter(row[0] for row in as_json.collect())
    return found


@pytest.fixture(scope="module")
def spark_session() -> object:
    from pipeline.config import spark_settings_from_environment
    from pipeline.run.session import build_session

    return build_session(spark_settings_from_environment(PROJECT / ".cache" / "jars"))


def test_producer_to_storage_to_pipeline_equals_the_local_path(
    azure_env: Emulator, tmp_path: Path, spark_session: object
) -> None:
    produce = ["produce", "--events", "1200", "--seed", "17", "--files", "2"]
    storage = ["--storage-account", ACCOUNT, "--storage-endpoint", azure_env.endpoint]
    remote = f"abfs://{CONTAINER}/end-to-end"
    local_landing = tmp_path / "landing"
    env = azure_env.environment
    _clickstream(*produce, "--out", str(local_landing), environment=env)
    _clickstream(*produce, "--out", remote, *storage, environment=env)

    remote_warehouse, local_warehouse = tmp_path / "remote-wh", tmp_path / "local-wh"
    said = _clickstream(
        "run", "--landing", remote, *storage, "--warehouse", str(remote_warehouse), environment=env
    )
    assert "copied 3 new files" in said
    _clickstream(
        "run", "--landing", str(local_landing), "--warehouse", str(local_warehouse), environment=env
    )
    remote_rows = _rows(remote_warehouse)
    local_rows = _rows(local_warehouse)
    assert (remote_warehouse / "_landing" / ACCOUNT / CONTAINER / "end-to-end/events").is_dir()
    assert sum(remote_rows[table_names.BRONZE_EVENTS].values()) == 1200
    for table in table_names.TABLES:
        assert remote_rows[table] == local_rows[table], table

    # Then nothing is new: nothing copied, no Spark.
    again = _clickstream(
        "run", "--landing", remote, *storage, "--warehouse", str(remote_warehouse), environment=env
    )
    assert "copied 0 new files (0 bytes)" in again and "(3 copied before)" in again
    assert "nothing new since the last run: no Spark work" in again


def test_a_streamed_landing_in_date_folders_is_read_whole(
    azure_env: Emulator, tmp_path: Path, spark_session: object
) -> None:
    storage = ["--storage-account", ACCOUNT, "--storage-endpoint", azure_env.endpoint]
    remote = f"abfs://{CONTAINER}/streamed"
    env = azure_env.environment
    streamed = _clickstream(
        "produce", "--stream", "--rate", "40", "--duration", "3", "--interval", "1",
        "--seed", "18", "--out", remote, *storage, environment=env,
    )  # fmt: skip
    assert "streamed 120 events" in streamed
    files = streamed.count(f"abfs://{CONTAINER}/streamed/")
    assert files >= 4  # three event files, and the INSERTs' change file
    warehouse = tmp_path / "warehouse"
    said = _clickstream(
        "run", "--landing", remote, *storage, "--warehouse", str(warehouse), environment=env
    )
    assert f"copied {files} new files" in said
    rows = _rows(warehouse)
    assert sum(rows[table_names.BRONZE_EVENTS].values()) == 120
    assert sum(rows[table_names.SILVER_EVENTS].values()) == 120
    assert sum(rows[table_names.GOLD_DIM_USER].values()) > 0
