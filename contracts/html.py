"""The one layout and style of every HTML report: Jinja2 templates extending `base.html.j2`.

The quarantine report (here), the scenario report (`scenarios/`) and the benchmark report
(`benchmarks/`) each keep their page in their own package's `templates/` folder; the base
layout, the style and the shared macros (`macros.html.j2`: a sample table, a badge) live in
`contracts/templates/`, the lowest package that writes a report. Every value is escaped
unless a template marks it safe (the inline SVG charts the reports draw themselves).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined

__all__ = ["CELL_CHARACTERS", "cell", "columns", "render"]

CELL_CHARACTERS = 120
"""The longest sample cell a report shows; longer values end in an ellipsis."""


def cell(value: object) -> str:
    """A sample value as a report shows it: `null` for None, cut at `CELL_CHARACTERS`."""
    text = "null" if value is None else str(value)
    return text if len(text) <= CELL_CHARACTERS else text[: CELL_CHARACTERS - 1] + "…"


def columns(rows: Iterable[Mapping[str, object]]) -> list[str]:
    """Every column name of `rows`, in order of first appearance."""
    return list(dict.fromkeys(name for row in rows for name in row))


@cache
def _environment(package: str) -> Environment:
    loaders = [PackageLoader(package, "templates")]
    if package != "contracts":
        loaders.append(PackageLoader("contracts", "templates"))
    environment = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["cell"] = cell
    environment.filters["columns"] = columns
    return environment


def render(package: str, template: str, **context: Any) -> str:
    """`template` of `package`'s `templates/` folder, rendered with `context`."""
    return _environment(package).get_template(template).render(**context)
