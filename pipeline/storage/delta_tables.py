"""Writing path-based Delta tables: appends that happen once, liquid clustering, replacements.

Delta 4.4 keeps a table's clustering columns through `MERGE`, appends and
`CREATE OR REPLACE TABLE ... CLUSTER BY ... AS SELECT`, but a plain overwrite
(`DataFrameWriter.mode("overwrite")`, `INSERT OVERWRITE`, `writeTo(...).overwrite`)
silently drops them. Full rebuilds therefore go through `replace_table`, which restates them.
"""

from __future__ import annotations

import functools
import operator
import uuid
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    DataType,
    DateType,
    MapType,
    NumericType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from pipeline.storage import delta_log
from pipeline.transforms.schemas import PERSONAL_COLUMNS

__all__ = [
    "DELETION_VECTORS",
    "STATS_COLUMNS",
    "append_once",
    "create_table_if_absent",
    "key_condition",
    "replace_table",
    "replace_where",
    "stats_columns",
    "table_properties",
]

DELETION_VECTORS = {"delta.enableDeletionVectors": "true"}
"""Table properties that let MERGE, UPDATE and DELETE mark rows instead of rewriting files."""
STATS_COLUMNS = "delta.dataSkippingStatsColumns"


def append_once(
    frame: DataFrame, path: str, *, query: str, batch_id: int, merge_schema: bool = False
) -> bool:
    """Append micro-batch `batch_id` of `query` to the table at `path`, unless it already is.

    The commit carries a marker of (query, batch) in its `userMetadata`; a batch replayed
    after a crash finds its marker in the Delta log (read in plain Python,
    `pipeline.storage.delta_log.committed_batch`) and skips the write without running its query.
    This is Delta's idempotent write (`txnAppId` / `txnVersion`) for the one writer a
    warehouse has, at the cost of a blind append: Delta's own check recomputes the table's
    state, about 0.6 s per write here.

    `merge_schema` lets a table written before a column existed take it on (the quarantine
    tables gained `failed_expectations`).

    Returns:
        Whether it wrote; False when the batch was already there.
    """
    committed = delta_log.committed_batch(Path(path), query)
    if committed is not None and committed >= batch_id:
        return False
    writer = (
        frame.write.format("delta")
        .mode("append")
        .option("userMetadata", delta_log.batch_marker(query, batch_id))
    )
    if committed is None and delta_log.table_version(Path(path)) is None:
        # The append creates the table: `delta.*` options become its properties.
        writer = writer.options(**table_properties(frame.schema))
    if merge_schema:
        writer = writer.option("mergeSchema", "true")
    writer.save(path)
    return True


def stats_columns(schema: StructType) -> list[str]:
    """The columns Delta keeps min/max statistics on: every leaf but the personal ones.

    Leaves of structs are named by dotted paths; `pipeline.transforms.schemas.PERSONAL_COLUMNS`
    (clear
    PII and pseudonyms) and types Delta cannot index (booleans, binaries, arrays, maps) are
    left out.
    """
    return [
        path
        for field in schema.fields
        if field.name not in PERSONAL_COLUMNS
        for path in _leaves(field.name, field.dataType)
    ]


def _leaves(path: str, data_type: DataType) -> list[str]:
    if isinstance(data_type, StructType):
        return [leaf for f in data_type.fields for leaf in _leaves(f"{path}.{f.name}", f.dataType)]
    if isinstance(data_type, _INDEXABLE):
        return [path]
    return []  # Delta keeps no statistics on booleans, binaries, arrays and maps


_INDEXABLE = (StringType, NumericType, DateType, TimestampType, TimestampNTZType)


def table_properties(schema: StructType) -> dict[str, str]:
    """A new table's properties: deletion vectors, and no statistics on personal columns."""
    return {**DELETION_VECTORS, STATS_COLUMNS: ",".join(stats_columns(schema))}


def _quoted(name: str) -> str:
    """A column name, or a dotted path to a nested field, as a backquoted SQL identifier."""
    return ".".join(f"`{part.replace('`', '``')}`" for part in name.split("."))


def _table_identifier(path: str) -> str:
    return f"delta.`{path.replace('`', '``')}`"


def _nullable(schema: StructType) -> StructType:
    """The schema with every field, element and value nullable, however deeply nested.

    Delta turns a non-nullable field into a NOT NULL constraint and checks it even inside a
    null struct, so a nullable `__END_AT` whose fields are not nullable could not be written.
    """
    return StructType(
        [StructField(f.name, _nullable_type(f.dataType), True, f.metadata) for f in schema]
    )


