"""Lakeflow-style expectations as data, enforced in one pass over each batch.

A rule (`Expectation`) is a name, a predicate that is true for a good row, an action and a
description, with a passing and a failing example. The predicate is a SQL boolean expression
(`"price IS NULL OR price >= 0"`) or a function returning a `Column`, called once per evaluation
so that it may read an injected clock. The actions are those of Lakeflow:

* `warn` (`expect`): failing rows are kept and counted;
* `drop` (`expect_or_drop`): failing rows are counted and routed to the table's quarantine with
  the names of every drop rule they failed;
* `fail` (`expect_or_fail`): any failing row stops the run before anything of the batch is
  written, with an `ExpectationFailedError` naming the rule, the table, the count and samples.

**Null counts as failed.** A predicate that evaluates to NULL for a row (SQL's "unknown", as
`price >= 0` does when `price` is null) counts that row as failed: the engine evaluates
`coalesce(predicate, false)`. Otherwise a missing value would silently pass every comparison.
A rule for which a null is acceptable says so: `price IS NULL OR price >= 0`.

This module is the engine only: it knows no table and no rule set. The rule sets live in
`contracts/`, and the runner receives them as data. `evaluate` adds one boolean column per
rule, whether the row is kept, and the names of the drop rules it failed, in a single
`select`. The counts of every rule are one set of aggregates (`metric_columns`): computed
by `measure` in one aggregation, or observed while the kept rows are written, and
`kept_or_stop` makes that write itself stop at a row failing a `fail` rule, so enforcing a
table's rules needs no pass over the data of its own.
"""

from __future__ import annotations

import functools
import importlib
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DataType

from pipeline.config import EXPECTATIONS_ATTRIBUTE, NO_EXPECTATIONS
from pipeline.errors import (
    ConfigurationError,
    ExpectationFailedError,
    InvalidExpectationError,
    RuleFailure,
)

__all__ = [
    "ACTIONS",
    "FAILED_DROP_COLUMN",
    "FAIL_MARKER",
    "KEPT_COLUMN",
    "MAX_SAMPLES",
    "PASSED_PREFIX",
    "QUARANTINE_REASON_COLUMN",
    "QUARANTINE_REASON_PREFIX",
    "QUARANTINE_RULES_COLUMN",
    "Action",
    "ExampleRow",
    "Expectation",
    "ExpectationMetric",
    "Predicate",
    "TableExpectations",
    "check_rules",
    "dropped_rows",
    "enforce",
    "evaluate",
    "failing_samples",
    "kept_or_stop",
    "load_expectations",
    "measure",
    "metric_columns",
    "metrics_from",
    "no_failed_rules",
    "passed_column",
    "raise_on_failures",
    "sample_columns",
    "stopped_by_fail_rule",
    "without_evaluation",
]

Action = Literal["warn", "drop", "fail"]
ACTIONS: tuple[Action, ...] = get_args(Action)

Predicate = str | Callable[[], Column]
"""A SQL boolean expression, or a function building the equivalent `Column` (once per batch)."""

ExampleRow = Mapping[str, Any]
"""An example row: column name to value; columns it leaves out are null."""

TableExpectations = Mapping[str, Sequence["Expectation"]]
"""Rules per table name, the form in which the runner receives them."""

PASSED_PREFIX = "__passed_"
"""Prefix of the boolean column `evaluate` adds per rule: true when the row passed it."""
KEPT_COLUMN = "__kept"
"""The boolean column `evaluate` adds: true when the row failed no drop rule."""
FAILED_DROP_COLUMN = "__failed_drop_rules"
"""The array column `evaluate` adds: names of the drop rules the row failed, empty if none.
Built only where a query reads it (the quarantine write), not for every kept row."""
QUARANTINE_RULES_COLUMN = "failed_expectations"
"""The quarantine column holding the names of the drop rules a row failed."""
QUARANTINE_REASON_COLUMN = "reason"
"""The quarantine column holding a readable reason."""
QUARANTINE_REASON_PREFIX = "failed expectations: "
MAX_SAMPLES = 3

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


