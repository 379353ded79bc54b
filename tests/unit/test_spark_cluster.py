"""The cluster harness without a JVM: ports, the memory of a process tree, options, the report."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scenarios import cluster
from scenarios.cluster import Difference, Mode
from scenarios.spark_cluster import free_port, tree_rss_bytes


def test_a_free_port_can_be_bound_on_loopback() -> None:
    port = free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))


def test_the_memory_of_a_tree_counts_its_children() -> None:
    alone = tree_rss_bytes(os.getpid())
    assert alone > 0
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; data = bytearray(64 << 20); sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )
    try:
        # The child holds 64 MB once it has started; wait for it to be counted.
        for _ in range(100):
            if tree_rss_bytes(os.getpid()) > alone + (48 << 20):
                break
            time.sleep(0.05)
        assert tree_rss_bytes(os.getpid()) > alone + (48 << 20)
        assert tree_rss_bytes(child.pid) > 48 << 20
    finally:
        child.communicate(b"")
    assert tree_rss_bytes(2**22 + 12345) == 0  # no such process


def test_the_report_names_every_table_that_differs_and_says_failed() -> None:
    modes = {
        "local": Mode("local", Path("l"), seconds=[10.0, 5.0], peak_rss=2 << 30),
        "standalone": Mode("standalone", Path("s"), seconds=[20.0, 10.0], peak_rss=3 << 30),
    }
    args = cluster._parser().parse_args(["--workers", "1"])
    args.events = 600  # one size: what `_each_size` passes on
    equal = [Difference("standalone", "bronze_events", 600, 600, 0, 0)]
    report = cluster.render(modes, equal, "", args, 60.0)
    assert "| standalone | 20.0 | 10.0 | 2.00 | 3,072 |" in report
    assert "1 Worker of 1 core" in report
    assert "Every table equals the local run's, row for row, in: standalone." in report
    assert "FAILED" not in report
    differing = [*equal, Difference("standalone", "silver_events", 600, 600, 1, 1)]
    report = cluster.render(modes, differing, "", args, 60.0)
    assert "| standalone | silver_events | 600 | 600 | 1 | 1 |" in report
    assert "**FAILED**: 1 tables differ" in report


def test_sizes_and_workers_are_checked_before_anything_starts() -> None:
    assert cluster._parser().parse_args(["--events", "100_000,1000000"]).events == [
        100_000,
        1_000_000,
    ]
    for bad in (["--events", "10"], ["--events", "many"], ["--workers", "0"]):
        with pytest.raises(SystemExit):
            cluster._parser().parse_args(bad)
