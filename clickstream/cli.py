"""The `clickstream` command: `produce` generates landing data, `run` processes it;
`history` and `lineage` read the event log; `forget`, `verify-erasure` and `rotate-key` keep
its privacy promises."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import DEFAULT_WATERMARK_DELAY, EXPECTATIONS_ATTRIBUTE, NO_EXPECTATIONS
from pipeline.errors import ClickstreamError, ConfigurationError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from pipeline.config import PiiKey, SparkSettings
    from pipeline.landing.azure_landing import BlobLanding
    from pipeline.observe.event_log import UpdateLog
    from scenarios.producer import LandingStore

__all__ = [
    "DEFAULT_EXPECTATIONS_MODULE",
    "LANDING_CACHE",
    "SPARK_LOG",
    "main",
    "render_erasure",
    "render_verification",
]

DEFAULT_EXPECTATIONS_MODULE = "contracts.rules"
LANDING_CACHE = "_landing"
"""Where `run --landing abfs://...` copies the landing's files, under the warehouse."""
SPARK_LOG = "_logs/spark.log"
"""Where a run's Spark output goes, under the warehouse (`clickstream run --verbose`: the
terminal)."""


def _timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no time zone; write it like 2026-11-01T00:00:00+00:00"
        )
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0, e.g. 60")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clickstream",
        description="Clickstream medallion pipeline on local Spark + Delta Lake.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    produce = commands.add_parser(
        "produce", help="generate clickstream events and user CDC changes as JSON lines"
    )
    produce.add_argument(
        "--out",
        required=True,
        help="landing to write: a directory, or abfs://CONTAINER/PREFIX with --storage-account",
    )
    produce.add_argument(
        "--events", type=int, default=None, help="number of events (not with --stream)"
    )
    produce.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    produce.add_argument(
        "--users", type=int, default=None, help="distinct users (default events/50)"
    )
    produce.add_argument(
        "--files",
        type=int,
        default=None,
        help="event files to write (default 4; not with --stream)",
    )
    produce.add_argument(
        "--start",
        type=_timestamp,
        default=None,
        help="start of the event time window, ISO-8601 with zone (default 2026-11-01T00:00Z)",
    )
    stream = produce.add_argument_group(
        "streaming", "--stream writes a new file every --interval seconds until --duration ends"
    )
    stream.add_argument(
        "--stream",
        action="store_true",
        help="produce continuously, events timed by the clock, under events/<ingest date>/",
    )
    stream.add_argument("--rate", type=float, default=None, help="events per second (--stream)")
    stream.add_argument(
        "--duration", type=float, default=None, help="seconds to produce for (--stream)"
    )
    stream.add_argument(
        "--interval", type=float, default=10.0, help="seconds between files (default 10)"
    )
    _add_storage_options(produce)

    run = commands.add_parser("run", help="process new landing files into Delta tables")
    run.add_argument(
        "--landing",
        required=True,
        help=(
            "landing directory, or abfs://CONTAINER/PREFIX with --storage-account (its new "
            f"files are copied to <warehouse>/{LANDING_CACHE}/ first)"
        ),
    )
    run.add_argument("--warehouse", type=Path, required=True, help="Delta warehouse directory")
    _add_storage_options(run)
    _add_spark_options(run)
    run.add_argument(
        "--pii-key-file",
        type=Path,
        default=None,
        help="file holding the PII key (default: $CLICKSTREAM_PII_KEY, $CLICKSTREAM_PII_KEY_FILE)",
    )
    run.add_argument(
        "--watermark",
        default=DEFAULT_WATERMARK_DELAY,
        help="how late an event may be and still be deduplicated into silver (default '1 hour')",
    )
    run.add_argument(
        "--expectations",
        default=DEFAULT_EXPECTATIONS_MODULE,
        metavar="MODULE",
        help=(
            f"Python module whose {EXPECTATIONS_ATTRIBUTE} maps table names to rules "
            f"(default {DEFAULT_EXPECTATIONS_MODULE}); '{NO_EXPECTATIONS}' enforces none"
        ),
    )
    run.add_argument(
        "--wait",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help=(
            "when another run is writing the warehouse, wait up to SECONDS for it to finish "
            "(default 0: exit at once with a message naming it)"
        ),
    )
    run.add_argument(
        "--full-refresh",
        action="store_true",
        help=(
            "after processing new files, recompute every gold table from silver and the user "
            "change log (a Lakeflow full refresh); without it gold is maintained incrementally"
        ),
    )
    run.add_argument(
        "--verbose",
        action="store_true",
        help=f"show Spark's own log lines on the terminal (default: in <warehouse>/{SPARK_LOG})",
    )
    _add_event_log_commands(commands)
    _add_privacy_commands(commands)
    return parser