@dataclass(frozen=True)
class Expectation:
    """One named rule of a table.

    Attributes:
        name: lower_snake_case, unique within its table; it names the metrics and quarantine.
        predicate: true for a good row (SQL text or a function returning a `Column`). A null
            result counts as failed.
        action: "warn", "drop" or "fail".
        description: one sentence a person reads in reports and errors.
        passing_example: a row (or rows) that passes the rule.
        failing_example: a row (or rows) every one of which fails the rule.
        columns: the columns the predicate reads, shown beside the key in error samples and
            reports; empty to show every column of the sample.
    """

    name: str
    predicate: Predicate
    action: Action
    description: str
    passing_example: ExampleRow | Sequence[ExampleRow]
    failing_example: ExampleRow | Sequence[ExampleRow]
    columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise InvalidExpectationError(
                f"Expectation name {self.name!r} is not lower_snake_case (letters, digits, "
                "underscores, starting with a letter); it becomes a column and a metric name."
            )
        if self.action not in ACTIONS:
            raise InvalidExpectationError(
                f"Expectation {self.name!r} has action {self.action!r}; use one of {ACTIONS}."
            )
        if isinstance(self.predicate, str) and not self.predicate.strip():
            raise InvalidExpectationError(f"Expectation {self.name!r} has an empty predicate.")
        if not self.description.strip():
            raise InvalidExpectationError(
                f"Expectation {self.name!r} needs a description: reports and errors show it."
            )
        if not self.passing_rows or not self.failing_rows:
            raise InvalidExpectationError(
                f"Expectation {self.name!r} needs a passing and a failing example row."
            )

    @property
    def passing_rows(self) -> tuple[ExampleRow, ...]:
        """The passing example as a tuple of rows."""
        return _rows(self.passing_example)

    @property
    def failing_rows(self) -> tuple[ExampleRow, ...]:
        """The failing example as a tuple of rows."""
        return _rows(self.failing_example)

    @property
    def sql(self) -> str | None:
        """The predicate's SQL text, when it was given as SQL."""
        return self.predicate if isinstance(self.predicate, str) else None

    def predicate_column(self) -> Column:
        """The predicate as given, as a Column: true, false or null."""
        return F.expr(self.predicate) if isinstance(self.predicate, str) else self.predicate()

    def condition(self) -> Column:
        """The predicate as a Column that is true exactly when the row passes (null is false)."""
        return F.coalesce(self.predicate_column(), F.lit(False))


def _rows(example: ExampleRow | Sequence[ExampleRow]) -> tuple[ExampleRow, ...]:
    return (example,) if isinstance(example, Mapping) else tuple(example)


@dataclass(frozen=True)
class ExpectationMetric:
    """Passed and failed row counts of one rule over one evaluated frame."""

    table: str
    rule: str
    action: Action
    passed: int
    failed: int


def passed_column(rule: Expectation) -> str:
    """Name of the boolean column `evaluate` adds for `rule`."""
    return PASSED_PREFIX + rule.name


def check_rules(frame: DataFrame, table: str, rules: Sequence[Expectation]) -> None:
    """Fail early, naming the rule, when rules repeat a name or do not resolve on `frame`.

    Only analyses the query (no Spark job): an unknown column or a SQL syntax error in a
    predicate surfaces here instead of inside a streaming micro-batch.

    Raises:
        InvalidExpectationError: a duplicate name, or a predicate Spark cannot analyse or
            that is not boolean.
    """
    names = [rule.name for rule in rules]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidExpectationError(f"Table {table} declares rules {repeated} more than once.")
    try:  # one analysis of every predicate at once; rule by rule only to name a bad one
        types = frame.select(*[rule.predicate_column().alias(rule.name) for rule in rules]).schema
        checked_all = [(rule, types[rule.name].dataType) for rule in rules]
    except AnalysisException:
        checked_all = [(rule, _predicate_type(frame, table, rule)) for rule in rules]
    for rule, data_type in checked_all:
        if data_type.simpleString() != "boolean":
            raise InvalidExpectationError(
                f"Rule '{rule.name}' of table {table} is not a boolean predicate "
                f"(it yields {data_type.simpleString()})."
            )


def _predicate_type(frame: DataFrame, table: str, rule: Expectation) -> DataType:
    """The type of one rule's predicate on `frame`, or an error naming the rule."""
    try:
        return frame.select(rule.predicate_column().alias("passed")).schema["passed"].dataType
    except AnalysisException as exc:
        raise InvalidExpectationError(
            f"Rule '{rule.name}' of table {table} does not fit the table: "
            f"{str(exc).splitlines()[0]}"
        ) from exc


def evaluate(frame: DataFrame, rules: Sequence[Expectation]) -> DataFrame:
    """Evaluate every rule on every row, in a single projection.

    Returns:
        `frame` with one boolean column per rule (`passed_column(rule)`, true when the row
        passed; a null predicate is false), `KEPT_COLUMN` (no drop rule failed) and
        `FAILED_DROP_COLUMN`, the names of the drop rules the row failed. Each predicate is
        built once, so a clock it reads is read once per call.
    """
    conditions = [(rule, rule.condition()) for rule in rules]
    drops = [(rule, condition) for rule, condition in conditions if rule.action == "drop"]
    kept = F.lit(True)
    for _rule, condition in drops:
        kept = kept & condition
    failed_drop_rules = (
        F.array_compact(
            F.array(*[F.when(~condition, F.lit(rule.name)) for rule, condition in drops])
        )
        if drops
        else F.array().cast("array<string>")
    )
    return frame.select(
        "*",
        *[condition.alias(passed_column(rule)) for rule, condition in conditions],
        kept.alias(KEPT_COLUMN),
        failed_drop_rules.alias(FAILED_DROP_COLUMN),
    )


