"""SCD Type 1 and Type 2 tables from a change feed, with the semantics of Lakeflow AUTO CDC.

`apply_changes` takes the arguments of Databricks' `dp.create_auto_cdc_flow` (formerly
`dlt.apply_changes`) and returns the whole resulting table, so code ports one to one. It is
pure: DataFrames in, a DataFrame out, no table written. `pipeline.storage.scd_merge` applies
one batch of changes to a Delta table with it, touching only the keys the batch mentions;
after any sequence of batches, in any arrival order, the table equals `apply_changes` over the
union of all the changes.

Semantics, per key, in `sequence_by` order whatever the arrival order:

* A change matching `apply_as_deletes` deletes the row (SCD1) or closes the open version
  (SCD2: its `__END_AT` becomes the delete's sequence value); any other change upserts. A later
  upsert for a deleted key opens a new version. Deleting an absent key does nothing.
* SCD2 versions carry `__START_AT` and `__END_AT`, typed like `sequence_by`; the open version
  has a null `__END_AT`. Intervals are half-open, `[__START_AT, __END_AT)`, contiguous until
  a delete.
* An upsert whose tracked columns (all output columns, or `track_history_column_list`, or all
  but `track_history_except_column_list`) equal the open version's opens no version; its
  untracked columns update the open version in place.
* `ignore_null_updates=True`: a null column of an upsert keeps the value of the current row or
  version; after a delete there is none, so nulls stay null.
* `apply_as_truncates` (SCD1 only, as on Databricks) empties the table at its sequence value:
  every key is deleted there; changes sequenced after it apply as usual.

Choices where Databricks leaves room, stated so they can be relied on:

* Duplicates: changes with the same key and sequence value that would have the same effect
  (same operation and output values, for example a re-delivered row) count once. Two different
  changes at one key and sequence value are ambiguous: `ChangeFeedError`, naming them. A
  truncate sequenced exactly at a change is ambiguous too.
* Null key values, and null sequence values (or a null field of a struct `sequence_by`), raise
  `ChangeFeedError`; so do unknown column names and option combinations Databricks rejects.
* Ties: order by a struct, such as `F.struct("changed_at", "sequence_num")`; structs compare
  field by field, so later fields break ties of earlier ones.
* `target` in `apply_changes` is read as history: each version as an upsert at its
  `__START_AT`, each close not followed by a version as a delete at its `__END_AT` (SCD1 rows
  as upserts before every change). Changes it absorbed without a trace (an upsert equal to the
  version it fell into) cannot be recovered from it; `pipeline.storage.scd_merge` keeps every
  change in a change log beside the table, which is what makes it exact.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NotRequired, Required, TypedDict

from pyspark.sql import Column, DataFrame, Row, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, StructType
from pyspark.sql.window import WindowSpec

from pipeline.errors import ChangeFeedError

__all__ = [
    "END_AT",
    "START_AT",
    "CdcOptions",
    "CdcPlan",
    "apply_changes",
    "plan_changes",
]

START_AT = "__START_AT"
END_AT = "__END_AT"

_INTERNAL_PREFIX = "__scd_"
_SEQUENCE = "__scd_sequence"
_KIND = "__scd_kind"
_FROM_TARGET = "__scd_from_target"
_OPENS = "__scd_opens"
_VERSION = "__scd_version"
_SEGMENT = "__scd_segment"
_CLOSED_AT = "__scd_closed_at"
_VALUES = "__scd_values"
_RANK = "__scd_rank"

_UPSERT, _DELETE, _TRUNCATE = 0, 1, 2
_EXAMPLES = 3


class CdcOptions(TypedDict, total=False):
    """The keyword arguments of `apply_changes`, to pass one set of options around."""

    keys: Required[Sequence[str]]
    sequence_by: Required[str | Column]
    stored_as_scd_type: NotRequired[int | str]
    apply_as_deletes: NotRequired[str | Column | None]
    apply_as_truncates: NotRequired[str | Column | None]
    column_list: NotRequired[Sequence[str] | None]
    except_column_list: NotRequired[Sequence[str] | None]
    track_history_column_list: NotRequired[Sequence[str] | None]
    track_history_except_column_list: NotRequired[Sequence[str] | None]
    ignore_null_updates: NotRequired[bool]


@dataclass(frozen=True)
class CdcPlan:
    """The validated options: which columns play which part."""

    keys: tuple[str, ...]
    sequence: Column
    scd_type: Literal[1, 2]
    deletes: Column | None
    truncates: Column | None
    columns: tuple[str, ...]  # output columns, in output order
    values: tuple[str, ...]  # output columns that are not keys
    tracked: tuple[str, ...]  # SCD2: value columns whose change opens a version
    ignore_null_updates: bool


def _names(option: str, names: Sequence[str] | None) -> tuple[str, ...] | None:
    if names is None:
        return None
    if isinstance(names, str):
        raise ChangeFeedError(f"{option} must be a list of column names, got the string {names!r}")
    return tuple(names)


def _check_known(option: str, names: Sequence[str], available: Sequence[str]) -> None:
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ChangeFeedError(
            f"{option} names {unknown}, which are not among the columns {list(available)}"
        )


def _scd_type(value: int | str) -> Literal[1, 2]:
    if str(value) == "1":
        return 1
    if str(value) == "2":
        return 2
    raise ChangeFeedError(f"stored_as_scd_type must be 1 or 2, got {value!r}")


def _expression(value: str | Column | None) -> Column | None:
    return F.expr(value) if isinstance(value, str) else value


def plan_changes(
    available: Sequence[str],
    *,
    keys: Sequence[str],
    sequence_by: str | Column,
    stored_as_scd_type: int | str = 2,
    apply_as_deletes: str | Column | None = None,
    apply_as_truncates: str | Column | None = None,
    column_list: Sequence[str] | None = None,
    except_column_list: Sequence[str] | None = None,
    track_history_column_list: Sequence[str] | None = None,
    track_history_except_column_list: Sequence[str] | None = None,
    ignore_null_updates: bool = False,
) -> CdcPlan:
    scd_type = _scd_type(stored_as_scd_type)
    reserved = [c for c in available if c in (START_AT, END_AT) or c.startswith(_INTERNAL_PREFIX)]
    if reserved:
        raise ChangeFeedError(
            f"the changes have columns {reserved}, whose names are reserved for the SCD table; "
            "rename or drop them"
        )
    key_names = _names("keys", keys)
    if not key_names:
        raise ChangeFeedError("keys must name at least one column")
    _check_known("keys", key_names, available)
    selected, excluded = (
        _names("column_list", column_list),
        _names("except_column_list", except_column_list),
    )
    if selected is not None and excluded is not None:
        raise ChangeFeedError("give column_list or except_column_list, not both")
    if selected is not None:
        _check_known("column_list", selected, available)
        columns = selected
    else:
        _check_known("except_column_list", excluded or (), available)
        columns = tuple(c for c in available if c not in (excluded or ()))
    missing_keys = [k for k in key_names if k not in columns]
    if missing_keys:
        raise ChangeFeedError(f"the keys {missing_keys} must be among the output columns")
    values = tuple(c for c in columns if c not in key_names)

    tracked_only = _names("track_history_column_list", track_history_column_list)
    untracked = _names("track_history_except_column_list", track_history_except_column_list)
    if scd_type == 1 and (tracked_only is not None or untracked is not None):
        raise ChangeFeedError(
            "track_history_column_list and track_history_except_column_list apply to SCD type 2 "
            "only; drop them or set stored_as_scd_type=2"
        )
    if tracked_only is not None and untracked is not None:
        raise ChangeFeedError(
            "give track_history_column_list or track_history_except_column_list, not both"
        )
    if tracked_only is not None:
        _check_known("track_history_column_list", tracked_only, columns)
        tracked = tuple(c for c in values if c in tracked_only)
    else:
        _check_known("track_history_except_column_list", untracked or (), columns)
        tracked = tuple(c for c in values if c not in (untracked or ()))

    if scd_type == 2 and apply_as_truncates is not None:
        raise ChangeFeedError(
            "apply_as_truncates is supported for SCD type 1 only, as on Databricks: a truncate "
            "has no meaning for a history table"
        )
    sequence = F.col(sequence_by) if isinstance(sequence_by, str) else sequence_by
    return CdcPlan(
        keys=key_names,
        sequence=sequence,
        scd_type=scd_type,
        deletes=_expression(apply_as_deletes),
        truncates=_expression(apply_as_truncates),
        columns=columns,
        values=values,
        tracked=tracked,
        ignore_null_updates=ignore_null_updates,
    )


# ------------------------------------------------------------------------ normalized events


def _events(changes: DataFrame, plan: CdcPlan) -> DataFrame:
    """The changes as events: keys, output values (null unless an upsert), sequence, kind."""
    kind = F.lit(_UPSERT)
    if plan.deletes is not None:
        kind = F.when(F.coalesce(plan.deletes, F.lit(False)), F.lit(_DELETE)).otherwise(kind)
    if plan.truncates is not None:
        kind = F.when(F.coalesce(plan.truncates, F.lit(False)), F.lit(_TRUNCATE)).otherwise(kind)
    classified = changes.select(*plan.columns, kind.alias(_KIND), plan.sequence.alias(_SEQUENCE))
    is_upsert = F.col(_KIND) == _UPSERT
    return classified.select(
        *plan.keys,
        *[F.when(is_upsert, F.col(c)).alias(c) for c in plan.values],
        _SEQUENCE,
        _KIND,
        F.lit(False).alias(_FROM_TARGET),
    )


def _nulls(schema: StructType, names: Sequence[str]) -> list[Column]:
    return [F.lit(None).cast(schema[name].dataType).alias(name) for name in names]


def _target_events(target: DataFrame, plan: CdcPlan, sequence_type: DataType) -> DataFrame:
    """An existing SCD table read back as events (see the module docstring)."""
    needed = [*plan.columns, *((START_AT, END_AT) if plan.scd_type == 2 else ())]
    _check_known("the target table", needed, target.columns)
    if plan.scd_type == 1:
        return target.select(
            *plan.columns,
            F.lit(None).cast(sequence_type).alias(_SEQUENCE),
            F.lit(_UPSERT).alias(_KIND),
            F.lit(True).alias(_FROM_TARGET),
        )
    versions = target.select(*needed)
    opened = versions.select(
        *plan.columns,
        F.col(START_AT).alias(_SEQUENCE),
        F.lit(_UPSERT).alias(_KIND),
        F.lit(True).alias(_FROM_TARGET),
    )
    closed = (
        versions.where(F.col(END_AT).isNotNull())
        .select(*plan.keys, F.col(END_AT).alias(_SEQUENCE))
        .join(opened.select(*plan.keys, _SEQUENCE), [*plan.keys, _SEQUENCE], "left_anti")
    )
    deleted = closed.select(
        *plan.keys,
        *_nulls(versions.schema, plan.values),
        _SEQUENCE,
        F.lit(_DELETE).alias(_KIND),
        F.lit(True).alias(_FROM_TARGET),
    )
    return opened.unionByName(deleted)


# ------------------------------------------------------------------------------- validation


def _missing_sequence(sequence_type: DataType) -> Column:
    missing = F.col(_SEQUENCE).isNull()
    if isinstance(sequence_type, StructType):
        for field in sequence_type.fieldNames():
            missing = missing | F.col(_SEQUENCE).getField(field).isNull()
    return missing


def _describe(row: Row, names: Sequence[str]) -> str:
    shown = {_SEQUENCE: "sequence_by"}
    return ", ".join(f"{shown.get(name, name)}={row[name]!r}" for name in names)


def _validate(events: DataFrame, plan: CdcPlan) -> None:
    """Reject null keys, null sequence values and ambiguous duplicates, with examples."""
    is_truncate = F.col(_KIND) == _TRUNCATE
    key_missing = functools.reduce(operator.or_, [F.col(k).isNull() for k in plan.keys])
    sequence_type = events.schema[_SEQUENCE].dataType
    flagged = events.select(
        *plan.keys,
        _SEQUENCE,
        is_truncate.alias("truncate"),
        (~is_truncate & key_missing).alias("null_key"),
        (~F.col(_FROM_TARGET) & _missing_sequence(sequence_type)).alias("null_sequence"),
        F.struct(_KIND, *plan.values).alias("change"),
    )
    problems = (
        flagged.groupBy(*plan.keys, _SEQUENCE, "truncate")
        .agg(
            F.max("null_key").alias("null_key"),
            F.max("null_sequence").alias("null_sequence"),
            F.count_distinct("change").alias("variants"),
        )
        .where(
            F.col("null_key")
            | F.col("null_sequence")
            | (~F.col("truncate") & (F.col("variants") > 1))
        )
        .limit(_EXAMPLES * 3)
        .collect()
    )
    shown = [*plan.keys, _SEQUENCE]
    null_keys = [_describe(row, shown) for row in problems if row.null_key][:_EXAMPLES]
    if null_keys:
        raise ChangeFeedError(
            f"changes with a null key column among {list(plan.keys)} cannot be applied, for "
            f"example at {'; '.join(null_keys)}. Drop or repair those rows before applying them."
        )
    null_sequences = [_describe(row, plan.keys) for row in problems if row.null_sequence]
    if null_sequences:
        raise ChangeFeedError(
            "changes with a null sequence_by value (or a null field of a struct sequence_by) "
            "cannot be ordered and are not supported, as on Databricks; for example the key "
            f"{'; '.join(null_sequences[:_EXAMPLES])}. Drop or repair those rows."
        )
    conflicts = [_describe(row, shown) for row in problems if row.variants > 1]
    if conflicts:
        raise ChangeFeedError(
            "different changes share a key and a sequence_by value, so their order is "
            f"ambiguous: {'; '.join(conflicts[:_EXAMPLES])}. Add a tie-breaking field to "
            "sequence_by (a struct such as struct(changed_at, sequence_num)) or deduplicate "
            "the feed."
        )
    if plan.truncates is not None:
        truncates = events.where(is_truncate).select(_SEQUENCE)
        tie = truncates.join(events.where(~is_truncate), _SEQUENCE, "left_semi").limit(1)
        for row in tie.collect():
            raise ChangeFeedError(
                f"a truncate and a change share the sequence_by value {row[_SEQUENCE]!r}, so "
                "their order is ambiguous; give the truncate its own sequence value"
            )


# ------------------------------------------------------------------------------ the engine


def _ordered(plan: CdcPlan) -> WindowSpec:
    return Window.partitionBy(*plan.keys).orderBy(_SEQUENCE)


def _running(plan: CdcPlan) -> WindowSpec:
    return _ordered(plan).rowsBetween(Window.unboundedPreceding, Window.currentRow)


def _fill_null_updates(events: DataFrame, plan: CdcPlan) -> DataFrame:
    """Replace each null value of an upsert by the latest non-null one since the last delete."""
    segmented = events.withColumn(
        _SEGMENT, F.sum((F.col(_KIND) == _DELETE).cast("int")).over(_running(plan))
    )
    since_delete = (
        Window.partitionBy(*plan.keys, _SEGMENT)
        .orderBy(_SEQUENCE)
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    filled = [
        F.when(F.col(_KIND) == _UPSERT, F.last(c, ignorenulls=True).over(since_delete)).alias(c)
        for c in plan.values
    ]
    return segmented.select(*plan.keys, *filled, _SEQUENCE, _KIND, _FROM_TARGET)


def _scd2(events: DataFrame, plan: CdcPlan) -> DataFrame:
    events = events.dropDuplicates([*plan.keys, _SEQUENCE])  # validated: duplicates are equal
    if plan.ignore_null_updates:
        events = _fill_null_updates(events, plan)
    ordered = _ordered(plan)
    is_upsert = F.col(_KIND) == _UPSERT
    previous_kind = F.lag(_KIND).over(ordered)
    unchanged = functools.reduce(
        operator.and_,
        [F.lag(c).over(ordered).eqNullSafe(F.col(c)) for c in plan.tracked],
        F.lit(True),
    )
    opens = is_upsert & (previous_kind.isNull() | (previous_kind == _DELETE) | ~unchanged)
    numbered = (
        events.withColumn(_OPENS, opens)
        .withColumn(_VERSION, F.sum(F.col(_OPENS).cast("int")).over(_running(plan)))
        .where(F.col(_VERSION) > 0)  # deletes before the first upsert
    )
    versions = numbered.groupBy(*plan.keys, _VERSION).agg(
        F.min(F.when(F.col(_OPENS), F.col(_SEQUENCE))).alias(START_AT),
        F.min(F.when(F.col(_KIND) == _DELETE, F.col(_SEQUENCE))).alias(_CLOSED_AT),
        # the last upsert of a version holds its values: tracked ones equal the opener's
        F.max_by(F.struct(*plan.values), F.when(is_upsert, F.col(_SEQUENCE))).alias(_VALUES),
    )
    next_start = F.lead(START_AT).over(Window.partitionBy(*plan.keys).orderBy(_VERSION))
    return versions.select(
        *[c if c in plan.keys else F.col(_VALUES).getField(c).alias(c) for c in plan.columns],
        START_AT,
        F.coalesce(_CLOSED_AT, next_start).alias(END_AT),
    )


def _expand_truncates(events: DataFrame, plan: CdcPlan) -> DataFrame:
    """A truncate at sequence value s becomes a delete at s of every key."""
    truncates = events.where(F.col(_KIND) == _TRUNCATE).select(_SEQUENCE).distinct()
    keyed = events.where(F.col(_KIND) != _TRUNCATE)
    deletes = (
        keyed.select(*plan.keys)
        .distinct()
        .crossJoin(truncates)
        .select(
            *plan.keys,
            *_nulls(events.schema, plan.values),
            _SEQUENCE,
            F.lit(_DELETE).alias(_KIND),
            F.lit(False).alias(_FROM_TARGET),
        )
    )
    return keyed.unionByName(deletes)


def _scd1(events: DataFrame, plan: CdcPlan) -> DataFrame:
    if plan.truncates is not None:
        events = _expand_truncates(events, plan)
    events = events.dropDuplicates([*plan.keys, _SEQUENCE])
    if plan.ignore_null_updates:
        events = _fill_null_updates(events, plan)
    latest_first = Window.partitionBy(*plan.keys).orderBy(F.col(_SEQUENCE).desc_nulls_last())
    return (
        events.withColumn(_RANK, F.row_number().over(latest_first))
        .where((F.col(_RANK) == 1) & (F.col(_KIND) == _UPSERT))
        .select(*plan.columns)
    )


def apply_changes(
    changes: DataFrame,
    *,
    keys: Sequence[str],
    sequence_by: str | Column,
    stored_as_scd_type: int | str = 2,
    apply_as_deletes: str | Column | None = None,
    apply_as_truncates: str | Column | None = None,
    column_list: Sequence[str] | None = None,
    except_column_list: Sequence[str] | None = None,
    track_history_column_list: Sequence[str] | None = None,
    track_history_except_column_list: Sequence[str] | None = None,
    ignore_null_updates: bool = False,
    target: DataFrame | None = None,
) -> DataFrame:
    """Apply a change feed as Lakeflow AUTO CDC does, returning the whole resulting table.

    The semantics, and the choices made where Databricks leaves room, are in the module
    docstring. The input is checked at once (one Spark job): problems raise here, not later.

    Args:
        changes: a static DataFrame of change events, in any order.
        keys: the columns identifying a row.
        sequence_by: the column name, or `Column` (a struct to break ties), ordering changes.
        stored_as_scd_type: 1 (upsert in place) or 2 (keep history), as int or string.
        apply_as_deletes: SQL expression or `Column`; true for changes that are deletes.
        apply_as_truncates: SQL expression or `Column`; true for changes that empty the
            table. SCD type 1 only.
        column_list: the output columns, in this order; keys must be among them.
        except_column_list: columns to leave out of the output (others keep their order).
        track_history_column_list: SCD2: the columns whose change opens a new version.
        track_history_except_column_list: SCD2: the columns whose change does not.
        ignore_null_updates: keep the current value where an upsert has a null.
        target: an existing table of this SCD type to apply the changes to, or None.

    Returns:
        The table: the output columns, plus `__START_AT` and `__END_AT` for SCD type 2.

    Raises:
        ChangeFeedError: unknown columns, invalid option combinations, null keys or sequence
            values, or different changes at one key and sequence value.
    """
    if changes.isStreaming:
        raise ChangeFeedError(
            "apply_changes needs a static DataFrame; in a stream, call "
            "pipeline.storage.scd_merge.merge_changes from foreachBatch"
        )
    plan = plan_changes(
        changes.columns,
        keys=keys,
        sequence_by=sequence_by,
        stored_as_scd_type=stored_as_scd_type,
        apply_as_deletes=apply_as_deletes,
        apply_as_truncates=apply_as_truncates,
        column_list=column_list,
        except_column_list=except_column_list,
        track_history_column_list=track_history_column_list,
        track_history_except_column_list=track_history_except_column_list,
        ignore_null_updates=ignore_null_updates,
    )
    events = _events(changes, plan)
    if target is not None:
        sequence_type = events.schema[_SEQUENCE].dataType
        events = events.unionByName(_target_events(target, plan, sequence_type))
    _validate(events, plan)
    return _scd2(events, plan) if plan.scd_type == 2 else _scd1(events, plan)
