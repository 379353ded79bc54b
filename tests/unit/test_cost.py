"""What a run costs the engine: attribution to flows, operations, and the sums (no JVM)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.run import cost
from pipeline.run.cost import FlowCost, UpdateCost
from pipeline.storage import delta_log
from pipeline.storage.delta_log import Commit


@pytest.mark.parametrize(
    ("description", "flow"),
    [
        ("flow=gold_dim_page", "gold_dim_page"),
        ("Delta: flow=silver_events : Filtering files for query", "silver_events"),
        # a streaming query named by its flow: Spark starts each batch's description with it
        ("flow=bronze_events\nid = 4555f25c-860c\nrunId = a2881c9c\nbatch = 1", "bronze_events"),
        ("collect at /work/pipeline/run/gold_stage.py:331", None),
        (None, None),
    ],
)
def test_a_job_belongs_to_the_flow_its_description_names(
    description: str | None, flow: str | None
) -> None:
    assert cost.flow_of(description) == flow


@pytest.mark.parametrize(
    ("description", "call_site", "expected"),
    [
        (
            "Delta: flow=silver_events : Compute snapshot for version: 12",
            "x at y.scala:1",
            "Delta: Compute snapshot for version: N",
        ),
        (
            "flow=gold_dim_user\nid = 17-ab\nrunId = 9f-cd\nbatch = 1 - MERGE operation - "
            "scanning files for matches",
            "x at y.scala:1",
            "MERGE operation - scanning files for matches",
        ),
        (
            "flow=gold_sessions",
            "collect at /work/main/pipeline/run/gold_stage.py:331",
            "collect at gold_stage.py",
        ),
        (None, "save at NativeMethodAccessorImpl.java:0", "save at NativeMethodAccessorImpl.java"),
    ],
)
def test_an_operation_names_what_a_job_did_without_run_specific_parts(
    description: str | None, call_site: str, expected: str
) -> None:
    assert cost.operation(description, call_site) == expected


def test_costs_add_up_and_survive_the_event_log() -> None:
    one = FlowCost(spark_jobs=3, delta_commits=1, jobs_by_operation={"a": 2, "b": 1})
    two = FlowCost(spark_jobs=2, files_written=4, jobs_by_operation={"a": 1})
    both = one + two
    assert (both.spark_jobs, both.delta_commits, both.files_written) == (5, 1, 4)
    assert both.jobs_by_operation == {"a": 3, "b": 1}
    assert FlowCost.from_json(json.loads(json.dumps(both.to_json()))) == both
    update = UpdateCost(total=both, outside_flows=two, spark_start_seconds=4.5)
    assert UpdateCost.from_json(json.loads(json.dumps(update.to_json()))) == update
    assert update.summary().startswith("5 Spark jobs, 1 Delta commits")
    assert "Spark started in 4.5 s" in update.summary()


def test_a_stage_gives_each_flow_its_jobs_its_tables_commits_and_the_batches() -> None:
    spark_by_flow = {
        "gold_dim_user": FlowCost(spark_jobs=7, sql_executions=5),
        "bronze_events": FlowCost(spark_jobs=99),  # another stage's flow, running beside it
        None: FlowCost(spark_jobs=1),
    }
    commits = {
        "gold_dim_user": [Commit("MERGE", 1, 100)],
        "gold_dim_user__changes": [Commit("WRITE", 1, 50)],
        "gold_fact_events": [],
    }
    tables = {
        "gold_dim_user": "gold_dim_user",
        "gold_dim_user__changes": "gold_dim_user",
        "gold_fact_events": "gold_dim_user",
    }
    costs = cost.stage_costs(spark_by_flow, commits, tables, micro_batches=2)
    assert set(costs) == {"gold_dim_user"}
    spent = costs["gold_dim_user"]
    assert (spent.spark_jobs, spent.delta_commits, spent.bytes_written) == (7, 2, 150)
    assert spent.commits_by_operation == {"MERGE": 1, "WRITE": 1}
    assert spent.micro_batches == 2


def test_an_update_counts_what_ran_outside_every_flow() -> None:
    flows = {
        "bronze_events": FlowCost(spark_jobs=4, delta_commits=1, commits_by_operation={"WRITE": 1})
    }
    spark_by_flow = {"bronze_events": FlowCost(spark_jobs=4), None: FlowCost(spark_jobs=2)}
    commits = [Commit("WRITE", 1, 10), Commit("OPTIMIZE", 1, 5)]
    update = cost.update_cost(spark_by_flow, flows, commits, micro_batches=3)
    assert (update.total.spark_jobs, update.total.delta_commits) == (6, 2)
    assert update.total.micro_batches == 3
    assert update.outside_flows.spark_jobs == 2
    assert update.outside_flows.delta_commits == 1
    assert update.outside_flows.commits_by_operation == {"OPTIMIZE": 1}


def test_a_commit_counts_the_data_files_it_wrote_not_those_a_deletion_vector_marks(
    tmp_path: Path,
) -> None:
    log = tmp_path / "_delta_log"
    log.mkdir()
    actions = [
        {"commitInfo": {"operation": "MERGE"}},
        {"add": {"path": "new.parquet", "size": 300}},
        # an existing file marked by a deletion vector: removed and added again, not written
        {"remove": {"path": "old.parquet"}},
        {"add": {"path": "old.parquet", "size": 900, "deletionVector": {"cardinality": 1}}},
    ]
    (log / f"{0:020d}.json").write_text("\n".join(json.dumps(a) for a in actions))
    assert delta_log.commits(tmp_path, None, 0) == [Commit("MERGE", 1, 300)]
    assert delta_log.commits(tmp_path, 0, 0) == []
    assert delta_log.commits(tmp_path, None, None) == []
