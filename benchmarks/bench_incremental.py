"""Incremental runs: a run costs what its new data costs, and a run with nothing new costs nothing.

* `incremental_onto_history`: 10k new events (the next day) onto a warehouse that already
  holds a history of events, judged against `incremental_onto_empty`, the same 10k onto an
  empty warehouse, in the same session. Both run `run_pipeline` with the rules of
  `contracts.rules`. A ratio near 1 means the history adds nothing to a run.
* Whole processes, as a user runs them (judged by wall time: their CPU is spent in child
  processes), against `spark_start_stop`, a process that starts and stops a SparkSession with
  Delta: `process_noop` (`clickstream run` with nothing new, which starts no JVM), and at the
  full size `process_first_run` (2,000 events on an empty warehouse) and `process_incremental`
  (10k events onto those 2,000), and `process_end_to_end` (1M events) against
  `process_plain_spark`, the plain-Spark reference as a script.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.harness import Reference, Workload, benchmark_key, fresh, measure, rounds
from benchmarks.profiles import SEED, Profile
from benchmarks.workloads import cached_landing
from contracts import rules
from pipeline import table_names
from pipeline.config import JAR_CACHE_ENV, PII_KEY_ENV, PiiKey, subprocess_environment
from pipeline.run import runner
from pipeline.storage import tables
from scenarios import generator

NEW_EVENTS = 10_000
NEW_SEED = SEED + 1
PROJECT = Path(__file__).resolve().parents[1]


def _new_events(cache_dir: Path) -> Path:
    """The 10k new events of the next day, one file (events only: no new user changes)."""
    target = cache_dir / "landing" / f"next-day-{NEW_EVENTS}-s{NEW_SEED}"
    if not target.is_dir():
        partial = target.with_name(f".{target.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        generator.write_landing(
            partial,
            events=NEW_EVENTS,
            seed=NEW_SEED,
            files=1,
            start=generator.DEFAULT_START + timedelta(days=1),
        )
        shutil.rmtree(partial / table_names.USER_CHANGES_DIR)
        partial.rename(target)
    [path] = (target / table_names.EVENTS_DIR).glob("*.json")
    return path


def _run(spark: SparkSession, landing: Path, warehouse: Path, pii_key: PiiKey) -> None:
    runner.run_pipeline(
        spark,
        landing=landing,
        warehouse=warehouse,
        pii_key=pii_key,
        expectations=rules.expectations(),
    )


@contextmanager
def _delivered(new_file: Path, landing: Path) -> Iterator[None]:
    """`new_file` lands in `landing/events` for the duration, then leaves it again."""
    target = landing / table_names.EVENTS_DIR / f"next-day-{new_file.name}"
    shutil.copyfile(new_file, target)
    try:
        yield
    finally:
        target.unlink()


def bench_incremental_onto_history(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    spark: SparkSession,
    pii_key: PiiKey,
    profile: Profile,
    cache_dir: Path,
    workdir: Path,
) -> None:
    """The 10k new events onto a warehouse holding `profile.history_events` events, paired
    with the reference `incremental_onto_empty`: the same 10k onto an empty warehouse."""
    history = profile.history_events
    landing = cached_landing(cache_dir, history, SEED)
    built = workdir / f"history-{history}"
    _run(spark, landing, built, pii_key)  # untimed: the history every round starts from
    new_file = _new_events(cache_dir)
    empty_landing = fresh(workdir / "onto-empty-landing")
    (empty_landing / table_names.EVENTS_DIR).mkdir()
    numbers = itertools.count()

    def copy_of_history() -> Path:
        copy = workdir / f"onto-history-{next(numbers)}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(built, copy, symlinks=True)
        return copy

    def onto(source: Path) -> Callable[[Path], Path]:
        def run(warehouse: Path) -> Path:
            _run(spark, source, warehouse, pii_key)
            return warehouse

        return run

    onto_empty = Workload(
        onto(empty_landing), lambda: fresh(workdir / f"onto-empty-{next(numbers)}")
    )
    with _delivered(new_file, landing), _delivered(new_file, empty_landing):
        warehouse = measure(
            benchmark,
            request,
            Workload(onto(landing), copy_of_history),
            reference=Reference(benchmark_key("incremental_onto_empty"), onto_empty),
            rounds=rounds(profile, "heavy"),
            warmup=1,
            items=NEW_EVENTS,
            unit="events",
            family="incremental",
            layer="incremental",
            history_events=history,
        )
    facts = tables.count_rows(spark, warehouse, table_names.GOLD_FACT_EVENTS)
    assert facts == tables.count_rows(spark, warehouse, table_names.SILVER_EVENTS)
    assert facts == tables.count_rows(spark, built, table_names.SILVER_EVENTS) + NEW_EVENTS


# ----------------------------------------------------------------------- whole processes


def _process(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a command to its end, from the project; fails the benchmark when it fails."""
    completed = subprocess.run(
        command, env=env, cwd=PROJECT, capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed


@pytest.fixture(scope="module")
def process_env(pii_key: PiiKey) -> dict[str, str]:
    """The environment of a user's shell: the PII key set, the project's jar cache."""
    return subprocess_environment(
        {
            PII_KEY_ENV: pii_key.reveal().decode(),
            JAR_CACHE_ENV: str(PROJECT / ".cache" / "jars"),
        }
    )


def _process_workload(
    command: Callable[[Path], list[str]], prepare: Callable[[], Path], env: dict[str, str]
) -> Workload[Path, Path]:
    """A whole process per round, run to its end from the project."""

    def run(directory: Path) -> Path:
        _process(command(directory), env)
        return directory

    return Workload(run, prepare)


CLICKSTREAM = [sys.executable, "-m", "clickstream"]


def _clickstream_run(landing: Path) -> Callable[[Path], list[str]]:
    """The command line of `clickstream run` over `landing`, for a given warehouse."""
    return lambda warehouse: [
        *CLICKSTREAM,
        "run",
        "--landing",
        str(landing),
        "--warehouse",
        str(warehouse),
    ]


START_STOP: list[str] = [
    sys.executable,
    "-c",
    "from pathlib import Path; from pipeline.config import spark_settings_from_environment; "
    "from pipeline.run.session import build_session; "
    "build_session(spark_settings_from_environment(Path('.cache/jars'))).stop()",
]
"""What every whole-process benchmark pays at least: Python, pyspark, a JVM with Delta."""


def _start_stop(env: dict[str, str], workdir: Path) -> Reference:
    """The reference of the whole-process benchmarks: start and stop a SparkSession with Delta."""
    return Reference(
        benchmark_key("spark_start_stop"),
        _process_workload(lambda _d: START_STOP, lambda: workdir, env),
    )


def bench_process_noop(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    spark: SparkSession,
    pii_key: PiiKey,
    profile: Profile,
    cache_dir: Path,
    workdir: Path,
    process_env: dict[str, str],
) -> None:
    """`clickstream run` as a process, with nothing new to process."""
    landing = cached_landing(cache_dir, 2_000, SEED)
    warehouse = workdir / "noop"
    runner.run_pipeline(spark, landing=landing, warehouse=warehouse, pii_key=pii_key)
    command = _clickstream_run(landing)(warehouse)
    measure(
        benchmark,
        request,
        _process_workload(lambda _d: command, lambda: warehouse, process_env),
        reference=_start_stop(process_env, workdir),
        rounds=rounds(profile, "heavy"),
        items=1,
        unit="processes",
        family="process",
        wall_only=True,
    )
    assert "nothing new since the last run" in _process(command, process_env).stderr


def _full_only(profile: Profile) -> None:
    if not profile.processes:
        pytest.skip("full size only: whole-process runs of the pipeline take a minute each")


def bench_process_first_run(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    profile: Profile,
    cache_dir: Path,
    workdir: Path,
    process_env: dict[str, str],
) -> None:
    """`clickstream run` as a process: 2,000 events (and their users) onto an empty warehouse."""
    _full_only(profile)
    landing = cached_landing(cache_dir, 2_000, SEED)
    numbers = itertools.count()
    warehouse = measure(
        benchmark,
        request,
        _process_workload(
            _clickstream_run(landing),
            lambda: fresh(workdir / f"first-run-{next(numbers)}"),
            process_env,
        ),
        reference=_start_stop(process_env, workdir),
        rounds=rounds(profile, "heavy"),
        items=2_000,
        unit="events",
        family="process",
        wall_only=True,
    )
    assert (warehouse / table_names.GOLD_FACT_EVENTS).is_dir()


def bench_process_incremental(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    spark: SparkSession,
    pii_key: PiiKey,
    profile: Profile,
    cache_dir: Path,
    workdir: Path,
    process_env: dict[str, str],
) -> None:
    """`clickstream run` as a process: 10k new events onto a warehouse of 2,000 events."""
    _full_only(profile)
    landing = cached_landing(cache_dir, 2_000, SEED)
    built = workdir / "process-incremental-base"
    _run(spark, landing, built, pii_key)
    new_file = _new_events(cache_dir)
    numbers = itertools.count()

    def prepare() -> Path:
        copy = workdir / f"process-incremental-{next(numbers)}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(built, copy, symlinks=True)
        return copy

    with _delivered(new_file, landing):
        warehouse = measure(
            benchmark,
            request,
            _process_workload(_clickstream_run(landing), prepare, process_env),
            reference=_start_stop(process_env, workdir),
            rounds=rounds(profile, "heavy"),
            items=NEW_EVENTS,
            unit="events",
            family="process",
            wall_only=True,
        )
    assert tables.count_rows(spark, warehouse, table_names.GOLD_FACT_EVENTS) == 2_000 + NEW_EVENTS


PLAIN_SPARK_SCRIPT = (
    "import sys; from pathlib import Path; "
    "from pipeline.config import spark_settings_from_environment; "
    "from pipeline.run.session import build_session; from benchmarks.workloads import plain_spark; "
    "spark = build_session(spark_settings_from_environment(Path('.cache/jars'))); "
    "plain_spark(spark, Path(sys.argv[1]), Path(sys.argv[2])); spark.stop()"
)


def bench_process_end_to_end(
    benchmark: BenchmarkFixture,
    request: pytest.FixtureRequest,
    profile: Profile,
    cache_dir: Path,
    workdir: Path,
    process_env: dict[str, str],
) -> None:
    """`clickstream run` as a process on 1M events, with its default rules."""
    _full_only(profile)
    events = max(profile.events)
    landing = cached_landing(cache_dir, events, SEED)
    numbers = itertools.count()
    plain = _process_workload(
        lambda out: [sys.executable, "-c", PLAIN_SPARK_SCRIPT, str(landing), str(out)],
        lambda: fresh(workdir / "process-plain-spark"),
        process_env,
    )
    warehouse = measure(
        benchmark,
        request,
        _process_workload(
            _clickstream_run(landing),
            lambda: fresh(workdir / f"process-end-to-end-{next(numbers)}"),
            process_env,
        ),
        reference=Reference(benchmark_key("process_plain_spark"), plain),
        rounds=rounds(profile, "heavy"),
        items=events,
        unit="events",
        family="process",
        wall_only=True,
    )
    assert (warehouse / table_names.GOLD_FACT_EVENTS).is_dir()
