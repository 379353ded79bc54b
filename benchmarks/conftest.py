"""Fixtures of the benchmark suites: the size profile, one SparkSession, cached inputs, the
plain-Spark reference, and the layer outputs the layer benchmarks hand on.

Only `benchmarks/pytest.ini` collects these suites (`python -m benchmarks` uses it); the test
session's `testpaths` never reaches them. How a benchmark is measured is `benchmarks.harness`.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession

from benchmarks.cpu import watch_jvm
from benchmarks.harness import (
    JUDGE,
    Reference,
    Workload,
    benchmark_key,
    nothing,
    slowdown_option,
)
from benchmarks.layers import run_bronze, run_silver
from benchmarks.profiles import PROFILES, SEED, Profile
from benchmarks.verdict import DEFAULT_METRIC, DEFAULT_THRESHOLD, METRICS, Judge, load_baseline
from benchmarks.workloads import cached_landing, plain_spark
from pipeline import table_names
from pipeline.config import PiiKey, SparkSettings, spark_settings_from_environment
from pipeline.run import runner
from pipeline.run.session import build_session
from pipeline.transforms.pseudonymize import key_frame

PROJECT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    """The suite's options; `python -m benchmarks` passes them."""
    group = parser.getgroup("clickstream benchmarks")
    group.addoption("--size", choices=sorted(PROFILES), default="smoke", help="which sizes")
    group.addoption(
        "--cache-dir",
        type=Path,
        default=PROJECT / ".cache" / "benchmarks",
        help="generated inputs, kept between runs, keyed by size and seed",
    )
    group.addoption(
        "--judge-against",
        type=Path,
        default=None,
        metavar="BASELINE",
        help="a baseline file: what looks slower than it gets as many rounds again, at once",
    )
    group.addoption(
        "--threshold", type=float, default=DEFAULT_THRESHOLD, help="the verdict's threshold"
    )
    group.addoption("--metric", choices=METRICS, default=DEFAULT_METRIC, help="the judged metric")
    group.addoption(
        "--inject-slowdown",
        type=slowdown_option,
        default=None,
        metavar="LAYER[:STRENGTH]",
        help="make a layer's benchmarks cost STRENGTH more (default 0.5): a self-check",
    )


