"""What the benchmarks run besides the pipeline: cached inputs and the reference workloads.

References are measured in the same run as the pipeline, so each figure is a ratio:

* `plain_spark`: the plain-Spark pipeline of DESIGN.md (read JSON with the explicit schema,
  drop duplicate `event_id`s, SHA-256 the user fields, write parquet) on the same files.
* `orjson_floor`: decoding the same files with orjson on one core, the JSON decode floor.
* `duckdb_reference`: the same bronze + silver work in DuckDB (2 threads), when installed.
* `delta_upsert`: a plain Delta `MERGE` (SCD1 upsert / delete) of a change batch, the
  reference for the SCD2 merge of the same batch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.storage import scd_merge
from pipeline.table_names import EVENTS_DIR
from pipeline.transforms import gold, scd2
from pipeline.transforms.schemas import EVENT_SCHEMA
from scenarios import generator

__all__ = [
    "cached_dimension",
    "cached_landing",
    "chunks",
    "copy_dimension",
    "delta_upsert",
    "differences",
    "duckdb_installed",
    "duckdb_reference",
    "event_files",
    "file_digests",
    "line_count",
    "merge_user_changes",
    "orjson_floor",
    "plain_spark",
    "user_change_batch",
    "user_inserts",
]

# ------------------------------------------------------------------------------ inputs


def event_files(events: int) -> int:
    """Landing files for a size: 4 up to 100k events, 8 above (one micro-batch either way)."""
    return 4 if events <= 100_000 else 8


def cached_landing(cache: Path, events: int, seed: int) -> Path:
    """The landing directory of `events` generated events, written once per (size, seed).

    `write_landing` is byte-deterministic per seed, so a cached directory is what a new run
    would write; it is written under a temporary name and renamed, so a half-written one is
    never reused.
    """
    target = cache / "landing" / f"events-{events}-s{seed}"
    if target.is_dir():
        return target
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    generator.write_landing(partial, events=events, seed=seed, files=event_files(events))
    partial.rename(target)
    return target


def file_digests(directory: Path) -> dict[str, str]:
    """SHA-256 of every file below `directory`, by relative path: equal inputs, equal digests."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def line_count(directory: Path) -> int:
    """Non-blank lines of the event files of a landing directory."""
    return sum(
        sum(1 for line in path.read_bytes().splitlines() if line.strip())
        for path in sorted((directory / EVENTS_DIR).glob("*.json"))
    )


# -------------------------------------------------------------------------- references


def orjson_floor(landing: Path) -> int:
    """Decode every event line with orjson on one core; returns the number of objects."""
    decoded = 0
    for path in sorted((landing / EVENTS_DIR).glob("*.json")):
        for line in path.read_bytes().splitlines():
            if line.strip():
                decoded += isinstance(orjson.loads(line), dict)
    return decoded


def _hashed_user(field: str) -> Column:
    return F.sha2(F.col(f"user.{field}"), 256).alias(f"{field}_sha256")


def plain_spark(spark: SparkSession, landing: Path, out: Path) -> None:
    """The plain-Spark pipeline: JSON with the explicit schema, dedup, sha2, parquet."""
    events = spark.read.schema(EVENT_SCHEMA).json(str(landing / EVENTS_DIR))
    deduplicated = events.dropDuplicates(["event_id"])
    deduplicated.select(
        "event_id",
        "event_type",
        "event_ts",
        "session_id",
        *[_hashed_user(field) for field in ("user_id", "email", "full_name", "ip")],
        "page.*",
        "device.*",
        "geo.*",
        "properties.*",
        "schema_version",
    ).write.mode("overwrite").parquet(str(out))


def duckdb_installed() -> bool:
    """Whether the optional DuckDB reference can run (`pip install duckdb`)."""
    return importlib.util.find_spec("duckdb") is not None


