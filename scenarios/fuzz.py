"""Fuzz mode: random combinations of faults, drawn and shrunk by Hypothesis.

Each example draws a seed, a number of clean events and how many faults to combine;
`scenarios.faults.fuzz` turns the seed into a combination with random knobs. The pipeline runs
every delivery and the common invariants are checked. When one fails, Hypothesis shrinks the
example (fewer events, fewer faults, a smaller seed) and the report gives the smallest failing
case with the command line that reproduces it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from itertools import count

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from scenarios import faults, generator
from scenarios.catalog import Outcome, ScenarioContext, common_checks, deliver_and_run
from scenarios.invariants import Verdict

MIN_EVENTS = 200
MAX_EVENTS = 1_000


@dataclass(frozen=True)
class FuzzCase:
    """One drawn combination: reproducible from these three numbers."""

    seed: int
    events: int
    max_faults: int

    def command(self) -> str:
        """How to run this exact case again."""
        return f"nox -s scenarios -- --fuzz-case {self.seed},{self.events},{self.max_faults}"


class InvariantBrokenError(AssertionError):
    """Raised inside a fuzz example when an invariant fails, carrying the verdicts."""

    def __init__(self, case: FuzzCase, description: str, verdicts: list[Verdict]) -> None:
        failed = [verdict for verdict in verdicts if not verdict.passed]
        super().__init__(f"{case}: {[verdict.name for verdict in failed]}")
        self.case = case
        self.description = description
        self.verdicts = verdicts


def run_case(context: ScenarioContext, case: FuzzCase) -> Outcome:
    """Generate one combination, run the pipeline over it and check the common invariants."""
    events = generator.generate_events(events=case.events, seed=case.seed)
    changes = generator.generate_user_changes(seed=case.seed, users=max(10, case.events // 50))
    injection = faults.fuzz(events, changes, seed=case.seed, max_faults=case.max_faults)
    deliver_and_run(context, injection)
    return Outcome(faults.describe(injection), common_checks(context, injection, events))


def fuzz(context: ScenarioContext, *, examples: int) -> Outcome:
    """Run `examples` random combinations; on a failure, shrink it and report the smallest."""
    numbering = count()
    failures: list[InvariantBrokenError] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(
        seed=st.integers(min_value=0, max_value=10_000).map(lambda s: s + context.seed),
        events=st.integers(min_value=MIN_EVENTS, max_value=MAX_EVENTS),
        max_faults=st.integers(min_value=1, max_value=3),
    )
    def example(seed: int, events: int, max_faults: int) -> None:
        case = FuzzCase(seed, events, max_faults)
        workdir = context.workdir / f"example-{next(numbering)}"
        try:
            outcome = run_case(replace(context, workdir=workdir), case)
        except faults.IncompatibleFaultsError:
            return  # this draw cannot be combined; not a pipeline failure
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if not all(verdict.passed for verdict in outcome.verdicts):
            failure = InvariantBrokenError(case, outcome.injected, outcome.verdicts)
            failures.append(failure)
            raise failure

    try:
        example()
    except InvariantBrokenError:
        smallest = failures[-1]
        return Outcome(
            f"smallest failing case {smallest.case} (reproduce: {smallest.case.command()}): "
            f"{smallest.description}",
            smallest.verdicts,
        )
    return Outcome(
        f"{examples} random combinations of faults (seeds from {context.seed}), all held",
        [Verdict(f"{examples} fuzz examples keep every invariant", True, "no failure found")],
    )
