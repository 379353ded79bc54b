"""What the `clickstream` commands share: their common options, the key, Spark, messages."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.arguments import seconds
from pipeline.errors import ClickstreamError, ConfigurationError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from pipeline.config import PiiKey, SparkSettings
    from pipeline.landing.azure_landing import BlobLanding

__all__ = [
    "add_key_file",
    "add_spark_options",
    "add_storage_options",
    "add_wait",
    "add_warehouse",
    "argument_error",
    "blob_landing",
    "existing_warehouse",
    "pii_key",
    "say",
    "spark_settings",
    "start_spark",
]


def say(message: str) -> None:
    """A message for the person at the terminal (stderr, flushed)."""
    print(message, file=sys.stderr, flush=True)


def add_warehouse(command: argparse.ArgumentParser) -> None:
    command.add_argument("--warehouse", type=Path, required=True, help="Delta warehouse directory")


def add_wait(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--wait",
        type=seconds,
        default=0.0,
        metavar="SECONDS",
        help=(
            "when another run is writing the warehouse, wait up to SECONDS for it to finish "
            "(default 0: exit at once with a message naming it)"
        ),
    )


def add_spark_options(command: argparse.ArgumentParser) -> None:
    """--master and --remote: where Spark runs (default: local[2] in this process)."""
    where = command.add_mutually_exclusive_group()
    where.add_argument(
        "--master",
        default=None,
        help=(
            "Spark master: local[N] or a standalone cluster's spark://HOST:PORT "
            "(default: $CLICKSTREAM_MASTER, else local[2])"
        ),
    )
    where.add_argument(
        "--remote",
        default=None,
        help="a Spark Connect server, sc://HOST:PORT (default: $SPARK_REMOTE)",
    )


def spark_settings(args: argparse.Namespace) -> SparkSettings:
    from pipeline.config import spark_settings_from_environment

    master, remote = getattr(args, "master", None), getattr(args, "remote", None)
    return spark_settings_from_environment(master=master, remote=remote)


def start_spark(args: argparse.Namespace, log_file: Path | None = None) -> SparkSession:
    """A session for a command that always needs one (not `run`, which decides itself);
    with `log_file`, Spark's own output goes there instead of the terminal."""
    from pipeline.config import require_classic
    from pipeline.run.session import build_session

    require_classic(spark_settings(args), f"`clickstream {args.command}`")
    say("starting Spark ..." + (f" (its log: {log_file})" if log_file else ""))
    return build_session(spark_settings(args), log_file=log_file)


def add_storage_options(command: argparse.ArgumentParser) -> None:
    storage = command.add_argument_group(
        "Azure storage", "for an abfs:// landing; the identity is managed identity, then az login"
    )
    storage.add_argument("--storage-account", default=None, help="storage account name")
    storage.add_argument(
        "--storage-endpoint",
        default=None,
        metavar="URL",
        help="blob service URL (default https://ACCOUNT.blob.core.windows.net), e.g. an emulator",
    )
    storage.add_argument(
        "--client-id", default=None, help="client id of a user-assigned managed identity"
    )


def blob_landing(args: argparse.Namespace, location: str, flag: str) -> BlobLanding | None:
    """The Azure landing `location` names (with the storage options), or None for a local
    directory, which takes none of them."""
    from pipeline.landing.azure_landing import BlobLanding, Identity, is_remote, parse_location

    if not is_remote(location):
        if args.storage_account or args.storage_endpoint or args.client_id:
            raise ConfigurationError(
                "--storage-account, --storage-endpoint and --client-id apply to an abfs:// "
                f"{flag} only; {location!r} is a local directory"
            )
        return None
    return BlobLanding(
        parse_location(
            location,
            storage_account=args.storage_account,
            storage_endpoint=args.storage_endpoint,
        ),
        Identity(args.client_id),
    )


def add_key_file(command: argparse.ArgumentParser, help_text: str | None = None) -> None:
    command.add_argument(
        "--pii-key-file",
        type=Path,
        default=None,
        help=help_text
        or "file holding the PII key (default: $CLICKSTREAM_PII_KEY, $CLICKSTREAM_PII_KEY_FILE)",
    )


def pii_key(key_file: Path | None) -> PiiKey:
    """The PII key, with a warning when its file is readable by others."""
    from pipeline.config import exposed_key_file, pii_key_from_environment

    key = pii_key_from_environment(key_file)
    warning = exposed_key_file(key_file)
    if warning:
        say(f"warning: {warning}")
    return key


def existing_warehouse(warehouse: Path) -> Path:
    if not warehouse.is_dir():
        raise ConfigurationError(
            f"No warehouse at {warehouse}: give the --warehouse that `clickstream run` wrote."
        )
    return warehouse.resolve()


def argument_error(error: ValueError) -> ClickstreamError:
    """A generator's ValueError (an argument out of range) as the error `main` reports; our own
    errors (InputError is a ValueError too) as they are."""
    return error if isinstance(error, ClickstreamError) else ConfigurationError(str(error))
