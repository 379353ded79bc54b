"""What the event log says: the updates of a warehouse, each flow's rows, and the lineage.

Pure functions over the events `pipeline.observe.event_log.read_events` returns (dicts with the
event
log's columns): `clickstream history` and `clickstream lineage` read the log without Spark.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from pipeline.observe.event_log import INTERRUPTED, details, engine_cost
from pipeline.observe.flows import edges, layers
from pipeline.run.cost import FlowCost, UpdateCost, size

__all__ = [
    "FlowRun",
    "Update",
    "lineage",
    "render_lineage",
    "render_update",
    "render_updates",
    "updates",
]

NO_END_STATE = "INCOMPLETE"
"""The state shown for an update that recorded no end state: running, or its process was
killed and no run has started since (the next one closes it as `FAILED (interrupted)`)."""


@dataclass
class FlowRun:
    """One flow in one update: its status, rows read and written, expectation counts."""

    name: str
    status: str = "QUEUED"
    input_rows: int | None = None
    output_rows: int = 0
    batches: int = 0
    dropped_records: int = 0
    expectations: dict[str, dict[str, int]] = field(default_factory=dict)
    error: str | None = None
    cost: FlowCost | None = None
    """What the flow cost the engine (`pipeline.run.cost`), added up over the stages it ran in;
    None when its events record none (an update written before costs were counted)."""

    @property
    def failed_expectations(self) -> dict[str, int]:
        """Rules with failed rows: name -> failed rows."""
        return {
            name: counts["failed_records"]
            for name, counts in sorted(self.expectations.items())
            if counts["failed_records"]
        }


@dataclass
class Update:
    """One update of the pipeline, from its events."""

    update_id: str
    runner: str = ""
    full_refresh: bool = False
    start: datetime | None = None
    end: datetime | None = None
    state: str = NO_END_STATE
    error: str | None = None
    flows: dict[str, FlowRun] = field(default_factory=dict)
    definitions: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    cost: UpdateCost | None = None
    """What the whole update cost the engine, from its end state's event."""

    @property
    def seconds(self) -> float | None:
        """How long it ran, from its first to its last event."""
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start).total_seconds()

    @property
    def output_rows(self) -> int:
        return sum(flow.output_rows for flow in self.flows.values())

    @property
    def interrupted(self) -> bool:
        """Whether its process was killed (closed by the next run as `FAILED`)."""
        return self.state == "FAILED" and (self.error or "").startswith(f"{INTERRUPTED}:")

    @property
    def shown_state(self) -> str:
        """The state as `clickstream history` shows it: `FAILED (interrupted)` for a kill."""
        return f"{self.state} (interrupted)" if self.interrupted else self.state

    def to_json(self) -> dict[str, Any]:
        """The update as JSON-ready data."""
        data = asdict(self)
        data["start"] = self.start.isoformat() if self.start else None
        data["end"] = self.end.isoformat() if self.end else None
        data["seconds"] = self.seconds
        data["interrupted"] = self.interrupted
        data["definitions"] = {
            name: {"output_dataset": output, "input_datasets": inputs}
            for name, (output, inputs) in self.definitions.items()
        }
        for name, flow in self.flows.items():
            data["flows"][name]["failed_expectations"] = flow.failed_expectations
        return data


def _apply(update: Update, event: Mapping[str, Any]) -> None:
    kind, body = event["event_type"], details(event)
    origin = event.get("origin") or {}
    update.start = update.start or event["timestamp"]
    update.end = event["timestamp"]
    if kind == "create_update":
        update.runner = str(body.get("runner", ""))
        update.full_refresh = bool(body.get("full_refresh", False))
    elif kind == "update_progress":
        update.state = str(body.get("state", update.state))
        if update.state == "RUNNING":
            update.state = NO_END_STATE
        if event.get("error"):
            update.error = _error_text(event["error"])
        spent = engine_cost(event)
        if spent is not None:
            update.cost = UpdateCost.from_json(spent)
    elif kind == "flow_definition":
        update.definitions[origin["flow_name"]] = (
            str(body["output_dataset"]),
            [str(name) for name in body.get("input_datasets", [])],
        )
    elif kind == "flow_progress":
        _apply_flow(
            update.flows.setdefault(origin["flow_name"], FlowRun(origin["flow_name"])),
            event,
            body,
        )


def _apply_flow(flow: FlowRun, event: Mapping[str, Any], body: Mapping[str, Any]) -> None:
    status = str(body.get("status", flow.status))
    metrics = body.get("metrics") or {}
    flow.output_rows += int(metrics.get("num_output_rows", 0))
    if "num_input_rows" in metrics:
        flow.input_rows = (flow.input_rows or 0) + int(metrics["num_input_rows"])
    if (event.get("origin") or {}).get("batch_id") is not None:
        flow.batches += 1
    quality = body.get("data_quality") or {}
    flow.dropped_records += int(quality.get("dropped_records", 0))
    for expectation in quality.get("expectations", []):
        counts = flow.expectations.setdefault(
            expectation["name"], {"passed_records": 0, "failed_records": 0}
        )
        counts["passed_records"] += int(expectation["passed_records"])
        counts["failed_records"] += int(expectation["failed_records"])
    if status != "RUNNING" or flow.status == "QUEUED":
        flow.status = status
    if event.get("error"):
        flow.error = _error_text(event["error"])
    spent = engine_cost(event)
    if spent is not None:
        flow.cost = FlowCost.from_json(spent) + (flow.cost or FlowCost())