_DUCKDB_COLUMNS = {
    "event_id": "VARCHAR",
    "event_type": "VARCHAR",
    "event_ts": "VARCHAR",
    "session_id": "VARCHAR",
    "user": "STRUCT(user_id VARCHAR, email VARCHAR, full_name VARCHAR, ip VARCHAR)",
    "page": "STRUCT(url VARCHAR, referrer VARCHAR, title VARCHAR)",
    "device": "STRUCT(type VARCHAR, os VARCHAR, browser VARCHAR, user_agent VARCHAR)",
    "geo": "STRUCT(country VARCHAR, city VARCHAR)",
    "properties": ("STRUCT(product_id VARCHAR, price DOUBLE, currency VARCHAR, quantity INTEGER)"),
    "schema_version": "INTEGER",
}


def duckdb_reference(landing: Path, out: Path) -> int:
    """The same bronze + silver work in DuckDB with 2 threads; returns the rows written."""
    import duckdb  # the optional dependency group `duckdb`: imported only when installed

    files = [str(path) for path in sorted((landing / EVENTS_DIR).glob("*.json"))]
    columns = ", ".join(f"'{name}': '{kind}'" for name, kind in _DUCKDB_COLUMNS.items())
    hashed = ", ".join(
        f"sha256(user.{field}) AS {field}_sha256"
        for field in ("user_id", "email", "full_name", "ip")
    )
    connection = duckdb.connect(config={"threads": 2})
    try:
        connection.execute(
            f"""
            COPY (
                SELECT event_id, event_type, event_ts, session_id, {hashed},
                       page.*, device.*, geo.*, properties.*, schema_version
                FROM read_json($files, format = 'newline_delimited', columns = {{{columns}}})
                QUALIFY row_number() OVER (PARTITION BY event_id) = 1
            ) TO '{out}' (FORMAT parquet)
            """,
            {"files": files},
        )
        written = connection.execute(f"SELECT count(*) FROM '{out}'").fetchone()
    finally:
        connection.close()
    return int(written[0]) if written else 0


# ------------------------------------------------------------------ SCD2 merge workloads

_BASE = datetime(2026, 11, 1, tzinfo=UTC)
_PLANS = ("free", "pro", "enterprise")
_COUNTRIES = ("US", "DE", "FR", "GB", "IN", "BR", "JP")
_STEP = 7_919
"""A prime: `index * _STEP mod m` visits distinct indexes, so a batch never repeats a key."""


def _at(seconds: Column) -> Column:
    """The instant `seconds` after the first day's midnight."""
    return F.timestamp_seconds(F.lit(int(_BASE.timestamp())) + seconds)


def _user_key(index: Column, seed: int) -> Column:
    return F.sha2(F.concat(F.lit(f"user-{seed}-"), index.cast("string")), 256)


def _pick(values: tuple[str, ...], index: Column) -> Column:
    choices = F.array(*[F.lit(value) for value in values])
    return F.element_at(choices, (index % len(values) + 1).cast("int"))


def _user_change(
    index: Column, *, seed: int, operation: Column, changed_at: Column, sequence: Column
) -> list[Column]:
    """A row shaped like `gold.user_changes` output, for user number `index`."""
    return [
        _user_key(index, seed).alias(gold.USER_KEY),
        operation.alias("operation"),
        changed_at.alias("changed_at"),
        sequence.alias("sequence_num"),
        F.sha2(F.concat(F.lit("email-"), index.cast("string")), 256).alias("email_hash"),
        F.sha2(F.concat(F.lit("name-"), index.cast("string")), 256).alias("full_name_hash"),
        _pick(_PLANS, index + sequence).alias("plan"),
        _pick(_COUNTRIES, index).alias("country"),
        F.concat(F.lit("city-"), (index % 97).cast("string")).alias("city"),
    ]


def user_inserts(spark: SparkSession, rows: int, *, seed: int) -> DataFrame:
    """`rows` users, each inserted once on the first day: the dimension's initial feed."""
    index = F.col("id")
    return spark.range(rows).select(
        *_user_change(
            index,
            seed=seed,
            operation=F.lit("INSERT"),
            changed_at=_at(index % 86_400),
            sequence=index + 1,
        )
    )


