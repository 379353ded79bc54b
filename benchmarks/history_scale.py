"""Does `clickstream history` stay quick on a long event log? `python -m benchmarks.history_scale`.

Records `--updates` updates into a scratch warehouse's event log with the pipeline's own
writer (`pipeline.observe.event_log.UpdateLog`), each shaped as an incremental run's: started
with the flows' definitions, one micro-batch of each stage, the flows ended, the update ended:
seven commits to the log. As runs do, the log is compacted whenever it passes
`pipeline.run.optimize.AUTO_OPTIMIZE_FILES` files. No Spark: the tables are not written, only
the log a thousand runs would leave.

Then times, in alternating rounds (medians), `clickstream history`'s own work, which is reading
the log and choosing, parsing and rendering the last ten updates (`--limit 10`), and one update
in detail (`--update ID`); and, for scale, reading every event. On demand, not in CI: recording
a thousand updates takes a few minutes.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.arguments import positive_int
from pipeline.observe import event_log, history
from pipeline.observe.flows import FLOWS, flows_of_stage
from pipeline.run import optimize
from pipeline.storage import delta_log
from pipeline.table_names import EVENT_LOG, EVENTS_STREAM, USER_STREAM

__all__ = ["main", "record_updates"]

STAGES = (USER_STREAM, EVENTS_STREAM)


def record_updates(warehouse: Path, count: int, say: Callable[[str], None]) -> int:
    """Append `count` run-shaped updates to `warehouse`'s event log; return the compactions."""
    compactions = 0
    for number in range(count):
        update_id = event_log.new_update_id()
        with event_log.recorded_update(
            warehouse, update_id, flows=FLOWS, full_refresh=False, runner=event_log.RUNNER
        ) as update:
            for stage in STAGES:
                flows = flows_of_stage(stage)
                update.batch(stage, number, flows, dict.fromkeys((f.name for f in flows), 100), {})
            for stage in STAGES:
                update.flows_ended(flows_of_stage(stage), event_log.COMPLETED)
        files = delta_log.live_files(warehouse / EVENT_LOG) or (0, 0)
        if files[0] > optimize.AUTO_OPTIMIZE_FILES:
            optimize.compact_event_log(warehouse, lambda _message: None)
            compactions += 1
        if (number + 1) % 100 == 0:
            say(f"  recorded {number + 1:,} of {count:,} updates")
    return compactions


def _seconds(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.history_scale", description=__doc__)
    parser.add_argument("--updates", type=positive_int, default=1000, help="default 1000")
    parser.add_argument("--rounds", type=positive_int, default=5, help="timed rounds (default 5)")
    parser.add_argument(
        "--workdir", type=Path, default=Path(".cache/history_scale"), help="the scratch warehouse"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    warehouse = args.workdir / "warehouse"
    shutil.rmtree(args.workdir, ignore_errors=True)
    warehouse.mkdir(parents=True)
    print(f"recording {args.updates:,} run-shaped updates in {warehouse} ...", flush=True)
    started = time.perf_counter()
    compactions = record_updates(warehouse, args.updates, lambda line: print(line, flush=True))
    files, stored = delta_log.live_files(warehouse / EVENT_LOG) or (0, 0)
    every = event_log.read_events(warehouse)
    print(
        f"recorded in {time.perf_counter() - started:.0f} s: {len(every):,} events, "
        f"{files} files ({stored:,} bytes), compacted {compactions} times on the way"
    )
    last = history.updates(event_log.read_events(warehouse, last_updates=1))[0].update_id
    measures: dict[str, Callable[[], object]] = {
        "history --limit 10": lambda: history.render_updates(
            history.updates(event_log.read_events(warehouse, last_updates=10))
        ),
        "history --update ID": lambda: history.render_update(
            history.updates(event_log.read_events(warehouse, update_id=last))[0]
        ),
        "every event read": lambda: event_log.read_events(warehouse),
    }
    timings: dict[str, list[float]] = {}
    for round_ in range(args.rounds + 1):  # the first round warms up
        for label, action in measures.items():
            seconds = _seconds(action)
            if round_:
                timings.setdefault(label, []).append(seconds)
    print(f"\n{'measure':<24} {'median':>8} {'slowest':>8}")
    for label, found in timings.items():
        print(f"{label:<24} {statistics.median(found):>7.3f}s {max(found):>7.3f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
