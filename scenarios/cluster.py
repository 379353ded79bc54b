"""`python -m scenarios.cluster`: the same pipeline on local Spark, on a standalone cluster and
over Spark Connect, compared table by table, row by row.

It starts a Spark standalone Master and Workers and a Spark Connect server with Delta on
127.0.0.1 (`scenarios.spark_cluster`), then builds one landing folder's tables three times, in
two arrivals (the second run is incremental):

* `local`: `clickstream run` on local[2];
* `standalone`: `clickstream run --master spark://...`: the driver here, the executors on the
  Workers, the Delta jars shipped to them as files;
* `connect`: the pipeline's Lakeflow definitions, `python -m pipeline.lakeflow run --remote
  sc://...`, on the Spark Connect server. `clickstream run --remote` refuses with a message
  naming the feature (its foreachBatch functions), which is checked too.

Every table of each mode must equal the local run's, row for row (the time each side read a
line, `_ingested_at`, left out). Then the scenarios `baseline`, `late_data` and
`out_of_order_changes` run locally and on the cluster, and each scenario's tables are compared
the same way. `--kill-worker SECONDS` kills a Worker (and its executor) that long into the
first standalone run. The report gives each run's time and the peak memory of each mode's
processes.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DataType, MapType, StructField, StructType

from pipeline import table_names
from pipeline.arguments import positive_int
from pipeline.config import (
    DEFAULT_EXPECTATIONS_MODULE,
    LOCAL_MASTER,
    MASTER_ENV,
    SPARK_REMOTE_ENV,
    pii_key_from_environment,
    spark_settings_from_environment,
    subprocess_environment,
)
from pipeline.errors import ClickstreamError
from pipeline.lakeflow.local import LocalRun
from pipeline.lakeflow.settings import EXPECTATIONS
from pipeline.run.session import INTERPRETED_EXPRESSIONS, build_session
from scenarios import generator
from scenarios.spark_cluster import LocalCluster, Process, tree_rss_bytes

__all__ = ["main"]

PROJECT = Path(__file__).resolve().parents[1]
SCENARIOS = ("baseline", "late_data", "out_of_order_changes")
IGNORED_COLUMNS = ("_ingested_at",)
"""When each run read a line: differs by construction."""
SOURCE_FILE = "_source_file"
KEPT_COPY_TABLES = (table_names.SILVER_EVENTS,)
"""Tables whose `_source_file` is left out: of two copies of an event in one micro-batch,
silver keeps the one its task meets first, and which that is depends on the order the tasks
ran in (identical rows but for the file they came from)."""
MODES = ("local", "standalone", "connect")
SMALL_EVENTS = 50_000
REFUSAL = "cannot run over Spark Connect"


@dataclass
class Mode:
    """One way of running: its warehouse, the seconds and peak memory of each run."""

    name: str
    warehouse: Path
    seconds: list[float] = field(default_factory=list)
    peak_rss: int = 0


@dataclass(frozen=True)
class Difference:
    """A table of one mode compared with the local run's."""

    mode: str
    table: str
    local_rows: int
    rows: int
    only_local: int
    only_here: int

    @property
    def equal(self) -> bool:
        return self.only_local == 0 and self.only_here == 0 and self.local_rows == self.rows


@contextmanager
def _peak_memory(mode: Mode, roots: Sequence[int]) -> Iterator[list[int]]:
    """Sample the resident memory of the process trees `roots` (plus pids appended to the
    yielded list) every 0.2 s; keep the peak of their sum in `mode.peak_rss`."""
    pids = list(roots)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            mode.peak_rss = max(mode.peak_rss, sum(tree_rss_bytes(pid) for pid in pids))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield pids
    finally:
        done.set()
        thread.join()


def _environment(mode: str, cluster: LocalCluster) -> dict[str, str]:
    """The environment of a child of `mode`: only what the mode asks for selects where Spark
    runs, whatever this process was given ($CLICKSTREAM_MASTER, $SPARK_REMOTE)."""
    chosen = {
        "standalone": {MASTER_ENV: cluster.master_url},
        "connect": {SPARK_REMOTE_ENV: cluster.connect_url},
    }.get(mode, {})
    return subprocess_environment(chosen, without=(MASTER_ENV, SPARK_REMOTE_ENV))


