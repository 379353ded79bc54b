"""Row checks that are pure `Column` builders and also say what they mean, for GX and reports.

Each factory (`is_not_null`, `is_in`, `has_length`, `matches_regex`, `is_between`,
`is_not_after`) returns a frozen `Check`. Calling a check builds its `Column` (so it can be an
`Expectation.predicate` directly, as DQX's check functions are); its fields say which column
and bounds it tests, so `contracts.gx_suites` can pick the native Great Expectations
expectation; `sql` renders the same predicate as Spark SQL for everything else.

Nulls: the engine counts a null predicate as failed. A check with `allow_null=True` is true
for a null value instead (`col IS NULL OR ...`): use it when a separate rule already demands
the value, or when null is legitimate (a page view has no price).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pyspark.sql import Column
from pyspark.sql import functions as F

__all__ = [
    "Between",
    "Check",
    "InSet",
    "LengthEquals",
    "MatchesRegex",
    "NotAfter",
    "NotNull",
    "has_length",
    "is_between",
    "is_in",
    "is_not_after",
    "is_not_null",
    "matches_regex",
    "sql_identifier",
    "sql_string",
]


def sql_identifier(column: str) -> str:
    """A (possibly nested, dotted) column name quoted for Spark SQL: `user`.`email`."""
    return ".".join(f"`{part.replace('`', '``')}`" for part in column.split("."))


def sql_string(value: str) -> str:
    """A Spark SQL string literal (backslash escapes are on by default in Spark SQL)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _sql_value(value: float | str | datetime) -> str:
    if isinstance(value, datetime):
        instant = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return f"TIMESTAMP '{instant}Z'"
    if isinstance(value, str):
        return sql_string(value)
    return repr(value)


@dataclass(frozen=True)
class Check(ABC):
    """A predicate over one column. Call it to get the `Column`; read `sql` for its SQL."""

    column: str
    allow_null: bool

    def __call__(self) -> Column:
        value = F.col(self.column)
        condition = self._condition(value)
        return value.isNull() | condition if self.allow_null else condition

    @property
    def sql(self) -> str:
        """The same predicate in Spark SQL."""
        condition = self._sql_condition(sql_identifier(self.column))
        if self.allow_null:
            return f"{sql_identifier(self.column)} IS NULL OR {condition}"
        return condition

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the check reads."""
        return (self.column,)

    @abstractmethod
    def _condition(self, value: Column) -> Column: ...

    @abstractmethod
    def _sql_condition(self, value: str) -> str: ...


@dataclass(frozen=True)
class NotNull(Check):
    """The value is present."""

    def _condition(self, value: Column) -> Column:
        return value.isNotNull()

    def _sql_condition(self, value: str) -> str:
        return f"{value} IS NOT NULL"


@dataclass(frozen=True)
class InSet(Check):
    """The value is one of `values`."""

    values: tuple[str, ...]

    def _condition(self, value: Column) -> Column:
        return value.isin(list(self.values))

    def _sql_condition(self, value: str) -> str:
        return f"{value} IN ({', '.join(sql_string(item) for item in self.values)})"


@dataclass(frozen=True)
class LengthEquals(Check):
    """The string value has exactly `length` characters."""

    length: int

    def _condition(self, value: Column) -> Column:
        return F.length(value) == self.length

    def _sql_condition(self, value: str) -> str:
        return f"length({value}) = {self.length}"


@dataclass(frozen=True)
class MatchesRegex(Check):
    """The string value matches `pattern` (Java regex, searched: anchor it with ^ and $)."""

    pattern: str

    def _condition(self, value: Column) -> Column:
        return value.rlike(self.pattern)

    def _sql_condition(self, value: str) -> str:
        return f"{value} RLIKE {sql_string(self.pattern)}"


@dataclass(frozen=True)
class Between(Check):
    """The value lies in [`min_value`, `max_value`]; a bound left as None is open."""

    min_value: float | None = None
    max_value: float | None = None

    def _condition(self, value: Column) -> Column:
        condition = F.lit(True)
        if self.min_value is not None:
            condition = condition & (value >= F.lit(self.min_value))
        if self.max_value is not None:
            condition = condition & (value <= F.lit(self.max_value))
        return condition

    def _sql_condition(self, value: str) -> str:
        parts = []
        if self.min_value is not None:
            parts.append(f"{value} >= {_sql_value(self.min_value)}")
        if self.max_value is not None:
            parts.append(f"{value} <= {_sql_value(self.max_value)}")
        return " AND ".join(parts) or "TRUE"


@dataclass(frozen=True)
class NotAfter(Check):
    """The timestamp is at most `tolerance` after the injected clock's now.

    The clock is read each time the check is built (once per evaluated batch), never hidden in
    the query as `current_timestamp()`, so tests and replays can fix it.
    """

    clock: Callable[[], datetime]
    tolerance: timedelta

    def limit(self) -> datetime:
        """The latest acceptable instant, now."""
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("The clock of a NotAfter check must return an aware datetime.")
        return now + self.tolerance

    def _condition(self, value: Column) -> Column:
        return value <= F.lit(self.limit())

    def _sql_condition(self, value: str) -> str:
        return f"{value} <= {_sql_value(self.limit())}"


def is_not_null(column: str) -> NotNull:
    """`column` is present."""
    return NotNull(column, allow_null=False)


def is_in(column: str, values: tuple[str, ...], *, allow_null: bool = False) -> InSet:
    """`column` is one of `values`."""
    return InSet(column, allow_null=allow_null, values=values)


def has_length(column: str, length: int, *, allow_null: bool = False) -> LengthEquals:
    """`column` is a string of exactly `length` characters."""
    return LengthEquals(column, allow_null=allow_null, length=length)


def matches_regex(column: str, pattern: str, *, allow_null: bool = False) -> MatchesRegex:
    """`column` matches the Java regular expression `pattern` (anchor it yourself)."""
    return MatchesRegex(column, allow_null=allow_null, pattern=pattern)


def is_between(
    column: str,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
    allow_null: bool = False,
) -> Between:
    """`column` is within the inclusive bounds; None leaves a side open."""
    if min_value is None and max_value is None:
        raise ValueError(f"is_between({column!r}) needs min_value, max_value or both.")
    return Between(column, allow_null=allow_null, min_value=min_value, max_value=max_value)


def is_not_after(
    column: str,
    *,
    clock: Callable[[], datetime],
    tolerance: timedelta = timedelta(0),
    allow_null: bool = False,
) -> NotAfter:
    """`column` (a timestamp) is not later than `clock()` plus `tolerance`."""
    return NotAfter(column, allow_null=allow_null, clock=clock, tolerance=tolerance)
