"""Benchmark sizes: `smoke` (the CI run, a few minutes) and `full` (10k, 100k and 1M events)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PROFILES", "SEED", "SLOWDOWN_LAYERS", "STEADY_JIT", "Profile"]

SLOWDOWN_LAYERS = ("bronze", "silver", "gold", "scd2", "contracts", "generator", "incremental")
"""The layers `--inject-slowdown` can slow down, to check that the verdict catches it."""


STEADY_JIT = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
"""The smoke size's JVMs: the quick compiler only, and a collector without helper threads.

The verdict judges CPU seconds, and a JVM's include its compiler's and collector's threads.
With the default optimizing compiler (C2) and G1, how much of that work a round pays depends
on when each process happens to compile what: silver's ratio per process moved 5.98x-7.89x
(28%) in three processes, and 4.96x-5.11x (3%) in three with these options. At the full size,
where the optimizing compiler pays off, the JVMs keep their defaults.
"""


@dataclass(frozen=True)
class Profile:
    """What one size of the suite measures, and how many rounds each benchmark gets.

    Attributes:
        name: `smoke` or `full`; also the baseline file's name.
        events: generated events per throughput benchmark (one benchmark per value).
        dimension_rows: rows of the user dimension the SCD2 merge-cost benchmarks merge into.
        batch_rows: changes per merged batch.
        histories: random change histories the SCD2 correctness benchmark checks.
        history_batches: the out-of-order batches those histories arrive in.
        reference_rounds: timed rounds of the references timed on their own for the report
            (plain Spark, orjson, DuckDB, the plain MERGE).
        rounds: paired rounds of the quick benchmarks (the generator, the rules engine).
        spark_rounds: paired rounds of the Spark benchmarks that take seconds each.
        heavy_rounds: paired rounds of the costliest (gold, the incremental run, processes).
            At the smoke size every judged benchmark gets at least 4, so that the verdict's
            rank test against a baseline of 3 runs can reach its significance level.
        warmup_rounds: untimed rounds first: the JVM compiles each new code path as it runs
            it, and a layer's first rounds in a session take up to twice the CPU.
        end_to_end: also time `run_pipeline` as a whole (the layers add up to it).
        bronze_contract: also time bronze with its rules (it costs no measurable CPU).
        drop_contract: also time silver with a rule that drops rows (the quarantine pass).
        history_events: the events already in the warehouse the incremental run lands on.
        processes: also time `clickstream run` as whole processes (a minute a round each).
        jvm_options: Java options of every JVM the suites start (`JAVA_TOOL_OPTIONS`).
    """

    name: str
    events: tuple[int, ...]
    dimension_rows: tuple[int, ...]
    batch_rows: tuple[int, ...]
    histories: int
    history_batches: int
    reference_rounds: int
    rounds: int
    spark_rounds: int
    heavy_rounds: int
    warmup_rounds: int
    end_to_end: bool
    bronze_contract: bool
    drop_contract: bool
    history_events: int
    processes: bool
    jvm_options: str = ""


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        events=(10_000,),
        dimension_rows=(10_000,),
        batch_rows=(1_000,),
        histories=200,
        history_batches=2,
        reference_rounds=5,
        rounds=7,
        spark_rounds=5,
        heavy_rounds=4,
        warmup_rounds=1,
        end_to_end=False,
        bronze_contract=False,
        drop_contract=False,
        history_events=20_000,
        processes=False,
        jvm_options=STEADY_JIT,
    ),
    "full": Profile(
        name="full",
        events=(10_000, 100_000, 1_000_000),
        dimension_rows=(10_000, 100_000, 1_000_000),
        batch_rows=(1_000, 10_000),
        histories=5_000,
        history_batches=8,
        reference_rounds=3,
        rounds=3,
        spark_rounds=2,
        heavy_rounds=2,
        warmup_rounds=0,  # sizes grow: 10k and 100k warm the JVM up for 1M
        end_to_end=True,
        bronze_contract=True,
        drop_contract=True,
        history_events=1_000_000,
        processes=True,
    ),
}

SEED = 7
"""The generator seed of every benchmark input: inputs are cached on disk by (size, seed)."""
