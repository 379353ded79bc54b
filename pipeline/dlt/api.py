"""The `dlt` module a user's source imports (and the same functions on `pyspark.pipelines`),
recording what the source declares: its datasets, their expectations, and their flows.

Declaring runs no query: a decorated function is kept, to be called when the runtime
materializes its dataset. The names and defaults follow the Databricks Python reference
(`dlt.table`, `dlt.view`, `dlt.expect*`, `dlt.create_streaming_table`, `dlt.append_flow`,
`dlt.apply_changes` / `create_auto_cdc_flow`); `materialized_view`, `temporary_view` and `table`
are `pyspark.pipelines`' names for the same things.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import ConfigurationError

__all__ = [
    "CdcFlow",
    "Dataset",
    "Declarations",
    "DeclaredExpectation",
    "QueryFlow",
    "dlt_module",
    "names",
]

EXPECT_ACTIONS = ("warn", "drop", "fail")
"""What a failed expectation does: `expect` keeps the row (warn), `expect_or_drop` drops it,
`expect_or_fail` stops the update."""


@dataclass(frozen=True)
class DeclaredExpectation:
    """One expectation as the source declared it: a name, a SQL predicate, an action."""

    name: str
    constraint: str
    action: str


@dataclass
class Dataset:
    """A table, materialized view or view the source declares."""

    name: str
    kind: str
    """`table` (streaming or materialized, decided by what its query returns), `view`, or
    `streaming_table` (declared by `create_streaming_table`, fed by flows)."""
    line: int
    """The line of the source that declares it."""
    query: Callable[[], Any] | None = None
    expectations: list[DeclaredExpectation] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    """comment, spark_conf, table_properties, partition_cols, cluster_by, path, schema."""


@dataclass(frozen=True)
class QueryFlow:
    """A flow appending what a query returns to a target (`append_flow`)."""

    name: str
    target: str
    query: Callable[[], Any]
    line: int
    once: bool = False


@dataclass(frozen=True)
class CdcFlow:
    """An AUTO CDC flow (`apply_changes` / `create_auto_cdc_flow`) into a streaming table."""

    name: str
    target: str
    source: str
    keys: tuple[str, ...]
    sequence_by: Any
    line: int
    ignore_null_updates: bool = False
    apply_as_deletes: Any = None
    apply_as_truncates: Any = None
    column_list: tuple[str, ...] | None = None
    except_column_list: tuple[str, ...] | None = None
    stored_as_scd_type: int = 1
    track_history_column_list: tuple[str, ...] | None = None
    track_history_except_column_list: tuple[str, ...] | None = None
    once: bool = False


class Declarations:
    """What a source declares, recorded by the functions of its `dlt` module (`module`)."""

    def __init__(self, source_path: str) -> None:
        self.source_path = source_path
        self.datasets: dict[str, Dataset] = {}
        self.flows: list[QueryFlow | CdcFlow] = []
        self._pending: dict[Callable[..., Any], list[DeclaredExpectation]] = {}

    # ------------------------------------------------------------------ recording

    def line_of_caller(self) -> int:
        """The line of the user's source that is declaring (the innermost frame in it)."""
        for frame in inspect.stack(context=0):
            if frame.filename == self.source_path:
                return frame.lineno
        return 0

    def refusal(self, line: int, message: str) -> ConfigurationError:
        return ConfigurationError(f"{self.source_path}:{line}: {message}")

    def _add(self, dataset: Dataset) -> None:
        if dataset.name in self.datasets:
            first = self.datasets[dataset.name].line
            raise self.refusal(
                dataset.line,
                f"the dataset {dataset.name!r} is declared twice (first at line {first}): "
                "give one of them another name",
            )
        self.datasets[dataset.name] = dataset

    def declare(self, kind: str, function: Callable[..., Any], options: Mapping[str, Any]) -> None:
        """A dataset of `kind` computed by `function` (a decorated function)."""
        options = {k: v for k, v in options.items() if v is not None}
        name = options.pop("name", None) or function.__name__
        line = function.__code__.co_firstlineno
        expectations = self._pending.pop(function, [])
        self._add(Dataset(name, kind, line, function, expectations, options))

    def expect(self, function: Callable[..., Any], rules: Mapping[str, str], action: str) -> None:
        """Expectations on the dataset `function` computes, declared above or below its
        `@dlt.table` / `@dlt.view`."""
        line = function.__code__.co_firstlineno
        for name, constraint in rules.items():
            if not isinstance(constraint, str) or not constraint.strip():
                raise self.refusal(
                    line,
                    f"the expectation {name!r} needs a SQL predicate as a string "
                    '(for example "amount > 0")',
                )
        found = [DeclaredExpectation(n, c, action) for n, c in rules.items()]
        for dataset in self.datasets.values():
            if dataset.query is function:
                dataset.expectations.extend(found)
                return
        self._pending.setdefault(function, []).extend(found)

    def streaming_table(self, name: str, options: Mapping[str, Any]) -> None:
        """A streaming table with no query of its own, fed by flows."""
        line = self.line_of_caller()
        options = {k: v for k, v in options.items() if v is not None}
        expectations = [
            DeclaredExpectation(rule, constraint, action)
            for key, action in (
                ("expect_all", "warn"),
                ("expect_all_or_drop", "drop"),
                ("expect_all_or_fail", "fail"),
            )
            for rule, constraint in (options.pop(key, None) or {}).items()
        ]
        self._add(Dataset(name, "streaming_table", line, None, expectations, options))

    def append_flow(
        self, function: Callable[..., Any], target: str, name: str | None, once: bool
    ) -> None:
        line = function.__code__.co_firstlineno
        self.flows.append(QueryFlow(name or function.__name__, target, function, line, once))

    def cdc_flow(self, flow: CdcFlow) -> None:
        if flow.stored_as_scd_type not in (1, 2):
            raise self.refusal(
                flow.line,
                f"stored_as_scd_type={flow.stored_as_scd_type!r}: AUTO CDC stores SCD type 1 or 2",
            )
        if flow.column_list is not None and flow.except_column_list is not None:
            raise self.refusal(
                flow.line, "give column_list or except_column_list, not both (as Databricks)"
            )
        if flow.stored_as_scd_type == 1 and (
            flow.track_history_column_list or flow.track_history_except_column_list
        ):
            raise self.refusal(
                flow.line,
                "track_history_* lists apply to SCD type 2 only: set stored_as_scd_type=2",
            )
        if flow.stored_as_scd_type == 2 and flow.apply_as_truncates is not None:
            raise self.refusal(
                flow.line, "apply_as_truncates applies to SCD type 1 only (as Databricks)"
            )
        self.flows.append(flow)

    def checked(self) -> Declarations:
        """These declarations, once every flow's target is a declared streaming table.

        Raises:
            ConfigurationError: a flow into an undeclared or non-streaming dataset, or
                expectations on a function no dataset declares.
        """
        for flow in self.flows:
            target = self.datasets.get(flow.target)
            if target is None or target.kind != "streaming_table":
                what = "is not declared" if target is None else f"is a {target.kind}"
                raise self.refusal(
                    flow.line,
                    f"the flow {flow.name!r} writes {flow.target!r}, which {what}: declare it "
                    f'first with dlt.create_streaming_table("{flow.target}")',
                )
        for function in self._pending:
            raise self.refusal(
                function.__code__.co_firstlineno,
                f"expectations on {function.__name__}() but no @dlt.table or @dlt.view on it",
            )
        return self


