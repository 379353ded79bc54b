"""Bronze: raw JSON lines to typed rows, with Auto Loader's rescued-data semantics.

Every non-blank input line ends in exactly one of two outputs: `bronze_events` when the line
is a JSON object, `bronze_quarantine` otherwise. Nothing is dropped.

`_rescued_data` holds, as a JSON string, every value the typed columns could not keep: fields
absent from the schema, fields whose JSON type does not match the schema (kept with their
original JSON value), and fields whose name differs from a schema field only by case (JSON
field matching is case-sensitive, so they are "not in the schema"). Nested structs are rescued
at their own path, e.g. `{"user": {"nickname": "x"}}`. The source file path is added as
`_file_path`, as Auto Loader does. The column is null when nothing was rescued. A record
that repeats a key in one object is rescued whole, as text under `_unparsed_record`: the
typed columns keep the last value, the text keeps every value.
"""

from __future__ import annotations

import json
from typing import cast

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import MapType, StringType, StructField, StructType

from pipeline.transforms.built_once import built_once
from pipeline.transforms.expectations import (
    QUARANTINE_REASON_COLUMN,
    QUARANTINE_RULES_COLUMN,
    no_failed_rules,
)
from pipeline.transforms.schemas import EVENT_SCHEMA

__all__ = [
    "BYTE_ORDER_MARK",
    "QUARANTINE_NOT_AN_OBJECT",
    "RAW_MAP_TYPE",
    "UNPARSED_RECORD_KEY",
    "bronze_rows",
    "canonical_json",
    "event_lines",
    "parse_lines",
    "quarantine_rows",
    "raw_shape",
    "rule_quarantine_rows",
]

RAW_MAP_TYPE = "map<string,variant>"
BYTE_ORDER_MARK = "\ufeff"

QUARANTINE_NOT_AN_OBJECT = "not a JSON object"
UNPARSED_RECORD_KEY = "_unparsed_record"


def _present(raw_value: Column) -> Column:
    """True when the raw JSON value exists and is not JSON null."""
    return raw_value.isNotNull() & ~F.is_variant_null(raw_value)


def _known_names(schema: StructType) -> Column:
    return F.array(*[F.lit(field.name) for field in schema.fields])


def _as_raw_map(raw_value: Column) -> Column:
    """A raw JSON object value as map<string,variant>; null when it is not an object."""
    return F.try_variant_get(raw_value, "$", RAW_MAP_TYPE)


def raw_shape(schema: StructType) -> StructType:
    """The schema with every leaf as `string` and every struct as `map<string,string>`.

    Spark's JSON parser reads any JSON value into a string column (objects and arrays as
    their text) and JSON null as null, so parsing with this shape tells which known fields are
    present, and which keys each nested object has, with plain null checks.
    """
    return StructType(
        [
            StructField(
                field.name,
                MapType(StringType(), StringType())
                if isinstance(field.dataType, StructType)
                else StringType(),
            )
            for field in schema.fields
        ]
    )


def _repeats(keys: Column) -> Column:
    return F.size(keys) != F.size(F.array_distinct(keys))


def _needs_rescue(keys: Column, shape: Column, typed: Column, schema: StructType) -> Column:
    """Cheap test that is true for every row with something to rescue (and rarely for others).

    Uses only array and null checks, so clean rows never pay for building the rescued map.
    `keys` are the object's top-level keys, `shape` its `raw_shape` parse.
    """
    condition = (F.size(F.array_except(keys, _known_names(schema))) > 0) | _repeats(keys)
    for field in schema.fields:
        raw_value = shape[field.name]
        typed_value = typed[field.name]
        if isinstance(field.dataType, StructType):
            condition = (
                condition
                | (F.array_contains(keys, field.name) & raw_value.isNull())
                | F.coalesce(
                    _nested_needs_rescue(raw_value, typed_value, field.dataType), F.lit(False)
                )
            )
        else:
            condition = condition | (raw_value.isNotNull() & typed_value.isNull())
    return condition


