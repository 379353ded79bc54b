"""The enforcement engine on small frames: one projection, null as failure, routing, fail."""

from __future__ import annotations

import pytest
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from pipeline.errors import ExpectationFailedError, InvalidExpectationError
from pipeline.transforms import expectations
from pipeline.transforms.expectations import Expectation

SCHEMA = "event_id string, event_type string, price double, email string"


def _rule(name: str, predicate: str, action: str = "drop") -> Expectation:
    return Expectation(
        name=name,
        predicate=predicate,
        action=action,  # type: ignore[arg-type]
        description=f"{name} holds",
        passing_example={"x": 1},
        failing_example={"x": 0},
        columns=tuple(word for word in ("price", "event_type") if word in predicate),
    )


RULES = (
    _rule("price_not_negative", "price >= 0"),
    _rule("type_known", "event_type IN ('click', 'purchase')"),
    _rule("has_email", "email IS NOT NULL", action="warn"),
)


def _frame(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(
        [
            ("a", "click", 1.0, "ann@example.com"),
            ("b", "click", -1.0, "bob@example.com"),
            ("c", "teleport", None, None),
            ("d", "purchase", None, "dee@example.com"),
        ],
        SCHEMA,
    )


def _kept(evaluated: DataFrame) -> DataFrame:
    """Rows that failed no drop rule (warn failures included), as the input columns."""
    return expectations.without_evaluation(evaluated.where(F.col(expectations.KEPT_COLUMN)))


def _plan_nodes(frame: DataFrame) -> list[str]:
    plan = frame._jdf.queryExecution().optimizedPlan().toString()
    return [line.lstrip(" +-:").split(" ")[0] for line in plan.splitlines()]


def test_all_rules_are_evaluated_in_a_single_projection(spark: SparkSession) -> None:
    source = spark.range(4).select(
        F.col("id").cast("string").alias("event_id"),
        F.lit("click").alias("event_type"),
        (F.col("id") - 2).cast("double").alias("price"),
        F.lit(None).cast("string").alias("email"),
    )
    evaluated = expectations.evaluate(source, RULES)
    assert evaluated.columns == [
        *source.columns,
        *[expectations.passed_column(rule) for rule in RULES],
        expectations.KEPT_COLUMN,
        expectations.FAILED_DROP_COLUMN,
    ]
    # One Project on top of the source plan (or merged into its own): no join, no aggregate,
    # no second pass.
    assert _plan_nodes(evaluated) in (["Project", *_plan_nodes(source)], _plan_nodes(source))


def test_a_null_predicate_counts_as_failed(spark: SparkSession) -> None:
    metrics = expectations.measure(expectations.evaluate(_frame(spark), RULES), "events", RULES)
    by_rule = {metric.rule: (metric.passed, metric.failed) for metric in metrics}
    # price null for c and d: `price >= 0` is null there, so both fail.
    assert by_rule == {"price_not_negative": (1, 3), "type_known": (3, 1), "has_email": (3, 1)}


def test_drop_rows_are_routed_with_the_names_of_the_rules_they_failed(
    spark: SparkSession,
) -> None:
    evaluated = expectations.evaluate(_frame(spark), RULES)
    kept = _kept(evaluated)
    assert kept.columns == _frame(spark).columns
    assert [row.event_id for row in kept.collect()] == ["a"]
    dropped = {
        row.event_id: (row.failed_expectations, row.reason)
        for row in expectations.dropped_rows(evaluated).collect()
    }
    assert dropped == {
        "b": (["price_not_negative"], "failed expectations: price_not_negative"),
        "c": (
            ["price_not_negative", "type_known"],
            "failed expectations: price_not_negative, type_known",
        ),
        "d": (["price_not_negative"], "failed expectations: price_not_negative"),
    }


def test_warn_rows_are_kept_and_counted(spark: SparkSession) -> None:
    warn_only = (_rule("has_email", "email IS NOT NULL", action="warn"),)
    evaluated = expectations.evaluate(_frame(spark), warn_only)
    assert _kept(evaluated).count() == 4
    [metric] = expectations.measure(evaluated, "events", warn_only)
    assert (metric.passed, metric.failed) == (3, 1)


def test_a_failing_fail_rule_raises_with_table_rule_count_and_samples(
    spark: SparkSession,
) -> None:
    fail_rules = (*RULES, _rule("price_present", "price IS NOT NULL", action="fail"))
    evaluated = expectations.evaluate(_frame(spark), fail_rules)
    metrics = expectations.measure(evaluated, "silver_events", fail_rules)
    with pytest.raises(ExpectationFailedError) as caught:
        expectations.raise_on_failures(
            evaluated, "silver_events", fail_rules, metrics, hidden_columns=("email",)
        )
    error = caught.value
    assert (error.table, error.rule, error.failed, error.rows) == (
        "silver_events",
        "price_present",
        2,
        4,
    )
    samples = error.failures[0].samples
    assert sorted(str(sample["event_id"]) for sample in samples) == ["c", "d"]
    assert all(set(sample) == {"event_id", "price"} for sample in samples)
    assert "ann@example.com" not in str(error)


def test_passing_fail_rules_do_not_raise(spark: SparkSession) -> None:
    fail_rules = (_rule("id_present", "event_id IS NOT NULL", action="fail"),)
    evaluated = expectations.evaluate(_frame(spark), fail_rules)
    metrics = expectations.measure(evaluated, "events", fail_rules)
    expectations.raise_on_failures(evaluated, "events", fail_rules, metrics)


def test_samples_never_show_hidden_columns(spark: SparkSession) -> None:
    rule = Expectation(
        name="email_present",
        predicate="email IS NOT NULL",
        action="fail",
        description="email present",
        passing_example={"email": "x"},
        failing_example={"email": None},
        columns=("email",),
    )
    evaluated = expectations.evaluate(_frame(spark), (rule,))
    samples = expectations.failing_samples(evaluated, rule, hidden_columns=("email",))
    assert samples == ({"event_id": "c", "event_type": "teleport", "price": None},)


def test_a_callable_predicate_is_built_once_per_evaluation(spark: SparkSession) -> None:
    calls: list[int] = []

    def price_below_limit() -> Column:
        calls.append(1)
        return F.col("price") <= F.lit(10.0)

    rule = Expectation(
        name="price_below_limit",
        predicate=price_below_limit,
        action="drop",
        description="price at most 10",
        passing_example={"price": 1.0},
        failing_example={"price": 11.0},
    )
    evaluated = expectations.evaluate(_frame(spark), (rule,))
    assert _kept(evaluated).count() == 2
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("predicate", "message"),
    [("no_such_column > 0", "does not fit"), ("price + 1", "not a boolean")],
)
def test_rules_that_do_not_fit_the_table_are_rejected_before_running(
    spark: SparkSession, predicate: str, message: str
) -> None:
    with pytest.raises(InvalidExpectationError, match=message):
        expectations.check_rules(_frame(spark), "events", (_rule("broken", predicate),))


