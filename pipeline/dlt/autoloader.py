"""Auto Loader (`spark.readStream.format("cloudFiles")`) options, read as Databricks reads
them, for the local file source that stands in for it.

Supported: `cloudFiles.format` json and csv; `cloudFiles.inferColumnTypes` (false by default,
as on Databricks: JSON and CSV columns are then inferred as strings); `cloudFiles.schemaHints`
(column types that override the inferred ones); `cloudFiles.schemaEvolutionMode`;
`rescuedDataColumn` (default `_rescued_data`); the reader options of the format (`header`,
`sep`, `multiLine`, ...), passed on. Options that only mean something in the cloud (file
notifications, schema location, queues, credentials, ...) are accepted and ignored, each
named once in a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.errors import ConfigurationError

__all__ = [
    "CLOUD_ONLY_OPTIONS",
    "DEFAULT_RESCUED_DATA_COLUMN",
    "EVOLUTION_MODES",
    "FORMATS",
    "AutoLoader",
    "auto_loader",
    "schema_hints",
]

FORMATS = ("json", "csv")
DEFAULT_RESCUED_DATA_COLUMN = "_rescued_data"
EVOLUTION_MODES = ("addNewColumns", "rescue", "failOnNewColumns", "none")
CLOUD_ONLY_OPTIONS = frozenset(
    f"cloudfiles.{name.lower()}"
    for name in (
        "schemaLocation",
        "useNotifications",
        "useManagedFileEvents",
        "useIncrementalListing",
        "backfillInterval",
        "queueName",
        "queueUrl",
        "connectionString",
        "resourceGroup",
        "subscriptionId",
        "tenantId",
        "clientId",
        "clientSecret",
        "region",
        "roleArn",
        "roleSessionName",
        "stsEndpoint",
        "projectId",
        "fetchParallelism",
        "pathRewrites",
        "resourceTag",
        "validateOptions",
        "maxFilesPerTrigger",
        "maxBytesPerTrigger",
        "maxFileAge",
        "cleanSource",
        "cleanSource.retentionDuration",
        "cleanSource.moveDestination",
        "includeExistingFiles",
        "allowOverwrites",
    )
)
"""Options the local file source accepts and ignores (lower-cased, as Spark's options are):
they tune the cloud service's listing or notifications, or where Databricks keeps state."""
_OWN = ("cloudfiles.format", "cloudfiles.infercolumntypes", "cloudfiles.schemahints")
_EVOLUTION = "cloudfiles.schemaevolutionmode"
_RESCUED = "rescueddatacolumn"


@dataclass(frozen=True)
class AutoLoader:
    """What an Auto Loader source asks for."""

    format: str
    infer_column_types: bool
    schema_hints: tuple[tuple[str, str], ...]
    """(column, type in SQL DDL) pairs, in the order given."""
    schema_evolution_mode: str
    rescued_data_column: str
    reader_options: dict[str, str]
    """The format's own options, passed to Spark's reader."""
    ignored: tuple[str, ...]
    """Cloud-only options given, as given."""


def auto_loader(options: Mapping[str, str], *, schema_given: bool = False) -> AutoLoader:
    """The Auto Loader settings of a `cloudFiles` source's options.

    `schema_given`: the source set a schema (`.schema(...)`); the schema evolution mode then
    defaults to `none`, as on Databricks, and `addNewColumns` otherwise.

    Raises:
        ConfigurationError: no or an unsupported `cloudFiles.format`, an unknown evolution
            mode, malformed schema hints, or an unknown `cloudFiles.` option.
    """
    given = {key.lower(): (key, str(value)) for key, value in options.items()}
    file_format = given.get("cloudfiles.format", ("", ""))[1].lower()
    if file_format not in FORMATS:
        raise ConfigurationError(
            f"Auto Loader with cloudFiles.format {file_format or '(none)'!r}: the local Auto "
            f"Loader reads {' and '.join(FORMATS)} files; set "
            '.option("cloudFiles.format", "json") or "csv"'
        )
    mode = given.get(_EVOLUTION, ("", "none" if schema_given else "addNewColumns"))[1]
    if mode not in EVOLUTION_MODES:
        raise ConfigurationError(
            f"cloudFiles.schemaEvolutionMode {mode!r}: one of {', '.join(EVOLUTION_MODES)}"
        )
    unknown = [
        key
        for lowered, (key, _value) in given.items()
        if lowered.startswith("cloudfiles.")
        and lowered not in (*_OWN, _EVOLUTION)
        and lowered not in CLOUD_ONLY_OPTIONS
    ]
    if unknown:
        raise ConfigurationError(
            f"Auto Loader option(s) {', '.join(sorted(unknown))} are unknown to the local Auto "
            "Loader: check their spelling against the Databricks reference, or remove them"
        )
    return AutoLoader(
        format=file_format,
        infer_column_types=given.get("cloudfiles.infercolumntypes", ("", "false"))[1].lower()
        == "true",
        schema_hints=schema_hints(given.get("cloudfiles.schemahints", ("", ""))[1]),
        schema_evolution_mode=mode,
        rescued_data_column=given.get(_RESCUED, ("", DEFAULT_RESCUED_DATA_COLUMN))[1],
        reader_options={
            key: value
            for lowered, (key, value) in given.items()
            if not lowered.startswith("cloudfiles.") and lowered != _RESCUED
        },
        ignored=tuple(key for lowered, (key, _v) in given.items() if lowered in CLOUD_ONLY_OPTIONS),
    )


def schema_hints(text: str) -> tuple[tuple[str, str], ...]:
    """`"id BIGINT, amount DECIMAL(10,2), tags ARRAY<STRING>"` as (column, type) pairs: commas
    inside `<>` and `()` belong to the type, and a name in backquotes may hold any character.

    Raises:
        ConfigurationError: a hint without a type, or unbalanced brackets.
    """
    hints, depth, current, quoted = [], 0, "", False
    for character in text:
        quoted ^= character == "`"
        depth += 0 if quoted else {"<": 1, "(": 1, ">": -1, ")": -1}.get(character, 0)
        if depth < 0:
            break
        if character == "," and depth == 0 and not quoted:
            hints.append(current)
            current = ""
        else:
            current += character
    if depth != 0:
        raise ConfigurationError(
            f"cloudFiles.schemaHints {text!r}: unbalanced brackets; write hints as "
            '"column TYPE, other TYPE", for example "amount DECIMAL(10,2)"'
        )
    hints.append(current)
    found = []
    for hint in (h.strip() for h in hints):
        if not hint:
            continue
        if hint.startswith("`") and "`" in hint[1:]:
            end = hint.index("`", 1)
            column, data_type = hint[1:end], hint[end + 1 :]
        else:
            column, _space, data_type = hint.partition(" ")
        if not data_type.strip():
            raise ConfigurationError(
                f"cloudFiles.schemaHints: {hint!r} has no type; write it as {hint!r} TYPE, "
                'for example "amount DOUBLE"'
            )
        found.append((column, data_type.strip()))
    return tuple(found)
