"""One SparkSession (local Spark + Delta) shared by every test in this folder; never stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession

from pipeline.config import PiiKey, SparkSettings, spark_settings_from_environment
from pipeline.run.session import SMALL_INPUT, build_session
from pipeline.transforms.pseudonymize import key_frame

PROJECT = Path(__file__).resolve().parents[2]
TEST_KEY = PiiKey(b"test-key-for-unit-tests-only-0123456789")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test here as a Spark test."""
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.spark)


@pytest.fixture(scope="session")
def spark() -> SparkSession:
    """Local Spark with Delta: two cores, three shuffle partitions (order bugs show), UTC.

    Otherwise the settings of a small run (`SMALL_INPUT`: expressions interpreted, no adaptive
    execution, no broadcast joins), which the runner sets for its runs anyway: on test-sized
    data, generating Java code and planning adaptive stages took more time than they saved.
    """
    defaults = spark_settings_from_environment(PROJECT / ".cache" / "jars")
    settings = SparkSettings(
        remote=defaults.remote,
        jar_cache=defaults.jar_cache,
        master=defaults.master,  # $CLICKSTREAM_MASTER: the same tests on a cluster
        shuffle_partitions=3,
        driver_memory="2g",
    )
    session = build_session(settings)
    for key, value in SMALL_INPUT.items():
        if key != "spark.sql.shuffle.partitions":
            session.conf.set(key, value)
    return session


@pytest.fixture(autouse=True)
def _stop_streams(request: pytest.FixtureRequest) -> Iterator[None]:
    """Stop any streaming query a test left running."""
    yield
    if "spark" in request.fixturenames:
        session: SparkSession = request.getfixturevalue("spark")
        for query in session.streams.active:
            query.stop()


@pytest.fixture(scope="session")
def pii_key() -> PiiKey:
    """A fixed key for tests only."""
    return TEST_KEY


@pytest.fixture(scope="session")
def keys(spark: SparkSession) -> DataFrame:
    """The HMAC key frame of the test key."""
    return key_frame(spark, TEST_KEY)
