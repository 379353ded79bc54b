"""The scenario catalog: each scenario generates its input, runs the pipeline, and checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from pyspark.sql import SparkSession

from contracts import rules
from contracts.report import write_reports
from pipeline import generator, runner
from pipeline.config import PiiKey
from pipeline.errors import ExpectationFailedError
from pipeline.expectations import Expectation
from scenarios import invariants
from scenarios.faults import inject_contract_violations
from scenarios.invariants import Verdict

CLOCK_NOW = generator.DEFAULT_START + timedelta(days=1)
"""The scenarios' clock: the end of the generated window, so generated events are never in
the future whatever the machine's date, and injected future events always are."""


def scenario_clock() -> datetime:
    """The pinned clock of the contract rules in scenarios."""
    return CLOCK_NOW


@dataclass(frozen=True)
class ScenarioContext:
    """What a scenario gets: a session, a private work directory, a seed, the PII key, and the
    directory for the reports it writes."""

    spark: SparkSession
    workdir: Path
    seed: int
    pii_key: PiiKey
    events: int
    report_dir: Path

    @property
    def landing(self) -> Path:
        """Where the scenario writes its input files."""
        return self.workdir / "landing"

    @property
    def warehouse(self) -> Path:
        """Where the pipeline writes its tables."""
        return self.workdir / "warehouse"

    @property
    def expectations(self) -> dict[str, tuple[Expectation, ...]]:
        """The contract rules every scenario runs with, on the pinned clock."""
        return rules.expectations(clock=scenario_clock)

    def run_pipeline(
        self, expectations: Mapping[str, Sequence[Expectation]] | None = None
    ) -> runner.RunSummary:
        """One incremental run of the real pipeline over the landing directory.

        Args:
            expectations: the rules to enforce; the contract rules (`expectations`) if None.
        """
        return runner.run_pipeline(
            self.spark,
            landing=self.landing,
            warehouse=self.warehouse,
            pii_key=self.pii_key,
            expectations=self.expectations if expectations is None else expectations,
        )


@dataclass(frozen=True)
class Scenario:
    """A named fault (or none), the runs it needs, and the invariants it must keep."""

    name: str
    description: str
    check: Callable[[ScenarioContext], list[Verdict]]


def _pii_values(event_files: tuple[Path, ...]) -> set[str]:
    values: set[str] = set()
    for path in event_files:
        for line in path.read_bytes().splitlines():
            user = orjson.loads(line)["user"]
            values.update(str(user[field]) for field in ("user_id", "email", "full_name", "ip"))
    return values


def _baseline(context: ScenarioContext) -> list[Verdict]:
    landing = generator.write_landing(context.landing, events=context.events, seed=context.seed)
    context.run_pipeline()
    rerun = context.run_pipeline()
    silver_tables = (runner.SILVER_EVENTS, runner.SILVER_QUARANTINE, runner.SILVER_LATE_EVENTS)
    added = {count.table: count.added for count in rerun.counts if count.added}
    return [
        *invariants.ledger(
            context.spark,
            context.warehouse,
            input_records=invariants.non_blank_lines(landing.event_files),
        ),
        invariants.unique_event_ids(context.spark, context.warehouse),
        invariants.no_clear_pii(
            context.spark, context.warehouse, silver_tables, _pii_values(landing.event_files)
        ),
        Verdict(
            "a second run over the same files adds no rows",
            not added,
            f"rows added: {added}" if added else "0 rows added to every table",
        ),
    ]


def _write_events(path: Path, events: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in events))


def _counts_verdict(name: str, found: Mapping[str, int], expected: Mapping[str, int]) -> Verdict:
    wrong = {rule: (found.get(rule, 0), count) for rule, count in expected.items()}
    wrong = {rule: pair for rule, pair in wrong.items() if pair[0] != pair[1]}
    return Verdict(
        name,
        not wrong,
        f"found (found, injected): {wrong}"
        if wrong
        else ", ".join(f"{rule} {count}" for rule, count in expected.items()),
    )


