"""Where Spark's JVM output goes: its stdout and stderr to a log file instead of the terminal
(`jvm_output_to`), and failed queries not logged as Java stack traces (`quiet_query_failures`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.sql import SparkSession

__all__ = ["QUERY_FAILURE_LOGGERS", "jvm_output_to", "quiet_query_failures"]


@contextmanager
def jvm_output_to(log_file: Path) -> Iterator[None]:
    """Give every process started inside the block `log_file` as its stdout and stderr.

    Spark's JVM is such a process: pyspark starts it without redirecting its output, so it
    inherits this process's file descriptors 1 and 2 and keeps them for its whole life. They
    point at `log_file` (opened for appending, its directory created) while the block runs,
    and at what they pointed at before once it ends, however it ends. Python's `sys.stdout`
    and `sys.stderr` write through those descriptors too: what this process itself prints
    inside the block also goes to the file, and what it prints after the block does not.

    Py4J talks to the JVM over a socket, and pyspark reads the JVM's port from a file, so
    neither needs the descriptors.

    Raises:
        OSError: the log file cannot be created or opened for appending.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        sys.stdout.flush()
        sys.stderr.flush()
        saved_stdout, saved_stderr = os.dup(1), os.dup(2)
        try:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_stdout, 1)
            os.dup2(saved_stderr, 2)
            os.close(saved_stdout)
            os.close(saved_stderr)


QUERY_FAILURE_LOGGERS: tuple[str, ...] = (
    "org.apache.spark.sql.execution.streaming.runtime.MicroBatchExecution",
    # A task that raises (a failed `expect_or_fail` rule is one) is logged by each of these,
    # with its stack trace, before the job's failure reaches the driver.
    "org.apache.spark.executor.Executor",
    "org.apache.spark.scheduler.TaskSetManager",
    "org.apache.spark.util.Utils",
    "org.apache.spark.sql.delta.files.DeltaFileFormatWriter",
    # A MERGE whose job fails (a full disk, say) logs the failure before raising it.
    "org.apache.spark.sql.delta.commands.MergeIntoCommand",
    # The other tasks of the failed stage are cancelled while they read shuffle blocks.
    "org.apache.spark.storage.ShuffleBlockFetcherIterator",
)


def quiet_query_failures(spark: SparkSession) -> None:
    """Keep Spark from logging a failed query or task as Java stack traces.

    The runner re-raises every query failure to its caller (a failed `expect_or_fail` rule as
    `ExpectationFailedError`, other failures with the task's error as their cause), so these
    logs only printed the same error first, unreadably, a few hundred lines of it.
    """
    log4j = spark.sparkContext._jvm.org.apache.logging.log4j  # type: ignore[union-attr]
    for logger in QUERY_FAILURE_LOGGERS:
        log4j.core.config.Configurator.setLevel(logger, log4j.Level.FATAL)
