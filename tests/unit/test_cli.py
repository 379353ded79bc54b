"""The command line without a JVM: produce, argument errors, missing key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import cli, config


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