def _nested_needs_rescue(raw: Column, typed: Column, schema: StructType) -> Column:
    condition = F.size(F.array_except(F.map_keys(raw), _known_names(schema))) > 0
    for field in schema.fields:
        # A nested struct is compared as a whole: present while not fully typed is a candidate.
        condition = condition | (raw[field.name].isNotNull() & typed[field.name].isNull())
    return condition


def _rescued_map(
    raw: Column,
    typed: Column,
    schema: StructType,
    nested: dict[str, tuple[Column, Column]] | None = None,
) -> Column:
    """Map of field name to raw JSON value for everything `typed` could not keep.

    `nested` gives, for a struct field, its raw map and its own rescued map as columns
    computed before (`parse_lines` does): each is then one column reference, not the whole
    expression again, which keeps the plan small enough to analyse quickly.
    """
    known = _known_names(schema)
    unknown = F.map_filter(raw, lambda key, _value: ~F.array_contains(known, key))
    entries: list[Column] = []
    for field in schema.fields:
        raw_value = raw[field.name]
        typed_value = typed[field.name]
        if isinstance(field.dataType, StructType):
            if nested is not None and field.name in nested:
                raw_nested, rescued_nested = nested[field.name]
            else:
                raw_nested = _as_raw_map(raw_value)
                rescued_nested = _rescued_map(raw_nested, typed_value, field.dataType)
            value = F.when(_present(raw_value) & raw_nested.isNull(), raw_value).when(
                F.size(rescued_nested) > 0, F.to_variant_object(rescued_nested)
            )
        else:
            value = F.when(_present(raw_value) & typed_value.isNull(), raw_value)
        entries += [F.lit(field.name), value]
    mismatched = F.map_filter(F.create_map(*entries), lambda _key, value: value.isNotNull())
    return F.map_concat(unknown, mismatched)


def event_lines(
    spark: SparkSession, path: str, *, max_files_per_trigger: int | None = None
) -> DataFrame:
    """The landing files under `path` as a stream of lines, the input `parse_lines` takes.

    Columns `value` (the text) and `_source_file` (the file's path, from `_metadata`). Files
    in folders below `path` are read too (a streaming producer's date folders), as Auto Loader
    does.
    """
    reader = spark.readStream.format("text").option("recursiveFileLookup", "true")
    if max_files_per_trigger is not None:
        reader = reader.option("maxFilesPerTrigger", max_files_per_trigger)
    return reader.load(path).select("value", F.col("_metadata.file_path").alias("_source_file"))


def canonical_json(typed: Column) -> Column:
    """The JSON text Spark writes for a parsed record: every schema field, in schema order,
    nulls included, no spaces. A line equal to it has nothing to rescue (see `parse_lines`)."""
    return F.to_json(typed, {"ignoreNullFields": "false"})


def parse_lines(
    lines: DataFrame,
    *,
    schema: StructType = EVENT_SCHEMA,
    value_column: str = "value",
    file_column: str = "_source_file",
) -> DataFrame:
    """Parse raw text lines into typed columns, `_rescued_data` and a quarantine reason.

    Each line is parsed once into the typed schema. A line that is exactly the canonical JSON
    of what was parsed (`canonical_json`: the same keys, in schema order, each value of its
    schema type) held nothing the typed columns lost: it is a JSON object, with no unknown,
    mistyped, case-changed or repeated key. Producers that write compact JSON in schema
    order (the generator does) take only this path. Any other line is parsed again, into
    its raw shape and its keys, to find what to rescue or that it is not an object at all.

    Args:
        lines: one row per input line, with the text in `value_column` and the source file
            path in `file_column`.
        schema: the explicit schema of a valid record.
        value_column: name of the text column.
        file_column: name of the file path column.

    Returns:
        Non-blank lines only, with every schema field as a top-level column, `_rescued_data`,
        `_source_file`, `_raw` (the line text) and `_quarantine_reason` (null for JSON
        objects). Split it with `bronze_rows` and `quarantine_rows`.
    """
    blank_free, steps = _parse_steps(schema.json(), value_column, file_column)
    parsed = lines.where(blank_free)
    for step in steps:
        parsed = parsed.select(*step)
    return parsed


