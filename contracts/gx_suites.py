"""Great Expectations suites from the contract rules, validated on Spark, with Data Docs.

Each rule becomes exactly one GX expectation, tagged with the rule's name in `meta`, chosen
so that GX's unexpected rows are exactly the rows our engine counts as failed:

* a `contracts.checks` check on a top-level column maps to the native expectation
  (`ExpectColumnValuesToNotBeNull`, `...ToBeInSet`, `ExpectColumnValueLengthsToEqual`,
  `...ToMatchRegex`, `...ToBeBetween`) when null semantics agree: GX's column expectations
  skip nulls, so only checks that let nulls pass (`allow_null=True`) and not-null checks map
  natively;
* everything else (SQL predicates, checks that fail nulls) becomes an
  `UnexpectedRowsExpectation` whose query keeps the rows where `coalesce(predicate, false)`
  is false: our null-counts-as-failed rule, in SQL. The predicate is computed in a
  projection, so window functions and subqueries (the gold rules) work too.

GX runs on the caller's SparkSession: the datasource gets no `spark_config`, so GX neither
creates nor restarts a session. It registers a temporary view `tmp_view` for SQL expectations;
`validate` drops it again. Time-relative checks (`is_not_after`) take their limit from the
clock when the suite is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.expectations.expectation import Expectation as GxExpectation
from pyspark.sql import DataFrame

from contracts.checks import Between, Check, InSet, LengthEquals, MatchesRegex, NotAfter, NotNull
from pipeline.errors import InvalidExpectationError
from pipeline.transforms.expectations import Expectation

__all__ = [
    "DATASOURCE_NAME",
    "GX_BATCH_VIEW",
    "PASSED_ALIAS",
    "SITE_NAME",
    "GxReport",
    "GxRuleResult",
    "build_suite",
    "gx_expectation",
    "unexpected_rows_query",
    "validate",
]

SITE_NAME = "contracts"
DATASOURCE_NAME = "clickstream_spark"
GX_BATCH_VIEW = "tmp_view"
"""The temporary view GX's Spark SQL metrics register for `{batch}`."""
PASSED_ALIAS = "__rule_passed"


@dataclass(frozen=True)
class GxRuleResult:
    """What GX found for one rule of one table."""

    table: str
    rule: str
    action: str
    expectation_type: str
    success: bool
    unexpected: int


@dataclass(frozen=True)
class GxReport:
    """GX results of every rule of every validated table, and the Data Docs index if built."""

    results: tuple[GxRuleResult, ...]
    docs_index: Path | None

    def unexpected_by_rule(self, table: str) -> dict[str, int]:
        """Unexpected (failed) row counts per rule of `table`."""
        return {result.rule: result.unexpected for result in self.results if result.table == table}


def unexpected_rows_query(predicate_sql: str) -> str:
    """The GX query of rows failing a SQL predicate, null counting as failed.

    Braces in the predicate are doubled: GX fills `{batch}` with `str.format`.
    """
    escaped = predicate_sql.replace("{", "{{").replace("}", "}}")
    return (
        f"SELECT * FROM (SELECT *, ({escaped}) AS {PASSED_ALIAS} FROM {{batch}}) AS checked "
        f"WHERE NOT coalesce({PASSED_ALIAS}, false)"
    )


def _native(check: Check, **common: Any) -> GxExpectation | None:
    """The native GX expectation with the same unexpected rows as `check`, if there is one."""
    if "." in check.column:
        return None  # GX's column domain does not take nested paths
    column = check.column
    if isinstance(check, NotNull):
        return gxe.ExpectColumnValuesToNotBeNull(column=column, **common)
    if not check.allow_null:
        return None  # GX skips nulls, where this check counts them as failed
    if isinstance(check, InSet):
        return gxe.ExpectColumnValuesToBeInSet(
            column=column, value_set=list(check.values), **common
        )
    if isinstance(check, LengthEquals):
        return gxe.ExpectColumnValueLengthsToEqual(column=column, value=check.length, **common)
    if isinstance(check, MatchesRegex):
        return gxe.ExpectColumnValuesToMatchRegex(column=column, regex=check.pattern, **common)
    if isinstance(check, Between):
        return gxe.ExpectColumnValuesToBeBetween(
            column=column, min_value=check.min_value, max_value=check.max_value, **common
        )
    if isinstance(check, NotAfter):
        return gxe.ExpectColumnValuesToBeBetween(column=column, max_value=check.limit(), **common)
    return None


