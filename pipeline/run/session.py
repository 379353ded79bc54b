"""SparkSession factory: local Spark with Delta Lake by default, Spark Connect when asked.

The Delta jars come from a project-local cache (`pipeline.run.delta_jars`), filled on first
use. Spark's own output (its start-up banner, log4j's console log, Delta's VACUUM report) can
be sent to a log file instead of the terminal: `build_session(settings, log_file=...)`
(`pipeline.run.jvm_output`).

A local JVM starts from a class-data-sharing archive (`class_archive`): the classes of Spark
and Delta, loaded and verified once, mapped from a file instead. The first session of an
installation writes it as its process ends (with `jcmd`), holding every class that session
used; later ones start about 2 s sooner and run their first queries faster.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from pyspark.errors import PySparkRuntimeError
from pyspark.sql import SparkSession

from pipeline.config import SparkSettings, java_home_from_environment, java_tool_options
from pipeline.errors import (
    DeltaJarsUnavailableError,
    JavaNotFoundError,
)
from pipeline.run.delta_jars import (
    cache_from_ivy,
    cached_jars,
    check_versions,
    delta_artifacts,
    fetch_with_maven,
)
from pipeline.run.jvm_output import jvm_output_to, quiet_query_failures

__all__ = [
    "INTERPRETED_EXPRESSIONS",
    "MIN_JAVA_MAJOR",
    "QUICK_JIT",
    "SMALL_INPUT",
    "build_session",
    "class_archive",
    "local_server_conf",
    "resolve_delta_jars",
    "session_settings",
]

MIN_JAVA_MAJOR = 17

_LOCAL_CONF: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.session.timeZone": "UTC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.adaptive.enabled": "true",
    "spark.databricks.delta.snapshotPartitions": "2",
    # A JSON object may repeat a key; like Spark's typed JSON parse, keep the last value
    # instead of failing the batch when bronze builds its rescued-data map.
    "spark.sql.mapKeyDedupPolicy": "LAST_WIN",
    "spark.sql.streaming.stateStore.providerClass": (
        "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
    ),
    # Uncompressed state files (RocksDB reads any unknown name as no compression): the
    # erasure verifier (`pipeline.privacy.pii_scan`) then reads their bytes as they are. The state
    # is
    # the silver deduplication's event ids, small.
    "spark.sql.streaming.stateStore.rocksdb.compression": "none",
    # Delta's VACUUM lists a table's files in a job of this many tasks (default 10,000): 27 s
    # per table of a few files on 2 cores, 2.4 s with 2 tasks.
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
}


DRIVER_JAVA_OPTIONS = "-Duser.timezone=UTC"
STEADY_JIT = "-XX:-DontCompileHugeMethods"
"""The default compilers (C1, then C2 for hot code), compiling huge generated methods too."""
QUICK_JIT = "-XX:TieredStopAtLevel=1"
"""A short-lived JVM's compilers: the quick one only. Measured on a second run of 200 events:
the JVM spent 9 s of its 56 s of CPU compiling 47,000 methods with C1 and C2."""
SIMPLE_GC = "-XX:+UseSerialGC"
"""A short-lived JVM's collector: no concurrent threads (G1's took 4.5 s of those 56 s).
Left out when $JAVA_TOOL_OPTIONS chooses a collector: a JVM refuses two."""

INTERPRETED_EXPRESSIONS: dict[str, str] = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}
"""Session settings under which Spark evaluates expressions without generating Java code.

