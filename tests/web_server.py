"""A local HTTP(S) server for the fetcher's tests: files, redirects, errors, endless and trickling bodies.

Runs in a thread of the test process and serves on 127.0.0.1 only (this machine has no internet). Routes:

* ``/files/<name>`` a registered body with its content type (``server.add(name, body, content_type)``)
* ``/redirect?to=<url>`` a 302 to ``to``; ``/loop/<n>`` redirects to ``/loop/<n+1>`` forever
* ``/status/<code>`` an empty answer with that status
* ``/endless`` an endless body without Content-Length; ``/lying`` claims 10 bytes and sends more
* ``/trickle?every=<s>`` one byte every ``s`` seconds; ``/stall`` headers, then nothing
"""

from __future__ import annotations

import contextlib
import datetime
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


class _Handler(BaseHTTPRequestHandler):
    server: LocalServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        route = parts.path.strip("/").split("/")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._route(route, query)

    def _route(self, route: list[str], query: dict[str, str]) -> None:
        head = route[0]
        if head == "files" and "/".join(route[1:]) in self.server.files:
            body, content_type = self.server.files["/".join(route[1:])]
            self._send(200, body, content_type)
        elif head == "redirect":
            self._send(302, b"", "text/plain", {"Location": query["to"]})
        elif head == "loop":
            self._send(302, b"", "text/plain", {"Location": f"/loop/{int(route[1]) + 1}"})
        elif head == "status":
            self._send(int(route[1]), b"", "text/plain")
        elif head == "endless":
            self._endless({})
        elif head == "lying":
            self._endless({"Content-Length": "10"})
        elif head == "trickle":
            self._trickle(float(query.get("every", "0.2")))
        elif head == "stall":
            self._endless({"Content-Length": "1000"}, count=0)
            time.sleep(30)
        else:
            self._send(404, b"not found", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _endless(self, headers: dict[str, str], count: int | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Connection", "close")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        chunk = b"\0" * 65536
        sent = 0
        while count is None or sent < count:
            self.wfile.write(chunk)
            sent += 1

    def _trickle(self, every: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        for _ in range(100000):
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(every)


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, tuple[bytes, str]] = {}
        self.requests: list[str] = []
        self.scheme = "http"

    def handle_error(self, request, client_address) -> None:
        """Clients that hang up early (the fetcher cutting a download) are expected, not worth a traceback."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, OSError)):
            super().handle_error(request, client_address)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}/{path.lstrip('/')}"

    def add(self, name: str, body: bytes | Path, content_type: str) -> str:
        """Serve ``body`` at ``/files/<name>``; returns its URL."""
        self.files[name] = (body.read_bytes() if isinstance(body, Path) else body, content_type)
        return self.url(f"files/{name}")


@contextlib.contextmanager
def local_server(tls: ssl.SSLContext | None = None) -> Iterator[LocalServer]:
    server = LocalServer()
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        server.scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def self_signed(folder: Path, host: str = "localhost") -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh self-signed certificate for ``host``, and a client context that trusts it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client
