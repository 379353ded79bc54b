"""A Spark standalone cluster and a Spark Connect server on loopback, for the cluster harness.

The pyspark wheel ships Spark's jars and `bin/spark-class`, but not the `sbin/start-*.sh`
scripts, so each process is started here with `spark-class` (the Master and the Workers) or
`spark-submit` (the Spark Connect server), in the foreground of a process group of its own:
stopping a group stops the JVM and what it started (a Worker's executors). Every process binds
127.0.0.1 and logs to a file of its own; each is polled until it answers (the Master's and a
Worker's JSON status page, the Connect server's port) before the next starts. `LocalCluster`
is a context manager that stops every process by its pid at the end, also on failure.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import pyspark

from pipeline.config import subprocess_environment
from pipeline.errors import ClickstreamError

__all__ = ["ClusterStartError", "LocalCluster", "Process", "free_port", "tree_rss_bytes"]

SPARK_HOME = Path(pyspark.__file__).parent
CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 15.0
POLL_SECONDS = 0.5


class ClusterStartError(ClickstreamError, RuntimeError):
    """Raised when a cluster process exits or does not answer in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Process:
    """One JVM of the cluster: its command, log file and running process."""

    name: str
    log: Path
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        if not self.log.is_file():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the process's group: the JVM and every process it started."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after `STOP_TIMEOUT_SECONDS`; wait for the process."""
        self.kill(signal.SIGTERM)
        try:
            self.popen.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.popen.wait()
        self.kill(signal.SIGKILL)  # what the JVM started and left behind


@dataclass
class LocalCluster:
    """A standalone Master, `workers` Workers and, when `connect_conf` is given, a Spark
    Connect server, all on 127.0.0.1, with their logs and work folders under `root`.

    Attributes:
        root: where the logs (`<name>.log`), the Workers' work folders and the settings go.
        workers: how many Workers.
        worker_cores: cores each Worker offers.
        worker_memory: memory each Worker offers (its executors share it).
        connect_conf: the Spark Connect server's settings (`spark-defaults.conf` entries:
            the Delta jars and extensions, say); None starts no server. It runs on local[2].
    """

    root: Path
    workers: int = 1
    worker_cores: int = 1
    worker_memory: str = "1g"
    connect_conf: Mapping[str, str] | None = None
    processes: list[Process] = field(default_factory=list)
    master_url: str = ""
    connect_url: str = ""
    _master_ui: int = 0

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def _environment(self, conf_dir: Path) -> dict[str, str]:
        return subprocess_environment(
            {
                "SPARK_HOME": str(SPARK_HOME),
                "SPARK_CONF_DIR": str(conf_dir),
                "SPARK_LOCAL_IP": "127.0.0.1",
                "SPARK_NO_DAEMONIZE": "1",
                "PYSPARK_PYTHON": sys.executable,
                "PYSPARK_DRIVER_PYTHON": sys.executable,
            }
        )

    def _spawn(self, name: str, arguments: list[str], conf: Mapping[str, str]) -> Process:
        conf_dir = self.root / "conf" / name
        conf_dir.mkdir(parents=True, exist_ok=True)
        (conf_dir / "spark-defaults.conf").write_text(
            "".join(f"{key} {value}\n" for key, value in sorted(conf.items())), encoding="utf-8"
        )
        log = self.root / f"{name}.log"
        with log.open("ab") as output:
            popen = subprocess.Popen(
                arguments,
                env=self._environment(conf_dir),
                cwd=self.root,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        process = Process(name, log, popen)
        self.processes.append(process)
        return process

    def start(self) -> None:
        """Start the Master, the Workers and the Connect server, each answering before the next.

        Raises:
            ClusterStartError: a process exited, or did not answer within
                `START_TIMEOUT_SECONDS`; the error holds the end of its log.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        spark_class = str(SPARK_HOME / "bin" / "spark-class")
        port, self._master_ui = free_port(), free_port()
        self.master_url = f"spark://127.0.0.1:{port}"
        master = self._spawn(
            "master",
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(port), "--webui-port", str(self._master_ui)],
            {"spark.master.rest.enabled": "false"},
        )  # fmt: skip
        self._wait(master, lambda: self.status().get("status") == "ALIVE")
        for index in range(1, self.workers + 1):
            worker = self._spawn(
                f"worker-{index}",
                [spark_class, "org.apache.spark.deploy.worker.Worker", self.master_url,
                 "--host", "127.0.0.1", "--cores", str(self.worker_cores),
                 "--memory", self.worker_memory, "--webui-port", str(free_port()),
                 "--work-dir", str(self.root / f"worker-{index}")],
                {},
            )  # fmt: skip
            self._wait(worker, functools.partial(self._workers_alive, index))
        if self.connect_conf is not None:
            connect_port = free_port()
            self.connect_url = f"sc://127.0.0.1:{connect_port}"
            conf = {
                **self.connect_conf,
                "spark.connect.grpc.binding.address": "127.0.0.1",
                "spark.connect.grpc.binding.port": str(connect_port),
            }
            server = self._spawn(
                "connect-server",
                [str(SPARK_HOME / "bin" / "spark-submit"), "--class", CONNECT_SERVER_CLASS,
                 "--name", "clickstream-connect", "--master", "local[2]", "spark-internal"],
                conf,
            )  # fmt: skip
            self._wait(server, lambda: _listening(connect_port))

    def _wait(self, process: Process, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if not process.running():
                raise ClusterStartError(
                    f"The {process.name} process exited with {process.popen.returncode} while "
                    f"starting. The end of its log ({process.log}):\n{process.log_tail()}"
                )
            if ready():
                return
            time.sleep(POLL_SECONDS)
        raise ClusterStartError(
            f"The {process.name} process did not answer within {START_TIMEOUT_SECONDS:.0f} s. "
            f"The end of its log ({process.log}):\n{process.log_tail()}"
        )

    def status(self) -> dict[str, object]:
        """The Master's JSON status page, or {} while it does not answer."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self._master_ui}/json/", timeout=2
            ) as response:
                loaded = json.loads(response.read())
        except (OSError, urllib.error.URLError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def alive_workers(self) -> int:
        alive = self.status().get("aliveworkers", 0)
        return alive if isinstance(alive, int) else 0

    def _workers_alive(self, count: int) -> bool:
        return self.alive_workers() >= count

    def worker(self, index: int) -> Process:
        """The Worker numbered `index` (from 1)."""
        return next(p for p in self.processes if p.name == f"worker-{index}")

    def stop(self) -> None:
        """Stop every process, the last started first."""
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def tree_rss_bytes(pid: int) -> int:
    """The resident memory of the process `pid` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        pending.extend(children.get(current, []))
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total
