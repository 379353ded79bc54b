"""Rules as data without a JVM: validation of rules, SQL rendering of checks, error text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts import checks, rules
from pipeline.errors import ExpectationFailedError, InvalidExpectationError, RuleFailure
from pipeline.transforms.expectations import Expectation


def _rule(**overrides: object) -> Expectation:
    fields: dict[str, object] = {
        "name": "price_not_negative",
        "predicate": "price >= 0",
        "action": "drop",
        "description": "prices are not negative",
        "passing_example": {"price": 1.0},
        "failing_example": {"price": -1.0},
    }
    fields.update(overrides)
    return Expectation(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "Price-Check"}, "lower_snake_case"),
        ({"action": "explode"}, "action"),
        ({"predicate": "  "}, "empty predicate"),
        ({"description": ""}, "description"),
        ({"failing_example": ()}, "failing example"),
    ],
)
def test_malformed_rules_are_rejected_with_the_reason(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidExpectationError, match=message):
        _rule(**overrides)


def test_examples_may_be_one_row_or_several() -> None:
    rule = _rule(passing_example=({"price": 1.0}, {"price": None}))
    assert rule.passing_rows == ({"price": 1.0}, {"price": None})
    assert rule.failing_rows == ({"price": -1.0},)
    assert rule.sql == "price >= 0"


def test_checks_render_the_same_predicate_as_spark_sql() -> None:
    assert checks.is_not_null("user.email").sql == "`user`.`email` IS NOT NULL"
    assert (
        checks.is_in("event_type", ("click", "it's")).sql == "`event_type` IN ('click', 'it\\'s')"
    )
    assert (
        checks.has_length("ip_hash", 64, allow_null=True).sql
        == "`ip_hash` IS NULL OR length(`ip_hash`) = 64"
    )
    assert checks.matches_regex("id", r"^\d+$").sql == "`id` RLIKE '^\\\\d+$'"
    assert checks.is_between("price", min_value=0.0).sql == "`price` >= 0.0"
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    not_after = checks.is_not_after("event_time", clock=lambda: now, tolerance=timedelta(hours=1))
    assert not_after.sql == "`event_time` <= TIMESTAMP '2026-11-25 13:00:00.000000Z'"


def test_a_time_check_needs_an_aware_clock() -> None:
    check = checks.is_not_after("event_time", clock=lambda: datetime(2026, 1, 1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="aware"):
        check.limit()


def test_every_rule_set_has_unique_names_and_declared_columns() -> None:
    sets = {**rules.expectations(), **rules.gold_expectations()}
    assert set(sets) == {"bronze_events", "silver_events", "gold_fact_events", "gold_dim_user"}
    for table_rules in sets.values():
        names = [rule.name for rule in table_rules]
        assert len(names) == len(set(names))
        assert all(rule.columns for rule in table_rules)


def test_the_failure_message_names_table_rule_count_and_samples() -> None:
    error = ExpectationFailedError(
        "silver_events",
        (
            RuleFailure(
                rule="email_hash_is_hmac",
                description="email_hash is a 64-character HMAC",
                failed=2,
                samples=({"event_id": "e-1", "email_hash": "ann@example.com"},),
            ),
        ),
        rows=1_000,
    )
    text = str(error)
    assert "silver_events" in text
    assert "'email_hash_is_hmac'" in text
    assert "2 of 1,000 rows" in text
    assert "event_id=e-1" in text
    assert "stopped without committing anything" in text
    assert (error.rule, error.failed, error.table) == ("email_hash_is_hmac", 2, "silver_events")
