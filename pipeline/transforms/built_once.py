"""Expressions built once per process: the layer functions reuse their `Column`s.

Building a `Column` in classic PySpark is a round trip to the JVM per expression node, and
the layer functions build hundreds (bronze's rescue logic thousands) for every micro-batch:
half a second of a small run went to it. Their columns name what they read (`F.col("x")`),
so the same unresolved expressions serve every DataFrame; they are cached per argument and
per kind of session (classic or Spark Connect, whose columns do not mix).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from pyspark.sql.utils import is_remote

__all__ = ["built_once"]

P = ParamSpec("P")
T = TypeVar("T")


def built_once(build: Callable[P, T]) -> Callable[P, T]:
    """Cache what `build` returns for its (hashable) arguments and the kind of session."""

    @functools.lru_cache(maxsize=32)
    def cached(remote: bool, *args: object, **kwargs: object) -> T:
        del remote  # part of the cache key only
        return build(*args, **kwargs)  # type: ignore[arg-type]

    @functools.wraps(build)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return cached(is_remote(), *args, **kwargs)  # type: ignore[arg-type]  # hashable

    return wrapper