def names(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """A column list given as a list of names (or one name), as a tuple."""
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


def _decorator(
    register: Callable[[Callable[..., Any], dict[str, Any]], None],
    function: Callable[..., Any] | None,
    options: dict[str, Any],
) -> Any:
    """Usable bare (`@dlt.table`) and called (`@dlt.table(name="x")`); returns the function."""

    def apply(target: Callable[..., Any]) -> Callable[..., Any]:
        register(target, options)
        return target

    return apply(function) if function is not None else apply


def dlt_module(
    declarations: Declarations,
    read: Callable[[str], Any],
    read_stream: Callable[[str], Any],
) -> types.ModuleType:
    """The `dlt` module for one source: its functions record into `declarations`; `read` and
    `read_stream` give a dataset's DataFrame when the runtime calls the queries."""
    module = types.ModuleType("dlt", "The DLT Python API, backed by the local harness.")

    def dataset(kind: str) -> Callable[..., Any]:
        def decorate(function: Callable[..., Any] | None = None, **options: Any) -> Any:
            return _decorator(
                lambda f, o: declarations.declare(kind, f, o), function, dict(options)
            )

        decorate.__name__ = kind
        return decorate

    def expectation(action: str, many: bool) -> Callable[..., Any]:
        def declare(*args: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
            rules = dict(args[0]) if many else {args[0]: args[1]}

            def apply(function: Callable[..., Any]) -> Callable[..., Any]:
                declarations.expect(function, rules, action)
                return function

            return apply

        return declare

    def create_streaming_table(name: str, **options: Any) -> None:
        declarations.streaming_table(name, options)

    def append_flow(
        target: str, name: str | None = None, once: bool = False, **_options: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def apply(function: Callable[..., Any]) -> Callable[..., Any]:
            declarations.append_flow(function, target, name, once)
            return function

        return apply

    def create_auto_cdc_flow(
        target: str,
        source: str,
        keys: Sequence[str],
        sequence_by: Any,
        where: Any = None,
        ignore_null_updates: bool = False,
        apply_as_deletes: Any = None,
        apply_as_truncates: Any = None,
        column_list: Sequence[str] | None = None,
        except_column_list: Sequence[str] | None = None,
        stored_as_scd_type: int | str = 1,
        track_history_column_list: Sequence[str] | None = None,
        track_history_except_column_list: Sequence[str] | None = None,
        flow_name: str | None = None,
        name: str | None = None,
        once: bool = False,
    ) -> None:
        line = declarations.line_of_caller()
        if where is not None:
            raise declarations.refusal(
                line, "apply_changes(where=...) is not supported here: filter in the source view"
            )
        scd_type = int(stored_as_scd_type) if str(stored_as_scd_type).isdigit() else -1
        declarations.cdc_flow(
            CdcFlow(
                name=flow_name or name or target,
                target=target,
                source=source,
                keys=names(keys) or (),
                sequence_by=sequence_by,
                line=line,
                ignore_null_updates=ignore_null_updates,
                apply_as_deletes=apply_as_deletes,
                apply_as_truncates=apply_as_truncates,
                column_list=names(column_list),
                except_column_list=names(except_column_list),
                stored_as_scd_type=scd_type,
                track_history_column_list=names(track_history_column_list),
                track_history_except_column_list=names(track_history_except_column_list),
                once=once,
            )
        )

    functions: dict[str, Any] = {
        "table": dataset("table"),
        "materialized_view": dataset("materialized_view"),
        "view": dataset("view"),
        "temporary_view": dataset("view"),
        "create_streaming_table": create_streaming_table,
        "create_target_table": create_streaming_table,
        "append_flow": append_flow,
        "apply_changes": create_auto_cdc_flow,
        "create_auto_cdc_flow": create_auto_cdc_flow,
        "read": read,
        "read_stream": read_stream,
    }
    for action, suffix in zip(EXPECT_ACTIONS, ("", "_or_drop", "_or_fail"), strict=True):
        functions[f"expect{suffix}"] = expectation(action, many=False)
        functions[f"expect_all{suffix}"] = expectation(action, many=True)
    for function_name, function in functions.items():
        setattr(module, function_name, function)

    def unsupported(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise declarations.refusal(
            declarations.line_of_caller(),
            f"dlt.{name} is not supported by the local harness (docs/dlt.md lists what is): "
            "remove it for the local run, or run this part on Databricks",
        )

    module.__getattr__ = unsupported  # type: ignore[method-assign]
    return module
