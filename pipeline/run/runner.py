"""Runs the pipeline incrementally: landing JSON files -> bronze -> silver -> gold Delta tables.

`run_pipeline` is the orchestration of four streaming stages, each an `availableNow`
Structured Streaming query with its checkpoint under `<warehouse>/_checkpoints/`, each
reading only what is new to it (the user dimension beside bronze and silver, gold last):

1. `pipeline.run.bronze_stage.run_bronze`: new landing files -> `bronze_events`,
   `bronze_quarantine`;
2. `pipeline.run.silver_stage.run_silver`: new bronze rows -> `silver_events`,
   `silver_quarantine`, `silver_late_events`;
3. `pipeline.run.gold_stage.run_user_dimension`: new CDC files -> `gold_dim_user` (SCD2), and
   the facts the changes re-key;
4. `pipeline.run.gold_stage.run_gold`: new silver rows -> facts, dimensions, and the aggregates
   of the days and sessions they touch.

A run holds the warehouse's writer lock (`pipeline.run.writer_lock`: one writer at a time) and
first checks its state in plain Python (`pipeline.run.preflight`: damaged checkpoints, unreadable
or changed landing files). A run with nothing new does no Spark work (`pipeline.run.run_state`);
`full_refresh` recomputes every gold table from silver and the user change log afterwards.
Every write of a batch is exactly once, so a run killed midway resumes from its checkpoints
without losing or duplicating rows (`nox -s chaos` kills runs at the dangerous moments).
Expectations (`pipeline.transforms.expectations`) are passed in as data, per table, and enforced
where
the stages write (`pipeline.run.enforcement`). Every run is an update of the warehouse's event log
(`pipeline.observe.event_log`): its flows' definitions, each micro-batch's rows and expectation
metrics, each flow's end, and the update's end state, also when it fails or has nothing new.
"""

from __future__ import annotations

import dataclasses
import errno
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from pipeline.config import (
    DEFAULT_MAX_FILES_PER_TRIGGER,
    DEFAULT_WATERMARK_DELAY,
    PiiKey,
    SparkSettings,
    parse_delay,
    require_classic,
)
from pipeline.errors import StorageFullError
from pipeline.landing.azure_landing import BlobLanding, cache_folder, copy_new_files
from pipeline.observe.event_log import (
    CANCELED,
    COMPLETED,
    FAILED,
    RUNNER,
    UpdateLog,
    error_summary,
    new_update_id,
    recorded_update,
)
from pipeline.observe.flows import FLOWS, REFRESH_STAGE, flows_of_stage, stage_tables
from pipeline.privacy import key_registry
from pipeline.run import cost, preflight, repair, run_state
from pipeline.run.cost import size
from pipeline.run.enforcement import Contract, check_rule_tables, contracts_for
from pipeline.run.events_stage import run_events
from pipeline.run.gold_stage import refresh_gold, run_user_dimension
from pipeline.run.optimize import compact_grown_tables
from pipeline.run.progress import Progress
from pipeline.run.run_state import RunSummary, TableCount
from pipeline.run.session import SMALL_INPUT, build_session, session_settings
from pipeline.run.streaming import BatchReport
from pipeline.run.writer_lock import writer_lock
from pipeline.storage import delta_log
from pipeline.storage.tables import checkpoint_path, row_counts
from pipeline.table_names import (
    EVENTS_DIR,
    EVENTS_STREAM,
    GOLD_DIM_USER,
    SPARK_LOG,
    USER_CHANGES_DIR,
    USER_STREAM,
)
from pipeline.transforms.expectations import Expectation, ExpectationMetric
from pipeline.transforms.pseudonymize import key_frame

__all__ = ["RunOptions", "RunSummary", "TableCount", "run_pipeline"]


INTERPRETED_BELOW_BYTES = 16 * 1024 * 1024
"""Runs with less new input than this evaluate expressions without generating code.

Measured here (warm, 2 cores, default rules): 5,000 events ran 15-25% faster interpreted,
100,000 events 10-15% slower. A small incremental run spends its time compiling the Java
code Spark generates for each new plan (a quarter of its CPU in a profile), not running it.
"""


