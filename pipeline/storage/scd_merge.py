"""SCD tables kept in Delta: one batch of changes at a time, with the semantics of AUTO CDC.

`pipeline.transforms.scd2.apply_changes` computes a whole SCD table from a change feed;
`merge_changes` applies one batch of changes to a Delta table with it, touching only the keys
the batch mentions, and keeps every change in a change log beside the table (at
`<path>__changes`). After any sequence of batches, in any arrival order, the table equals
`apply_changes` over the union of all the changes.
"""

from __future__ import annotations

import functools
import operator
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Unpack

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from pipeline.errors import ChangeFeedError
from pipeline.storage import delta_log
from pipeline.storage.delta_tables import (
    append_once,
    create_table_if_absent,
    key_condition,
    replace_where,
    stats_columns,
)
from pipeline.transforms.scd2 import CdcOptions, apply_changes, plan_changes

__all__ = ["CHANGE_LOG_SUFFIX", "MergeResult", "change_log_path", "merge_changes"]

CHANGE_LOG_SUFFIX = "__changes"
"""`merge_changes` keeps the change log of the table at `<path>` at `<path>__changes`."""

_FROM_LOG = "__scd_from_log"


def change_log_path(path: str) -> str:
    """Where `merge_changes` keeps the change log of the SCD table at `path`."""
    return f"{path.rstrip('/')}{CHANGE_LOG_SUFFIX}"


def _check_tables(spark: SparkSession, path: str, log_path: str) -> tuple[bool, bool]:
    """Whether the table and its change log exist; they must come and go together."""
    has_table = delta_log.table_version(Path(path)) is not None
    has_log = delta_log.table_version(Path(log_path)) is not None
    if has_table and not has_log and not spark.read.format("delta").load(path).isEmpty():
        raise ChangeFeedError(
            f"the Delta table {path} has rows but no change log at {log_path}, so it was not "
            "written by merge_changes and late changes cannot be placed in it. Rebuild it "
            "with merge_changes from the full change feed."
        )
    if has_log and not has_table:
        raise ChangeFeedError(
            f"the change log {log_path} exists but its table {path} does not; delete the "
            "change log to start over, or restore the table"
        )
    return has_table, has_log


@dataclass(frozen=True)
class MergeResult:
    """What `merge_changes` applied.

    Attributes:
        changes: the batch's changes.
        keys: the distinct keys they touch (tuples in key order; null keys left out).
        first: the smallest `sequence_by` value among them (None for an empty batch).
    """

    changes: int
    keys: list[tuple[object, ...]]
    first: object | None


