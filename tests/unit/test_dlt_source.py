"""A user's DLT source read as Python with its line numbers kept, and what cannot run here
refused by line, before anything runs. No JVM."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.dlt.refusals import refusals
from pipeline.dlt.source import read_source
from pipeline.errors import ConfigurationError

NOTEBOOK = """\
# Databricks notebook source
# MAGIC %md
# MAGIC # Customers
# MAGIC Changes into an SCD2 target.

# COMMAND ----------

# MAGIC %pip install requests

# COMMAND ----------

# DBTITLE 1,Imports
import dlt
from pyspark.sql import functions as F

# COMMAND ----------

@dlt.view
def raw():
    return spark.readStream.format("cloudFiles").load(spark.conf.get("landing"))
"""


def _write(tmp_path: Path, text: str, name: str = "source.py") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_notebook_becomes_python_with_the_same_line_numbers(tmp_path: Path) -> None:
    source = read_source(_write(tmp_path, NOTEBOOK))
    assert source.notebook
    lines = source.python.splitlines()
    original = NOTEBOOK.splitlines()
    assert len(lines) == len(original)
    for number, line in enumerate(original):
        python = not line.startswith(("# MAGIC", "# COMMAND", "# DBTITLE", "# Databricks"))
        assert lines[number] == (line if python else ""), number + 1
    compile(source.python, "source.py", "exec")  # it is Python
    assert source.magic_cells == ()  # %md is skipped, %pip is a warning
    assert len(source.warnings) == 1 and ":8: the %pip cell is not run" in source.warnings[0]
    assert refusals(source) == []


def test_a_plain_python_file_is_read_as_it_is(tmp_path: Path) -> None:
    text = "import dlt\n# MAGIC is only a comment here\n"
    source = read_source(_write(tmp_path, text))
    assert not source.notebook and source.python == text and source.magic_cells == ()


@pytest.mark.parametrize(
    ("line", "feature"),
    [
        ('spark.readStream.format("kafka").load()', "a Kafka source (format 'kafka')"),
        ("spark.readStream.format('eventhubs').load()", "an Event Hubs source"),
        ('dbutils.secrets.get("scope", "key")', "dbutils.secrets"),
        ('dbutils.fs.ls("/mnt")', "dbutils.fs"),
        ("spark.sql(\"SELECT is_account_group_member('admins')\")", "is_account_group_member()"),
        ("F.expr(\"ai_query('model', text)\")", "ai_query()"),
        ("from databricks.sdk.runtime import *", "an import of databricks.sdk.runtime"),
        ("import pyspark.dbutils", "an import of pyspark.dbutils"),
    ],
)
def test_what_cannot_run_here_is_refused_with_its_line(
    tmp_path: Path, line: str, feature: str
) -> None:
    path = _write(tmp_path, f"import dlt\n\n{line}\n")
    found = refusals(read_source(path))
    assert len(found) == 1, found
    refusal = found[0]
    assert refusal.line == 3 and refusal.path == str(path)
    assert feature.removeprefix("an ").removeprefix("a ") in refusal.feature
    assert str(refusal).startswith(f"{path}:3: ") and refusal.fix


def test_widgets_and_files_are_not_refused(tmp_path: Path) -> None:
    text = (
        'landing = dbutils.widgets.get("landing")\n'
        'spark.readStream.format("cloudFiles").option("cloudFiles.format", "json").load(landing)\n'
        'spark.read.format("delta").load("x")\n'
        "is_member = True  # a name, not a SQL function call\n"
    )
    assert refusals(read_source(_write(tmp_path, text))) == []


def test_sql_and_run_cells_are_refused_at_their_first_line(tmp_path: Path) -> None:
    text = (
        "# Databricks notebook source\n"
        "import dlt\n"
        "\n"
        "# COMMAND ----------\n"
        "\n"
        "# MAGIC %sql\n"
        "# MAGIC CREATE OR REFRESH STREAMING TABLE raw AS SELECT * FROM STREAM read_files('x')\n"
        "\n"
        "# COMMAND ----------\n"
        "\n"
        "# MAGIC %run ./helpers\n"
    )
    found = refusals(read_source(_write(tmp_path, text)))
    assert [(r.feature, r.line) for r in found] == [("a %sql cell", 6), ("a %run cell", 11)]
    assert "Python" in found[0].fix and "SOURCE.py" in found[1].fix


def test_a_syntax_error_is_one_refusal_at_its_line(tmp_path: Path) -> None:
    found = refusals(read_source(_write(tmp_path, "import dlt\n\ndef broken(:\n")))
    assert len(found) == 1 and found[0].line == 3 and "not valid Python" in found[0].feature


def test_an_unreadable_source_gets_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="No pipeline source at"):
        read_source(tmp_path / "missing.py")
    with pytest.raises(ConfigurationError, match="is a folder"):
        read_source(tmp_path)
    binary = tmp_path / "exported.dbc"
    binary.write_bytes(b"PK\x03\x04\xff\xfe")
    with pytest.raises(ConfigurationError, match="is not UTF-8 text"):
        read_source(binary)
