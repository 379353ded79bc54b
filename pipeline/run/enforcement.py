"""Enforcing a table's rules where the stages write it: one pass, counted, logged.

`pipeline.transforms.expectations` is the engine (evaluate, count, stop); this module applies it to
the
stages' Delta writes. The rules of a table are evaluated in the pass that writes it: all rules
in one projection, their counts collected by `DataFrame.observe` during the write, and a row
failing a `fail` rule raises inside that write, which then aborts before its Delta commit
(`ExpectationFailedError`, naming the rule, the count and samples). The stages report the
counts to the event log (`pipeline.observe.event_log`), once per (stage, micro-batch).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from pipeline.errors import InvalidExpectationError
from pipeline.table_names import (
    BRONZE_EVENTS,
    ENFORCED_TABLES,
    GOLD_DIM_USER,
    GOLD_ENFORCED_TABLES,
    GOLD_FACT_EVENTS,
    SILVER_EVENTS,
)
from pipeline.transforms import bronze, expectations, gold, silver
from pipeline.transforms.expectations import Expectation, ExpectationMetric
from pipeline.transforms.pseudonymize import IPAD_COLUMN, OPAD_COLUMN

T = TypeVar("T")

__all__ = [
    "Contract",
    "check_rule_tables",
    "checked_rows",
    "contracts_for",
    "dim_user_view",
    "dropped_any",
    "in_memory",
    "write_checked",
]


@dataclass(frozen=True)
class Contract:
    """The rules a stage enforces on one table."""

    table: str
    rules: tuple[Expectation, ...]


def dropped_any(metrics: Sequence[ExpectationMetric]) -> bool:
    """Whether a drop rule rejected any row."""
    return any(metric.failed for metric in metrics if metric.action == "drop")


def write_checked(
    evaluated: DataFrame,
    write: Callable[[DataFrame], bool],
    contract: Contract,
    *,
    key_columns: Sequence[str] = ("event_id",),
    hidden_columns: Sequence[str] = (),
) -> list[ExpectationMetric]:
    """Write the rows of an evaluated batch that no drop rule rejects, counting every rule.

    The same pass counts every rule (`DataFrame.observe`) and stops at a row that fails a
    `fail` rule (`kept_or_stop`): the Delta write then aborts before its commit, so nothing
    of the batch is written, and the batch is counted again to raise `ExpectationFailedError`
    with the rule, the count and samples. A second pass over the batch happens only on that
    path, or when Delta skipped the write as already committed (a replayed batch).

    Args:
        evaluated: `pipeline.transforms.expectations.evaluate` output.
        write: writes the kept rows (still carrying the evaluation columns); returns False
            when it skipped the write (the batch was committed before a crash).
        contract: the table and its rules.
        key_columns: columns that identify a row in error samples.
        hidden_columns: never shown in error samples.

    Returns:
        The metrics of every rule over the whole batch.
    """
    written, observed = _enforced(evaluated, write, contract, key_columns, hidden_columns)
    if not written:
        return expectations.measure(evaluated, contract.table, contract.rules)
    return observed()


def checked_rows(
    evaluated: DataFrame,
    contract: Contract,
    *,
    key_columns: Sequence[str] = ("event_id",),
    hidden_columns: Sequence[str] = (),
    measures: Mapping[str, Column] | None = None,
) -> tuple[DataFrame, dict[str, Any], list[ExpectationMetric]]:
    """The rows of an evaluated batch that no drop rule rejects, kept in memory (a local
    checkpoint, still carrying the evaluation columns), `measures` of them (aggregates by
    name; `rows` always), and every rule's counts: all in one pass.

    As in `write_checked`, a row failing a `fail` rule stops the pass with
    `ExpectationFailedError`, before anything is written. The kept rows can then be written,
    and handed to the next layer, without evaluating the rules again.
    """
    kept, observed = _enforced(
        evaluated,
        lambda rows: in_memory(rows, measures),
        contract,
        key_columns,
        hidden_columns,
    )
    return kept[0], kept[1], observed()


def in_memory(
    rows: DataFrame, measures: Mapping[str, Column] | None = None
) -> tuple[DataFrame, dict[str, Any]]:
    """`rows` kept in memory (a local checkpoint: one pass), and `measures` of them
    (aggregates by name, computed in that pass), with `rows`, how many there are."""
    observation = Observation(f"rows:{uuid.uuid4().hex}")
    aggregates = [F.count(F.lit(1)).alias("rows")]
    aggregates += [column.alias(name) for name, column in (measures or {}).items()]
    kept = rows.observe(observation, *aggregates).localCheckpoint()
    return kept, dict(observation.get)


def _enforced(
    evaluated: DataFrame,
    act: Callable[[DataFrame], T],
    contract: Contract,
    key_columns: Sequence[str],
    hidden_columns: Sequence[str],
) -> tuple[T, Callable[[], list[ExpectationMetric]]]:
    """`act` on the kept rows, in the pass that counts every rule and stops at a `fail` rule;
    what it returned, and the counts (once the pass ran)."""
    rules = contract.rules
    observation = Observation(f"expectations:{contract.table}:{uuid.uuid4().hex}")
    watched = evaluated.observe(observation, *expectations.metric_columns(rules))
    try:
        result = act(watched.where(expectations.kept_or_stop(rules)))
    except Exception as error:
        if not expectations.stopped_by_fail_rule(error):
            raise
        metrics = expectations.measure(evaluated, contract.table, rules)
        expectations.raise_on_failures(
            evaluated,
            contract.table,
            rules,
            metrics,
            key_columns=key_columns,
            hidden_columns=hidden_columns,
        )
        raise
    return result, lambda: expectations.metrics_from(observation.get, contract.table, rules)


@contextmanager
def dim_user_view(users: DataFrame) -> Iterator[None]:
    """`gold_dim_user` as a temporary view, for gold rules that name it in SQL."""
    users.createOrReplaceTempView(GOLD_DIM_USER)
    try:
        yield
    finally:
        users.sparkSession.catalog.dropTempView(GOLD_DIM_USER)


@functools.cache
def _shape_schemas(spark: SparkSession) -> dict[str, StructType]:
    """The schema of each enforced table's rows when its rules run: analysed once a session.

    The rules are checked against empty frames of these schemas: analysing a rule over the
    real plans (the bronze parse is a large expression) took about a second every run.
    """
    lines = spark.createDataFrame([], "value string, _source_file string")
    parsed = bronze.parse_lines(lines)
    keys = spark.createDataFrame([], f"{IPAD_COLUMN} binary, {OPAD_COLUMN} binary")
    events = silver.pseudonymized(
        silver.with_event_time(bronze.bronze_rows(parsed, ingested_at=F.current_timestamp())),
        keys,
    )
    users = gold.empty_user_dimension(spark)
    return {
        BRONZE_EVENTS: parsed.schema,
        SILVER_EVENTS: events.schema,
        GOLD_DIM_USER: users.schema,
        GOLD_FACT_EVENTS: gold.fact_events(events, users=users).schema,
    }


def _shapes(spark: SparkSession) -> dict[str, DataFrame]:
    """Empty frames shaped like each enforced table's rows when its rules run (no Spark job)."""
    return {
        table: spark.createDataFrame([], schema) for table, schema in _shape_schemas(spark).items()
    }