def merge_changes(
    spark: SparkSession,
    changes: DataFrame,
    *,
    path: str,
    derived_columns: Mapping[str, Column] | None = None,
    cluster_by: Sequence[str] | None = None,
    batch_id: int | None = None,
    app_id: str | None = None,
    on_create: Callable[[DataFrame], DataFrame] | None = None,
    **options: Unpack[CdcOptions],
) -> MergeResult:
    """Apply one batch of changes to the Delta SCD table at `path`, in one commit.

    Every change applied is also appended to a change log, a Delta table at
    `change_log_path(path)` clustered by the keys. For the keys in the batch, the rows are
    recomputed by `apply_changes` over their logged changes plus the batch, and one overwrite
    by condition (`pipeline.storage.delta_tables.replace_where`) replaces those keys' rows by them.
    So
    a late change that falls between versions already written splits the interval,
    duplicates and re-deliveries count once, and the work grows with the batch and the
    history of its keys. What grows with the table is one scan of the log (for the keys'
    history) and the overwrite's scan of the table's key columns; deletion vectors spare
    rewriting the table's files. A batch of an SCD1 feed with truncates recomputes every key.

    The first call creates both tables with their first rows, clustered by the keys unless
    told otherwise. Invalid changes raise before anything is written. The table is written
    before the log, and writing it again gives the same rows, so a batch that failed between
    the two can simply be applied again.

    Args:
        spark: the session.
        changes: a static DataFrame of changes, such as a `foreachBatch` micro-batch; every
            batch must have the same columns.
        path: the Delta table to maintain.
        derived_columns: columns computed from each row of the SCD table, placed first, such
            as a surrogate key from the keys and `__START_AT`. They must be deterministic.
        cluster_by: liquid clustering columns for a new table and its change log; defaults to
            the keys that are not personal (Delta keeps no statistics on those).
        batch_id: with `app_id`, makes the batch's appends happen once across retries
            (`pipeline.storage.delta_tables.append_once`), as a streaming micro-batch id
            does; a batch whose keys have no history yet is then appended rather than merged.
        app_id: the writer's identity for `batch_id`; defaults to one derived from `path`.
        on_create: what the table's first rows become when this call creates it, such as
            the rows plus a dimension's unknown member.
        **options: the options of `apply_changes` (`keys`, `sequence_by`, ...).

    Returns:
        How many changes the batch held, the keys they touch and their first sequence value,
        counted in the pass that reads the batch and its keys' history.

    Raises:
        ChangeFeedError: as `apply_changes` does, or when the table and its log disagree.
    """
    plan = plan_changes(changes.columns, **options)
    log_path = change_log_path(path)
    has_table, has_log = _check_tables(spark, path, log_path)
    marked = changes.select("*", F.lit(False).alias(_FROM_LOG))
    if has_log:
        logged = spark.read.format("delta").load(log_path)
        if plan.truncates is None:  # a truncate concerns every key
            batch_keys = changes.select(*plan.keys).distinct()
            logged = logged.join(batch_keys, list(plan.keys), "left_semi")
        # A batch may bring a column the log does not have yet (a source whose schema
        # evolved), or lack one it has: each side's missing columns are null.
        marked = marked.unionByName(
            logged.select("*", F.lit(True).alias(_FROM_LOG)), allowMissingColumns=True
        )
    # One pass reads the batch and its keys' history, for the check and the compute, and
    # counts what the rest needs to know.
    from_batch = ~F.col(_FROM_LOG)
    known = functools.reduce(operator.and_, [F.col(k).isNotNull() for k in plan.keys])
    counting = Observation(f"scd:{uuid.uuid4().hex}")
    marked = marked.observe(
        counting,
        F.count_if(from_batch).alias("changes"),
        F.count_if(~from_batch).alias("history"),
        F.collect_set(F.when(from_batch & known, F.struct(*plan.keys))).alias("keys"),
        F.min(F.when(from_batch, plan.sequence)).alias("first"),
    ).localCheckpoint()
    observed = counting.get
    result = MergeResult(
        int(observed["changes"]), [tuple(key) for key in observed["keys"]], observed["first"]
    )
    history = marked.drop(_FROM_LOG)
    table = apply_changes(history, **options)
    extra = derived_columns or {}
    table = table.select(*[column.alias(name) for name, column in extra.items()], *table.columns)

    # Clustering needs statistics, which personal columns never have.
    indexed = set(stats_columns(table.schema))
    clustering = [key for key in plan.keys if key in indexed] if cluster_by is None else cluster_by
    writer = app_id or f"merge_changes:{path}"
    if not has_table:
        # The first rows create the table (clustered ones need it declared first).
        if clustering:
            create_table_if_absent(spark, path, table.schema, cluster_by=clustering)
        first = on_create(table) if on_create is not None else table
        if batch_id is None:
            first.write.format("delta").mode("append").save(path)
        else:
            append_once(first, path, query=f"{writer}:table", batch_id=batch_id)
    elif batch_id is not None and not observed["history"]:
        # No key of the batch has a history: its rows are new, appended (once).
        append_once(table, path, query=f"{writer}:table", batch_id=batch_id)
    elif plan.truncates is not None:
        # A truncate concerns every key: the whole table is recomputed.
        replace_where(table, path, F.lit(True))
    else:
        # Replace every row of the keys concerned by their recomputed rows.
        replace_where(table, path, key_condition(plan.keys, result.keys))
    if not has_log and clustering:
        create_table_if_absent(spark, log_path, changes.schema, cluster_by=clustering)
    if batch_id is None:
        changes.write.format("delta").mode("append").save(log_path)
    else:
        append_once(changes, log_path, query=writer, batch_id=batch_id)
    return result
