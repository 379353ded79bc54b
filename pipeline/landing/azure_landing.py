"""A landing in Azure Blob Storage / ADLS Gen2, reached with an Azure identity.

`abfs://CONTAINER/PREFIX` (or `abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/PREFIX`) names
the landing; `BlobLanding` writes files there (the producer) and `copy_new_files` brings the
files not yet copied into a local folder (the runner reads that folder).

Libraries: `azure-identity` for the token (managed identity, then the developer credentials
of `DefaultAzureCredential`) and `azure-storage-blob` for the data. Both are Microsoft's own
SDKs, kept in step with the service; the blob endpoint serves ADLS Gen2 accounts too, and
unlike `adlfs` (fsspec) they need no second file-system layer to get retries, conditional
writes and per-request MD5 checks. No account key or connection string is ever used.

Files are never appended to or overwritten: an upload is conditional (`If-None-Match: *`), so
a retry of an upload whose answer was lost finds the blob there; it is accepted only when its
MD5 equals the file's. Put Blob and Put Block List are atomic: nobody sees a partial file.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline import config
from pipeline.errors import ConfigurationError, InputError, StorageAccessError

__all__ = [
    "LANDING_CACHE",
    "BlobLanding",
    "BlobLocation",
    "CopySummary",
    "Identity",
    "cache_folder",
    "copy_new_files",
    "is_remote",
    "parse_location",
]

LANDING_FOLDERS = ("events/", "user_changes/")
LANDING_CACHE = "_landing"
"""Where a run copies a remote landing's files, under the warehouse (`cache_folder`)."""
_SCHEMES = ("abfs", "abfss")
_DFS_SUFFIX = ".dfs.core.windows.net"
_ROLE_HINT = {
    "write": "Storage Blob Data Contributor",
    "read": "Storage Blob Data Reader (or Contributor)",
}


def is_remote(location: str) -> bool:
    """Whether `location` names cloud storage (`abfs://` or `abfss://`), not a local path."""
    return location.split("://", 1)[0].lower() in _SCHEMES and "://" in location


@dataclass(frozen=True)
class BlobLocation:
    """A folder of a blob container.

    Attributes:
        account: The storage account's name.
        container: The container (the ADLS Gen2 file system).
        prefix: The folder inside the container, without leading or trailing '/' ('' for the
            container's root).
        endpoint: The account's blob service URL.
    """

    account: str
    container: str
    prefix: str
    endpoint: str

    def blob_name(self, relative: str) -> str:
        """The blob name of `relative`, a path under the landing."""
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def relative(self, blob_name: str) -> str:
        """The path under the landing of a blob of this folder."""
        return blob_name[len(self.prefix) + 1 :] if self.prefix else blob_name

    def __str__(self) -> str:
        return f"abfs://{self.container}/{self.prefix} (account {self.account}, {self.endpoint})"


