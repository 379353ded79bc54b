"""The Delta log read in plain Python: versions, row counts, batch markers (no JVM).

The logs here are written by hand in the Delta protocol's format; tests/spark/test_tables.py
checks the same reader against logs Delta itself wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.storage import delta_log


def _add(path: str, rows: int | None, dv: int = 0) -> dict[str, Any]:
    add: dict[str, Any] = {"path": path, "size": 1, "dataChange": True}
    if rows is not None:
        add["stats"] = json.dumps({"numRecords": rows})
    if dv:
        add["deletionVector"] = {
            "storageType": "u",
            "pathOrInlineDv": f"dv-{path}",
            "offset": 1,
            "sizeInBytes": 10,
            "cardinality": dv,
        }
    return add


def _commit(table: Path, version: int, *actions: dict[str, Any], marker: str | None = None) -> None:
    log = table / delta_log.LOG_DIR
    log.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"operation": "WRITE"}
    if marker is not None:
        info["userMetadata"] = marker
    lines = [{"commitInfo": info}, *actions]
    (log / f"{version:020d}.json").write_text("\n".join(json.dumps(a) for a in lines) + "\n")


def test_a_missing_table_has_no_version_and_counts_zero(tmp_path: Path) -> None:
    assert delta_log.table_version(tmp_path / "nothing") is None
    assert delta_log.read_state(tmp_path / "nothing") is None
    assert delta_log.row_count(tmp_path / "nothing") == 0


def test_rows_are_the_live_files_statistics_minus_deleted_rows(tmp_path: Path) -> None:
    table = tmp_path / "t"
    _commit(table, 0, {"add": _add("a", 10)}, {"add": _add("b", 5)})
    _commit(table, 1, {"remove": {"path": "a"}}, {"add": _add("c", 7)})
    # a delete marks 2 rows of c: the file is removed and added again with a deletion vector
    removed_c = {"path": "c", "deletionVector": None}
    _commit(table, 2, {"remove": removed_c}, {"add": _add("c", 7, dv=2)})
    assert delta_log.table_version(table) == 2
    assert delta_log.row_count(table) == 5 + 7 - 2


def test_a_file_without_statistics_makes_the_count_unknown(tmp_path: Path) -> None:
    table = tmp_path / "t"
    _commit(table, 0, {"add": _add("a", 10)}, {"add": _add("b", None)})
    assert delta_log.read_state(table) == delta_log.TableState(0, None)


def test_counts_start_from_the_newest_checkpoint(tmp_path: Path) -> None:
    table = tmp_path / "t"
    # versions 0-1 were cleaned up; the checkpoint at 1 holds their live files
    log = table / delta_log.LOG_DIR
    log.mkdir(parents=True)
    adds = pa.array(
        [_add("a", 4), None, _add("b", 6)],
        type=pa.struct(
            [
                ("path", pa.string()),
                ("size", pa.int64()),
                ("dataChange", pa.bool_()),
                ("stats", pa.string()),
            ]
        ),
    )
    pq.write_table(pa.table({"add": adds}), log / f"{1:020d}.checkpoint.parquet")
    _commit(table, 2, {"add": _add("c", 3)})
    assert delta_log.row_count(table) == 4 + 6 + 3


def test_a_gap_in_the_commits_without_a_checkpoint_makes_the_count_unknown(
    tmp_path: Path,
) -> None:
    table = tmp_path / "t"
    _commit(table, 3, {"add": _add("a", 1)})
    assert delta_log.read_state(table) == delta_log.TableState(3, None)


def test_the_newest_marker_of_a_writer_names_its_last_batch(tmp_path: Path) -> None:
    table = tmp_path / "t"
    _commit(table, 0, {"add": _add("a", 1)}, marker=delta_log.batch_marker("silver", 0))
    _commit(table, 1, {"add": _add("b", 1)}, marker=delta_log.batch_marker("bronze", 7))
    _commit(table, 2, {"add": _add("c", 1)}, marker=delta_log.batch_marker("silver", 1))
    _commit(table, 3, {"add": _add("d", 1)})  # another writer, no marker
    assert delta_log.committed_batch(table, "silver") == 1
    assert delta_log.committed_batch(table, "bronze") == 7
    assert delta_log.committed_batch(table, "gold") is None
    assert delta_log.version_before(table, "silver", 1) == 1
    assert delta_log.version_before(table, "silver", 2) is None  # not written yet
    assert delta_log.version_before(table, "bronze", 7) == 0


def test_markers_that_are_not_ours_are_ignored(tmp_path: Path) -> None:
    table = tmp_path / "t"
    _commit(table, 0, {"add": _add("a", 1)}, marker="written by a notebook")
    _commit(table, 1, {"add": _add("b", 1)}, marker=json.dumps({"clickstream": "odd"}))
    assert delta_log.committed_batch(table, "silver") is None


def test_each_version_reads_its_files_with_their_deletion_vectors(tmp_path: Path) -> None:
    table = tmp_path / "t"
    _commit(table, 0)
    _commit(table, 1, {"add": _add("a", 10)}, {"add": _add("b", 5)})
    # a delete marks 2 rows of a: the same path, read with a deletion vector, is other rows
    _commit(table, 2, {"add": _add("a", 10, dv=2)}, {"remove": {"path": "a"}})
    _commit(table, 3, {"remove": {"path": "b"}})
    versions = delta_log.data_files_by_version(table)
    assert versions is not None
    a, a_deleted, b = ("a", "@"), ("a", "udv-a@1"), ("b", "@")
    assert versions == {
        0: frozenset(),
        1: frozenset({a, b}),
        2: frozenset({a_deleted, b}),
        3: frozenset({a_deleted}),
    }
    (table / delta_log.LOG_DIR / f"{1:020d}.json").unlink()  # cleaned up: not replayable
    assert delta_log.data_files_by_version(table) is None
