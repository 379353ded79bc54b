"""What a run costs the engine, counted: Spark jobs, SQL executions, Delta commits, files and
bytes written and micro-batches, per flow and per update.

Time on a shared machine moves 15% between runs of unchanged code; the number of Spark jobs,
SQL executions and Delta commits a fixed workload causes does not. So every update records
its counts in the event log (`pipeline.observe.event_log`, the `engine_cost` object beside each
event's details), `clickstream history --update ID` shows them, and `nox -s cost` compares
them with a committed baseline.

How work is attributed to a flow: the code of a flow runs inside `flow(spark, name)`, which
starts the thread's Spark job description with `flow=<name>`. Every Spark job and SQL
execution started in that thread, or in a thread it starts (`pipeline.run.streaming.in_parallel`
copies the description), carries that description, and so does every micro-batch of a
streaming query started inside it: the query is named by it, and Spark begins each batch's
description with the query's name. `SparkWork` reads the jobs and executions Spark's status
store holds since it started and sorts them by flow; what ran outside every flow (reading the
tables' sizes, say) counts for the update alone. Commits, files and bytes come from the Delta
logs of the tables a flow writes (`pipeline.storage.delta_log.commits`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from pipeline.storage.delta_log import Commit

__all__ = [
    "COST_KEY",
    "FlowCost",
    "SparkWork",
    "UpdateCost",
    "flow",
    "flow_of",
    "operation",
    "query_name",
    "size",
    "stage_costs",
    "update_cost",
]

COST_KEY = "engine_cost"
"""The key of the cost object in an event's `details`, beside the event type's own object."""

_DESCRIPTION = "spark.job.description"
_MARK = re.compile(r"flow=([A-Za-z0-9_]+)")


def query_name(name: str) -> str:
    """The name of a streaming query run for flow `name`: Spark starts the description of
    each of its micro-batches with it, so their jobs count for the flow."""
    return f"flow={name}"


def flow_of(description: str | None) -> str | None:
    """The flow a Spark job or SQL execution description names (`flow=<name>`), if any.

    >>> flow_of("Delta: flow=gold_dim_page : Filtering files for query")
    'gold_dim_page'
    >>> flow_of("collect at gold_stage.py:331") is None
    True
    """
    match = _MARK.search(description or "")
    return match.group(1) if match else None


@contextmanager
def flow(spark: SparkSession, name: str) -> Iterator[None]:
    """Count the Spark jobs and SQL executions this thread starts inside the block for flow
    `name` (an inner block names its own flow; the outer one's comes back after it)."""
    context = spark.sparkContext
    before = context.getLocalProperty(_DESCRIPTION)
    rest = _MARK.sub("", before or "").strip()
    context.setJobDescription(f"{query_name(name)} {rest}".strip())
    try:
        yield
    finally:
        context.setJobDescription(before)  # type: ignore[arg-type]  # None clears it


_STREAM_BATCH = re.compile(r"\s*id = [0-9a-f-]+\s+runId = [0-9a-f-]+\s+batch = [\w-]+")
_NUMBER = re.compile(r"\d+")
_CALL_SITE = re.compile(r"^(\S+) at (?:\S*/)?([^/:\s]+)(?::\d+)?$")


def operation(description: str | None, call_site: str) -> str:
    """What a Spark job did, in words that stay the same from run to run: its description
    without the flow, the streaming batch and numbers, else the call site without its line.

    >>> operation("Delta: flow=silver_events : Compute snapshot for version: 12", "x at y:1")
    'Delta: Compute snapshot for version: N'
    >>> operation(None, "collect at /work/pipeline/run/gold_stage.py:331")
    'collect at gold_stage.py'
    """
    text = _STREAM_BATCH.sub(" ", _MARK.sub(" ", description or ""))
    text = " ".join(text.replace(" : ", ": ").split()).strip(" :-")
    text = re.sub(r"^(Delta:)\s*[:\-]\s*", r"\1 ", text)
    if text and text != "Delta:":
        return _NUMBER.sub("N", text)
    site = _CALL_SITE.match(call_site.strip())
    return f"{site.group(1)} at {site.group(2)}" if site else call_site.strip()


@dataclass(frozen=True)
class FlowCost:
    """The engine's work for one flow in one update (or for a whole update).

    Attributes:
        spark_jobs: Spark jobs started.
        sql_executions: SQL executions started.
        delta_commits: commits to the Delta tables it writes.
        files_written: data files those commits added.
        bytes_written: their bytes.
        micro_batches: streaming micro-batches run.
        jobs_by_operation: Spark jobs per operation (`operation`).
        commits_by_operation: Delta commits per operation (`WRITE`, `MERGE`, ...).
    """

    spark_jobs: int = 0
    sql_executions: int = 0
    delta_commits: int = 0
    files_written: int = 0
    bytes_written: int = 0
    micro_batches: int = 0
    jobs_by_operation: Mapping[str, int] = field(default_factory=dict)
    commits_by_operation: Mapping[str, int] = field(default_factory=dict)

    def __add__(self, other: FlowCost) -> FlowCost:
        return FlowCost(
            spark_jobs=self.spark_jobs + other.spark_jobs,
            sql_executions=self.sql_executions + other.sql_executions,
            delta_commits=self.delta_commits + other.delta_commits,
            files_written=self.files_written + other.files_written,
            bytes_written=self.bytes_written + other.bytes_written,
            micro_batches=self.micro_batches + other.micro_batches,
            jobs_by_operation=dict(
                Counter(self.jobs_by_operation) + Counter(other.jobs_by_operation)
            ),
            commits_by_operation=dict(
                Counter(self.commits_by_operation) + Counter(other.commits_by_operation)
            ),
        )

    @classmethod
    def of_commits(cls, commits: list[Commit]) -> FlowCost:
        """The commits, files and bytes of a flow's Delta commits."""
        return cls(
            delta_commits=len(commits),
            files_written=sum(c.files for c in commits),
            bytes_written=sum(c.bytes for c in commits),
            commits_by_operation=dict(Counter(c.operation for c in commits)),
        )

    def to_json(self) -> dict[str, Any]:
        """As the event log keeps it."""
        return {
            "spark_jobs": self.spark_jobs,
            "sql_executions": self.sql_executions,
            "delta_commits": self.delta_commits,
            "files_written": self.files_written,
            "bytes_written": self.bytes_written,
            "micro_batches": self.micro_batches,
            "jobs_by_operation": dict(sorted(self.jobs_by_operation.items())),
            "commits_by_operation": dict(sorted(self.commits_by_operation.items())),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FlowCost:
        """Read back what `to_json` wrote."""
        return cls(
            **{name: int(data.get(name, 0)) for name in _COUNTS},
            jobs_by_operation={k: int(v) for k, v in data.get("jobs_by_operation", {}).items()},
            commits_by_operation={
                k: int(v) for k, v in data.get("commits_by_operation", {}).items()
            },
        )

    def summary(self) -> str:
        """`146 Spark jobs, 9 Delta commits, ...` in one line."""
        return (
            f"{self.spark_jobs:,} Spark jobs, {self.delta_commits:,} Delta commits, "
            f"{self.sql_executions:,} SQL executions, {self.files_written:,} files "
            f"({size(self.bytes_written)}) written, {self.micro_batches:,} micro-batches"
        )


_COUNTS = (
    "spark_jobs",
    "sql_executions",
    "delta_commits",
    "files_written",
    "bytes_written",
    "micro_batches",
)


def size(count: int) -> str:
    """A byte count for people: `130.7 kB`."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def stage_costs(
    spark_by_flow: Mapping[str | None, FlowCost],
    commits_by_table: Mapping[str, list[Commit]],
    flow_of_table: Mapping[str, str],
    *,
    micro_batches: int,
) -> dict[str, FlowCost]:
    """What each flow of a stage cost: its Spark work (`SparkWork.by_flow` over the stage),
    the commits of the tables it writes, and the stage's micro-batches."""
    flows = dict.fromkeys(flow_of_table.values())
    costs = {name: spark_by_flow.get(name, FlowCost()) for name in flows}
    for table, commits in commits_by_table.items():
        name = flow_of_table[table]
        costs[name] = costs[name] + FlowCost.of_commits(commits)
    return {
        name: FlowCost(**{**_fields(spent), "micro_batches": micro_batches})
        for name, spent in costs.items()
    }


def _fields(spent: FlowCost) -> dict[str, Any]:
    return {name: getattr(spent, name) for name in (*_COUNTS, *_OPERATIONS)}


_OPERATIONS = ("jobs_by_operation", "commits_by_operation")


def update_cost(
    spark_by_flow: Mapping[str | None, FlowCost],
    flow_costs: Mapping[str, FlowCost],
    commits: list[Commit],
    *,
    micro_batches: int,
) -> UpdateCost:
    """An update's cost: all its Spark work (`SparkWork.by_flow` over the update), all the
    commits of its tables, its micro-batches, and what of it no flow did."""
    spark = sum(spark_by_flow.values(), FlowCost())
    flows = sum(flow_costs.values(), FlowCost())
    written = FlowCost.of_commits(commits)
    outside = spark_by_flow.get(None, FlowCost())
    outside_commits = Counter(written.commits_by_operation)
    outside_commits.subtract(flows.commits_by_operation)
    return UpdateCost(
        total=FlowCost(**{**_fields(spark + written), "micro_batches": micro_batches}),
        outside_flows=FlowCost(
            spark_jobs=outside.spark_jobs,
            sql_executions=outside.sql_executions,
            delta_commits=written.delta_commits - flows.delta_commits,
            files_written=written.files_written - flows.files_written,
            bytes_written=written.bytes_written - flows.bytes_written,
            jobs_by_operation=outside.jobs_by_operation,
            commits_by_operation={k: v for k, v in outside_commits.items() if v},
        ),
    )


@dataclass(frozen=True)
class UpdateCost:
    """The engine's work for one update.

    Attributes:
        total: everything the update did (its flows, and what ran outside them).
        outside_flows: the part of `total` no flow did.
        spark_start_seconds: how long starting Spark took (None: it was started by the
            caller, or not at all).
        event_log_commits: commits to the event log itself (written without Spark).
    """

    total: FlowCost = field(default_factory=FlowCost)
    outside_flows: FlowCost = field(default_factory=FlowCost)
    spark_start_seconds: float | None = None
    event_log_commits: int = 0

    def to_json(self) -> dict[str, Any]:
        """As the event log keeps it."""
        return {
            **self.total.to_json(),
            "outside_flows": self.outside_flows.to_json(),
            "spark_start_seconds": self.spark_start_seconds,
            "event_log_commits": self.event_log_commits,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UpdateCost:
        """Read back what `to_json` wrote."""
        seconds = data.get("spark_start_seconds")
        return cls(
            total=FlowCost.from_json(data),
            outside_flows=FlowCost.from_json(data.get("outside_flows", {})),
            spark_start_seconds=None if seconds is None else float(seconds),
            event_log_commits=int(data.get("event_log_commits", 0)),
        )

    def summary(self) -> str:
        """The one line `clickstream run` ends with."""
        line = self.total.summary()
        if self.spark_start_seconds is not None:
            line += f"; Spark started in {self.spark_start_seconds:.1f} s"
        return line


class SparkWork:
    """The Spark jobs and SQL executions a session ran since this object was made, by flow.

    Read from Spark's status store (kept whether or not the UI runs) through the JVM
    gateway: PySpark has no public API for it. Job and execution ids grow one by one, so
    the counts are exact even when the store has dropped old entries (past
    `spark.ui.retainedJobs` / `spark.sql.ui.retainedExecutions`); only those are left out of
    the flows, and counted outside them.
    """

    def __init__(self, spark: SparkSession) -> None:
        self._context = spark.sparkContext._jsc.sc()
        self._sql = spark._jsparkSession.sharedState().statusStore()
        self._start_job, self._start_execution = self._newest()

    def _newest(self) -> tuple[int, int]:
        """The newest job and execution ids, once Spark has recorded all it started."""
        self._context.listenerBus().waitUntilEmpty()
        jobs = self._context.statusStore().jobsList(None)
        newest_job = jobs.head().jobId() if jobs.nonEmpty() else -1
        count = self._sql.executionsCount()
        executions = self._sql.executionsList(max(0, count - 1), 1) if count else None
        newest_execution = executions.head().executionId() if executions else -1
        return int(newest_job), int(newest_execution)

    def by_flow(self) -> dict[str | None, FlowCost]:
        """Jobs, executions and jobs per operation since the start, per flow (None: no flow)."""
        newest_job, newest_execution = self._newest()
        jobs: Counter[str | None] = Counter()
        executions: Counter[str | None] = Counter()
        operations: dict[str | None, Counter[str]] = {}
        store = self._context.statusStore()
        for job_id in range(self._start_job + 1, newest_job + 1):
            described = _job(store, job_id)
            name = None if described is None else flow_of(described[0])
            jobs[name] += 1
            if described is not None:
                operations.setdefault(name, Counter())[operation(*described)] += 1
        for execution_id in range(self._start_execution + 1, newest_execution + 1):
            found = self._sql.execution(execution_id)
            executions[flow_of(found.get().description()) if found.isDefined() else None] += 1
        return {
            name: FlowCost(
                spark_jobs=jobs[name],
                sql_executions=executions[name],
                jobs_by_operation=dict(operations.get(name, {})),
            )
            for name in {*jobs, *executions}
        }


def _job(store: Any, job_id: int) -> tuple[str | None, str] | None:
    """A job's description and call site, or None when the store no longer holds it."""
    try:
        data = store.job(job_id)
    except Exception:  # the JVM's NoSuchElementException: a job the store has dropped
        return None
    description = data.description()
    return (description.get() if description.isDefined() else None), str(data.name())
