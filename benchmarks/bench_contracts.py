"""Contract overhead: a layer with its rules against the same layer without, and GX beside ours.

The rules are enforced as the runner enforces them: evaluated in the pass that writes the
table, counted by `observe` during that write, reported to the event log (`_event_log`). So
the report's `silver_with_rules / silver` is the cost of the contract, in the same run. Great
Expectations validates the same rules on the same silver rows and is read against our engine
counting them; its counts must equal ours. Like every Spark benchmark, each is judged by the
plain-Spark reference, the steadiest yardstick of the run (the ratio of two multi-second
layers moves more between runs than either does against plain Spark).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.bench_throughput import DELAY, assert_bronze_ledger, assert_silver_ledger
from benchmarks.conftest import Warehouses
from benchmarks.harness import Reference, Workload, benchmark_key, fresh, measure, nothing, rounds
from benchmarks.layers import run_bronze, run_silver
from benchmarks.profiles import Profile
from benchmarks.workloads import line_count
from contracts import gx_suites, rules
from pipeline import table_names
from pipeline.observe import event_log
from pipeline.run.enforcement import Contract
from pipeline.storage import tables
from pipeline.transforms import expectations
from pipeline.transforms.expectations import Expectation, ExpectationMetric
from scenarios import generator

CLOCK_NOW = generator.DEFAULT_START + timedelta(days=2)
"""The rules' clock: after every generated event, so `event_time_not_in_future` holds."""
SILVER_RULES = rules.silver_rules(clock=lambda: CLOCK_NOW)
FEW_DROPPED = Expectation(
    name="few_dropped",
    predicate="substr(event_id, 1, 3) <> 'fff'",
    action="drop",
    description="drops about 1 event in 4,096, so the quarantine write's extra pass is paid",
    passing_example={"event_id": "a"},
    failing_example={"event_id": "fff"},
)


def _logged(spark: SparkSession, warehouse: Path) -> dict[str, int]:
    """Rows each rule was evaluated on (passed + failed), from the event log."""
    log = event_log.expectation_metrics(spark, warehouse)
    totals = log.groupBy("rule").agg(F.sum(F.col("passed") + F.col("failed")).alias("rows"))
    return {row["rule"]: int(row["rows"]) for row in totals.collect()}


def _silver_with(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    spark: SparkSession,
    keys: DataFrame,
    rounds_: int,
    warmup: int,
    events: int,
    warehouses: Warehouses,
    workdir: Path,
    table_rules: tuple[Expectation, ...],
    reference: Reference,
) -> Path:
    numbers = itertools.count()
    contract = Contract(table_names.SILVER_EVENTS, table_rules)

    def setup() -> Path:
        target = workdir / f"{request.node.originalname}-{events}-{next(numbers)}"
        return warehouses.with_table("bronze", events, target)

    def run(warehouse: Path) -> Path:
        run_silver(
            spark,
            warehouse=warehouse,
            keys=keys,
            watermark_delay=DELAY,
            contract=contract,
            log=True,
        )
        return warehouse

    warehouse: Path = measure(
        benchmark,
        request,
        Workload(run, setup),
        reference=reference,
        rounds=rounds_,
        warmup=warmup,
        items=events,
        unit="events",
        family="contracts",
        layer="silver",
        versus=benchmark_key("silver", events=events),
    )
    silver_rows = assert_silver_ledger(spark, warehouse)
    dropped = (
        tables.read_table(spark, warehouse, table_names.SILVER_QUARANTINE)
        .where(F.size(expectations.QUARANTINE_RULES_COLUMN) > 0)
        .count()
    )
    assert _logged(spark, warehouse) == {rule.name: silver_rows + dropped for rule in table_rules}
    return warehouse