def parse_location(
    url: str, *, storage_account: str | None, storage_endpoint: str | None = None
) -> BlobLocation:
    """The container folder `url` names.

    Args:
        url: `abfs://CONTAINER/PREFIX`, or the ABFS driver's form
            `abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/PREFIX`.
        storage_account: The account; required unless `url` names it.
        storage_endpoint: The blob service URL, default `https://ACCOUNT.blob.core.windows.net`;
            an emulator's URL without a path gets the account appended (path-style, as
            Azurite serves `https://127.0.0.1:10000/devstoreaccount1`).

    Raises:
        ConfigurationError: the URL or the account is missing or malformed.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in _SCHEMES or not parts.netloc:
        raise ConfigurationError(
            f"{url!r} is not an abfs:// location: write abfs://CONTAINER/PREFIX with "
            "--storage-account NAME"
        )
    container, _, host = parts.netloc.partition("@")
    account = storage_account
    if host:
        named = host.removesuffix(_DFS_SUFFIX).removesuffix(".blob.core.windows.net")
        if named == host:
            raise ConfigurationError(
                f"{url!r}: expected CONTAINER@ACCOUNT{_DFS_SUFFIX}; for another host pass "
                "abfs://CONTAINER/PREFIX with --storage-account and --storage-endpoint"
            )
        if storage_account is not None and storage_account != named:
            raise ConfigurationError(
                f"{url!r} names account {named!r} but --storage-account is {storage_account!r}: "
                "give one of them"
            )
        account = named
    if not account:
        raise ConfigurationError(
            f"{url!r} needs a storage account: pass --storage-account NAME (the account that "
            "holds the container)"
        )
    if not container:
        raise ConfigurationError(f"{url!r} names no container: write abfs://CONTAINER/PREFIX")
    return BlobLocation(
        account=account,
        container=container,
        prefix=parts.path.strip("/"),
        endpoint=_account_url(account, storage_endpoint),
    )


def _account_url(account: str, endpoint: str | None) -> str:
    if endpoint is None:
        return f"https://{account}.blob.core.windows.net"
    parts = urlsplit(endpoint)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(
            f"--storage-endpoint {endpoint!r} is not a URL: give the blob service URL, e.g. "
            "https://127.0.0.1:10000/devstoreaccount1 for a local Azurite"
        )
    if parts.scheme == "http":
        raise ConfigurationError(
            f"--storage-endpoint {endpoint!r} is plain HTTP, and a token is only ever sent over "
            "HTTPS: use https:// (Azurite serves it with --cert, --key and --oauth basic)"
        )
    if parts.path.strip("/") or not _is_ip_or_localhost(parts.hostname):
        return endpoint.rstrip("/")
    return f"{endpoint.rstrip('/')}/{account}"


def _is_ip_or_localhost(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Identity:
    """The Azure identity that gets storage tokens: managed identity first (system-assigned,
    or user-assigned with `client_id`), then `DefaultAzureCredential`'s developer credentials
    (environment, workload identity, Azure CLI, azd, PowerShell).

    `used` says which one gave the last token, for messages.
    """

    def __init__(self, client_id: str | None = None) -> None:
        import logging

        from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

        # Failures are reported once, by `get_token`'s error, not also as log warnings.
        logging.getLogger("azure.identity").setLevel(logging.ERROR)

        self.client_id = client_id
        self._managed = ManagedIdentityCredential(client_id=client_id)
        self._developer = DefaultAzureCredential(exclude_managed_identity_credential=True)
        self.used = "no identity yet"

    def describe_managed(self) -> str:
        """The managed identity, as a message names it."""
        kind = f"user-assigned, client id {self.client_id}" if self.client_id else "system-assigned"
        endpoint = config.managed_identity_endpoint()
        source = (
            f"token endpoint {endpoint}"
            if endpoint
            else "instance metadata service 169.254.169.254"
        )
        return f"managed identity ({kind}, {source})"

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        """A token for `scopes` (azure-core's TokenCredential protocol).

        Raises:
            StorageAccessError: no identity gave a token; names each one tried and why.
        """
        from azure.core.exceptions import ClientAuthenticationError

        tried: list[str] = []
        for name, credential in (
            (self.describe_managed(), self._managed),
            ("developer credentials (DefaultAzureCredential)", self._developer),
        ):
            try:
                token = credential.get_token(*scopes, **kwargs)
            except ClientAuthenticationError as error:  # CredentialUnavailableError too
                tried.append(f"{name}: {_attempts(str(error))}")
                continue
            self.used = name
            if credential is self._developer:
                chosen = getattr(credential, "_successful_credential", None)
                if chosen is not None:
                    self.used = f"developer credential {type(chosen).__name__}"
            return token
        raise StorageAccessError(
            "No Azure identity gave a storage token:\n  - "
            + "\n  - ".join(tried)
            + "\nOn Azure, give the compute a managed identity (pass --client-id for a "
            "user-assigned one); on a workstation, run `az login`."
        )

    def close(self) -> None:
        """Close the credentials' HTTP sessions."""
        self._managed.close()
        self._developer.close()


def _attempts(text: str) -> str:
    """A credential's failure: its first line, and each credential a chain tried, one a line."""
    lines = [line.strip() for line in text.strip().splitlines()]
    tried = [line for line in lines[1:] if ":" in line and not line.startswith(("To ", "Visit"))]
    tried = [line for line in tried if not line.startswith("Attempted credentials")]
    return "\n      ".join([lines[0] if lines else text, *tried])


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


@dataclass(frozen=True)
class CopySummary:
    """What `copy_new_files` did: files and bytes copied, files already in the cache."""

    copied: int
    copied_bytes: int
    already: int


class BlobLanding:
    """The landing folder `location`, written and read with `identity`.

    Args:
        location: The container folder.
        identity: Gets the tokens.
        initial_backoff: The base of the waits before the 5 retries of a throttled (503,
            500) or failed request: the n-th waits `initial_backoff` + 2**n s, give or take
            up to 3 s of jitter (about 3, 5, 9, 17, 33 s with the default 1).
    """

    def __init__(
        self, location: BlobLocation, identity: Identity, *, initial_backoff: float = 1.0
    ) -> None:
        from azure.storage.blob import ContainerClient

        self.location = location
        self.identity = identity
        extra: dict[str, Any] = {}
        ca_bundle = config.ca_bundle_from_environment()
        if ca_bundle is not None:
            extra["connection_verify"] = ca_bundle
        self._container = ContainerClient(
            location.endpoint,
            location.container,
            credential=identity,
            retry_policy=_retry_policy(initial_backoff),
            **extra,
        )

    def __str__(self) -> str:
        return str(self.location)

    def uri(self, relative: str) -> str:
        """The abfs:// name of `relative`, for messages."""
        return f"abfs://{self.location.container}/{self.location.blob_name(relative)}"

    def ensure_container(self) -> bool:
        """Create the container when it does not exist (as azcopy does); True if it was made.

        Raises:
            StorageAccessError: the identity may not create it (or cannot reach the account).
        """
        from azure.core.exceptions import ResourceExistsError

        with self._errors("write"):
            if self._container.exists():
                return False
            try:
                self._container.create_container()
            except ResourceExistsError:  # made meanwhile by another producer
                return False
        return True

    def existing(self, names: list[str]) -> list[str]:
        """Those of `names` (paths under the landing) that the landing holds already."""
        held = {relative for relative, _ in self.files()}
        return [name for name in names if name in held]

    def put(self, relative: str, data: bytes) -> bool:
        """Write `data` as `relative`, never over an existing file.

        Returns:
            True when written; False when the same bytes were there already (a retried upload
            whose first answer was lost).

        Raises:
            InputError: another file of that name exists.
            StorageAccessError: the storage refused the identity or cannot be reached.
        """
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import ContentSettings

        blob = self._container.get_blob_client(self.location.blob_name(relative))
        digest = hashlib.md5(data).digest()  # Content-MD5: what the service checks
        with self._errors("write"):
            try:
                blob.upload_blob(
                    data,
                    overwrite=False,
                    validate_content=True,
                    content_settings=ContentSettings(
                        content_type="application/x-ndjson", content_md5=bytearray(digest)
                    ),
                )
            except ResourceExistsError:
                properties = blob.get_blob_properties()
                stored = properties.content_settings.content_md5
                if properties.size == len(data) and stored is not None and bytes(stored) == digest:
                    return False
                raise InputError(
                    f"refusing to overwrite {self.uri(relative)}: a streaming file source "
                    "ignores a file name it has already seen; choose another --out or --seed"
                ) from None
        return True

    def files(self) -> Iterator[tuple[str, int]]:
        """The landing's files under `events/` and `user_changes/`: (relative path, size)."""
        with self._errors("read"):
            for folder in LANDING_FOLDERS:
                start = self.location.blob_name(folder)
                for blob in self._container.list_blobs(name_starts_with=start):
                    yield self.location.relative(blob.name), int(blob.size)

    def download(self, relative: str, target: Path) -> int:
        """Copy `relative` to `target` (written under a hidden name, then renamed); its bytes."""
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        with self._errors("read"), partial.open("wb") as handle:
            blob = self._container.get_blob_client(self.location.blob_name(relative))
            size = blob.download_blob(validate_content=True).readinto(handle)
        partial.replace(target)
        return int(size)

    def close(self) -> None:
        """Close the HTTP sessions."""
        self._container.close()
        self.identity.close()

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        from azure.core.exceptions import (
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
        )

        try:
            yield
        except ResourceNotFoundError as error:
            if getattr(error, "error_code", None) != "ContainerNotFound":
                raise
            raise StorageAccessError(
                f"The container {self.location.container!r} does not exist in storage account "
                f"{self.location.account} ({self.location.endpoint}). Create it, e.g. `az storage "
                f"container create --name {self.location.container} --account-name "
                f"{self.location.account} --auth-mode login`."
            ) from None
        except HttpResponseError as error:
            if error.status_code not in (401, 403):
                raise
            raise StorageAccessError(self._refusal(error, action)) from None
        except (ServiceRequestError, ServiceResponseError) as error:
            raise StorageAccessError(
                f"Cannot reach {self.location.endpoint}: {_first_line(str(error))}. Check the "
                "account name or --storage-endpoint; for a certificate of a private authority "
                "(an emulator's), point SSL_CERT_FILE or REQUESTS_CA_BUNDLE at its CA file."
            ) from None

    def _refusal(self, error: Any, action: str) -> str:
        detail = _service_detail(error)
        code = str(getattr(error.error_code, "value", error.error_code) or error.reason)
        role = _ROLE_HINT[action]
        if error.status_code == 403 and "Authentication" not in code:
            lacked = (
                f"It lacks a data role there: grant it '{role}' on the account or the "
                f"container {self.location.container}."
            )
        else:
            lacked = (
                "Its token was not accepted: the service wants a current token issued by "
                "Microsoft Entra ID for https://storage.azure.com (check the identity's tenant, "
                f"the token's expiry and audience). With a valid token it also needs '{role}'."
            )
        return (
            f"Storage account {self.location.account} refused to let {self.identity.used} "
            f"{action} {self.location} ({error.status_code} {code}"
            f"{': ' + detail if detail else ''}). {lacked}"
        )


def _retry_policy(initial_backoff: float) -> Any:
    """Exponential retries (5; the n-th after `initial_backoff` + 2**n s, +-3 s of the SDK's
    jitter: the SDK counts a retry before its wait, so 2**0 is never added) of throttling,
    server errors, timeouts and dropped connections, but not of a certificate nobody trusts:
    that will not change by waiting."""
    from azure.storage.blob import ExponentialRetry

    class Retry(ExponentialRetry):
        def increment(
            self, settings: Any, request: Any, response: Any = None, error: Any = None
        ) -> bool:
            if error is not None and "CERTIFICATE_VERIFY_FAILED" in str(error):
                return False
            return bool(super().increment(settings, request, response=response, error=error))

    return Retry(
        initial_backoff=initial_backoff,  # type: ignore[arg-type]  # seconds, a float works
        increment_base=2,
        retry_total=5,
    )


def _service_detail(error: Any) -> str:
    """The service's own explanation (`AuthenticationErrorDetail`), when it gave one."""
    for line in str(error.message or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "authenticationerrordetail":
            return value.strip()
    return ""


def cache_folder(warehouse: Path, location: BlobLocation) -> Path:
    """The local copy of the landing at `location` that a run on `warehouse` reads:
    `<warehouse>/_landing/<account>/<container>/<prefix>`."""
    cache = warehouse / LANDING_CACHE / location.account / location.container
    return cache / location.prefix if location.prefix else cache


def copy_new_files(
    landing: BlobLanding,
    cache: Path,
    *,
    progress: Callable[[int, int, int], None] | None = None,
) -> CopySummary:
    """Copy the landing's files that `cache` lacks into it, under the same relative paths.

    A file already in the cache is skipped: landing files are never rewritten, a copy is
    renamed into place only when complete, and a copy `forget --include-landing` scrubbed must
    not be fetched again. `progress(files_copied, files_to_copy, bytes_copied)` is called after
    each file.
    """
    listed = [
        relative
        for relative, _ in landing.files()
        if not relative.split("/")[-1].startswith((".", "_"))
    ]
    missing = [relative for relative in listed if not (cache / relative).is_file()]
    copied_bytes = 0
    for done, relative in enumerate(missing, start=1):
        copied_bytes += landing.download(relative, cache / relative)
        if progress is not None:
            progress(done, len(missing), copied_bytes)
    return CopySummary(
        copied=len(missing), copied_bytes=copied_bytes, already=len(listed) - len(missing)
    )
