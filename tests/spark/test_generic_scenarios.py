"""The generic harness catches a fault a pipeline lets through: the orders example with its
drop rules removed, hit by corrupt lines, fails with the invariants named."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from scenarios.generic.harness_file import read_harness
from scenarios.generic.run import GenericRun, run_scenario

PROJECT = Path(__file__).resolve().parents[2]
ORDERS = PROJECT / "examples" / "orders"
DROP_RULES = """@dp.expect_all_or_drop(
    {
        "has_order_id": "order_id IS NOT NULL",
        "positive_quantity": "quantity > 0",
        "billable_amount": f"amount > {min_amount}",
    }
)
"""


def test_an_example_whose_drop_rules_are_removed_fails_with_the_invariants_named(
    spark: SparkSession, tmp_path: Path
) -> None:
    source = (ORDERS / "pipeline.py").read_text(encoding="utf-8")
    assert DROP_RULES in source  # the example still has the rules this test removes
    weakened = tmp_path / "pipeline.py"
    weakened.write_text(source.replace(DROP_RULES, ""), encoding="utf-8")
    run = GenericRun(spark, (weakened,), read_harness(ORDERS / "harness.yml"), seed=7, records=12)

    result = run_scenario(run, "corrupt", tmp_path / "corrupt")

    failed = {v.name: v.evidence for v in result.verdicts if not v.passed}
    assert "both updates completed" in failed  # the MV's expect_or_fail stopped update 2
    assert result.error is None  # a failed update is judged, not a crash of the harness
    assert "revenue_is_positive" in failed["both updates completed"]
    assert failed["every row of orders_clean has its key (order_id)"].startswith("1 row(s)")
    assert "the incremental result equals a full refresh" not in failed
