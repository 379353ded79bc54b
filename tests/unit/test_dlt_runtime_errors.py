"""How the runtime names what stopped a flow (pure text handling, no JVM)."""

from __future__ import annotations

from pipeline.dlt.runtime import _raised_in_batch, violation
from pipeline.errors import ChangeFeedError

PY4J_REPORT = """[STREAM_FAILED] Query [id = 1] terminated with exception: [FOREACH_BATCH_USER_
FUNCTION_ERROR]
Traceback (most recent call last):
  File "/x/py4j/clientserver.py", line 644, in _call_proxy
    table = apply_changes(history, **options)
pipeline.errors.ChangeFeedError: changes with a null key column among ['user_key'] cannot be applied
"""


def test_an_error_of_ours_raised_in_a_batch_comes_back_as_itself() -> None:
    found = _raised_in_batch(RuntimeError(PY4J_REPORT))
    assert isinstance(found, ChangeFeedError)
    assert str(found) == "changes with a null key column among ['user_key'] cannot be applied"


def test_other_errors_are_left_as_they_are() -> None:
    assert _raised_in_batch(RuntimeError("pipeline.errors.NoSuchError: x")) is None
    assert _raised_in_batch(RuntimeError("java.lang.OutOfMemoryError: heap")) is None


def test_a_violation_names_dataset_and_rule_without_the_sql_state() -> None:
    text = "[USER_RAISED_EXCEPTION] EXPECTATION_VIOLATION: daily_revenue: positive SQLSTATE: P0001"
    assert violation(RuntimeError(text)) == "daily_revenue: positive"
