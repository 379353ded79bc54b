"""A local `spark-pipelines run` recorded in the warehouse's event log, as `clickstream run` is.

Open-source Spark Declarative Pipelines 4.2 keeps no event log: its client receives each
event as a timestamp and a message (`Flow spark_catalog.default.silver_events is RUNNING.`,
`Run is COMPLETED.`) and prints it. `SdpRecorder` reads those lines as the run prints them and
appends what they say to `<warehouse>/_event_log` (`pipeline.observe.event_log`): the update's
creation and the flows' definitions (the graph of the SDP definitions, `SDP_FLOWS`), each
flow's status changes, the rows each flow's table gained (from its Delta commits, since the
open-source events carry no metrics and no expectation counts) and the run's end state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.observe.event_log import COMPLETED, FAILED, TERMINAL_STATES, UpdateLog
from pipeline.observe.flows import FLOWS, Flow
from pipeline.storage import delta_log
from pipeline.table_names import BRONZE_EVENTS, SILVER_EVENTS, SILVER_LATE_EVENTS, SILVER_QUARANTINE

__all__ = ["RUNNER", "SDP_FLOWS", "SdpRecorder", "parse_line"]

RUNNER = "spark-pipelines run"
SDP_STAGE = "spark-pipelines"

_SDP_ONLY = (
    Flow("silver_unplaceable", SILVER_QUARANTINE, (BRONZE_EVENTS,), SDP_STAGE),
    Flow("silver_dropped_by_rules", SILVER_QUARANTINE, (BRONZE_EVENTS,), SDP_STAGE),
    Flow(
        SILVER_LATE_EVENTS,
        SILVER_LATE_EVENTS,
        (BRONZE_EVENTS, SILVER_EVENTS, SILVER_QUARANTINE),
        SDP_STAGE,
    ),
)
SDP_FLOWS: tuple[Flow, ...] = (
    *_SDP_ONLY,
    *(
        Flow(flow.name, flow.output, flow.inputs, SDP_STAGE)
        for flow in FLOWS
        if flow.output != SILVER_QUARANTINE and flow.name not in {f.name for f in _SDP_ONLY}
    ),
)
"""The flows of the SDP definitions run locally (`pipeline/lakeflow/transformations`): the
runner's, except that two append flows fill `silver_quarantine` and the late events are a
materialized view of bronze, silver and its quarantine."""

FLOW_LINE = re.compile(r"Flow (?:`?\w+`?\.)*`?(?P<name>\w+)`? (?:is|has) (?P<status>[A-Z_]+)\.")
RUN_LINE = re.compile(r"\bRun (?:is|has) (?P<state>[A-Z_]+)\b")


@dataclass(frozen=True)
class Line:
    """What one printed line says: a flow's status, or the run's state."""

    flow: str | None
    status: str


def parse_line(text: str) -> Line | None:
    """The flow status or run state a `spark-pipelines` output line reports, if any."""
    flow = FLOW_LINE.search(text)
    if flow:
        return Line(flow["name"], flow["status"])
    run = RUN_LINE.search(text)
    return Line(None, run["state"]) if run else None


class SdpRecorder:
    """Appends the events of one `spark-pipelines run` to the warehouse's event log."""

    def __init__(self, warehouse: Path, update: UpdateLog) -> None:
        self.warehouse = warehouse
        self.update = update
        self.flows = {flow.name: flow for flow in SDP_FLOWS}
        self.before = {f.output: delta_log.table_version(warehouse / f.output) for f in SDP_FLOWS}
        self.state: str | None = None

    def start(self) -> None:
        self.update.started(SDP_FLOWS, cause="USER_ACTION", full_refresh=False, runner=RUNNER)

    def line(self, text: str) -> None:
        """Record what a printed line says (nothing when it says nothing we know)."""
        parsed = parse_line(text)
        if parsed is None:
            return
        if parsed.flow is None:
            self.state = parsed.status
            return
        flow = self.flows.get(parsed.flow) or Flow(parsed.flow, parsed.flow, (), SDP_STAGE)
        rows = None
        if parsed.status == COMPLETED and flow.name == flow.output:
            # The table's new commits: its flow's rows (a table filled by two append flows
            # reports under neither, since the commits do not say which flow made them).
            path = self.warehouse / flow.output
            after = delta_log.table_version(path)
            rows = {flow.output: delta_log.output_rows(path, self.before.get(flow.output), after)}
        self.update.flows_ended([flow], parsed.status, output_rows=rows)

    def finish(self, returncode: int) -> None:
        """The update's end state: what the run said, or FAILED when it exited non-zero."""
        state = self.state if self.state in TERMINAL_STATES else None
        if returncode != 0 and state != FAILED:
            self.update.finished(FAILED, RuntimeError(f"spark-pipelines exited {returncode}"))
        else:
            self.update.finished(state or COMPLETED)