def check_rule_tables(rules_by_table: Mapping[str, Sequence[Expectation]]) -> None:
    """Check that the rules name tables the pipeline writes, and drop no gold rows (no Spark).

    Raises:
        InvalidExpectationError: a rule names a table no stage writes, or drops gold rows.
    """
    unknown = sorted(set(rules_by_table) - set(ENFORCED_TABLES))
    if unknown:
        raise InvalidExpectationError(
            f"Expectations were given for {unknown}, but no query of the pipeline writes "
            f"those tables; rules can be enforced on {list(ENFORCED_TABLES)}."
        )
    dropping = sorted(
        f"{table}.{rule.name}"
        for table in GOLD_ENFORCED_TABLES
        for rule in rules_by_table.get(table, ())
        if rule.action == "drop"
    )
    if dropping:
        raise InvalidExpectationError(
            f"Rules {dropping} drop gold rows, but gold tables take only warn and fail rules: "
            "every silver event must reach gold_fact_events, and a dimension version cannot "
            "be dropped without breaking its history. Make them warn or fail, or drop the "
            "rows earlier, with a rule on silver_events."
        )


def contracts_for(
    spark: SparkSession,
    rules_by_table: Mapping[str, Sequence[Expectation]],
) -> dict[str, Contract]:
    """Check the rules against the tables' shapes before any query starts (no Spark job).

    Raises:
        InvalidExpectationError: a rule names a table no stage writes, drops gold rows, or
            does not fit its table (an unknown column, a SQL error, not a boolean).
    """
    check_rule_tables(rules_by_table)
    if not any(rules_by_table.values()):
        return {}
    shapes = _shapes(spark)
    contracts: dict[str, Contract] = {}
    with dim_user_view(shapes[GOLD_DIM_USER]):
        for table, rules in rules_by_table.items():
            if rules:
                expectations.check_rules(shapes[table], table, rules)
                contracts[table] = Contract(table, tuple(rules))
    return contracts
