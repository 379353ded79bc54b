"""Contract overhead: the silver query with and without the silver rules, and GX on the same rows.

Not a test (it needs a large landing directory and minutes): run it by hand, on an otherwise
idle machine, e.g. with `clickstream produce --out /tmp/landing --events 1000000 --files 8`:

    python benchmarks/contract_overhead.py --landing /tmp/landing --workdir /tmp/contract-bench

It builds `bronze_events` once, then times the real silver streaming query (one micro-batch of
every bronze row: watermark, deduplication, pseudonymization, Delta write) in fresh warehouses,
alternating: without rules (the Delta sink); with the silver rules as the runner enforces them
(one pass: counted by `observe` while writing, `fail` rules aborting the write); counting
first and then writing, without and with a cached batch (the designs the one pass replaced);
and the one pass with a rule that drops about 1 row in 4,096 (so the quarantine write's second
pass is paid). Wall time is noisy on a shared machine, so the JVM's CPU time is reported too.
Then it validates the silver rows with the GX suite built from the same rules, and with our
engine alone, for comparison. `--bronze-files N` times the bronze query instead, with and
without its rules. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import functools
import os
import secrets
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import orjson
from pyspark.sql import DataFrame

from contracts import gx_suites, rules
from pipeline import expectations, generator, runner
from pipeline.config import PiiKey, SparkSettings, spark_settings_from_environment
from pipeline.expectations import Expectation, ExpectationMetric
from pipeline.pseudonymize import key_frame
from pipeline.session import build_session

CLOCK_NOW = generator.DEFAULT_START + timedelta(days=2)


def _write_checked_before(
    evaluated: DataFrame,
    path: str,
    *,
    table: str,
    rules: Sequence[Expectation],
    query: str,
    batch_id: int,
    shape: Callable[[DataFrame], DataFrame] = expectations.without_evaluation,
    hidden_columns: Sequence[str] = (),
    cache: bool = False,
) -> list[ExpectationMetric]:
    """The alternative to the runner's single pass: count (and check `fail`) first, then write.

    With `cache`, the evaluated batch is persisted so the write reads it instead of
    recomputing the batch.
    """
    if cache:
        evaluated = evaluated.persist()
    try:
        metrics = expectations.measure(evaluated, table, rules)
        expectations.raise_on_failures(
            evaluated, table, rules, metrics, hidden_columns=hidden_columns
        )
        kept = shape(evaluated.where(expectations.kept_or_stop(rules)))
        runner._append_once(kept, path, query=query, batch_id=batch_id)
    finally:
        if cache:
            evaluated.unpersist()
    return metrics


STRATEGIES: dict[str, Callable[..., list[ExpectationMetric]]] = {
    "rules_one_pass": runner._write_checked,
    "rules_count_first": _write_checked_before,
    "rules_count_first_cached": functools.partial(_write_checked_before, cache=True),
}


VARIANTS = (
    "no_rules",
    "rules_one_pass",
    "rules_one_pass_log_exists",
    "rules_one_pass_no_log",
    "rules_count_first",
    "rules_count_first_cached",
    "rules_one_pass_with_drops",
)


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _jvm_cpu_seconds(pid: int) -> float:
    """User + system CPU time of the Spark JVM so far: steadier than wall time on a busy host."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _bronze_benchmark(landing: Path, workdir: Path, files: int, repeats: int) -> None:
    """Time the bronze query on `files` landing files: without rules, with, with no cache."""
    defaults = spark_settings_from_environment(Path(".cache") / "jars")
    spark = build_session(SparkSettings(remote=defaults.remote, jar_cache=defaults.jar_cache))
    jvm_pid = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())  # type: ignore[union-attr]
    subset = workdir / "landing"
    (subset / runner.EVENTS_DIR).mkdir(parents=True, exist_ok=True)
    for source in sorted((landing / runner.EVENTS_DIR).glob("*.json"))[:files]:
        link = subset / runner.EVENTS_DIR / source.name
        if not link.exists():
            link.symlink_to(source.resolve())
    contract = runner._Contract(rules.bronze_rules(), run_id="benchmark")
    figures: dict[str, list[tuple[float, float]]] = {}

    def bronze_run(variant: str, warehouse: Path) -> tuple[float, float]:
        shutil.rmtree(warehouse, ignore_errors=True)
        cpu_before = _jvm_cpu_seconds(jvm_pid)
        seconds = _timed(
            lambda: runner._run_bronze(
                spark,
                subset.resolve(),
                warehouse,
                runner.RunOptions(),
                None if variant == "no_rules" else contract,
            )
        )
        cpu_seconds = _jvm_cpu_seconds(jvm_pid) - cpu_before
        shutil.rmtree(warehouse, ignore_errors=True)
        return seconds, cpu_seconds

    bronze_run("no_rules", workdir / "bronze-warm-up")
    for repeat in range(repeats):
        for variant in ("no_rules", "rules_one_pass"):
            figures.setdefault(variant, []).append(
                bronze_run(variant, workdir / f"bronze-{variant}-{repeat}")
            )
            print(variant, repeat, *(round(x, 2) for x in figures[variant][-1]), flush=True)
    print(orjson.dumps({"bronze_files": files, "seconds_and_cpu": figures}).decode())
    spark.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--bronze-warehouse", type=Path, default=None, help="reuse this bronze_events (read only)"
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(VARIANTS),
        choices=VARIANTS,
        help="silver variants to time (no_rules and rules_one_pass are needed for the ratios)",
    )
    parser.add_argument(
        "--bronze-files",
        type=int,
        default=0,
        help="instead: time the bronze query with and without its rules on this many files",
    )
    args = parser.parse_args(argv)
    if args.bronze_files:
        _bronze_benchmark(args.landing, args.workdir, args.bronze_files, args.repeats)
        return

    defaults = spark_settings_from_environment(Path(".cache") / "jars")
    spark = build_session(SparkSettings(remote=defaults.remote, jar_cache=defaults.jar_cache))
    keys = key_frame(spark, PiiKey(secrets.token_bytes(32)))
    bronze_warehouse = args.bronze_warehouse or args.workdir / "bronze"
    if not (bronze_warehouse / runner.BRONZE_EVENTS).is_dir():
        runner._run_bronze(spark, args.landing.resolve(), bronze_warehouse, runner.RunOptions())
    bronze_rows = runner.count_rows(spark, bronze_warehouse, runner.BRONZE_EVENTS)
    silver_rules = rules.silver_rules(clock=lambda: CLOCK_NOW)
    contract = runner._Contract(silver_rules, run_id="benchmark")
    # About 1 row in 4,096 fails this drop rule: the quarantine write's extra pass, measured.
    few_dropped = Expectation(
        name="few_dropped",
        predicate="substr(event_id, 1, 3) <> 'fff'",
        action="drop",
        description="drops about 1 event in 4,096",
        passing_example={"event_id": "a"},
        failing_example={"event_id": "fff"},
    )
    with_drops = runner._Contract((*silver_rules, few_dropped), run_id="benchmark")
    real_write_checked = runner._write_checked
    real_log_metrics = runner._log_metrics
    jvm_pid = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())  # type: ignore[union-attr]
    cpu: dict[str, list[float]] = {}

    def silver_run(variant: str, repeat: int) -> float:
        warehouse = args.workdir / f"silver-{variant}-{repeat}"
        shutil.rmtree(warehouse, ignore_errors=True)
        warehouse.mkdir(parents=True)
        (warehouse / runner.BRONZE_EVENTS).symlink_to(
            (bronze_warehouse / runner.BRONZE_EVENTS).resolve()
        )
        runner._write_checked = STRATEGIES.get(variant, real_write_checked)  # type: ignore[assignment]
        if variant == "rules_one_pass_log_exists":  # a warehouse that has run before
            runner._log_metrics(spark, warehouse, [], run_id="setup", query="setup", batch_id=0)
        if variant == "rules_one_pass_no_log":  # what the log's Delta commit costs
            runner._log_metrics = lambda *_args, **_kwargs: None  # type: ignore[assignment]
        chosen = {"no_rules": None, "rules_one_pass_with_drops": with_drops}.get(variant, contract)
        cpu_before = _jvm_cpu_seconds(jvm_pid)
        seconds = _timed(
            lambda: runner._run_silver(spark, warehouse, keys, runner.RunOptions(), chosen)
        )
        runner._write_checked = real_write_checked
        runner._log_metrics = real_log_metrics
        if repeat >= 0:  # not the warm-up
            cpu.setdefault(variant, []).append(_jvm_cpu_seconds(jvm_pid) - cpu_before)
        placed = runner.count_rows(spark, warehouse, runner.SILVER_EVENTS) + runner.count_rows(
            spark, warehouse, runner.SILVER_QUARANTINE
        )
        assert placed == bronze_rows, (variant, placed, bronze_rows)
        if variant != "rules_one_pass":
            shutil.rmtree(warehouse)
        return seconds

    variants = tuple(args.variants)
    silver_run("no_rules", -1)  # warm-up: JIT, caches, the first Delta table
    times: dict[str, list[float]] = {variant: [] for variant in variants}
    for repeat in range(args.repeats):
        for variant in variants:
            times[variant].append(silver_run(variant, repeat))
            print(
                variant,
                repeat,
                round(times[variant][-1], 2),
                round(cpu[variant][-1], 2),
                flush=True,
            )

    checked = runner.read_table(
        spark, args.workdir / "silver-rules_one_pass-0", runner.SILVER_EVENTS
    )
    table_rules = {runner.SILVER_EVENTS: silver_rules}
    engine_seconds = [
        _timed(
            lambda: expectations.measure(
                expectations.evaluate(checked, silver_rules), runner.SILVER_EVENTS, silver_rules
            )
        )
        for _ in range(args.repeats)
    ]

    def gx_validate(persist: bool) -> float:
        return _timed(
            lambda: gx_suites.validate(
                {runner.SILVER_EVENTS: checked}, table_rules, persist=persist
            )
        )

    gx_seconds = {
        f"persist={persist}": [gx_validate(persist) for _ in range(2)] for persist in (False, True)
    }
    median = {variant: statistics.median(values) for variant, values in times.items()}
    cpu_median = {variant: statistics.median(cpu[variant]) for variant in variants}
    summary = {
        "rows": bronze_rows,
        "silver_rules": len(silver_rules),
        "silver_seconds": times,
        "silver_jvm_cpu_seconds": {variant: cpu[variant] for variant in variants},
        "wall_ratio_to_no_rules (median)": {
            variant: median[variant] / median["no_rules"] for variant in variants
        },
        "cpu_ratio_to_no_rules (median)": {
            variant: cpu_median[variant] / cpu_median["no_rules"] for variant in variants
        },
        "engine_only_seconds": engine_seconds,
        "gx_validate_seconds": gx_seconds,
    }
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    spark.stop()


if __name__ == "__main__":
    main()
