"""`clickstream produce`: landing data, a batch of files or a stream of them."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from clickstream.options import add_storage_options, argument_error, blob_landing, say
from pipeline.arguments import timestamp
from pipeline.errors import ConfigurationError

if TYPE_CHECKING:
    from scenarios.producer import LandingStore

__all__ = ["add_commands"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    produce = commands.add_parser(
        "produce", help="generate clickstream events and user CDC changes as JSON lines"
    )
    produce.set_defaults(handler=_produce)
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
        type=timestamp,
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
    add_storage_options(produce)


def _landing_store(args: argparse.Namespace) -> LandingStore:
    from scenarios.producer import LocalLanding

    remote = blob_landing(args, args.out, "--out")
    if remote is None:
        return LocalLanding(Path(args.out))
    if remote.ensure_container():
        say(f"created the container {remote.location.container!r}")
    return remote


def _close(store: object) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        close()


def _produce(args: argparse.Namespace) -> int:
    from scenarios import generator
    from scenarios.producer import produce_batch

    if args.stream:
        return _produce_stream(args)
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
        raise argument_error(error) from None
    finally:
        _close(store)
    elapsed = time.perf_counter() - started
    print(file=sys.stderr)
    print(
        f"wrote {produced.events:,} events in {len(produced.files) - 1} files and "
        f"{produced.user_changes:,} user changes ({produced.bytes:,} bytes) to {store} "
        f"in {elapsed:.1f} s ({produced.events / max(elapsed, 1e-9):,.0f} events/s)"
    )
    return 0


def _produce_stream(args: argparse.Namespace) -> int:
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
            say("stopping after the file being written (Ctrl-C again to abort)")
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
        raise argument_error(error) from None
    finally:
        signal.signal(signal.SIGINT, previous)
        _close(store)
    ended = "stopped by Ctrl-C; every file written is complete" if produced.stopped_early else ""
    print(
        f"streamed {produced.events:,} events and {produced.user_changes:,} user changes in "
        f"{len(produced.files)} files ({produced.bytes:,} bytes) to {store} in "
        f"{time.perf_counter() - started:.1f} s" + (f"; {ended}" if ended else "")
    )
    return 0