def _contract_violations(context: ScenarioContext) -> list[Verdict]:
    clean = generator.generate_events(events=context.events, seed=context.seed)
    injected = inject_contract_violations(clean, seed=context.seed, future_after=CLOCK_NOW)
    _write_events(context.landing / "events" / "events-contracts.json", injected.events)
    first = context.run_pipeline()
    rerun = context.run_pipeline()
    expected = {
        table: {rule.name: injected.failed.get(table, {}).get(rule.name, 0) for rule in table_rules}
        for table, table_rules in context.expectations.items()
    }
    reports = write_reports(
        context.spark,
        context.warehouse,
        context.expectations,
        context.report_dir / "contracts",
        run_id=first.run_id,
    )
    logged: dict[str, dict[str, int]] = {}
    for rule in reports.quarantine.rules:
        logged.setdefault(rule.table, {})[rule.rule] = rule.failed
    assert reports.gx is not None
    verdicts = [
        _counts_verdict(
            f"{table}: failed counts in _expectations_log = injected", logged[table], counts
        )
        for table, counts in expected.items()
    ]
    verdicts += [
        _counts_verdict(
            f"{table}: Great Expectations unexpected counts = injected",
            reports.gx.unexpected_by_rule(table),
            counts,
        )
        for table, counts in expected.items()
    ]
    added = {count.table: count.added for count in rerun.counts if count.added}
    return [
        *verdicts,
        *invariants.ledger(context.spark, context.warehouse, input_records=len(injected.events)),
        invariants.unique_event_ids(context.spark, context.warehouse),
        Verdict(
            "a second run over the same files adds no rows (nor metrics)",
            not added,
            f"rows added: {added}" if added else "0 rows added to every table",
        ),
        Verdict(
            "reports written",
            reports.html_path.is_file() and reports.data_docs_index is not None,
            f"{reports.html_path}, {reports.data_docs_index}",
        ),
    ]


def _contract_fail(context: ScenarioContext) -> list[Verdict]:
    clean = generator.generate_events(events=context.events, seed=context.seed)
    injected = inject_contract_violations(
        clean,
        seed=context.seed,
        future_after=CLOCK_NOW,
        **dict.fromkeys(
            (
                "missing_user_ids",
                "future_events",
                "negative_prices",
                "zero_quantities",
                "malformed_event_ids",
                "unparseable_timestamps",
                "copies_of_dropped",
            ),
            0,
        ),
    )
    _write_events(context.landing / "events" / "events-contracts.json", injected.events)
    strict = dict(context.expectations)
    strict[runner.SILVER_EVENTS] = tuple(
        replace(rule, action="fail") if rule.name == "event_type_known" else rule
        for rule in strict[runner.SILVER_EVENTS]
    )
    try:
        context.run_pipeline(strict)
    except ExpectationFailedError as error:
        stopped = Verdict(
            "an expect_or_fail rule stops the run with a readable error",
            error.rule == "event_type_known" and error.failed == 3,
            str(error).splitlines()[1].strip(),
        )
    else:
        stopped = Verdict(
            "an expect_or_fail rule stops the run with a readable error", False, "no error"
        )
    silver_rows = runner.count_rows(context.spark, context.warehouse, runner.SILVER_EVENTS)
    quarantined = runner.count_rows(context.spark, context.warehouse, runner.SILVER_QUARANTINE)
    relaxed = context.run_pipeline()
    return [
        stopped,
        Verdict(
            "nothing of the failing batch is written",
            silver_rows == 0 and quarantined == 0,
            f"{silver_rows} silver rows, {quarantined} quarantined after the failure",
        ),
        Verdict(
            "with the rule relaxed, the next run writes the batch exactly once",
            relaxed.rows(runner.SILVER_EVENTS) == len(injected.events) - 3,
            f"{relaxed.rows(runner.SILVER_EVENTS):,} silver rows, "
            f"{relaxed.rows(runner.SILVER_QUARANTINE):,} quarantined",
        ),
        *invariants.ledger(context.spark, context.warehouse, input_records=len(injected.events)),
    ]


CATALOG: tuple[Scenario, ...] = (
    Scenario(
        name="baseline",
        description="Clean generated clickstream, run twice: nothing lost, duplicated or leaked.",
        check=_baseline,
    ),
    Scenario(
        name="contract_violations",
        description="Injected contract violations: counted per rule by us and by GX, "
        "dropped rows quarantined, reports written.",
        check=_contract_violations,
    ),
    Scenario(
        name="contract_fail",
        description="An expect_or_fail rule stops the run; nothing of the batch is written.",
        check=_contract_fail,
    ),
)
