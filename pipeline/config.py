"""The one place that reads the process environment.

Everything else receives its settings as arguments, so tests and adapters can inject them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import ConfigurationError, MissingPiiKeyError, UnsupportedModeError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = [
    "DEFAULT_EXPECTATIONS_MODULE",
    "DEFAULT_MAX_FILES_PER_TRIGGER",
    "DEFAULT_WATERMARK_DELAY",
    "EXPECTATIONS_ATTRIBUTE",
    "JAR_CACHE_ENV",
    "LOCAL_MASTER",
    "MASTER_ENV",
    "MIN_PII_KEY_BYTES",
    "NO_EXPECTATIONS",
    "PII_KEY_ENV",
    "PII_KEY_FILE_ENV",
    "PII_KEY_REFERENCE_SCHEMES",
    "SPARK_REMOTE_ENV",
    "UNRESOLVED_SECRET_PREFIX",
    "PiiKey",
    "SparkSettings",
    "ca_bundle_from_environment",
    "exposed_key_file",
    "java_home_from_environment",
    "java_tool_options",
    "managed_identity_endpoint",
    "parse_delay",
    "pii_key_from_environment",
    "pii_key_from_file",
    "pii_key_from_reference",
    "require_classic",
    "spark_settings_from_environment",
    "subprocess_environment",
    "with_java_options",
]

PII_KEY_ENV = "CLICKSTREAM_PII_KEY"
PII_KEY_FILE_ENV = "CLICKSTREAM_PII_KEY_FILE"
SPARK_REMOTE_ENV = "SPARK_REMOTE"
MASTER_ENV = "CLICKSTREAM_MASTER"
JAR_CACHE_ENV = "CLICKSTREAM_JAR_CACHE"
DEFAULT_JAR_CACHE = Path(".cache") / "jars"
"""Where the Delta jars are fetched to once (relative to the working directory), unless
$CLICKSTREAM_JAR_CACHE names another folder."""
MIN_PII_KEY_BYTES = 16


class PiiKey:
    """A secret key for keyed hashing; its value never shows in repr, str or logs."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_PII_KEY_BYTES:
            raise ConfigurationError(
                f"The PII key is {len(secret)} bytes long; it must be at least "
                f"{MIN_PII_KEY_BYTES}. Generate one with: "
                "python -c 'import secrets; print(secrets.token_hex(32))'"
            )
        self._secret = secret

    def reveal(self) -> bytes:
        """Return the raw key bytes. Call only where the key is used, never to print."""
        return self._secret

    def __repr__(self) -> str:
        return "PiiKey(<redacted>)"

    __str__ = __repr__


