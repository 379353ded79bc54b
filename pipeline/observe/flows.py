"""The pipeline's flows: what each one reads and writes, declared once.

A flow writes one table (its output dataset) from the datasets it reads (its inputs): the
landing folders, or tables written by other flows. The flows of bronze, silver and gold all
run in one streaming query (`events`): each micro-batch of new landing files goes through
them in turn, so a flow's input is the rows the flow before it wrote in the same batch.

The runner records each flow's definition in the event log at the start of every update
(`pipeline.observe.event_log`), which is where the lineage graph (`clickstream lineage`, the
scenario
report) is read from, as Databricks users read theirs from `flow_definition` events.

Flows of a streaming stage that mark their commits with the stage's batch markers
(`pipeline.storage.delta_tables.append_once`) report the rows of each micro-batch; the others
(the SCD2 merge, the gold tables maintained from what a batch touched) report their rows once
per stage.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pipeline.table_names import (
    BRONZE_EVENTS,
    BRONZE_QUARANTINE,
    EVENTS_DIR,
    EVENTS_STREAM,
    GOLD_DAILY_ACTIVE_USERS,
    GOLD_DIM_DATE,
    GOLD_DIM_DEVICE,
    GOLD_DIM_PAGE,
    GOLD_DIM_USER,
    GOLD_DIM_USER_CHANGES,
    GOLD_FACT_EVENTS,
    GOLD_FUNNEL_DAILY,
    GOLD_SESSIONS,
    GOLD_TABLES,
    SILVER_EVENTS,
    SILVER_LATE_EVENTS,
    SILVER_QUARANTINE,
    USER_CHANGES_DIR,
    USER_STREAM,
)

__all__ = [
    "FLOWS",
    "LANDING_EVENTS",
    "LANDING_USER_CHANGES",
    "REFRESH_STAGE",
    "Flow",
    "edges",
    "flows_of_stage",
    "layers",
    "stage_tables",
]

LANDING_EVENTS = f"landing/{EVENTS_DIR}"
"""The dataset name of the landing event files."""
LANDING_USER_CHANGES = f"landing/{USER_CHANGES_DIR}"
"""The dataset name of the landing user change files."""
REFRESH_STAGE = "full_refresh"
"""The stage of a full refresh: every gold flow recomputed from silver and the change log."""


@dataclass(frozen=True)
class Flow:
    """One flow of the pipeline.

    Attributes:
        name: the flow's name (the event log's `origin.flow_name`); here, its output's name.
        output: the table it writes.
        inputs: the datasets it reads.
        stage: the streaming query that runs it (its checkpoint's name).
        marker: the writer name of the batch markers on its commits (each commit of a
            micro-batch carries one), or None when its commits carry none.
    """

    name: str
    output: str
    inputs: tuple[str, ...]
    stage: str
    marker: str | None = None

    @property
    def kind(self) -> str:
        """`STREAMING` for a flow fed by micro-batches, `INCREMENTAL` for one maintained
        from what its micro-batches touched."""
        return "STREAMING" if self.marker is not None else "INCREMENTAL"


def _flow(output: str, inputs: Sequence[str], stage: str, marker: str | None = None) -> Flow:
    return Flow(output, output, tuple(inputs), stage, marker)


FLOWS: tuple[Flow, ...] = (
    _flow(GOLD_DIM_USER, [LANDING_USER_CHANGES], USER_STREAM),
    _flow(BRONZE_EVENTS, [LANDING_EVENTS], EVENTS_STREAM, EVENTS_STREAM),
    _flow(BRONZE_QUARANTINE, [LANDING_EVENTS], EVENTS_STREAM, EVENTS_STREAM),
    _flow(SILVER_EVENTS, [BRONZE_EVENTS], EVENTS_STREAM, EVENTS_STREAM),
    _flow(SILVER_QUARANTINE, [BRONZE_EVENTS], EVENTS_STREAM, EVENTS_STREAM),
    _flow(SILVER_LATE_EVENTS, [BRONZE_EVENTS], EVENTS_STREAM, EVENTS_STREAM),
    _flow(GOLD_FACT_EVENTS, [SILVER_EVENTS, GOLD_DIM_USER], EVENTS_STREAM, EVENTS_STREAM),
    _flow(GOLD_DIM_PAGE, [SILVER_EVENTS], EVENTS_STREAM),
    _flow(GOLD_DIM_DEVICE, [SILVER_EVENTS], EVENTS_STREAM),
    _flow(GOLD_DIM_DATE, [SILVER_EVENTS], EVENTS_STREAM),
    _flow(GOLD_DAILY_ACTIVE_USERS, [GOLD_FACT_EVENTS], EVENTS_STREAM),
    _flow(GOLD_SESSIONS, [GOLD_FACT_EVENTS], EVENTS_STREAM),
    _flow(GOLD_FUNNEL_DAILY, [GOLD_SESSIONS], EVENTS_STREAM),
)
"""Every flow `clickstream run` runs, in the order of its stages: the user dimension first
(facts join the user versions valid at their time), then the events."""


def flows_of_stage(stage: str) -> tuple[Flow, ...]:
    """The flows a stage runs; a full refresh runs every gold flow."""
    if stage == REFRESH_STAGE:
        return tuple(flow for flow in FLOWS if flow.output in GOLD_TABLES)
    return tuple(flow for flow in FLOWS if flow.stage == stage)


def stage_tables(stage: str) -> dict[str, str]:
    """The tables a stage writes, each with the flow its commits count for
    (`pipeline.run.cost`): a flow's own table, and for the user dimension also its change log
    and the facts its changes re-key."""
    tables = {flow.output: flow.name for flow in flows_of_stage(stage)}
    if stage == USER_STREAM:
        tables |= {GOLD_DIM_USER_CHANGES: GOLD_DIM_USER, GOLD_FACT_EVENTS: GOLD_DIM_USER}
    return tables


def edges(definitions: Iterable[tuple[str, Sequence[str]]]) -> list[tuple[str, str]]:
    """The lineage edges (input, output) of (output, inputs) definitions, sorted, unique."""
    return sorted({(source, output) for output, inputs in definitions for source in inputs})


def layers(graph: Iterable[tuple[str, str]]) -> list[list[str]]:
    """The datasets of a lineage graph in layers: sources first, each dataset one layer
    after the furthest of its inputs; names sorted within a layer.

    Raises:
        ValueError: the graph has a cycle.
    """
    inputs: dict[str, set[str]] = {}
    for source, output in graph:
        inputs.setdefault(source, set())
        inputs.setdefault(output, set()).add(source)
    try:
        order = list(graphlib.TopologicalSorter(inputs).static_order())
    except graphlib.CycleError as cycle:
        raise ValueError(
            f"the lineage graph has a cycle among {sorted(set(cycle.args[1]))}"
        ) from None
    depth: dict[str, int] = {}
    for node in order:  # every input comes before the datasets it feeds
        depth[node] = 1 + max((depth[s] for s in inputs[node]), default=-1)
    count = 1 + max(depth.values(), default=-1)
    return [sorted(n for n, d in depth.items() if d == layer) for layer in range(count)]
