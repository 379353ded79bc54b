"""The command line without a JVM: produce, argument errors, missing key, the event log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clickstream import cli, privacy
from pipeline import config
from pipeline.observe import event_log, flows


def test_produce_writes_the_landing_layout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["produce", "--out", str(tmp_path), "--events", "120", "--seed", "3"]) == 0
    event_lines = sum(
        len(path.read_bytes().splitlines()) for path in (tmp_path / "events").glob("*.json")
    )
    assert event_lines == 120
    assert list((tmp_path / "user_changes").glob("*.json"))
    assert "wrote 120 events" in capsys.readouterr().out


def test_produce_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arguments = ["produce", "--out", str(tmp_path), "--events", "10", "--seed", "3"]
    assert cli.main(arguments) == 0
    assert cli.main(arguments) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


def test_start_without_zone_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["produce", "--out", "x", "--events", "1", "--start", "2026-11-01T00:00:00"])
    assert "no time zone" in capsys.readouterr().err


def test_run_without_a_key_fails_before_starting_spark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(config.PII_KEY_ENV, raising=False)
    monkeypatch.delenv(config.PII_KEY_FILE_ENV, raising=False)
    code = cli.main(["run", "--landing", str(tmp_path), "--warehouse", str(tmp_path / "w")])
    assert code == 2
    err = capsys.readouterr().err
    assert "No PII key" in err
    assert "starting Spark" not in err


def test_a_run_with_a_key_the_warehouse_does_not_know_fails_before_starting_spark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.privacy import key_registry

    landing = tmp_path / "landing"
    (landing / "events").mkdir(parents=True)
    key_registry.admit(tmp_path / "warehouse", config.PiiKey(b"the-warehouse-key-0123456789"))
    monkeypatch.setenv(config.PII_KEY_ENV, "another-key-0123456789abcdef")
    arguments = ["run", "--landing", str(landing), "--warehouse", str(tmp_path / "warehouse")]
    assert cli.main(arguments) == 2
    error = capsys.readouterr().err
    assert "is not the key of" in error
    assert "another-key-0123456789abcdef" not in error

    # The refused run is a FAILED update, and neither key is in the event log.
    assert cli.main(["history", "--warehouse", str(tmp_path / "warehouse"), "--json"]) == 0
    output = capsys.readouterr().out
    [update] = json.loads(output)
    assert update["state"] == "FAILED"
    assert update["error"].startswith("PiiKeyMismatchError: ")
    log = b"".join(p.read_bytes() for p in (tmp_path / "warehouse" / "_event_log").rglob("*.*"))
    assert b"another-key" not in log and b"the-warehouse-key" not in log


def test_history_and_lineage_read_the_event_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    warehouse = str(tmp_path)
    for update_id in ("u-1", "u-2"):
        with event_log.recorded_update(
            tmp_path, update_id, flows=flows.FLOWS, full_refresh=False, runner="clickstream run"
        ):
            pass
    assert cli.main(["history", "--warehouse", warehouse, "--limit", "1"]) == 0
    listed = capsys.readouterr().out
    assert "u-2" in listed and "u-1" not in listed and "COMPLETED" in listed
    assert cli.main(["history", "--warehouse", warehouse, "--update", "u-1"]) == 0
    assert "update u-1: COMPLETED" in capsys.readouterr().out
    assert cli.main(["history", "--warehouse", warehouse, "--update", "nope"]) == 2
    assert "No update 'nope'" in capsys.readouterr().err
    assert cli.main(["lineage", "--warehouse", warehouse, "--json"]) == 0
    edges = {(e["input"], e["output"]) for e in json.loads(capsys.readouterr().out)}
    assert ("landing/events", "bronze_events") in edges
    assert ("gold_sessions", "gold_funnel_daily") in edges
    assert cli.main(["lineage", "--warehouse", warehouse]) == 0
    assert "bronze_events" in capsys.readouterr().out


def test_history_of_a_missing_warehouse_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["history", "--warehouse", str(tmp_path / "nowhere")]) == 2
    assert "No warehouse at" in capsys.readouterr().err


def test_a_key_file_others_can_read_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(config.PII_KEY_ENV, raising=False)
    key_file = tmp_path / "key"
    key_file.write_text("a-key-file-key-0123456789abcdef")
    key_file.chmod(0o644)
    arguments = ["run", "--landing", str(tmp_path / "absent"), "--warehouse", str(tmp_path)]
    assert cli.main([*arguments, "--pii-key-file", str(key_file)]) == 2  # no landing folder
    assert "chmod 600" in capsys.readouterr().err


def _verification(returning: list[int], findings: int) -> dict[str, object]:
    return {
        "files_read": 3,
        "files_by_kind": {"parquet": 1, "text": 2},
        "findings": [{"label": "email #1", "path": "t/a.parquet", "where": "text"}] * findings,
        "unreadable_files": [],
        "time_travel": {
            "silver_events": {
                "versions": 3,
                "versions_read": 2,
                "versions_unreadable": [0],
                "versions_returning_person": returning,
            }
        },
        "passed": not returning and not findings,
    }


def test_the_verification_says_what_is_left_and_why() -> None:
    assert privacy.render_verification(_verification([], 0))[-1].startswith("verification passed")
    older = privacy.render_verification(_verification([1], 1))
    assert "FOUND email #1 in t/a.parquet" in older[1]
    assert "retention" in older[-1]
    current = privacy.render_verification(_verification([2], 1))
    assert "current version of silver_events" in current[-1]


def test_privacy_commands_parse_their_flags() -> None:
    parser = cli._parser()
    forget = parser.parse_args(
        ["forget", "--landing", "l", "--warehouse", "w", "--user-id", "u-1", "--purge-now"]
    )
    assert (forget.purge_now, forget.include_landing, forget.wait) == (True, False, 0.0)
    verify = parser.parse_args(
        ["verify-erasure", "--warehouse", "w", "--user-id", "u-1", "--ip", "a", "--ip", "b"]
    )
    assert verify.ip == ["a", "b"]
    rotate = parser.parse_args(
        ["rotate-key", "--landing", "l", "--warehouse", "w", "--new-key-file", "k"]
    )
    assert rotate.new_key_file == Path("k") and not rotate.purge_now
