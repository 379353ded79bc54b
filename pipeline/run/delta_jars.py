"""The Delta Lake jars: which ones match the installed pyspark and delta-spark, and a flat
cache of them in a project-local directory, so that later sessions start without network
access. A first session fills it through Spark's own Maven resolver (Ivy); where that cannot
reach Maven Central, the `mvn` command line fetches them (`pipeline.run.session`)."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

from pipeline.errors import IncompatibleVersionsError

__all__ = [
    "SCALA_VERSION",
    "cache_from_ivy",
    "cached_jars",
    "check_versions",
    "delta_artifacts",
    "fetch_with_maven",
]

SCALA_VERSION = "2.13"


def delta_artifacts() -> tuple[str, ...]:
    """Maven coordinates of the Delta jars matching the installed pyspark and delta-spark."""
    spark_version = Version(importlib.metadata.version("pyspark"))
    delta_version = importlib.metadata.version("delta-spark")
    spark_minor = f"{spark_version.major}.{spark_version.minor}"
    return (
        f"io.delta:delta-spark_{spark_minor}_{SCALA_VERSION}:{delta_version}",
        f"io.delta:delta-storage:{delta_version}",
    )


def check_versions() -> None:
    """Fail early, with the fix, when pyspark and delta-spark do not belong together."""
    pyspark_version = importlib.metadata.version("pyspark")
    for requirement_text in importlib.metadata.requires("delta-spark") or []:
        requirement = Requirement(requirement_text)
        if requirement.name == "pyspark" and not requirement.specifier.contains(
            pyspark_version, prereleases=True
        ):
            delta_version = importlib.metadata.version("delta-spark")
            raise IncompatibleVersionsError(
                f"delta-spark {delta_version} needs pyspark{requirement.specifier}, but pyspark "
                f"{pyspark_version} is installed. Reinstall the pinned pair from pyproject.toml "
                "(pip install -e .), or install a delta-spark release built for your pyspark."
            )


def _jar_name(coordinate: str) -> str:
    _, artifact, version = coordinate.split(":")
    return f"{artifact}-{version}.jar"


def cached_jars(cache: Path) -> list[Path] | None:
    """The cached Delta jars, or None when any of them is missing."""
    jars = [cache / _jar_name(coordinate) for coordinate in delta_artifacts()]
    return jars if all(jar.is_file() for jar in jars) else None


def cache_from_ivy(cache: Path) -> None:
    """Copy the Delta jars Spark's resolver just downloaded into the flat cache."""
    ivy_jars = cache / "ivy" / "jars"
    for coordinate in delta_artifacts():
        group, artifact, version = coordinate.split(":")
        source = ivy_jars / f"{group}_{artifact}-{version}.jar"
        if source.is_file():
            shutil.copy2(source, cache / _jar_name(coordinate))


def fetch_with_maven(cache: Path) -> list[Path] | None:
    """Fetch the Delta jars with the `mvn` command line, when Maven is installed."""
    mvn = shutil.which("mvn")
    if mvn is None:
        return None
    for coordinate in delta_artifacts():
        completed = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "dependency:copy",
                f"-Dartifact={coordinate}",
                f"-DoutputDirectory={cache}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            return None
    return cached_jars(cache)
