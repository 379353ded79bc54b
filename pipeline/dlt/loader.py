"""A user's sources executed, as Databricks executes them when it plans an update: each
source's top level runs once, with `import dlt` (and `from pyspark import pipelines as dp`)
giving the harness's module, and `spark`, `dbutils.widgets` and `display` in its globals
(`SparkSession.active()` and `builder.getOrCreate()` give the same `spark`).
The decorated functions are recorded, not called (`pipeline.dlt.api.Declarations`).

A source is first read (`pipeline.dlt.source`) and checked (`pipeline.dlt.refusals`): one that
uses what cannot run here stops before any of them runs.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.dlt.api import Declarations, dlt_module
from pipeline.dlt.refusals import Refusal, refusals
from pipeline.dlt.source import Source, read_source
from pipeline.errors import ConfigurationError

__all__ = ["UnsupportedFeatureError", "Widgets", "checked_sources", "load_sources"]


class UnsupportedFeatureError(ConfigurationError):
    """Raised before anything runs when a source uses what cannot run here."""

    def __init__(self, found: Sequence[Refusal]) -> None:
        self.refusals = tuple(found)
        lines = "\n".join(f"  {refusal}" for refusal in found)
        super().__init__(
            f"The pipeline uses {len(found)} feature(s) that cannot run locally; nothing was "
            f"run or written:\n{lines}"
        )


class Widgets:
    """`dbutils.widgets`: values from the run's settings (`--conf KEY=VALUE`)."""

    def __init__(self, settings: Mapping[str, str]) -> None:
        self._settings = dict(settings)

    def get(self, name: str) -> str:
        if name not in self._settings:
            raise ConfigurationError(
                f"dbutils.widgets.get({name!r}): no value: pass --conf {name}=VALUE"
            )
        return self._settings[name]

    def text(self, name: str, default_value: str = "", label: str | None = None) -> None:
        """Declare a widget: its default holds unless `--conf` gives a value."""
        self._settings.setdefault(name, default_value)

    def dropdown(
        self, name: str, default_value: str, choices: Sequence[str] = (), label: str | None = None
    ) -> None:
        """Declare a choice widget: as `text`."""
        self.text(name, default_value)

    combobox = multiselect = dropdown


def load_sources(
    paths: Sequence[Path],
    spark: Any,
    settings: Mapping[str, str],
    read: Callable[[str], Any],
    read_stream: Callable[[str], Any],
    warn: Callable[[str], None] = lambda _message: None,
) -> Declarations:
    """Read, check and execute each source; what they declare, checked as a whole.

    Args:
        paths: the sources, in the order given (each may read what an earlier one declares
            only when a query runs, as on Databricks).
        spark: the session the sources see as `spark` (its conf holds `settings`).
        settings: `--conf` values, also the widgets' values.
        read, read_stream: what `dlt.read` and `dlt.read_stream` return for a dataset's name.
        warn: called with each warning (a skipped `%pip` cell, ...).

    Raises:
        UnsupportedFeatureError: a source uses what cannot run here (all of them named).
        ConfigurationError: a source is unreadable, or its declarations are inconsistent.
    """
    sources = checked_sources(paths)
    for source in sources:
        for warning in source.warnings:
            warn(warning)
    declarations = Declarations(str(sources[0].path) if sources else "")
    widgets = Widgets(settings)
    for source in sources:
        declarations.source_path = str(source.path)
        module = dlt_module(declarations, read, read_stream)
        with _installed(module), _active_session(spark):
            _execute(source, module, spark, widgets)
    return declarations.checked()


def checked_sources(paths: Sequence[Path]) -> list[Source]:
    """The sources, read; none of them uses what cannot run here.

    Raises:
        UnsupportedFeatureError: what cannot run here, in every source, named.
        ConfigurationError: a source is unreadable.
    """
    sources = [read_source(path) for path in paths]
    found = [refusal for source in sources for refusal in refusals(source)]
    if found:
        raise UnsupportedFeatureError(found)
    return sources


def _execute(source: Source, module: types.ModuleType, spark: Any, widgets: Widgets) -> None:
    code = compile(source.python, str(source.path), "exec")
    namespace: dict[str, Any] = {
        "__name__": "__main__",
        "__file__": str(source.path),
        "spark": spark,
        "dbutils": types.SimpleNamespace(widgets=widgets),
        "display": lambda *_args, **_kw: None,
        "dlt": module,
    }
    exec(code, namespace)  # running the user's pipeline source is the point


@contextlib.contextmanager
def _active_session(spark: Any) -> Iterator[None]:
    """`SparkSession.active()`, `getActiveSession()` and `builder.getOrCreate()` give `spark`
    while the block runs, as they give the pipeline's session in a source on Databricks."""
    from pyspark.sql import SparkSession

    saved = {
        (SparkSession, "active"): SparkSession.__dict__["active"],
        (SparkSession, "getActiveSession"): SparkSession.__dict__["getActiveSession"],
        (SparkSession.Builder, "getOrCreate"): SparkSession.Builder.__dict__["getOrCreate"],
    }
    SparkSession.active = classmethod(lambda _cls: spark)  # type: ignore[method-assign,assignment]
    SparkSession.getActiveSession = classmethod(  # type: ignore[method-assign,assignment]
        lambda _cls: spark
    )
    SparkSession.Builder.getOrCreate = lambda _self: spark  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        for (owner, name), previous in saved.items():
            setattr(owner, name, previous)


@contextlib.contextmanager
def _installed(module: types.ModuleType) -> Iterator[None]:
    """`import dlt` and `from pyspark import pipelines` give `module` while the block runs."""
    import pyspark

    saved = {name: sys.modules.get(name) for name in ("dlt", "pyspark.pipelines")}
    attribute = pyspark.__dict__.get("pipelines")
    sys.modules["dlt"] = sys.modules["pyspark.pipelines"] = module
    pyspark.__dict__["pipelines"] = module
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
        if attribute is None:
            pyspark.__dict__.pop("pipelines", None)
        else:
            pyspark.__dict__["pipelines"] = attribute