def _run(
    mode: Mode,
    arguments: list[str],
    *,
    cluster: LocalCluster,
    log: Path,
    watch: Sequence[int] = (),
    kill_worker: tuple[Process, float] | None = None,
    where: str | None = None,
) -> None:
    """Run one command of `mode` (on `where`'s Spark: the mode's own when None), timing it and
    sampling its memory (and that of `watch`)."""
    started = time.monotonic()
    with log.open("ab") as output:
        process = subprocess.Popen(
            arguments,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=PROJECT,
            env=_environment(where or mode.name, cluster),
            start_new_session=True,
        )
        child = Process(mode.name, log, process)
        try:
            with _peak_memory(mode, [process.pid, *watch]):
                if kill_worker is not None:
                    worker, delay = kill_worker
                    try:
                        process.wait(timeout=delay)
                    except subprocess.TimeoutExpired:
                        worker.kill()
                        print(f"  killed {worker.name} (pid {worker.pid}) {delay:.0f} s in")
                returncode = process.wait()
        finally:
            child.stop()  # what it started, and itself when this harness is stopped
    mode.seconds.append(time.monotonic() - started)
    if returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise ClickstreamError(f"The {mode.name} run exited {returncode}; its log {log}:\n{tail}")
    print(f"  {mode.name}: {mode.seconds[-1]:.1f} s")


def _table(spark: SparkSession, warehouse: Path, table: str) -> DataFrame:
    """The table's columns but `IGNORED_COLUMNS`, sorted; maps as JSON (maps cannot be
    grouped); `_source_file` relative to the landing folder, which each scenario has its own of."""
    frame = spark.read.format("delta").load(str(warehouse / table))
    ignored = IGNORED_COLUMNS + ((SOURCE_FILE,) if table in KEPT_COPY_TABLES else ())
    return frame.select(
        *[
            _comparable(f)
            for f in sorted(frame.schema.fields, key=lambda f: f.name)
            if f.name not in ignored
        ]
    )


def _comparable(field: StructField) -> Column:
    if field.name == SOURCE_FILE:
        return F.regexp_replace(F.col(SOURCE_FILE), "^.*/landing/", "").alias(SOURCE_FILE)
    if _has_map(field.dataType):
        return F.to_json(F.col(field.name)).alias(field.name)
    return F.col(field.name)


def _has_map(data_type: DataType) -> bool:
    if isinstance(data_type, MapType):
        return True
    if isinstance(data_type, StructType):
        return any(_has_map(f.dataType) for f in data_type.fields)
    return isinstance(data_type, ArrayType) and _has_map(data_type.elementType)


def compare(
    spark: SparkSession, mode: str, local: Path, other: Path, names: Sequence[str]
) -> list[Difference]:
    """Each table of `other` against the same table of `local`, as multisets of rows: one job
    per table counts every distinct row on both sides."""
    found = []
    for name in names:
        mine, theirs = _table(spark, local, name), _table(spark, other, name)
        if mine.columns != theirs.columns:
            raise ClickstreamError(
                f"{mode}: {name} has the columns {theirs.columns}, the local run {mine.columns}."
            )
        side = "__side"
        counted = (
            mine.withColumn(side, F.lit(1))
            .unionByName(theirs.withColumn(side, F.lit(0)))
            .groupBy(*[F.col(f"`{c}`") for c in mine.columns])
            .agg(F.sum(side).alias("mine"), F.sum(1 - F.col(side)).alias("theirs"))
        )
        totals = counted.agg(
            F.coalesce(F.sum("mine"), F.lit(0)).alias("mine"),
            F.coalesce(F.sum("theirs"), F.lit(0)).alias("theirs"),
            F.coalesce(F.sum(F.greatest(F.col("mine") - F.col("theirs"), F.lit(0))), F.lit(0)),
            F.coalesce(F.sum(F.greatest(F.col("theirs") - F.col("mine"), F.lit(0))), F.lit(0)),
        ).first()
        assert totals is not None
        found.append(Difference(mode, name, *(int(value) for value in totals)))
    return found


