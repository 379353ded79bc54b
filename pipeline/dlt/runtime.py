"""One update of a user's DLT / Lakeflow pipeline on local Spark and Delta.

Each dataset the sources declare is updated once per update, its inputs first: a query that
reads another dataset (`dlt.read`, `spark.read.table`, `LIVE.x`) updates that one before its
own query is built, so the order is the graph's, found as Databricks finds it, from the
queries. What each kind of dataset becomes:

* a table whose query is streaming: a streaming table, appended by a Structured Streaming
  query with its checkpoint under `<warehouse>/_dlt/checkpoints/<flow>` and the
  `availableNow` trigger, so each update reads only what is new;
* a table whose query is static, or a materialized view: recomputed and overwritten;
* a view: not stored; each reader gets its query (and its expectations) inline;
* a streaming table declared with `create_streaming_table`: fed by its `append_flow`s and by
  AUTO CDC flows, which apply each micro-batch with `pipeline.storage.scd_merge` (Lakeflow's
  SCD type 1 and 2 semantics, late and out-of-order changes placed by `sequence_by`).

Expectations are evaluated where they are declared, in the query's one pass: each rule's
passed and failed rows are observed (`DataFrame.observe`) while the flow writes, `drop` rules
filter, and a row failing a `fail` rule stops the write before it commits. A null result
counts as failed, as in the project's expectation engine. Every flow's rows and its
expectations' counts go to the event log (`pipeline.observe.event_log`).
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from pipeline import errors
from pipeline.dlt.api import CdcFlow, Dataset, Declarations, DeclaredExpectation, QueryFlow
from pipeline.dlt.autoloader import auto_loader
from pipeline.dlt.files import auto_loader_stream, source_schema
from pipeline.errors import ClickstreamError, ConfigurationError
from pipeline.observe.flows import Flow
from pipeline.run.cost import FlowCost, SparkWork
from pipeline.storage import delta_log
from pipeline.storage.scd_merge import change_log_path, merge_changes
from pipeline.transforms.expectations import ExpectationMetric

__all__ = ["STATE_DIR", "ExpectationViolationError", "FlowResult", "Runtime"]

STATE_DIR = "_dlt"
"""The runtime's own folder in the warehouse: checkpoints, Auto Loader schemas, run state."""
STAGE = "dlt"
_FAIL_PREFIX = "EXPECTATION_VIOLATION: "
_counter = itertools.count()


class ExpectationViolationError(ClickstreamError):
    """A row failed an `expect_or_fail` rule: the flow's write stopped before it committed."""


@dataclass
class _Observed:
    """The expectations of one dataset, observed in one flow's write."""

    dataset: str
    rules: tuple[DeclaredExpectation, ...]
    name: str
    observation: Observation | None
    """For a static query; a streaming one reports through its progress, under `name`."""


@dataclass
class FlowResult:
    """What a flow did in this update."""

    flow: Flow
    output_rows: int
    metrics: list[ExpectationMetric] = field(default_factory=list)
    dropped: int = 0
    seconds: float = 0.0
    cost: FlowCost = field(default_factory=FlowCost)
    """What the flow's write cost the engine (its queries' own reads of other datasets, and
    schema inference, count outside the flows)."""


def _condition(rule: DeclaredExpectation) -> Column:
    return F.coalesce(F.expr(rule.constraint), F.lit(False))


def _column_name(value: Any) -> str:
    """A column given as a name or as `col("name")`."""
    if isinstance(value, str):
        return value
    text = str(value)  # Column<'name'>
    return text.split("'")[1] if "'" in text else text


def _names(values: Sequence[Any] | None) -> list[str] | None:
    return None if values is None else [_column_name(v) for v in values]


def violation(error: BaseException) -> str | None:
    """The `dataset: rule` of an expect_or_fail rule that stopped a Spark job, if one did."""
    text = str(error)
    if _FAIL_PREFIX not in text:
        return None
    found = text.split(_FAIL_PREFIX, 1)[1].split("\n", 1)[0].split('"', 1)[0]
    return found.split(" SQLSTATE:", 1)[0].strip()  # Spark 4 appends the error's SQL state


_OUR_ERROR = re.compile(r"^pipeline\.errors\.(\w+): (.+)$", re.MULTILINE)


def _raised_in_batch(error: BaseException) -> ClickstreamError | None:
    """This project's error (an AUTO CDC batch refused, say) that a streaming query's
    `foreachBatch` raised, as itself rather than wrapped in Py4J's report of it."""
    found = _OUR_ERROR.search(str(error))
    if found is None:
        return None
    kind = getattr(errors, found.group(1), None)
    if isinstance(kind, type) and issubclass(kind, ClickstreamError):
        return kind(found.group(2))
    return None