def _add_spark_options(command: argparse.ArgumentParser) -> None:
    """--master and --remote: where Spark runs (default: local[2] in this process)."""
    where = command.add_mutually_exclusive_group()
    where.add_argument(
        "--master",
        default=None,
        help=(
            "Spark master: local[N] or a standalone cluster's spark://HOST:PORT "
            "(default: $CLICKSTREAM_MASTER, else local[2])"
        ),
    )
    where.add_argument(
        "--remote",
        default=None,
        help="a Spark Connect server, sc://HOST:PORT (default: $SPARK_REMOTE)",
    )


def _spark_settings(args: argparse.Namespace) -> SparkSettings:
    from pipeline.config import spark_settings_from_environment

    master, remote = getattr(args, "master", None), getattr(args, "remote", None)
    return spark_settings_from_environment(master=master, remote=remote)


def _add_storage_options(command: argparse.ArgumentParser) -> None:
    storage = command.add_argument_group(
        "Azure storage", "for an abfs:// landing; the identity is managed identity, then az login"
    )
    storage.add_argument("--storage-account", default=None, help="storage account name")
    storage.add_argument(
        "--storage-endpoint",
        default=None,
        metavar="URL",
        help="blob service URL (default https://ACCOUNT.blob.core.windows.net), e.g. an emulator",
    )
    storage.add_argument(
        "--client-id", default=None, help="client id of a user-assigned managed identity"
    )


def _add_key_file(command: argparse.ArgumentParser, help_text: str | None = None) -> None:
    command.add_argument(
        "--pii-key-file",
        type=Path,
        default=None,
        help=help_text
        or "file holding the PII key (default: $CLICKSTREAM_PII_KEY, $CLICKSTREAM_PII_KEY_FILE)",
    )


def _add_event_log_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    history = commands.add_parser(
        "history", help="the last updates of a warehouse: state, duration, rows, expectations"
    )
    history.add_argument("--warehouse", type=Path, required=True, help="Delta warehouse directory")
    history.add_argument("--update", default=None, metavar="ID", help="one update in detail")
    history.add_argument(
        "--limit", type=int, default=10, help="how many of the last updates (default 10)"
    )
    history.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lineage = commands.add_parser(
        "lineage", help="the table graph of the newest update, from its flow definitions"
    )
    lineage.add_argument("--warehouse", type=Path, required=True, help="Delta warehouse directory")
    lineage.add_argument("--json", action="store_true", help="print the edges as JSON")


