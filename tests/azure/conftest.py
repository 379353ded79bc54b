"""Azurite over HTTPS with its OAuth check, and a managed-identity token endpoint, on loopback.

`nox -s azure` installs the pinned Azurite (npm) into `.cache/azurite` and runs these tests.
The fixture makes a self-signed certificate for 127.0.0.1, starts `azurite-blob --oauth
basic` with it, and serves App Service's managed-identity protocol (`IDENTITY_ENDPOINT`,
`IDENTITY_HEADER`) from a thread; the tokens it issues are unsigned JWTs of the claims Azurite
checks (issuer, audience, lifetime). Azurite is stopped by pid at the end.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from scenarios.spark_cluster import free_port

PROJECT = Path(__file__).resolve().parents[2]
AZURITE_BIN = Path(
    os.environ.get("AZURITE_BIN", PROJECT / ".cache/azurite/node_modules/.bin/azurite-blob")
)
ACCOUNT = "devstoreaccount1"
CONTAINER = "landing"
STORAGE_AUDIENCE = "https://storage.azure.com"
ISSUER = "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test here as needing Azurite."""
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.azure)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(**claims: object) -> str:
    """An unsigned JWT of `claims` (Azurite's basic OAuth check does not verify signatures)."""
    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}.{_b64(b'not-signed')}"


@dataclass
class IdentityEndpoint:
    """App Service's managed-identity endpoint; `mode` chooses the token it gives."""

    url: str
    header: str
    mode: str = "valid"  # valid | expired | wrong-audience | no-identity
    requests: list[dict[str, str]] = field(default_factory=list)

    def token(self, resource: str) -> tuple[int, dict[str, object]]:
        now = int(time.time())
        if self.mode == "no-identity":
            return 400, {
                "statusCode": 400,
                "message": "No managed identity is assigned to this resource.",
            }
        audience = "https://management.azure.com/" if self.mode == "wrong-audience" else resource
        lifetime = (now - 7200, now - 3600) if self.mode == "expired" else (now - 60, now + 3600)
        access_token = jwt(
            aud=audience,
            iss=ISSUER,
            iat=lifetime[0],
            nbf=lifetime[0],
            exp=lifetime[1],
            oid="00000000-0000-0000-0000-00000000c11c",
        )
        # The endpoint's own expiry is in the future: the expired token is the service's to find.
        return 200, {
            "access_token": access_token,
            "expires_on": str(now + 3600),
            "resource": resource,
            "token_type": "Bearer",
        }


def _serve_identity() -> tuple[IdentityEndpoint, ThreadingHTTPServer]:
    secret = base64.b16encode(os.urandom(8)).decode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    endpoint = IdentityEndpoint(
        url=f"http://127.0.0.1:{server.server_port}/msi/token", header=secret
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = {key: values[0] for key, values in parse_qs(urlsplit(self.path).query).items()}
            seen = {**query, "identity_header": self.headers.get("X-IDENTITY-HEADER", "")}
            endpoint.requests.append(seen)
            status: int
            body: dict[str, object]
            if seen["identity_header"] != endpoint.header:
                status, body = 401, {"message": "X-IDENTITY-HEADER is missing or wrong"}
            else:
                status, body = endpoint.token(query.get("resource", ""))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server.RequestHandlerClass = Handler
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return endpoint, server


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "azurite test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"azurite exited with {process.returncode}: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.2)
            continue
        return
    raise RuntimeError(f"azurite did not listen on {port} within 60 s: {log.read_text()}")


