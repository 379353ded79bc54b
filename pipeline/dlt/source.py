"""A user's DLT / Lakeflow source read as Python: a `.py` file, or a Databricks notebook
exported as source (`# Databricks notebook source`, cells between `# COMMAND ----------`,
magic cells as `# MAGIC` lines).

The Python returned keeps the source's line numbers: every line that is not Python (the
notebook header, cell separators, `# DBTITLE` lines, magic lines) becomes an empty line, so
that an error, a warning or a refusal names the line the user sees in their file. Markdown
cells are skipped; a `%pip` cell is skipped with a warning (install those packages in the
environment that runs the harness); a `%sql` or `%run` cell is returned as a `MagicCell` for
the refusals to name (`pipeline.dlt.refusals`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConfigurationError

__all__ = ["NOTEBOOK_HEADER", "MagicCell", "Source", "read_source"]

NOTEBOOK_HEADER = "# Databricks notebook source"
_CELL_SEPARATOR = re.compile(r"^# COMMAND -{5,}\s*$")
_TITLE = re.compile(r"^# DBTITLE \d+,")
_MAGIC = re.compile(r"^# MAGIC ?(.*)$")
_SKIPPED_MAGICS = ("%md", "%md-sandbox")
_WARNED_MAGICS = ("%pip", "%conda", "%sh", "%fs")


@dataclass(frozen=True)
class MagicCell:
    """A notebook cell in a language or command the harness does not run as Python."""

    command: str
    """Its magic command: `%sql`, `%run`, `%scala`, ..."""
    line: int
    """The line of its first `# MAGIC` line in the source file (1-based)."""
    text: str
    """The cell's content without the `# MAGIC` prefixes."""


@dataclass(frozen=True)
class Source:
    """A user's source, read: its Python (the source's line numbers kept) and what was not
    Python."""

    path: Path
    python: str
    notebook: bool
    magic_cells: tuple[MagicCell, ...] = ()
    warnings: tuple[str, ...] = ()


def read_source(path: Path) -> Source:
    """Read `path` as a plain Python file or a notebook exported as source.

    Raises:
        ConfigurationError: the file is missing, not a file, or not UTF-8 text.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(
            f"No pipeline source at {path}: give the path of a DLT / Lakeflow Python file or "
            "notebook exported as source (File > Export > Source file)."
        ) from None
    except IsADirectoryError:
        raise ConfigurationError(
            f"{path} is a folder: give the pipeline's source files (SOURCE.py ...), one by one "
            "or with your shell's glob (folder/*.py)."
        ) from None
    except UnicodeDecodeError as error:
        raise ConfigurationError(
            f"{path} is not UTF-8 text (byte {error.start}): export the notebook as a source "
            "file (File > Export > Source file), not as an archive or HTML."
        ) from None
    lines = text.splitlines()
    if not lines or lines[0].strip() != NOTEBOOK_HEADER:
        return Source(path, text, notebook=False)
    return _notebook(path, lines)


def _notebook(path: Path, lines: list[str]) -> Source:
    python: list[str] = []
    cells: list[MagicCell] = []
    warnings: list[str] = []
    cell: list[tuple[int, str]] = []  # the current cell's magic lines: (line number, text)

    def end_cell() -> None:
        if not cell:
            return
        first_line, first = cell[0]
        command = first.split(maxsplit=1)[0] if first.strip() else ""
        body = "\n".join(text for _number, text in cell)
        if command in _WARNED_MAGICS:
            warnings.append(
                f"{path}:{first_line}: the {command} cell is not run: install what it installs "
                "in the environment that runs the harness, or do it before the run."
            )
        elif command and command not in _SKIPPED_MAGICS:
            cells.append(MagicCell(command, first_line, body))
        cell.clear()

    for number, line in enumerate(lines, start=1):
        magic = _MAGIC.match(line)
        if magic is not None:
            cell.append((number, magic.group(1)))
            python.append("")
            continue
        end_cell()
        skipped = number == 1 or _CELL_SEPARATOR.match(line) or _TITLE.match(line)
        python.append("" if skipped else line)
    end_cell()
    return Source(path, "\n".join(python) + "\n", True, tuple(cells), tuple(warnings))