def _add_privacy_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    forget = commands.add_parser(
        "forget", help="erase one person from every table (and the landing files), with proof"
    )
    forget.add_argument("--landing", type=Path, required=True, help="landing directory")
    forget.add_argument("--warehouse", type=Path, required=True, help="Delta warehouse directory")
    forget.add_argument("--user-id", required=True, help="the person's raw user id, e.g. u-000042")
    _add_key_file(forget)
    forget.add_argument(
        "--purge-now",
        action="store_true",
        help=(
            "VACUUM with zero retention, so the removed files are gone when the command "
            "returns; costs every earlier table version (time travel) and may fail readers "
            "running at that moment (default: Delta's retention, 7 days)"
        ),
    )
    forget.add_argument(
        "--include-landing",
        action="store_true",
        help="also rewrite the landing files that hold the person, without their lines",
    )
    forget.add_argument(
        "--request-id", default=None, help="name of the erasure certificate (default: generated)"
    )
    forget.add_argument("--wait", type=_seconds, default=0.0, metavar="SECONDS", help=_WAIT_HELP)

    verify = commands.add_parser(
        "verify-erasure",
        help="read every file under the warehouse for a person's values and their keyed hashes",
    )
    verify.add_argument("--warehouse", type=Path, required=True, help="Delta warehouse directory")
    verify.add_argument("--user-id", required=True, help="the person's raw user id")
    for flag, what in (("--email", "e-mail address"), ("--name", "full name"), ("--ip", "IP")):
        verify.add_argument(
            flag, action="append", default=[], help=f"a {what} of the person (repeatable)"
        )
    verify.add_argument(
        "--landing",
        type=Path,
        default=None,
        help="also take the person's values from the landing files that still hold them",
    )
    _add_key_file(verify)

    rotate = commands.add_parser(
        "rotate-key", help="re-key every pseudonym to a new PII key, then purge the old ones"
    )
    rotate.add_argument("--landing", type=Path, required=True, help="landing directory")
    rotate.add_argument("--warehouse", type=Path, required=True, help="Delta warehouse directory")
    rotate.add_argument(
        "--new-key-file", type=Path, required=True, help="file holding the new PII key"
    )
    _add_key_file(rotate, "file holding the current PII key (default: as for run)")
    rotate.add_argument(
        "--purge-now",
        action="store_true",
        help="VACUUM with zero retention: the old pseudonyms' files are gone on return",
    )
    rotate.add_argument("--wait", type=_seconds, default=0.0, metavar="SECONDS", help=_WAIT_HELP)
    for command in (forget, verify, rotate):
        _add_spark_options(command)


_WAIT_HELP = (
    "when a run is writing the warehouse, wait up to SECONDS for it to finish "
    "(default 0: exit at once with a message naming it)"
)


def _blob_landing(args: argparse.Namespace, location: str) -> BlobLanding:
    from pipeline.landing.azure_landing import BlobLanding, Identity, parse_location

    return BlobLanding(
        parse_location(
            location,
            storage_account=args.storage_account,
            storage_endpoint=args.storage_endpoint,
        ),
        Identity(args.client_id),
    )


def _landing_store(args: argparse.Namespace) -> LandingStore:
    from pipeline.landing.azure_landing import is_remote
    from scenarios.producer import LocalLanding

    if is_remote(args.out):
        landing = _blob_landing(args, args.out)
        if landing.ensure_container():
            _say(f"created the container {landing.location.container!r}")
        return landing
    if args.storage_account or args.storage_endpoint or args.client_id:
        raise ConfigurationError(
            "--storage-account, --storage-endpoint and --client-id apply to an abfs:// --out "
            f"only; {args.out!r} is a local directory"
        )
    return LocalLanding(Path(args.out))


def _produce(args: argparse.Namespace) -> None:
    from scenarios import generator
    from scenarios.producer import produce_batch

    if args.stream:
        _produce_stream(args)
        return
    if args.events is None or args.rate is not None or args.duration is not None:
        raise ConfigurationError(
            "produce needs --events N (a batch of files), or --stream --rate N --duration S"
        )

    def show(done: int, total: int) -> None:
        print(f"\r  {done:,} / {total:,} events", end="", file=sys.stderr, flush=True)

    store = _landing_store(args)
    started = time.perf_counter()
    try:
        produced = produce_batch(
            store,
            events=args.events,
            seed=args.seed,
            users=args.users,
            files=4 if args.files is None else args.files,
            start=args.start or generator.DEFAULT_START,
            progress=show,
        )
    except ValueError as error:
        raise _argument_error(error) from None
    finally:
        _close(store)
    elapsed = time.perf_counter() - started
    print(file=sys.stderr)
    print(
        f"wrote {produced.events:,} events in {len(produced.files) - 1} files and "
        f"{produced.user_changes:,} user changes ({produced.bytes:,} bytes) to {store} "
        f"in {elapsed:.1f} s ({produced.events / max(elapsed, 1e-9):,.0f} events/s)"
    )


