"""One error hierarchy for the project: every error names what was wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ChangeFeedError",
    "ClickstreamError",
    "ConfigurationError",
    "DamagedStateError",
    "DeltaJarsUnavailableError",
    "EnvironmentSetupError",
    "ExpectationFailedError",
    "IncompatibleVersionsError",
    "InputError",
    "InvalidExpectationError",
    "JavaNotFoundError",
    "MissingPiiKeyError",
    "PiiKeyMismatchError",
    "RuleFailure",
    "StorageAccessError",
    "StorageFullError",
    "UnknownPersonError",
    "UnsupportedModeError",
    "WarehouseBusyError",
]


class ClickstreamError(Exception):
    """Raised for any failure this project detects and explains itself."""


class ConfigurationError(ClickstreamError, ValueError):
    """Raised when a setting (environment variable, option, file) is missing or invalid."""


class MissingPiiKeyError(ConfigurationError):
    """Raised when no PII pseudonymization key is configured."""


class EnvironmentSetupError(ClickstreamError, RuntimeError):
    """Raised when the machine lacks something Spark needs (Java, Delta jars, matching versions)."""


class JavaNotFoundError(EnvironmentSetupError):
    """Raised when no Java 17+ runtime can be found to start Spark."""


class IncompatibleVersionsError(EnvironmentSetupError):
    """Raised when the installed pyspark and delta-spark versions do not work together."""


class DeltaJarsUnavailableError(EnvironmentSetupError):
    """Raised when the Delta Lake jars are neither cached nor downloadable."""


class UnsupportedModeError(ConfigurationError):
    """Raised when a command cannot run where Spark was asked to run (over Spark Connect)."""


class InputError(ClickstreamError, ValueError):
    """Raised when input data or a path given by the user cannot be used."""


class WarehouseBusyError(ClickstreamError, RuntimeError):
    """Raised when another process is writing the warehouse (one writer at a time)."""


class DamagedStateError(ClickstreamError, RuntimeError):
    """Raised when a warehouse's checkpoints or tables are damaged or disagree."""


class StorageFullError(ClickstreamError, OSError):
    """Raised when the warehouse's file system has no space left for a write."""


class StorageAccessError(ClickstreamError, RuntimeError):
    """Raised when cloud storage cannot be reached, or refuses the identity the run used."""


class PiiKeyMismatchError(ConfigurationError):
    """Raised when the PII key is not the one that made the warehouse's pseudonyms."""


class UnknownPersonError(InputError):
    """Raised when an erasure names a person no table or landing file holds."""


class InvalidExpectationError(ConfigurationError):
    """Raised when an expectation rule is malformed or does not fit the table it is declared on."""


@dataclass(frozen=True)
class RuleFailure:
    """One `fail` rule that rows did not meet: its name, description, count and a few samples."""

    rule: str
    description: str
    failed: int
    samples: tuple[Mapping[str, object], ...]


class ExpectationFailedError(ClickstreamError, RuntimeError):
    """Raised when rows fail an `expect_or_fail` rule: the run stops with the batch uncommitted.

    Attributes:
        table: the table whose rules were checked.
        failures: one entry per failing `fail` rule, with its failing count and sample rows.
        rows: how many rows the checked batch held.
    """

    def __init__(self, table: str, failures: tuple[RuleFailure, ...], rows: int) -> None:
        self.table = table
        self.failures = failures
        self.rows = rows
        super().__init__(_failure_message(table, failures, rows))

    @property
    def rule(self) -> str:
        """The name of the first failing rule."""
        return self.failures[0].rule

    @property
    def failed(self) -> int:
        """How many rows failed the first failing rule."""
        return self.failures[0].failed


_SAMPLE_VALUE_WIDTH = 40


def _sample_text(sample: Mapping[str, object]) -> str:
    def show(value: object) -> str:
        text = "null" if value is None else str(value)
        return text if len(text) <= _SAMPLE_VALUE_WIDTH else text[: _SAMPLE_VALUE_WIDTH - 1] + "…"

    return ", ".join(f"{name}={show(value)}" for name, value in sample.items())


def _failure_message(table: str, failures: tuple[RuleFailure, ...], rows: int) -> str:
    lines = [
        f"Table {table}: {len(failures)} expect_or_fail rule(s) failed in a batch of "
        f"{rows:,} rows, so the run stopped without committing anything of that batch."
    ]
    for failure in failures:
        lines.append(
            f"  rule '{failure.rule}' ({failure.description}): {failure.failed:,} of {rows:,} "
            "rows fail it."
        )
        lines += [f"    e.g. {_sample_text(sample)}" for sample in failure.samples]
    lines.append(
        "Fix the input, or change the rule's action to 'drop' or 'warn', and run again: the "
        "batch is reprocessed from its checkpoint, so nothing is lost."
    )
    return "\n".join(lines)


class ChangeFeedError(ClickstreamError, ValueError):
    """Raised when a change feed or its AUTO CDC options cannot be applied as asked."""