def pii_key_from_file(path: Path) -> PiiKey:
    """Read a PII key from a file (surrounding whitespace is stripped)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot read the PII key file {path}: {exc.strerror}. "
            f"Point {PII_KEY_FILE_ENV} (or --pii-key-file) at a readable file holding the key."
        ) from exc
    return PiiKey(text.encode("utf-8"))


def exposed_key_file(key_file: Path | None = None) -> str | None:
    """A warning when the key file in use (`key_file`, else $CLICKSTREAM_PII_KEY_FILE) can be
    read by other users of the machine, None otherwise (or when no file is in use)."""
    if key_file is None:
        named = os.environ.get(PII_KEY_FILE_ENV)
        if os.environ.get(PII_KEY_ENV) or not named:
            return None
        key_file = Path(named)
    try:
        mode = key_file.stat().st_mode
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (
        f"the PII key file {key_file} can be read by other users (mode {mode & 0o777:o}): "
        f"anyone who reads it can reverse every pseudonym by dictionary. Run: chmod 600 {key_file}"
    )


def pii_key_from_environment(key_file: Path | None = None) -> PiiKey:
    """Find the PII key: an explicit key file, else $CLICKSTREAM_PII_KEY, else its _FILE variant.

    Raises:
        MissingPiiKeyError: when none is set. There is deliberately no default key.
    """
    if key_file is not None:
        return pii_key_from_file(key_file)
    value = os.environ.get(PII_KEY_ENV)
    if value:
        return PiiKey(value.encode("utf-8"))
    file_value = os.environ.get(PII_KEY_FILE_ENV)
    if file_value:
        return pii_key_from_file(Path(file_value))
    raise MissingPiiKeyError(
        f"No PII key is configured, and there is no default key by design. Set {PII_KEY_ENV} "
        f"to a secret of at least {MIN_PII_KEY_BYTES} characters, or {PII_KEY_FILE_ENV} to a "
        "file holding one (for example: export "
        f"{PII_KEY_ENV}=$(python -c 'import secrets; print(secrets.token_hex(32))')). "
        "Keep the same key across runs: pseudonyms change when the key does."
    )


PII_KEY_REFERENCE_SCHEMES = ("env", "file", "conf")
"""How a pipeline configuration names the PII key without holding it: `env:VARIABLE`,
`file:PATH`, or `conf:KEY` (another configuration entry, which on Databricks holds a secret
reference `{{secrets/scope/key}}` that Databricks resolves at run time)."""

UNRESOLVED_SECRET_PREFIX = "{{secrets/"


def pii_key_from_reference(reference: str, lookup: Callable[[str], str | None]) -> PiiKey:
    """Find the PII key a pipeline configuration refers to, never taking it from the reference.

    Args:
        reference: `env:VARIABLE`, `file:PATH` or `conf:KEY` (see `PII_KEY_REFERENCE_SCHEMES`).
        lookup: reads another entry of the pipeline configuration (for `conf:`), None when the
            entry is absent.

    Raises:
        ConfigurationError: the reference has no known scheme, or what it names is missing.
        MissingPiiKeyError: the environment variable it names is not set.
    """
    scheme, _, target = reference.partition(":")
    if scheme not in PII_KEY_REFERENCE_SCHEMES or not target:
        raise ConfigurationError(
            f"The PII key reference {reference!r} is not one of env:VARIABLE, file:PATH or "
            "conf:KEY. The pipeline configuration names where the key is; it never holds it."
        )
    if scheme == "file":
        return pii_key_from_file(Path(target))
    if scheme == "env":
        value = os.environ.get(target)
        if not value:
            raise MissingPiiKeyError(
                f"The pipeline configuration takes the PII key from ${target}, which is not set. "
                f"Export it (for example: export {target}=$(python -c 'import secrets; "
                "print(secrets.token_hex(32))')) and keep it stable across runs."
            )
        return PiiKey(value.encode("utf-8"))
    value = lookup(target)
    if not value:
        raise ConfigurationError(
            f"The pipeline configuration takes the PII key from its entry {target!r}, which is "
            "not set. On Databricks set it to a secret reference, {{secrets/<scope>/<key>}}."
        )
    if value.startswith(UNRESOLVED_SECRET_PREFIX):
        raise ConfigurationError(
            f"The configuration entry {target!r} holds an unresolved secret reference: only "
            "Databricks resolves {{secrets/...}}. Locally, use env:VARIABLE or file:PATH."
        )
    return PiiKey(value.encode("utf-8"))


def subprocess_environment(
    extra: Mapping[str, str], *, without: Sequence[str] = ()
) -> dict[str, str]:
    """This process's environment plus `extra` and less `without`, for a child process such
    as `spark-pipelines`."""
    return {k: v for k, v in os.environ.items() if k not in without} | dict(extra)


def with_java_options(options: str) -> dict[str, str]:
    """This process's environment, with `options` added to the Java options every JVM started
    from it picks up (`JAVA_TOOL_OPTIONS`)."""
    if not options:
        return subprocess_environment({})
    inherited = os.environ.get("JAVA_TOOL_OPTIONS", "")
    return subprocess_environment({"JAVA_TOOL_OPTIONS": f"{inherited} {options}".strip()})


DEFAULT_WATERMARK_DELAY = "1 hour"
"""How late an event may be and still be deduplicated into silver, unless a run says otherwise."""
DEFAULT_MAX_FILES_PER_TRIGGER = 16
"""Landing files per micro-batch of a run, unless it says otherwise."""
LOCAL_MASTER = "local[2]"
EXPECTATIONS_ATTRIBUTE = "EXPECTATIONS"
"""The mapping of table names to rules an expectations module holds (`load_expectations`)."""
NO_EXPECTATIONS = "none"
"""The expectations module name that enforces no rules."""
DEFAULT_EXPECTATIONS_MODULE = "contracts.rules"
"""The rules a run enforces unless told otherwise (`clickstream run --expectations`)."""


@dataclass(frozen=True)
class SparkSettings:
    """How to obtain a SparkSession: a Spark Connect server (`remote`), or a JVM started here
    whose `master` is `local[N]` or a cluster manager such as `spark://host:7077`."""

    remote: str | None
    jar_cache: Path
    master: str = LOCAL_MASTER
    shuffle_partitions: int = 4
    driver_memory: str = "4g"
    short_lived: bool = False
    """A JVM for one small piece of work (a run with little new input, a command): it
    compiles with the quick compiler only, which costs less than it saves there."""

    @property
    def mode(self) -> str:
        """`local`, `standalone` (a cluster manager) or `connect`: for messages and reports."""
        if self.remote:
            return "connect"
        return "local" if self.master.startswith("local") else "standalone"


def spark_settings_from_environment(
    default_jar_cache: Path = DEFAULT_JAR_CACHE,
    *,
    master: str | None = None,
    remote: str | None = None,
) -> SparkSettings:
    """Spark settings: `remote`, else $SPARK_REMOTE, selects Spark Connect; `master`, else
    $CLICKSTREAM_MASTER, else local[2], the master; $CLICKSTREAM_JAR_CACHE, else
    `default_jar_cache`, the jar cache.

    Raises:
        ConfigurationError: both a master and a Spark Connect server are given, or the master
            is not a URL Spark knows.
    """
    cache = os.environ.get(JAR_CACHE_ENV)
    remote = remote or os.environ.get(SPARK_REMOTE_ENV) or None
    master = master or os.environ.get(MASTER_ENV) or None
    if remote and master:
        raise ConfigurationError(
            f"Both a Spark Connect server ({remote}) and a master ({master}) are set: a Spark "
            "Connect server has its own master. Give one of --remote/$SPARK_REMOTE and "
            "--master/$CLICKSTREAM_MASTER."
        )
    if remote and not remote.startswith("sc://"):
        raise ConfigurationError(
            f"The Spark Connect URL {remote!r} does not start with sc://. Give it as "
            "sc://HOST:PORT, for example sc://127.0.0.1:15002."
        )
    if master and not master.startswith(("local", "spark://", "yarn", "k8s://")):
        raise ConfigurationError(
            f"The master {master!r} is not one Spark knows. Give local[N], or a standalone "
            "cluster's spark://HOST:PORT (for example spark://127.0.0.1:7077)."
        )
    return SparkSettings(
        remote=remote,
        jar_cache=Path(cache) if cache else default_jar_cache,
        master=master or LOCAL_MASTER,
    )


def ca_bundle_from_environment() -> str | None:
    """The CA bundle TLS connections to cloud storage trust: $REQUESTS_CA_BUNDLE, else
    $SSL_CERT_FILE, else None (the system's and certifi's authorities)."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or None