def _produce_stream(args: argparse.Namespace) -> None:
    import signal
    import threading

    from scenarios.producer import produce_stream

    if args.rate is None or args.duration is None or args.events is not None or args.files:
        raise ConfigurationError(
            "--stream takes --rate EVENTS_PER_SECOND and --duration SECONDS (and --interval), "
            "not --events or --files"
        )
    store = _landing_store(args)
    stop = threading.Event()

    def interrupt(signum: int, frame: object) -> None:
        if not stop.is_set():
            _say("stopping after the file being written (Ctrl-C again to abort)")
            stop.set()
            return
        raise KeyboardInterrupt

    def show(name: str, size: int, lines: int) -> None:
        print(f"  {store.uri(name)}: {lines:,} lines, {size:,} bytes", flush=True)

    previous = signal.signal(signal.SIGINT, interrupt)
    started = time.perf_counter()
    try:
        produced = produce_stream(
            store,
            rate=args.rate,
            duration=args.duration,
            interval=args.interval,
            seed=args.seed,
            users=args.users,
            wait=stop.wait,
            on_file=show,
        )
    except ValueError as error:
        raise _argument_error(error) from None
    finally:
        signal.signal(signal.SIGINT, previous)
        _close(store)
    ended = "stopped by Ctrl-C; every file written is complete" if produced.stopped_early else ""
    print(
        f"streamed {produced.events:,} events and {produced.user_changes:,} user changes in "
        f"{len(produced.files)} files ({produced.bytes:,} bytes) to {store} in "
        f"{time.perf_counter() - started:.1f} s" + (f"; {ended}" if ended else "")
    )


def _argument_error(error: ValueError) -> ClickstreamError:
    """A generator's ValueError (an argument out of range) as the error `main` reports; our own
    errors (InputError is a ValueError too) as they are."""
    return error if isinstance(error, ClickstreamError) else ConfigurationError(str(error))


def _close(store: object) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        close()


def _up_to_date(args: argparse.Namespace) -> bool:
    """Print the summary and return True when the last run already processed everything.

    Plain Python (file listings and Delta logs): no JVM starts for a run with nothing new.
    """
    from pipeline.run import preflight, run_state

    if args.full_refresh:
        return False
    landing, warehouse = args.landing.resolve(), args.warehouse.resolve()
    warnings = preflight.check(landing, warehouse)
    if not run_state.is_up_to_date(landing, warehouse):
        return False
    for warning in warnings:
        print(warning, file=sys.stderr)
    try:
        summary = run_state.unchanged_summary(warehouse)
    except ValueError:  # a Delta log without row counts: let Spark count
        return False
    print("nothing new since the last run: no Spark work", file=sys.stderr)
    print(summary.render())
    return True


def _run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    from pipeline.config import parse_delay, require_classic
    from pipeline.run.preflight import check_landing
    from pipeline.run.writer_lock import writer_lock

    pii_key = _pii_key(args.pii_key_file)
    parse_delay(args.watermark)
    # A wrong --master or --remote fails before anything is written.
    require_classic(_spark_settings(args), "`clickstream run`")
    remote = _remote_landing(args)
    if remote is None:
        args.landing = Path(args.landing)
        check_landing(args.landing.resolve())
    # Held before the state is read and before Spark starts: a second writer fails at once.
    with writer_lock(args.warehouse, wait_seconds=args.wait, notify=_say):
        if remote is not None:
            args.landing = _copy_landing(args, remote)
            check_landing(args.landing)
        _run_locked(args, pii_key, started)


def _remote_landing(args: argparse.Namespace) -> BlobLanding | None:
    from pipeline.landing.azure_landing import is_remote

    if is_remote(args.landing):
        return _blob_landing(args, args.landing)
    if args.storage_account or args.storage_endpoint or args.client_id:
        raise ConfigurationError(
            "--storage-account, --storage-endpoint and --client-id apply to an abfs:// "
            f"--landing only; {args.landing!r} is a local directory"
        )
    return None