def test_repeated_rule_names_are_rejected(spark: SparkSession) -> None:
    with pytest.raises(InvalidExpectationError, match="more than once"):
        expectations.check_rules(_frame(spark), "events", (RULES[0], RULES[0]))


def test_the_keep_filter_stops_a_write_at_a_row_failing_a_fail_rule(
    spark: SparkSession,
) -> None:
    fail_rules = (*RULES, _rule("price_present", "price IS NOT NULL", action="fail"))
    evaluated = expectations.evaluate(_frame(spark), fail_rules)
    with pytest.raises(Exception) as caught:
        evaluated.where(expectations.kept_or_stop(fail_rules)).collect()
    assert expectations.stopped_by_fail_rule(caught.value)

    passing = expectations.evaluate(_frame(spark).where(F.col("price").isNotNull()), fail_rules)
    kept = passing.where(expectations.kept_or_stop(fail_rules))
    assert [row.event_id for row in kept.collect()] == ["a"]


def test_metrics_observed_during_an_action_equal_the_measured_ones(spark: SparkSession) -> None:
    evaluated = expectations.evaluate(_frame(spark), RULES)
    observation = Observation("metrics")
    evaluated.observe(observation, *expectations.metric_columns(RULES)).where(
        expectations.kept_or_stop(RULES)
    ).collect()
    observed = expectations.metrics_from(observation.get, "events", RULES)
    assert observed == expectations.measure(evaluated, "events", RULES)