@dataclass(frozen=True)
class RunOptions:
    """Knobs of one pipeline run.

    Attributes:
        watermark_delay: how late an event may arrive and still be deduplicated into silver.
        max_files_per_trigger: landing files per micro-batch.
        full_refresh: after the incremental stages, recompute every gold table from silver
            and the user change log (Lakeflow's full refresh of a materialized view).
        wait_seconds: how long to wait for another run writing the warehouse to finish
            (`pipeline.run.writer_lock`); 0 fails at once.
        spark_log: where a Spark session the run starts writes its output (its banner,
            log4j's log, what Delta prints): `<warehouse>/_logs/spark.log` when True, this
            process's terminal when False (`clickstream run --verbose`).
    """

    watermark_delay: str = DEFAULT_WATERMARK_DELAY
    max_files_per_trigger: int = DEFAULT_MAX_FILES_PER_TRIGGER
    full_refresh: bool = False
    wait_seconds: float = 0.0
    spark_log: bool = True


def run_pipeline(
    spark: SparkSession | SparkSettings,
    *,
    landing: Path | BlobLanding,
    warehouse: Path,
    pii_key: PiiKey,
    options: RunOptions | None = None,
    progress: Callable[[str], None] | None = None,
    expectations: Mapping[str, Sequence[Expectation]] | None = None,
    display: Progress | None = None,
) -> RunSummary:
    """Process every landing file not processed before into the warehouse's Delta tables.

    The one run sequence, for the command line, the scenarios, the benchmarks and the tests:

    1. checks that need nothing but the arguments: the watermark, classic Spark, the landing
       folder, the rules' tables (and their columns, when a session is given);
    2. the warehouse's writer lock, then (a remote landing) the copy of its new files;
    3. the event log's update, recorded from here on, also when the run fails;
    4. the key's admission, the state checks (`pipeline.run.preflight`), the repairs of
       what a killed run left (`pipeline.run.repair`) and the decision
       whether there is anything new, in plain Python: a run with nothing new starts no Spark;
    5. Spark (started from `SparkSettings`, and stopped at the end, when no session is given),
       the stages, the saved state and what the run cost;
    6. the tables grown past `pipeline.run.optimize.auto_optimize_files` optimized.

    Args:
        spark: the session to run on, or the settings of one to start when there is work
            (with the quick compiler only for a small input, `INTERPRETED_BELOW_BYTES`).
        landing: directory whose `events/` folder holds newline-delimited JSON files, and
            whose optional `user_changes/` folder holds the user CDC feed; or a landing in
            Azure Blob storage, whose new files are copied first under the warehouse
            (`pipeline.landing.azure_landing.cache_folder`).
        warehouse: directory of the Delta tables and the streaming checkpoints.
        pii_key: the secret for keyed pseudonymization of PII.
        options: watermark, batch sizing, full refresh, lock wait; defaults when None.
        progress: called with a short message as each step starts.
        expectations: rules per table (`pipeline.table_names.ENFORCED_TABLES`), e.g.
            `contracts.rules.EXPECTATIONS`; none are enforced when None. Gold tables take
            warn and fail rules only.
        display: shows each stage's micro-batches, files, rows and rate as they finish.

    Returns:
        Row counts per table, before and after the run, its update id (`run_id` None when
        there was nothing new, and nothing was done) and what it cost the engine.

    Raises:
        InputError: the landing directory has no `events/` folder, or a new landing file
            cannot be read.
        WarehouseBusyError: another process writes the warehouse (`pipeline.run.writer_lock`).
        PiiKeyMismatchError: `pii_key` did not make the warehouse's pseudonyms, or a key
            rotation is unfinished (`pipeline.privacy.key_registry`).
        DamagedStateError: a checkpoint is damaged or disagrees with its tables
            (`pipeline.run.preflight`); nothing was run.
        StorageFullError: a file system the run writes is full; the batch being written
            was not committed.
        ConfigurationError: the watermark delay is not a duration.
        UnsupportedModeError: `spark` is (or names) a Spark Connect session.
        InvalidExpectationError: a rule names a table no stage writes, or does not fit it.
        ExpectationFailedError: rows failed an `expect_or_fail` rule; that batch and the
            stages after it were not written, and the next run retries the batch.
    """
    options = options or RunOptions()
    parse_delay(options.watermark_delay)
    # A wrong --master or --remote fails before anything is written.
    require_classic(spark, "The pipeline runner (`clickstream run`)")
    warehouse = warehouse.resolve()
    local = landing.resolve() if isinstance(landing, Path) else None
    if local is not None:
        preflight.check_landing(local)
    # Rules are checked first: a rule that cannot apply leaves no trace, not even the lock.
    rules = expectations or {}
    check_rule_tables(rules)
    contracts = contracts_for(spark, rules) if isinstance(spark, SparkSession) else None
    report = progress or (lambda _message: None)
    # Held before the state is read and before Spark starts: a second writer fails at once.
    with writer_lock(warehouse, wait_seconds=options.wait_seconds, notify=report):
        if local is None:
            assert isinstance(landing, BlobLanding)
            local = _copy_landing(landing, warehouse, report)
            preflight.check_landing(local)
        # Recorded from here on: a run that fails, is interrupted or has nothing new is an
        # update.
        with recorded_update(
            warehouse,
            new_update_id(),
            flows=FLOWS,
            full_refresh=options.full_refresh,
            runner=RUNNER,
        ) as update:
            summary = _update(
                spark, local, warehouse, pii_key, options, rules, contracts, report, display, update
            )
    return dataclasses.replace(summary, cost=update.cost)


