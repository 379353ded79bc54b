"""How every benchmark is measured: paired rounds of the subject and its reference, interleaved.

A benchmark is a `Workload` (prepare untimed, then run) and, when it is judged, the
`Reference` it is divided by. `measure` runs them in alternating order, reference then
subject, then subject then reference (ABBA), so that a neighbour's burst of work or a slow
drift of the machine hits both sides of a pair alike. Each pair gives one ratio; the verdict
(`benchmarks.verdict`) judges the distribution of those ratios, not one number.

When the run is judged (`python -m benchmarks` passes the baseline), a benchmark that looks
slower after its rounds (`verdict.looks_slower`) gets as many rounds again, at once, in the
same session (`verdict.Judge.more_rounds`: a first batch's regression is confirmed by a
second; a move not yet significant gets up to `verdict.BATCHES` batches): the JVM is then as
warm as it was for the first rounds and for the baseline's, and the verdict judges all of
them together.

Each round records the CPU seconds (this process and the Spark JVM, `benchmarks.cpu`) and the
wall seconds of both sides in `benchmark.extra_info["rounds"]`, with what `benchmarks.verdict`
needs to read the result back: its key, reference, layer, items and unit. A whole-process
benchmark records wall seconds as its CPU (its CPU is spent in child processes).

`--inject-slowdown LAYER[:STRENGTH]` makes every benchmark of that layer spend STRENGTH times
its own CPU time again, busy in this process, inside the timed part of each round: a
regression of a known size, for checking that the verdict catches it.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pytest

from benchmarks.cpu import cpu_seconds
from benchmarks.profiles import SLOWDOWN_LAYERS, Profile
from benchmarks.verdict import Judge, Result, Round

if TYPE_CHECKING:
    from pytest_benchmark.fixture import BenchmarkFixture

__all__ = [
    "DEFAULT_SLOWDOWN",
    "JUDGE",
    "Reference",
    "Slowdown",
    "Workload",
    "benchmark_key",
    "fresh",
    "item_key",
    "measure",
    "nothing",
    "parse_slowdown",
    "rounds",
    "slowdown_option",
]

JUDGE = pytest.StashKey["Judge"]()
"""Where the suite keeps the `Judge` of a judged run (set by `benchmarks/conftest.py`)."""

A = TypeVar("A")
T = TypeVar("T")

DEFAULT_SLOWDOWN = 0.5
"""`--inject-slowdown LAYER` without a strength: the layer costs 50% more."""


def nothing() -> None:
    """`prepare` for a workload that needs nothing prepared."""


@dataclass(frozen=True)
class Workload(Generic[A, T]):
    """What a round times: `run(prepare())`, with `prepare` untimed."""

    run: Callable[[A], T]
    prepare: Callable[[], A]


@dataclass(frozen=True)
class Reference:
    """The benchmark a subject is divided by, timed beside it in every round."""

    key: str
    workload: Workload[Any, Any]


@dataclass(frozen=True)
class Slowdown:
    """`--inject-slowdown`: the layer whose benchmarks are slowed, and by how much."""

    layer: str
    strength: float

    def __str__(self) -> str:
        """As `--inject-slowdown` takes it: `silver:0.25`."""
        return f"{self.layer}:{self.strength:g}"


def slowdown_option(text: str) -> Slowdown:
    """`parse_slowdown` for an argument parser: its message becomes the usage error."""
    try:
        return parse_slowdown(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def parse_slowdown(text: str) -> Slowdown:
    """`silver` or `silver:0.25` as a `Slowdown`.

    Raises:
        ValueError: an unknown layer or a strength that is not a positive number; the message
            gives the form expected.
    """
    layer, _, strength = text.partition(":")
    try:
        value = float(strength) if strength else DEFAULT_SLOWDOWN
    except ValueError:
        value = -1.0
    if layer not in SLOWDOWN_LAYERS or not value > 0:
        raise ValueError(
            f"expected LAYER or LAYER:STRENGTH with LAYER one of {', '.join(SLOWDOWN_LAYERS)} "
            f"and STRENGTH a positive fraction of the layer's cost (0.25: 25% slower), "
            f"got {text!r}"
        )
    return Slowdown(layer, value)


def benchmark_key(name: str, **params: int) -> str:
    """A benchmark's name in results, baselines and reports: `silver[events=10000]`."""
    return f"{name}[{','.join(f'{k}={v}' for k, v in params.items())}]" if params else name


