"""What a real run costs the engine: counted per flow, adding up, and caught when it grows."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from benchmarks import cost_gate
from pipeline import table_names
from pipeline.config import PiiKey
from pipeline.observe import event_log
from pipeline.observe.flows import FLOWS
from pipeline.observe.history import updates
from pipeline.run import runner
from pipeline.run.cost import FlowCost
from pipeline.storage import delta_log
from scenarios import generator

INJECTED = table_names.GOLD_DIM_DEVICE


def _first_run(spark: SparkSession, root: Path, pii_key: PiiKey) -> Path:
    landing, warehouse = root / "landing", root / "warehouse"
    generator.write_landing(landing, events=60, seed=31)
    runner.run_pipeline(spark, landing=landing, warehouse=warehouse, pii_key=pii_key)
    return warehouse


def test_a_runs_engine_work_is_counted_per_flow_and_adds_up(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey
) -> None:
    warehouse = _first_run(spark, tmp_path, pii_key)
    [update] = updates(event_log.read_events(warehouse))
    assert update.cost is not None
    total, outside = update.cost.total, update.cost.outside_flows
    flows = {name: run.cost or FlowCost() for name, run in update.flows.items()}
    assert set(flows) == {flow.name for flow in FLOWS}
    # Every job, execution and commit is some flow's, or counted as outside them.
    assert total.spark_jobs == sum(f.spark_jobs for f in flows.values()) + outside.spark_jobs
    assert total.sql_executions == (
        sum(f.sql_executions for f in flows.values()) + outside.sql_executions
    )
    assert total.delta_commits == sum(f.delta_commits for f in flows.values())
    # A flow's commits are those of its tables' logs (the user dimension's: its change log).
    for table in table_names.TABLES:
        logged = (delta_log.table_version(warehouse / table) or 0) + 1
        if table == table_names.GOLD_DIM_USER:
            logged += (
                delta_log.table_version(warehouse / table_names.GOLD_DIM_USER_CHANGES) or 0
            ) + 1
        assert flows[table].delta_commits == logged, table
    assert all(f.spark_jobs > 0 for f in flows.values())
    assert total.files_written > 0 and total.bytes_written > 0 and total.micro_batches == 2
    assert update.cost.event_log_commits >= 3


def test_one_extra_write_in_one_flow_fails_the_gate_naming_that_flow(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey
) -> None:
    def counts(warehouse: Path) -> cost_gate.Counts:
        [update] = updates(event_log.read_events(warehouse))
        return {
            "first": {
                name: cost_gate.counts_of(run.cost or FlowCost())
                for name, run in update.flows.items()
            }
        }

    baseline = cost_gate.baseline_document([counts(_first_run(spark, tmp_path / "a", pii_key))])
    injected_warehouse = tmp_path / "b" / "warehouse"
    with cost_gate.extra_write(INJECTED, injected_warehouse):
        warehouse = _first_run(spark, tmp_path / "b", pii_key)
    verdict = cost_gate.compare(baseline, [counts(warehouse)])
    assert not verdict.passed
    commits = [line for line in verdict.grew if "delta commits" in line]
    assert commits == [
        f"first run, flow {INJECTED}: 2 delta commits, baseline 1 (+1); "
        "operations that grew: WRITE 1 -> 2"
    ]
    assert any(line.startswith(f"first run, flow {INJECTED}: ") for line in verdict.grew)
