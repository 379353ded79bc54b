"""One error hierarchy for the project: every error names what was wrong and how to fix it."""

from __future__ import annotations


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


class InputError(ClickstreamError, ValueError):
    """Raised when input data or a path given by the user cannot be used."""


class ChangeFeedError(ClickstreamError, ValueError):
    """Raised when a change feed or its AUTO CDC options cannot be applied as asked."""