def _profile(config: pytest.Config) -> Profile:
    return PROFILES[str(config.getoption("--size"))]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize by the sizes of the chosen profile."""
    profile = _profile(metafunc.config)
    for name, values in (
        ("events", profile.events),
        ("dimension_rows", profile.dimension_rows),
        ("batch_rows", profile.batch_rows),
    ):
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, values, ids=[f"{name}={value}" for value in values])


def pytest_configure(config: pytest.Config) -> None:
    """Keep the `Judge` of a judged run where `harness.measure` finds it."""
    path: Path | None = config.getoption("--judge-against", None)
    baseline = load_baseline(path) if path is not None else None
    if baseline is not None:
        config.stash[JUDGE] = Judge(
            baseline, float(config.getoption("--threshold")), str(config.getoption("--metric"))
        )


@pytest.fixture(scope="session")
def profile(request: pytest.FixtureRequest) -> Profile:
    """The size profile chosen with `--size`."""
    return _profile(request.config)


@pytest.fixture(scope="session")
def cache_dir(request: pytest.FixtureRequest) -> Path:
    """Where generated inputs are kept between runs."""
    path: Path = request.config.getoption("--cache-dir")
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


@pytest.fixture(scope="session")
def workdir(cache_dir: Path) -> Iterator[Path]:
    """Scratch space for warehouses and outputs, emptied at the start and the end."""
    path = cache_dir / "work"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def spark() -> SparkSession:
    """The pipeline's own local session (local[2], 4 shuffle partitions), shared by every suite.

    Its JVM's CPU time is counted in every benchmark's CPU seconds (`benchmarks.cpu`).
    """
    defaults = spark_settings_from_environment(PROJECT / ".cache" / "jars")
    session = build_session(
        SparkSettings(remote=defaults.remote, jar_cache=defaults.jar_cache, master=defaults.master)
    )
    if defaults.remote is None:
        jvm = session.sparkContext._jvm
        assert jvm is not None
        watch_jvm(int(jvm.java.lang.ProcessHandle.current().pid()))
    return session


@pytest.fixture(scope="session")
def pii_key() -> PiiKey:
    """A throwaway key: benchmark warehouses are deleted, their pseudonyms never compared.

    Text, so that the whole-process benchmarks can pass it to `clickstream run` as a user does.
    """
    return PiiKey(secrets.token_hex(32).encode())


@pytest.fixture(scope="session")
def keys(spark: SparkSession, pii_key: PiiKey) -> DataFrame:
    """The HMAC key frame of the throwaway key."""
    return key_frame(spark, pii_key)


@pytest.fixture(scope="session")
def landing(cache_dir: Path) -> Callable[[int], Path]:
    """The cached landing directory of a number of generated events."""
    return lambda events: cached_landing(cache_dir, events, SEED)


@dataclass
class Warehouses:
    """The last warehouse each layer benchmark left, per size, so the next layer reads it.

    Silver reads the bronze table of the bronze benchmark, gold the silver table of the silver
    benchmark; run on its own, a layer builds what it reads once, untimed.
    """

    spark: SparkSession
    keys: DataFrame
    workdir: Path
    landing: Callable[[int], Path]
    built: dict[tuple[str, int], Path] = field(default_factory=dict)

    def keep(self, layer: str, events: int, warehouse: Path) -> None:
        """Remember `warehouse` as holding `layer`'s tables for `events`."""
        previous = self.built.get((layer, events))
        if previous is not None and previous != warehouse:
            shutil.rmtree(previous, ignore_errors=True)
        self.built[(layer, events)] = warehouse

    def with_table(self, layer: str, events: int, warehouse: Path) -> Path:
        """A fresh warehouse holding (a link to) the table `layer` writes, built if needed."""
        table = {"bronze": table_names.BRONZE_EVENTS, "silver": table_names.SILVER_EVENTS}[layer]
        source = self.built.get((layer, events))
        if source is None:
            source = self.workdir / f"prepared-{layer}-{events}"
            shutil.rmtree(source, ignore_errors=True)
            options = runner.RunOptions()
            if layer == "bronze":
                run_bronze(
                    self.spark,
                    landing=self.landing(events),
                    warehouse=source,
                )
            else:
                linked = self.with_table("bronze", events, source)
                run_silver(
                    self.spark,
                    warehouse=linked,
                    keys=self.keys,
                    watermark_delay=options.watermark_delay,
                )
            self.built[(layer, events)] = source
        shutil.rmtree(warehouse, ignore_errors=True)
        warehouse.mkdir(parents=True)
        (warehouse / table).symlink_to(source / table)
        return warehouse


@pytest.fixture(scope="session")
def warehouses(
    spark: SparkSession, keys: DataFrame, workdir: Path, landing: Callable[[int], Path]
) -> Warehouses:
    """The layer outputs shared between the layer benchmarks."""
    return Warehouses(spark, keys, workdir, landing)


@pytest.fixture(scope="session")
def plain_spark_reference(
    spark: SparkSession, landing: Callable[[int], Path], workdir: Path
) -> Callable[[int], Reference]:
    """The plain-Spark reference of a number of events: every Spark benchmark's yardstick.

    Read with the schema, dedup, sha2, write Parquet: the steadiest Spark work of the run,
    so a Spark benchmark's ratio to it moves little between runs.
    """

    def reference(events: int) -> Reference:
        source, out = landing(events), workdir / f"plain-spark-reference-{events}"
        return Reference(
            benchmark_key("plain_spark", events=events),
            Workload(lambda _: plain_spark(spark, source, out), nothing),
        )

    return reference