def _add_faults(landing: Path) -> None:
    """A duplicated line and a line that is not JSON: the quarantine and dedup get rows too."""
    first = sorted((landing / table_names.EVENTS_DIR).glob("*.json"))[0]
    line = first.read_bytes().splitlines()[0]
    (landing / table_names.EVENTS_DIR / "faults-00000.json").write_bytes(line + b"\nnot json\n")


def _contracts(mode: str, cluster: LocalCluster, warehouse: Path, root: Path) -> object:
    """`python -m contracts` (Great Expectations and the quarantine report) on the local run's
    warehouse, with the mode's Spark; the report's content, its time stamp left out."""
    reports = root / f"contracts-{mode}"
    completed = subprocess.run(
        [sys.executable, "-m", "contracts", "--warehouse", str(warehouse),
         "--report-dir", str(reports)],
        capture_output=True, text=True, check=False, cwd=PROJECT,
        env=_environment(mode, cluster),
    )  # fmt: skip
    if completed.returncode != 0:
        raise ClickstreamError(
            f"`python -m contracts` ({mode}) exited {completed.returncode}:\n"
            + completed.stderr[-3000:]
        )
    found = json.loads((reports / "quarantine.json").read_text(encoding="utf-8"))
    found.pop("generated_at", None)
    print(f"  python -m contracts ({mode}): {sum(1 for _ in found.get('rules', []))} rules")
    return found


def _refusal(cluster: LocalCluster, root: Path) -> str:
    """`clickstream run --remote` must refuse at once, naming the feature; its message."""
    url = cluster.connect_url
    completed = subprocess.run(
        [sys.executable, "-m", "clickstream", "run", "--landing", str(root / "landing"),
         "--warehouse", str(root / "refused"), "--remote", url],
        capture_output=True, text=True, check=False, cwd=PROJECT,
        env=_environment("local", cluster),
    )  # fmt: skip
    if completed.returncode != 2 or REFUSAL not in completed.stderr:
        raise ClickstreamError(
            f"`clickstream run --remote {url}` should exit 2 saying it {REFUSAL}; it exited "
            f"{completed.returncode}:\n{completed.stderr}"
        )
    return completed.stderr.strip()


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 100:
        raise argparse.ArgumentTypeError(f"{text!r}: give event counts of 100 or more, e.g. 3000")
    return sizes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scenarios.cluster", description=__doc__)
    parser.add_argument(
        "--events",
        type=_sizes,
        default=[3000],
        metavar="N[,N...]",
        help="events; several sizes, comma-separated, each compared in turn (default 3000)",
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument(
        "--workers", type=positive_int, default=2, help="standalone Workers (default 2)"
    )
    parser.add_argument(
        "--kill-worker",
        type=float,
        default=None,
        metavar="SECONDS",
        help="kill Worker 1 (SIGKILL, with its executor) this long into the first standalone run",
    )
    parser.add_argument(
        "--no-scenarios", action="store_true", help="compare the pipeline's tables only"
    )
    parser.add_argument(
        "--no-contracts",
        action="store_true",
        help="leave out python -m contracts in each mode (Great Expectations: a JVM each)",
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help="modes to run, comma-separated (default local,standalone,connect)",
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep everything here (default: temporary)"
    )
    parser.add_argument("--report", type=Path, default=Path("reports") / "cluster.md")
    return parser


def _exit_on_signal(number: int, _frame: object) -> None:
    raise SystemExit(128 + number)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; 0 when every table of every mode equals the local run's."""
    args = _parser().parse_args(argv)
    # Stopped (CI cancelling, say), stop the cluster and the run in progress too.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    modes = [m.strip() for m in args.modes.split(",")]
    if "local" not in modes or set(modes) - set(MODES):
        print(f"error: --modes takes local and any of {MODES[1:]}", file=sys.stderr)
        return 2
    try:
        pii_key_from_environment()  # every run reads it from the environment
        if args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=True)
            return _each_size(args, args.workdir.resolve(), modes)
        with tempfile.TemporaryDirectory(prefix="clickstream-cluster-") as scratch:
            return _each_size(args, Path(scratch), modes)
    except ClickstreamError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _each_size(args: argparse.Namespace, root: Path, modes: list[str]) -> int:
    """Compare the modes at each size in turn (a cluster of its own each); write the report."""
    sections, passed = [], True
    for events in args.events:
        print(f"{events:,} events")
        at_size = argparse.Namespace(**{**vars(args), "events": events})
        where = root / f"events-{events}" if len(args.events) > 1 else root
        section, equal = _compare_modes(at_size, where, modes)
        sections.append(section)
        passed = passed and equal
    report = "\n".join(sections)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(report, encoding="utf-8")
    print(report)
    return 0 if passed else 1


