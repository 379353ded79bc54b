"""Whether a DLT update has anything to do, decided without Spark (`pipeline.dlt.state`), and
the `--conf` settings of `clickstream dlt run`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clickstream.dlt_run import settings
from pipeline.dlt.state import digest, load_state, nothing_new, save_state
from pipeline.errors import ConfigurationError


@pytest.fixture
def pipeline(tmp_path: Path) -> tuple[Path, Path, Path]:
    source = tmp_path / "pipeline.py"
    source.write_text("import dlt\n")
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.json").write_text("{}\n")
    return source, landing, tmp_path / "warehouse" / "_dlt"


def test_the_same_sources_settings_and_files_are_nothing_new(
    pipeline: tuple[Path, Path, Path],
) -> None:
    source, landing, state_dir = pipeline
    run = digest([source], {"k": "v"})
    assert not nothing_new(load_state(state_dir), run)  # no update yet
    save_state(state_dir, run, [str(landing)])
    assert nothing_new(load_state(state_dir), run)
    (landing / "_schema.json").write_text("{}")  # Spark skips _ and . names; so does this
    (landing / ".crc").write_text("")
    assert nothing_new(load_state(state_dir), run)


@pytest.mark.parametrize("change", ["new file", "changed file", "edited source", "setting"])
def test_any_change_is_something_new(pipeline: tuple[Path, Path, Path], change: str) -> None:
    source, landing, state_dir = pipeline
    save_state(state_dir, digest([source], {"k": "v"}), [str(landing)])
    conf = {"k": "v"}
    if change == "new file":
        (landing / "sub").mkdir()
        (landing / "sub" / "b.json").write_text("{}\n")
    elif change == "changed file":
        (landing / "a.json").write_text('{"x": 1}\n')
        os.utime(landing / "a.json", ns=(1, 1))
    elif change == "edited source":
        source.write_text("import dlt  # edited\n")
    else:
        conf = {"k": "other"}
    assert not nothing_new(load_state(state_dir), digest([source], conf))


def test_conf_pairs_are_read_and_a_malformed_one_is_named() -> None:
    assert settings(["a.b=1", "path=/x=y", "empty="]) == {"a.b": "1", "path": "/x=y", "empty": ""}
    with pytest.raises(ConfigurationError, match=r"'landing'.*KEY=VALUE"):
        settings(["landing"])
