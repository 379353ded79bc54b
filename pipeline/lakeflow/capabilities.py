"""What the running `pyspark.pipelines` module offers beyond open-source SDP, by inspection.

Databricks' `dp` is a superset of open-source Spark Declarative Pipelines 4.2: it has the
expectation decorators, AUTO CDC into SCD type 2 tables (with history tracking options) and
automatic liquid clustering. The adapters ask this module, once, which of those the running
`dp` has, and use our own implementation for the rest: a capability check, not a try/except
around calls that might fail for any reason.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = [
    "EXPECTATION_DECORATORS",
    "SCD2_ONLY_PARAMETERS",
    "Capabilities",
]

EXPECTATION_DECORATORS = (
    "expect",
    "expect_or_drop",
    "expect_or_fail",
    "expect_all",
    "expect_all_or_drop",
    "expect_all_or_fail",
)
SCD2_ONLY_PARAMETERS = ("track_history_column_list", "track_history_except_column_list")
"""Options of `create_auto_cdc_flow` that exist only where it can store SCD type 2."""


def _parameters(function: Callable[..., Any] | None) -> frozenset[str]:
    """The parameter names of `function`; empty when it is absent or has no signature."""
    if function is None:
        return frozenset()
    try:
        return frozenset(inspect.signature(function).parameters)
    except (TypeError, ValueError):  # what inspect raises for objects without a signature
        return frozenset()


@dataclass(frozen=True)
class Capabilities:
    """Features of the running `dp` that open-source SDP 4.2 lacks.

    Attributes:
        expectations: `dp.expect*` decorators exist (Databricks).
        scd2_auto_cdc: `dp.create_auto_cdc_flow` can store SCD type 2 (Databricks); open source
            accepts only `stored_as_scd_type=1` (and, with Delta 4.4 targets, fails that too
            with AUTOCDC_TARGET_DOES_NOT_SUPPORT_MERGE).
        cluster_by_auto: `dp.table` and `dp.materialized_view` take `cluster_by_auto`.
        deduplicates_datasets: a flow can deduplicate a dataset of its own pipeline. Open
            source cannot on a first run: Spark Connect 4.2 plans `dropDuplicates*` by
            analysing its input when the flow is defined, before any table exists
            (`TABLE_OR_VIEW_NOT_FOUND`; SPARK-57489 removes that analysis). Nothing in `dp`
            shows it, so it is inferred from Databricks' `dp`, the one with expectations.
    """

    expectations: bool
    scd2_auto_cdc: bool
    cluster_by_auto: bool
    deduplicates_datasets: bool

    @classmethod
    def of(cls, dp: ModuleType) -> Capabilities:
        """Inspect a `pyspark.pipelines` module (or a stand-in with the same names)."""
        auto_cdc = _parameters(getattr(dp, "create_auto_cdc_flow", None))
        table = _parameters(getattr(dp, "table", None))
        view = _parameters(getattr(dp, "materialized_view", None))
        expectations = all(callable(getattr(dp, name, None)) for name in EXPECTATION_DECORATORS)
        return cls(
            expectations=expectations,
            scd2_auto_cdc=all(name in auto_cdc for name in SCD2_ONLY_PARAMETERS),
            cluster_by_auto="cluster_by_auto" in table and "cluster_by_auto" in view,
            deduplicates_datasets=expectations,
        )

    def clustering(self, *columns: str) -> dict[str, Any]:
        """Keyword arguments of `dp.table` / `dp.materialized_view` for liquid clustering.

        Where `cluster_by_auto` exists (Databricks), `columns` are the first clustering keys
        and Databricks may change them as queries show. Elsewhere: none, because open-source
        SDP 4.2 hands `cluster_by` to Delta 4.4 as a partition transform, which Delta refuses
        ("`Partitioning by expressions` is not supported for Delta tables"); the local runner
        clusters its tables itself (`pipeline.storage.delta_tables.replace_table`).
        """
        if not self.cluster_by_auto:
            return {}
        return {"cluster_by_auto": True, "cluster_by": list(columns)}

    def describe(self) -> str:
        """One line for logs: what is native and what is ours."""

        def where(native: bool) -> str:
            return "native" if native else "emulated"

        return (
            f"expectations: {where(self.expectations)}, "
            f"SCD2 AUTO CDC: {where(self.scd2_auto_cdc)}, "
            f"liquid clustering: {'automatic' if self.cluster_by_auto else 'off'}, "
            f"silver reads: {'bronze_events' if self.deduplicates_datasets else 'landing files'}"
        )
