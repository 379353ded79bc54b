"""The local Auto Loader: a `cloudFiles` source as a Structured Streaming file source on the
landing folder, whose checkpoint (per flow, under the warehouse) makes each update read only
the files it has not read.

The schema is inferred from the folder's files at the first update and kept under the
warehouse (`_dlt/schemas`), as Auto Loader keeps it at `cloudFiles.schemaLocation`, with the
names of the files it has seen; a later update infers from its new files only (none: no Spark
job), so its cost follows the new files, not the folder:

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
holds the line (`_unparsed_record`), so every non-blank line is a row. CSV lines are read the
same way, each by its file's header (a column found by its name, wherever a file puts it);
the schema's column names come from the headers of all the files.
"""

from __future__ import annotations

import csv
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


def _local_folder(path: str) -> Path:
    return Path(path.removeprefix("file:"))


def _data_files(path: str) -> list[str] | None:
    """The names of the data files in a local folder (not `_` or `.` ones); None when the
    folder is not local."""
    folder = _local_folder(path)
    if not folder.is_dir():
        return None
    return sorted(
        f.name for f in folder.iterdir() if f.is_file() and not f.name.startswith(("_", "."))
    )


def _file_headers(path: str, names: list[str] | None = None) -> dict[str, str]:
    """Each file under a local folder (or only `names`) by name, with its first line (its
    CSV header)."""
    found = {}
    for name in (_data_files(path) or []) if names is None else names:
        with (_local_folder(path) / name).open(encoding="utf-8", errors="replace") as handle:
            found[name] = handle.readline().rstrip("\r\n")
    return found


def _csv_header_groups(path: str, names: list[str] | None) -> list[list[str]]:
    """The CSV files under a local folder (or only `names`) grouped by their header, in the
    order of first appearance."""
    groups: dict[str, list[str]] = {}
    for name, header in _file_headers(path, names).items():
        groups.setdefault(header, []).append(str(_local_folder(path) / name))
    return list(groups.values())


def _merged(schemas: list[StructType]) -> StructType:
    """Columns by name, in order of first appearance; a column typed two ways is a string."""
    fields: dict[str, StructField] = {}
    for schema in schemas:
        for f in schema.fields:
            known = fields.get(f.name)
            if known is None:
                fields[f.name] = f
            elif known.dataType != f.dataType:
                fields[f.name] = StructField(f.name, StringType())
    return StructType(list(fields.values()))


def _inferred(
    spark: SparkSession, loader: AutoLoader, path: str, names: list[str] | None
) -> StructType:
    """The schema of the files under `path` (only `names`, when given)."""
    reader = spark.read.format(loader.format).options(**loader.reader_options)
    if loader.format == "csv":
        reader = reader.option("inferSchema", str(loader.infer_column_types).lower())
    try:
        if loader.format == "csv" and _data_files(path) is not None:
            # Spark's CSV inference names the columns by the first file's header only: files
            # whose headers differ (a producer added a column) are inferred group by group.
            groups = _csv_header_groups(path, names)
            schema = _merged([reader.load(group).schema for group in groups])
        elif names is not None:
            schema = reader.load([str(_local_folder(path) / n) for n in names]).schema
        else:
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
    kept, seen = _kept(kept_at)
    if kept is not None and loader.schema_evolution_mode in ("rescue", "none"):
        return kept
    files = _data_files(path)
    unseen = None if files is None or kept is None else [n for n in files if n not in seen]
    if kept is not None and unseen == []:
        return kept  # no file it has not inferred from: no Spark job
    inferred = _with_hints(_inferred(spark, loader, path, unseen), loader)
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
    kept_at.write_text(json.dumps({"schema": schema.jsonValue(), "files": files or []}))
    return schema


def _kept(kept_at: Path) -> tuple[StructType | None, set[str]]:
    """The schema kept at `kept_at` and the files it was inferred from."""
    if not kept_at.is_file():
        return None, set()
    data = json.loads(kept_at.read_text())
    if "schema" not in data:  # kept before the files were: infer from every file once more
        return StructType.fromJson(data), set()
    return StructType.fromJson(data["schema"]), set(data["files"])


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
    lines = spark.readStream.format("text").load(path)
    value = F.col("value")
    with_file = lines.where(F.trim(value) != "").select(
        value, F.col("_metadata.file_path").alias(_FILE)
    )
    if loader.format == "csv":
        return _csv_rows(spark, loader, path, schema, with_file)
    parsed = with_file.select(
        value,
        F.col(_FILE),
        F.from_json(value, _RAW_TYPE).alias(_RAW),
        F.from_json(value, schema).alias(_PARSED),
    )
    return parsed.select(
        *[F.col(f"{_PARSED}.{f.name}").alias(f.name) for f in schema.fields],
        _rescued(schema, loader.rescued_data_column),
    )


