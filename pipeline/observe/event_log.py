"""The pipeline event log: `<warehouse>/_event_log`, a Delta table of Databricks' shape.

Every update (`clickstream run`, and the local `spark-pipelines` runs) appends its events:
`create_update`; one `flow_definition` per flow, with its output and input datasets (the
lineage); `update_progress` as it starts running; `flow_progress` per micro-batch of a
streaming flow (rows written, expectation metrics) and as each flow ends; and the update's end
state (`COMPLETED`, `FAILED` with the error, `CANCELED`). The columns are those of the
Databricks event log (`id`, `sequence`, `origin`, `timestamp`, `message`, `level`,
`maturity_level`, `error`, `details`, `event_type`), and `details` is JSON at its paths:
`update_progress.state`, `flow_progress.status`, `flow_progress.metrics.num_output_rows`,
`flow_progress.data_quality.dropped_records` and `.expectations` (`name`, `dataset`,
`passed_records`, `failed_records`; here also `action`), `flow_definition.output_dataset` and
`.input_datasets`.

The table is written with delta-rs (the `deltalake` package), not Spark: an append takes a
few milliseconds, so a run with nothing new records its update without starting a JVM, and a
micro-batch's events cost nothing next to its Delta writes. The events of a micro-batch are
appended once (a Delta app transaction of the stage and batch): a batch replayed after a crash
does not count its rows twice. Spark reads it like any Delta table; `register_views` adds the
views the Databricks queries need (`event_log_raw`, `latest_update`, ...).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.errors import ClickstreamError, ExpectationFailedError
from pipeline.observe.flows import Flow, flows_of_stage
from pipeline.run.cost import COST_KEY, FlowCost, UpdateCost
from pipeline.storage import delta_log
from pipeline.storage.tables import table_path
from pipeline.table_names import EVENT_LOG

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from pipeline.transforms.expectations import ExpectationMetric

__all__ = [
    "CANCELED",
    "COMPLETED",
    "COST_KEY",
    "EVENT_LOG_SCHEMA",
    "FAILED",
    "INTERRUPTED",
    "RUNNER",
    "TERMINAL_STATES",
    "UpdateLog",
    "close_interrupted_update",
    "details",
    "engine_cost",
    "error_summary",
    "expectation_metrics",
    "new_update_id",
    "pipeline_id",
    "read_events",
    "recorded_update",
    "register_views",
]

COMPLETED, FAILED, CANCELED, RUNNING = "COMPLETED", "FAILED", "CANCELED", "RUNNING"
RUNNER = "clickstream run"
"""The program of the updates `pipeline.run.runner` runs, as `create_update` names it."""
TERMINAL_STATES = (COMPLETED, FAILED, CANCELED)
WITHHELD = "(message not recorded: it may name the person)"
"""The error message of an update about a person (`recorded_update(about_a_person=True)`)."""
INTERRUPTED = "Interrupted"
"""The error class of an update closed by the next run because its process was killed."""
PIPELINE_NAME = "clickstream"

_ORIGIN = pa.struct(
    [
        ("pipeline_id", pa.string()),
        ("pipeline_name", pa.string()),
        ("update_id", pa.string()),
        ("flow_name", pa.string()),
        ("dataset_name", pa.string()),
        ("batch_id", pa.int64()),
        ("host", pa.string()),
    ]
)
_ERROR = pa.struct(
    [
        ("fatal", pa.bool_()),
        (
            "exceptions",
            pa.list_(pa.struct([("class_name", pa.string()), ("message", pa.string())])),
        ),
    ]
)
EVENT_LOG_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        (
            "sequence",
            pa.struct(
                [("data_plane_id", pa.struct([("instance", pa.string()), ("seq_no", pa.int64())]))]
            ),
        ),
        ("origin", _ORIGIN),
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        ("message", pa.string()),
        ("level", pa.string()),
        ("maturity_level", pa.string()),
        ("error", _ERROR),
        ("details", pa.string()),
        pa.field("event_type", pa.string(), nullable=False),
    ]
)
"""The event log's columns, as Databricks names them; `details` holds JSON text."""

_WRITE_LOCK = threading.Lock()


def _details_json(
    kind: str, body: Mapping[str, Any], spent: Mapping[str, Any] | None = None
) -> str:
    """`details` as Databricks writes it (one object under the event type), and our
    extension beside it: what the engine did (`pipeline.run.cost`)."""
    document: dict[str, Any] = {kind: body}
    if spent is not None:
        document[COST_KEY] = spent
    return json.dumps(document, sort_keys=True)


