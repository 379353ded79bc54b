"""Run the pipeline with open-source `spark-pipelines` on this machine, on Spark + Delta.

`spark-pipelines` starts a local Spark Connect server in a JVM of its own, so the Delta jars
and the static settings (`spark.jars`, `spark.sql.extensions`, the Delta catalog, the
warehouse directory) must reach that JVM at launch. Neither obvious route does it in Spark 4.2:

* the spec's `configuration` block is also applied as the SQL configuration of every flow, and
  a static setting there fails the run (`CANNOT_MODIFY_STATIC_CONFIG`);
* `--conf` options reach the server through environment variables holding 10 settings each,
  of which pyspark 4.2 reads only the last (`PYSPARK_REMOTE_INIT_CONF_<n>`): with more than
  four settings of ours some are silently lost.

So they go into a `spark-defaults.conf` of a configuration directory made for the run
(`SPARK_CONF_DIR`), which every `spark-submit` reads. The spec's own `storage` must be an
absolute URI, which a committed file cannot know: the run writes an effective copy of the
spec beside the committed one, with the storage, the landing path and the warehouse of this
run, and removes it afterwards. The tables are registered in a Hive metastore kept in the
warehouse, so running again on the same warehouse is an incremental update. Each `run` is an
update of the warehouse's event log (`pipeline.lakeflow.run_events`), as `clickstream run` is.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from pipeline.config import (
    SparkSettings,
    spark_settings_from_environment,
    subprocess_environment,
)
from pipeline.errors import ConfigurationError
from pipeline.lakeflow.run_events import SdpRecorder
from pipeline.lakeflow.settings import LANDING
from pipeline.observe.event_log import CANCELED, FAILED, UpdateLog, new_update_id
from pipeline.run.session import local_server_conf, resolve_delta_jars
from pipeline.run.writer_lock import writer_lock

__all__ = [
    "METASTORE_DIR",
    "SPEC_NAME",
    "STORAGE_DIR",
    "Command",
    "LocalRun",
    "command_line",
    "main",
    "prepared",
    "run_spark_pipelines",
    "server_url",
    "spark_defaults",
    "spark_pipelines_executable",
]

Command = Literal["run", "dry-run"]
SPEC_NAME = "spark-pipeline.yml"
STORAGE_DIR = "_pipeline_storage"
METASTORE_DIR = "_metastore_db"


@dataclass(frozen=True)
class LocalRun:
    """Where one local `spark-pipelines` run reads and writes.

    Attributes:
        spec: the committed spec (`spark-pipeline.yml`); its libraries are found from its folder.
        warehouse: the Spark warehouse: one Delta table per dataset at `<warehouse>/<name>`.
        landing: overrides `clickstream.landing` of the spec, when given.
        configuration: more entries for the spec's `configuration` block.
    """

    spec: Path
    warehouse: Path
    landing: Path | None = None
    configuration: Mapping[str, str] | None = None

    def effective_spec(self) -> dict[str, Any]:
        """The committed spec with this run's storage, landing and configuration."""
        loaded = yaml.safe_load(self.spec.read_text(encoding="utf-8"))
        if not isinstance(loaded, dict):
            raise ConfigurationError(f"{self.spec} does not hold a pipeline spec mapping.")
        configuration = dict(loaded.get("configuration") or {})
        if self.landing is not None:
            configuration[LANDING] = str(self.landing.resolve())
        configuration.update(self.configuration or {})
        storage = (self.warehouse.resolve() / STORAGE_DIR).as_uri()
        return {**loaded, "storage": storage, "configuration": configuration}

    def server_conf(self, settings: SparkSettings) -> dict[str, str]:
        """The `spark-defaults.conf` settings of the Spark Connect server."""
        conf = local_server_conf(settings, resolve_delta_jars(settings))
        warehouse = self.warehouse.resolve()
        conf["spark.sql.warehouse.dir"] = str(warehouse)
        # A Hive metastore (embedded Derby) in the warehouse remembers the tables between
        # runs, so a second `run` is incremental, as the runner's; Spark's default in-memory
        # catalog forgets them and the next run refuses their non-empty locations.
        metastore = warehouse / METASTORE_DIR
        conf["spark.sql.catalogImplementation"] = "hive"
        conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = (
            f"jdbc:derby:;databaseName={metastore};create=true"
        )
        conf["spark.driver.extraJavaOptions"] += f" -Dderby.system.home={warehouse}"
        return conf


def spark_defaults(conf: Mapping[str, str]) -> str:
    """`conf` in the `spark-defaults.conf` format: one `key value` per line."""
    return "".join(f"{key} {value}\n" for key, value in sorted(conf.items()))


def spark_pipelines_executable() -> str:
    """The `spark-pipelines` script of the pyspark installed beside this interpreter."""
    beside = Path(sys.executable).parent / "spark-pipelines"
    found = str(beside) if beside.is_file() else shutil.which("spark-pipelines")
    if found is None:
        raise ConfigurationError(
            "The `spark-pipelines` command is not installed. Install pyspark with its "
            "pipelines extra: pip install 'pyspark[pipelines]==4.2.0'."
        )
    return found