On small inputs compiling the generated code costs more than it saves: the runner sets them
for runs with little new input, the test session for all its tiny data.
"""
SMALL_INPUT: dict[str, str] = {
    **INTERPRETED_EXPRESSIONS,
    # Adaptive execution runs each shuffle stage as a Spark job of its own and plans the rest
    # again after it: on a few thousand rows there is nothing to adapt to.
    "spark.sql.adaptive.enabled": "false",
    # One task per shuffle stage: fewer tasks to plan, serialize and schedule.
    "spark.sql.shuffle.partitions": "1",
    "spark.sql.autoBroadcastJoinThreshold": "-1",
}
"""The session settings of a run with little new input (`pipeline.run.runner`)."""


def _java_problem() -> str | None:
    """Describe what is wrong with the Java installation, or None when Java 17+ is there."""
    java_home = java_home_from_environment()
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if java is None or not Path(java).exists():
        return "no `java` executable was found (neither $JAVA_HOME/bin/java nor on PATH)"
    completed = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    first_line = (completed.stderr or completed.stdout).splitlines()[:1]
    text = first_line[0] if first_line else ""
    quoted = text.split('"')
    if len(quoted) >= 2:
        major_text = quoted[1].split(".")[0]
        if major_text.isdigit() and int(major_text) < MIN_JAVA_MAJOR:
            return f"`{java}` is {text.strip()}, older than Java {MIN_JAVA_MAJOR}"
    return None


def _java_error(problem: str) -> JavaNotFoundError:
    return JavaNotFoundError(
        f"Spark cannot start: {problem}. Spark 4 needs Java {MIN_JAVA_MAJOR} or newer. Install "
        "one (on Debian/Ubuntu: apt-get install openjdk-17-jre-headless) and make sure `java` "
        "is on PATH or JAVA_HOME points at it, then run the command again."
    )


def cluster_conf(master: str) -> dict[str, str]:
    """Settings for a driver started here whose executors run elsewhere (a standalone cluster).

    The executors run this process's Python (the pipeline's functions are pickled to them,
    so they need the same interpreter and packages), fetch the Delta jars from this driver
    (given as files in `spark.jars`: no network access needed), and reach the driver on the
    address the cluster lives on: loopback for a cluster on this machine.
    """
    if master.startswith("local"):
        return {}
    conf = {"spark.pyspark.python": sys.executable, "spark.pyspark.driver.python": sys.executable}
    if "127.0.0.1" in master or "localhost" in master:
        conf |= {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
    return conf


def class_archive(settings: SparkSettings) -> Path:
    """Where the JVMs of these settings keep their class-data-sharing archive.

    A JVM can use an archive only with the same Java and the same class path, so the file is
    named after them: another Java, pyspark or Delta install writes an archive of its own.
    """
    java = shutil.which("java") or "java"
    java_home = java_home_from_environment()
    if java_home:
        java = str(Path(java_home) / "bin" / "java")
    java_path = Path(java).resolve()
    pyspark_dir = Path(importlib.import_module("pyspark").__file__ or "").resolve().parent
    facts = [
        str(java_path),
        str(java_path.stat().st_mtime_ns) if java_path.exists() else "",
        str(pyspark_dir),
        importlib.metadata.version("pyspark"),
        *delta_artifacts(),
        str(settings.jar_cache.resolve()),
    ]
    digest = hashlib.sha256("\n".join(facts).encode()).hexdigest()[:16]
    return settings.jar_cache / "jvm" / f"classes-{digest}.jsa"


def _java_options(settings: SparkSettings, archive: Path) -> str:
    """The driver JVM's options: time zone, compilers, and the class archive (used when it
    exists; else the JVM records what it needs to write one)."""
    sharing = (
        f"-XX:SharedArchiveFile={archive}" if archive.is_file() else "-XX:+RecordDynamicDumpInfo"
    )
    quiet = "-Xlog:cds=off -Xlog:cds+dynamic=off"  # its notes on classes it leaves out
    jit = STEADY_JIT
    if settings.short_lived:
        jit = QUICK_JIT if "GC" in java_tool_options() else f"{QUICK_JIT} {SIMPLE_GC}"
    return f"{DRIVER_JAVA_OPTIONS} {jit} {sharing} {quiet}"


def _write_archive_at_exit(spark: SparkSession, archive: Path) -> None:
    """When this process ends, write the JVM's loaded classes to `archive` (once per
    installation: later JVMs start from it). Skipped without `jcmd` (a JRE)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None  # a local session has its JVM
    pid = int(jvm.java.lang.ProcessHandle.current().pid())
    java = shutil.which("java")
    java_home = java_home_from_environment()
    tools = Path(java_home) / "bin" if java_home else Path(java).resolve().parent if java else None
    jcmd = tools / "jcmd" if tools else None
    if jcmd is None or not jcmd.exists():
        return

    def write() -> None:
        archive.parent.mkdir(parents=True, exist_ok=True)
        partial = archive.with_name(f".{archive.name}.{os.getpid()}.partial")
        done = subprocess.run(
            [str(jcmd), str(pid), "VM.cds", "dynamic_dump", str(partial)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if done.returncode == 0 and partial.is_file() and "error" not in done.stdout.lower():
            partial.replace(archive)
        else:
            partial.unlink(missing_ok=True)

    atexit.register(write)


def _local_builder(settings: SparkSettings, jars: list[Path] | None) -> SparkSession.Builder:
    builder = (
        SparkSession.builder.master(settings.master)
        .appName("clickstream")
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        .config("spark.driver.memory", settings.driver_memory)
        .config("spark.driver.extraJavaOptions", _java_options(settings, class_archive(settings)))
    )
    for key, value in (_LOCAL_CONF | cluster_conf(settings.master)).items():
        builder = builder.config(key, value)
    if jars is not None:
        return builder.config("spark.jars", ",".join(str(jar) for jar in jars))
    return builder.config("spark.jars.packages", ",".join(delta_artifacts())).config(
        "spark.jars.ivy", str(settings.jar_cache / "ivy")
    )


@contextmanager
def session_settings(spark: SparkSession, settings: Mapping[str, str]) -> Iterator[None]:
    """Set `settings` on the session for the block, then put back what was there before."""
    saved = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, before in saved.items():
            if before is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, before)


def build_session(settings: SparkSettings, *, log_file: Path | None = None) -> SparkSession:
    """Return a SparkSession with Delta Lake, sized for a small machine.

    With `settings.remote` set (from $SPARK_REMOTE) this connects to that Spark Connect
    server, which must have Delta Lake configured itself.

    Args:
        settings: master, memory, jar cache, or the Spark Connect server to use.
        log_file: where the local JVM writes its stdout and stderr, appended: its start-up
            banner, its log (log4j's console appender) and what Delta prints, such as
            VACUUM's "Deleted N files". None leaves them on this process's terminal. Not used
            with `settings.remote`, where no JVM is started here.

    Raises:
        JavaNotFoundError: no Java 17+ runtime.
        IncompatibleVersionsError: pyspark and delta-spark do not match.
        DeltaJarsUnavailableError: the Delta jars are not cached and cannot be downloaded.
    """
    if settings.remote:
        return SparkSession.builder.remote(settings.remote).getOrCreate()
    check_versions()
    problem = _java_problem() if shutil.which("java") is None else None
    if problem:
        raise _java_error(problem)
    settings.jar_cache.mkdir(parents=True, exist_ok=True)
    output: AbstractContextManager[None] = (
        nullcontext() if log_file is None else jvm_output_to(log_file)
    )
    try:
        with output:
            spark = _start_local(settings)
    except Exception as exc:
        if log_file is not None:
            exc.add_note(f"Spark's own output is in {log_file}.")
        raise
    spark.sparkContext.setLogLevel("ERROR")
    quiet_query_failures(spark)
    archive = class_archive(settings)
    if not archive.is_file():
        _write_archive_at_exit(spark, archive)
    return spark


def _start_local(settings: SparkSettings) -> SparkSession:
    """Start local Spark with the cached Delta jars, fetching them first when missing."""
    jars = cached_jars(settings.jar_cache)
    try:
        spark = _local_builder(settings, jars).getOrCreate()
    except PySparkRuntimeError as exc:
        problem = _java_problem()
        if problem:
            raise _java_error(problem) from exc
        if jars is not None:
            raise
        jars = fetch_with_maven(settings.jar_cache)
        if jars is None:
            raise DeltaJarsUnavailableError(
                "Spark could not start because the Delta Lake jars "
                f"({', '.join(delta_artifacts())}) are not in the cache {settings.jar_cache} and "
                "could not be downloaded from Maven Central, neither by Spark's resolver nor by "
                "`mvn`. Connect to the internet (or a Maven mirror) once and run again, or copy "
                f"the jars into {settings.jar_cache} (set CLICKSTREAM_JAR_CACHE to use another "
                "directory)."
            ) from exc
        return _local_builder(settings, jars).getOrCreate()
    if jars is None:
        cache_from_ivy(settings.jar_cache)
    return spark


def resolve_delta_jars(settings: SparkSettings) -> list[Path]:
    """The Delta jars as files, for a Spark process this one does not start itself.

    `spark-pipelines` launches its own Spark Connect server, which needs the jars on its
    classpath: they come from the project cache, filled on first use the way `build_session`
    fills it (Spark's resolver, then `mvn`).

    Raises:
        DeltaJarsUnavailableError: the jars are not cached and cannot be downloaded.
    """
    settings.jar_cache.mkdir(parents=True, exist_ok=True)
    jars = cached_jars(settings.jar_cache)
    if jars is None:
        build_session(settings).stop()
        jars = cached_jars(settings.jar_cache)
    if jars is None:
        raise DeltaJarsUnavailableError(
            f"The Delta Lake jars ({', '.join(delta_artifacts())}) are not in the cache "
            f"{settings.jar_cache} after a download attempt. Copy them there, or set "
            "CLICKSTREAM_JAR_CACHE to a directory that holds them."
        )
    return jars


def local_server_conf(settings: SparkSettings, jars: list[Path]) -> dict[str, str]:
    """Spark settings for a local server with Delta Lake, the same as `build_session` uses.

    The master is left out: `spark-pipelines` takes it as `--remote local[N]`, and refuses a
    master given beside it.
    """
    return {
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        "spark.driver.memory": settings.driver_memory,
        "spark.driver.extraJavaOptions": f"{DRIVER_JAVA_OPTIONS} {STEADY_JIT}",
        **_LOCAL_CONF,
        "spark.jars": ",".join(str(jar) for jar in jars),
    }
