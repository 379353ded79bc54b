"""The loopback cluster's helpers that need no JVM: ports and the memory of a process tree."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

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
