"""The pipeline configuration entries the definition files read, and nothing hard-coded.

Locally they come from the `configuration` block of `spark-pipeline.yml`; on Databricks from
the pipeline resource's `configuration` (`resources/clickstream.pipeline.yml`). Either way the
definitions read them with `spark.conf.get`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import SparkSession

from pipeline.config import (
    DEFAULT_WATERMARK_DELAY,
    NO_EXPECTATIONS,
    PiiKey,
    pii_key_from_reference,
)
from pipeline.errors import ConfigurationError
from pipeline.transforms.expectations import Expectation, load_expectations

__all__ = [
    "EXPECTATIONS",
    "LANDING",
    "NO_EXPECTATIONS",
    "PII_KEY_REF",
    "WATERMARK_DELAY",
    "Lookup",
    "PipelineSettings",
]

LANDING = "clickstream.landing"
PII_KEY_REF = "clickstream.pii_key_ref"
WATERMARK_DELAY = "clickstream.watermark_delay"
EXPECTATIONS = "clickstream.expectations"

Lookup = Callable[[str], str | None]


@dataclass(frozen=True)
class PipelineSettings:
    """What the definitions need to know, read from the pipeline configuration.

    Attributes:
        landing: the landing location (`events/`, `user_changes/` below it); a relative local
            path is taken from the directory of the spec file.
        pii_key_ref: where the PII key is (`env:`, `file:` or `conf:`), never the key itself.
        watermark_delay: silver's event-time watermark, a Spark interval string.
        expectations_module: module whose `EXPECTATIONS` holds the rules per table, or "none".
    """

    landing: str
    pii_key_ref: str
    watermark_delay: str = DEFAULT_WATERMARK_DELAY
    expectations_module: str = NO_EXPECTATIONS

    @classmethod
    def read(cls, lookup: Lookup) -> PipelineSettings:
        """Read the settings through `lookup` (configuration key to value, None if absent).

        Raises:
            ConfigurationError: a required entry is missing.
        """
        missing = [key for key in (LANDING, PII_KEY_REF) if not lookup(key)]
        if missing:
            raise ConfigurationError(
                f"The pipeline configuration lacks {missing}. Set them in the `configuration` "
                "block of spark-pipeline.yml (or of the bundle's pipeline resource), e.g. "
                f"{LANDING}: landing and {PII_KEY_REF}: env:CLICKSTREAM_PII_KEY."
            )
        return cls(
            landing=_location(lookup(LANDING) or ""),
            pii_key_ref=lookup(PII_KEY_REF) or "",
            watermark_delay=lookup(WATERMARK_DELAY) or DEFAULT_WATERMARK_DELAY,
            expectations_module=lookup(EXPECTATIONS) or NO_EXPECTATIONS,
        )

    @classmethod
    def of(cls, spark: SparkSession) -> PipelineSettings:
        """Read the settings from the session's configuration."""
        return cls.read(lambda key: spark.conf.get(key, None))

    def pii_key(self, spark: SparkSession) -> PiiKey:
        """The PII key the configuration refers to (`pipeline.config.pii_key_from_reference`)."""
        return pii_key_from_reference(self.pii_key_ref, lambda key: spark.conf.get(key, None))

    def events_path(self) -> str:
        """Where the raw event files land."""
        return f"{self.landing}/events"

    def user_changes_path(self) -> str:
        """Where the user CDC files land."""
        return f"{self.landing}/user_changes"

    def expectations(self) -> Mapping[str, Sequence[Expectation]]:
        """The rules per table of the configured module, none for "none"."""
        return load_expectations(self.expectations_module)


def _location(value: str) -> str:
    """A URI or absolute path as given; a relative local path made absolute."""
    if "://" in value or value.startswith("/"):
        return value.rstrip("/")
    return str(Path(value).resolve())
