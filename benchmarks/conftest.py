"""Fixtures of the benchmark suites: the size profile, one SparkSession, cached inputs.

Only `benchmarks/pytest.ini` collects these suites (`python -m benchmarks` uses it); the test
session's `testpaths` never reaches them. Every benchmark records what it measured in
`benchmark.extra_info` (see `record`): its key, the reference it is divided by, and the items
it processed, which is all `benchmarks.report` needs.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pyspark.sql import DataFrame, SparkSession
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.cpu import cpu_seconds, watch_jvm
from benchmarks.profiles import PROFILES, SEED, Profile
from benchmarks.workloads import cached_landing
from pipeline import bronze, gold, runner, silver, tables
from pipeline.bronze_stage import run_bronze
from pipeline.config import PiiKey, SparkSettings, spark_settings_from_environment
from pipeline.pseudonymize import key_frame
from pipeline.session import build_session
from pipeline.silver_stage import run_silver

A = TypeVar("A")
T = TypeVar("T")
PROJECT = Path(__file__).resolve().parents[1]
SLOWDOWN_PARTITIONS = 32
"""`--inject-slowdown`: an extra shuffle into this many partitions (and as many files)."""
SLOWDOWN_LAYERS = ("bronze", "silver", "gold")


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
        "--bench-only",
        default="",
        help="benchmark keys to run, separated by ';' (the others are deselected)",
    )
    group.addoption(
        "--inject-slowdown",
        choices=SLOWDOWN_LAYERS,
        default=None,
        help="add an extra shuffle to a layer: checks that the verdict catches a regression",
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


def benchmark_key(name: str, **params: int) -> str:
    """A benchmark's name in results, baselines and reports: `silver[events=10000]`."""
    return f"{name}[{','.join(f'{k}={v}' for k, v in params.items())}]" if params else name


def item_key(item: pytest.Item) -> str:
    """The key of the benchmark a test item records: `bench_<name>` with its sizes."""
    name = getattr(item, "originalname", item.name).removeprefix("bench_")
    callspec = getattr(item, "callspec", None)
    params: dict[str, int] = dict(callspec.params) if callspec is not None else {}
    return benchmark_key(name, **params)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep only the benchmarks named by `--bench-only` (the verdict's confirmation run)."""
    wanted = {key for key in str(config.getoption("--bench-only")).split(";") if key}
    if not wanted:
        return
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        (kept if item_key(item) in wanted else dropped).append(item)
    config.hook.pytest_deselected(items=dropped)
    items[:] = kept


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


def _slower(function: Callable[..., DataFrame]) -> Callable[..., DataFrame]:
    def extra_shuffle(*args: Any, **kwargs: Any) -> DataFrame:
        return function(*args, **kwargs).repartition(SLOWDOWN_PARTITIONS)

    return extra_shuffle


@pytest.fixture(scope="session", autouse=True)
def injected_slowdown(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """With `--inject-slowdown LAYER`, that layer's output gets an extra shuffle.

    Only for checking the verdict: a deliberately slower layer must fail the run.
    """
    layer = request.config.getoption("--inject-slowdown")
    patch = pytest.MonkeyPatch()
    targets = {
        "bronze": (bronze, "parse_lines"),
        "silver": (silver, "pseudonymized"),
        "gold": (gold, "fact_events"),
    }
    if layer is not None:
        module, name = targets[layer]
        patch.setattr(module, name, _slower(getattr(module, name)))
    yield layer
    patch.undo()


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
        table = {"bronze": tables.BRONZE_EVENTS, "silver": tables.SILVER_EVENTS}[layer]
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
                    max_files_per_trigger=options.max_files_per_trigger,
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


def record(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    *,
    reference: str | None,
    items: int,
    unit: str,
    family: str,
    versus: str | None = None,
    **details: Any,
) -> str:
    """Describe a benchmark for the report; returns its key (`item_key` of the test).

    Args:
        benchmark: the pytest-benchmark fixture.
        request: the test's request, whose name and sizes make the key.
        reference: the key of the benchmark it is divided by for the verdict; None for a
            reference itself.
        versus: the key of a benchmark it is also read against in the report (a layer
            without its rules, our engine for GX, a plain MERGE for SCD2), not judged.
        items: what one round processed (events, changes, rows), for throughput.
        unit: what `items` counts.
        family: the plot it belongs to (`throughput`, `contracts`, `scd2_merge`, ...).
        **details: further figures for the report (such as checked and wrong histories).
    """
    key = item_key(request.node)
    callspec = getattr(request.node, "callspec", None)
    benchmark.extra_info.update(
        key=key,
        name=getattr(request.node, "originalname", key).removeprefix("bench_"),
        reference=reference,
        versus=versus,
        items=items,
        unit=unit,
        family=family,
        params=dict(callspec.params) if callspec is not None else {},
        **details,
    )
    return key


def timed(
    benchmark: BenchmarkFixture,
    run: Callable[[A], T],
    prepare: Callable[[], A],
    *,
    rounds: int,
    warmup: int = 0,
) -> T:
    """Time `run(prepare())` for `rounds` rounds, `prepare` untimed; the last round's result.

    pytest-benchmark records each round's wall time; the CPU seconds of each round (this
    process and the Spark JVM) go to `extra_info["cpu_seconds"]`. The verdict uses the
    fastest round's CPU time: the least disturbed by other work on the machine. `warmup`
    untimed rounds go first.
    """
    spent: list[float] = []

    def setup() -> tuple[tuple[A], dict[str, Any]]:
        return (prepare(),), {}

    def measured(argument: A) -> T:
        before = cpu_seconds()
        try:
            return run(argument)
        finally:
            spent.append(cpu_seconds() - before)

    result: T = benchmark.pedantic(  # type: ignore[no-untyped-call]
        measured, setup=setup, rounds=rounds, warmup_rounds=warmup
    )
    benchmark.extra_info["cpu_seconds"] = spent[warmup:]
    return result


def nothing() -> None:
    """`prepare` for a benchmark that needs nothing prepared."""


def yardstick(profile: Profile) -> str:
    """The plain-Spark reference that benchmarks without an events size are judged by."""
    return benchmark_key("plain_spark", events=max(profile.events))


def rounds(profile: Profile, cost: str = "quick") -> int:
    """Timed rounds for a benchmark of this profile: `reference`, `quick`, `spark` or `heavy`."""
    by_cost = {
        "reference": profile.reference_rounds,
        "quick": profile.rounds,
        "spark": profile.spark_rounds,
        "heavy": profile.heavy_rounds,
    }
    return by_cost[cost]


def fresh(directory: Path) -> Path:
    """An empty directory at `directory`."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory
