"""The producer without storage or a JVM: time slices, local batches, streaming's file
boundaries on a fake clock, abfs:// locations, and the command line's argument errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from clickstream import cli
from pipeline.errors import ConfigurationError, InputError
from pipeline.landing.azure_landing import is_remote, parse_location
from scenarios import generator
from scenarios.producer import LocalLanding, produce_batch, produce_stream, stream_names


def _lines(data: bytes) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in data.splitlines()]


def test_time_slices_partition_the_events_and_the_changes() -> None:
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    duration = timedelta(minutes=5)
    changes, parts = generator.time_slices(
        events=900, seed=4, users=40, slices=5, start=start, duration=duration
    )
    slices = list(parts)
    expected = generator.generate_events(
        events=900, seed=4, users=40, start=start, duration=duration
    )
    assert [event for part in slices for event in _lines(part.events)] == expected
    assert [part.event_count for part in slices] == [len(_lines(p.events)) for p in slices]
    all_changes = generator.generate_user_changes(seed=4, users=40, start=start, duration=duration)
    assert _lines(changes) == all_changes
    assert [change for part in slices for change in _lines(part.changes)] == all_changes
    # every INSERT is dated before the window: all in the first slice
    first = _lines(slices[0].changes)
    assert sum(row["operation"] == "INSERT" for row in first) == 40
    for index, part in enumerate(slices):
        low = start + duration * index / 5
        high = start + duration * (index + 1) / 5
        for event in _lines(part.events):
            moment = datetime.fromisoformat(str(event["event_ts"]))
            assert low <= moment < high
        for change in _lines(part.changes) if index else []:
            assert low <= datetime.fromisoformat(str(change["changed_at"])) < high


def test_a_local_produce_batch_writes_what_write_landing_writes(tmp_path: Path) -> None:
    produced = produce_batch(LocalLanding(tmp_path / "a"), events=700, seed=9, files=3)
    generator.write_landing(tmp_path / "b", events=700, seed=9, files=3)
    written = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.json"))
    assert written == sorted(
        p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.json")
    )
    for relative in written:
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes()
    assert [name for name, _, _ in produced.files] == [
        "user_changes/user-changes-s9-00000.json",
        *(f"events/events-s9-0000{i}.json" for i in range(3)),
    ]
    assert sum(lines for _, _, lines in produced.files[1:]) == 700
    assert produced.bytes == sum((tmp_path / "a" / r).stat().st_size for r in written)
    with pytest.raises(InputError, match="refusing to overwrite"):
        produce_batch(LocalLanding(tmp_path / "a"), events=700, seed=9, files=3)


class FakeClock:
    """A clock that only moves when the producer waits; `stop_after` waits say stop."""

    def __init__(self, start: datetime, stop_after: int | None = None) -> None:
        self.now = start
        self.waits: list[float] = []
        self.stop_after = stop_after

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += timedelta(seconds=seconds)
        return self.stop_after is not None and len(self.waits) > self.stop_after


def test_streaming_writes_one_file_per_interval_with_the_events_of_that_interval(
    tmp_path: Path,
) -> None:
    clock = FakeClock(datetime(2026, 12, 1, 23, 59, 57, 400_000, tzinfo=UTC))
    seen: list[str] = []
    produced = produce_stream(
        LocalLanding(tmp_path),
        rate=30,
        duration=6,
        interval=2,
        seed=3,
        now=lambda: clock.now,
        wait=clock.wait,
        on_file=lambda name, size, lines: seen.append(name),
    )
    started = datetime(2026, 12, 1, 23, 59, 57, tzinfo=UTC)  # whole seconds
    assert clock.waits == pytest.approx([1.6, 2.0, 2.0])  # each file once its interval ended
    event_files = [name for name in seen if name.startswith("events/")]
    assert event_files == [
        stream_names(3, started, 0, "2026-12-01")[0],
        stream_names(3, started, 1, "2026-12-02")[0],  # written after midnight: the ingest date
        stream_names(3, started, 2, "2026-12-02")[0],
    ]
    assert event_files[0] == "events/2026-12-01/events-s3-20261201T235957Z-00000.json"
    assert produced.events == 180 and not produced.stopped_early
    for index, name in enumerate(event_files):
        low, high = (
            started + timedelta(seconds=2 * index),
            started + timedelta(seconds=2 * index + 2),
        )
        for event in _lines((tmp_path / name).read_bytes()):
            assert low <= datetime.fromisoformat(str(event["event_ts"])) < high
    assert seen[0].startswith("user_changes/2026-12-01/")  # the INSERTs come before any event
    assert sum(lines for name, _, lines in produced.files if name.startswith("events/")) == 180


def test_a_stopped_stream_leaves_only_complete_files(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 12, 1, 8, 0, tzinfo=UTC), stop_after=2)
    produced = produce_stream(
        LocalLanding(tmp_path),
        rate=10,
        duration=60,
        interval=5,
        seed=1,
        now=lambda: clock.now,
        wait=clock.wait,
    )
    assert produced.stopped_early
    files = sorted(tmp_path.rglob("*.json"))
    assert [p.name for p in files if p.parent.parent.name == "events"] == [
        "events-s1-20261201T080000Z-00000.json",
        "events-s1-20261201T080000Z-00001.json",
    ]
    assert not list(tmp_path.rglob(".*"))  # no partial file left
    assert produced.events == sum(
        len(p.read_bytes().splitlines()) for p in files if "events" in p.parts
    )


@pytest.mark.parametrize(("knob", "value"), [("rate", 0.0), ("duration", -1.0), ("interval", 0.0)])
def test_streaming_rejects_a_knob_out_of_range(tmp_path: Path, knob: str, value: float) -> None:
    arguments = {"rate": 5.0, "duration": 5.0, "interval": 1.0, knob: value}
    with pytest.raises(ValueError, match=f"--{knob} must be > 0"):
        produce_stream(
            LocalLanding(tmp_path),
            seed=0,
            rate=arguments["rate"],
            duration=arguments["duration"],
            interval=arguments["interval"],
        )


def test_abfs_locations_and_their_endpoints() -> None:
    location = parse_location("abfs://landing/click/stream", storage_account="acct")
    assert (location.account, location.container, location.prefix) == (
        "acct",
        "landing",
        "click/stream",
    )
    assert location.endpoint == "https://acct.blob.core.windows.net"
    assert location.blob_name("events/a.json") == "click/stream/events/a.json"
    assert location.relative("click/stream/events/a.json") == "events/a.json"

    driver_form = parse_location(
        "abfss://landing@acct.dfs.core.windows.net/p/", storage_account=None
    )
    assert (driver_form.account, driver_form.container, driver_form.prefix) == (
        "acct",
        "landing",
        "p",
    )
    root = parse_location("abfs://landing", storage_account="a")
    assert root.prefix == "" and root.blob_name("events/x") == "events/x"

    emulator = parse_location(
        "abfs://c/p", storage_account="devstoreaccount1", storage_endpoint="https://127.0.0.1:10000"
    )
    assert emulator.endpoint == "https://127.0.0.1:10000/devstoreaccount1"  # path-style
    custom = parse_location(
        "abfs://c/p", storage_account="a", storage_endpoint="https://blob.example.net/"
    )
    assert custom.endpoint == "https://blob.example.net"
    assert is_remote("abfs://c/p") and is_remote("ABFSS://c@a.dfs.core.windows.net/")
    assert not is_remote("landing") and not is_remote("/data/abfs://x")


@pytest.mark.parametrize(
    ("url", "account", "endpoint", "message"),
    [
        ("abfs://landing/p", None, None, "needs a storage account: pass --storage-account"),
        ("s3://bucket/p", "a", None, "is not an abfs:// location"),
        ("abfs:///p", "a", None, "is not an abfs:// location"),
        ("abfss://c@b.dfs.core.windows.net/p", "a", None, "names account 'b' but"),
        ("abfss://c@example.com/p", None, None, "expected CONTAINER@ACCOUNT.dfs.core"),
        ("abfs://c/p", "a", "127.0.0.1:10000", "is not a URL"),
        ("abfs://c/p", "a", "http://127.0.0.1:10000", "a token is only ever sent over HTTPS"),
    ],
)
def test_a_malformed_location_says_how_to_write_it(
    url: str, account: str | None, endpoint: str | None, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_location(url, storage_account=account, storage_endpoint=endpoint)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--stream", "--rate", "5"], "--stream takes --rate EVENTS_PER_SECOND and --duration"),
        (["--stream", "--rate", "5", "--duration", "5", "--events", "9"], "not --events"),
        (["--rate", "5"], "produce needs --events N"),
        (["--events", "5", "--storage-account", "a"], "apply to an abfs:// --out only"),
        (["--events", "5", "--users", "0"], "users must be >= 1"),
    ],
)
def test_produce_argument_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    message: str,
) -> None:
    assert cli.main(["produce", "--out", str(tmp_path), *arguments]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.json"))


def test_run_refuses_storage_options_for_a_local_landing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLICKSTREAM_PII_KEY", "k" * 32)
    arguments = ["run", "--landing", str(tmp_path), "--warehouse", str(tmp_path / "w")]
    assert cli.main([*arguments, "--client-id", "x"]) == 2
    assert "apply to an abfs:// --landing only" in capsys.readouterr().err
