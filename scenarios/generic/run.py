"""The scenarios on any DLT / Lakeflow pipeline: `python -m scenarios --pipeline SOURCE.py ...
--harness harness.yml`.

Each scenario lands a clean arrival of every input (seeded records, `records.changes`), runs
an update (`clickstream dlt run`), lands a second arrival rewritten by one fault family
(`records.FAULTS`; the `clean` scenario has none), runs again, and checks invariants that
hold for any pipeline:

* both updates completed (where the harness file says an input refuses the fault, the second
  update fails naming it, and after the input is repaired the next one completes);
* every line landed is a row of one of its input's raw datasets (a line that is not a
  record, with its rescued data, or in a quarantine);
* each expectation of a cleaned dataset judged every row of its raw dataset, and a stored
  cleaned dataset holds the rows its drop rules kept, each with its key; a raw dataset's own
  counted rules judged every row it took;
* every CDC target equals the plain-Python reference of the documented AUTO CDC semantics
  (`scenarios.scd_model`) over the changes its flow received (its change log);
* an update with nothing new starts no Spark and changes no table;
* the incremental result equals a `--full-refresh` of the same files (the columns the harness
  file names as run times left out; in a scenario it says may differ, the reason is shown);
* no personal value landed appears in clear in a dataset the harness file marks
  pseudonymized.
"""

from __future__ import annotations

import functools
import json
import operator
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.dlt.api import CdcFlow, Declarations
from pipeline.dlt.update import UpdateOutcome, run_update
from pipeline.observe import event_log, history
from pipeline.storage import delta_log
from pipeline.storage.scd_merge import change_log_path
from scenarios.generic.harness_file import Harness, Input
from scenarios.generic.records import FAULTS, START, Arrival, changes, lines, with_fault
from scenarios.invariants import Verdict
from scenarios.report import ScenarioResult, update_summaries
from scenarios.scd_model import Change, scd1, scd2

__all__ = ["SCENARIOS", "GenericRun", "run_scenario"]

SCENARIOS = ("clean", *FAULTS)
"""The generic scenarios: a clean second arrival, then one per fault family."""


@dataclass(frozen=True)
class GenericRun:
    """What every generic scenario shares."""

    spark: SparkSession
    sources: tuple[Path, ...]
    harness: Harness
    seed: int
    records: int


def _land(source: Input, landing: Path, name: str, arrival: Arrival) -> int:
    """Write an arrival's lines; the records (rows) they hold."""
    folder = landing / source.folder if source.folder else landing
    folder.mkdir(parents=True, exist_ok=True)
    written = lines(source, arrival)
    suffix = "json" if source.format == "json" else "csv"
    (folder / f"{name}.{suffix}").write_text("\n".join(written) + "\n", encoding="utf-8")
    header = 1 if source.format == "csv" else 0
    return sum(1 for line in written if line.strip()) - header