def _evaluation_columns(
    evaluated: DataFrame, rules: Sequence[Expectation] | None = None
) -> list[str]:
    if rules is not None:  # known without analysing the frame
        return [*[passed_column(rule) for rule in rules], KEPT_COLUMN, FAILED_DROP_COLUMN]
    return [
        name
        for name in evaluated.columns
        if name.startswith(PASSED_PREFIX) or name in (KEPT_COLUMN, FAILED_DROP_COLUMN)
    ]


def without_evaluation(
    evaluated: DataFrame, rules: Sequence[Expectation] | None = None
) -> DataFrame:
    """Drop the columns `evaluate` added.

    Given the `rules` evaluated, it names those columns without analysing the frame, as
    Spark Declarative Pipelines requires inside a query function.
    """
    return evaluated.drop(*_evaluation_columns(evaluated, rules))


def dropped_rows(evaluated: DataFrame, rules: Sequence[Expectation] | None = None) -> DataFrame:
    """Rows that failed a drop rule, with `reason` and `failed_expectations` (the rule names).

    Pass the `rules` evaluated to avoid analysing the frame (see `without_evaluation`).
    """
    failed = F.col(FAILED_DROP_COLUMN)
    return without_evaluation(
        evaluated.where(~F.col(KEPT_COLUMN)).select(
            "*",
            F.concat(F.lit(QUARANTINE_REASON_PREFIX), F.array_join(failed, ", ")).alias(
                QUARANTINE_REASON_COLUMN
            ),
            failed.alias(QUARANTINE_RULES_COLUMN),
        ),
        rules,
    )


def no_failed_rules() -> Column:
    """An empty `failed_expectations` value, for quarantine rows no rule put there."""
    return F.array().cast("array<string>").alias(QUARANTINE_RULES_COLUMN)


def metric_columns(rules: Sequence[Expectation]) -> list[Column]:
    """Aggregates over `evaluate` output: `rows`, and per rule (by name) its failing rows.

    For one aggregation (`measure`) or for `DataFrame.observe` during a write.
    """
    return [
        F.count(F.lit(1)).alias("rows"),
        *[F.count_if(~F.col(passed_column(rule))).alias(rule.name) for rule in rules],
    ]


def metrics_from(
    values: Mapping[str, Any], table: str, rules: Sequence[Expectation]
) -> list[ExpectationMetric]:
    """The metrics of `rules` from the values of `metric_columns`."""
    rows = int(values["rows"])
    failed = {rule.name: int(values[rule.name]) for rule in rules}
    return [
        ExpectationMetric(
            table, rule.name, rule.action, rows - failed[rule.name], failed[rule.name]
        )
        for rule in rules
    ]


def measure(
    evaluated: DataFrame, table: str, rules: Sequence[Expectation]
) -> list[ExpectationMetric]:
    """Passed and failed counts of every rule, from one aggregation over `evaluate` output."""
    if not rules:
        return []
    values = evaluated.agg(*metric_columns(rules)).collect()[0].asDict()
    return metrics_from(values, table, rules)


FAIL_MARKER = "clickstream: a row failed an expect_or_fail rule"
"""The message of the Spark error `kept_or_stop` raises; see `stopped_by_fail_rule`."""


def kept_or_stop(rules: Sequence[Expectation]) -> Column:
    """A filter for `evaluate` output: true for rows no drop rule rejects (warn failures too).

    When a row fails a `fail` rule, evaluating it raises a Spark error (`FAIL_MARKER`), so a
    write filtered by it aborts before it commits anything: `fail` rules are checked in the
    same pass that writes, not in one before it.
    """
    fail_rules = [F.col(passed_column(rule)) for rule in rules if rule.action == "fail"]
    return _kept_unless_failed(F.col(KEPT_COLUMN), fail_rules)


def _kept_unless_failed(keep: Column, fail_conditions: Sequence[Column]) -> Column:
    """`keep`, or a Spark error (`FAIL_MARKER`) for a row that fails any of `fail_conditions`."""
    if not fail_conditions:
        return keep
    all_pass = functools.reduce(operator.and_, fail_conditions)
    return F.when(~all_pass, F.raise_error(F.lit(FAIL_MARKER))).otherwise(keep)