SPARK_CONDITION = re.compile(r"\[([A-Z][A-Z0-9_.]+)\]")
QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def error_summary(error: BaseException) -> tuple[str, str]:
    """The class name and a message of `error` that holds no data values.

    A failed expectation is described by its table, rule and counts (never its sample rows);
    our own errors keep their first paragraph (they name files, tables and fixes, not
    values); any other error keeps its first line with quoted text replaced by `'…'`, since
    Spark quotes the values it cannot cast or parse.
    """
    name = type(error).__name__
    if isinstance(error, ExpectationFailedError):
        rules = ", ".join(f"{f.rule} ({f.failed:,} rows)" for f in error.failures)
        return name, (
            f"Rows of {error.table} failed expect_or_fail rules: {rules}, of "
            f"{error.rows:,} rows in the batch; the batch was not written."
        )
    text = str(error).strip()
    if isinstance(error, ClickstreamError):
        return name, text.split("\n\n")[0]
    first = text.splitlines()[0] if text else ""
    condition = SPARK_CONDITION.search(first)
    message = QUOTED.sub("'…'", first)[:500]
    if condition and condition.group(1) not in message:
        message = f"[{condition.group(1)}] {message}"
    return name, message


@dataclass(frozen=True)
class _Origin:
    pipeline_id: str
    update_id: str
    host: str

    def of(self, flow: Flow | None = None, batch_id: int | None = None) -> dict[str, Any]:
        return {
            "pipeline_id": self.pipeline_id,
            "pipeline_name": PIPELINE_NAME,
            "update_id": self.update_id,
            "flow_name": None if flow is None else flow.name,
            "dataset_name": None if flow is None else flow.output,
            "batch_id": batch_id,
            "host": self.host,
        }


def new_update_id() -> str:
    """A sortable, unique update id: UTC start time and a random suffix."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def pipeline_id(warehouse: Path) -> str:
    """The pipeline's id: a UUID derived from the warehouse's absolute path."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, warehouse.resolve().as_uri()))


def _data_quality(rules: Sequence[ExpectationMetric], written: int | None) -> dict[str, Any]:
    """`data_quality` of a batch: each rule's counts, and the rows drop rules kept out (the
    rows evaluated less the rows written, when the flow reports what it wrote)."""
    evaluated = max(m.passed + m.failed for m in rules)
    dropping = written is not None and any(m.action == "drop" for m in rules)
    return {
        "dropped_records": evaluated - written if dropping and written is not None else 0,
        "expectations": [
            {
                "name": m.rule,
                "dataset": m.table,
                "action": m.action,
                "passed_records": m.passed,
                "failed_records": m.failed,
            }
            for m in rules
        ],
    }


