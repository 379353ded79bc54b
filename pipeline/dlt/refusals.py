"""What a DLT / Lakeflow source uses that cannot run on this machine, found by reading it,
before anything runs or any table is written.

Each refusal names the feature, the file and line, and what to do. Found here: streaming
sources of message buses (Kafka, Event Hubs, Kinesis, Pub/Sub, Pulsar), `dbutils` beyond
`dbutils.widgets`, Unity Catalog and AI functions in SQL text, Databricks-only imports, and
notebook cells in SQL, Scala or R or running another notebook (`%run`). What only shows when
the source runs (an Auto Loader format, a table outside the pipeline) is refused by the
runtime, as it defines the datasets and before it writes.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.dlt.source import Source

__all__ = ["BUS_FORMATS", "UC_FUNCTIONS", "Refusal", "refusals"]

BUS_FORMATS: dict[str, str] = {
    "kafka": "Kafka",
    "eventhubs": "Event Hubs",
    "kinesis": "Kinesis",
    "pubsub": "Google Pub/Sub",
    "pulsar": "Apache Pulsar",
}
"""Streaming source formats of message buses, which need a broker this machine does not
have."""
UC_FUNCTIONS = re.compile(
    r"\b(current_metastore|is_account_group_member|is_member|secret|ai_[a-z_]+|vector_search"
    r"|read_kafka|read_kinesis|read_pubsub|read_pulsar|http_request)\s*\(",
    re.IGNORECASE,
)
"""Functions of Databricks SQL that need Unity Catalog or a Databricks service."""
_DATABRICKS_MODULES = ("databricks", "pyspark.dbutils", "dbruntime")
_MAGIC_FIXES = {
    "%sql": "write the dataset in Python (a function under @dlt.table that returns "
    "spark.sql(...) runs the same query)",
    "%run": "pass the notebook it runs as another SOURCE.py on the command line",
}


@dataclass(frozen=True)
class Refusal:
    """One feature the source uses that cannot run here."""

    feature: str
    path: str
    line: int
    fix: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.feature}: {self.fix}"


def refusals(source: Source) -> list[Refusal]:
    """Every feature of `source` that cannot run here, in line order (empty: none found).

    A source that is not valid Python is one refusal naming the syntax error's line.
    """
    path = str(source.path)
    found = [
        Refusal(
            f"a {cell.command} cell",
            path,
            cell.line,
            _MAGIC_FIXES.get(cell.command, "rewrite the cell in Python, or remove it"),
        )
        for cell in source.magic_cells
    ]
    try:
        tree = ast.parse(source.python, filename=path)
    except SyntaxError as error:
        return [
            Refusal(
                f"not valid Python ({error.msg})",
                path,
                error.lineno or 1,
                "fix the line; a notebook must be exported as a source file",
            )
        ]
    found += [Refusal(feature, path, line, fix) for feature, line, fix in _scan(tree)]
    return sorted(found, key=lambda r: r.line)


def _scan(tree: ast.AST) -> Iterator[tuple[str, int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield from _bus_source(node)
        elif isinstance(node, ast.Attribute):
            yield from _dbutils(node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for match in UC_FUNCTIONS.finditer(node.value):
                yield (
                    f"the Databricks SQL function {match.group(1)}()",
                    node.lineno,
                    "it needs Unity Catalog or a Databricks service: compute the value in "
                    "the query, or pass it with --conf KEY=VALUE",
                )
        elif isinstance(node, ast.Import | ast.ImportFrom):
            yield from _databricks_import(node)


def _bus_source(call: ast.Call) -> Iterator[tuple[str, int, str]]:
    """`.format("kafka")` and the like, on any reader."""
    function = call.func
    if not (isinstance(function, ast.Attribute) and function.attr == "format" and call.args):
        return
    name = call.args[0]
    if isinstance(name, ast.Constant) and isinstance(name.value, str):
        bus = BUS_FORMATS.get(name.value.lower())
        if bus is not None:
            yield (
                f"a {bus} source (format {name.value!r})",
                call.lineno,
                "no broker runs here: for the local run, land the messages as JSON files and "
                'read them with Auto Loader (format("cloudFiles") with cloudFiles.format '
                "json), the folder given by a --conf setting",
            )


def _dbutils(node: ast.Attribute) -> Iterator[tuple[str, int, str]]:
    """`dbutils.<utility>` other than `dbutils.widgets`."""
    owner = node.value
    if isinstance(owner, ast.Name) and owner.id == "dbutils" and node.attr != "widgets":
        yield (
            f"dbutils.{node.attr}",
            node.lineno,
            "only dbutils.widgets runs here (its values from --conf KEY=VALUE); pass a secret "
            "or a path with --conf and read it with spark.conf.get",
        )


def _databricks_import(node: ast.Import | ast.ImportFrom) -> Iterator[tuple[str, int, str]]:
    names = (
        [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
    )
    for name in names:
        if any(name == m or name.startswith(f"{m}.") for m in _DATABRICKS_MODULES):
            yield (
                f"an import of {name}",
                node.lineno,
                "Databricks' runtime modules are not here: remove the import (the harness "
                "gives the source `spark`, `dlt` and `dbutils.widgets`)",
            )