@dataclass(frozen=True)
class Emulator:
    """A running Azurite and identity endpoint, and the environment that points at them."""

    endpoint: str  # the blob service URL of the emulator's account
    port: int
    identity: IdentityEndpoint
    ca_file: Path
    key_file: Path
    environment: dict[str, str]


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    if not AZURITE_BIN.exists():
        pytest.fail(
            f"Azurite is not installed at {AZURITE_BIN}: run `nox -s azure` (it runs "
            "`npm install azurite@3.35.0` into .cache/azurite) or set AZURITE_BIN"
        )
    directory = tmp_path_factory.mktemp("azurite")
    cert_file, key_file = _certificate(directory)
    port = free_port()
    log = directory / "azurite.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                str(AZURITE_BIN),
                *("--blobHost", "127.0.0.1", "--blobPort", str(port)),
                *("--location", str(directory / "data"), "--oauth", "basic"),
                *("--cert", str(cert_file), "--key", str(key_file)),
                *("--skipApiVersionCheck", "--disableTelemetry"),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    identity, server = _serve_identity()
    try:
        _wait_for_port(port, process, log)
        environment = {
            "IDENTITY_ENDPOINT": identity.url,
            "IDENTITY_HEADER": identity.header,
            "REQUESTS_CA_BUNDLE": str(cert_file),
        }
        emulator = Emulator(
            endpoint=f"https://127.0.0.1:{port}/{ACCOUNT}",
            port=port,
            identity=identity,
            ca_file=cert_file,
            key_file=key_file,
            environment=environment,
        )
        with pytest.MonkeyPatch.context() as patch:  # a session fixture has no monkeypatch
            for key, value in environment.items():
                patch.setenv(key, value)
            _create_container(emulator)
        yield emulator
    finally:
        server.shutdown()
        server.server_close()
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        shutil.rmtree(directory / "data", ignore_errors=True)


def _create_container(emulator: Emulator) -> None:
    from azure.storage.blob import BlobServiceClient

    from pipeline.landing.azure_landing import Identity

    identity = Identity()
    with BlobServiceClient(emulator.endpoint, credential=identity) as service:
        service.create_container(CONTAINER)
    identity.close()


@pytest.fixture
def azure_env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """The emulator, with this process's environment pointing at it and valid tokens."""
    for key, value in emulator.environment.items():
        monkeypatch.setenv(key, value)
    emulator.identity.mode = "valid"
    emulator.identity.requests.clear()
    yield emulator
    emulator.identity.mode = "valid"


@dataclass
class FaultyProxy:
    """An HTTPS proxy in front of Azurite that fails chosen requests.

    `faults` is consumed in order, one per request of `method`: "busy" answers 503 ServerBusy
    (how storage throttles) without forwarding; "lose-answer" forwards the request, then
    closes the connection before answering (the upload happened, its client never hears).
    """

    endpoint: str
    method: str = "PUT"
    faults: list[str] = field(default_factory=list)
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, fault)


@pytest.fixture
def faulty_proxy(azure_env: Emulator) -> Iterator[FaultyProxy]:
    import http.client
    import ssl

    upstream = ssl.create_default_context(cafile=str(azure_env.ca_file))
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(azure_env.ca_file, azure_env.key_file)
    server.socket = served.wrap_socket(server.socket, server_side=True)
    proxy = FaultyProxy(endpoint=f"https://127.0.0.1:{server.server_port}/{ACCOUNT}")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            fault = proxy.faults.pop(0) if proxy.faults and self.command == proxy.method else ""
            proxy.seen.append((self.command, self.path, fault))
            if fault == "busy":
                message = b'<?xml version="1.0"?><Error><Code>ServerBusy</Code></Error>'
                self.send_response(503, "The server is busy.")
                self.send_header("x-ms-error-code", "ServerBusy")
                self.send_header("Content-Length", str(len(message)))
                self.end_headers()
                self.wfile.write(message)
                return
            connection = http.client.HTTPSConnection(
                "127.0.0.1", azure_env.port, context=upstream, timeout=30
            )
            headers = {key: value for key, value in self.headers.items() if key.lower() != "host"}
            connection.request(self.command, self.path, body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
            connection.close()
            if fault == "lose-answer":
                self.close_connection = True
                return
            self.send_response(answer.status, answer.reason)
            dropped = {"transfer-encoding", "connection"}
            if self.command != "HEAD":  # a HEAD's Content-Length is the blob's size
                dropped.add("content-length")
            for key, value in answer.getheaders():
                if key.lower() not in dropped:
                    self.send_header(key, value)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _relay  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:
            pass

    server.RequestHandlerClass = Handler
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