_Step = tuple[Column | str, ...]
"""The columns of one projection of `parse_lines`."""


@built_once
def _parse_steps(
    schema_json: str, value_column: str, file_column: str
) -> tuple[Column, tuple[_Step, ...]]:
    """The filter and the projections of `parse_lines`, built once per process.

    The rescue logic is thousands of expression nodes, and building each costs a round trip
    to the JVM (half a second per call of `parse_lines`, every micro-batch): the columns are
    unresolved expressions, so the same ones serve every DataFrame.
    """
    schema = StructType.fromJson(json.loads(schema_json))
    raw = F.col(value_column)
    steps = [
        *_typed_parse_steps(raw, file_column, schema),
        *_rescue_candidate_steps(schema),
        *_nested_rescue_steps(schema),
        _output_step(schema),
    ]
    return F.trim(raw) != "", tuple(steps)


def _typed_parse_steps(raw: Column, file_column: str, schema: StructType) -> list[_Step]:
    """Each line as `_raw`, `_source_file`, its text without a byte order mark (`_text`),
    that text parsed once into `schema` (`_typed`), and whether the text is the canonical
    JSON of what was parsed (`_canonical`)."""
    without_bom = F.when(raw.startswith(BYTE_ORDER_MARK), F.substring(raw, 2, 1 << 30)).otherwise(
        raw
    )
    text = F.col("_text")
    typed = F.col("_typed")
    return [
        (raw.alias("_raw"), F.col(file_column).alias("_source_file"), without_bom.alias("_text")),
        ("_raw", "_source_file", "_text", F.from_json(text, schema).alias("_typed")),
        # The parse happens inside a generator: Spark pushes a filter on what it computes
        # (such as `bronze_rows`' filter on `_quarantine_reason`) down to the generator, not
        # below it, where it would inline the parse and run it twice.
        (
            F.inline(
                F.array(
                    F.struct(
                        "_raw",
                        "_source_file",
                        "_text",
                        "_typed",
                        F.coalesce(canonical_json(typed) == text, F.lit(False)).alias("_canonical"),
                    )
                )
            ),
        ),
    ]


def _rescue_candidate_steps(schema: StructType) -> list[_Step]:
    """For the lines that are not canonical: their raw shape (`_shape`) and keys (`_keys`),
    the cheap test of `_needs_rescue`, and, for the rows that pass it, every key's raw value
    (`_full`)."""
    text = F.col("_text")
    # Only lines that are not canonical pay for a second and third parse; columns, not
    # expressions, so that Spark computes each once per line rather than once per use.
    unusual = ~F.col("_canonical")
    shape_step: _Step = (
        "*",
        F.when(unusual, F.from_json(text, raw_shape(schema))).alias("_shape"),
        F.when(unusual, F.json_object_keys(text)).alias("_keys"),
    )
    needs = unusual & _needs_rescue(F.col("_keys"), F.col("_shape"), F.col("_typed"), schema)
    return [
        shape_step,
        ("*", needs.alias("_needs_rescue")),
        # Only rows that pass the cheap test parse again, into a map of every key, to be rescued.
        ("*", F.when(F.col("_needs_rescue"), F.from_json(text, RAW_MAP_TYPE)).alias("_full")),
    ]


def _struct_fields(schema: StructType) -> list[StructField]:
    return [field for field in schema.fields if isinstance(field.dataType, StructType)]


