"""The quarantine report: per table and rule, the event log's counts (`_event_log`) and samples.

Counts are the pipeline's own (summed over the log, for one run or all). Samples are a few
failing rows, shown with the row's key and the columns the rule reads, never with PII in
clear: silver rows are already pseudonymized, and the bronze columns that can hold PII
(`user`, `_rescued_data`, the raw line) are left out. Drop-rule samples come from the table's
quarantine, warn-rule samples from the table itself; `fail` rules stop the run, so no failing
row is stored (the error showed its samples).

`checked_rows` rebuilds what a table's rules were evaluated on (the table plus the rows its
rules dropped), so that Great Expectations can validate the same rows and be compared.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from contracts.html import render
from pipeline import table_names
from pipeline.clock import utc_now_text
from pipeline.observe import event_log
from pipeline.run.bronze_stage import BRONZE_HIDDEN_COLUMNS
from pipeline.run.enforcement import dim_user_view
from pipeline.run.gold_stage import user_dimension
from pipeline.storage import tables
from pipeline.transforms import expectations as engine
from pipeline.transforms.expectations import Expectation
from pipeline.transforms.schemas import EVENT_SCHEMA

if TYPE_CHECKING:
    from contracts.gx_suites import GxReport

__all__ = [
    "DATA_DOCS_DIR",
    "HIDDEN_COLUMNS",
    "HTML_NAME",
    "JSON_NAME",
    "QUARANTINES",
    "ContractReports",
    "QuarantineReport",
    "RuleReport",
    "checked_rows",
    "quarantine_report",
    "write_report",
    "write_reports",
]

QUARANTINES: dict[str, str] = {
    table_names.BRONZE_EVENTS: table_names.BRONZE_QUARANTINE,
    table_names.SILVER_EVENTS: table_names.SILVER_QUARANTINE,
}
HIDDEN_COLUMNS: dict[str, tuple[str, ...]] = {table_names.BRONZE_EVENTS: BRONZE_HIDDEN_COLUMNS}
JSON_NAME = "quarantine.json"
HTML_NAME = "quarantine.html"


@dataclass(frozen=True)
class RuleReport:
    """One rule of one table: what the pipeline counted, what GX found, and failing samples."""

    table: str
    rule: str
    action: str
    description: str
    passed: int
    failed: int
    gx_unexpected: int | None
    samples: tuple[dict[str, object], ...]


@dataclass(frozen=True)
class QuarantineReport:
    """Every rule's figures for one warehouse, for one run (`run_id`) or all runs (None)."""

    warehouse: str
    run_id: str | None
    generated_at: str
    rules: tuple[RuleReport, ...]

    def to_json(self) -> bytes:
        """The report as indented JSON."""
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2, default=str)

    def to_html(self) -> str:
        """The report as a self-contained HTML page."""
        return render("contracts", "quarantine.html.j2", report=self)


def _rule_quarantine(spark: SparkSession, warehouse: Path, table: str) -> DataFrame | None:
    """Rows `table`'s rules dropped, in the table's columns plus `failed_expectations`.

    Bronze keeps a dropped line as raw text, so it is parsed again with the event schema
    (its `_rescued_data` is left null). None when nothing was dropped by rule yet.
    """
    try:
        quarantine = tables.read_table(spark, warehouse, QUARANTINES[table])
    except AnalysisException:
        return None
    if engine.QUARANTINE_RULES_COLUMN not in quarantine.columns:
        return None
    dropped = quarantine.where(F.size(engine.QUARANTINE_RULES_COLUMN) > 0)
    if table != table_names.BRONZE_EVENTS:
        return dropped.drop(engine.QUARANTINE_REASON_COLUMN)
    typed = F.from_json(F.col("raw_line"), EVENT_SCHEMA)
    return dropped.select(
        *[typed[field.name].alias(field.name) for field in EVENT_SCHEMA.fields],
        F.lit(None).cast("string").alias("_rescued_data"),
        "_source_file",
        "_ingested_at",
        engine.QUARANTINE_RULES_COLUMN,
    )


def checked_rows(spark: SparkSession, warehouse: Path, table: str) -> DataFrame:
    """The rows `table`'s rules were evaluated on: the table and the rows they dropped."""
    rows = tables.read_table(spark, warehouse, table)
    dropped = _rule_quarantine(spark, warehouse, table) if table in QUARANTINES else None
    if dropped is None:
        return rows
    return rows.unionByName(dropped.drop(engine.QUARANTINE_RULES_COLUMN))


@contextmanager
def _dim_user_view(spark: SparkSession, warehouse: Path) -> Iterator[None]:
    """`gold_dim_user` registered under its name for the gold rules that read it."""
    with dim_user_view(user_dimension(spark, warehouse)):
        yield


