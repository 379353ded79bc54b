"""The scenario catalog: each scenario generates its input, runs the pipeline, and checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
from pyspark.sql import SparkSession

from pipeline import generator, runner
from pipeline.config import PiiKey
from scenarios import invariants
from scenarios.invariants import Verdict


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


@dataclass(frozen=True)
class Scenario:
    """A named fault (or none), the runs it needs, and the invariants it must keep."""

    name: str
    description: str
    injected: str
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


CATALOG: tuple[Scenario, ...] = (
    Scenario(
        name="baseline",
        description="Clean generated clickstream, run twice: nothing lost, duplicated or leaked.",
        injected="nothing: clean generated events, delivered once, processed by two runs",
        check=_baseline,
    ),
)
