"""SCD2: the cost of merging a change batch as the dimension and the batch grow, and correctness.

`merge_changes` touches only the keys of the batch, so its cost should follow the batch, not
the dimension. Each merge is read against a plain Delta `MERGE` of the same batch into the
same table (an SCD1 upsert), measured in the same run, and judged, like every Spark
benchmark, by the plain-Spark reference. The correctness benchmark applies
thousands of random histories in out-of-order batches and compares every key with the
plain-Python model; the number wrong must be zero.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks import scd_feeds
from benchmarks.harness import Reference, Workload, benchmark_key, fresh, measure, rounds
from benchmarks.profiles import SEED, Profile
from benchmarks.workloads import (
    cached_dimension,
    copy_dimension,
    delta_upsert,
    differences,
    merge_user_changes,
    user_change_batch,
    user_inserts,
)
from pipeline.storage import scd_merge
from pipeline.transforms import gold, scd2

FULL_CHECK_UP_TO = 100_000
"""Dimensions up to this size are compared row for row with `apply_changes` over the union;
larger ones are checked for their invariants (one open version per key, every key, the log)."""


def _batch(spark: SparkSession, rows: int, dimension_rows: int) -> DataFrame:
    return user_change_batch(
        spark, rows, dimension_rows=dimension_rows, seed=SEED
    ).localCheckpoint()


def _copies(source: Path, workdir: Path, name: str) -> Callable[[], Path]:
    """Fresh copies of a cached dimension, one per round (a merge changes its table)."""
    numbers = itertools.count()
    return lambda: copy_dimension(source, workdir / f"{name}-{next(numbers)}")


def bench_delta_upsert(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    spark: SparkSession,
    profile: Profile,
    dimension_rows: int,
    batch_rows: int,
    cache_dir: Path,
    workdir: Path,
) -> None:
    """The reference: the batch as one plain Delta MERGE (SCD1 upsert and delete)."""
    source = cached_dimension(spark, cache_dir, dimension_rows, seed=SEED)
    batch = _batch(spark, batch_rows, dimension_rows)

    def run(path: Path) -> Path:
        delta_upsert(spark, batch, path)
        return path

    copies = _copies(source, workdir, f"upsert-{dimension_rows}-{batch_rows}")
    path = measure(
        benchmark,
        request,
        Workload(run, copies),
        reference=None,
        rounds=rounds(profile, "reference"),
        warmup=profile.warmup_rounds,
        items=batch_rows,
        unit="changes",
        family="scd2_merge",
    )
    original = spark.read.format("delta").load(str(source / "gold_dim_user"))
    known = batch.join(original, gold.USER_KEY, "left_semi")
    deleted = known.where("operation = 'DELETE'").count()
    added = batch.join(original, gold.USER_KEY, "left_anti").where("operation <> 'DELETE'").count()
    after = spark.read.format("delta").load(str(path))
    assert after.count() == dimension_rows - deleted + added


def bench_scd2_merge(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    spark: SparkSession,
    profile: Profile,
    dimension_rows: int,
    batch_rows: int,
    cache_dir: Path,
    workdir: Path,
    plain_spark_reference: Callable[[int], Reference],
) -> None:
    """`merge_changes` of the batch into the SCD2 user dimension (late changes split versions)."""
    source = cached_dimension(spark, cache_dir, dimension_rows, seed=SEED)
    batch = _batch(spark, batch_rows, dimension_rows)

    def run(path: Path) -> Path:
        merge_user_changes(spark, batch, path)
        return path

    copies = _copies(source, workdir, f"scd2-{dimension_rows}-{batch_rows}")
    path = measure(
        benchmark,
        request,
        Workload(run, copies),
        reference=plain_spark_reference(max(profile.events)),
        rounds=rounds(profile, "spark"),
        warmup=profile.warmup_rounds,
        items=batch_rows,
        unit="changes",
        family="scd2_merge",
        layer="scd2",
        versus=benchmark_key("delta_upsert", dimension_rows=dimension_rows, batch_rows=batch_rows),
    )
    table = spark.read.format("delta").load(str(path))
    log = spark.read.format("delta").load(scd_merge.change_log_path(str(path)))
    assert log.count() == dimension_rows + batch_rows
    if dimension_rows <= FULL_CHECK_UP_TO:
        union = user_inserts(spark, dimension_rows, seed=SEED).unionByName(batch)
        expected = scd2.apply_changes(union, **gold.user_cdc_options())
        derived = gold.user_derived_columns()
        expected = expected.select(
            *[column.alias(name) for name, column in derived.items()], *expected.columns
        )
        assert differences(table, expected) == 0
    else:
        open_versions = table.where(F.col(scd2.END_AT).isNull())
        assert open_versions.groupBy(gold.USER_KEY).count().where("count > 1").isEmpty()
        new_keys = (
            batch.where("operation <> 'DELETE'")
            .join(user_inserts(spark, dimension_rows, seed=SEED), gold.USER_KEY, "left_anti")
            .count()
        )
        keys = table.select(gold.USER_KEY).distinct().count()
        assert keys == dimension_rows + new_keys


def bench_scd2_correctness(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    spark: SparkSession,
    profile: Profile,
    workdir: Path,
) -> None:
    """Random histories, out-of-order batches, merged incrementally; compared with the model."""
    feed = scd_feeds.random_feed(profile.histories, seed=SEED)

    def setup() -> Path:
        return fresh(workdir / "scd2-correctness") / "table"

    def run(path: Path) -> Path:
        scd_feeds.apply_incrementally(spark, feed, profile.history_batches, path)
        return path

    path = measure(
        benchmark,
        request,
        Workload(run, setup),
        reference=None,
        rounds=1,
        items=len(feed),
        unit="changes",
        family="scd2_correctness",
        histories=profile.histories,
        batches=profile.history_batches,
    )
    verdict = scd_feeds.check(spark, feed, path)
    benchmark.extra_info.update(checked=verdict.histories, wrong=verdict.wrong)
    assert verdict.histories == profile.histories
    assert verdict.wrong == 0, "\n".join(verdict.examples)