def _compare_modes(args: argparse.Namespace, root: Path, names: list[str]) -> tuple[str, bool]:
    """Build the landing in each mode and compare; the report's section, and whether equal."""
    started = time.monotonic()
    settings = spark_settings_from_environment(master=LOCAL_MASTER)
    landing = root / "landing"
    modes = {name: Mode(name, root / name) for name in names}
    lakeflow = LocalRun(
        spec=PROJECT / "spark-pipeline.yml",
        warehouse=modes["connect"].warehouse if "connect" in modes else root / "connect",
        landing=landing,
        configuration={EXPECTATIONS: DEFAULT_EXPECTATIONS_MODULE},
    )
    first = args.events * 2 // 3
    generator.write_landing(landing, events=first, seed=args.seed, files=3)
    _add_faults(landing)
    with_server = " and a Spark Connect server" if "connect" in modes else ""
    print(f"starting the cluster ({_workers(args.workers)}){with_server} ...")
    cluster = LocalCluster(
        root / "cluster",
        workers=args.workers,
        connect_conf=lakeflow.server_conf(settings) if "connect" in modes else None,
    )
    refusal = ""
    with cluster:
        server = [p.pid for p in cluster.processes if p.name == "connect-server"]
        executors = [p.pid for p in cluster.processes if p.name.startswith("worker")]
        for arrival in (1, 2):
            if arrival == 2:
                generator.write_landing(
                    landing,
                    events=args.events - first,
                    seed=args.seed + 1,
                    files=1,
                    start=generator.DEFAULT_START + timedelta(days=1),
                )
            print(f"arrival {arrival}:")
            for mode in modes.values():
                _run_mode(mode, args, arrival, cluster, landing, root, server, executors)
        if "connect" in modes:
            refusal = _refusal(cluster, root)
        quarantine = (
            {}
            if args.no_contracts
            else {name: _contracts(name, cluster, modes["local"].warehouse, root) for name in modes}
        )
        scenario_roots = _scenarios(args, cluster, root, modes) if not args.no_scenarios else {}
    spark = build_session(settings, log_file=root / "spark.log")
    for key, value in INTERPRETED_EXPRESSIONS.items():
        # Small tables: compiling generated code would cost more than it saves.
        if args.events < SMALL_EVENTS:
            spark.conf.set(key, value)
        else:
            spark.conf.unset(key)
    differences = [
        difference
        for mode in modes.values()
        if mode.name != "local"
        for difference in compare(
            spark, mode.name, modes["local"].warehouse, mode.warehouse, table_names.TABLES
        )
    ]
    for scenario, roots in scenario_roots.items():
        for mode_name, scenario_root in roots.items():
            if mode_name != "local":
                warehouse = scenario_root / scenario / "warehouse"
                local = roots["local"] / scenario / "warehouse"
                differences += compare(
                    spark, f"{mode_name}: {scenario}", local, warehouse, table_names.TABLES
                )
    differences += [
        Difference(f"{name}: python -m contracts", "quarantine.json", 1, 1, 0, 0)
        if found == quarantine["local"]
        else Difference(f"{name}: python -m contracts", "quarantine.json", 1, 1, 1, 1)
        for name, found in quarantine.items()
        if name != "local"
    ]
    report = render(modes, differences, refusal, args, time.monotonic() - started)
    return report, all(d.equal for d in differences)