def _copy_landing(args: argparse.Namespace, remote: BlobLanding) -> Path:
    """Copy the remote landing's new files into the warehouse's cache; the cache's path."""
    from pipeline.landing.azure_landing import copy_new_files

    location = remote.location
    cache: Path = args.warehouse.resolve() / LANDING_CACHE / location.account / location.container
    cache = cache / location.prefix if location.prefix else cache
    started = time.perf_counter()

    def show(done: int, total: int, size: int) -> None:
        print(f"\r  copying {done:,} / {total:,} files, {size:,} bytes", end="", file=sys.stderr)

    try:
        copied = copy_new_files(remote, cache, progress=show)
    finally:
        remote.close()
    if copied.copied:
        print(file=sys.stderr)
    _say(
        f"copied {copied.copied} new files ({copied.copied_bytes:,} bytes) of {location} to "
        f"{cache} in {time.perf_counter() - started:.1f} s ({copied.already} copied before)"
    )
    return cache


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _pii_key(key_file: Path | None) -> PiiKey:
    """The PII key, with a warning when its file is readable by others."""
    from pipeline.config import exposed_key_file, pii_key_from_environment

    key = pii_key_from_environment(key_file)
    warning = exposed_key_file(key_file)
    if warning:
        _say(f"warning: {warning}")
    return key


def _run_locked(args: argparse.Namespace, pii_key: PiiKey, started: float) -> None:
    from pipeline.observe.event_log import RUNNER, new_update_id, recorded_update
    from pipeline.observe.flows import FLOWS

    warehouse = args.warehouse.resolve()
    update_id = new_update_id()
    # Recorded from here on: a run that fails, is interrupted or has nothing new is an update.
    with recorded_update(
        warehouse, update_id, flows=FLOWS, full_refresh=args.full_refresh, runner=RUNNER
    ) as update:
        _run_update(args, pii_key, update)
    print(update.cost.summary())
    print(f"update {update_id}: `clickstream history --warehouse {args.warehouse}` shows it")
    print(f"done in {time.perf_counter() - started:.1f} s")


def _run_update(args: argparse.Namespace, pii_key: PiiKey, update: UpdateLog) -> None:
    from pipeline.privacy.key_registry import admit

    admit(args.warehouse.resolve(), pii_key)
    if _up_to_date(args):
        return
    from pipeline.run.progress import Progress
    from pipeline.run.runner import RunOptions, run_pipeline
    from pipeline.run.session import build_session
    from pipeline.transforms.expectations import load_expectations

    rules = load_expectations(args.expectations)
    log_file = None if args.verbose else args.warehouse.resolve() / SPARK_LOG
    print(
        "starting Spark ..." + (f" (its log: {log_file})" if log_file else ""),
        file=sys.stderr,
        flush=True,
    )
    starting = time.perf_counter()
    settings = _spark_settings(args)
    if _small_input(args):
        settings = dataclasses.replace(settings, short_lived=True)
    spark = build_session(settings, log_file=log_file)
    update.spark_started(time.perf_counter() - starting)
    display = Progress(sys.stderr)
    try:
        summary = run_pipeline(
            spark,
            landing=args.landing,
            warehouse=args.warehouse,
            pii_key=pii_key,
            options=RunOptions(watermark_delay=args.watermark, full_refresh=args.full_refresh),
            progress=display.line,
            expectations=rules,
            update=update,
            display=display,
        )
    finally:
        display.close()
        spark.stop()
    print(summary.render())


def _small_input(args: argparse.Namespace) -> bool:
    """Whether the run has little new input (`pipeline.run.runner.INTERPRETED_BELOW_BYTES`):
    decided before Spark starts, which then compiles with the quick compiler only."""
    from pipeline.run import run_state
    from pipeline.run.runner import INTERPRETED_BELOW_BYTES

    landing, warehouse = args.landing.resolve(), args.warehouse.resolve()
    files = run_state.landing_files(landing)
    return run_state.new_bytes(landing, warehouse, files) < INTERPRETED_BELOW_BYTES


def _existing_warehouse(warehouse: Path) -> Path:
    if not warehouse.is_dir():
        raise ConfigurationError(
            f"No warehouse at {warehouse}: give the --warehouse that `clickstream run` wrote."
        )
    return warehouse.resolve()


