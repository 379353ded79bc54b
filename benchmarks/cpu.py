"""CPU time of the benchmark process and of the local Spark JVM: steadier than wall time here.

On a shared machine a neighbour's burst stretches wall time (our threads wait for a core) far
more than the CPU time our work needs. The verdict therefore judges CPU seconds: this Python
process (the driver side of Spark, orjson, DuckDB's threads, the generator) plus the local
Spark JVM, where the executors run. Linux `/proc` only; elsewhere the JVM adds nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["cpu_seconds", "watch_jvm"]

_watched: set[int] = set()


def watch_jvm(pid: int) -> None:
    """Count the CPU time of the JVM with this process id too."""
    _watched.add(pid)


def _process_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and the watched JVMs (user + system)."""
    return time.process_time() + sum(_process_cpu(pid) for pid in _watched)
