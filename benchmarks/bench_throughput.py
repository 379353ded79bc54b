"""Throughput: the generator, each layer and the whole pipeline, and the references beside them.

Every Spark layer is divided by the plain-Spark reference at the same size, the generator by
the orjson decode floor over the files it writes. Each benchmark checks what it timed: the
generated files are byte-identical to the cached input, and the layers keep the ledger (every
line in bronze or its quarantine; every bronze row in silver, its quarantine, the late table
or dropped as a duplicate; one fact per silver event).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.conftest import Warehouses
from benchmarks.harness import Reference, Workload, benchmark_key, fresh, measure, nothing, rounds
from benchmarks.layers import run_bronze, run_gold, run_silver
from benchmarks.profiles import SEED, Profile
from benchmarks.workloads import (
    duckdb_installed,
    duckdb_reference,
    event_files,
    file_digests,
    line_count,
    orjson_floor,
    plain_spark,
)
from contracts import rules
from pipeline import table_names
from pipeline.config import PiiKey
from pipeline.run import runner
from pipeline.run.gold_stage import run_user_dimension
from pipeline.storage import tables
from pipeline.transforms import gold
from scenarios import generator

FILES = runner.RunOptions().max_files_per_trigger
DELAY = runner.RunOptions().watermark_delay


def _orjson_floor(source: Path) -> Workload[None, int]:
    return Workload(lambda _: orjson_floor(source), nothing)


def _counter() -> Callable[[], int]:
    numbers = itertools.count()
    return lambda: next(numbers)


# ---------------------------------------------------------------------------- references


def bench_plain_spark(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    spark: SparkSession,
    profile: Profile,
    events: int,
    landing: Callable[[int], Path],
    workdir: Path,
) -> None:
    """The plain-Spark reference: read with the schema, dedup, sha2, write parquet."""
    source = landing(events)
    out = workdir / f"plain-spark-{events}"
    measure(
        benchmark,
        request,
        Workload(lambda _: plain_spark(spark, source, out), nothing),
        reference=None,
        rounds=rounds(profile, "reference"),
        items=events,
        unit="events",
        family="throughput",
    )
    assert spark.read.parquet(str(out)).count() == events


def bench_orjson_floor(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    profile: Profile,
    events: int,
    landing: Callable[[int], Path],
) -> None:
    """The JSON decode floor: orjson over the same files, one core."""
    decoded = measure(
        benchmark,
        request,
        _orjson_floor(landing(events)),
        reference=None,
        rounds=rounds(profile, "reference"),
        items=events,
        unit="events",
        family="throughput",
    )
    assert decoded == events


def bench_duckdb(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    profile: Profile,
    events: int,
    landing: Callable[[int], Path],
    workdir: Path,
) -> None:
    """The single-machine reference: the same bronze + silver work in DuckDB, 2 threads."""
    if not duckdb_installed():
        pytest.skip("duckdb not installed (the optional dependency group `duckdb`)")
    source = landing(events)
    out = fresh(workdir / f"duckdb-{events}") / "events.parquet"

    def run(_: None) -> int:
        return duckdb_reference(source, out)

    def prepare() -> None:
        out.unlink(missing_ok=True)

    written = measure(
        benchmark,
        request,
        Workload(run, prepare),
        reference=None,
        rounds=rounds(profile, "reference"),
        warmup=profile.warmup_rounds,
        items=events,
        unit="events",
        family="throughput",
    )
    assert written == events


# ------------------------------------------------------------------------------ generator


def bench_generator(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    profile: Profile,
    events: int,
    landing: Callable[[int], Path],
    workdir: Path,
) -> None:
    """`write_landing`: events and their CDC feed as JSON lines, byte-deterministic per seed."""
    expected = file_digests(landing(events))
    number = _counter()

    def setup() -> Path:
        return fresh(workdir / f"generator-{events}-{number()}") / "landing"

    def write(out: Path) -> Path:
        generator.write_landing(out, events=events, seed=SEED, files=event_files(events))
        return out

    written = measure(
        benchmark,
        request,
        Workload(write, setup),
        reference=Reference(
            benchmark_key("orjson_floor", events=events), _orjson_floor(landing(events))
        ),
        rounds=rounds(profile),
        warmup=profile.warmup_rounds,
        items=events,
        unit="events",
        family="throughput",
        layer="generator",
    )
    assert file_digests(written) == expected


# ---------------------------------------------------------------------------------- layers


def _count(spark: SparkSession, warehouse: Path, table: str) -> int:
    return tables.count_rows(spark, warehouse, table)


def assert_bronze_ledger(spark: SparkSession, warehouse: Path, lines: int) -> int:
    """Every non-blank line is in bronze or its quarantine; returns the bronze rows."""
    bronze_rows = _count(spark, warehouse, table_names.BRONZE_EVENTS)
    assert bronze_rows + _count(spark, warehouse, table_names.BRONZE_QUARANTINE) == lines
    return bronze_rows


def assert_silver_ledger(spark: SparkSession, warehouse: Path) -> int:
    """Bronze = silver + quarantine + late + duplicates, no duplicate in silver; silver rows."""
    bronze_ids = tables.read_table(spark, warehouse, table_names.BRONZE_EVENTS).agg(
        F.count(F.lit(1)).alias("rows"), F.count_distinct("event_id").alias("ids")
    )
    bronze_figures = bronze_ids.first()
    assert bronze_figures is not None
    silver_figures = (
        tables.read_table(spark, warehouse, table_names.SILVER_EVENTS)
        .agg(F.count(F.lit(1)).alias("rows"), F.count_distinct("event_id").alias("ids"))
        .first()
    )
    assert silver_figures is not None
    assert silver_figures["rows"] == silver_figures["ids"], "duplicate event_id in silver"
    placed = (
        silver_figures["rows"]
        + _count(spark, warehouse, table_names.SILVER_QUARANTINE)
        + _count(spark, warehouse, table_names.SILVER_LATE_EVENTS)
    )
    duplicates = bronze_figures["rows"] - bronze_figures["ids"]
    assert placed + duplicates == bronze_figures["rows"]
    return int(silver_figures["rows"])


def assert_gold(spark: SparkSession, warehouse: Path, silver_rows: int) -> None:
    """One fact per silver event, each with a user version or the unknown member."""
    facts = tables.read_table(spark, warehouse, table_names.GOLD_FACT_EVENTS)
    users = tables.read_table(spark, warehouse, table_names.GOLD_DIM_USER)
    assert facts.count() == silver_rows
    assert facts.join(users, gold.USER_SK, "left_anti").isEmpty()
    open_versions = users.where(F.col("__END_AT").isNull() & F.col(gold.USER_KEY).isNotNull())
    assert open_versions.groupBy(gold.USER_KEY).count().where("count > 1").isEmpty()


def bench_bronze(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    spark: SparkSession,
    profile: Profile,
    events: int,
    landing: Callable[[int], Path],
    warehouses: Warehouses,
    workdir: Path,
    plain_spark_reference: Callable[[int], Reference],
) -> None:
    """The bronze stage: parse once, rescue, quarantine, an exactly-once Delta append."""
    source = landing(events)
    number = _counter()

    def setup() -> Path:
        return fresh(workdir / f"bronze-{events}-{number()}")

    def run(warehouse: Path) -> Path:
        run_bronze(spark, landing=source, warehouse=warehouse)
        return warehouse

    warehouse = measure(
        benchmark,
        request,
        Workload(run, setup),
        reference=plain_spark_reference(events),
        rounds=rounds(profile, "spark"),
        warmup=profile.warmup_rounds,
        items=events,
        unit="events",
        family="throughput",
        layer="bronze",
    )
    assert assert_bronze_ledger(spark, warehouse, line_count(source)) == events
    warehouses.keep("bronze", events, warehouse)


def bench_silver(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    spark: SparkSession,
    keys: DataFrame,
    profile: Profile,
    events: int,
    warehouses: Warehouses,
    workdir: Path,
    plain_spark_reference: Callable[[int], Reference],
) -> None:
    """The silver stage: watermark, dedup, HMAC, quarantine and late rows, in one query."""
    number = _counter()

    def setup() -> Path:
        return warehouses.with_table("bronze", events, workdir / f"silver-{events}-{number()}")

    def run(warehouse: Path) -> Path:
        run_silver(spark, warehouse=warehouse, keys=keys, watermark_delay=DELAY)
        return warehouse

    warehouse = measure(
        benchmark,
        request,
        Workload(run, setup),
        reference=plain_spark_reference(events),
        rounds=rounds(profile, "spark"),
        warmup=profile.warmup_rounds,
        items=events,
        unit="events",
        family="throughput",
        layer="silver",
    )
    assert assert_silver_ledger(spark, warehouse) > 0
    warehouses.keep("silver", events, warehouse)


def bench_gold(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    spark: SparkSession,
    keys: DataFrame,
    profile: Profile,
    events: int,
    landing: Callable[[int], Path],
    warehouses: Warehouses,
    workdir: Path,
    plain_spark_reference: Callable[[int], Reference],
) -> None:
    """Gold: the SCD2 user dimension from the CDC feed, then the star schema and aggregates."""
    source = landing(events)
    number = _counter()

    def setup() -> Path:
        return warehouses.with_table("silver", events, workdir / f"gold-{events}-{number()}")

    def run(warehouse: Path) -> Path:
        # No contracts: the gold layer alone (bench_contracts times rules).
        run_user_dimension(
            spark, landing=source, warehouse=warehouse, keys=keys, max_files_per_trigger=FILES
        )
        run_gold(spark, warehouse=warehouse)
        return warehouse

    warehouse = measure(
        benchmark,
        request,
        Workload(run, setup),
        reference=plain_spark_reference(events),
        rounds=rounds(profile, "heavy"),
        warmup=profile.warmup_rounds,
        items=events,
        unit="events",
        family="throughput",
        layer="gold",
    )
    assert_gold(spark, warehouse, _count(spark, warehouse, table_names.SILVER_EVENTS))


def bench_end_to_end(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    spark: SparkSession,
    pii_key: PiiKey,
    profile: Profile,
    events: int,
    landing: Callable[[int], Path],
    workdir: Path,
    plain_spark_reference: Callable[[int], Reference],
) -> None:
    """`run_pipeline` on a fresh warehouse, with the rules of `contracts.rules`."""
    if not profile.end_to_end:
        pytest.skip("full size only: the smoke size times the layers one by one")
    source = landing(events)
    number = _counter()

    def setup() -> Path:
        return fresh(workdir / f"end-to-end-{events}-{number()}")

    def run(warehouse: Path) -> Path:
        runner.run_pipeline(
            spark,
            landing=source,
            warehouse=warehouse,
            pii_key=pii_key,
            expectations=rules.expectations(),
        )
        return warehouse

    warehouse = measure(
        benchmark,
        request,
        Workload(run, setup),
        reference=plain_spark_reference(events),
        rounds=rounds(profile, "heavy"),
        warmup=profile.warmup_rounds,
        items=events,
        unit="events",
        family="throughput",
    )
    assert assert_bronze_ledger(spark, warehouse, line_count(source)) == events
    assert_gold(spark, warehouse, assert_silver_ledger(spark, warehouse))