def enforce(frame: DataFrame, rules: Sequence[Expectation]) -> DataFrame:
    """`frame` under its rules, in one projection, as Lakeflow's expectation decorators act.

    Rows failing a drop rule are left out; a row failing a fail rule stops the query that
    evaluates it (`kept_or_stop`); warn rules keep every row. Nothing is counted here: for
    counts, `evaluate` and `measure` (the stages report them to the event log). Works on
    streaming and static frames.
    """
    if not rules:
        return frame
    drop_conditions = [rule.condition() for rule in rules if rule.action == "drop"]
    keep = functools.reduce(operator.and_, drop_conditions, F.lit(True))
    fail_conditions = [rule.condition() for rule in rules if rule.action == "fail"]
    # One filter, no added columns: nothing to drop afterwards, so Spark never has to analyse
    # the frame (Spark Declarative Pipelines forbids that inside a query function).
    return frame.where(_kept_unless_failed(keep, fail_conditions))


def stopped_by_fail_rule(error: BaseException) -> bool:
    """Whether a Spark error was raised by `kept_or_stop`."""
    return FAIL_MARKER in str(error)


def raise_on_failures(
    evaluated: DataFrame,
    table: str,
    rules: Sequence[Expectation],
    metrics: Sequence[ExpectationMetric],
    *,
    key_columns: Sequence[str] = ("event_id",),
    hidden_columns: Sequence[str] = (),
) -> None:
    """Raise `ExpectationFailedError` when any `fail` rule has failing rows.

    Args:
        evaluated: `evaluate` output the metrics were measured on.
        table: the table name, for the message.
        rules: the rules evaluated.
        metrics: `measure` output.
        key_columns: columns that identify a row, shown first in each sample.
        hidden_columns: columns never shown in samples (e.g. PII in clear).
    """
    failed = {metric.rule: metric.failed for metric in metrics}
    failing = [rule for rule in rules if rule.action == "fail" and failed.get(rule.name)]
    if not failing:
        return
    rows = metrics[0].passed + metrics[0].failed
    failures = tuple(
        RuleFailure(
            rule=rule.name,
            description=rule.description,
            failed=failed[rule.name],
            samples=failing_samples(
                evaluated, rule, key_columns=key_columns, hidden_columns=hidden_columns
            ),
        )
        for rule in failing
    )
    raise ExpectationFailedError(table, failures, rows)


def sample_columns(
    columns: Sequence[str],
    rule: Expectation,
    *,
    key_columns: Sequence[str] = ("event_id",),
    hidden_columns: Sequence[str] = (),
) -> list[str]:
    """Columns to show for a failing row: the key columns and those the rule reads.

    Hidden columns (PII in clear, say) are never shown; a nested rule column (`user.email`)
    is hidden with its parent. A rule that declares no columns shows every visible column.
    """
    visible = [name for name in columns if name not in hidden_columns]
    reads = [name for name in rule.columns if name.split(".")[0] in visible]
    if not reads:
        return visible
    return list(dict.fromkeys([*[name for name in key_columns if name in visible], *reads]))


def failing_samples(
    evaluated: DataFrame,
    rule: Expectation,
    *,
    key_columns: Sequence[str] = ("event_id",),
    hidden_columns: Sequence[str] = (),
    limit: int = MAX_SAMPLES,
) -> tuple[dict[str, object], ...]:
    """Up to `limit` rows that fail `rule`, restricted to `sample_columns`."""
    source_columns = without_evaluation(evaluated).columns
    shown = sample_columns(
        source_columns, rule, key_columns=key_columns, hidden_columns=hidden_columns
    )
    picked = evaluated.where(~F.col(passed_column(rule))).select(
        *[F.col(c).alias(c) for c in shown]
    )
    return tuple(row.asDict() for row in picked.limit(limit).collect())


def load_expectations(module_name: str) -> Mapping[str, Sequence[Expectation]]:
    """The rules per table held by `module_name`'s `EXPECTATIONS`, imported at run time.

    `pipeline` never imports the contracts statically (they are data given to the runner);
    this is how the command line and the Lakeflow definitions find them.

    Raises:
        ConfigurationError: the module cannot be imported, or has no such mapping of rules.
    """
    if module_name == NO_EXPECTATIONS:
        return {}
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"Cannot import the expectations module {module_name!r} ({exc}). Give an importable "
            f"module with --expectations, or --expectations {NO_EXPECTATIONS} to enforce none."
        ) from exc
    rules = getattr(module, EXPECTATIONS_ATTRIBUTE, None)
    if not isinstance(rules, Mapping) or not all(
        isinstance(rule, Expectation) for table_rules in rules.values() for rule in table_rules
    ):
        raise ConfigurationError(
            f"The module {module_name!r} has no {EXPECTATIONS_ATTRIBUTE} mapping table names to "
            "sequences of pipeline.transforms.expectations.Expectation."
        )
    return rules
