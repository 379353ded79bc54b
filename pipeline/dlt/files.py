"""The local Auto Loader: a `cloudFiles` source as a Structured Streaming file source on the
landing folder, whose checkpoint (per flow, under the warehouse) makes each update read only
the files it has not read.

The schema is inferred from the folder's files at an update's start and kept under the
warehouse (`_dlt/schemas`), as Auto Loader keeps it at `cloudFiles.schemaLocation`:

* `inferColumnTypes` false (the default): every top-level column a string, as on Databricks
  (a nested object arrives as its JSON text); true: Spark's inferred types;
* `schemaHints` override or add columns' types; a schema given with `.schema(...)` is used as
  it is;
* evolution: `addNewColumns` (the default without a schema) adds the new files' new columns
  at the next update; `rescue` and `none` keep the first schema (`rescue` puts new columns in
  the rescued data column; `none` drops them); `failOnNewColumns` stops, naming them.

JSON lines are parsed with the rescued data column (default `_rescued_data`): a JSON object
holding fields the schema does not have, or values its hinted types cannot hold, with the
record's `_file_path`; a line that is not a JSON object gives a row of nulls whose rescued data
holds the line (`_unparsed_record`), so every non-blank line is a row. CSV uses Spark's reader
with the rescued column as its corrupt-record column.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, StringType, StructField, StructType

from pipeline.dlt.autoloader import AutoLoader
from pipeline.errors import ConfigurationError

__all__ = ["auto_loader_stream", "source_schema"]

_RAW = "__raw"
_PARSED = "__parsed"
_FILE = "__file"
_RAW_TYPE = "map<string,variant>"


def _hinted_type(column: str, ddl: str) -> DataType:
    try:
        parsed = StructType.fromDDL(f"`{column}` {ddl}")
        assert isinstance(parsed, StructType)
        return parsed[column].dataType
    except Exception as error:  # Spark's parse error, as a message naming the hint
        raise ConfigurationError(
            f"cloudFiles.schemaHints: {column} {ddl!r} is not a Spark SQL type "
            f"({str(error).splitlines()[0]}); for example INT, DOUBLE, DECIMAL(10,2), DATE"
        ) from error


def _inferred(spark: SparkSession, loader: AutoLoader, path: str) -> StructType:
    reader = spark.read.format(loader.format).options(**loader.reader_options)
    if loader.format == "csv":
        reader = reader.option("inferSchema", str(loader.infer_column_types).lower())
    try:
        schema = reader.load(path).schema
    except Exception as error:
        raise ConfigurationError(
            f"Auto Loader could not infer a schema from {path} ({str(error).splitlines()[0]}): "
            "land at least one file there before the first update, or give the source a "
            "schema with .schema(...)"
        ) from error
    fields = [
        f for f in schema.fields if f.name not in ("_corrupt_record", loader.rescued_data_column)
    ]
    if not loader.infer_column_types:
        fields = [StructField(f.name, StringType()) for f in fields]
    return StructType(fields)


def _with_hints(schema: StructType, loader: AutoLoader) -> StructType:
    fields = {f.name: f for f in schema.fields}
    for column, ddl in loader.schema_hints:
        fields[column] = StructField(column, _hinted_type(column, ddl))
    return StructType(list(fields.values()))


def _schema_file(warehouse: Path, path: str) -> Path:
    digest = hashlib.sha256(path.encode()).hexdigest()[:16]
    return warehouse / "_dlt" / "schemas" / f"{digest}.json"


def source_schema(
    spark: SparkSession, warehouse: Path, loader: AutoLoader, path: str, given: Any
) -> StructType:
    """The schema an Auto Loader source reads `path` with at this update (see the module
    docstring); kept for the next update.

    Raises:
        ConfigurationError: no file to infer from, a bad hint, or new columns under
            `failOnNewColumns`.
    """
    if given is not None:
        schema = given if isinstance(given, StructType) else StructType.fromDDL(str(given))
        assert isinstance(schema, StructType)
        return schema
    kept_at = _schema_file(warehouse, path)
    kept = StructType.fromJson(json.loads(kept_at.read_text())) if kept_at.is_file() else None
    if kept is not None and loader.schema_evolution_mode in ("rescue", "none"):
        return kept
    inferred = _with_hints(_inferred(spark, loader, path), loader)
    if kept is None:
        schema = inferred
    else:
        new = [f for f in inferred.fields if f.name not in kept.fieldNames()]
        if new and loader.schema_evolution_mode == "failOnNewColumns":
            raise ConfigurationError(
                f"Auto Loader on {path}: new column(s) {', '.join(f.name for f in new)} and "
                "cloudFiles.schemaEvolutionMode failOnNewColumns: add them to the schema "
                "hints, or set the mode to addNewColumns or rescue"
            )
        schema = StructType([*kept.fields, *new])
    kept_at.parent.mkdir(parents=True, exist_ok=True)
    kept_at.write_text(schema.json())
    return schema


def _rescued(schema: StructType, rescued_column: str) -> Column:
    """The rescued data of a parsed line (see the module docstring)."""
    raw = F.col(_RAW)
    names = F.array(*[F.lit(f.name) for f in schema.fields])
    unknown = F.map_filter(raw, lambda key, _value: ~F.array_contains(names, key))
    mistyped = [
        F.when(
            raw[f.name].isNotNull()
            & ~F.is_variant_null(raw[f.name])
            & F.col(f"{_PARSED}.{f.name}").isNull(),
            F.create_map(F.lit(f.name), raw[f.name]),
        )
        for f in schema.fields
        if not isinstance(f.dataType, StringType)
    ]
    lost = F.map_concat(unknown, *[F.coalesce(m, F.create_map().cast(_RAW_TYPE)) for m in mistyped])
    with_file = F.map_concat(lost, F.create_map(F.lit("_file_path"), F.col(_FILE).cast("variant")))
    unparsed = F.to_json(
        F.create_map(
            F.lit("_unparsed_record"),
            F.col("value").cast("variant"),
            F.lit("_file_path"),
            F.col(_FILE).cast("variant"),
        )
    )
    return (
        F.when(raw.isNull(), unparsed)
        .when(F.size(lost) > 0, F.to_json(with_file))
        .alias(rescued_column)
    )


def auto_loader_stream(
    spark: SparkSession, loader: AutoLoader, path: str, schema: StructType
) -> DataFrame:
    """A streaming DataFrame of the files under `path`: `schema`'s columns and the rescued
    data column."""
    if loader.format == "csv":
        with_rescue = StructType(
            [*schema.fields, StructField(loader.rescued_data_column, StringType())]
        )
        return (
            spark.readStream.format("csv")
            .options(**loader.reader_options)
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", loader.rescued_data_column)
            .schema(with_rescue)
            .load(path)
        )
    lines = spark.readStream.format("text").load(path)
    value = F.col("value")
    parsed = lines.where(F.trim(value) != "").select(
        value,
        F.col("_metadata.file_path").alias(_FILE),
        F.from_json(value, _RAW_TYPE).alias(_RAW),
        F.from_json(value, schema).alias(_PARSED),
    )
    return parsed.select(
        *[F.col(f"{_PARSED}.{f.name}").alias(f.name) for f in schema.fields],
        _rescued(schema, loader.rescued_data_column),
    )