def server_url(settings: SparkSettings) -> str:
    """What `spark-pipelines` takes as `--remote`: a Spark Connect server's sc:// URL, or
    local[N] for a server of its own on this machine.

    Raises:
        ConfigurationError: the master is a cluster's: `spark-pipelines` starts its own
            server only on local Spark, so a cluster is reached through a Connect server.
    """
    if settings.remote:
        return settings.remote
    if settings.mode != "local":
        raise ConfigurationError(
            f"`spark-pipelines` cannot take the master {settings.master}: it starts its own "
            "Spark Connect server only on local Spark. Start a Spark Connect server on the "
            "cluster (with the Delta jars and extensions) and pass its sc://HOST:PORT as "
            "--remote, or leave out --master/$CLICKSTREAM_MASTER."
        )
    return settings.master


def command_line(command: Command, spec: Path, settings: SparkSettings) -> list[str]:
    """The `spark-pipelines` command line: the server as `--remote`, the spec by path."""
    return [
        spark_pipelines_executable(),
        "--remote",
        server_url(settings),
        command,
        "--spec",
        str(spec),
    ]


@contextmanager
def prepared(run: LocalRun, settings: SparkSettings) -> Iterator[tuple[Path, Path]]:
    """Write the run's effective spec (beside the committed one) and its Spark settings.

    Yields:
        The effective spec and the `SPARK_CONF_DIR` to launch `spark-pipelines` with; both
        are removed when the context ends.
    """
    run.warehouse.mkdir(parents=True, exist_ok=True)
    spec = run.spec.resolve().parent / f".{run.spec.stem}.{uuid.uuid4().hex[:8]}.yml"
    with tempfile.TemporaryDirectory(prefix="clickstream-spark-conf-") as conf_dir:
        # A server of spark-pipelines' own reads these; a running one has its own.
        conf = {} if settings.remote else run.server_conf(settings)
        (Path(conf_dir) / "spark-defaults.conf").write_text(spark_defaults(conf), encoding="utf-8")
        spec.write_text(yaml.safe_dump(run.effective_spec(), sort_keys=False), encoding="utf-8")
        try:
            yield spec, Path(conf_dir)
        finally:
            spec.unlink(missing_ok=True)


def run_spark_pipelines(
    command: Command,
    run: LocalRun,
    settings: SparkSettings,
    *,
    capture: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run `spark-pipelines run` or `dry-run` for `run`, and wait for it.

    Args:
        command: "run" builds the tables; "dry-run" only validates the graph.
        run: the spec, warehouse and landing.
        settings: the local Spark settings (master, memory, jar cache).
        capture: keep the output in the result instead of printing it.

    Returns:
        The finished process; check its `returncode`.
    """
    with prepared(run, settings) as (spec, conf_dir):
        environment = subprocess_environment(
            {"SPARK_CONF_DIR": str(conf_dir), "PYSPARK_PYTHON": sys.executable}
        )
        if command != "run":
            return subprocess.run(
                command_line(command, spec, settings),
                env=environment,
                cwd=run.warehouse,
                capture_output=capture,
                text=True,
                check=False,
            )
        warehouse = run.warehouse.resolve()
        with writer_lock(warehouse):
            recorder = SdpRecorder(warehouse, UpdateLog(warehouse, new_update_id()))
            recorder.start()
            try:
                completed = _run_recorded(
                    command_line(command, spec, settings),
                    environment,
                    run.warehouse,
                    recorder,
                    capture=capture,
                )
            except BaseException as error:
                recorder.update.finished(
                    CANCELED if isinstance(error, KeyboardInterrupt) else FAILED, error
                )
                raise
            recorder.finish(completed.returncode)
            return completed


def _run_recorded(
    arguments: list[str],
    environment: Mapping[str, str],
    cwd: Path,
    recorder: SdpRecorder,
    *,
    capture: bool,
) -> subprocess.CompletedProcess[str]:
    """Run `spark-pipelines`, recording each line it prints as it prints it.

    Captured, its standard error is merged into its output (read through one pipe, a chatty
    stderr cannot fill up and stall it).
    """
    with subprocess.Popen(
        arguments,
        env=dict(environment),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if capture else None,
        text=True,
    ) as process:
        assert process.stdout is not None
        printed = []
        for line in process.stdout:
            recorder.line(line)
            if capture:
                printed.append(line)
            else:
                sys.stdout.write(line)
                sys.stdout.flush()
        returncode = process.wait()
    return subprocess.CompletedProcess(arguments, returncode, "".join(printed), "")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.lakeflow",
        description="Run the pipeline's SDP definitions with spark-pipelines on local Spark.",
    )
    parser.add_argument("command", choices=["run", "dry-run"])
    parser.add_argument("--spec", type=Path, default=Path(SPEC_NAME))
    parser.add_argument("--landing", type=Path, default=None, help="overrides the spec's")
    parser.add_argument("--warehouse", type=Path, default=Path("sdp-warehouse"))
    parser.add_argument(
        "--remote",
        default=None,
        metavar="sc://HOST:PORT",
        help=(
            "a running Spark Connect server with Delta Lake (default: $SPARK_REMOTE, else a "
            "local server of spark-pipelines' own)"
        ),
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m pipeline.lakeflow {run,dry-run} [--spec S] [--landing L] [--warehouse W]`."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.spec.is_file():
        parser.error(f"no pipeline spec at {args.spec}")
    try:
        settings = spark_settings_from_environment(remote=args.remote)
        server_url(settings)
    except ConfigurationError as error:
        parser.error(str(error))
    run = LocalRun(spec=args.spec, warehouse=args.warehouse, landing=args.landing)
    return run_spark_pipelines(args.command, run, settings).returncode
