"""Configuration without a JVM: the PII key, Spark settings, version pairing."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import sys
from pathlib import Path

import pytest

from pipeline import config
from pipeline.errors import (
    ConfigurationError,
    IncompatibleVersionsError,
    JavaNotFoundError,
    MissingPiiKeyError,
    UnsupportedModeError,
)
from pipeline.run import delta_jars, session


def test_missing_key_is_an_error_that_says_how_to_set_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(config.PII_KEY_ENV, raising=False)
    monkeypatch.delenv(config.PII_KEY_FILE_ENV, raising=False)
    with pytest.raises(MissingPiiKeyError, match=config.PII_KEY_ENV):
        config.pii_key_from_environment()


def test_short_key_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.PII_KEY_ENV, "short")
    with pytest.raises(ConfigurationError, match="at least 16"):
        config.pii_key_from_environment()


def test_key_file_wins_and_is_stripped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.PII_KEY_ENV, "environment-key-0123456789")
    key_file = tmp_path / "key"
    key_file.write_text("file-key-0123456789abcdef\n", encoding="utf-8")
    assert config.pii_key_from_environment(key_file).reveal() == b"file-key-0123456789abcdef"


def test_unreadable_key_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="missing-key-file"):
        config.pii_key_from_file(tmp_path / "missing-key-file")


def test_key_never_shows_in_repr_or_str() -> None:
    key = config.PiiKey(b"do-not-print-this-secret")
    assert "do-not-print" not in repr(key)
    assert "do-not-print" not in str(key)
    assert "do-not-print" not in f"{key}"


def test_spark_remote_and_jar_cache_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(config.MASTER_ENV, raising=False)
    monkeypatch.setenv(config.SPARK_REMOTE_ENV, "sc://spark.example:15002")
    monkeypatch.setenv(config.JAR_CACHE_ENV, str(tmp_path))
    settings = config.spark_settings_from_environment(Path("unused"))
    assert settings.remote == "sc://spark.example:15002"
    assert settings.jar_cache == tmp_path


def test_delta_artifacts_match_the_installed_spark_minor_version() -> None:
    spark_jar, storage_jar = delta_jars.delta_artifacts()
    assert spark_jar.startswith("io.delta:delta-spark_4.2_2.13:")
    assert storage_jar.startswith("io.delta:delta-storage:")
    delta_jars.check_versions()  # the pinned pair is compatible


def test_cached_jars_needs_every_jar(tmp_path: Path) -> None:
    assert delta_jars.cached_jars(tmp_path) is None
    names = [c.split(":")[1] + "-" + c.split(":")[2] + ".jar" for c in delta_jars.delta_artifacts()]
    (tmp_path / names[0]).touch()
    assert delta_jars.cached_jars(tmp_path) is None
    (tmp_path / names[1]).touch()
    assert delta_jars.cached_jars(tmp_path) == [tmp_path / name for name in names]


def test_mismatched_pyspark_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    real_version = importlib.metadata.version

    def fake_version(name: str) -> str:
        return "4.3.0" if name == "pyspark" else real_version(name)

    monkeypatch.setattr(importlib.metadata, "version", fake_version)
    with pytest.raises(IncompatibleVersionsError, match=r"needs pyspark.*4\.3\.0 is installed"):
        delta_jars.check_versions()


def test_missing_java_is_explained_before_spark_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.setattr(session, "java_home_from_environment", lambda: None)
    with pytest.raises(JavaNotFoundError, match="Java 17"):
        session.build_session(config.SparkSettings(remote=None, jar_cache=tmp_path))


def test_the_master_comes_from_the_option_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(config.SPARK_REMOTE_ENV, raising=False)
    monkeypatch.delenv(config.MASTER_ENV, raising=False)
    assert config.spark_settings_from_environment(Path("unused")).mode == "local"
    monkeypatch.setenv(config.MASTER_ENV, "spark://127.0.0.1:7077")
    settings = config.spark_settings_from_environment(Path("unused"))
    assert (settings.master, settings.mode) == ("spark://127.0.0.1:7077", "standalone")
    chosen = config.spark_settings_from_environment(Path("unused"), master="local[1]")
    assert (chosen.master, chosen.mode) == ("local[1]", "local")


@pytest.mark.parametrize(
    ("master", "remote", "named"),
    [
        ("spark://127.0.0.1:7077", "sc://127.0.0.1:15002", "has its own master"),
        ("127.0.0.1:7077", None, "spark://HOST:PORT"),
        (None, "127.0.0.1:15002", "sc://HOST:PORT"),
    ],
)
def test_a_wrong_master_or_server_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, master: str | None, remote: str | None, named: str
) -> None:
    monkeypatch.delenv(config.SPARK_REMOTE_ENV, raising=False)
    monkeypatch.delenv(config.MASTER_ENV, raising=False)
    with pytest.raises(ConfigurationError, match=re.escape(named)):
        config.spark_settings_from_environment(Path("unused"), master=master, remote=remote)


def test_the_runner_refuses_spark_connect_naming_the_feature_and_the_way_out() -> None:
    settings = config.SparkSettings(remote="sc://127.0.0.1:15002", jar_cache=Path("unused"))
    with pytest.raises(UnsupportedModeError) as raised:
        config.require_classic(settings, "`clickstream run`")
    message = str(raised.value)
    assert "sc://127.0.0.1:15002" in message
    assert "foreachBatch" in message
    assert "--master spark://HOST:PORT" in message
    assert "python -m pipeline.lakeflow run --remote" in message
    config.require_classic(config.SparkSettings(remote=None, jar_cache=Path("u")), "run")


def test_cluster_settings_ship_this_python_and_bind_loopback() -> None:
    assert session.cluster_conf("local[2]") == {}
    conf = session.cluster_conf("spark://127.0.0.1:7077")
    assert conf["spark.pyspark.python"] == sys.executable
    assert conf["spark.driver.host"] == "127.0.0.1"
