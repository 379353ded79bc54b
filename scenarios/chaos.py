"""`python -m scenarios.chaos`: kill `clickstream run` at its most dangerous moments, resume it,
and prove that nothing was lost or written twice.

Each trial starts from a warehouse state of a run never interrupted (empty; after the first
arrival of landing files; after the second), runs `clickstream run` in a child process (a new
process group: Python and its JVM), kills the whole group with SIGKILL at a kill point
(`scenarios.kill_points`: precise moments recognised from the files the run writes, or a
random moment), resumes with another run (which may be killed again), and finally runs to
the end. Then, against the uninterrupted run of the same input:

* each table's multiset of keys is equal (`event_id` for bronze, silver and the facts, the
  raw line for the bronze quarantine, the versions of `gold_dim_user`, each micro-batch's
  (flow, batch, rows and expectation counts) in `_event_log`): rows lost and rows twice are
  counted;
* every Delta table holds the same batch markers, none twice: no committed batch was lost
  or written again;
* the ledger holds (input = bronze + quarantine; bronze = silver + duplicates + late +
  quarantine), and incremental gold equals a full refresh;
* the first resumed run said it took over the killed run's writer lock.

Trials are seeded: a failure prints the command that replays it. `--full-disk` adds the full
file-system case: the warehouse on a small tmpfs (in a user and mount namespace), a run that
hits "no space left", then resumed after space is freed.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pipeline import table_names
from pipeline.config import pii_key_from_environment, spark_settings_from_environment
from pipeline.run.session import build_session
from pipeline.storage import tables
from scenarios import generator, invariants, scenario_invariants
from scenarios.kill_points import POINTS, Files, KillPoint

__all__ = [
    "FULL_DISK_SCRIPT",
    "KEYS",
    "MARKED_TABLES",
    "MAX_TRIALS_PER_KILL",
    "POLL_SECONDS",
    "RANDOM",
    "SMOKE",
    "STAGES",
    "STOP_SETTLE_SECONDS",
    "Comparison",
    "FullDisk",
    "Harness",
    "Keys",
    "Outcome",
    "Reference",
    "Trial",
    "TrialResult",
    "Workspace",
    "batch_markers",
    "full_disk",
    "main",
    "plan",
    "render",
    "table_keys",
    "verify",
    "write_arrivals",
]

RANDOM = "random"
MAX_TRIALS_PER_KILL = 2
POLL_SECONDS = 0.003
STOP_SETTLE_SECONDS = 0.03
STAGES = ("first-run", "incremental", "full-refresh")
"""Where a trial starts: an empty warehouse and the first arrival; the warehouse after it,
optimized (`clickstream optimize --vacuum`), and the second arrival; the warehouse after both,
refreshed with `--full-refresh`."""
KEYS: dict[str, tuple[str, ...]] = {
    table_names.BRONZE_EVENTS: ("event_id",),
    table_names.BRONZE_QUARANTINE: ("raw_line",),
    table_names.SILVER_EVENTS: ("event_id",),
    table_names.SILVER_QUARANTINE: ("event_id",),
    table_names.SILVER_LATE_EVENTS: ("event_id",),
    table_names.GOLD_FACT_EVENTS: ("event_id",),
    table_names.GOLD_DIM_USER: ("user_sk", "user_key", "__START_AT", "__END_AT"),
    table_names.EVENT_LOG: ("origin.flow_name", "origin.batch_id", "details"),
}
"""The columns compared per table; for the event log, the events of micro-batches (each
flow's rows written and expectation counts), which must be recorded once per batch."""
MARKED_TABLES = (*table_names.TABLES, table_names.GOLD_DIM_USER_CHANGES)


# ------------------------------------------------------------------------------ input data


def write_arrivals(root: Path, seed: int, events: int) -> tuple[Path, Path]:
    """Two arrivals of landing files with every fault a crash could make worse.

    The first: two event files of a day, the user changes, a file of corrupt lines and
    copies of events. The second: the next day's events and changes, events of the first
    day arriving late (behind the watermark), more copies and corrupt lines.
    """
    first, second = root / "arrival-1", root / "arrival-2"
    start = generator.DEFAULT_START
    generator.write_landing(first, events=events, seed=seed, files=2, start=start)
    generator.write_landing(
        second, events=events // 2, seed=seed + 1, files=2, start=start + timedelta(days=1)
    )
    late = root / "late"
    generator.write_landing(late, events=max(events // 20, 1), seed=seed + 2, files=1, start=start)
    for path in (late / table_names.EVENTS_DIR).glob("*.json"):
        shutil.move(path, second / table_names.EVENTS_DIR / f"late-{path.name}")
    shutil.rmtree(late)
    first_file = sorted((first / table_names.EVENTS_DIR).glob("*.json"))[0]
    copies = b"".join(first_file.read_bytes().splitlines(keepends=True)[:7])
    corrupt = b'{"event_id": "broken\n[1, 2]\nnot json at all\n\x00\xff\xfe binary\n'
    (first / table_names.EVENTS_DIR / "faults-1.json").write_bytes(corrupt + copies)
    copied_again = b"".join(reversed(copies.splitlines(keepends=True)))
    (second / table_names.EVENTS_DIR / "faults-2.json").write_bytes(copied_again + corrupt)
    return first, second


def _place(arrival: Path, landing: Path) -> None:
    """Copy an arrival's files into the landing folder, keeping their modification times."""
    shutil.copytree(arrival, landing, dirs_exist_ok=True, copy_function=shutil.copy2)


def _reset(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)


# ------------------------------------------------------------------------ child processes


@dataclass
class Outcome:
    """How a child run ended: killed at a point (with what was seen), or by itself."""

    killed: bool
    returncode: int | None
    seen: str
    seconds: float
    output: str


@dataclass
class Workspace:
    """Fixed paths every trial reuses (checkpoints record the landing files' paths)."""

    root: Path
    landing: Path = field(init=False)
    warehouse: Path = field(init=False)

    def __post_init__(self) -> None:
        self.landing = self.root / "landing"
        self.warehouse = self.root / "warehouse"

    def command(self, *, full_refresh: bool) -> list[str]:
        return [
            sys.executable,
            "-m",
            "clickstream",
            "run",
            "--landing",
            str(self.landing),
            "--warehouse",
            str(self.warehouse),
            *(["--full-refresh"] if full_refresh else []),
        ]

    def run(
        self,
        *,
        full_refresh: bool,
        point: KillPoint | None = None,
        kill_after: float | None = None,
    ) -> Outcome:
        """Run `clickstream run` in a new process group; kill it at `point` or after a delay."""
        since = time.time_ns()
        started = time.monotonic()
        with tempfile.TemporaryFile("w+") as log:
            child = subprocess.Popen(
                self.command(full_refresh=full_refresh),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                text=True,
            )
            killed, seen = _watch(child, self.warehouse, since, started, point, kill_after)
            returncode = child.wait()
            log.seek(0)
            output = log.read()
        return Outcome(
            killed, None if killed else returncode, seen, time.monotonic() - started, output
        )


def _watch(
    child: subprocess.Popen[str],
    warehouse: Path,
    since: int,
    started: float,
    point: KillPoint | None,
    kill_after: float | None,
) -> tuple[bool, str]:
    files = Files(warehouse, since)
    while child.poll() is None:
        if kill_after is not None and time.monotonic() - started >= kill_after:
            _signal(child, signal.SIGKILL)
            return True, f"after {kill_after:.2f} s"
        if point is not None and point.holds(files):
            _signal(child, signal.SIGSTOP)
            time.sleep(STOP_SETTLE_SECONDS)
            seen = point.holds(Files(warehouse, since))  # confirmed on the frozen files
            if seen is not None:
                _signal(child, signal.SIGKILL)
                return True, seen
            _signal(child, signal.SIGCONT)
        time.sleep(POLL_SECONDS)
    return False, ""


def _signal(child: subprocess.Popen[str], number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, number)


# --------------------------------------------------------------------------- verification


Keys = dict[str, Counter[tuple[object, ...]]]


def table_keys(spark: SparkSession, warehouse: Path) -> Keys:
    """Each checked table's multiset of keys."""
    found: Keys = {}
    for table, columns in KEYS.items():
        if not tables.table_exists(warehouse, table):
            found[table] = Counter()
            continue
        frame = tables.read_table(spark, warehouse, table)
        if table == table_names.EVENT_LOG:
            frame = frame.where(F.col("origin.batch_id").isNotNull())
        frame = frame.select(*[F.col(c).cast("string") for c in columns])
        found[table] = Counter(tuple(row) for row in frame.collect())
    return found


def batch_markers(warehouse: Path) -> dict[str, Counter[tuple[str, int]]]:
    """Each table's batch markers over its whole Delta log, counted."""
    files = Files(warehouse, since_ns=0)
    return {
        table: Counter(c.marker for c in files.commits(table) if c.marker is not None)
        for table in MARKED_TABLES
    }


@dataclass(frozen=True)
class Reference:
    """An uninterrupted run's keys, markers and duration, per stage."""

    keys: Keys
    markers: dict[str, Counter[tuple[str, int]]]
    seconds: float


@dataclass
class Comparison:
    """A resumed warehouse against the uninterrupted one: rows lost, rows twice, problems."""

    lost: int
    twice: int
    problems: list[str]


def verify(
    spark: SparkSession, workspace: Workspace, reference: Reference, input_records: int
) -> Comparison:
    keys = table_keys(spark, workspace.warehouse)
    problems: list[str] = []
    lost = twice = 0
    for table, expected in reference.keys.items():
        missing, extra = expected - keys[table], keys[table] - expected
        lost, twice = lost + sum(missing.values()), twice + sum(extra.values())
        if missing or extra:
            problems.append(
                f"{table}: {sum(missing.values())} lost (e.g. {list(missing)[:2]}), "
                f"{sum(extra.values())} twice (e.g. {list(extra)[:2]})"
            )
    markers = batch_markers(workspace.warehouse)
    for table, expected_markers in reference.markers.items():
        if markers[table] != expected_markers:
            problems.append(
                f"{table} batch markers differ: {sorted(markers[table].items())} "
                f"!= {sorted(expected_markers.items())}"
            )
    duplicates = invariants.dropped_duplicates(spark, workspace.warehouse)
    verdicts = [
        *invariants.ledger(
            spark, workspace.warehouse, input_records=input_records, duplicates=duplicates
        ),
        scenario_invariants.gold_equals_full_refresh(spark, workspace.warehouse),
    ]
    problems += [f"{v.name}: {v.evidence}" for v in verdicts if not v.passed]
    return Comparison(lost, twice, problems)


# ---------------------------------------------------------------------------------- trials


@dataclass(frozen=True)
class Trial:
    """A replayable trial: where it starts and the kill points of its successive runs."""

    seed: int
    index: int
    stage: str
    kills: tuple[str, ...]

    @property
    def replay(self) -> str:
        return f"nox -s chaos -- --seed {self.seed} --trial {self.index}"


def plan(seed: int) -> Iterator[Trial]:
    """Endless seeded trials: each point (and random moments) leads a trial in turn, in a
    shuffled order, followed by up to two more kills of the resumed runs."""
    rng = random.Random(seed)
    names = [p.name for p in POINTS if not p.full_refresh]
    refresh = [p.name for p in POINTS if p.full_refresh]
    queue: list[str] = []
    for index in itertools.count():
        if not queue:
            queue = [*names, *refresh, RANDOM, RANDOM]
            rng.shuffle(queue)
        first = queue.pop()
        if first in refresh:
            stage, chain = "full-refresh", [first]
        else:
            stage = rng.choice(STAGES[:2])
            chain = [first, *rng.sample([*names, RANDOM], k=rng.choice((0, 1, 2)))]
        yield Trial(seed, index, stage, tuple(chain))


def _enough(results: Sequence[TrialResult], kills: int) -> bool:
    """At least `kills` kills landed, and at least one at every point and a random moment."""
    landed = Counter(name for r in results for name, outcome in r.kills if outcome.killed)
    every = {p.name for p in POINTS} | {RANDOM}
    return sum(landed.values()) >= kills and every <= set(landed)


@dataclass
class TrialResult:
    trial: Trial
    kills: list[tuple[str, Outcome]]
    verdict: Comparison | None
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.error and self.verdict is not None and not self.verdict.problems


class Harness:
    """The workspace, the arrivals, the uninterrupted reference runs and their snapshots."""

    def __init__(self, root: Path, spark: SparkSession, seed: int, events: int) -> None:
        self.root, self.spark = root, spark
        self.workspace = Workspace(root / "work")
        self.arrivals = write_arrivals(root / "arrivals", seed, events)
        self.snapshots = [root / f"snapshot-{n}" for n in range(len(STAGES))]
        self.references: dict[str, Reference] = {}

    def input_records(self, arrivals: int) -> int:
        paths = [
            path
            for arrival in self.arrivals[:arrivals]
            for path in (arrival / table_names.EVENTS_DIR).glob("*.json")
        ]
        return invariants.non_blank_lines(paths)

    def _landing(self, arrivals: int) -> None:
        _reset(self.workspace.landing)
        for arrival in self.arrivals[:arrivals]:
            _place(arrival, self.workspace.landing)

    def prepare(self, stages: set[str], say: Callable[[str], None]) -> None:
        """Run the stages uninterrupted; keep the warehouse before each and its keys after."""
        self._landing(0)
        _reset(self.workspace.warehouse)
        _reset(self.snapshots[0])
        for number, stage in enumerate(STAGES):
            if not stages & set(STAGES[number:]):
                break
            if number < len(self.arrivals):
                _place(self.arrivals[number], self.workspace.landing)
            outcome = self.workspace.run(full_refresh=stage == "full-refresh")
            if outcome.returncode != 0:
                raise RuntimeError(f"the uninterrupted {stage} run failed:\n{outcome.output}")
            say(f"uninterrupted {stage} run: {outcome.seconds:.1f} s")
            self.references[stage] = Reference(
                table_keys(self.spark, self.workspace.warehouse),
                batch_markers(self.workspace.warehouse),
                outcome.seconds,
            )
            if number + 1 < len(self.snapshots):
                if stage == STAGES[0] and stages & set(STAGES[1:]):
                    self._optimize(say)
                shutil.rmtree(self.snapshots[number + 1], ignore_errors=True)
                shutil.copytree(
                    self.workspace.warehouse,
                    self.snapshots[number + 1],
                    copy_function=shutil.copy2,
                )

    def _optimize(self, say: Callable[[str], None]) -> None:
        """`clickstream optimize --vacuum` after the first run: the later stages' runs, and
        their kills, meet an optimized warehouse (compacted, clustered, vacuumed)."""
        started = time.monotonic()
        command = [sys.executable, "-m", "clickstream", "optimize", "--vacuum"]
        done = subprocess.run(
            [*command, "--warehouse", str(self.workspace.warehouse)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"optimizing after the first run failed:\n{done.stdout}{done.stderr}"
            )
        say(f"optimized the warehouse after the first run: {time.monotonic() - started:.1f} s")

    def start(self, stage: str) -> None:
        """Put the workspace where an uninterrupted run left it before `stage`."""
        number = STAGES.index(stage)
        self._landing(min(number + 1, len(self.arrivals)))
        shutil.rmtree(self.workspace.warehouse, ignore_errors=True)
        shutil.copytree(
            self.snapshots[number], self.workspace.warehouse, copy_function=shutil.copy2
        )

    def verify(self, stage: str) -> Comparison:
        arrivals = min(STAGES.index(stage) + 1, len(self.arrivals))
        return verify(
            self.spark, self.workspace, self.references[stage], self.input_records(arrivals)
        )

    def run_trial(self, trial: Trial) -> TrialResult:
        """Kill the trial's runs at its points, run to the end, compare with the reference."""
        self.start(trial.stage)
        workspace, reference = self.workspace, self.references[trial.stage]
        rng = random.Random(f"{trial.seed}:{trial.index}")
        full_refresh = trial.stage == "full-refresh"
        points = {p.name: p for p in POINTS}
        kills: list[tuple[str, Outcome]] = []
        for name in trial.kills:
            delay = rng.uniform(0.5, reference.seconds) if name == RANDOM else None
            outcome = workspace.run(
                full_refresh=full_refresh, point=points.get(name), kill_after=delay
            )
            kills.append((name, outcome))
            if not outcome.killed:  # the run finished before reaching the point
                break
        last = kills[-1][1]
        if last.killed:
            last = workspace.run(full_refresh=full_refresh)
        if last.returncode != 0:
            return TrialResult(trial, kills, None, f"a resumed run failed:\n{last.output}")
        verdict = self.verify(trial.stage)
        resumed = kills[1][1] if len(kills) > 1 else last
        if kills[0][1].killed and "taking over the writer lock" not in resumed.output:
            verdict.problems.append("the resumed run did not say it took over the killed lock")
        return TrialResult(trial, kills, verdict)


# ------------------------------------------------------------------------------- full disk

FULL_DISK_SCRIPT = r"""
set -u
warehouse=$1 snapshot=$2 out=$3 free=$4; shift 4
mount -t tmpfs -o size=64m tmpfs "$warehouse" || exit 90
cp -a "$snapshot/." "$warehouse/"
available=$(df --output=avail -B1 "$warehouse" | tail -1)
head -c $((available - free)) /dev/zero > "$warehouse/.filler" 2>/dev/null
"$@" > "$out/full.log" 2>&1; echo $? > "$out/full.rc"
rm "$warehouse/.filler"
"$@" > "$out/resumed.log" 2>&1; echo $? > "$out/resumed.rc"
mkdir "$out/warehouse" && cp -a "$warehouse/." "$out/warehouse/"
"""


@dataclass
class FullDisk:
    """The full file-system case: what the run said, and whether the resumed run was right."""

    possible: bool
    message: str
    verdict: Comparison | None = None

    @property
    def passed(self) -> bool:
        return not self.possible or (self.verdict is not None and not self.verdict.problems)


def full_disk(harness: Harness, free_bytes: int) -> FullDisk:
    """Run the incremental stage on a warehouse with `free_bytes` left, then with room."""
    harness.start("incremental")
    workspace = harness.workspace
    out = harness.root / "full-disk"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    shutil.rmtree(workspace.warehouse)
    workspace.warehouse.mkdir()
    script = [
        "unshare", "--user", "--map-root-user", "--mount", "bash", "-c", FULL_DISK_SCRIPT,
        "full-disk", str(workspace.warehouse), str(harness.snapshots[1]), str(out),
        str(free_bytes), *workspace.command(full_refresh=False),
    ]  # fmt: skip
    done = subprocess.run(script, capture_output=True, text=True, check=False)
    if done.returncode == 90 or not (out / "resumed.rc").exists():
        return FullDisk(
            False,
            "not possible here: no tmpfs could be mounted in a user namespace "
            f"({done.stderr.strip()[:200]})",
        )
    full_rc = int((out / "full.rc").read_text())
    said = (out / "full.log").read_text()
    problems = []
    if full_rc != 2 or "No space left on device" not in said or "run again" not in said:
        problems.append(f"the run on a full disk exited {full_rc} saying:\n{said[-2000:]}")
    if int((out / "resumed.rc").read_text()) != 0:
        problems.append(f"the resumed run failed:\n{(out / 'resumed.log').read_text()[-2000:]}")
    shutil.rmtree(workspace.warehouse)
    shutil.move(out / "warehouse", workspace.warehouse)
    verdict = harness.verify("incremental")
    verdict.problems += problems
    error_line = next(
        (line for line in said.splitlines() if line.startswith("error:")), said[-300:]
    )
    return FullDisk(True, error_line, verdict)


# ---------------------------------------------------------------------------------- report


def render(
    results: Sequence[TrialResult], disk: FullDisk | None, seconds: float, *, full_plan: bool
) -> str:
    """The report: kills per point, rows lost and twice, failures with their replay."""
    rows: dict[str, list[int]] = {}
    for result in results:
        for name, outcome in result.kills:
            landed_missed = rows.setdefault(name, [0, 0, 0])
            landed_missed[0 if outcome.killed else 1] += 1
        for name in dict.fromkeys(n for n, _ in result.kills):
            if not result.passed:
                rows[name][2] += 1
    kills = sum(r[0] for r in rows.values())
    lost = sum(r.verdict.lost for r in results if r.verdict)
    twice = sum(r.verdict.twice for r in results if r.verdict)
    failed = [r for r in results if not r.passed]
    lines = [
        "# Crash harness (`nox -s chaos`)",
        "",
        f"{len(results)} trials, {kills} kills (SIGKILL of the run's process group), "
        f"{lost} rows lost, {twice} rows twice, {len(failed)} trials failed; {seconds:.0f} s.",
        "",
        "| kill point | kills | missed (run ended first) | failed trials |",
        "|---|---:|---:|---:|",
    ]
    order = [p.name for p in POINTS] + [RANDOM]
    lines += [
        f"| {name} | {rows.get(name, [0])[0]} | {rows.get(name, [0, 0])[1]} | "
        f"{rows.get(name, [0, 0, 0])[2]} |"
        for name in order
        if name in rows or full_plan
    ]
    if disk is not None:
        state = (
            "passed" if disk.passed and disk.possible else "FAILED" if disk.possible else "skipped"
        )
        lines += ["", f"Full disk ({state}): {disk.message}"]
        if disk.verdict is not None:
            lines += [f"* {problem}" for problem in disk.verdict.problems]
    for result in failed:
        lines += ["", f"## FAILED trial {result.trial.index}: {result.trial.replay}", ""]
        lines += [f"* kills: {[(n, o.seen) for n, o in result.kills]}"]
        lines += [f"* {result.error[-3000:]}"] if result.error else []
        lines += [f"* {problem}" for problem in (result.verdict.problems if result.verdict else [])]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ main

SMOKE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("first-run", ("scd2-merge:data-files", "gold-stage:midway")),
)
"""CI's smoke: a first run killed inside the SCD2 merge that creates `gold_dim_user` (its
replay once lost the unknown member), the resumed run killed in the middle of the gold stage,
then resumed to the end."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scenarios.chaos",
        description="Kill clickstream runs at dangerous moments, resume them, check every row.",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the trials")
    parser.add_argument("--kills", type=int, default=50, help="kills to plan (default 50)")
    parser.add_argument("--events", type=int, default=600, help="events of the first arrival")
    parser.add_argument("--trial", type=int, default=None, help="replay one trial of the plan")
    parser.add_argument("--smoke", action="store_true", help="CI's small fixed trial only")
    parser.add_argument(
        "--full-disk", action="store_true", help="also run on a full file system (tmpfs)"
    )
    parser.add_argument("--report", type=Path, default=Path("reports") / "chaos.md")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the files here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    pii_key_from_environment(None)  # fail early, with the clickstream message, without a key
    trials: Iterable[Trial] = (
        [Trial(args.seed, n, stage, kills) for n, (stage, kills) in enumerate(SMOKE)]
        if args.smoke
        else plan(args.seed)
    )
    if args.trial is not None:
        trials = [next(itertools.islice(trials, args.trial, None))]
    stages = set(STAGES) if args.trial is None and not args.smoke else {t.stage for t in trials}
    started = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {message}", file=sys.stderr, flush=True)

    root = args.workdir or Path(tempfile.mkdtemp(prefix="chaos-"))
    spark = build_session(spark_settings_from_environment(), log_file=root / "spark.log")
    try:
        harness = Harness(root, spark, args.seed, args.events)
        stages |= {"incremental"} if args.full_disk else set()
        harness.prepare(stages, say)
        results: list[TrialResult] = []
        for trial in trials:
            if args.trial is None and not args.smoke and _enough(results, args.kills):
                break
            if trial.index >= MAX_TRIALS_PER_KILL * args.kills:
                say(f"stopping after {trial.index} trials: some kill point was never reached")
                break
            result = harness.run_trial(trial)
            results.append(result)
            kills = ", ".join(
                f"{name} ({'killed: ' + o.seen if o.killed else 'missed'})"
                for name, o in result.kills
            )
            verdict = "ok" if result.passed else f"FAILED, replay: {trial.replay}"
            say(f"trial {trial.index} [{trial.stage}] {kills}: {verdict}")
            problems = result.verdict.problems if result.verdict else []
            for problem in [result.error] if result.error else problems:
                say(f"  {problem[-3000:]}")
        disk = full_disk(harness, free_bytes=256 * 1024) if args.full_disk else None
        if disk is not None:
            say(f"full disk: {disk.message}")
    finally:
        spark.stop()
    full_plan = args.trial is None and not args.smoke
    report = render(results, disk, time.monotonic() - started, full_plan=full_plan)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(report, encoding="utf-8")
    print(report)
    if args.workdir is None:
        shutil.rmtree(root, ignore_errors=True)
    passed = all(r.passed for r in results) and (disk is None or disk.passed)
    return 0 if passed and (not full_plan or _enough(results, args.kills)) else 1


if __name__ == "__main__":
    sys.exit(main())
