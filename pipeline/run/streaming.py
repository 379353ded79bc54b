"""What every streaming stage shares: exactly-once writes, running to the end, typed errors.

Each stage is one Structured Streaming query with `trigger(availableNow=True)` whose
`foreachBatch` function writes one micro-batch to one or more Delta tables. Every append of a
batch happens once (`pipeline.storage.delta_tables.append_once`): a batch replayed after a
crash skips the writes it had already committed, and recomputes the others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from pipeline.errors import ExpectationFailedError
from pipeline.run import cost
from pipeline.transforms.expectations import ExpectationMetric

__all__ = [
    "BatchFunction",
    "BatchReport",
    "InputRows",
    "in_parallel",
    "report_batch",
    "run_to_end",
]

BatchFunction = Callable[[DataFrame, int], None]
InputRows = Mapping[str, int | None]
BatchReport = Callable[[int, InputRows, Mapping[str, Sequence[ExpectationMetric]]], None]
"""Called after a micro-batch's writes with its id, the rows each flow read (None when a
replayed batch did not count them) and its expectation metrics per table."""


def report_batch(
    report: BatchReport | None,
    batch_id: int,
    input_rows: InputRows,
    metrics: Mapping[str, Sequence[ExpectationMetric]] | None = None,
) -> None:
    """Report a written micro-batch, when a report is wanted."""
    if report is not None:
        report(batch_id, input_rows, metrics or {})


def in_parallel(spark: SparkSession, writes: Mapping[str, Callable[[], object]]) -> None:
    """Run independent writes (to different tables) at once; raise the first failure.

    `writes` maps each write to the flow whose work it is (`pipeline.run.cost.flow`). Each Delta
    commit spends most of its time on the driver (log, checksum, small jobs), so two at once
    on two cores take little longer than one.
    """

    def counted(name: str, task: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            with cost.flow(spark, name):
                return task()

        return run

    tasks = [counted(name, task) for name, task in writes.items()]
    if len(tasks) <= 1:
        for task in tasks:
            task()
        return
    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        futures = [pool.submit(task) for task in tasks]
        for future in futures:
            future.result()


def run_to_end(query: StreamingQuery, failures: list[ExpectationFailedError]) -> None:
    """Wait for an `availableNow` query to process everything there is.

    Raises:
        ExpectationFailedError: a batch failed an `expect_or_fail` rule (recorded in
            `failures` by `recording`); the query stopped with that batch uncommitted.
    """
    try:
        query.awaitTermination()
    except StreamingQueryException as exc:
        if failures:
            raise failures[0] from exc
        raise
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: stop the query (its batch in flight stays uncommitted, as after
        # a kill) before the update is recorded CANCELED.
        query.stop()
        raise


def recording(write_batch: BatchFunction, failures: list[ExpectationFailedError]) -> BatchFunction:
    """Wrap a foreachBatch function so that the typed error it raises survives the query.

    Spark reports an error in foreachBatch as a `StreamingQueryException` holding only text;
    the original is kept here and re-raised by `run_to_end`.
    """

    def run(batch: DataFrame, batch_id: int) -> None:
        try:
            write_batch(batch, batch_id)
        except ExpectationFailedError as error:
            failures.append(error)
            raise

    return run


def run_stream(
    source: DataFrame, write_batch: BatchFunction, *, checkpoint: str, flow: str
) -> None:
    """Run `write_batch` over every micro-batch `source` has now, then stop.

    The query's work counts for `flow` (`pipeline.run.cost`), unless `write_batch` says otherwise.

    Raises:
        ExpectationFailedError: a batch failed an `expect_or_fail` rule; it stays uncommitted.
    """
    failures: list[ExpectationFailedError] = []
    query = (
        source.writeStream.foreachBatch(recording(write_batch, failures))
        .queryName(cost.query_name(flow))
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    run_to_end(query, failures)