def _nested_rescue_steps(schema: StructType) -> list[_Step]:
    """Each struct's raw map (`_raw_<name>`), then what it rescues (`_rescued_<name>`), as
    columns of their own (see `_rescued_map`)."""
    full = F.col("_full")
    typed = F.col("_typed")
    structs = _struct_fields(schema)
    return [
        ("*", *[_as_raw_map(full[f.name]).alias(f"_raw_{f.name}") for f in structs]),
        (
            "*",
            *[
                _rescued_map(
                    F.col(f"_raw_{f.name}"), typed[f.name], cast(StructType, f.dataType)
                ).alias(f"_rescued_{f.name}")
                for f in structs
            ],
        ),
    ]


def _rescued_json(schema: StructType) -> Column:
    """`_rescued_data` of a row that needs rescue: what it rescues and its file path, as JSON;
    null when it rescues nothing."""
    text = F.col("_text")
    full = F.col("_full")
    nested = {
        f.name: (F.col(f"_raw_{f.name}"), F.col(f"_rescued_{f.name}"))
        for f in _struct_fields(schema)
    }
    rescued = _rescued_map(full, F.col("_typed"), schema, nested)
    file_entry = F.create_map(F.lit("_file_path"), F.col("_source_file").cast("variant"))
    # A record the variant parser refuses (a repeated key) keeps its whole text instead.
    whole_record = F.create_map(F.lit(UNPARSED_RECORD_KEY), text.cast("variant"))
    return F.when(
        full.isNull() | _repeats(F.col("_keys")),
        F.to_json(F.map_concat(whole_record, file_entry)),
    ).when(F.size(rescued) > 0, F.to_json(F.map_concat(rescued, file_entry)))


def _output_step(schema: StructType) -> _Step:
    """The columns `parse_lines` returns."""
    typed = F.col("_typed")
    unusual = ~F.col("_canonical")
    return (
        *[typed[field.name].alias(field.name) for field in schema.fields],
        F.when(F.col("_needs_rescue"), _rescued_json(schema)).alias("_rescued_data"),
        "_source_file",
        "_raw",
        F.when(unusual & F.col("_keys").isNull(), F.lit(QUARANTINE_NOT_AN_OBJECT)).alias(
            "_quarantine_reason"
        ),
    )


def bronze_rows(
    parsed: DataFrame, *, ingested_at: Column, schema: StructType = EVENT_SCHEMA
) -> DataFrame:
    """The `bronze_events` rows of `parse_lines` output: typed columns plus lineage.

    `schema` is the one `parse_lines` used: its fields are the typed columns.
    """
    return parsed.where(F.col("_quarantine_reason").isNull()).select(
        *[field.name for field in schema.fields],
        "_rescued_data",
        "_source_file",
        ingested_at.alias("_ingested_at"),
    )


def quarantine_rows(parsed: DataFrame, *, ingested_at: Column) -> DataFrame:
    """The `bronze_quarantine` rows of `parse_lines` output: raw text, file and reason.

    `failed_expectations` is empty here: these lines are not JSON objects, no rule was run.
    """
    return parsed.where(F.col("_quarantine_reason").isNotNull()).select(
        F.col("_raw").alias("raw_line"),
        "_source_file",
        F.col("_quarantine_reason").alias("reason"),
        ingested_at.alias("_ingested_at"),
        no_failed_rules(),
    )


def rule_quarantine_rows(dropped: DataFrame, *, ingested_at: Column) -> DataFrame:
    """`bronze_quarantine` rows for parsed objects that failed drop rules.

    Args:
        dropped: `pipeline.transforms.expectations.dropped_rows` of evaluated `parse_lines` output.
        ingested_at: the ingestion time column.
    """
    return dropped.select(
        F.col("_raw").alias("raw_line"),
        "_source_file",
        QUARANTINE_REASON_COLUMN,
        ingested_at.alias("_ingested_at"),
        QUARANTINE_RULES_COLUMN,
    )