def managed_identity_endpoint() -> str | None:
    """The managed-identity token endpoint of an App Service or Functions host
    ($IDENTITY_ENDPOINT), None where managed identity uses the instance metadata service."""
    return os.environ.get("IDENTITY_ENDPOINT") or None


def java_home_from_environment() -> str | None:
    """$JAVA_HOME, when set."""
    return os.environ.get("JAVA_HOME") or None


def java_tool_options() -> str:
    """$JAVA_TOOL_OPTIONS: options every JVM started here takes first (empty when unset)."""
    return os.environ.get("JAVA_TOOL_OPTIONS", "")


_UNITS = {
    "microsecond": timedelta(microseconds=1),
    "millisecond": timedelta(milliseconds=1),
    "second": timedelta(seconds=1),
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}


def parse_delay(text: str) -> timedelta:
    """A watermark delay such as "1 hour" or "2 hours 30 minutes" as a timedelta.

    The same text is what Spark's `withWatermark` takes (the Lakeflow adapters pass it on).

    Raises:
        ConfigurationError: the text is not pairs of a number and a unit (microseconds to
            weeks), or is not positive.
    """
    words = text.lower().replace(",", " ").split()
    total = timedelta()
    try:
        if not words or len(words) % 2:
            raise ValueError(text)
        for amount, unit in zip(words[::2], words[1::2], strict=True):
            total += float(amount) * _UNITS[unit.removesuffix("s")]
    except (KeyError, ValueError) as exc:
        raise ConfigurationError(
            f"The watermark delay {text!r} is not a duration such as '1 hour', '30 minutes' or "
            f"'1 day 12 hours' (units: {', '.join(_UNITS)})."
        ) from exc
    if total <= timedelta():
        raise ConfigurationError(f"The watermark delay must be positive, got {text!r}.")
    return total


def require_classic(spark: SparkSession | SparkSettings, command: str) -> None:
    """Refuse to run `command` over Spark Connect, saying why and what to run instead.

    The runner's micro-batch functions (`foreachBatch`) run in this process: they keep the
    run's progress, expectation counts and typed errors, read the tables' Delta logs and hold
    the key relation. Spark Connect would pickle them to its server and run them there. Its
    Delta operations use the `DeltaTable` API, which over Spark Connect needs Delta's Connect
    plugins on the server (`io.delta:delta-connect-server`), not published for Delta 4.4.

    Raises:
        UnsupportedModeError: `spark` is a Spark Connect session, or the settings name a
            Spark Connect server.
    """
    if isinstance(spark, SparkSettings):
        remote = spark.remote
    else:
        remote = "this Spark Connect session" if _is_connect(spark) else None
    if remote:
        raise UnsupportedModeError(
            f"{command} cannot run over Spark Connect ({remote}): its micro-batch functions "
            "(foreachBatch) must run in this process, and it creates tables with Delta's "
            "DeltaTable API, which over Spark Connect needs Delta's Connect plugins on the "
            "server. Run it "
            "on local Spark, or on a cluster with --master spark://HOST:PORT "
            "($CLICKSTREAM_MASTER); over a Spark Connect server, run the pipeline's Lakeflow "
            "definitions instead: python -m pipeline.lakeflow run --remote sc://HOST:PORT."
        )


def _is_connect(spark: SparkSession) -> bool:
    # The class's module, not an import of pyspark: the command line checks its settings
    # before pyspark loads.
    return type(spark).__module__.startswith("pyspark.sql.connect")