def _copy_landing(remote: BlobLanding, warehouse: Path, report: Callable[[str], None]) -> Path:
    """Copy the remote landing's new files into the warehouse's cache; the cache's path."""
    cache = cache_folder(warehouse, remote.location)
    started = time.perf_counter()
    shown = {"step": -1}

    def show(done: int, total: int, copied_bytes: int) -> None:
        step = done * 10 // max(total, 1)  # a line per tenth of the files
        if step != shown["step"]:
            shown["step"] = step
            report(f"  copying {done:,} / {total:,} files, {size(copied_bytes)}")

    try:
        copied = copy_new_files(remote, cache, progress=show)
    finally:
        remote.close()
    report(
        f"copied {copied.copied} new files ({copied.copied_bytes:,} bytes) of {remote.location} "
        f"to {cache} in {time.perf_counter() - started:.1f} s ({copied.already} copied before)"
    )
    return cache


def _update(
    spark: SparkSession | SparkSettings,
    landing: Path,
    warehouse: Path,
    pii_key: PiiKey,
    options: RunOptions,
    rules: Mapping[str, Sequence[Expectation]],
    contracts: Mapping[str, Contract] | None,
    report: Callable[[str], None],
    display: Progress | None,
    update: UpdateLog,
) -> RunSummary:
    """The run's update, under the lock: the checks in plain Python, the decision whether
    there is anything new, then Spark."""
    key_registry.admit(warehouse, pii_key)
    adopted = repair.adopt_earlier_layout(warehouse)
    if adopted:
        report(adopted)
    for warning in preflight.check(landing, warehouse):
        report(warning)
    repair.remove_interrupted_writes(warehouse)
    files = run_state.landing_files(landing)
    if not options.full_refresh and run_state.is_up_to_date(landing, warehouse):
        try:
            unchanged = run_state.unchanged_summary(warehouse, update.update_id)
        except ValueError:  # a Delta log without row counts: let Spark count
            unchanged = None
        if unchanged is not None:
            report("nothing new since the last run: no Spark work")
            return unchanged
    small = run_state.new_bytes(landing, warehouse, files) < INTERPRETED_BELOW_BYTES
    with _session(spark, warehouse, options, small, report, update) as session:
        if contracts is None:
            contracts = contracts_for(session, rules)
        run = _Run(session, landing, warehouse, options, contracts, report, display, update)
        summary = run.execute(pii_key, files, small)
        compact_grown_tables(session, warehouse, report)
        return summary


@contextmanager
def _session(
    spark: SparkSession | SparkSettings,
    warehouse: Path,
    options: RunOptions,
    small: bool,
    report: Callable[[str], None],
    update: UpdateLog,
) -> Iterator[SparkSession]:
    """The session given, or one started from the settings (and stopped at the end)."""
    if isinstance(spark, SparkSession):
        yield spark
        return
    settings = dataclasses.replace(spark, short_lived=True) if small else spark
    log_file = warehouse / SPARK_LOG if options.spark_log else None
    report("starting Spark ..." + (f" (its log: {log_file})" if log_file else ""))
    starting = time.perf_counter()
    session = build_session(settings, log_file=log_file)
    update.spark_started(time.perf_counter() - starting)
    try:
        yield session
    finally:
        session.stop()


