"""Whether an update has anything to do, decided without Spark.

After each completed update, `<warehouse>/_dlt/state.json` keeps what it ran: a digest of
the sources' text and the `--conf` settings, and the listing (name, size, modification time)
of every folder its queries read files from. The next update with the same sources and
settings, whose folders list the same files, has nothing new: it is recorded in the event log
and starts no Spark at all. Anything else (a new or changed file, an edited source, another
setting, `--full-refresh`) runs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunState", "digest", "listing", "load_state", "nothing_new", "save_state"]

STATE_FILE = "state.json"


@dataclass(frozen=True)
class RunState:
    """What the last completed update ran."""

    digest: str
    inputs: dict[str, list[list[object]]]
    """Per folder read, its files: [relative path, size, modification time in ns]."""


def digest(sources: Sequence[Path], settings: Mapping[str, str]) -> str:
    """The sources' text and the settings, as one hash."""
    hashed = hashlib.sha256()
    for path in sources:
        hashed.update(str(path.resolve()).encode() + b"\0" + path.read_bytes() + b"\0")
    hashed.update(json.dumps(sorted(settings.items())).encode())
    return hashed.hexdigest()


def listing(folder: str) -> list[list[object]]:
    """The data files under `folder` (hidden and `_` names skipped, as Spark skips them)."""
    root = Path(folder)
    if root.is_file():
        stat = root.stat()
        return [[root.name, stat.st_size, stat.st_mtime_ns]]
    found: list[list[object]] = []
    for directory, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith((".", "_")))
        for name in sorted(files):
            if name.startswith((".", "_")):
                continue
            stat = (Path(directory) / name).stat()
            relative = str((Path(directory) / name).relative_to(root))
            found.append([relative, stat.st_size, stat.st_mtime_ns])
    return found


def _file(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def load_state(state_dir: Path) -> RunState | None:
    """The last completed update's state, or None (no update yet, or a full refresh since)."""
    path = _file(state_dir)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return RunState(str(data["digest"]), dict(data["inputs"]))


def save_state(state_dir: Path, run_digest: str, folders: Iterable[str]) -> None:
    """Keep what this update ran (written whole, then renamed)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    data = {"digest": run_digest, "inputs": {f: listing(f) for f in sorted(folders)}}
    partial = _file(state_dir).with_suffix(".partial")
    partial.write_text(json.dumps(data, indent=1))
    partial.replace(_file(state_dir))


def nothing_new(state: RunState | None, run_digest: str) -> bool:
    """Whether an update with `run_digest` would find nothing new since `state`."""
    if state is None or state.digest != run_digest:
        return False
    return all(listing(folder) == files for folder, files in state.inputs.items())
