"""Sessions: `nox -s tests` (default) and `nox -s scenarios` are the README's two commands."""

from __future__ import annotations

import os
from pathlib import Path

import nox

# uv when installed (CI installs it: pyspark and GX install in seconds from its cache), else venv.
nox.options.default_venv_backend = "uv|venv"
# uv writes no bytecode unless asked (pip does), and where PYTHONDONTWRITEBYTECODE is set, as on
# CI's machines, every process then compiles what it imports from source: 9.1 s to import GX,
# 1.6 s pandas, about 2 s of a 200-event `clickstream run`. Compiled once at install: 3.7, 0.4.
os.environ.setdefault("UV_COMPILE_BYTECODE", "1")
nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PROJECT = Path(__file__).parent
PYPROJECT = nox.project.load_toml("pyproject.toml")
# The Delta jars are fetched from Maven Central once and reused by every session and run.
ENV = {"CLICKSTREAM_JAR_CACHE": str(PROJECT / ".cache" / "jars"), "PYTHONHASHSEED": "0"}


def _with_key() -> dict[str, str]:
    """ENV and a PII key: the caller's $CLICKSTREAM_PII_KEY, else a throwaway one for the
    generated data (real deployments set their own secret)."""
    return {
        **ENV,
        "CLICKSTREAM_PII_KEY": os.environ.get("CLICKSTREAM_PII_KEY", os.urandom(32).hex()),
    }


def _install(session: nox.Session, *groups: str) -> None:
    session.install("-e", ".")
    for group in groups:
        session.install(*nox.project.dependency_groups(PYPROJECT, group))


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Run unit tests (no JVM) and Spark + Delta tests on tiny data, one shared session."""
    _install(session, "test")
    # The slowest tests are listed at the end: where the suite's time goes, in every CI log.
    session.run("pytest", "--durations=15", *session.posargs, env=ENV)


@nox.session(python="3.11", default=False)
def properties(session: nox.Session) -> None:
    """Run the Hypothesis properties, `ci` profile: 200 examples (incremental gold 30, bytes 60)."""
    _install(session, "test")
    session.run(
        "pytest", "-m", "property", *session.posargs, env={**ENV, "HYPOTHESIS_PROFILE": "ci"}
    )


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """Check style, import boundaries and types (ruff, mypy --strict)."""
    _install(session, "lint", "test", "lakeflow", "bench", "duckdb")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session(python="3.11")
def lakeflow(session: nox.Session) -> None:
    """Run the SDP definitions with spark-pipelines, compare with the runner; check the bundle."""
    _install(session, "lakeflow")
    session.run(
        "pytest", "tests/lakeflow", "tests/unit/test_lakeflow.py", "-s", *session.posargs, env=ENV
    )


@nox.session(python="3.11")
def scenarios(session: nox.Session) -> None:
    """Run every fault scenario through the real pipeline; non-zero exit when one fails."""
    _install(session)
    session.run("python", "-m", "scenarios", *session.posargs, env=_with_key())


AZURITE_VERSION = "3.35.0"  # the newest that runs on Node 20; later ones declare Node 22
AZURITE = PROJECT / ".cache" / "azurite"


@nox.session(python="3.11")
def azure(session: nox.Session) -> None:
    """Produce to Azurite (HTTPS, OAuth, a managed-identity endpoint) and run from it."""
    _install(session, "test")
    installed = AZURITE / "node_modules" / "azurite" / "package.json"
    if not installed.exists() or f'"version": "{AZURITE_VERSION}"' not in installed.read_text():
        AZURITE.mkdir(parents=True, exist_ok=True)
        session.run(
            "npm", "install", "--no-audit", "--no-fund", "--prefix", str(AZURITE),
            f"azurite@{AZURITE_VERSION}",
            external=True,
        )  # fmt: skip
    session.run("pytest", "tests/azure", *session.posargs, env=ENV)


@nox.session(python="3.11", default=False)
def chaos(session: nox.Session) -> None:
    """Kill runs (SIGKILL) at dangerous moments, resume, check every row; `-- --smoke` for CI."""
    _install(session)
    arguments = session.posargs or ["--kills", "50", "--full-disk"]
    session.run("python", "-m", "scenarios.chaos", *arguments, env=_with_key())


@nox.session(python="3.11")
def cluster(session: nox.Session) -> None:
    """Local, standalone cluster and Spark Connect runs of one landing, compared row by row."""
    _install(session)
    session.run("python", "-m", "scenarios.cluster", *session.posargs, env=_with_key())


DLT_PIPELINES = {
    "customers_cdc": (["examples/customers_cdc/pipeline.py"], "examples/customers_cdc/harness.yml"),
    "orders": (["examples/orders/pipeline.py"], "examples/orders/harness.yml"),
    # The clickstream pipeline's own SDP definitions, as any user's pipeline.
    "clickstream": (
        [
            f"pipeline/lakeflow/transformations/{layer}_tables.py"
            for layer in ("bronze", "silver", "gold")
        ],
        "pipeline/lakeflow/harness.yml",
    ),
}


@nox.session(python="3.11", default=False)
def dlt(session: nox.Session) -> None:
    """The generic scenarios on the example DLT pipelines and the clickstream definitions
    (`-- --only clean` for the smallest)."""
    _install(session)
    for name, (sources, harness) in DLT_PIPELINES.items():
        session.run(
            "python",
            "-m",
            "scenarios",
            "--pipeline",
            *[str(PROJECT / source) for source in sources],
            "--harness",
            str(PROJECT / harness),
            "--report-dir",
            str(PROJECT / "reports" / "dlt" / name),
            *session.posargs,
            env=_with_key(),
        )


@nox.session(python="3.11")
def cost(session: nox.Session) -> None:
    """Count each flow's Spark jobs and Delta commits on a fixed workload; fail when one grew."""
    _install(session)
    session.run("python", "-m", "benchmarks.cost_gate", *session.posargs, env=ENV)


@nox.session(python="3.11", default=False)
def benchmarks(session: nox.Session) -> None:
    """Time the pipeline against same-run references; fail on a regression (`-- --size full`)."""
    _install(session, "bench", "duckdb")
    session.run("python", "-m", "benchmarks", *session.posargs, env=ENV)
