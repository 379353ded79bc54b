"""Incremental gold equals a full refresh, whatever order events and user changes arrive in.

Hypothesis deals a small clickstream and its user change feed over several runs at random:
events arrive late (within the watermark or beyond it), sessions span runs, user changes
arrive before or after the events they concern (a late change splits a version and re-keys
facts already written). After the runs, every gold table the runner maintained batch by
batch must equal its full refresh from silver and the change log, row for row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from pipeline import table_names
from pipeline.config import PiiKey
from pipeline.run import runner
from scenarios import generator
from scenarios.scenario_invariants import gold_equals_full_refresh
from tests.budget import examples

EVENTS = 40
USERS = 4
MAX_RUNS = 3
EXAMPLES = examples(dev=2, ci=30)
"""Each example runs the pipeline two or three times (about 45 s): two in the test session,
thirty in `nox -s properties`; every scenario checks the same equality on its own data."""

_WORLD = {
    "events": generator.generate_events(events=EVENTS, seed=21, users=USERS),
    "changes": generator.generate_user_changes(seed=21, users=USERS),
}


@st.composite
def deliveries(draw: st.DrawFn) -> dict[str, Any]:
    """Which run each event and each user change arrives in, and the watermark delay."""
    runs = draw(st.integers(min_value=2, max_value=MAX_RUNS))
    events = _WORLD["events"]
    changes = _WORLD["changes"]
    return {
        "runs": runs,
        "event_runs": draw(
            st.lists(st.integers(0, runs - 1), min_size=len(events), max_size=len(events))
        ),
        "change_runs": draw(
            st.lists(st.integers(0, runs - 1), min_size=len(changes), max_size=len(changes))
        ),
        # a short watermark makes reordered events late; a long one lets sessions span runs
        "watermark": draw(st.sampled_from(["1 hour", "2 days"])),
    }


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))


@pytest.mark.property
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=deliveries())
def test_incremental_gold_equals_a_full_refresh(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory, pii_key: PiiKey, plan: Any
) -> None:
    root = tmp_path_factory.mktemp("incremental")
    landing, warehouse = root / "landing", root / "warehouse"
    (landing / table_names.EVENTS_DIR).mkdir(parents=True)
    options = runner.RunOptions(watermark_delay=plan["watermark"])
    for run in range(plan["runs"]):
        arriving = [
            e for e, r in zip(_WORLD["events"], plan["event_runs"], strict=True) if r == run
        ]
        changes = [
            c for c, r in zip(_WORLD["changes"], plan["change_runs"], strict=True) if r == run
        ]
        if arriving:
            _write(landing / table_names.EVENTS_DIR / f"run-{run}.json", arriving)
        if changes:
            _write(landing / table_names.USER_CHANGES_DIR / f"run-{run}.json", changes)
        runner.run_pipeline(
            spark, landing=landing, warehouse=warehouse, pii_key=pii_key, options=options
        )
    verdict = gold_equals_full_refresh(spark, warehouse)
    assert verdict.passed, verdict.evidence