def _arrivals(run: GenericRun, fault: str | None) -> dict[str, tuple[Arrival, Arrival]]:
    found = {}
    for name, source in run.harness.inputs.items():
        keys = max(run.records // 4, 1)
        step = timedelta(minutes=10)
        first = changes(source, seed=run.seed, count=run.records, keys=keys, start=START, step=step)
        second = changes(
            source,
            seed=run.seed + 1,
            count=run.records,
            keys=keys,
            start=START + step * run.records,
            step=step,
        )
        found[name] = (
            with_fault(source, first, None, run.seed),
            with_fault(source, second, fault, run.seed),
        )
    return found


def _rows(spark: SparkSession, path: Path) -> DataFrame | None:
    if delta_log.table_version(path) is None:
        return None
    return spark.read.format("delta").load(str(path))


# ---------------------------------------------------------------------- invariants


def _accounted(run: GenericRun, warehouse: Path, landed: dict[str, int]) -> list[Verdict]:
    """Each input's lines are rows of its raw datasets (a table and its quarantine, say)."""
    raw: dict[str, list[str]] = {}
    for dataset in run.harness.datasets.values():
        if dataset.role == "raw":
            raw.setdefault(dataset.input, []).append(dataset.name)
    verdicts = []
    for input_name, names in raw.items():
        counts = {}
        for name in names:
            frame = _rows(run.spark, warehouse / name)
            counts[name] = 0 if frame is None else frame.count()
        rows = sum(counts.values())
        verdicts.append(
            Verdict(
                f"every line of {input_name} is a row of {' or '.join(names)}",
                rows == landed[input_name],
                f"{landed[input_name]:,} lines landed, "
                + " + ".join(f"{n:,} rows in {name}" for name, n in counts.items()),
            )
        )
    return verdicts


def _judged(run: GenericRun, warehouse: Path, updates: Sequence[str]) -> list[Verdict]:
    """Each cleaned dataset's rules judged every row of the raw dataset it reads (and kept
    what they did not drop); a raw dataset's own rules judged every row it took."""
    events = [e for u in updates for e in event_log.read_events(warehouse, update_id=u)]
    judged: dict[str, dict[str, int]] = {}
    dropped: dict[str, int] = {}
    for event in events:
        quality = json.loads(event["details"]).get("flow_progress", {}).get("data_quality")
        for rule in (quality or {}).get("expectations", []):
            counts = judged.setdefault(rule["dataset"], {})
            counts[rule["name"]] = (
                counts.get(rule["name"], 0) + rule["passed_records"] + rule["failed_records"]
            )
        if quality:
            flow = event["origin"]["flow_name"]
            dropped[flow] = dropped.get(flow, 0) + int(quality.get("dropped_records", 0))
    verdicts = []
    for dataset in run.harness.datasets.values():
        counts = judged.get(dataset.name, {})
        if dataset.role == "raw" and counts:
            # A raw dataset's own rules (warnings, most often) judged every row it took.
            frame = _rows(run.spark, warehouse / dataset.name)
            expected = (0 if frame is None else frame.count()) + dropped.get(dataset.name, 0)
            label = f"the expectations of {dataset.name} judged every row it took"
        elif dataset.role == "cleaned":
            judges = dataset.judges or next(
                (
                    d.name
                    for d in run.harness.datasets.values()
                    if d.role == "raw" and d.input == dataset.input
                ),
                None,
            )
            if judges is None:
                continue
            frame = _rows(run.spark, warehouse / judges)
            expected = 0 if frame is None else frame.count()
            label = f"the expectations of {dataset.name} judged every row of {judges}"
        else:
            continue
        wrong = {rule: n for rule, n in counts.items() if n != expected}
        verdicts.append(
            Verdict(
                label,
                bool(counts) and not wrong,
                f"{expected:,} rows; judged per rule: "
                + (", ".join(f"{r} {n:,}" for r, n in sorted(counts.items())) or "no rule"),
            )
        )
        stored = _rows(run.spark, warehouse / dataset.name)
        keys = run.harness.inputs[dataset.input].keys
        if dataset.role == "cleaned" and stored is not None and set(keys) <= set(stored.columns):
            keyless = stored.where(
                functools.reduce(operator.or_, [F.col(f"`{k}`").isNull() for k in keys])
            ).count()
            verdicts.append(
                Verdict(
                    f"every row of {dataset.name} has its key ({', '.join(keys)})",
                    keyless == 0,
                    f"{keyless:,} row(s) without one (a corrupt line or a record without its key "
                    "got through)"
                    if keyless
                    else "none without one",
                )
            )
        if dataset.role == "cleaned" and stored is not None and dataset.name in dropped:
            kept = stored.count()
            verdicts.append(
                Verdict(
                    f"{dataset.name} holds the rows its drop rules kept",
                    kept == expected - dropped[dataset.name],
                    f"{expected:,} judged - {dropped[dataset.name]:,} dropped = "
                    f"{expected - dropped[dataset.name]:,}; the table holds {kept:,}",
                )
            )
    return verdicts


def _cdc_reference(flow: CdcFlow, log: DataFrame) -> set[tuple[Any, ...]]:
    """The documented AUTO CDC result of the changes in `log` (the flow's change log)."""
    excluded = set(flow.except_column_list or ())
    columns = [c for c in log.columns if c not in excluded]
    if flow.column_list is not None:
        columns = list(flow.column_list)
    keys = list(flow.keys)
    values = [c for c in columns if c not in keys]
    marked = log.select(
        *columns,
        (F.col(flow.sequence_by) if isinstance(flow.sequence_by, str) else flow.sequence_by).alias(
            "__sequence"
        ),
        (
            F.coalesce(
                F.expr(flow.apply_as_deletes)
                if isinstance(flow.apply_as_deletes, str)
                else flow.apply_as_deletes,
                F.lit(False),
            )
            if flow.apply_as_deletes is not None
            else F.lit(False)
        ).alias("__delete"),
    )
    found = [
        Change(
            tuple(row[k] for k in keys),
            row["__sequence"],
            "delete" if row["__delete"] else "upsert",
            tuple((c, row[c]) for c in values),
        )
        for row in marked.collect()
    ]
    if flow.stored_as_scd_type == 1:
        table = scd1(found, ignore_null_updates=flow.ignore_null_updates)
        return {(*key, *(row[c] for c in values)) for key, row in table.items()}
    tracked = None
    if flow.track_history_column_list is not None:
        tracked = list(flow.track_history_column_list)
    elif flow.track_history_except_column_list is not None:
        tracked = [c for c in values if c not in flow.track_history_except_column_list]
    versions = scd2(found, tracked=tracked, ignore_null_updates=flow.ignore_null_updates)
    return {(*v.key, *(v.values[c] for c in values), v.start, v.end) for v in versions}


def _cdc_targets(
    run: GenericRun, warehouse: Path, declarations: Declarations | None
) -> list[Verdict]:
    verdicts = []
    flows = [f for f in (declarations.flows if declarations else []) if isinstance(f, CdcFlow)]
    for flow in flows:
        path = warehouse / flow.target
        table, log = _rows(run.spark, path), _rows(run.spark, Path(change_log_path(str(path))))
        if table is None or log is None:
            verdicts.append(
                Verdict(f"{flow.target} equals the AUTO CDC reference", False, "no table")
            )
            continue
        expected = _cdc_reference(flow, log)
        keys = list(flow.keys)
        values = [c for c in table.columns if c not in keys and not c.startswith("__")]
        history_columns = ["__START_AT", "__END_AT"] if flow.stored_as_scd_type == 2 else []
        actual = {tuple(row) for row in table.select(*keys, *values, *history_columns).collect()}
        missing, extra = expected - actual, actual - expected
        verdicts.append(
            Verdict(
                f"{flow.target} equals the AUTO CDC reference (SCD type {flow.stored_as_scd_type})",
                not missing and not extra,
                f"{len(actual):,} rows, {len(expected):,} expected from {log.count():,} changes; "
                f"{len(missing)} missing, {len(extra)} unexpected"
                + (f" (first missing: {sorted(missing, key=str)[0]})" if missing else ""),
            )
        )
    return verdicts


def _versions(warehouse: Path, datasets: Sequence[str]) -> dict[str, int | None]:
    return {name: delta_log.table_version(warehouse / name) for name in datasets}


def _equal_tables(
    spark: SparkSession, left: Path, right: Path, names: Sequence[str], ignored: Sequence[str]
) -> list[str]:
    differing = []
    for name in names:
        a, b = _rows(spark, left / name), _rows(spark, right / name)
        if a is None or b is None:
            if (a is None) != (b is None):
                differing.append(name)
            continue
        compared = [c for c in a.columns if c not in ignored]
        a, b = a.select(*compared), b.select(*compared)
        if a.exceptAll(b).count() or b.exceptAll(a).count():
            differing.append(name)
    return differing


def _personal_values(arrivals: dict[str, tuple[Arrival, Arrival]], harness: Harness) -> set[str]:
    found = set()
    for name, (first, second) in arrivals.items():
        personal = harness.inputs[name].personal
        for record in [*first.records, *second.records]:
            found |= {str(record[f]) for f in personal if record.get(f)}
            found |= {
                word.strip(",")
                for value in record.values()
                if isinstance(value, str) and "@" in value
                for word in value.split()
                if "@" in word
            }
    return found


def _clear_values(frame: DataFrame, values: set[str]) -> int:
    strings = [f.name for f in frame.schema.fields if f.dataType.simpleString() == "string"]
    if not strings or not values:
        return 0
    cells = {str(v) for row in frame.select(*strings).collect() for v in row if v is not None}
    return sum(1 for cell in cells if any(value in cell for value in values))


# ---------------------------------------------------------------------- a scenario


def run_scenario(run: GenericRun, name: str, workdir: Path) -> ScenarioResult:
    """One generic scenario (`SCENARIOS`) in `workdir`; an error fails it, with the error."""
    started = time.perf_counter()
    fault = None if name == "clean" else name
    landing, warehouse = workdir / "landing", workdir / "warehouse"
    settings = {**run.harness.settings, run.harness.landing: str(landing)}
    shutil.rmtree(workdir, ignore_errors=True)
    arrivals = _arrivals(run, fault)
    verdicts: list[Verdict] = []
    injected = "nothing (a clean second arrival)"
    error = None
    outcomes: list[UpdateOutcome | None] = []

    failures: list[str] = []

    def update(target: Path, **options: Any) -> UpdateOutcome | None:
        try:
            return run_update(
                run.sources, target, settings, start_spark=lambda: run.spark, **options
            )
        except Exception as failed:  # a failed update is an outcome the invariants judge
            failures.append(f"{type(failed).__name__}: {failed}")
            return None

    refusing = [n for n, source in run.harness.inputs.items() if fault in source.refuses]
    try:
        landed: dict[tuple[str, int], int] = {}
        for index in (0, 1):
            for input_name, pair in arrivals.items():
                source = run.harness.inputs[input_name]
                at = f"arrival-{index + 1}"
                landed[input_name, index] = _land(source, landing, at, pair[index])
            outcomes.append(update(warehouse))
        notes = {k: v for pair in arrivals.values() for k, v in pair[1].notes.items()}
        if fault is not None:
            touched = ", ".join(f"{k} {v:,}" for k, v in notes.items())
            injected = f"{fault}: {touched or 'nothing to act on in these inputs'}"
        expected = ["COMPLETED"] * 2
        if refusing:
            verdicts.append(_refused(run, warehouse, fault or "", refusing, failures))
            repaired = _arrivals(run, None)
            for input_name in refusing:  # its clean lines in place: the files the stream planned
                source = run.harness.inputs[input_name]
                landed[input_name, 1] = _land(source, landing, "arrival-2", repaired[input_name][1])
            failures.clear()
            outcomes.append(update(warehouse))
            expected = ["COMPLETED", "FAILED", "COMPLETED"]
        done = history.updates(event_log.read_events(warehouse))
        states = [u.state for u in done]
        completed = states == expected
        verdicts.append(
            Verdict(
                "the update after the repair completed" if refusing else "both updates completed",
                completed,
                ", ".join(states)
                + (
                    f"; {failures[0]} (the nothing-new and full-refresh checks need completed "
                    "updates: not run)"
                    if failures
                    else ""
                ),
            )
        )
        declarations = next(
            (o.declarations for o in reversed(outcomes) if o and o.declarations), None
        )
        verdicts += _accounted(
            run, warehouse, {n: landed[n, 0] + landed[n, 1] for n in run.harness.inputs}
        )
        verdicts += _judged(run, warehouse, [u.update_id for u in done])
        verdicts += _cdc_targets(run, warehouse, declarations)
        stored = [
            n
            for n, d in (declarations.datasets.items() if declarations else [])
            if d.kind != "view"
        ]
        if completed:
            before = _versions(warehouse, stored)
            again = run_update(run.sources, warehouse, settings, start_spark=_no_spark)
            after = _versions(warehouse, stored)
            verdicts.append(
                Verdict(
                    "an update with nothing new starts no Spark and changes no table",
                    again.nothing_new and before == after,
                    f"nothing new: {again.nothing_new}; table versions "
                    + ("unchanged" if before == after else f"{before} -> {after}"),
                )
            )
            refreshed = workdir / "refreshed"
            shutil.copytree(warehouse, refreshed, ignore=shutil.ignore_patterns(".writer.lock"))
            update(refreshed, full_refresh=True)
            differing = _equal_tables(
                run.spark, warehouse, refreshed, stored, run.harness.run_time_columns
            )
            allowed = run.harness.full_refresh_differs_in.get(name)
            verdicts.append(
                Verdict(
                    "the incremental result equals a full refresh"
                    + (" (or differs, as the harness file expects here)" if allowed else ""),
                    (allowed is not None or not differing) and len(failures) == 0,
                    f"{len(stored)} datasets compared"
                    + (f"; differing: {', '.join(differing)}" if differing else ", all equal")
                    + (f"; the harness file expects it: {allowed}" if allowed else "")
                    + (f"; the full refresh failed: {failures[0]}" if failures else ""),
                )
            )
        personal = _personal_values(arrivals, run.harness)
        for dataset in run.harness.pseudonymized:
            frame = _rows(run.spark, warehouse / dataset)
            found = 0 if frame is None else _clear_values(frame, personal)
            verdicts.append(
                Verdict(
                    f"no personal value in clear in {dataset}",
                    frame is not None and found == 0,
                    f"{len(personal):,} personal values landed; {found} cells hold one"
                    if frame is not None
                    else "the pipeline wrote no such table (the harness file names it)",
                )
            )
    except Exception as exc:  # the report must say which scenario broke and how
        error = f"{type(exc).__name__}: {exc}"
    ledger = {}
    if warehouse.exists():
        for dataset in run.harness.datasets:
            frame = _rows(run.spark, warehouse / dataset)
            if frame is not None:
                ledger[dataset] = frame.count()
    found_updates = history.updates(event_log.read_events(warehouse)) if warehouse.exists() else []
    return ScenarioResult(
        name=name,
        description=f"a clean arrival, then {fault or 'a clean one'}",
        injected=injected,
        seconds=time.perf_counter() - started,
        verdicts=tuple(verdicts),
        ledger=ledger,
        error=error,
        lineage=tuple(history.lineage(found_updates)),
        updates=update_summaries(found_updates),
    )


def _refused(
    run: GenericRun, warehouse: Path, fault: str, refusing: Sequence[str], failures: Sequence[str]
) -> Verdict:
    """The update that met a fault its input refuses by design failed, saying why."""
    state = history.updates(event_log.read_events(warehouse))[-1].state
    return Verdict(
        f"the update refused {fault} in {', '.join(refusing)}, naming it",
        state == "FAILED" and bool(failures),
        f"{state}: {failures[0] if failures else 'no error'}; the input repaired (its clean "
        "lines in place of the faulty ones) and updated again",
    )


def _no_spark() -> SparkSession:
    raise AssertionError("an update with nothing new started Spark")