def _history(args: argparse.Namespace) -> int:
    import json

    from pipeline.observe.event_log import read_events
    from pipeline.observe.history import render_update, render_updates, updates

    found = updates(read_events(_existing_warehouse(args.warehouse)))
    if args.update is not None:
        chosen = [u for u in found if u.update_id == args.update]
        if not chosen:
            known = ", ".join(u.update_id for u in found[-5:]) or "none yet"
            raise ConfigurationError(
                f"No update {args.update!r} in {args.warehouse}'s event log; the last ones: "
                f"{known}. `clickstream history --warehouse {args.warehouse}` lists them."
            )
        print(json.dumps(chosen[0].to_json(), indent=2) if args.json else render_update(chosen[0]))
        return 0
    shown = found[-args.limit :] if args.limit > 0 else found
    if args.json:
        print(json.dumps([u.to_json() for u in shown], indent=2))
    else:
        print(render_updates(shown))
    return 0


def _lineage(args: argparse.Namespace) -> int:
    import json

    from pipeline.observe.event_log import read_events
    from pipeline.observe.history import lineage, render_lineage, updates

    graph = lineage(updates(read_events(_existing_warehouse(args.warehouse))))
    if args.json:
        print(json.dumps([{"input": a, "output": b} for a, b in graph], indent=2))
    else:
        print(render_lineage(graph))
    return 0


def _spark(args: argparse.Namespace) -> SparkSession:
    from pipeline.config import require_classic
    from pipeline.run.session import build_session

    require_classic(_spark_settings(args), f"`clickstream {args.command}`")
    print("starting Spark ...", file=sys.stderr, flush=True)
    return build_session(_spark_settings(args))


