"""`python -m benchmarks.cost_gate` (`nox -s cost`): the engine's work on a fixed workload,
counted per flow and compared with a committed baseline.

    python -m benchmarks.cost_gate                      # the gate: 4 runs, against the baseline
    python -m benchmarks.cost_gate --update-baseline    # measure 10 times, write the baseline
    python -m benchmarks.cost_gate --inject-extra-write gold_dim_page   # a self-check: fails

The workload is four `clickstream run` processes, as a user runs them: a first run of 200
events (with user changes), a second run of 200 more of the next day (with changes), a run
with nothing new, and a `--full-refresh`. Each records what it cost the engine in the
warehouse's event log (`pipeline.run.cost`); the gate reads it back and compares, per run and per
flow, the Spark jobs and Delta commits with `benchmarks/baseline/counts.json`. More than the
baseline fails, naming the run, the flow, the count and the operations that grew; fewer
passes and says "improved", with the command that updates the baseline. Counts do not move
with the machine's load, so the gate cannot false-alarm; where a count still varies between
runs of unchanged code, the baseline holds the largest value of its runs.

Exit status: 0 when no count grew, 1 when one did, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.config import JAR_CACHE_ENV, PII_KEY_ENV, subprocess_environment
from pipeline.observe.event_log import read_events
from pipeline.observe.history import updates
from pipeline.run import cost
from pipeline.run.cost import FlowCost
from pipeline.storage.tables import table_path

__all__ = [
    "BASELINE",
    "GATED",
    "STEPS",
    "Verdict",
    "baseline_document",
    "compare",
    "counts_of",
    "extra_write",
    "main",
    "measure",
    "workload_counts",
]

PROJECT = Path(__file__).resolve().parents[1]
BASELINE = PROJECT / "benchmarks" / "baseline" / "counts.json"
STEPS = ("first", "second", "nothing-new", "full-refresh")
"""The workload's runs, in order."""
EVENTS = 200
SEED = 7
START = datetime(2026, 11, 1, tzinfo=UTC)
GATED = ("spark_jobs", "delta_commits")
"""The counts that fail the gate when they grow; the others are reported."""
REPORTED = ("spark_jobs", "sql_executions", "delta_commits", "files_written", "micro_batches")
UPDATE = "(update)"
"""The name the counts of a whole run are kept under, beside its flows'."""
OUTSIDE = "(outside the flows)"
"""The name of the work a run did outside every flow."""
KEY = "cost-gate-pii-key-not-a-secret-0123456789"
"""The PII key of the generated data: the gate's warehouses are thrown away."""

Counts = dict[str, dict[str, dict[str, Any]]]
"""Per run, per flow (and `UPDATE`, `OUTSIDE`): each count, and the operations of each."""


# ------------------------------------------------------------------------- the workload


def counts_of(spent: FlowCost) -> dict[str, Any]:
    """The counts the gate keeps of a flow's (or a run's) cost."""
    return {
        **{name: getattr(spent, name) for name in REPORTED},
        "jobs_by_operation": dict(sorted(spent.jobs_by_operation.items())),
        "commits_by_operation": dict(sorted(spent.commits_by_operation.items())),
    }


def workload_counts(warehouse: Path) -> Counts:
    """The counts of each run of the workload, read from the warehouse's event log.

    The runs are the warehouse's updates, oldest first, named by `STEPS`.
    """
    found = updates(read_events(warehouse))
    if len(found) != len(STEPS):
        raise RuntimeError(
            f"the event log of {warehouse} holds {len(found)} updates, the workload makes "
            f"{len(STEPS)}: a run failed (its output is above)"
        )
    counts: Counts = {}
    for step, update in zip(STEPS, found, strict=True):
        flows = {name: counts_of(run.cost or FlowCost()) for name, run in update.flows.items()}
        spent = update.cost
        if spent is not None:
            flows[UPDATE] = counts_of(spent.total)
            flows[OUTSIDE] = counts_of(spent.outside_flows)
        counts[step] = flows
    return counts