def item_key(item: pytest.Item) -> str:
    """The key of the benchmark a test item records: `bench_<name>` with its sizes."""
    name = getattr(item, "originalname", item.name).removeprefix("bench_")
    callspec = getattr(item, "callspec", None)
    params: dict[str, int] = dict(callspec.params) if callspec is not None else {}
    return benchmark_key(name, **params)


def rounds(profile: Profile, cost: str = "quick") -> int:
    """Timed rounds for a benchmark of this profile: `reference`, `quick`, `spark` or `heavy`."""
    by_cost = {
        "reference": profile.reference_rounds,
        "quick": profile.rounds,
        "spark": profile.spark_rounds,
        "heavy": profile.heavy_rounds,
    }
    return by_cost[cost]


def fresh(directory: Path) -> Path:
    """An empty directory at `directory`."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def _burn(seconds: float) -> tuple[float, float]:
    """Spend `seconds` of CPU time in this process (the injected slowdown); returns the CPU
    seconds and wall seconds it took."""
    started_cpu, started_wall = time.process_time(), time.perf_counter()
    while time.process_time() < started_cpu + seconds:
        pass
    return time.process_time() - started_cpu, time.perf_counter() - started_wall


def _time(workload: Workload[Any, T], *, wall_only: bool, slower: float) -> tuple[T, float, float]:
    """One untimed prepare, one timed run: the result, its CPU seconds and wall seconds.

    A slowdown adds exactly `slower` times the run's cost: the burn's own CPU and wall
    seconds, not what the JVM does meanwhile. (Counting the whole window instead also counted
    the JVM's work after the query returned, its collections and compilations, which a run
    without the burn leaves to the next window: +25% measured as about +40% for silver.)
    """
    argument = workload.prepare()
    started_cpu, started_wall = cpu_seconds(), time.perf_counter()
    result = workload.run(argument)
    cpu, wall = cpu_seconds() - started_cpu, time.perf_counter() - started_wall
    if wall_only:
        cpu = wall
    if slower:
        burned_cpu, burned_wall = _burn(slower * cpu)
        cpu, wall = cpu + (burned_wall if wall_only else burned_cpu), wall + burned_wall
    return result, cpu, wall


def _slowdown_strength(config: pytest.Config, layer: str | None) -> float:
    """How much `--inject-slowdown` slows a benchmark of `layer`: 0.0 unless it is that layer."""
    slowdown: Slowdown | None = config.getoption("--inject-slowdown")
    return slowdown.strength if slowdown is not None and slowdown.layer == layer else 0.0


class _Pairs(Generic[T]):
    """A benchmark's rounds as they are timed: its subject, each round paired with one of its
    reference when it has one; `recorded` holds the seconds of every timed round."""

    def __init__(
        self,
        subject: Workload[Any, T],
        reference: Reference | None,
        *,
        wall_only: bool,
        slower: float,
    ) -> None:
        self.subject = subject
        self.reference = reference
        self.wall_only = wall_only
        self.slower = slower
        self.recorded: list[dict[str, float]] = []
        self._results: list[T] = []

    @property
    def last(self) -> T:
        """The subject's result in the last round, warm-up or timed."""
        return self._results[0]

    def warm_up(self, count: int) -> None:
        """`count` untimed rounds of both sides (the JVM compiles each new code path)."""
        for _ in range(count):
            self._subject_round()
            if self.reference is not None:
                self._reference_round()

    def time_rounds(self, count: int) -> None:
        """`count` timed rounds; in a pair, the reference goes first in every other round (ABBA)."""
        for number in range(count):
            if self.reference is None:
                cpu, wall = self._subject_round()
                self.recorded.append({"cpu": cpu, "wall": wall})
                continue
            if number % 2 == 0:
                reference_cpu, reference_wall = self._reference_round()
                cpu, wall = self._subject_round()
            else:
                cpu, wall = self._subject_round()
                reference_cpu, reference_wall = self._reference_round()
            self.recorded.append(
                {
                    "cpu": cpu,
                    "wall": wall,
                    "reference_cpu": reference_cpu,
                    "reference_wall": reference_wall,
                }
            )

    def confirm(self, judge: Judge, without_rounds: Result, count: int) -> None:
        """Another batch of `count` timed rounds for as long as `judge` asks for one, judging
        the benchmark (`without_rounds`, given its rounds) on all of its rounds so far."""
        batches = 1
        while judge.more_rounds(replace(without_rounds, rounds=self._rounds()), batches):
            self.time_rounds(count)
            batches += 1

    def _rounds(self) -> tuple[Round, ...]:
        return tuple(Round(**round_) for round_ in self.recorded)

    def _subject_round(self) -> tuple[float, float]:
        result, cpu, wall = _time(self.subject, wall_only=self.wall_only, slower=self.slower)
        self._results[:] = [result]
        return cpu, wall

    def _reference_round(self) -> tuple[float, float]:
        assert self.reference is not None
        _, cpu, wall = _time(self.reference.workload, wall_only=self.wall_only, slower=0.0)
        return cpu, wall


