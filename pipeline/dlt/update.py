"""`clickstream dlt run`: one update of a user's pipeline, recorded in the warehouse's event log.

In order: the sources are read and checked (what cannot run here stops everything, before
Spark starts); an update with the same sources and settings whose input folders hold no new
file is recorded and ends there, without Spark (`pipeline.dlt.state`); otherwise the sources
are executed with the harness's `dlt` module once Spark has started (their top level sees
`spark.conf` from `--conf`), and every dataset is updated (`pipeline.dlt.runtime`), inside
the warehouse's writer lock and a recorded update (`COMPLETED`, `FAILED` with the error, or
`CANCELED`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.dlt.api import Declarations
from pipeline.dlt.loader import checked_sources, load_sources
from pipeline.dlt.runtime import STATE_DIR, FlowResult, Runtime, reset
from pipeline.dlt.spark_proxy import PipelineSpark, dataset_name
from pipeline.dlt.state import digest, load_state, nothing_new, save_state
from pipeline.errors import ConfigurationError
from pipeline.observe.event_log import COMPLETED, new_update_id, recorded_update
from pipeline.run.cost import FlowCost, UpdateCost
from pipeline.run.session import session_settings
from pipeline.run.writer_lock import writer_lock

__all__ = ["RUNNER", "UpdateOutcome", "run_update"]

RUNNER = "clickstream dlt run"
EVOLVING = {"spark.databricks.delta.schema.autoMerge.enabled": "true"}
"""Every Delta write of an update may add columns: a source's schema evolves (Auto Loader's
`addNewColumns`), and the tables and change logs downstream take the new columns, as
Lakeflow's do."""


@dataclass
class UpdateOutcome:
    """What an update did: its id, whether it found nothing new, and each flow's result."""

    update_id: str
    nothing_new: bool = False
    flows: list[FlowResult] = field(default_factory=list)
    declarations: Declarations | None = None
    """What the sources declared (None: nothing new, the sources were not run)."""


def _checked_paths(sources: Sequence[Path]) -> list[Path]:
    if not sources:
        raise ConfigurationError("give at least one SOURCE.py: the pipeline's Python source")
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        raise ConfigurationError(
            f"no such source file: {', '.join(missing)}; give the .py files of the pipeline "
            "(a notebook exported as source works as it is)"
        )
    return [p.resolve() for p in sources]


def run_update(
    sources: Sequence[Path],
    warehouse: Path,
    settings: Mapping[str, str],
    *,
    start_spark: Callable[[], Any],
    full_refresh: bool = False,
    say: Callable[[str], None] = lambda _line: None,
    wait_seconds: float = 0.0,
) -> UpdateOutcome:
    """Run one update of the pipeline in `sources` into `warehouse` (see the module
    docstring). `start_spark` is called once, only when there is work to do and the sources
    passed their checks.

    Raises:
        UnsupportedFeatureError: a source uses what cannot run here (nothing ran).
        ConfigurationError: a missing source, a missing setting, inconsistent declarations.
        ExpectationViolationError: a row failed an `expect_or_fail` rule.
    """
    paths = _checked_paths(sources)
    run_digest = digest(paths, settings)
    state_dir = warehouse / STATE_DIR
    outcome = UpdateOutcome(new_update_id())
    with writer_lock(warehouse, wait_seconds=wait_seconds, notify=say):
        if not full_refresh and nothing_new(load_state(state_dir), run_digest):
            with recorded_update(
                warehouse, outcome.update_id, flows=(), full_refresh=False, runner=RUNNER
            ):
                say("nothing new since the last update (same sources, settings, files): no Spark")
            outcome.nothing_new = True
            return outcome
        checked_sources(paths)  # what cannot run here stops everything before Spark starts
        values = dict(settings)
        starting = time.perf_counter()
        real = start_spark()  # a source's top level may build columns (col(...) needs Spark)
        start_seconds = time.perf_counter() - starting
        for key, value in values.items():
            real.conf.set(key, value)
        spark = PipelineSpark(values, lambda: real)
        holder: list[Runtime] = []
        declarations = load_sources(
            paths,
            spark,
            values,
            read=lambda name: holder[0].read(dataset_name(name)),
            read_stream=lambda name: holder[0].read_stream(dataset_name(name)),
            warn=say,
        )
        outcome.declarations = declarations
        if full_refresh:
            reset(warehouse, declarations)
        with recorded_update(
            warehouse, outcome.update_id, flows=(), full_refresh=full_refresh, runner=RUNNER
        ) as update:
            update.spark_started(start_seconds)

            def report(result: FlowResult) -> None:
                outcome.flows.append(result)
                update.flows_ended(
                    [result.flow],
                    COMPLETED,
                    output_rows={result.flow.output: result.output_rows},
                    quality={result.flow.name: (result.metrics, result.dropped)},
                    costs={result.flow.name: result.cost},
                )
                spent = sum((flow.cost for flow in outcome.flows), FlowCost())
                update.record_cost(UpdateCost(total=spent))

            runtime = Runtime(
                real,
                warehouse,
                declarations,
                define=lambda flow: update.defined([flow]),
                report=report,
                say=say,
            )
            holder.append(runtime)
            spark.bind(runtime)
            with session_settings(real, EVOLVING):
                runtime.update_all()
        save_state(state_dir, run_digest, runtime.watched)
    return outcome