def _quietly(
    count: Callable[[], dict[str, cost.FlowCost]],
) -> dict[str, cost.FlowCost] | None:
    """What a failed stage cost, or None when it cannot be counted (the error that stopped
    the stage matters more than its counts)."""
    try:
        return count()
    except Exception:
        return None


NO_SPACE = "No space left on device"


@contextmanager
def _storage_errors(warehouse: Path) -> Iterator[None]:
    """Turn a full file system, however deep in Spark it was hit, into `StorageFullError`."""
    try:
        yield
    except Exception as exc:
        full = (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or NO_SPACE in str(exc)
        if not full:
            raise
        raise StorageFullError(
            f"A file system this run writes is full ({NO_SPACE}): the warehouse {warehouse}, "
            "or Spark's local directory (spark.local.dir, /tmp by default). The batch being "
            "written was not committed; every batch committed before it is kept. Free space "
            "(or move the warehouse to a larger disk) and run again: the run resumes from its "
            "checkpoints."
        ) from exc


@dataclass(frozen=True)
class _Run:
    """One run under the writer lock: its inputs, and where it reports."""

    spark: SparkSession
    landing: Path
    warehouse: Path
    options: RunOptions
    contracts: Mapping[str, Contract]
    report: Callable[[str], None]
    display: Progress | None
    update: UpdateLog
    flow_costs: dict[str, cost.FlowCost] = field(default_factory=dict)
    """What each flow cost the engine so far, added up stage by stage."""
    micro_batches: dict[str, int] = field(default_factory=dict)
    """The micro-batches each stage ran."""

    def execute(self, pii_key: PiiKey, files: tuple[str, ...], small: bool) -> RunSummary:
        """The stages, the saved state and the cost, once the run has decided to work."""
        work = cost.SparkWork(self.spark)
        versions_before = run_state.table_versions(self.warehouse)
        with _storage_errors(self.warehouse):
            before = row_counts(self.spark, self.warehouse)
            unseen = run_state.unseen_files(self.warehouse, files)
            seen = run_state.fingerprints(self.landing, files)
            with session_settings(self.spark, SMALL_INPUT if small else {}):
                self._stages(key_frame(self.spark, pii_key), unseen)
            versions = run_state.table_versions(self.warehouse)
            run_state.save_state(self.warehouse, run_state.RunState(seen, versions))
            after = row_counts(self.spark, self.warehouse)
        commits = [
            commit
            for table, version in versions.items()
            for commit in delta_log.commits(self.warehouse / table, versions_before[table], version)
        ]
        spent = cost.update_cost(
            work.by_flow(), self.flow_costs, commits, micro_batches=sum(self.micro_batches.values())
        )
        self.update.record_cost(spent)
        return run_state.summary(before, after, self.update.update_id, cost=spent)

    def _stage(self, stage: str, run: Callable[[BatchReport], None], files: int | None) -> None:
        """Run one stage, reporting its micro-batches and its flows' end to the event log.

        `run` is given the function to call after each micro-batch. Flows whose commits
        carry no batch markers (and every flow of a full refresh) report as they end the
        rows of the commits the stage made to their tables. `files`: the landing files the
        stage will read, for the display, when it reads files.
        """
        flows = flows_of_stage(stage)
        windowed = {f.output for f in flows if f.marker is None or stage == REFRESH_STAGE}
        tables = stage_tables(stage)
        before = {t: delta_log.table_version(self.warehouse / t) for t in tables}
        to_log = self.update.reporter(stage)
        checkpoint = Path(checkpoint_path(self.warehouse, stage))
        done = {"files": 0}
        reported: dict[str, set[int]] = {}
        work = cost.SparkWork(self.spark)

        def on_batch(
            batch_id: int,
            input_rows: Mapping[str, int | None],
            metrics: Mapping[str, Sequence[ExpectationMetric]],
        ) -> None:
            for name in input_rows:
                reported.setdefault(name, set()).add(batch_id)
            to_log(batch_id, input_rows, metrics)
            if self.display is not None and flows[0].name in input_rows:
                if files is not None:
                    done["files"] += run_state.batch_files(checkpoint, batch_id) or 0
                rows = input_rows.get(flows[0].name) or 0
                self.display.batch(stage, done["files"] if files is not None else None, files, rows)

        def batches() -> int:
            return len(set().union(*reported.values())) if reported else 0

        def spent() -> dict[str, cost.FlowCost]:
            after = {t: delta_log.table_version(self.warehouse / t) for t in tables}
            costs = cost.stage_costs(
                work.by_flow(),
                {
                    table: delta_log.commits(self.warehouse / table, before[table], version)
                    for table, version in after.items()
                },
                tables,
                micro_batches=batches(),
            )
            for name, flow_cost in costs.items():
                self.flow_costs[name] = self.flow_costs.get(name, cost.FlowCost()) + flow_cost
            self.micro_batches[stage] = batches()
            return costs

        if self.display is not None:
            self.display.stage(stage)
        try:
            with cost.flow(self.spark, flows[0].name):
                run(on_batch)
        except BaseException as error:
            status = CANCELED if isinstance(error, KeyboardInterrupt) else FAILED
            summary = None if status == CANCELED else error_summary(error)
            costs = _quietly(spent)
            # The flows that wrote their part of the batch the stage stopped in are done.
            stopped = run_state.highest_batch(checkpoint / "offsets")
            if stopped <= run_state.highest_batch(checkpoint / "commits"):
                stopped = -1
            ended = [f for f in flows if stopped in reported.get(f.name, ())]
            if ended:
                self.update.flows_ended(ended, COMPLETED, costs=costs)
            rest = [f for f in flows if f not in ended]
            self.update.flows_ended(rest, status, error=summary, costs=costs)
            raise
        finally:
            if self.display is not None:
                self.display.finish(stage)
        written = {
            table: delta_log.output_rows(
                self.warehouse / table, version, delta_log.table_version(self.warehouse / table)
            )
            for table, version in before.items()
            if table in windowed
        }
        self.update.flows_ended(flows, COMPLETED, output_rows=written, costs=spent())

    def _stages(self, keys: DataFrame, unseen: Sequence[str]) -> None:
        """The user dimension (facts join the versions valid at their time), then the events
        through bronze, silver and gold; a stage with no new file and no batch to finish
        starts no query."""
        spark, landing, warehouse, options = self.spark, self.landing, self.warehouse, self.options
        contracts = self.contracts

        def new_files(folder: str) -> int:
            return sum(1 for name in unseen if name.startswith(f"{folder}/"))

        def pending(stage: str, folder: str) -> bool:
            checkpoint = Path(checkpoint_path(warehouse, stage))
            unfinished = run_state.highest_batch(checkpoint / "offsets") > run_state.highest_batch(
                checkpoint / "commits"
            )
            return new_files(folder) > 0 or unfinished

        if (landing / USER_CHANGES_DIR).is_dir() and pending(USER_STREAM, USER_CHANGES_DIR):
            self.report(f"{GOLD_DIM_USER}: merging new user changes (SCD type 2)")
            self._stage(
                USER_STREAM,
                lambda on_batch: run_user_dimension(
                    spark,
                    landing=landing,
                    warehouse=warehouse,
                    keys=keys,
                    max_files_per_trigger=options.max_files_per_trigger,
                    contract=contracts.get(GOLD_DIM_USER),
                    on_batch=on_batch,
                ),
                new_files(USER_CHANGES_DIR),
            )
        if pending(EVENTS_STREAM, EVENTS_DIR):
            self.report(
                f"events: new files in {landing / EVENTS_DIR} through bronze, silver (a "
                f"{options.watermark_delay} watermark) and gold"
            )
            self._stage(
                EVENTS_STREAM,
                lambda on_batch: run_events(
                    spark,
                    landing=landing,
                    warehouse=warehouse,
                    keys=keys,
                    delay=parse_delay(options.watermark_delay),
                    max_files_per_trigger=options.max_files_per_trigger,
                    contracts=contracts,
                    on_batch=on_batch,
                ),
                new_files(EVENTS_DIR),
            )
        if options.full_refresh:
            self.report("gold: full refresh from silver and the user change log")
            self._stage(REFRESH_STAGE, lambda _: refresh_gold(spark, warehouse), None)
