"""Every contract rule passes its passing example and fails its failing example, on Spark."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType, TimestampType

from contracts import rules
from pipeline import table_names
from pipeline.transforms import bronze, expectations, silver
from pipeline.transforms.expectations import ExampleRow, Expectation
from pipeline.transforms.schemas import EVENT_SCHEMA

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
RULE_SETS = {
    **rules.expectations(clock=lambda: NOW),
    **rules.gold_expectations(),
}
CASES = [
    pytest.param(table, rule, id=f"{table}.{rule.name}")
    for table, table_rules in RULE_SETS.items()
    for rule in table_rules
]

BRONZE_SCHEMA = StructType(
    [
        *EVENT_SCHEMA.fields,
        StructField("_rescued_data", StringType()),
        StructField("_source_file", StringType()),
        StructField("_ingested_at", TimestampType()),
    ]
)


def _struct(ddl: str) -> StructType:
    parsed = StructType.fromDDL(ddl)
    assert isinstance(parsed, StructType)
    return parsed


@pytest.fixture(scope="module")
def schemas(spark: SparkSession, keys: DataFrame) -> dict[str, StructType]:
    """The schema of every table with rules, from the pipeline's own functions."""
    lines = spark.createDataFrame([], "value string, _source_file string")
    bronze_rows = bronze.bronze_rows(bronze.parse_lines(lines), ingested_at=F.current_timestamp())
    return {
        table_names.BRONZE_EVENTS: BRONZE_SCHEMA,
        # Nullable everywhere: an example leaves out every column its rule does not read.
        table_names.SILVER_EVENTS: StructType(
            [
                StructField(field.name, field.dataType)
                for field in silver.silver_events(bronze_rows, keys=keys).schema.fields
            ]
        ),
        **{table: _struct(ddl) for table, ddl in rules.GOLD_SCHEMAS.items()},
    }


@pytest.fixture(scope="module", autouse=True)
def empty_dim_user(spark: SparkSession) -> Iterator[None]:
    """The gold examples assume an empty user dimension under its default name."""
    spark.createDataFrame(
        [], rules.GOLD_SCHEMAS[table_names.GOLD_DIM_USER]
    ).createOrReplaceTempView(table_names.GOLD_DIM_USER)
    yield
    spark.catalog.dropTempView(table_names.GOLD_DIM_USER)


def _frame(spark: SparkSession, schema: StructType, rows: tuple[ExampleRow, ...]) -> DataFrame:
    unknown = {name for row in rows for name in row} - set(schema.fieldNames())
    assert not unknown, f"example columns not in the table: {unknown}"
    return spark.createDataFrame(
        [tuple(row.get(field.name) for field in schema.fields) for row in rows], schema
    )


def _verdict_rows(
    spark: SparkSession, schema: StructType, table: str, rule: Expectation, kind: str
) -> DataFrame:
    rows = rule.passing_rows if kind == "passing" else rule.failing_rows
    evaluated = expectations.evaluate(_frame(spark, schema, rows), (rule,))
    return evaluated.select(
        F.lit(table).alias("table"),
        F.lit(rule.name).alias("rule"),
        F.lit(kind).alias("kind"),
        F.col(expectations.passed_column(rule)).alias("passed"),
    )


@pytest.fixture(scope="module")
def verdicts(
    spark: SparkSession, schemas: dict[str, StructType]
) -> dict[tuple[str, str, str], list[bool]]:
    """Every example of every rule, each evaluated on its own, collected in one Spark job."""
    parts = [
        _verdict_rows(spark, schemas[table], table, rule, kind)
        for table, table_rules in RULE_SETS.items()
        for rule in table_rules
        for kind in ("passing", "failing")
    ]
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    found: dict[tuple[str, str, str], list[bool]] = {}
    for row in union.collect():
        found.setdefault((row.table, row.rule, row.kind), []).append(row.passed)
    return found


@pytest.mark.parametrize(("table", "rule"), CASES)
def test_rule_examples(
    schemas: dict[str, StructType],
    verdicts: dict[tuple[str, str, str], list[bool]],
    table: str,
    rule: Expectation,
) -> None:
    assert {name.split(".")[0] for name in rule.columns} <= set(schemas[table].fieldNames())
    assert verdicts[table, rule.name, "passing"] == [True] * len(rule.passing_rows)
    assert verdicts[table, rule.name, "failing"] == [False] * len(rule.failing_rows)
