"""Does the warehouse stay fast after many small runs? `python -m benchmarks.decay`.

Builds a warehouse by `--runs` small runs of `--events` events each (one landing file and one
user change file per run, an hour apart), cached under `--cache-dir` and resumed when asked
for more runs; and a warehouse of the same landing files taken in one run. Then times, on
both, in alternating rounds on the same session (ratios many / one, medians):

* the next small run (the same new arrival taken by both; each then holds one run more);
* each BI query of `benchmarks.bi_queries`;
* `clickstream history`'s own work (reading the last ten updates of the event log);
* a Delta snapshot of each table (its log read and its files listed: a `LIMIT 1` read).

It prints each table's data files in both warehouses, and the ratios. Then data skipping:
on copies of the many-runs warehouse, `clickstream optimize` at Delta's default target file
size and at `SKIPPING_FILE_BYTES` (which cuts these small tables into as many files as a real
table's gigabytes would make), the files a point query on each clustered gold table's
clustering column reads, of the table's files, before and after. On demand, not in CI: the
build takes about ten seconds per run.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from pyspark.sql import SparkSession

from benchmarks.bi_queries import BI_QUERIES, bi_query, files_read
from pipeline import table_names
from pipeline.arguments import positive_int
from pipeline.config import PiiKey, pii_key_from_environment, spark_settings_from_environment
from pipeline.observe import event_log, history
from pipeline.run import optimize, run_state, runner
from pipeline.run.session import build_session, session_settings
from pipeline.storage import delta_log
from pipeline.transforms.gold import CLUSTERING
from scenarios import generator

__all__ = ["main"]

BUILT = "runs_built"
"""The file, in the cached many-runs folder, that says how many runs it holds."""
SKIPPING_FILE_BYTES = 16 * 1024
"""The OPTIMIZE target file size of the skipping measure's second copy (Delta's default is
1 GB, which makes each of these tables one file)."""


def _arrive(landing: Path, run: int, events: int) -> None:
    generator.write_landing(
        landing,
        events=events,
        seed=1000 + run,
        users=max(events // 10, 1),
        files=1,
        start=generator.DEFAULT_START + timedelta(hours=run),
        duration=timedelta(hours=1),
    )


def _arrived(landing: Path, run: int) -> bool:
    return any((landing / "events").glob(f"events-s{1000 + run}-*"))


def _build_many(spark: SparkSession, root: Path, runs: int, events: int, key: PiiKey) -> None:
    marker = root / BUILT
    done = int(marker.read_text()) if marker.is_file() else 0
    started = time.perf_counter()
    for run in range(done, runs):
        if not _arrived(root / "landing", run):  # a build stopped mid-run has its files
            _arrive(root / "landing", run, events)
        runner.run_pipeline(
            spark, landing=root / "landing", warehouse=root / "warehouse", pii_key=key
        )
        marker.write_text(str(run + 1))
        if (run + 1) % 10 == 0 or run + 1 == runs:
            elapsed = time.perf_counter() - started
            print(f"  built {run + 1} of {runs} runs ({elapsed:.0f} s)", flush=True)


def _runs_built(root: Path) -> int:
    return int((root / BUILT).read_text()) if (root / BUILT).is_file() else 0


def _build_one(spark: SparkSession, many: Path, root: Path, key: PiiKey) -> None:
    """The same landing files as `many`, taken in one run (rebuilt when `many` has more)."""
    if _runs_built(root) == _runs_built(many):
        return
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(many / "landing", root / "landing")
    runner.run_pipeline(spark, landing=root / "landing", warehouse=root / "warehouse", pii_key=key)
    (root / BUILT).write_text(str(_runs_built(many)))


def _seconds(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _next_runs(
    spark: SparkSession, many: Path, one: Path, events: int, key: PiiKey
) -> dict[str, float]:
    """The same small arrival taken by both warehouses (each then holds one run more): the
    seconds of each run."""
    arrival = _runs_built(many)
    seconds = {}
    for name, root in (("many", many), ("one", one)):
        _arrive(root / "landing", arrival, events)
        seconds[name] = _seconds(
            lambda r=root: runner.run_pipeline(  # type: ignore[misc]
                spark, landing=r / "landing", warehouse=r / "warehouse", pii_key=key
            )
        )
        (root / BUILT).write_text(str(arrival + 1))
    return seconds


def _measures(spark: SparkSession, warehouse: Path, day: str) -> dict[str, Callable[[], object]]:
    found: dict[str, Callable[[], object]] = {
        f"BI query {table}": (
            lambda t=table: spark.sql(bi_query(t, warehouse, day)).collect()  # type: ignore[misc]
        )
        for table in BI_QUERIES
    }
    found["history (own work)"] = lambda: history.updates(
        event_log.read_events(warehouse, last_updates=10)
    )
    for table in table_names.TABLES:
        path = str(warehouse / table)
        found[f"snapshot {table}"] = (
            lambda p=path: spark.read.format("delta").load(p).limit(1).collect()  # type: ignore[misc]
        )
    return found


def _files(warehouse: Path) -> dict[str, int]:
    return {
        table: (delta_log.live_files(warehouse / table) or (0, 0))[0]
        for table in (*run_state.VERSIONED_TABLES, table_names.EVENT_LOG)
    }


def _point_query_files(spark: SparkSession, warehouse: Path) -> dict[str, tuple[int, int]]:
    """Per clustered gold table: the files a point query on its clustering column (its
    middle value) reads, and the table's files."""
    found = {}
    for table, (column, *_rest) in CLUSTERING.items():
        frame = spark.read.format("delta").load(str(warehouse / table))
        values = [row[0] for row in frame.select(column).distinct().orderBy(column).collect()]
        point = frame.where(frame[column] == values[len(values) // 2])
        found[table] = (files_read(point), (delta_log.live_files(warehouse / table) or (0, 0))[0])
    return found


def _skipping(spark: SparkSession, warehouse: Path, scratch: Path) -> None:
    """Print the point queries' files read before and after `clickstream optimize` on copies
    of `warehouse`, at the default target file size and at `SKIPPING_FILE_BYTES`."""
    before = _point_query_files(spark, warehouse)
    after = {}
    for label, settings in (
        ("default", {}),
        (
            f"{SKIPPING_FILE_BYTES // 1024} kB",
            {"spark.databricks.delta.optimize.maxFileSize": str(SKIPPING_FILE_BYTES)},
        ),
    ):
        copy = scratch / "warehouse"
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.copytree(warehouse, copy)
        with session_settings(spark, settings):
            optimize.optimize_warehouse(spark, copy)
        after[label] = _point_query_files(spark, copy)
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n{'point query: files read of the files':<36} {'before':>9}", end="")
    print("".join(f" {'optimized, ' + label:>22}" for label in after))
    for table, (read, files) in before.items():
        cells = "".join(f" {f'{r} of {n}':>22}" for r, n in (a[table] for a in after.values()))
        print(f"{table:<36} {f'{read} of {files}':>9}{cells}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.decay", description=__doc__)
    parser.add_argument("--runs", type=positive_int, default=500, help="small runs (default 500)")
    parser.add_argument(
        "--events", type=positive_int, default=100, help="events per run (default 100)"
    )
    parser.add_argument("--rounds", type=positive_int, default=5, help="timed rounds (default 5)")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(".cache/decay"), help="where the builds are kept"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    key = pii_key_from_environment(None)
    spark = build_session(spark_settings_from_environment())
    many, one = args.cache_dir / f"many-{args.events}", args.cache_dir / f"one-{args.events}"
    print(f"building {args.runs} runs of {args.events} events (cached in {many}) ...", flush=True)
    _build_many(spark, many, args.runs, args.events, key)
    _build_one(spark, many, one, key)
    day = str((generator.DEFAULT_START + timedelta(hours=args.runs // 2)).date())
    many_files, one_files = _files(many / "warehouse"), _files(one / "warehouse")
    print(f"{'table':<26} {'files, many runs':>16} {'files, one run':>14}")
    for table, count in many_files.items():
        print(f"{table:<26} {count:>16,} {one_files[table]:>14,}")

    timings: dict[str, dict[str, list[float]]] = {}
    for round_ in range(args.rounds + 1):  # the first round warms up
        runs = _next_runs(spark, many, one, args.events, key)
        for name, root in (("many", many), ("one", one)):
            measures = {
                label: _seconds(action)
                for label, action in _measures(spark, root / "warehouse", day).items()
            }
            measures["next small run"] = runs[name]
            for label, seconds in measures.items():
                if round_:
                    timings.setdefault(label, {}).setdefault(name, []).append(seconds)
    print(f"\n{'measure':<36} {'many runs':>10} {'one run':>10} {'ratio':>7}")
    for label, by in timings.items():
        slow, fast = statistics.median(by["many"]), statistics.median(by["one"])
        print(f"{label:<36} {slow:>9.3f}s {fast:>9.3f}s {slow / fast:>6.2f}x")
    _skipping(spark, many / "warehouse", args.cache_dir / "skipping")
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