def _run(arguments: Sequence[str], env: Mapping[str, str], inject: str | None) -> None:
    """One `clickstream` command in a process of its own (with an extra write, if asked)."""
    prefix = ["-m", "benchmarks.cost_gate", "--inject-into-run", inject] if inject else []
    command = [sys.executable, *prefix, *(["-m", "clickstream"] if not inject else []), *arguments]
    completed = subprocess.run(command, env=dict(env), capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        sys.stderr.write(completed.stdout + completed.stderr)
        raise RuntimeError(f"`clickstream {' '.join(arguments)}` failed ({completed.returncode})")


def measure(workdir: Path, *, inject: str | None = None, progress: Callable[[str], None]) -> Counts:
    """Run the workload in `workdir` (each run a process of its own) and count it."""
    from scenarios import generator

    landing, warehouse = workdir / "landing", workdir / "warehouse"
    env = subprocess_environment(
        {PII_KEY_ENV: KEY, JAR_CACHE_ENV: str(PROJECT / ".cache" / "jars"), "PYTHONHASHSEED": "0"}
    )
    run = ["run", "--landing", str(landing), "--warehouse", str(warehouse)]
    for step in STEPS:
        if step in ("first", "second"):
            day = 0 if step == "first" else 1
            generator.write_landing(
                landing, events=EVENTS, seed=SEED + day, start=START + timedelta(days=day)
            )
        arguments = [*run, *(["--full-refresh"] if step == "full-refresh" else [])]
        progress(f"  {step}: clickstream {' '.join(arguments)}")
        _run(arguments, env, inject)
    return workload_counts(warehouse)


# ------------------------------------------------------------------- an injected write


@contextlib.contextmanager
def extra_write(flow: str, warehouse: Path) -> Iterator[None]:
    """Make the pipeline write once more to `flow`'s table in `warehouse` (a copy of one of
    its rows), in that flow, the first time the flow's work ends: a real regression, to check
    that the gate catches it."""
    real = cost.flow
    done: list[bool] = []

    @contextlib.contextmanager
    def flow_with_extra_write(spark: Any, name: str) -> Iterator[None]:
        with real(spark, name):
            yield
            path = table_path(warehouse.resolve(), name)
            if name == flow and not done and Path(path, "_delta_log").is_dir():
                done.append(True)
                # A write that commits: a copy of one row (an empty append commits nothing).
                row = spark.read.format("delta").load(path).limit(1)
                row.write.format("delta").mode("append").save(path)

    cost.flow = flow_with_extra_write
    try:
        yield
    finally:
        cost.flow = real


# ------------------------------------------------------------------------------ the gate


def baseline_document(runs: Sequence[Counts]) -> dict[str, Any]:
    """The baseline of several measurements: each count's largest and smallest value (the
    gate compares with the largest), and each operation's largest."""
    document: dict[str, Any] = {}
    for step in runs[0]:
        flows: dict[str, Any] = {}
        names = sorted({name for counts in runs for name in counts[step]})
        for name in names:
            measured = [counts[step].get(name, counts_of(FlowCost())) for counts in runs]
            entry: dict[str, Any] = {
                count: {
                    "max": max(m[count] for m in measured),
                    "min": min(m[count] for m in measured),
                }
                for count in REPORTED
            }
            for kind in ("jobs_by_operation", "commits_by_operation"):
                operations = sorted({op for m in measured for op in m[kind]})
                entry[kind] = {op: max(m[kind].get(op, 0) for m in measured) for op in operations}
            flows[name] = entry
        document[step] = flows
    return document


@dataclass(frozen=True)
class Verdict:
    """What the gate found: counts that grew (failures) and counts that fell."""

    grew: list[str]
    fell: list[str]
    varied: list[str]

    @property
    def passed(self) -> bool:
        return not self.grew


def _operations(kind: str, now: Mapping[str, int], before: Mapping[str, int]) -> str:
    grown = [
        f"{op} {before.get(op, 0)} -> {n}" for op, n in sorted(now.items()) if n > before.get(op, 0)
    ]
    return f"; {kind} that grew: " + ", ".join(grown) if grown else ""


def compare(baseline: Mapping[str, Any], runs: Sequence[Counts]) -> Verdict:
    """Each gated count of each run and flow against the baseline's largest value."""
    grew: list[str] = []
    fell: list[str] = []
    varied: list[str] = []
    for step in runs[0]:
        known = baseline.get(step, {})
        names = sorted({*known, *(name for counts in runs for name in counts[step])})
        for name in names:
            measured = [counts[step].get(name, counts_of(FlowCost())) for counts in runs]
            before = known.get(name)
            for count in GATED:
                values = [m[count] for m in measured]
                if len(set(values)) > 1:
                    varied.append(
                        f"{step}: {name}: {count} took {sorted(set(values))} in {len(values)} runs"
                    )
                now = max(values)
                limit = before[count]["max"] if before else 0
                low = before[count]["min"] if before else 0
                label = count.replace("_", " ")
                if now > limit:
                    kind = "jobs_by_operation" if count == "spark_jobs" else "commits_by_operation"
                    grown = _operations(
                        "operations",
                        measured[values.index(now)][kind],
                        before[kind] if before else {},
                    )
                    grew.append(
                        f"{step} run, flow {name}: {now} {label}, baseline {limit} "
                        f"(+{now - limit}){grown}"
                    )
                elif now < low:
                    fell.append(
                        f"{step} run, flow {name}: {now} {label}, baseline {low} ({now - low})"
                    )
    return Verdict(grew, fell, varied)


# -------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cost_gate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help="measure the workload this many times (default 1; 10 with --update-baseline)",
    )
    parser.add_argument(
        "--update-baseline",
        action="store_true",
        help=f"write the measured counts to {BASELINE.relative_to(PROJECT)}",
    )
    parser.add_argument(
        "--baseline", type=Path, default=BASELINE, help="the baseline to compare with"
    )
    parser.add_argument(
        "--inject-extra-write",
        metavar="FLOW",
        default=None,
        help="write one more commit in FLOW in every run (a self-check: the gate must fail)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=PROJECT / "reports" / "cost" / "counts.json",
        help="where the measured counts go",
    )
    parser.add_argument("--inject-into-run", default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["--inject-into-run"]:
        # A run of the workload with an extra write: `--inject-into-run FLOW run ...`.
        from clickstream.cli import main as clickstream

        run = arguments[2:]
        with extra_write(arguments[1], Path(run[run.index("--warehouse") + 1])):
            return clickstream(run)
    args = _parser().parse_args(arguments)
    runs = args.runs or (10 if args.update_baseline else 1)

    def say(text: str) -> None:
        print(text, flush=True)

    measured: list[Counts] = []
    for number in range(runs):
        say(f"cost: workload run {number + 1} of {runs} ({len(STEPS)} `clickstream run` processes)")
        with tempfile.TemporaryDirectory(prefix="cost-gate-") as workdir:
            measured.append(measure(Path(workdir), inject=args.inject_extra_write, progress=say))
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(measured, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    if args.update_baseline:
        document = {"workload": _workload(), "runs": runs, "counts": baseline_document(measured)}
        args.baseline.write_text(
            json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8"
        )
        say(f"cost: wrote the baseline of {runs} runs to {args.baseline}")
        return 0
    if not args.baseline.is_file():
        say(f"cost: no baseline at {args.baseline}: run with --update-baseline first")
        return 2
    baseline = json.loads(args.baseline.read_text(encoding="utf-8"))
    verdict = compare(baseline["counts"], measured)
    _render(verdict, measured)
    return 0 if verdict.passed else 1


def _workload() -> dict[str, Any]:
    return {"steps": list(STEPS), "events": EVENTS, "seed": SEED, "start": START.isoformat()}


def _render(verdict: Verdict, measured: Sequence[Counts]) -> None:
    for step in STEPS:
        total = measured[0][step].get(UPDATE)
        if total is not None:
            print(
                f"  {step:<13} {total['spark_jobs']:>4} Spark jobs, "
                f"{total['delta_commits']:>3} Delta commits, "
                f"{total['sql_executions']:>4} SQL executions"
            )
    for line in verdict.varied:
        print(f"cost: varied between runs (the baseline keeps the largest): {line}")
    for line in verdict.grew:
        print(f"cost: REGRESSION {line}")
    for line in verdict.fell:
        print(f"cost: improved {line}")
    if verdict.fell and verdict.passed:
        print("cost: counts fell below the baseline; record them: nox -s cost -- --update-baseline")
    print(
        "cost: PASS"
        if verdict.passed
        else "cost: FAIL: a flow does more engine work than the baseline"
    )


if __name__ == "__main__":
    sys.exit(main())
