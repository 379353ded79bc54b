"""What a run repairs under the writer lock before it starts, in plain Python: the files a
killed run left behind, and a warehouse written by an earlier version of the pipeline.

Checks that only look are `pipeline.run.preflight`; this module changes files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.errors import DamagedStateError
from pipeline.run import run_state
from pipeline.run.run_state import NEWEST_DIR
from pipeline.table_names import CHECKPOINTS_DIR, EVENTS_STREAM

__all__ = ["EARLIER_STREAMS", "adopt_earlier_layout", "remove_interrupted_writes"]

EARLIER_STREAMS = ("bronze", "silver", "gold")
"""The queries of warehouses written before the events stage: one per layer, the first of
which read the landing files (its checkpoint is the events stage's now)."""


def adopt_earlier_layout(warehouse: Path) -> str | None:
    """Move a warehouse written with one query per layer to the `events` query; say so.

    The landing files its `bronze` query read stay read (its checkpoint becomes the events
    query's), and silver's watermark carries over. That is only safe when its last run
    finished: then silver and gold hold everything bronze does. Hold the writer lock.

    Raises:
        DamagedStateError: the warehouse was left in the middle of a run.
    """
    checkpoints = warehouse / CHECKPOINTS_DIR
    bronze, events = checkpoints / EARLIER_STREAMS[0], checkpoints / EVENTS_STREAM
    if not bronze.is_dir() or events.exists():
        return None
    unfinished = [
        name
        for name in EARLIER_STREAMS
        if run_state.highest_batch(checkpoints / name / "offsets")
        > run_state.highest_batch(checkpoints / name / "commits")
    ]
    if unfinished or not run_state.last_run_finished(warehouse):
        raise DamagedStateError(
            f"The warehouse {warehouse} was written by an earlier version of this pipeline "
            "(one streaming query per layer), and its last run did not finish "
            f"({', '.join(unfinished) or 'its tables changed after it'}), so its layers may "
            "not hold the same events. Nothing was run. Way out: rebuild every table from the "
            f"landing files: move the warehouse aside (mv {warehouse} {warehouse}.earlier) "
            "and run again."
        )
    newest = sorted((int(p.name), p) for p in (checkpoints / "silver" / NEWEST_DIR).glob("[0-9]*"))
    bronze.rename(events)
    if newest:
        state = events / NEWEST_DIR
        state.mkdir(exist_ok=True)
        last = run_state.highest_batch(events / "commits")
        (state / str(last)).write_text(newest[-1][1].read_text(encoding="utf-8"), "utf-8")
    for name in EARLIER_STREAMS[1:]:
        shutil.rmtree(checkpoints / name, ignore_errors=True)
    return (
        f"adopted a warehouse written with one query per layer: its checkpoint {bronze} is "
        f"now {events}"
    )


def remove_interrupted_writes(warehouse: Path) -> list[Path]:
    """Delete the temporary files a killed run left in its checkpoints' logs; return them.

    Spark writes each offset and commit entry as `.<batch>.<uuid>.tmp` (and its `.crc`), then
    renames it into place. A run killed between the two leaves the temporary file behind, and a
    stream with no batch yet refuses to start beside it (STATE_STORE_CHECKPOINT_LOCATION_NOT_EMPTY).
    Nothing reads such a file; call this only while holding the writer lock.
    """
    removed = []
    checkpoints = warehouse / CHECKPOINTS_DIR
    for folder in sorted(checkpoints.glob("*/offsets")) + sorted(checkpoints.glob("*/commits")):
        for path in sorted(folder.glob(".*")):
            if path.is_file() and path.name.endswith((".tmp", ".tmp.crc")):
                path.unlink()
                removed.append(path)
    return removed