def gx_expectation(table: str, rule: Expectation) -> GxExpectation:
    """The GX expectation for `rule`: native where one agrees with it, SQL otherwise.

    Raises:
        InvalidExpectationError: the predicate is a Python function that is not a
            `contracts.checks` check, so it has no SQL form GX could run.
    """
    common: dict[str, Any] = {
        "meta": {"rule": rule.name, "table": table, "action": rule.action},
        "notes": f"Contract rule `{rule.name}` ({rule.action}): {rule.description}.",
    }
    predicate = rule.predicate
    if isinstance(predicate, Check):
        native = _native(predicate, **common)
        if native is not None:
            return native
        sql = predicate.sql
    elif isinstance(predicate, str):
        sql = predicate
    else:
        raise InvalidExpectationError(
            f"Rule '{rule.name}' of table {table} is a Python function that is not a "
            "contracts.checks check, so Great Expectations cannot run it: write its predicate "
            "as SQL or build it from contracts.checks."
        )
    return gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=unexpected_rows_query(sql),
        description=f"{rule.name} ({rule.action}): {rule.description}; null counts as failed",
        **common,
    )


def build_suite(table: str, rules: Sequence[Expectation]) -> gx.ExpectationSuite:
    """A GX suite named after `table` with one expectation per rule, in rule order."""
    suite = gx.ExpectationSuite(name=table)
    for rule in rules:
        suite.add_expectation(gx_expectation(table, rule))
    if len(suite.expectations) != len(rules):
        raise InvalidExpectationError(
            f"Two rules of table {table} give the same GX expectation; merge them into one rule."
        )
    return suite


def _context(docs_dir: Path | None) -> Any:
    """An in-memory GX context, without progress bars; a Data Docs site in `docs_dir` if given."""
    sites: dict[str, Any] = {}
    if docs_dir is not None:
        sites[SITE_NAME] = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir.resolve()),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=sites,
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _unexpected(result: Any) -> int:
    outcome: Mapping[str, Any] = result.result or {}
    if "unexpected_count" in outcome:
        return int(outcome["unexpected_count"])
    if "observed_value" in outcome:
        return int(outcome["observed_value"])
    info = result.exception_info or {}
    raise InvalidExpectationError(
        f"Great Expectations could not evaluate {result.expectation_config.meta}: "
        f"{info.get('exception_message', 'no result')}"
    )


def validate(
    frames: Mapping[str, DataFrame],
    rules_by_table: Mapping[str, Sequence[Expectation]],
    *,
    docs_dir: Path | None = None,
    persist: bool = False,
) -> GxReport:
    """Validate each table's frame with the GX suite built from its rules.

    Args:
        frames: the rows to validate, per table.
        rules_by_table: the rules per table; every table of `frames` needs an entry.
        docs_dir: where to build GX Data Docs (`index.html`); none when None.
        persist: let GX cache each frame while it computes its metrics (GX's own default);
            the frames are uncached again afterwards.

    Returns:
        Per table and rule: GX's verdict and unexpected row count.
    """
    context = _context(docs_dir)
    datasource = context.data_sources.add_spark(DATASOURCE_NAME, persist=persist)
    for frame in frames.values():
        # GX would otherwise query through the process's default session, where the temporary
        # view of a frame from another session (one per scenario thread) does not exist.
        datasource._spark = frame.sparkSession
        break
    results: list[GxRuleResult] = []
    try:
        for table, frame in frames.items():
            rules = rules_by_table[table]
            suite = context.suites.add(build_suite(table, rules))
            batch = datasource.add_dataframe_asset(table).add_batch_definition_whole_dataframe(
                table
            )
            definition = context.validation_definitions.add(
                gx.ValidationDefinition(name=table, data=batch, suite=suite)
            )
            outcome = definition.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY")
            actions = {rule.name: rule.action for rule in rules}
            for result in outcome.results:
                rule_name = result.expectation_config.meta["rule"]
                results.append(
                    GxRuleResult(
                        table=table,
                        rule=rule_name,
                        action=actions[rule_name],
                        expectation_type=result.expectation_config.type,
                        success=bool(result.success),
                        unexpected=_unexpected(result),
                    )
                )
    finally:
        for frame in frames.values():
            if persist:
                frame.unpersist()
            frame.sparkSession.catalog.dropTempView(GX_BATCH_VIEW)
    docs_index = None
    if docs_dir is not None:
        context.build_data_docs(site_names=[SITE_NAME])
        docs_index = docs_dir.resolve() / "index.html"
    order = {table: index for index, table in enumerate(frames)}
    results.sort(key=lambda result: order[result.table])
    return GxReport(tuple(results), docs_index)