def _batches_with_data(progress: Sequence[Any]) -> list[Any]:
    """One progress report per micro-batch that read rows (a report without new data repeats
    the last batch's observed metrics)."""
    by_batch = {p.batchId: p for p in progress if p.numInputRows}
    return [by_batch[batch] for batch in sorted(by_batch)]


class Runtime:
    """The datasets of `declarations`, updated into `warehouse` on `spark`.

    `report` is called with each flow's `FlowResult` as it ends; `define` with each flow as it
    starts (the event log's `flow_definition`); `say` with progress lines.
    """

    def __init__(
        self,
        spark: SparkSession,
        warehouse: Path,
        declarations: Declarations,
        *,
        define: Callable[[Flow], None],
        report: Callable[[FlowResult], None],
        say: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self.spark = spark
        self.warehouse = warehouse
        self.declarations = declarations
        self._define = define
        self._report = report
        self._say = say
        self._updated: set[str] = set()
        self._updating: list[str] = []
        self._observed: list[_Observed] | None = None
        self._inputs: list[str] | None = None
        self.watched: set[str] = set()
        """The folders the sources read files from: what the next update checks for news."""
        self._warned: set[str] = set()

    # ------------------------------------------------------------------ paths

    def table_path(self, name: str) -> str:
        return str(self.warehouse / name)

    def _checkpoint(self, flow: str) -> str:
        return str(self.warehouse / STATE_DIR / "checkpoints" / flow)

    # ------------------------------------------------------------------ the update

    def update_all(self) -> None:
        """Update every dataset that is stored (views are read by the others), in graph
        order."""
        for name, dataset in self.declarations.datasets.items():
            if dataset.kind != "view":
                self._update(name)

    def _update(self, name: str) -> None:
        if name in self._updated:
            return
        if name in self._updating:
            cycle = " -> ".join([*self._updating[self._updating.index(name) :], name])
            raise ConfigurationError(f"the datasets read each other in a cycle: {cycle}")
        dataset = self.declarations.datasets[name]
        self._updating.append(name)
        try:
            if dataset.kind == "streaming_table":
                for flow in self.declarations.flows:
                    if flow.target == name:
                        self._run_flow(flow, dataset)
            else:
                self._run_query_table(dataset)
        finally:
            self._updating.pop()
        self._updated.add(name)

    @contextmanager
    def _flow_scope(self) -> Iterator[tuple[list[_Observed], list[str]]]:
        outer = self._observed, self._inputs
        self._observed, self._inputs = [], []
        try:
            yield self._observed, self._inputs
        finally:
            self._observed, self._inputs = outer

    # ------------------------------------------------------------------ reads

    def _dataset(self, name: str) -> Dataset:
        found = self.declarations.datasets.get(name)
        if found is None:
            known = ", ".join(sorted(self.declarations.datasets)) or "none"
            raise ConfigurationError(
                f"the query reads {name!r}, which no source of the pipeline declares (its "
                f"datasets: {known}); a table outside the pipeline cannot be read here: land "
                "its data as files and read them with Auto Loader"
            )
        return found

    def read(self, name: str) -> DataFrame:
        """`dlt.read(name)`: a dataset as a static DataFrame."""
        return self._read(name, streaming=False)

    def read_stream(self, name: str) -> DataFrame:
        """`dlt.read_stream(name)`: a dataset as a streaming DataFrame."""
        return self._read(name, streaming=True)

    def _read(self, name: str, *, streaming: bool) -> DataFrame:
        dataset = self._dataset(name)
        if self._inputs is not None:
            self._inputs.append(name)
        if dataset.kind == "view":
            assert dataset.query is not None
            frame = dataset.query()
            if streaming and not frame.isStreaming:
                raise ConfigurationError(
                    f"dlt.read_stream({name!r}) of a view whose query is not streaming: use "
                    "dlt.read, or make the view's query read a stream"
                )
            return self._expected(frame, dataset)
        self._update(name)
        path = self.table_path(name)
        if delta_log.table_version(Path(path)) is None:
            raise ConfigurationError(
                f"the dataset {name!r} has no data yet (its sources had nothing to read): land "
                "its input files before the first update"
            )
        reader = self.spark.readStream if streaming else self.spark.read
        return reader.format("delta").load(path)

    def load(
        self, *, streaming: bool, file_format: str, options: dict[str, str], schema: Any, path: str
    ) -> DataFrame:
        """Files a query reads: Auto Loader for `cloudFiles`, Spark's reader otherwise."""
        if self._inputs is not None:
            self._inputs.append(path)
        self.watched.add(path)
        if file_format.lower() == "cloudfiles":
            if not streaming:
                raise ConfigurationError(
                    'Auto Loader (format "cloudFiles") is a streaming source: read it with '
                    "spark.readStream"
                )
            loader = auto_loader(options, schema_given=schema is not None)
            for ignored in loader.ignored:
                if ignored not in self._warned:
                    self._warned.add(ignored)
                    self._say(f"warning: {ignored} means nothing locally; ignored")
            found = source_schema(self.spark, self.warehouse, loader, path, schema)
            return auto_loader_stream(self.spark, loader, path, found)
        reader = (self.spark.readStream if streaming else self.spark.read).format(file_format)
        reader = reader.options(**options)
        if schema is not None:
            reader = reader.schema(schema)
        return reader.load(path)

    # ------------------------------------------------------------------ expectations

    def _expected(
        self, frame: DataFrame, dataset: Dataset, extra: Sequence[DeclaredExpectation] = ()
    ) -> DataFrame:
        """`frame` under the dataset's expectations, observed for the flow being built."""
        rules = (*dataset.expectations, *extra)
        if not rules:
            return frame
        conditions = [(rule, _condition(rule)) for rule in rules]
        name = f"dlt_{dataset.name}_{next(_counter)}"
        counts = [
            F.count(F.lit(1)).alias("rows"),
            *[F.count_if(~c).alias(f"failed_{i}") for i, (_r, c) in enumerate(conditions)],
        ]
        keep = functools.reduce(
            operator.and_,
            [c for rule, c in conditions if rule.action == "drop"],
            F.lit(True),
        )
        counts.append(F.count_if(~keep).alias("dropped"))
        guard = keep
        for rule, condition in reversed(conditions):
            if rule.action == "fail":
                stop = F.raise_error(F.lit(f"{_FAIL_PREFIX}{dataset.name}: {rule.name}"))
                guard = F.when(~condition, stop).otherwise(guard)
        observation = None if frame.isStreaming else Observation(name)
        observed = frame.observe(observation if observation is not None else name, *counts)
        if self._observed is not None:
            self._observed.append(_Observed(dataset.name, tuple(rules), name, observation))
        return observed.where(guard)

    def _metrics(
        self, observed: Sequence[_Observed], progress: Sequence[Any]
    ) -> tuple[list[ExpectationMetric], int]:
        metrics, dropped = [], 0
        for entry in observed:
            if entry.observation is not None:
                values = dict(entry.observation.get)
            else:
                values = {}
                for batch in _batches_with_data(progress):
                    row = batch.observedMetrics.get(entry.name)
                    for key, value in (row.asDict() if row is not None else {}).items():
                        values[key] = values.get(key, 0) + int(value or 0)
            rows = int(values.get("rows", 0))
            dropped += int(values.get("dropped", 0))
            for index, rule in enumerate(entry.rules):
                failed = int(values.get(f"failed_{index}", 0))
                metrics.append(
                    ExpectationMetric(entry.dataset, rule.name, rule.action, rows - failed, failed)  # type: ignore[arg-type]
                )
        return metrics, dropped

    # ------------------------------------------------------------------ flows

    def _started(self, name: str, output: str, inputs: Sequence[str]) -> Flow:
        flow = Flow(name, output, tuple(dict.fromkeys(inputs)), STAGE)
        self._define(flow)
        self._say(f"flow {name} -> {output} ...")
        return flow

    def _finish(
        self,
        flow: Flow,
        before: int | None,
        observed: Sequence[_Observed],
        progress: Sequence[Any],
        started: float,
        work: SparkWork,
    ) -> None:
        path = Path(self.table_path(flow.output))
        after = delta_log.table_version(path)
        rows = delta_log.output_rows(path, before, after)
        metrics, dropped = self._metrics(observed, progress)
        spark = sum(work.by_flow().values(), FlowCost())
        written = FlowCost.of_commits(delta_log.commits(path, before, after))
        spent = replace(spark + written, micro_batches=len(_batches_with_data(progress)))
        result = FlowResult(flow, rows, metrics, dropped, time.perf_counter() - started, spent)
        self._report(result)
        note = f", {dropped:,} dropped by expectations" if dropped else ""
        self._say(f"flow {flow.name}: {rows:,} rows written{note} ({result.seconds:.1f} s)")

    def _run_query_table(self, dataset: Dataset) -> None:
        assert dataset.query is not None
        started = time.perf_counter()
        path = self.table_path(dataset.name)
        with self._flow_scope() as (observed, inputs):
            frame = self._expected(dataset.query(), dataset)
            streaming = frame.isStreaming
            if dataset.kind == "materialized_view" and streaming:
                raise ConfigurationError(
                    f"{self.declarations.source_path}:{dataset.line}: the materialized view "
                    f"{dataset.name!r} returns a streaming query: declare it with @dlt.table "
                    "(a streaming table), or read with dlt.read"
                )
            flow = self._started(dataset.name, dataset.name, inputs)
            work = SparkWork(self.spark)
            before = delta_log.table_version(Path(path))
            if streaming:
                progress = self._stream(frame, flow.name, path, dataset)
            else:
                self._write_static(frame, path, dataset)
                progress = []
        self._finish(flow, before, observed, progress, started, work)

    def _run_flow(self, flow_declared: QueryFlow | CdcFlow, target: Dataset) -> None:
        started = time.perf_counter()
        path = self.table_path(target.name)
        with self._flow_scope() as (observed, inputs):
            if isinstance(flow_declared, CdcFlow):
                changes = self._expected(self.read_stream(flow_declared.source), target)
                flow = self._started(flow_declared.name, target.name, inputs)
                work = SparkWork(self.spark)
                before = delta_log.table_version(Path(path))
                progress = self._apply_changes(changes, flow_declared, path)
            else:
                frame = self._expected(flow_declared.query(), target)
                flow = self._started(flow_declared.name, target.name, inputs)
                work = SparkWork(self.spark)
                before = delta_log.table_version(Path(path))
                if frame.isStreaming:
                    progress = self._stream(frame, flow.name, path, target)
                else:
                    frame.write.format("delta").mode("append").option("mergeSchema", "true").save(
                        path
                    )
                    progress = []
        self._finish(flow, before, observed, progress, started, work)

    def _write_static(self, frame: DataFrame, path: str, dataset: Dataset) -> None:
        writer = frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
        partitions = dataset.options.get("partition_cols")
        if partitions:
            writer = writer.partitionBy(*partitions)
        self._guarded(lambda: writer.save(path))

    def _stream(self, frame: DataFrame, flow: str, path: str, dataset: Dataset) -> list[Any]:
        writer = (
            frame.writeStream.format("delta")
            .outputMode("append")
            .option("checkpointLocation", self._checkpoint(flow))
            .option("mergeSchema", "true")
            .trigger(availableNow=True)
        )
        partitions = dataset.options.get("partition_cols")
        if partitions:
            writer = writer.partitionBy(*partitions)
        query = writer.start(path)
        self._guarded(query.awaitTermination)
        return list(query.recentProgress)

    def _apply_changes(self, changes: DataFrame, flow: CdcFlow, path: str) -> list[Any]:
        options: dict[str, Any] = {
            "keys": [_column_name(k) for k in flow.keys],
            "sequence_by": flow.sequence_by,
            "stored_as_scd_type": flow.stored_as_scd_type,
            "apply_as_deletes": flow.apply_as_deletes,
            "apply_as_truncates": flow.apply_as_truncates,
            "column_list": _names(flow.column_list),
            "except_column_list": _names(flow.except_column_list),
            "track_history_column_list": _names(flow.track_history_column_list),
            "track_history_except_column_list": _names(flow.track_history_except_column_list),
            "ignore_null_updates": flow.ignore_null_updates,
        }
        spark = self.spark

        def apply(batch: DataFrame, batch_id: int) -> None:
            # Read once: the merge reads its batch twice, and each read would count the
            # expectations observed on it again.
            batch = batch.localCheckpoint()
            merge_changes(
                spark, batch, path=path, batch_id=batch_id, app_id=f"dlt:{flow.name}", **options
            )

        if not changes.isStreaming:
            self._guarded(lambda: apply(changes, 0))
            return []
        query = (
            changes.writeStream.foreachBatch(apply)
            .option("checkpointLocation", self._checkpoint(flow.name))
            .trigger(availableNow=True)
            .start()
        )
        self._guarded(query.awaitTermination)
        return list(query.recentProgress)

    def _guarded(self, action: Callable[[], object]) -> None:
        """Run a write; a row failing an expect_or_fail rule becomes an error naming it."""
        try:
            action()
        except Exception as error:
            stopped = violation(error)
            if stopped is None:
                inner = _raised_in_batch(error)
                if inner is None:
                    raise
                raise inner from None
            raise ExpectationViolationError(
                f"the expect_or_fail rule {stopped.split(': ', 1)[-1]!r} of "
                f"{stopped.split(': ', 1)[0]!r} failed on a row: the flow stopped before "
                "committing its batch (nothing of it was written); fix the data or the rule, "
                "then run again"
            ) from None


def reset(warehouse: Path, declarations: Declarations) -> None:
    """A full refresh's start: every dataset's table, change log, checkpoint and Auto Loader
    schema deleted (the event log stays)."""
    for name in declarations.datasets:
        path = warehouse / name
        shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(change_log_path(str(path)), ignore_errors=True)
    shutil.rmtree(warehouse / STATE_DIR, ignore_errors=True)
