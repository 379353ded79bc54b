"""The scenario catalog: each scenario generates its input, runs the pipeline, checks invariants.

A scenario is a fault generator from `scenarios.faults` applied to clean generated events,
the pipeline runs it needs (one per delivery of files), and the invariants it must keep:
the common ones (the ledger, unique ids in silver, no clear PII) plus the fault's own.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from pyspark.sql import SparkSession

from contracts import rules
from contracts.report import write_reports
from pipeline import table_names
from pipeline.config import PiiKey
from pipeline.errors import ExpectationFailedError, PiiKeyMismatchError
from pipeline.privacy import erasure, key_rotation, landing_scrub
from pipeline.run import optimize, runner
from pipeline.storage import tables
from pipeline.transforms.expectations import Expectation
from pipeline.transforms.pseudonymize import key_frame, keyed_hash
from scenarios import faults, generator, invariants, scenario_invariants
from scenarios.faults import Injection
from scenarios.faults.contract import inject_contract_violations
from scenarios.invariants import Verdict

__all__ = [
    "CATALOG",
    "CLOCK_NOW",
    "NO_CONTRACTS",
    "PII_FREE_TABLES",
    "Outcome",
    "Scenario",
    "ScenarioContext",
    "common_checks",
    "deliver_and_run",
    "scenario_clock",
]

CLOCK_NOW = generator.DEFAULT_START + timedelta(days=1)
"""The scenarios' clock: the end of the generated window, so generated events are never in
the future whatever the machine's date, and injected future events always are."""


def scenario_clock() -> datetime:
    """The pinned clock of the contract rules in scenarios."""
    return CLOCK_NOW


PII_FREE_TABLES = (
    table_names.SILVER_EVENTS,
    table_names.SILVER_QUARANTINE,
    table_names.SILVER_LATE_EVENTS,
    *table_names.GOLD_TABLES,
)
"""Tables that must hold no personal data in clear."""


@dataclass(frozen=True)
class ScenarioContext:
    """What a scenario gets: a session, a private work directory, a seed and the PII key."""

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

    def clean_events(self) -> list[dict[str, Any]]:
        """The clean events every fault starts from."""
        return generator.generate_events(events=self.events, seed=self.seed)

    def user_changes(self) -> list[dict[str, Any]]:
        """The user CDC feed of the clean events' users (every scenario lands it)."""
        return generator.generate_user_changes(seed=self.seed, users=_users(self.events))

    def land_user_changes(self) -> None:
        """Write `user_changes` to the landing directory, as `clickstream produce` does."""
        path = self.landing / table_names.USER_CHANGES_DIR / f"user-changes-s{self.seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(orjson.dumps(change) + b"\n" for change in self.user_changes()))


