"""The scenario catalog: each scenario generates its input, runs the pipeline, and checks.

A scenario is a fault generator from `scenarios.faults` applied to clean generated events,
the pipeline runs it needs (one per delivery of files), and the invariants it must keep:
the common ones (the ledger, unique ids in silver, no clear PII) plus the fault's own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pyspark.sql import SparkSession

from pipeline import generator, runner
from pipeline.config import PiiKey
from scenarios import checks, faults, invariants
from scenarios.faults import Injection
from scenarios.invariants import Verdict

SILVER_TABLES = (runner.SILVER_EVENTS, runner.SILVER_QUARANTINE, runner.SILVER_LATE_EVENTS)


@dataclass(frozen=True)
class ScenarioContext:
    """What a scenario gets: a session, a private work directory, a seed and the PII key."""

    spark: SparkSession
    workdir: Path
    seed: int
    pii_key: PiiKey
    events: int

    @property
    def landing(self) -> Path:
        """Where the scenario writes its input files."""
        return self.workdir / "landing"

    @property
    def warehouse(self) -> Path:
        """Where the pipeline writes its tables."""
        return self.workdir / "warehouse"

    def run_pipeline(self) -> runner.RunSummary:
        """One incremental run of the real pipeline over the landing directory."""
        return runner.run_pipeline(
            self.spark, landing=self.landing, warehouse=self.warehouse, pii_key=self.pii_key
        )

    def clean_events(self) -> list[dict[str, Any]]:
        """The clean events every fault starts from."""
        return generator.generate_events(events=self.events, seed=self.seed)


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
    context: ScenarioContext, injection: Injection, events: Sequence[Mapping[str, Any]]
) -> list[Verdict]:
    """The invariants every scenario keeps, against what the injection says."""
    spark, warehouse = context.spark, context.warehouse
    return [
        *invariants.ledger(spark, warehouse, input_records=injection.records),
        checks.bronze_split(spark, warehouse, injection),
        *checks.placement(spark, warehouse, injection),
        checks.duplicate_count(invariants.dropped_duplicates(spark, warehouse), injection),
        invariants.unique_event_ids(spark, warehouse),
        invariants.no_clear_pii(spark, warehouse, SILVER_TABLES, _user_pii(events)),
    ]


def deliver_and_run(context: ScenarioContext, injection: Injection) -> None:
    """Land each delivery's files, then run the pipeline once, as they would arrive."""
    (context.landing / runner.EVENTS_DIR).mkdir(parents=True, exist_ok=True)
    for delivery in injection.deliveries:
        faults.write_delivery(context.landing, delivery)
        context.run_pipeline()


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
    rerun = context.run_pipeline()
    added = {count.table: count.added for count in rerun.counts if count.added}
    return Outcome(
        "nothing: clean generated events, delivered once, then a second run over the same files",
        [
            *common_checks(context, injection, events),
            Verdict(
                "a second run over the same files adds no rows",
                not added,
                f"rows added: {added}" if added else "0 rows added to every table",
            ),
        ],
    )


def _drift_checks(context: ScenarioContext, injection: Injection) -> list[Verdict]:
    return [checks.drift_recoverable(context.spark, context.warehouse, injection)]


def _clock_checks(context: ScenarioContext, injection: Injection) -> list[Verdict]:
    return [checks.clock_instants(context.spark, context.warehouse, injection)]


def _duplicate_checks(context: ScenarioContext, injection: Injection) -> list[Verdict]:
    return [checks.first_payload_kept(context.spark, context.warehouse, injection)]


def _pii_checks(context: ScenarioContext, injection: Injection) -> list[Verdict]:
    return [
        checks.no_planted_pii(context.spark, context.warehouse, SILVER_TABLES, injection.pii_values)
    ]


CATALOG: tuple[Scenario, ...] = (
    Scenario(
        "baseline",
        "Clean generated clickstream, run twice: nothing lost, duplicated or leaked.",
        _baseline,
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
        "burst",
        "A burst at ten times the normal rate: nothing lost or duplicated.",
        _fault_scenario(lambda events, seed: faults.burst(events, seed=seed)),
    ),
)