def measure(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    subject: Workload[A, T],
    *,
    reference: Reference | None,
    rounds: int,
    warmup: int = 0,
    items: int,
    unit: str,
    family: str,
    layer: str | None = None,
    versus: str | None = None,
    wall_only: bool = False,
    **details: Any,
) -> T:
    """Time `rounds` rounds of `subject`, each paired with a round of `reference`; returns the
    last round's result of the subject, for the benchmark's correctness checks.

    Args:
        benchmark: the pytest-benchmark fixture (it times the whole; the rounds are ours).
        request: the test's request, whose name and sizes make the key.
        subject: what is measured.
        reference: what it is divided by, timed in the same rounds; None for a benchmark
            that is not judged (a reference itself, or a correctness benchmark).
        rounds: timed pairs.
        warmup: untimed rounds of both first (the JVM compiles each new code path).
        items: what one round processed (events, changes, rows), for throughput.
        unit: what `items` counts.
        family: the plot it belongs to (`throughput`, `contracts`, `scd2_merge`, ...).
        layer: the pipeline layer it exercises (`--inject-slowdown` slows its benchmarks).
        versus: the key of a benchmark it is also read against in the report, not judged.
        wall_only: a whole-process benchmark: its wall seconds stand for its CPU.
        **details: further figures for the report.
    """
    judge: Judge | None = request.config.stash.get(JUDGE, None)
    slower = _slowdown_strength(request.config, layer)
    key = item_key(request.node)
    callspec = getattr(request.node, "callspec", None)
    pairs = _Pairs(subject, reference, wall_only=wall_only, slower=slower)

    def all_rounds() -> None:
        pairs.warm_up(warmup)
        pairs.time_rounds(rounds)
        if judge is not None and reference is not None:
            without_rounds = Result(key, key, family, reference.key, items, unit, (), layer)
            pairs.confirm(judge, without_rounds, rounds)

    benchmark.pedantic(all_rounds, rounds=1, iterations=1)  # type: ignore[no-untyped-call]
    benchmark.extra_info.update(
        key=key,
        name=getattr(request.node, "originalname", key).removeprefix("bench_"),
        reference=reference.key if reference is not None else None,
        versus=versus,
        layer=layer,
        items=items,
        unit=unit,
        family=family,
        params=dict(callspec.params) if callspec is not None else {},
        rounds=pairs.recorded,
        slowed=slower,
        measured_again=len(pairs.recorded) - rounds,
        **details,
    )
    return pairs.last
