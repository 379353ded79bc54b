"""`clickstream produce --out abfs://...` and the identity it uses, against Azurite over HTTPS."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clickstream import cli
from pipeline.landing.azure_landing import BlobLanding, Identity, parse_location
from scenarios.producer import LocalLanding
from tests.azure.conftest import ACCOUNT, CONTAINER, Emulator, FaultyProxy


def _landing(emulator: Emulator, prefix: str) -> BlobLanding:
    location = parse_location(
        f"abfs://{CONTAINER}/{prefix}", storage_account=ACCOUNT, storage_endpoint=emulator.endpoint
    )
    return BlobLanding(location, Identity(), initial_backoff=0.1)


def _blobs(emulator: Emulator, prefix: str) -> dict[str, bytes]:
    landing = _landing(emulator, prefix)
    try:
        found = {}
        for name, _ in landing.files():
            blob = landing._container.get_blob_client(landing.location.blob_name(name))
            found[name] = blob.download_blob().readall()
        return found
    finally:
        landing.close()


def _local_files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _storage_args(emulator: Emulator) -> list[str]:
    return ["--storage-account", ACCOUNT, "--storage-endpoint", emulator.endpoint]


def test_produce_to_blob_storage_equals_a_local_produce_byte_for_byte(
    azure_env: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    produce = ["produce", "--events", "1500", "--seed", "11", "--files", "3"]
    assert cli.main([*produce, "--out", str(tmp_path / "local")]) == 0
    remote = f"abfs://{CONTAINER}/same-seed"
    assert cli.main([*produce, "--out", remote, *_storage_args(azure_env)]) == 0
    printed = capsys.readouterr().out
    assert "wrote 1,500 events in 3 files" in printed

    local = _local_files(tmp_path / "local")
    assert len(local) == 4
    assert _blobs(azure_env, "same-seed") == local

    # The token came from the managed-identity endpoint, for storage, with its secret header.
    asked = azure_env.identity.requests
    assert asked, "the identity endpoint was never asked for a token"
    assert {request["resource"] for request in asked} == {"https://storage.azure.com"}
    assert all(request["identity_header"] == azure_env.identity.header for request in asked)

    # A second produce of the same seed refuses, and writes nothing.
    assert cli.main([*produce, "--out", remote, *_storage_args(azure_env)]) == 2
    assert "refusing to overwrite abfs://landing/same-seed/user_changes/" in capsys.readouterr().err


def test_a_retried_upload_of_the_same_bytes_is_accepted_and_another_is_refused(
    azure_env: Emulator,
) -> None:
    landing = _landing(azure_env, "retried")
    try:
        assert landing.put("events/a.json", b'{"a":1}\n') is True
        # what a retry finds when the first answer was lost: the same bytes, already there
        assert landing.put("events/a.json", b'{"a":1}\n') is False
        with pytest.raises(ValueError, match="refusing to overwrite abfs://landing/retried/"):
            landing.put("events/a.json", b'{"a":2}\n')
    finally:
        landing.close()
    assert _blobs(azure_env, "retried") == {"events/a.json": b'{"a":1}\n'}


@pytest.mark.parametrize(
    ("mode", "explained"),
    [
        ("expired", "Lifetime validation failed. The token is expired."),
        ("wrong-audience", "Invalid token audience."),
    ],
)
def test_a_token_storage_refuses_stops_the_produce_with_the_identity_named(
    azure_env: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mode: str,
    explained: str,
) -> None:
    azure_env.identity.mode = mode
    arguments = ["produce", "--events", "50", "--out", f"abfs://{CONTAINER}/{mode}"]
    started = time.monotonic()
    assert cli.main([*arguments, *_storage_args(azure_env)]) == 2
    assert time.monotonic() - started < 30  # stopped at once: an auth failure is not retried
    error = capsys.readouterr().err
    assert "refused to let managed identity (system-assigned, token endpoint" in error
    assert "403 AuthenticationFailed" in error or "401" in error, error
    assert explained in error
    assert "https://storage.azure.com" in error
    assert _blobs_after_valid(azure_env, mode) == {}


def _blobs_after_valid(emulator: Emulator, prefix: str) -> dict[str, bytes]:
    emulator.identity.mode = "valid"
    return _blobs(emulator, prefix)


def test_no_identity_is_reported_with_every_credential_tried(
    azure_env: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    azure_env.identity.mode = "no-identity"
    monkeypatch.setenv("PATH", "/nonexistent")  # no az, azd or pwsh to fall back on
    for variable in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(variable, raising=False)
    arguments = ["produce", "--events", "50", "--out", f"abfs://{CONTAINER}/nobody"]
    assert cli.main([*arguments, *_storage_args(azure_env), "--client-id", "c0ffee"]) == 2
    error = capsys.readouterr().err
    assert "No Azure identity gave a storage token" in error
    assert "managed identity (user-assigned, client id c0ffee" in error
    assert "No managed identity is assigned to this resource." in error
    assert "developer credentials (DefaultAzureCredential)" in error
    assert "az login" in error
    assert azure_env.identity.requests[0]["client_id"] == "c0ffee"


def test_a_certificate_nobody_trusts_is_refused(
    azure_env: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    arguments = ["produce", "--events", "50", "--out", f"abfs://{CONTAINER}/untrusted"]
    assert cli.main([*arguments, *_storage_args(azure_env)]) == 2
    error = capsys.readouterr().err
    assert f"Cannot reach {azure_env.endpoint}" in error
    assert "CERTIFICATE_VERIFY_FAILED" in error
    assert "SSL_CERT_FILE or REQUESTS_CA_BUNDLE" in error
    # SSL_CERT_FILE alone is trusted too
    monkeypatch.setenv("SSL_CERT_FILE", str(azure_env.ca_file))
    assert cli.main([*arguments, *_storage_args(azure_env)]) == 0


def test_streaming_writes_one_complete_file_per_interval_and_stops_cleanly_on_ctrl_c(
    azure_env: Emulator, tmp_path: Path
) -> None:
    command = [
        sys.executable, "-m", "clickstream", "produce", "--stream", "--rate", "40",
        "--duration", "60", "--interval", "1", "--seed", "5",
        "--out", f"abfs://{CONTAINER}/stream", *_storage_args(azure_env),
    ]  # fmt: skip
    child = subprocess.Popen(
        command,
        env={**os.environ, **azure_env.environment},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert child.stdout is not None
    while len([line for line in lines if "/events/" in line]) < 3:
        line = child.stdout.readline()
        assert line, f"the stream ended early: {child.stderr.read() if child.stderr else ''}"
        lines.append(line)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert "stopped by Ctrl-C; every file written is complete" in out

    blobs = _blobs(azure_env, "stream")
    event_files = sorted(name for name in blobs if name.startswith("events/"))
    assert 3 <= len(event_files) < 60
    today = time.strftime("%Y-%m-%d", time.gmtime())
    for name in event_files:
        folder, file_name = name.split("/")[1:]
        assert folder <= today and file_name.startswith("events-s5-")
        assert blobs[name].endswith(b"\n")  # whole lines only
    # the files follow one another: each holds the events of its own second, in order
    times = [
        [line.split(b'"event_ts":"')[1][:23] for line in blobs[name].splitlines()]
        for name in event_files
    ]
    for earlier, later in itertools.pairwise(times):
        if earlier and later:
            assert max(earlier) <= min(later)
    assert "user_changes/" in " ".join(blobs)


def test_throttling_and_lost_answers_are_retried_without_a_duplicate_or_partial_file(
    azure_env: Emulator, faulty_proxy: FaultyProxy, tmp_path: Path
) -> None:
    from scenarios.producer import produce_batch

    # 1st upload: throttled twice, then accepted; 2nd: written but its answer lost, so the
    # retry finds the blob; 3rd: a server error, then accepted.
    faulty_proxy.faults = ["busy", "busy", "", "lose-answer", "busy"]
    location = parse_location(
        f"abfs://{CONTAINER}/retries",
        storage_account=ACCOUNT,
        storage_endpoint=faulty_proxy.endpoint,
    )
    landing = BlobLanding(location, Identity(), initial_backoff=0.1)
    try:
        produced = produce_batch(landing, events=600, seed=21, files=3)
    finally:
        landing.close()
    assert faulty_proxy.faults == []
    puts = [(path, fault) for method, path, fault in faulty_proxy.seen if method == "PUT"]
    assert len(puts) == len(produced.files) + 4  # 4 faults, each retried once

    local = tmp_path / "local"
    produce_batch(LocalLanding(local), events=600, seed=21, files=3)
    assert _blobs(azure_env, "retries") == _local_files(local)


def test_produce_creates_a_missing_container_and_run_names_one_it_cannot_find(
    azure_env: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    container = f"made-{os.getpid()}"
    arguments = ["produce", "--events", "20", "--out", f"abfs://{container}/p"]
    assert cli.main([*arguments, *_storage_args(azure_env)]) == 0
    assert f"created the container '{container}'" in capsys.readouterr().err
    assert cli.main([*arguments, "--seed", "1", *_storage_args(azure_env)]) == 0
    assert "created the container" not in capsys.readouterr().err

    run = ["run", "--landing", "abfs://no-such-container/p", "--warehouse", str(tmp_path / "w")]
    monkeypatch.setenv("CLICKSTREAM_PII_KEY", "k" * 32)
    assert cli.main([*run, *_storage_args(azure_env)]) == 2
    error = capsys.readouterr().err
    assert "The container 'no-such-container' does not exist in storage account" in error
    assert "az storage container create --name no-such-container" in error
