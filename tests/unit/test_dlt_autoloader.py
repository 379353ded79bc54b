"""Auto Loader options read as Databricks reads them, and the schema it keeps. No JVM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql.types import LongType, StructField, StructType

from pipeline.dlt.autoloader import auto_loader, schema_hints
from pipeline.dlt.files import _kept
from pipeline.errors import ConfigurationError


def test_defaults_follow_databricks() -> None:
    loader = auto_loader({"cloudFiles.format": "JSON"})
    assert loader.format == "json"
    assert not loader.infer_column_types  # JSON and CSV columns are strings unless asked
    assert loader.schema_evolution_mode == "addNewColumns"
    assert loader.rescued_data_column == "_rescued_data"
    assert auto_loader({"cloudFiles.format": "csv"}, schema_given=True).schema_evolution_mode == (
        "none"
    )


def test_reader_options_pass_on_and_cloud_only_options_are_named() -> None:
    loader = auto_loader(
        {
            "cloudFiles.format": "csv",
            "cloudFiles.inferColumnTypes": "true",
            "cloudFiles.schemaLocation": "/mnt/schemas/orders",
            "cloudFiles.useNotifications": "true",
            "cloudFiles.schemaEvolutionMode": "rescue",
            "header": "true",
            "sep": ";",
            "rescuedDataColumn": "_bad",
        }
    )
    assert loader.infer_column_types and loader.schema_evolution_mode == "rescue"
    assert loader.reader_options == {"header": "true", "sep": ";"}
    assert loader.rescued_data_column == "_bad"
    assert loader.ignored == ("cloudFiles.schemaLocation", "cloudFiles.useNotifications")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, r"cloudFiles.format '\(none\)'.*reads json and csv"),
        ({"cloudFiles.format": "avro"}, r"cloudFiles.format 'avro'"),
        (
            {"cloudFiles.format": "json", "cloudFiles.schemaEvolutionMode": "merge"},
            r"schemaEvolutionMode 'merge': one of addNewColumns, rescue",
        ),
        (
            {"cloudFiles.format": "json", "cloudFiles.inferColumTypes": "true"},
            r"cloudFiles.inferColumTypes are unknown.*check their spelling",
        ),
    ],
)
def test_what_the_local_auto_loader_cannot_do_is_named(
    options: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        auto_loader(options)


def test_schema_hints_keep_commas_inside_types() -> None:
    assert schema_hints(
        "id BIGINT, amount DECIMAL(10,2), tags ARRAY<STRING>, m MAP<STRING,INT>"
    ) == (
        ("id", "BIGINT"),
        ("amount", "DECIMAL(10,2)"),
        ("tags", "ARRAY<STRING>"),
        ("m", "MAP<STRING,INT>"),
    )
    assert schema_hints("") == ()
    assert schema_hints("`order id` STRING, `a,b` INT") == (("order id", "STRING"), ("a,b", "INT"))


@pytest.mark.parametrize(
    ("text", "message"),
    [("amount DECIMAL(10,2", "unbalanced brackets"), ("id BIGINT, amount", "'amount' has no type")],
)
def test_malformed_schema_hints_are_named(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        schema_hints(text)


def test_a_schema_kept_before_its_files_were_is_still_read(tmp_path: Path) -> None:
    schema = StructType([StructField("id", LongType())])
    old = tmp_path / "old.json"
    old.write_text(schema.json())  # as `clickstream dlt run` kept it until this version
    assert _kept(old) == (schema, set())
    new = tmp_path / "new.json"
    new.write_text(json.dumps({"schema": schema.jsonValue(), "files": ["a.json"]}))
    assert _kept(new) == (schema, {"a.json"})
    assert _kept(tmp_path / "absent.json") == (None, set())