def _forget(args: argparse.Namespace) -> int:
    from pipeline.privacy.erasure import forget

    started = time.perf_counter()
    pii_key = _pii_key(args.pii_key_file)
    if args.purge_now:
        _say(
            "--purge-now: VACUUM at zero retention. Every table version before this erasure "
            "stops being readable (time travel), and a query reading the warehouse right now "
            "may fail on a deleted file."
        )
    spark = _spark(args)
    try:
        result = forget(
            spark,
            landing=args.landing,
            warehouse=args.warehouse,
            pii_key=pii_key,
            user_id=args.user_id,
            purge_now=args.purge_now,
            include_landing=args.include_landing,
            request_id=args.request_id,
            progress=_say,
            wait_seconds=args.wait,
        )
    finally:
        spark.stop()
    print(render_erasure(result.document))
    print(f"certificate: {result.certificate}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


def render_erasure(document: Mapping[str, Any]) -> str:
    """A person-readable summary of an erasure certificate (no values: kinds and counts)."""
    lines = [f"erasure {document['request_id']}: {document['status']}"]
    searched = ", ".join(f"{n} {kind}" for kind, n in document["searched"].items())
    lines.append(f"searched for: {searched}")
    for kind, n in document.get("shared_not_searched", {}).items():
        lines.append(f"  not searched: {n} {kind} also carried by other people's records")
    before, after = document["rows_before"], document["rows_after"]
    for table, rows in document["rows_of_person"].items():
        lines.append(f"  {table:<28} {rows:>8,} rows of the person found")
    for table in before:
        if before[table] != after.get(table):
            lines.append(f"  {table:<28} {before[table]:>8,} -> {after.get(table):,} rows")
    vacuum = document["vacuum"]
    lines.append(
        f"VACUUM at {vacuum['retention_hours']} h retention deleted "
        f"{vacuum['files_deleted']} data files"
    )
    landing = document["landing"]
    for entry in landing.get("rewritten", []):
        lines.append(f"  landing {entry['file']}: {entry['lines_removed']} lines removed")
    for entry in landing.get("still_holding", []):
        lines.append(
            f"  landing {entry['file']} still holds {entry['lines']} lines of the person "
            "(--include-landing rewrites it)"
        )
    lines += render_verification(document["verification"])
    return "\n".join(lines)


def render_verification(verification: Mapping[str, Any]) -> list[str]:
    """The verifier's record as lines: what it read, what it found."""
    kinds = ", ".join(f"{n} {kind}" for kind, n in verification["files_by_kind"].items())
    lines = [f"verification: read {verification['files_read']} files ({kinds})"]
    for finding in verification["findings"]:
        lines.append(f"  FOUND {finding['label']} in {finding['path']} ({finding['where']})")
    for path in verification["unreadable_files"]:
        lines.append(f"  UNREADABLE {path}")
    for table, history in verification["time_travel"].items():
        returning = history["versions_returning_person"]
        lines.append(
            f"  {table}: {history['versions']} versions, {history['versions_read']} read "
            "(the others hold only files a version read without the person holds), "
            f"{len(history['versions_unreadable'])} unreadable (files vacuumed), "
            f"{len(returning)} returning the person"
            + (f": versions {returning}" if returning else "")
        )
    current = [
        table
        for table, history in verification["time_travel"].items()
        if history["versions"] - 1 in history["versions_returning_person"]
    ]
    if verification["passed"]:
        lines.append("verification passed: nothing of the person in any file or version")
    elif current:
        lines.append(
            f"verification FAILED: the current version of {', '.join(current)} holds the "
            "person (not erased, or their records arrived again since): run forget"
        )
    else:
        lines.append(
            "verification FAILED: the person is still in the files or versions above "
            "(without --purge-now, removed files stay until Delta's retention has passed)"
        )
    return lines


def _verify_erasure(args: argparse.Namespace) -> int:
    from pipeline.privacy.erasure import Person, find_person, verify
    from pipeline.privacy.landing_scrub import scan_landing

    pii_key = _pii_key(args.pii_key_file)
    spark = _spark(args)
    try:
        in_landing = scan_landing(args.landing, args.user_id)[0] if args.landing else None
        found = find_person(spark, args.warehouse.resolve(), args.user_id, in_landing)
        person = Person(
            user_id=args.user_id,
            emails=tuple(sorted({*found.emails, *args.email})),
            names=tuple(sorted({*found.names, *args.name})),
            ips=tuple(sorted({*found.ips, *args.ip})),
        )
        verification = verify(spark, args.warehouse.resolve(), person, pii_key)
    finally:
        spark.stop()
    searched = ", ".join(f"{n} {kind}" for kind, n in person.searched.items())
    print(f"searched for: {searched}, and the keyed hash of each")
    print("\n".join(render_verification(verification)))
    return 0 if verification["passed"] else 1


def _rotate_key(args: argparse.Namespace) -> int:
    from pipeline.config import exposed_key_file, pii_key_from_file
    from pipeline.privacy.key_rotation import rotate_key

    started = time.perf_counter()
    old_key = _pii_key(args.pii_key_file)
    new_key = pii_key_from_file(args.new_key_file)
    warning = exposed_key_file(args.new_key_file)
    if warning:
        _say(f"warning: {warning}")
    spark = _spark(args)
    try:
        result = rotate_key(
            spark,
            landing=args.landing,
            warehouse=args.warehouse,
            old_key=old_key,
            new_key=new_key,
            purge_now=args.purge_now,
            progress=_say,
            wait_seconds=args.wait,
        )
    finally:
        spark.stop()
    print(f"re-keyed from key version {result.old_version} to {result.new_version}:")
    for table, rows in result.rows_rekeyed.items():
        print(f"  {table:<28} {rows:>8,} rows re-keyed")
    print(f"  {result.pseudonyms:,} distinct pseudonyms mapped; gold recomputed from them")
    print(
        f"VACUUM at {result.retention_hours} h retention deleted {result.files_deleted} files; "
        f"read {result.scan.files} files: {len(result.scan.findings)} old pseudonyms found"
    )
    for finding in result.scan.findings[:20]:
        print(f"  FOUND an old pseudonym in {finding.path} ({finding.where})")
    print(
        f"from now on runs must use the new key (--pii-key-file {args.new_key_file} or "
        "$CLICKSTREAM_PII_KEY_FILE); the old key is refused"
    )
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0 if not result.scan.findings or not args.purge_now else 1


_COMMANDS = {
    "history": _history,
    "lineage": _lineage,
    "forget": _forget,
    "verify-erasure": _verify_erasure,
    "rotate-key": _rotate_key,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `clickstream` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "produce":
            _produce(args)
        elif args.command == "run":
            _run(args)
        else:
            return _COMMANDS[args.command](args)
    except ClickstreamError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