class UpdateLog:
    """The events of one update, appended to the warehouse's event log as they happen.

    Thread-safe: the stages of a run report from two threads.
    """

    def __init__(self, warehouse: Path, update_id: str, *, withhold_messages: bool = False) -> None:
        self.warehouse = warehouse
        self._withhold_messages = withhold_messages
        self.update_id = update_id
        self.path = Path(table_path(warehouse, EVENT_LOG))
        self._origin = _Origin(pipeline_id(warehouse), update_id, socket.gethostname())
        self._instance = uuid.uuid4().hex
        self._sequence = itertools.count()
        self._cost = UpdateCost()
        self._commits = 0

    # ------------------------------------------------------------------ event rows

    def _event(
        self,
        event_type: str,
        message: str,
        details: str,
        *,
        flow: Flow | None = None,
        batch_id: int | None = None,
        level: str = "INFO",
        error: tuple[str, str] | None = None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid4()),
            "sequence": {
                "data_plane_id": {"instance": self._instance, "seq_no": next(self._sequence)}
            },
            "origin": self._origin.of(flow, batch_id),
            "timestamp": at or datetime.now(UTC),
            "message": message,
            "level": level,
            "maturity_level": "STABLE",
            "error": None
            if error is None
            else {"fatal": True, "exceptions": [{"class_name": error[0], "message": error[1]}]},
            "details": details,
            "event_type": event_type,
        }

    def _append(self, events: Sequence[dict[str, Any]], txn: tuple[str, int] | None = None) -> bool:
        """Append events in one commit; with `txn` (app id, version), only once per version."""
        from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

        table = pa.Table.from_pylist(list(events), schema=EVENT_LOG_SCHEMA)
        with _WRITE_LOCK:
            properties = None
            if txn is not None:
                if delta_log.table_version(self.path) is not None:
                    done = DeltaTable(str(self.path)).transaction_version(txn[0])
                    if done is not None and done >= txn[1]:
                        return False
                properties = CommitProperties(app_transactions=[Transaction(txn[0], txn[1])])
            write_deltalake(str(self.path), table, mode="append", commit_properties=properties)
            self._commits += 1
        return True

    # ------------------------------------------------------------------ lifecycle

    def started(
        self, flows: Iterable[Flow], *, cause: str, full_refresh: bool, runner: str
    ) -> None:
        """`create_update`, the flows' definitions and `update_progress` RUNNING, at once."""
        events = [
            self._event(
                "create_update",
                f"Update {self.update_id} started by {cause} ({runner}).",
                _details_json(
                    "create_update",
                    {"cause": cause, "full_refresh": full_refresh, "runner": runner},
                ),
            ),
            *self._definitions(flows),
            self._progress(RUNNING),
        ]
        self._append(events)

    def defined(self, flows: Iterable[Flow]) -> None:
        """The definitions of flows found while the update runs (a user's pipeline finds its
        graph from its queries)."""
        events = self._definitions(flows)
        if events:
            self._append(events)

    def _definitions(self, flows: Iterable[Flow]) -> list[dict[str, Any]]:
        return [
            self._event(
                "flow_definition",
                f"Flow '{flow.name}' reads {', '.join(flow.inputs)} and writes '{flow.output}'.",
                _details_json(
                    "flow_definition",
                    {
                        "output_dataset": flow.output,
                        "input_datasets": list(flow.inputs),
                        "flow_type": flow.kind,
                    },
                ),
                flow=flow,
            )
            for flow in flows
        ]

    def _progress(
        self,
        state: str,
        error: tuple[str, str] | None = None,
        spent: UpdateCost | None = None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        message = f"Update {self.update_id} is {state}."
        if error is not None:
            message = f"Update {self.update_id} is {state}: {error[0]}: {error[1]}"
        return self._event(
            "update_progress",
            message,
            _details_json(
                "update_progress", {"state": state}, None if spent is None else spent.to_json()
            ),
            level="ERROR" if state == FAILED else "INFO",
            error=error,
            at=at,
        )

    def batch(
        self,
        stage: str,
        batch_id: int,
        flows: Sequence[Flow],
        input_rows: Mapping[str, int | None],
        metrics: Mapping[str, Sequence[ExpectationMetric]],
    ) -> bool:
        """The `flow_progress` events of one micro-batch of `stage`, appended once.

        Args:
            stage: the streaming query.
            batch_id: its micro-batch.
            flows: the stage's flows. Those in `input_rows` report the rows they read of the
                batch; those whose commits carry batch markers the rows written; those with
                rules their counts.
            input_rows: the rows each flow reported read (None: not counted, on a replay).
            metrics: the expectation metrics of the batch, per output table.

        Returns:
            Whether they were appended (False: this batch's events were, before a crash).
        """
        events = []
        flows = [flow for flow in flows if flow.name in input_rows]
        for flow in flows:
            counts: dict[str, int] = {}
            read = input_rows.get(flow.name)
            if read is not None:
                counts["num_input_rows"] = read
            written = None
            if flow.marker is not None:
                written = delta_log.batch_output_rows(
                    self.warehouse / flow.output, flow.marker, batch_id
                )
                counts["num_output_rows"] = written
            body: dict[str, Any] = {"status": RUNNING, "metrics": counts}
            rules = metrics.get(flow.output, ())
            if rules:
                body["data_quality"] = _data_quality(rules, written)
            message = f"Flow '{flow.name}' processed micro-batch {batch_id}"
            if written is not None:
                message += f": {written:,} rows written"
            events.append(
                self._event(
                    "flow_progress",
                    message + ".",
                    _details_json("flow_progress", body),
                    flow=flow,
                    batch_id=batch_id,
                    level="METRICS",
                )
            )
        # Once per (flow, batch): a stage reports the flows of each layer as it writes them.
        return self._append(events, txn=(f"{stage}:{flows[0].name}", batch_id)) if events else False

    def reporter(
        self, stage: str
    ) -> Callable[[int, Mapping[str, int | None], Mapping[str, Sequence[ExpectationMetric]]], None]:
        """The function a stage calls after each micro-batch
        (`pipeline.run.streaming.BatchReport`)."""
        flows = flows_of_stage(stage)

        def report(
            batch_id: int,
            input_rows: Mapping[str, int | None],
            metrics: Mapping[str, Sequence[ExpectationMetric]],
        ) -> None:
            self.batch(stage, batch_id, flows, input_rows, metrics)

        return report

    def flows_ended(
        self,
        flows: Sequence[Flow],
        status: str,
        *,
        output_rows: Mapping[str, int] | None = None,
        error: tuple[str, str] | None = None,
        costs: Mapping[str, FlowCost] | None = None,
        quality: Mapping[str, tuple[Sequence[ExpectationMetric], int]] | None = None,
    ) -> None:
        """One `flow_progress` event per flow as its stage ends.

        Args:
            flows: the flows of the stage.
            status: `COMPLETED`, `FAILED` or `CANCELED`.
            output_rows: rows written per flow not reported per micro-batch (flows whose
                commits carry no batch markers, and a full refresh).
            error: the class and message of the failure.
            costs: what each flow cost the engine in this stage (`pipeline.run.cost`).
            quality: per flow name, its expectations' metrics and the rows they dropped.
        """
        events = []
        for flow in flows:
            metrics: dict[str, int] = {}
            if output_rows is not None and flow.output in output_rows:
                metrics["num_output_rows"] = output_rows[flow.output]
            body: dict[str, Any] = {"status": status}
            if metrics:
                body["metrics"] = metrics
            rules, dropped = (quality or {}).get(flow.name, ((), 0))
            if rules:
                body["data_quality"] = _data_quality(rules, None) | {"dropped_records": dropped}
            verb = "has" if status in TERMINAL_STATES else "is"
            spent = None if costs is None or flow.name not in costs else costs[flow.name]
            events.append(
                self._event(
                    "flow_progress",
                    f"Flow '{flow.name}' {verb} {status}.",
                    _details_json(
                        "flow_progress", body, None if spent is None else spent.to_json()
                    ),
                    flow=flow,
                    level="ERROR" if status == FAILED else "INFO",
                    error=error,
                )
            )
        if events:
            self._append(events)

    def spark_started(self, seconds: float) -> None:
        """Record how long starting Spark took, for the update's cost."""
        self._cost = dataclasses.replace(self._cost, spark_start_seconds=seconds)

    def record_cost(self, spent: UpdateCost) -> None:
        """Record what the update's flows and the rest of it cost the engine."""
        self._cost = dataclasses.replace(spent, spark_start_seconds=self._cost.spark_start_seconds)

    @property
    def cost(self) -> UpdateCost:
        """What the update cost the engine so far, with the event log's own commits."""
        return dataclasses.replace(self._cost, event_log_commits=self._commits)

    def finished(self, state: str, error: BaseException | None = None) -> None:
        """The update's end state: `COMPLETED`, `FAILED` (with the error) or `CANCELED`,
        with what it cost the engine (counting this last commit to the event log)."""
        spent = dataclasses.replace(self.cost, event_log_commits=self._commits + 1)
        summary = None if error is None else error_summary(error)
        if summary is not None and self._withhold_messages:
            summary = (summary[0], WITHHELD)
        self._append([self._progress(state, summary, spent)])

    def closed_as_interrupted(self, last_flow: str | None, at: datetime) -> None:
        """End an update whose process was killed: `FAILED`, its error `Interrupted` naming
        the last flow it reached, at the time of its last event (its cost is unknown)."""
        reached = f"the last flow it reached: {last_flow}" if last_flow else "before any flow"
        error = (
            INTERRUPTED,
            "its process ended without recording an end state (killed, or its machine "
            f"stopped); {reached}. The batches it committed stay; the next run resumes the rest.",
        )
        self._append([self._progress(FAILED, error, None, at)])


OPEN_UPDATE_SCAN = 50
"""How many of the event log's newest commits `_open_update` reads, at most."""


def _commit_events(path: Path, version: int) -> list[dict[str, Any]]:
    files = delta_log.added_files(path, version)
    if not files:
        return []
    table = pa.concat_tables([pq.read_table(f, schema=EVENT_LOG_SCHEMA) for f in files])
    events: list[dict[str, Any]] = table.select(["origin", "event_type", "details"]).to_pylist()
    return events


def _open_update(warehouse: Path) -> str | None:
    """The update of the event log's newest commit, when no end state of it is recorded.

    Updates are written one at a time (the writer lock), each ending with its end state (a
    batch finishing as its run is canceled may still report after it). Reads the newest
    commits, back to that update's end state or its start: one commit, as a rule.
    """
    path = Path(table_path(warehouse, EVENT_LOG))
    newest = delta_log.table_version(path)
    if newest is None:
        return None
    update_id = None
    for version in range(newest, max(newest - OPEN_UPDATE_SCAN, -1), -1):
        for event in _commit_events(path, version):
            event_id = event["origin"]["update_id"]
            update_id = update_id or event_id
            if event_id != update_id:
                continue
            if event["event_type"] == "create_update":
                return str(update_id)
            state = details(event).get("state")
            if event["event_type"] == "update_progress" and state in TERMINAL_STATES:
                return None
    return None


def close_interrupted_update(warehouse: Path) -> str | None:
    """Close the update a killed run left open (`FAILED`, interrupted); its id, or None.

    Call it holding the writer lock, before the next update starts.
    """
    open_id = _open_update(warehouse)
    if open_id is None:
        return None
    own = [e for e in read_events(warehouse) if e["origin"]["update_id"] == open_id]
    flows = [e["origin"]["flow_name"] for e in own if e["event_type"] == "flow_progress"]
    last_seen = max(e["timestamp"] for e in own)
    UpdateLog(warehouse, open_id).closed_as_interrupted(
        flows[-1] if flows else None, last_seen + timedelta(microseconds=1)
    )
    return open_id


@contextmanager
def recorded_update(
    warehouse: Path,
    update_id: str,
    *,
    flows: Iterable[Flow],
    full_refresh: bool,
    runner: str,
    about_a_person: bool = False,
) -> Iterator[UpdateLog]:
    """Record an update: its start and flow definitions now, its end state when the block
    ends (`COMPLETED`; `CANCELED` on Ctrl-C or SIGTERM, which the command line turns into
    `KeyboardInterrupt`; `FAILED` with the error on any other error). An update a killed run
    left open is closed first (`close_interrupted_update`).

    `about_a_person`: the update works on one person's data (`clickstream forget`); its error
    is recorded by class only, since a message may name the person.

    Hold the warehouse's writer lock around it: the event log has one writer at a time.
    """
    close_interrupted_update(warehouse)
    update = UpdateLog(warehouse, update_id, withhold_messages=about_a_person)
    update.started(flows, cause="USER_ACTION", full_refresh=full_refresh, runner=runner)
    try:
        yield update
    except KeyboardInterrupt as error:
        _record_end(update, CANCELED, error, None)
        raise
    except BaseException as error:
        _record_end(update, FAILED, error, error)
        raise
    update.finished(COMPLETED)


def _record_end(
    update: UpdateLog, state: str, raised: BaseException, error: BaseException | None
) -> None:
    """Record how a failed or interrupted update ended, never hiding why it ended: when the
    log cannot be written (a full disk is one reason the update failed), the original error
    goes on, with a note saying so."""
    try:
        update.finished(state, error)
    except Exception as unrecorded:
        raised.add_note(f"The event log could not record the {state} end state: {unrecorded}")


# ---------------------------------------------------------------------- reading


def read_events(
    warehouse: Path, *, last_updates: int | None = None, update_id: str | None = None
) -> list[dict[str, Any]]:
    """The events of the warehouse's event log, oldest first, without Spark.

    Every event by default; only those of the `last_updates` updates started last, or of the
    update `update_id`, when asked: the choice is made on Arrow columns, so that the history
    of a thousand updates costs what its last ten cost in Python. Empty when there is no
    event log yet.
    """
    from deltalake import DeltaTable

    path = Path(table_path(warehouse, EVENT_LOG))
    if delta_log.table_version(path) is None:
        return []
    files = DeltaTable(str(path)).file_uris()
    if not files:
        return []
    # Read file by file: delta-rs' own `to_pyarrow_table` can abort the interpreter at exit.
    table = pa.concat_tables([pq.read_table(f, schema=EVENT_LOG_SCHEMA) for f in files])
    if update_id is not None or last_updates is not None:
        wanted = [update_id] if update_id is not None else _last_updates(table, last_updates or 0)
        ids = pc.struct_field(table["origin"], "update_id")
        table = table.filter(pc.is_in(ids, value_set=pa.array(wanted, pa.string())))
    events: list[dict[str, Any]] = table.to_pylist()
    events.sort(key=lambda e: (e["timestamp"], e["sequence"]["data_plane_id"]["seq_no"]))
    return events


def _last_updates(table: pa.Table, count: int) -> list[str]:
    """The ids of the `count` updates started last (their `create_update` events)."""
    starts = table.filter(pc.equal(table["event_type"], "create_update"))
    ids = pc.struct_field(starts["origin"], "update_id").to_pylist()
    times = starts["timestamp"].to_pylist()
    ordered = [update for _time, update in sorted(zip(times, ids, strict=True))]
    return ordered[-count:] if count > 0 else ordered


def details(event: Mapping[str, Any]) -> dict[str, Any]:
    """An event's `details` JSON, parsed, under its event type."""
    parsed = json.loads(event["details"] or "{}")
    return dict(parsed.get(event["event_type"], {}))


def engine_cost(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """An event's cost extension (`pipeline.run.cost`), parsed; None when it has none."""
    found = json.loads(event["details"] or "{}").get(COST_KEY)
    return None if found is None else dict(found)


EXPECTATIONS_TYPE = (
    "array<struct<name: string, dataset: string, action: string, "
    "passed_records: bigint, failed_records: bigint>>"
)

VIEWS: dict[str, str] = {
    "latest_update": """
        SELECT origin.update_id AS id FROM event_log_raw
        WHERE event_type = 'create_update' ORDER BY timestamp DESC LIMIT 1""",
    "event_log_expectations": f"""
        SELECT origin.update_id AS update_id, origin.flow_name AS flow_name,
               origin.batch_id AS batch_id, timestamp,
               e.dataset AS dataset, e.name AS expectation, e.action AS action,
               e.passed_records AS passing_records, e.failed_records AS failing_records
        FROM event_log_raw
        LATERAL VIEW explode(from_json(
            CAST(details:flow_progress.data_quality.expectations AS STRING),
            '{EXPECTATIONS_TYPE}')) AS e
        WHERE event_type = 'flow_progress'""",
    "event_log_lineage": """
        SELECT origin.update_id AS update_id, origin.flow_name AS flow_name,
               details:flow_definition.output_dataset::string AS output_dataset,
               from_json(CAST(details:flow_definition.input_datasets AS STRING),
                         'array<string>') AS input_datasets
        FROM event_log_raw WHERE event_type = 'flow_definition'""",
    "event_log_updates": """
        SELECT origin.update_id AS update_id, min(timestamp) AS start_time,
               max(timestamp) AS end_time,
               max_by(details:update_progress.state::string,
                      sequence.data_plane_id.seq_no) AS state,
               (unix_micros(max(timestamp)) - unix_micros(min(timestamp))) / 1e6
                   AS duration_seconds
        FROM event_log_raw
        WHERE event_type IN ('create_update', 'update_progress')
        GROUP BY origin.update_id""",
}
"""Views over `event_log_raw` with the columns of Databricks' documented event-log queries,
for the parts open-source SQL cannot write their way (`from_json` of a `details:` path)."""


def register_views(spark: SparkSession, warehouse: Path) -> None:
    """Temporary views of the warehouse's event log: `event_log_raw` (with `details` as
    VARIANT, so `details:flow_progress.metrics.num_output_rows` works as on Databricks) and
    the views of `VIEWS`."""
    raw = spark.read.format("delta").load(table_path(warehouse, EVENT_LOG))
    raw.selectExpr(
        *["parse_json(details) AS details" if c == "details" else f"`{c}`" for c in raw.columns]
    ).createOrReplaceTempView("event_log_raw")
    for name, query in VIEWS.items():
        spark.sql(query).createOrReplaceTempView(name)


def expectation_metrics(spark: SparkSession, warehouse: Path) -> DataFrame:
    """Passed and failed rows per (update, flow, batch, table, rule), from the event log.

    Columns: `update_id`, `flow_name`, `batch_id`, `table`, `rule`, `action`, `passed`,
    `failed`, `timestamp`.
    """
    from pyspark.sql import functions as F

    log = spark.read.format("delta").load(table_path(warehouse, EVENT_LOG))
    expectations = F.from_json(
        F.get_json_object("details", "$.flow_progress.data_quality.expectations"),
        EXPECTATIONS_TYPE,
    )
    return (
        log.where(F.col("event_type") == "flow_progress")
        .select(
            F.col("origin.update_id").alias("update_id"),
            F.col("origin.flow_name").alias("flow_name"),
            F.col("origin.batch_id").alias("batch_id"),
            "timestamp",
            F.explode(expectations).alias("e"),
        )
        .select(
            "update_id",
            "flow_name",
            "batch_id",
            F.col("e.dataset").alias("table"),
            F.col("e.name").alias("rule"),
            F.col("e.action").alias("action"),
            F.col("e.passed_records").alias("passed"),
            F.col("e.failed_records").alias("failed"),
            "timestamp",
        )
    )