def user_change_batch(
    spark: SparkSession, rows: int, *, dimension_rows: int, seed: int
) -> DataFrame:
    """A batch of `rows` changes to a dimension of `dimension_rows` users, each key once.

    About 1 in 10 keys is new, 1 in 20 changes is a delete and 1 in 8 arrives out of order
    (sequenced before the user's insert, so it opens a version that the insert then closes);
    the rest are plan changes on the second day.
    """
    span = dimension_rows + dimension_rows // 10
    if span % _STEP == 0 or rows > span:
        raise ValueError(f"a batch of {rows} changes does not fit {dimension_rows} users")
    position = F.col("id")
    index = (position * _STEP + seed) % span
    late = position % 8 == 3
    operation = F.when(position % 20 == 7, F.lit("DELETE")).otherwise(F.lit("UPDATE"))
    second_day = _at(86_400 + position % 86_400)
    before_insert = _at(index % 86_400 - 60)
    return spark.range(rows).select(
        *_user_change(
            index,
            seed=seed,
            operation=operation,
            changed_at=F.when(late, before_insert).otherwise(second_day),
            sequence=position + span + 1,
        )
    )


def merge_user_changes(spark: SparkSession, changes: DataFrame, path: Path) -> None:
    """Merge changes into a `gold_dim_user`-shaped table, as the runner's gold stage does."""
    scd_merge.merge_changes(
        spark,
        changes,
        path=str(path),
        derived_columns=gold.user_derived_columns(),
        cluster_by=(),  # as the gold stage: Delta keeps no statistics on pseudonyms to cluster by
        **gold.user_cdc_options(),
    )


def cached_dimension(spark: SparkSession, cache: Path, rows: int, *, seed: int) -> Path:
    """A user dimension of `rows` users (and its change log), built once per (rows, seed, code).

    The cache key includes a digest of the SCD engine and gold sources, so a change to the
    engine rebuilds the table instead of reusing one it wrote differently.
    """
    sources = Path(scd2.__file__).read_bytes() + Path(gold.__file__).read_bytes()
    code = hashlib.sha256(sources).hexdigest()[:12]
    target = cache / "dimensions" / f"users-{rows}-s{seed}-{code}"
    if target.is_dir():
        return target
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    merge_user_changes(spark, user_inserts(spark, rows, seed=seed), partial / "gold_dim_user")
    partial.rename(target)
    return target


def copy_dimension(source: Path, workdir: Path) -> Path:
    """A fresh copy of a cached dimension and its change log; returns the table's path."""
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.copytree(source, workdir)
    return workdir / "gold_dim_user"


def delta_upsert(spark: SparkSession, changes: DataFrame, path: Path) -> None:
    """The reference merge: the batch as a plain SCD1 upsert / delete of the open versions."""
    values = ("email_hash", "full_name_hash", "plan", "country", "city")
    source = changes.select(gold.USER_KEY, "operation", *values)
    (
        DeltaTable.forPath(spark, str(path))
        .alias("t")
        .merge(
            source.alias("s"),
            f"t.{gold.USER_KEY} = s.{gold.USER_KEY} AND t.{scd2.END_AT} IS NULL",
        )
        .whenMatchedDelete(condition="s.operation = 'DELETE'")
        .whenMatchedUpdate(set={name: f"s.{name}" for name in values})
        .whenNotMatchedInsert(
            condition="s.operation <> 'DELETE'",
            values={gold.USER_KEY: f"s.{gold.USER_KEY}", **{name: f"s.{name}" for name in values}},
        )
        .execute()
    )


def differences(left: DataFrame, right: DataFrame) -> int:
    """Rows in one frame and not the other (with multiplicity), both ways."""
    columns = left.columns
    right = right.select(*columns)
    return left.exceptAll(right).count() + right.exceptAll(left).count()


def chunks(items: list[Any], parts: int) -> Iterable[list[Any]]:
    """`items` cut into `parts` consecutive chunks of nearly equal size."""
    size, extra = divmod(len(items), parts)
    start = 0
    for part in range(parts):
        stop = start + size + (part < extra)
        yield items[start:stop]
        start = stop