def _users(events: int) -> int:
    """The user population `generator.generate_events` draws `events` from by default."""
    return max(10, events // 50)


@dataclass(frozen=True)
class Outcome:
    """What a scenario injected and the verdicts of its invariants."""

    injected: str
    verdicts: list[Verdict]


@dataclass(frozen=True)
class Scenario:
    """A named fault (or none), the runs it needs, and the invariants it must keep."""

    name: str
    description: str
    run: Callable[[ScenarioContext], Outcome]


def _user_pii(events: Sequence[Mapping[str, Any]]) -> set[str]:
    return {
        str(event["user"][field])
        for event in events
        if isinstance(event.get("user"), dict)
        for field in ("user_id", "email", "full_name", "ip")
        if event["user"].get(field) is not None
    }


def common_checks(
    context: ScenarioContext,
    injection: Injection,
    events: Sequence[Mapping[str, Any]],
    *,
    logged_records: int | None = None,
) -> list[Verdict]:
    """The invariants every scenario keeps, against what the injection says.

    `logged_records`: the input records the event log saw, when an erasure has since removed
    some from the tables (default: the injection's).
    """
    spark, warehouse = context.spark, context.warehouse
    duplicates = invariants.dropped_duplicates(spark, warehouse)
    return [
        *invariants.ledger(
            spark, warehouse, input_records=injection.records, duplicates=duplicates
        ),
        scenario_invariants.bronze_split(spark, warehouse, injection),
        *scenario_invariants.placement(spark, warehouse, injection),
        scenario_invariants.duplicate_count(duplicates, injection),
        invariants.unique_event_ids(spark, warehouse),
        invariants.no_clear_pii(spark, warehouse, PII_FREE_TABLES, _user_pii(events)),
        scenario_invariants.gold_equals_full_refresh(spark, warehouse),
        *invariants.event_log_reconciles(
            warehouse,
            input_records=injection.records if logged_records is None else logged_records,
        ),
    ]


NO_CONTRACTS: Mapping[str, Sequence[Expectation]] = {}
"""Fault scenarios run without contract rules: their generators predict where each event
lands from the pipeline's own rules only (a drifted `Event_Type` or a future event would also
be dropped by a contract rule). The contract scenarios exercise the rules."""


def deliver_and_run(
    context: ScenarioContext,
    injection: Injection,
    between: Callable[[ScenarioContext], None] | None = None,
) -> None:
    """Land each delivery's files, then run the pipeline once, as they would arrive.

    The user change feed lands with the first delivery, unless the injection brings its own.
    `between`: what happens to the warehouse after each run but the last.
    """
    (context.landing / table_names.EVENTS_DIR).mkdir(parents=True, exist_ok=True)
    if not any(f.folder == "user_changes" for d in injection.deliveries for f in d.files):
        context.land_user_changes()
    for index, delivery in enumerate(injection.deliveries):
        faults.write_delivery(context.landing, delivery)
        context.run_pipeline(NO_CONTRACTS)
        if between is not None and index < len(injection.deliveries) - 1:
            between(context)


def _fault_scenario(
    make: Callable[[list[dict[str, Any]], int], Injection],
    extra: Callable[[ScenarioContext, Injection], list[Verdict]] = lambda _c, _i: [],
) -> Callable[[ScenarioContext], Outcome]:
    def run(context: ScenarioContext) -> Outcome:
        events = context.clean_events()
        injection = make(events, context.seed)
        deliver_and_run(context, injection)
        verdicts = [*common_checks(context, injection, events), *extra(context, injection)]
        return Outcome(faults.describe(injection), verdicts)

    return run


def _clean_injection(events: list[dict[str, Any]], _seed: int) -> Injection:
    content = b"".join(orjson.dumps(event) + b"\n" for event in events)
    landing = faults.LandingFile("events", "clean-00000.json", content)
    ids = frozenset(str(event["event_id"]) for event in events)
    return Injection(
        deliveries=(faults.Delivery((landing,)),),
        injected={},
        records=len(events),
        description="Nothing: clean generated events in one file.",
        event_ids=ids,
        silver_ids=ids,
    )


def _baseline(context: ScenarioContext) -> Outcome:
    events = context.clean_events()
    injection = _clean_injection(events, context.seed)
    deliver_and_run(context, injection)
    rerun = context.run_pipeline(NO_CONTRACTS)
    added = {count.table: count.added for count in rerun.counts if count.added}
    return Outcome(
        "nothing: clean generated events, delivered once, then a second run over the same files",
        [
            *common_checks(context, injection, events),
            Verdict(
                "a second run over the same files adds no rows and does no Spark work",
                not added and rerun.skipped,
                f"rows added: {added}, skipped: {rerun.skipped}"
                if added or not rerun.skipped
                else "0 rows added to every table, no Spark work",
            ),
        ],
    )


def _optimized(context: ScenarioContext) -> Outcome:
    """Late data in two arrivals, the warehouse optimized (and vacuumed) between them."""
    events = context.clean_events()
    injection = faults.late_data(events, seed=context.seed)
    done: list[optimize.TableMaintenance] = []

    def optimize_warehouse(context: ScenarioContext) -> None:
        done.extend(optimize.optimize_warehouse(context.spark, context.warehouse, vacuum=True))

    deliver_and_run(context, injection, between=optimize_warehouse)
    compacted = [r for r in done if r.files_after < r.files_before]
    grown = [r.table for r in done if r.files_after > max(r.files_before, 1)]
    return Outcome(
        f"{faults.describe(injection)}; `clickstream optimize --vacuum` between the two runs",
        [
            *common_checks(context, injection, events),
            scenario_invariants.no_personal_statistics(context.warehouse),
            Verdict(
                "optimize compacted tables and left none with more files",
                bool(compacted) and not grown,
                f"{len(compacted)} tables compacted ("
                + ", ".join(f"{r.table} {r.files_before}->{r.files_after}" for r in compacted)
                + ")"
                + (f"; more files in {grown}" if grown else ""),
            ),
        ],
    )


def _drift_checks(context: ScenarioContext, injection: Injection) -> list[Verdict]:
    return [scenario_invariants.drift_recoverable(context.spark, context.warehouse, injection)]


def _clock_checks(context: ScenarioContext, injection: Injection) -> list[Verdict]:
    return [scenario_invariants.clock_instants(context.spark, context.warehouse, injection)]


def _duplicate_checks(context: ScenarioContext, injection: Injection) -> list[Verdict]:
    return [scenario_invariants.first_payload_kept(context.spark, context.warehouse, injection)]


def _pii_checks(context: ScenarioContext, injection: Injection) -> list[Verdict]:
    return [
        scenario_invariants.no_planted_pii(
            context.spark, context.warehouse, PII_FREE_TABLES, injection.pii_values
        )
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


def _contract_violations_checks(context: ScenarioContext) -> list[Verdict]:
    clean = generator.generate_events(events=context.events, seed=context.seed)
    injected = inject_contract_violations(clean, seed=context.seed, future_after=CLOCK_NOW)
    _write_events(context.landing / "events" / "events-contracts.json", injected.events)
    context.land_user_changes()
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
        _counts_verdict(f"{table}: failed counts in _event_log = injected", logged[table], counts)
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
    # Nothing is new for the rerun: it does no Spark work and logs no metrics either.
    added = {count.table: count.added for count in rerun.counts if count.added}
    return [
        *verdicts,
        *invariants.ledger(
            context.spark,
            context.warehouse,
            input_records=len(injected.events),
            duplicates=invariants.dropped_duplicates(context.spark, context.warehouse),
        ),
        *invariants.event_log_reconciles(context.warehouse, input_records=len(injected.events)),
        invariants.unique_event_ids(context.spark, context.warehouse),
        scenario_invariants.gold_equals_full_refresh(context.spark, context.warehouse),
        Verdict(
            "a second run over the same files adds no rows and does no Spark work",
            not added and rerun.skipped,
            f"rows added: {added}, skipped: {rerun.skipped}"
            if added or not rerun.skipped
            else "0 rows added to every table, no Spark work",
        ),
        Verdict(
            "reports written",
            reports.html_path.is_file() and reports.data_docs_index is not None,
            f"{reports.html_path}, {reports.data_docs_index}",
        ),
    ]


def _contract_fail_checks(context: ScenarioContext) -> list[Verdict]:
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
    context.land_user_changes()
    strict = dict(context.expectations)
    strict[table_names.SILVER_EVENTS] = tuple(
        replace(rule, action="fail") if rule.name == "event_type_known" else rule
        for rule in strict[table_names.SILVER_EVENTS]
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
    silver_rows = tables.count_rows(context.spark, context.warehouse, table_names.SILVER_EVENTS)
    quarantined = tables.count_rows(context.spark, context.warehouse, table_names.SILVER_QUARANTINE)
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
            relaxed.rows(table_names.SILVER_EVENTS) == len(injected.events) - 3,
            f"{relaxed.rows(table_names.SILVER_EVENTS):,} silver rows, "
            f"{relaxed.rows(table_names.SILVER_QUARANTINE):,} quarantined",
        ),
        *invariants.ledger(
            context.spark,
            context.warehouse,
            input_records=len(injected.events),
            duplicates=invariants.dropped_duplicates(context.spark, context.warehouse),
        ),
        *invariants.event_log_reconciles(context.warehouse, input_records=len(injected.events)),
        scenario_invariants.gold_equals_full_refresh(context.spark, context.warehouse),
    ]


def _out_of_order_changes(context: ScenarioContext) -> Outcome:
    events = context.clean_events()
    changes = context.user_changes()
    # The events land with the first run, so later runs' changes re-key facts already written.
    injection = faults.compose(
        _clean_injection(events, context.seed),
        faults.out_of_order_changes(changes, seed=context.seed),
    )
    deliver_and_run(context, injection)
    keys = key_frame(context.spark, context.pii_key)
    return Outcome(
        faults.describe(injection),
        [
            *common_checks(context, injection, events),
            *scenario_invariants.dimension_equals_batch(
                context.spark, context.warehouse, context.landing, keys
            ),
            invariants.no_clear_pii(
                context.spark,
                context.warehouse,
                PII_FREE_TABLES,
                {
                    str(change[field])
                    for change in changes
                    for field in ("user_id", "email", "full_name")
                    if change.get(field)
                },
            ),
        ],
    )


def _contract_violations(context: ScenarioContext) -> Outcome:
    return Outcome(
        "contract violations, each breaking one rule: unknown event types, missing user ids, "
        "future events, negative prices, zero quantities, malformed ids, unparseable times",
        _contract_violations_checks(context),
    )


def _contract_fail(context: ScenarioContext) -> Outcome:
    return Outcome(
        "3 events of an unknown type, with event_type_known made expect_or_fail",
        _contract_fail_checks(context),
    )


def _most_active_user(events: Sequence[Mapping[str, Any]]) -> str:
    users = Counter(
        str(event["user"]["user_id"])
        for event in events
        if isinstance(event.get("user"), dict) and event["user"].get("user_id")
    )
    return users.most_common(1)[0][0]


def _erasure_checks(context: ScenarioContext, person: str) -> list[Verdict]:
    """`forget --purge-now --include-landing` of one person, proven by the verifier."""
    result = erasure.forget(
        context.spark,
        landing=context.landing,
        warehouse=context.warehouse,
        pii_key=context.pii_key,
        user_id=person,
        purge_now=True,
        include_landing=True,
    )
    document = result.document
    verification = document["verification"]
    found = [f"{f['label']} in {f['path']}" for f in verification["findings"]]
    versions = sum(h["versions"] for h in verification["time_travel"].values())
    person_rows = document["rows_of_person"]
    before, after = document["rows_before"], document["rows_after"]
    off = {
        table: (before[table] - after[table], rows)
        for table, rows in person_rows.items()
        if table not in table_names.GOLD_TABLES and before[table] - after[table] != rows
    }
    lines = sum(entry["lines_removed"] for entry in document["landing"]["rewritten"])
    left = landing_scrub.scan_landing(context.landing, person)[1]
    return [
        Verdict(
            "after forget --purge-now --include-landing, no file and no earlier version holds "
            "the person",
            result.verified,
            f"read {verification['files_read']} files ({verification['files_by_kind']}) and "
            f"{versions} table versions: "
            + ("; ".join(found[:5]) or "nothing found")
            + f"; certificate {result.certificate.name}",
        ),
        Verdict(
            "every table lost exactly the person's rows (bronze, quarantines, silver, change log)",
            not off,
            f"(removed, the person's) where they differ: {off}"
            if off
            else ", ".join(f"{t} -{n}" for t, n in person_rows.items() if n),
        ),
        Verdict(
            "the landing files no longer hold the person's lines",
            lines > 0 and not left,
            f"{lines} lines removed from {len(document['landing']['rewritten'])} files; "
            f"{len(left)} files still holding the person",
        ),
    ]


def _rotation_checks(context: ScenarioContext, new_key: PiiKey) -> list[Verdict]:
    """`rotate-key --purge-now`: every pseudonym re-keyed, the joins intact, the old key out."""
    joined = scenario_invariants.facts_joining_a_user(context.spark, context.warehouse)
    result = key_rotation.rotate_key(
        context.spark,
        landing=context.landing,
        warehouse=context.warehouse,
        old_key=context.pii_key,
        new_key=new_key,
        purge_now=True,
    )
    bronze = tables.read_table(context.spark, context.warehouse, table_names.BRONZE_EVENTS)
    pairs = (
        tables.read_table(context.spark, context.warehouse, table_names.SILVER_EVENTS)
        .join(bronze.select("event_id", "user.user_id"), "event_id")
        .where("user_id IS NOT NULL")
        .select("user_id", "user_key")
        .distinct()
        .collect()
    )
    wrong = [row.user_id for row in pairs if row.user_key != keyed_hash(new_key, row.user_id)]
    rejoined = scenario_invariants.facts_joining_a_user(context.spark, context.warehouse)
    try:
        runner.run_pipeline(
            context.spark,
            landing=context.landing,
            warehouse=context.warehouse,
            pii_key=context.pii_key,
        )
        refusal = ""
    except PiiKeyMismatchError as error:
        refusal = str(error)
    return [
        Verdict(
            "after rotate-key --purge-now, no pseudonym made with the old key is in any file",
            not result.scan.findings and result.scan.files > 0,
            f"{result.pseudonyms} old pseudonyms searched in {result.scan.files} files: "
            f"{len(result.scan.findings)} found; {result.files_deleted} files vacuumed",
        ),
        Verdict(
            "silver's user keys are the new key's HMAC of the raw ids, and facts still join "
            "their user versions",
            bool(pairs) and not wrong and rejoined == joined,
            f"{len(pairs)} users checked, {len(wrong)} wrong; facts joining a user version: "
            f"{joined} before, {rejoined} after",
        ),
        Verdict(
            "a run with the retired key refuses",
            "retired" in refusal,
            refusal[:160] or "a run with the retired key was accepted",
        ),
    ]


def _privacy(context: ScenarioContext) -> Outcome:
    events = context.clean_events()
    deliver_and_run(context, _clean_injection(events, context.seed))
    person = _most_active_user(events)
    verdicts = _erasure_checks(context, person)
    new_key = PiiKey(secrets.token_hex(32).encode())
    verdicts += _rotation_checks(context, new_key)
    kept = [e for e in events if (e.get("user") or {}).get("user_id") != person]
    rotated = replace(context, pii_key=new_key)
    verdicts += common_checks(
        rotated, _clean_injection(kept, context.seed), kept, logged_records=len(events)
    )
    erased = len(events) - len(kept)
    return Outcome(
        f"nothing injected: the most active user's {erased} events and their profile erased "
        "with forget --purge-now --include-landing, then the key rotated with --purge-now",
        verdicts,
    )


CATALOG: tuple[Scenario, ...] = (
    Scenario(
        "baseline",
        "Clean generated clickstream, run twice: nothing lost, duplicated or leaked.",
        _baseline,
    ),
    # The longest scenario starts early: two run at once, and it would otherwise end last.
    Scenario(
        "privacy",
        "A person erased from every table and landing file, then the PII key rotated: the "
        "verifier reads every file and version and finds neither, everyone else is unchanged, "
        "the joins hold and the retired key is refused.",
        _privacy,
    ),
    Scenario(
        "late_data",
        "Late copies arrive in a second run: within the watermark they are kept and "
        "deduplicated, beyond it they are accounted as late.",
        _fault_scenario(lambda events, seed: faults.late_data(events, seed=seed)),
    ),
    Scenario(
        "schema_drift",
        "Added, removed, retyped and case-renamed fields and a schema_version bump end in typed "
        "columns or _rescued_data, recoverably.",
        _fault_scenario(lambda events, seed: faults.schema_drift(events, seed=seed), _drift_checks),
    ),
    Scenario(
        "corrupt_records",
        "Truncated, invalid, non-object, binary, BOM, CRLF, empty-file and >1 MB lines plus the "
        "JSON test suite: every line lands in exactly one bronze table.",
        _fault_scenario(lambda events, seed: faults.corrupt_records(events, seed=seed)),
    ),
    Scenario(
        "duplicates",
        "Exact replays, the same event_id with another payload, a file delivered twice under "
        "another name: silver keeps one row per event_id, the first.",
        _fault_scenario(
            lambda events, seed: faults.duplicates(events, seed=seed), _duplicate_checks
        ),
    ),
    Scenario(
        "pii_in_unexpected_places",
        "E-mails in URL query strings (also percent-encoded), titles, referrers and unknown "
        "free-text fields never reach silver in clear.",
        _fault_scenario(
            lambda events, seed: faults.pii_in_unexpected_places(events, seed=seed), _pii_checks
        ),
    ),
    Scenario(
        "clock_skew",
        "Future events, other zones and other timestamp formats reach silver at their true "
        "instant; zone-less timestamps are quarantined.",
        _fault_scenario(lambda events, seed: faults.clock_skew(events, seed=seed), _clock_checks),
    ),
    Scenario(
        "out_of_order_changes",
        "User CDC changes arrive shuffled over several runs after the events, with deletes, "
        "re-inserts and ties: the SCD2 user dimension equals the batch result over all "
        "changes, and the facts re-keyed by late changes equal a full refresh.",
        _out_of_order_changes,
    ),
    Scenario(
        "contract_violations",
        "Injected contract violations: counted per rule by us and by GX, dropped rows "
        "quarantined, reports written.",
        _contract_violations,
    ),
    Scenario(
        "contract_fail",
        "An expect_or_fail rule stops the run; nothing of the batch is written.",
        _contract_fail,
    ),
    Scenario(
        "optimized",
        "Late data in two arrivals with `clickstream optimize --vacuum` between them: the "
        "invariants hold on the compacted, clustered warehouse, with no statistics on personal "
        "columns.",
        _optimized,
    ),
    Scenario(
        "burst",
        "A burst at ten times the normal rate: nothing lost or duplicated.",
        _fault_scenario(lambda events, seed: faults.burst(events, seed=seed)),
    ),
)