def _error_text(error: Mapping[str, Any]) -> str:
    return "; ".join(
        f"{e.get('class_name')}: {e.get('message')}" for e in error.get("exceptions") or []
    )


def updates(events: Iterable[Mapping[str, Any]]) -> list[Update]:
    """The updates the events record, oldest first."""
    found: dict[str, Update] = {}
    for event in sorted(events, key=lambda e: e["timestamp"]):
        update_id = (event.get("origin") or {}).get("update_id")
        if update_id:
            _apply(found.setdefault(update_id, Update(update_id)), event)
    return sorted(found.values(), key=lambda u: (u.start is None, u.start))


def _seconds(update: Update) -> str:
    return "" if update.seconds is None else f"{update.seconds:.1f} s"


def render_updates(found: Sequence[Update]) -> str:
    """One line per update: id, start, state, duration, rows written, failed expectations."""
    if not found:
        return "no updates recorded yet: run `clickstream run` first"
    header = ("update", "started (UTC)", "state", "duration", "rows out", "failed rows", "runner")
    rows = [header]
    for update in found:
        failed = sum(sum(f.failed_expectations.values()) for f in update.flows.values())
        rows.append(
            (
                update.update_id,
                f"{update.start:%Y-%m-%d %H:%M:%S}" if update.start else "",
                update.shown_state,
                _seconds(update),
                f"{update.output_rows:,}",
                f"{failed:,}",
                update.runner + (" --full-refresh" if update.full_refresh else ""),
            )
        )
    return _table(rows)


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def render_update(update: Update) -> str:
    """One update in detail: its state and error, then each flow's rows and expectations."""
    lines = [
        f"update {update.update_id}: {update.shown_state}"
        + (f" in {_seconds(update)}" if update.seconds is not None else ""),
        f"runner: {update.runner}" + (" --full-refresh" if update.full_refresh else ""),
    ]
    if update.error:
        lines.append(f"error: {update.error}")
    if update.cost is not None:
        lines.append(f"engine: {update.cost.summary()}")
    if not update.flows:
        lines.append("no flow ran (nothing new, maintenance, or it stopped before the first stage)")
        return "\n".join(lines)
    rows = [
        (
            "flow",
            "status",
            "batches",
            "rows in",
            "rows out",
            "dropped",
            "Spark jobs",
            "SQL",
            "commits",
            "written",
            "failed expectations",
        )
    ]
    for name, flow in update.flows.items():
        failed = ", ".join(
            f"{rule} ({count:,})" for rule, count in flow.failed_expectations.items()
        )
        spent = flow.cost
        rows.append(
            (
                name,
                flow.status,
                str(flow.batches),
                "" if flow.input_rows is None else f"{flow.input_rows:,}",
                f"{flow.output_rows:,}",
                f"{flow.dropped_records:,}",
                "" if spent is None else f"{spent.spark_jobs:,}",
                "" if spent is None else f"{spent.sql_executions:,}",
                "" if spent is None else f"{spent.delta_commits:,}",
                ""
                if spent is None
                else f"{spent.files_written:,} files, {size(spent.bytes_written)}",
                failed,
            )
        )
    if update.cost is not None and (
        update.cost.outside_flows.spark_jobs or update.cost.outside_flows.delta_commits
    ):
        outside = update.cost.outside_flows
        rows.append(
            (
                "(outside the flows)",
                "",
                "",
                "",
                "",
                "",
                f"{outside.spark_jobs:,}",
                f"{outside.sql_executions:,}",
                f"{outside.delta_commits:,}",
                f"{outside.files_written:,} files, {size(outside.bytes_written)}",
                "",
            )
        )
    lines += ["", _table(rows)]
    errors = [f"{name}: {flow.error}" for name, flow in update.flows.items() if flow.error]
    lines += ["", *errors] if errors else []
    return "\n".join(lines)


def lineage(found: Sequence[Update]) -> list[tuple[str, str]]:
    """The lineage edges (input, output) of the newest update that defined flows."""
    for update in reversed(found):
        if update.definitions:
            return edges(update.definitions.values())
    return []


def render_lineage(graph: Sequence[tuple[str, str]]) -> str:
    """The lineage graph as text: datasets layer by layer, each with what it reads."""
    if not graph:
        return "no lineage recorded yet: run `clickstream run` first"
    inputs: dict[str, list[str]] = {}
    for source, output in graph:
        inputs.setdefault(output, []).append(source)
    width = max(len(name) for layer in layers(graph) for name in layer)
    lines = []
    for depth, layer in enumerate(layers(graph)):
        lines.append(f"layer {depth}")
        for name in layer:
            reads = inputs.get(name)
            lines.append(
                f"  {name:<{width}}" + (f"  <- {', '.join(sorted(reads))}" if reads else "")
            )
    return "\n".join(lines)