def _counts(
    spark: SparkSession, warehouse: Path, run_id: str | None
) -> dict[tuple[str, str], tuple[int, int]]:
    """Passed and failed per (table, rule): summed over one run's batches, or over all runs.

    Every table's rules count the rows of each batch once: the new rows of bronze, silver
    and the facts, and the versions of the users each batch of changes touched in
    `gold_dim_user` (a version counts again when its user changes again).
    """
    if not tables.table_exists(warehouse, table_names.EVENT_LOG):
        return {}
    log = event_log.expectation_metrics(spark, warehouse)
    if run_id is not None:
        log = log.where(F.col("update_id") == run_id)
    totals = log.groupBy("table", "rule").agg(
        F.sum("passed").alias("passed"), F.sum("failed").alias("failed")
    )
    return {(row.table, row.rule): (row.passed, row.failed) for row in totals.collect()}


def _samples(
    spark: SparkSession, warehouse: Path, table: str, rule: Expectation, limit: int
) -> tuple[dict[str, object], ...]:
    hidden = HIDDEN_COLUMNS.get(table, ())
    if rule.action == "drop" and table in QUARANTINES:
        dropped = _rule_quarantine(spark, warehouse, table)
        if dropped is None:
            return ()
        failing = dropped.where(F.array_contains(engine.QUARANTINE_RULES_COLUMN, rule.name))
        source_columns = [c for c in failing.columns if c != engine.QUARANTINE_RULES_COLUMN]
        shown = engine.sample_columns(source_columns, rule, hidden_columns=hidden)
        rows = failing.select(*[F.col(c).alias(c) for c in shown]).limit(limit).collect()
        return tuple(row.asDict() for row in rows)
    if rule.action == "warn":
        evaluated = engine.evaluate(tables.read_table(spark, warehouse, table), (rule,))
        return engine.failing_samples(evaluated, rule, hidden_columns=hidden, limit=limit)
    return ()


def quarantine_report(
    spark: SparkSession,
    warehouse: Path,
    rules_by_table: Mapping[str, Sequence[Expectation]],
    *,
    run_id: str | None = None,
    samples: int = 3,
    gx: GxReport | None = None,
) -> QuarantineReport:
    """Collect counts, GX's counts (when given) and samples for every rule.

    Args:
        spark: the session.
        warehouse: the warehouse directory.
        rules_by_table: the rules that were enforced.
        run_id: only this run's metrics; all runs when None.
        samples: at most this many failing rows per rule.
        gx: a `contracts.gx_suites.validate` result to show beside our counts.
    """
    counts = _counts(spark, warehouse, run_id)
    reports: list[RuleReport] = []
    for table, table_rules in rules_by_table.items():
        gx_counts = gx.unexpected_by_rule(table) if gx is not None else {}
        for rule in table_rules:
            passed, failed = counts.get((table, rule.name), (0, 0))
            reports.append(
                RuleReport(
                    table=table,
                    rule=rule.name,
                    action=rule.action,
                    description=rule.description,
                    passed=passed,
                    failed=failed,
                    gx_unexpected=gx_counts.get(rule.name),
                    samples=_samples(spark, warehouse, table, rule, samples) if failed else (),
                )
            )
    return QuarantineReport(
        warehouse=str(warehouse),
        run_id=run_id,
        generated_at=utc_now_text(),
        rules=tuple(reports),
    )


def write_report(report: QuarantineReport, report_dir: Path) -> tuple[Path, Path]:
    """Write `quarantine.json` and `quarantine.html` into `report_dir`; return both paths."""
    report_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = report_dir / JSON_NAME, report_dir / HTML_NAME
    json_path.write_bytes(report.to_json())
    html_path.write_text(report.to_html(), encoding="utf-8")
    return json_path, html_path


@dataclass(frozen=True)
class ContractReports:
    """Where `write_reports` put each report, and the reports themselves."""

    quarantine: QuarantineReport
    json_path: Path
    html_path: Path
    gx: GxReport | None
    data_docs_index: Path | None


DATA_DOCS_DIR = "data_docs"


def write_reports(
    spark: SparkSession,
    warehouse: Path,
    rules_by_table: Mapping[str, Sequence[Expectation]],
    report_dir: Path,
    *,
    run_id: str | None = None,
    with_gx: bool = True,
) -> ContractReports:
    """Validate the checked rows with GX (Data Docs in `report_dir/data_docs/`), then write
    the quarantine report (`quarantine.json`, `quarantine.html`) beside it.

    GX validates what the rules were evaluated on (`checked_rows`: each table and the rows
    its rules dropped), so its counts can be compared with the log's over all runs.
    """
    written = {
        table: table_rules
        for table, table_rules in rules_by_table.items()
        if tables.table_exists(warehouse, table) or table in QUARANTINES
    }
    with _dim_user_view(spark, warehouse):
        gx_report = None
        if with_gx:
            from contracts import gx_suites

            frames = {table: checked_rows(spark, warehouse, table) for table in written}
            gx_report = gx_suites.validate(frames, written, docs_dir=report_dir / DATA_DOCS_DIR)
        report = quarantine_report(spark, warehouse, rules_by_table, run_id=run_id, gx=gx_report)
    json_path, html_path = write_report(report, report_dir)
    return ContractReports(
        report, json_path, html_path, gx_report, gx_report.docs_index if gx_report else None
    )