_HEADER = "__header"
_NAME = "__name"
_CORRUPT = "__corrupt"


def _csv_rows(
    spark: SparkSession, loader: AutoLoader, path: str, schema: StructType, lines: DataFrame
) -> DataFrame:
    """CSV lines read by their file's header: a column is found by its name, wherever the file
    puts it; a file's columns the schema lacks, and values its types cannot hold, go to the
    rescued data column (a JSON object, with `_file_path`), as JSON's do; a line whose fields
    do not match its header is rescued whole (`_unparsed_record`).

    The files' headers are read when the update starts; a file landing during the update is
    read at the next one, except when the stream lists it first: then its lines are rescued.
    """
    options = {k: v for k, v in loader.reader_options.items() if k.lower() != "header"}
    delimiter = options.get("sep", options.get("delimiter", ","))
    quote = options.get("quote", '"')
    files = _file_headers(path)
    headers = list(dict.fromkeys(files.values()))
    names = [
        next(csv.reader([h], delimiter=delimiter, quotechar=quote or None), []) for h in headers
    ]
    header_of = spark.createDataFrame(
        [(name, headers.index(line)) for name, line in files.items()] or [("", -1)],
        f"{_NAME} string, {_HEADER} int",
    )
    value = F.col("value")
    keyed = lines.select(
        value,
        F.col(_FILE),
        F.url_decode(F.element_at(F.split(F.col(_FILE), "/"), -1)).alias(_NAME),
    ).join(F.broadcast(header_of), _NAME, "left")
    # A file's first line is its header, not a row.
    keyed = keyed.where(
        F.coalesce(
            *[F.when(F.col(_HEADER) == i, value != F.lit(h)) for i, h in enumerate(headers)],
            F.lit(True),
        )
    )
    parse = {**options, "mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT}
    parsed = [
        F.from_csv(
            value,
            ", ".join(f"`{n.replace('`', '``')}` STRING" for n in [*columns, _CORRUPT]),
            parse,
        )
        for columns in names
    ]

    def field(name: str) -> Column:
        found = [
            F.when(F.col(_HEADER) == i, parsed[i][name])
            for i, columns in enumerate(names)
            if name in columns
        ]
        return F.coalesce(*found) if found else F.lit(None).cast(StringType())

    unparsed = F.coalesce(
        *[F.when(F.col(_HEADER) == i, parsed[i][_CORRUPT].isNotNull()) for i in range(len(names))],
        F.lit(True),
    )
    known = set(schema.fieldNames())
    extra = sorted({n for columns in names for n in columns} - known)
    texts = {name: field(name) for name in [*schema.fieldNames(), *extra]}
    typed = {f.name: texts[f.name].try_cast(f.dataType) for f in schema.fields}
    lost = [
        F.when(texts[name].isNotNull(), F.create_map(F.lit(name), texts[name])) for name in extra
    ] + [
        F.when(
            texts[f.name].isNotNull() & typed[f.name].isNull(),
            F.create_map(F.lit(f.name), texts[f.name]),
        )
        for f in schema.fields
        if not isinstance(f.dataType, StringType)
    ]
    empty = F.create_map().cast("map<string,string>")
    rescued_map = F.map_concat(empty, *[F.coalesce(m, empty) for m in lost])
    file_entry = F.create_map(F.lit("_file_path"), F.col(_FILE))
    rescued = (
        F.when(
            unparsed,
            F.to_json(F.map_concat(F.create_map(F.lit("_unparsed_record"), value), file_entry)),
        )
        .when(F.size(rescued_map) > 0, F.to_json(F.map_concat(rescued_map, file_entry)))
        .alias(loader.rescued_data_column)
    )
    return keyed.select(
        *[F.when(~unparsed, typed[f.name]).alias(f.name) for f in schema.fields], rescued
    )
