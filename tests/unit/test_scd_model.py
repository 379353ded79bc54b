"""The reference model on its own: hand-worked examples, then properties it must have."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scenarios.scd_model import AmbiguousChangesError, Change, Version, scd1, scd2, scd2_problems
from tests.change_feeds import FeedRow, Layout, feeds, layouts, model_changes

K = ("k",)


def upsert(sequence: int, value: object, other: object = None) -> Change:
    return Change(K, sequence, "upsert", (("v", value), ("w", other)))


def delete(sequence: int) -> Change:
    return Change(K, sequence, "delete")


def spans(versions: list[Version]) -> list[tuple[object, object, object]]:
    return [(v.values["v"], v.start, v.end) for v in versions]


def test_versions_follow_sequence_order_not_arrival_order() -> None:
    changes = [upsert(3, "y"), upsert(1, "x"), upsert(2, "x")]  # 2 repeats the version at 1
    assert spans(scd2(changes)) == [("x", 1, 3), ("y", 3, None)]


def test_a_delete_closes_the_version_and_a_later_upsert_opens_one() -> None:
    changes = [upsert(1, "x"), delete(2), delete(3), upsert(4, "x")]
    assert spans(scd2(changes)) == [("x", 1, 2), ("x", 4, None)]


def test_deleting_an_absent_key_does_nothing() -> None:
    assert scd2([delete(1)]) == []
    assert scd1([delete(1), upsert(2, "x")]) == {K: {"v": "x", "w": None}}


def test_untracked_columns_change_in_place() -> None:
    versions = scd2([upsert(1, "x", "a"), upsert(2, "x", "b"), upsert(3, "y", "c")], tracked=["v"])
    assert [(v.values, v.start, v.end) for v in versions] == [
        ({"v": "x", "w": "b"}, 1, 3),
        ({"v": "y", "w": "c"}, 3, None),
    ]


def test_null_updates_keep_current_values_until_a_delete() -> None:
    changes = [upsert(1, "x", "a"), upsert(2, None, "b"), delete(3), upsert(4, None, "c")]
    versions = scd2(changes, ignore_null_updates=True)
    assert [(v.values, v.start, v.end) for v in versions] == [
        ({"v": "x", "w": "a"}, 1, 2),
        ({"v": "x", "w": "b"}, 2, 3),
        ({"v": None, "w": "c"}, 4, None),
    ]


def test_a_truncate_empties_the_scd1_table_at_its_sequence_value() -> None:
    other = ("j",)
    changes = [
        upsert(1, "x"),
        Change(other, 2, "upsert", (("v", "y"), ("w", None))),
        Change((), 3, "truncate"),
        upsert(4, "z"),
    ]
    assert scd1(changes) == {K: {"v": "z", "w": None}}


def test_repeated_changes_count_once_and_conflicting_ones_are_rejected() -> None:
    assert spans(scd2([upsert(1, "x"), upsert(1, "x")])) == [("x", 1, None)]
    assert scd2([delete(1), Change(K, 1, "delete", (("v", "noise"),))]) == []
    with pytest.raises(AmbiguousChangesError):
        scd2([upsert(1, "x"), upsert(1, "y")])
    with pytest.raises(AmbiguousChangesError):
        scd1([upsert(1, "x"), Change((), 1, "truncate")])


def test_the_invariant_checker_catches_broken_histories() -> None:
    changes = [delete(2)]
    assert scd2_problems([Version(K, {}, 1, 2), Version(K, {}, 2, None)], changes) == []
    assert scd2_problems([Version(K, {}, 1, None), Version(K, {}, 2, None)], changes)
    assert scd2_problems([Version(K, {}, 1, 3), Version(K, {}, 2, None)], changes)
    assert scd2_problems([Version(K, {}, 1, 2), Version(K, {}, 4, None)], [])
    assert scd2_problems([Version(K, {}, 2, 2)], [delete(2)])


def _rows(versions: list[Version]) -> list[tuple[object, ...]]:
    return sorted(((v.key, tuple(v.values.items()), v.start, v.end) for v in versions), key=repr)


@pytest.mark.property
@given(feeds(), layouts(scd_types=[2]))
def test_model_histories_keep_the_scd2_invariants(rows: list[FeedRow], layout: Layout) -> None:
    changes = model_changes(rows, layout)
    versions = scd2(changes, tracked=layout.tracked, ignore_null_updates=layout.ignore_null_updates)
    assert scd2_problems(versions, changes) == []


@pytest.mark.property
@given(feeds(), layouts(scd_types=[2]), st.data())
def test_model_ignores_arrival_order(
    rows: list[FeedRow], layout: Layout, data: st.DataObject
) -> None:
    changes = model_changes(rows, layout)
    shuffled = data.draw(st.permutations(changes))
    tracked, fill = layout.tracked, layout.ignore_null_updates
    assert _rows(scd2(changes, tracked=tracked, ignore_null_updates=fill)) == _rows(
        scd2(shuffled, tracked=tracked, ignore_null_updates=fill)
    )


@pytest.mark.property
@given(feeds(), layouts(scd_types=[2]))
def test_scd1_rows_are_the_open_scd2_versions(rows: list[FeedRow], layout: Layout) -> None:
    changes = model_changes(rows, layout)
    versions = scd2(changes, tracked=layout.tracked, ignore_null_updates=layout.ignore_null_updates)
    current = {v.key: v.values for v in versions if v.end is None}
    assert scd1(changes, ignore_null_updates=layout.ignore_null_updates) == current