def _nullable_type(data_type: DataType) -> DataType:
    if isinstance(data_type, StructType):
        return _nullable(data_type)
    if isinstance(data_type, ArrayType):
        return ArrayType(_nullable_type(data_type.elementType), True)
    if isinstance(data_type, MapType):
        return MapType(data_type.keyType, _nullable_type(data_type.valueType), True)
    return data_type


def create_table_if_absent(
    spark: SparkSession,
    path: str,
    schema: StructType,
    *,
    cluster_by: Sequence[str] = (),
    properties: Mapping[str, str] | None = None,
) -> None:
    """Create an empty Delta table at `path` unless one is there already.

    Args:
        spark: the session.
        path: where the table lives.
        schema: its columns (all created nullable).
        cluster_by: liquid clustering columns; nested fields as dotted paths. Struct columns
            themselves cannot be clustering columns (Delta needs min/max statistics).
        properties: table properties; `table_properties(schema)` when None.
    """
    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(_nullable(schema))
    if cluster_by:
        builder = builder.clusterBy(*cluster_by)
    for key, value in (table_properties(schema) if properties is None else properties).items():
        builder = builder.property(key, value)
    builder.execute()


def replace_table(
    frame: DataFrame,
    path: str,
    *,
    cluster_by: Sequence[str] = (),
    properties: Mapping[str, str] | None = None,
) -> None:
    """Replace the table at `path` by `frame` in one commit, as a materialized view refresh does.

    Readers see either the old or the new content, never an empty table; the clustering columns
    and properties (`table_properties` of the frame's schema when None) are declared again,
    because an overwrite would lose them.
    """
    if properties is None:
        properties = table_properties(frame.schema)
    view = f"_clickstream_replace_{uuid.uuid4().hex}"
    frame.createOrReplaceTempView(view)
    clustering = f" CLUSTER BY ({', '.join(map(_quoted, cluster_by))})" if cluster_by else ""
    settings = ", ".join(f"'{key}' = '{value}'" for key, value in properties.items())
    declared = f" TBLPROPERTIES ({settings})" if settings else ""
    try:
        frame.sparkSession.sql(
            f"CREATE OR REPLACE TABLE {_table_identifier(path)} USING delta"
            f"{clustering}{declared} AS SELECT * FROM `{view}`"
        )
    finally:
        frame.sparkSession.catalog.dropTempView(view)


def replace_where(
    rows: DataFrame,
    path: str,
    condition: Column,
    *,
    cluster_by: Sequence[str] = (),
    properties: Mapping[str, str] | None = None,
    user_metadata: str | None = None,
    days: tuple[str, Sequence[date]] | None = None,
) -> None:
    """Replace the rows of the table at `path` that meet `condition` by `rows`, in one commit.

    Delta's overwrite by condition (`replaceWhere`): it deletes the matching rows (the
    files whose statistics rule them out are not read) and appends `rows`, each of which
    must meet `condition` too. Repeating it gives the same table, so a batch replayed after
    a crash may simply run it again. A table that does not exist yet is created with `rows`
    (`replace_table`: clustering and properties as given).

    Args:
        rows: the new rows of the part `condition` selects.
        path: the Delta table.
        condition: over the table's columns, such as the dates a batch touched.
        cluster_by: liquid clustering columns, for a table created here.
        properties: table properties for a table created here (`table_properties` of
            `rows` when None).
        user_metadata: the commit's `userMetadata`, such as a batch marker.
        days: when `condition` selects days, `(date column, days)`: if the table's log shows
            that no file can hold them (its min/max statistics), the rows are appended, which
            reads nothing (a later repeat finds them and replaces them).
    """
    exists = delta_log.table_version(Path(path)) is not None
    if exists and days is not None:
        column, dates = days
        if not delta_log.may_hold(Path(path), column, [day.isoformat() for day in dates]):
            appending = rows.write.format("delta").mode("append")
            if user_metadata is not None:
                appending = appending.option("userMetadata", user_metadata)
            appending.save(path)
            return
    if exists:
        overwriting = rows.writeTo(_table_identifier(path))
        if user_metadata is not None:
            overwriting = overwriting.option("userMetadata", user_metadata)
        overwriting.overwrite(condition)
    else:
        replace_table(rows, path, cluster_by=cluster_by, properties=properties)


def key_condition(keys: Sequence[str], values: Sequence[Sequence[object]]) -> Column:
    """True for the rows whose `keys` columns hold one of `values` (tuples in key order)."""
    if len(keys) == 1:
        return F.col(_quoted(keys[0])).isin([value[0] for value in values])
    return functools.reduce(
        operator.or_,
        [
            functools.reduce(
                operator.and_,
                [F.col(_quoted(k)) == F.lit(v) for k, v in zip(keys, value, strict=True)],
            )
            for value in values
        ],
        F.lit(False),
    )
