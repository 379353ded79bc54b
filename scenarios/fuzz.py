"""Fuzz mode: combinations of faults drawn by Hypothesis strategies, and shrunk by structure.

Each example draws a `FuzzCase`: how many clean events, their seed, and one to three faults,
each with its seed and knobs (`scenarios.faults.strategies.fault_draws`). The pipeline runs
every delivery and the common invariants are checked. When one fails, Hypothesis shrinks the
case part by part (fewer faults, fewer events, each knob towards no fault) and the report
gives the smallest failing case with the command line that reproduces it exactly.
"""

from __future__ import annotations

import json
import shlex
import shutil
from dataclasses import dataclass, replace
from itertools import count
from typing import Any

from hypothesis import Phase, given, reject, settings
from hypothesis import strategies as st

from scenarios import faults, generator
from scenarios.catalog import Outcome, ScenarioContext, common_checks, deliver_and_run
from scenarios.faults.strategies import fault_draws
from scenarios.invariants import Verdict

__all__ = ["FuzzCase", "InvariantBrokenError", "fuzz", "fuzz_cases", "run_case"]

MIN_EVENTS = 200
MAX_EVENTS = 1_000


@dataclass(frozen=True)
class FuzzCase:
    """One drawn combination: the clean events' size and seed, and the faults with their knobs."""

    seed: int
    events: int
    faults: tuple[faults.FaultDraw, ...]

    def to_json(self) -> str:
        """The case as `--fuzz-case` reads it back (floats round-trip exactly through JSON)."""
        return json.dumps(
            {
                "seed": self.seed,
                "events": self.events,
                "faults": [
                    {"fault": draw.fault, "seed": draw.seed, **dict(draw.knobs)}
                    for draw in self.faults
                ],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> FuzzCase:
        """The case `to_json` wrote.

        Raises:
            ValueError: The text is not such a case; the message says what is expected.
        """
        try:
            document: dict[str, Any] = json.loads(text)
            draws = tuple(
                faults.FaultDraw(
                    entry["fault"],
                    int(entry["seed"]),
                    tuple(sorted((k, v) for k, v in entry.items() if k not in {"fault", "seed"})),
                )
                for entry in document["faults"]
            )
            return cls(int(document["seed"]), int(document["events"]), draws)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(
                "expected a fuzz case as a failing --fuzz run prints it: "
                '{"seed":S,"events":N,"faults":[{"fault":NAME,"seed":S,KNOB:VALUE,...}]}, '
                f"got {text!r} ({exc})"
            ) from exc

    def command(self) -> str:
        """How to run this exact case again."""
        return f"nox -s scenarios -- --fuzz-case {shlex.quote(self.to_json())}"

    def __str__(self) -> str:
        described = ", ".join(
            f"{draw.fault}({', '.join(_knob(name, value) for name, value in draw.knobs)})"
            for draw in self.faults
        )
        return f"{self.events} events (seed {self.seed}) with {described}"


def _knob(name: str, value: object) -> str:
    return f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}"


def fuzz_cases(base_seed: int = 0) -> st.SearchStrategy[FuzzCase]:
    """Cases of `MIN_EVENTS` to `MAX_EVENTS` clean events from seeds at `base_seed` and up."""
    return st.builds(
        FuzzCase,
        seed=st.integers(min_value=0, max_value=10_000).map(lambda s: s + base_seed),
        events=st.integers(min_value=MIN_EVENTS, max_value=MAX_EVENTS),
        faults=fault_draws(),
    )


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
    injection = faults.combination(events, changes, case.faults)
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
        print_blob=False,
    )
    @given(case=fuzz_cases(context.seed))
    def example(case: FuzzCase) -> None:
        workdir = context.workdir / f"example-{next(numbering)}"
        try:
            outcome = run_case(replace(context, workdir=workdir), case)
        except faults.IncompatibleFaultsError:
            reject()  # this draw cannot be combined; not a pipeline failure
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
