"""`spark` as a user's source sees it: the real session, except where a pipeline gives a name
another meaning.

* `spark.conf.get` answers from the run's settings (`--conf KEY=VALUE`) and the source's
  defaults without starting the JVM, so a source's top level runs before any Spark work;
  a key with neither is an error naming the `--conf` to pass.
* `spark.read` and `spark.readStream` record what the query asks for and hand it to the
  runtime's `Datasets`: `.table(name)` of a pipeline dataset, `format("cloudFiles")` (the
  local Auto Loader), or any other file format, whose folder the runtime watches for new files.
* `spark.table(name)` and `spark.sql(text)` with `LIVE.name` read pipeline datasets.

Everything else (`spark.createDataFrame`, `spark.range`, ...) is the real session's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, MutableMapping
from typing import Any, Protocol

from pipeline.errors import ConfigurationError

__all__ = ["Datasets", "PipelineSpark", "dataset_name"]

_MISSING = object()
_LIVE_REFERENCE = re.compile(r"\bLIVE\.`?([A-Za-z_][A-Za-z0-9_]*)`?", re.IGNORECASE)


def dataset_name(name: str) -> str:
    """A pipeline dataset's name as a source may write it: `x`, `LIVE.x`, `catalog.schema.x`,
    each read as `x` (the pipeline publishes every dataset in one schema)."""
    return name.strip().strip("`").rsplit(".", 1)[-1].strip("`")


class Datasets(Protocol):
    """What the runtime gives the proxy: datasets and files as DataFrames."""

    def read(self, name: str) -> Any: ...

    def read_stream(self, name: str) -> Any: ...

    def load(
        self, *, streaming: bool, file_format: str, options: dict[str, str], schema: Any, path: str
    ) -> Any: ...


class _Conf:
    """`spark.conf`: the run's settings first; the session's own for `spark.*` keys."""

    def __init__(self, settings: MutableMapping[str, str], session: Callable[[], Any]) -> None:
        self._settings = settings
        self._session = session

    def get(self, key: str, default: Any = _MISSING) -> Any:
        if key in self._settings:
            return self._settings[key]
        if default is not _MISSING:
            return default
        if key.startswith("spark."):
            return self._session().conf.get(key)
        raise ConfigurationError(
            f"spark.conf.get({key!r}) has no value and the source gives no default: pass "
            f"--conf {key}=VALUE"
        )

    def set(self, key: str, value: Any) -> None:
        self._settings[key] = str(value)

    def isModifiable(self, key: str) -> bool:  # noqa: N802 (Spark's name)
        return True


class _Reader:
    """`spark.read` / `spark.readStream`: the format, options and schema a query gives, then
    `load`, a format shortcut (`.json(path)`, ...) or `.table(name)`."""

    def __init__(self, datasets: Datasets, *, streaming: bool) -> None:
        self._datasets = datasets
        self._streaming = streaming
        self._format = "parquet"
        self._options: dict[str, str] = {}
        self._schema: Any = None

    def format(self, source: str) -> _Reader:
        self._format = source
        return self

    def option(self, key: str, value: Any) -> _Reader:
        self._options[key] = _option_text(value)
        return self

    def options(self, **options: Any) -> _Reader:
        for key, value in options.items():
            self.option(key, value)
        return self

    def schema(self, schema: Any) -> _Reader:
        self._schema = schema
        return self

    def load(self, path: str | None = None, format: str | None = None, **options: Any) -> Any:
        if format is not None:
            self.format(format)
        self.options(**options)
        if path is None:
            raise ConfigurationError(
                f"{'spark.readStream' if self._streaming else 'spark.read'}.load() needs the "
                "folder to read: give it, for example from spark.conf.get(...)"
            )
        return self._datasets.load(
            streaming=self._streaming,
            file_format=self._format,
            options=dict(self._options),
            schema=self._schema,
            path=str(path),
        )

    def table(self, name: str) -> Any:
        reader = self._datasets.read_stream if self._streaming else self._datasets.read
        return reader(dataset_name(name))

    def _shortcut(self, file_format: str, path: str, **options: Any) -> Any:
        return self.format(file_format).load(path, **options)

    def json(self, path: str, **options: Any) -> Any:
        return self._shortcut("json", path, **options)

    def csv(self, path: str, **options: Any) -> Any:
        return self._shortcut("csv", path, **options)

    def parquet(self, path: str, **options: Any) -> Any:
        return self._shortcut("parquet", path, **options)

    def text(self, path: str, **options: Any) -> Any:
        return self._shortcut("text", path, **options)

    def orc(self, path: str, **options: Any) -> Any:
        return self._shortcut("orc", path, **options)


def _option_text(value: Any) -> str:
    """An option's value as Spark stores it: booleans as `true` / `false`."""
    return str(value).lower() if isinstance(value, bool) else str(value)


class PipelineSpark:
    """The `spark` of a user's source (see the module docstring)."""

    def __init__(
        self,
        settings: MutableMapping[str, str],
        session: Callable[[], Any],
        datasets: Datasets | None = None,
    ) -> None:
        self._settings = settings
        self._session = session
        self._datasets = datasets
        self.conf = _Conf(settings, session)

    def bind(self, datasets: Datasets) -> None:
        """Give the runtime's datasets (the queries run after the sources are loaded)."""
        self._datasets = datasets

    def _bound(self) -> Datasets:
        if self._datasets is None:
            raise ConfigurationError(
                "a source reads data at its top level, outside any dataset's function: move "
                "the read into a function under @dlt.table or @dlt.view"
            )
        return self._datasets

    @property
    def read(self) -> _Reader:
        return _Reader(self._bound(), streaming=False)

    @property
    def readStream(self) -> _Reader:  # noqa: N802 (Spark's name)
        return _Reader(self._bound(), streaming=True)

    def table(self, name: str) -> Any:
        return self._bound().read(dataset_name(name))

    def sql(self, text: str, *args: Any, **kwargs: Any) -> Any:
        """Spark SQL, with each `LIVE.name` read as the pipeline dataset `name`."""
        session = self._session()
        for name in dict.fromkeys(m.group(1) for m in _LIVE_REFERENCE.finditer(text)):
            self._bound().read(name).createOrReplaceTempView(f"__live_{name}")
        return session.sql(_LIVE_REFERENCE.sub(r"__live_\1", text), *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session(), name)
