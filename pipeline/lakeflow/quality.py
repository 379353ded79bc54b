"""Expectations on a dataset: Lakeflow's decorators where `dp` has them, our engine otherwise.

The rules (`pipeline.transforms.expectations.Expectation`) are the same either way. A rule whose
predicate is SQL becomes `dp.expect_all` / `expect_all_or_drop` / `expect_all_or_fail` when
the running `dp` offers them, so Databricks counts it in the pipeline event log; a rule whose
predicate builds a Column, and every rule where `dp` has no expectations (open source), is
enforced by `pipeline.transforms.expectations.enforce` around the query function: same rows kept,
same
failures, no counts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from pyspark.sql import DataFrame

from pipeline.lakeflow.capabilities import Capabilities
from pipeline.transforms.expectations import Action, Expectation, enforce

__all__ = [
    "NATIVE_DECORATORS",
    "QueryFunction",
    "expectations",
    "native_predicate",
    "split_rules",
]

QueryFunction = Callable[[], DataFrame]

NATIVE_DECORATORS: dict[Action, str] = {
    "warn": "expect_all",
    "drop": "expect_all_or_drop",
    "fail": "expect_all_or_fail",
}


def native_predicate(rule: Expectation) -> str:
    """A rule's SQL predicate as Lakeflow should evaluate it: null counts as failed, as ours."""
    return f"coalesce(({rule.predicate}), false)"


def split_rules(
    rules: Sequence[Expectation], capabilities: Capabilities
) -> tuple[tuple[Expectation, ...], tuple[Expectation, ...]]:
    """The rules `dp` can enforce natively, and those our engine must enforce."""
    if not capabilities.expectations:
        return (), tuple(rules)
    native = tuple(rule for rule in rules if isinstance(rule.predicate, str))
    return native, tuple(rule for rule in rules if not isinstance(rule.predicate, str))


def expectations(
    dp: ModuleType, capabilities: Capabilities, rules: Sequence[Expectation]
) -> Callable[[QueryFunction], QueryFunction]:
    """A decorator to put under `@dp.table` / `@dp.materialized_view`, enforcing `rules`."""
    native, emulated = split_rules(rules, capabilities)

    def decorate(query: QueryFunction) -> QueryFunction:
        decorated = query
        if emulated:

            @functools.wraps(query)
            def enforced() -> DataFrame:
                return enforce(query(), emulated)

            decorated = enforced
        for action, decorator_name in NATIVE_DECORATORS.items():
            chosen = {rule.name: native_predicate(rule) for rule in native if rule.action == action}
            if chosen:
                decorator: Callable[[dict[str, str]], Callable[[Any], Any]]
                decorator = getattr(dp, decorator_name)
                decorated = decorator(chosen)(decorated)
        return decorated

    return decorate