def _run_mode(
    mode: Mode,
    args: argparse.Namespace,
    arrival: int,
    cluster: LocalCluster,
    landing: Path,
    root: Path,
    server: list[int],
    executors: list[int],
) -> None:
    log = root / f"{mode.name}.log"
    if mode.name == "connect":
        command = [sys.executable, "-m", "pipeline.lakeflow", "run", "--remote",
                   cluster.connect_url, "--landing", str(landing),
                   "--warehouse", str(mode.warehouse)]  # fmt: skip
        _run(mode, command, cluster=cluster, log=log, watch=server)
        return
    command = [sys.executable, "-m", "clickstream", "run", "--landing", str(landing),
               "--warehouse", str(mode.warehouse)]  # fmt: skip
    if mode.name == "local":
        _run(mode, command, cluster=cluster, log=log)
        return
    kill = None
    if arrival == 1 and args.kill_worker is not None:
        kill = (cluster.worker(1), args.kill_worker)
    command += ["--master", cluster.master_url]
    _run(mode, command, cluster=cluster, log=log, watch=executors, kill_worker=kill)


def _scenarios(
    args: argparse.Namespace, cluster: LocalCluster, root: Path, modes: dict[str, Mode]
) -> dict[str, dict[str, Path]]:
    """Run the scenarios locally and on the cluster; each mode's folder, per scenario."""
    roots: dict[str, dict[str, Path]] = {name: {} for name in SCENARIOS}
    for mode in modes.values():
        if mode.name == "connect":
            continue  # the scenarios drive the runner, which refuses Spark Connect
        workdir = root / f"scenarios-{mode.name}"
        command = [sys.executable, "-m", "scenarios", "--seed", str(args.seed),
                   "--events", str(args.events),
                   "--workdir", str(workdir), "--report-dir", str(workdir / "reports")]  # fmt: skip
        for name in SCENARIOS:
            command += ["--only", name]
        if mode.name == "standalone":
            command += ["--master", cluster.master_url]
        print(f"scenarios ({mode.name}): {', '.join(SCENARIOS)}")
        scenario_mode = Mode(f"scenarios {mode.name}", workdir)
        log = root / f"scenarios-{mode.name}.log"
        _run(scenario_mode, command, cluster=cluster, log=log, where=mode.name)
        for name in SCENARIOS:
            roots[name][mode.name] = workdir
    return roots


def _workers(count: int) -> str:
    return f"{count} Worker" + ("" if count == 1 else "s")


def render(
    modes: dict[str, Mode],
    differences: list[Difference],
    refusal: str,
    args: argparse.Namespace,
    seconds: float,
) -> str:
    """The report: each mode's runs and memory, then every table that differs (or none)."""
    local = sum(modes["local"].seconds)
    lines = [
        "# The pipeline on local Spark, a standalone cluster and Spark Connect",
        "",
        f"{args.events:,} events in two arrivals (seed {args.seed}); {_workers(args.workers)} of "
        f"1 core; {len(differences)} table comparisons; {seconds:.0f} s in all.",
        "",
        "| mode | run 1 (s) | run 2 (s) | total / local | peak memory (MB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode in modes.values():
        first, second = [*mode.seconds, 0.0, 0.0][:2]
        ratio = sum(mode.seconds) / local if local else 0.0
        lines.append(
            f"| {mode.name} | {first:.1f} | {second:.1f} | {ratio:.2f} | "
            f"{mode.peak_rss / 2**20:,.0f} |"
        )
    lines += [
        "",
        "Memory: the resident memory of the mode's processes, summed and sampled every 0.2 s: "
        "local, the `clickstream run` process and its JVM; standalone, that (the driver) and "
        "the Workers with their executors; connect, the `spark-pipelines` client and the "
        "Spark Connect server.",
        "",
    ]
    unequal = [d for d in differences if not d.equal]
    if unequal:
        lines += [
            "| mode | table | local rows | rows | only local | only here |",
            "|---|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {d.mode} | {d.table} | {d.local_rows:,} | {d.rows:,} | {d.only_local:,} | "
            f"{d.only_here:,} |"
            for d in unequal
        ]
        lines.append(f"\n**FAILED**: {len(unequal)} tables differ from the local run's.")
    else:
        compared = sorted({d.mode for d in differences})
        lines.append(f"Every table equals the local run's, row for row, in: {', '.join(compared)}.")
    if refusal:
        lines += ["", f"`clickstream run --remote` refused, as it should: {refusal}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