def bench_silver_with_rules(
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
    """Silver enforcing its rules in the writing pass (the runner's one pass)."""
    _silver_with(
        benchmark,
        request,
        spark,
        keys,
        rounds(profile, "spark"),
        profile.warmup_rounds,
        events,
        warehouses,
        workdir,
        SILVER_RULES,
        plain_spark_reference(events),
    )


def bench_silver_with_drops(
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
    """Silver with a rule that drops rows: the quarantine write's second pass is paid."""
    if not profile.drop_contract:
        pytest.skip("full size only")
    warehouse = _silver_with(
        benchmark,
        request,
        spark,
        keys,
        rounds(profile, "spark"),
        profile.warmup_rounds,
        events,
        warehouses,
        workdir,
        (*SILVER_RULES, FEW_DROPPED),
        plain_spark_reference(events),
    )
    quarantined = tables.read_table(spark, warehouse, table_names.SILVER_QUARANTINE)
    assert quarantined.where(F.array_contains("failed_expectations", FEW_DROPPED.name)).count() > 0


def bench_bronze_with_rules(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    spark: SparkSession,
    profile: Profile,
    events: int,
    landing: Callable[[int], Path],
    workdir: Path,
    plain_spark_reference: Callable[[int], Reference],
) -> None:
    """Bronze enforcing its rules on each parsed object before it is written."""
    if not profile.bronze_contract:
        pytest.skip("full size only")
    source = landing(events)
    numbers = itertools.count()
    contract = Contract(table_names.BRONZE_EVENTS, rules.bronze_rules())

    def setup() -> Path:
        return fresh(workdir / f"bronze-with-rules-{events}-{next(numbers)}")

    def run(warehouse: Path) -> Path:
        run_bronze(
            spark,
            landing=source,
            warehouse=warehouse,
            contract=contract,
            log=True,
        )
        return warehouse

    warehouse: Path = measure(
        benchmark,
        request,
        Workload(run, setup),
        reference=plain_spark_reference(events),
        rounds=rounds(profile, "spark"),
        warmup=profile.warmup_rounds,
        items=events,
        unit="events",
        family="contracts",
        layer="bronze",
        versus=benchmark_key("bronze", events=events),
    )
    assert assert_bronze_ledger(spark, warehouse, line_count(source)) == events
    assert _logged(spark, warehouse) == {rule.name: events for rule in contract.rules}


def _silver_rows(warehouses: Warehouses, events: int, workdir: Path, name: str) -> DataFrame:
    warehouse = warehouses.with_table("silver", events, workdir / f"{name}-{events}")
    return tables.read_table(warehouses.spark, warehouse, table_names.SILVER_EVENTS)


def _failed(metrics: list[ExpectationMetric]) -> dict[str, int]:
    return {metric.rule: metric.failed for metric in metrics}


def bench_rules_engine(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    profile: Profile,
    events: int,
    warehouses: Warehouses,
    workdir: Path,
    plain_spark_reference: Callable[[int], Reference],
) -> None:
    """Our engine counting the silver rules over the silver rows (GX's reference)."""
    frame = _silver_rows(warehouses, events, workdir, "rules-engine")

    def count() -> list[ExpectationMetric]:
        evaluated = expectations.evaluate(frame, SILVER_RULES)
        return expectations.measure(evaluated, table_names.SILVER_EVENTS, SILVER_RULES)

    metrics = measure(
        benchmark,
        request,
        Workload(lambda _: count(), nothing),
        reference=plain_spark_reference(events),
        rounds=rounds(profile),
        warmup=profile.warmup_rounds,
        items=events,
        unit="rows",
        family="contracts",
        layer="contracts",
    )
    assert {metric.passed + metric.failed for metric in metrics} == {frame.count()}


def bench_gx_validate(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    profile: Profile,
    events: int,
    warehouses: Warehouses,
    workdir: Path,
    plain_spark_reference: Callable[[int], Reference],
) -> None:
    """Great Expectations validating the suite built from the same rules, on the same rows."""
    frame = _silver_rows(warehouses, events, workdir, "gx-validate")
    table_rules = {table_names.SILVER_EVENTS: SILVER_RULES}

    def validate() -> gx_suites.GxReport:
        return gx_suites.validate({table_names.SILVER_EVENTS: frame}, table_rules)

    report = measure(
        benchmark,
        request,
        Workload(lambda _: validate(), nothing),
        reference=plain_spark_reference(events),
        rounds=rounds(profile, "spark"),
        warmup=profile.warmup_rounds,
        items=events,
        unit="rows",
        family="contracts",
        layer="contracts",
        versus=benchmark_key("rules_engine", events=events),
    )
    ours = expectations.measure(
        expectations.evaluate(frame, SILVER_RULES), table_names.SILVER_EVENTS, SILVER_RULES
    )
    assert report.unexpected_by_rule(table_names.SILVER_EVENTS) == _failed(ours)
