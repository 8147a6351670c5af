"""Posts to the collector over a connection kept open between exports.

A post through ``urllib.request`` opens a connection and builds its handler chain each
time, about 450 µs of the exporter's CPU on this machine, and ``http.client`` parses
every answer's headers with the ``email`` package (about 180 µs a post even with the
connection kept). OTLP/HTTP needs little of HTTP: one POST with a known length and an
answer whose body is read and dropped, so this writes the request itself and reads the
answer's status, length and framing, bounded. A URL that a proxy variable
(``http_proxy``, ``https_proxy``, ``no_proxy``) sends through a proxy still goes
through ``urllib.request``, which honours them.
"""

from __future__ import annotations

import socket
import ssl
import urllib.request
from urllib.parse import urlsplit

from .settings import Destination

MAX_HEAD = 16 * 1024  # an answer's status line and headers
MAX_BODY = 4 * 1024 * 1024  # an answer's body (a partial-success message, usually none)


class PostFailed(Exception):
    """The collector could not be reached, or did not take the body."""


class Poster:
    """Posts bodies for the exporter's thread (its own, so no lock)."""

    def __init__(self) -> None:
        self._open: dict[str, Connection] = {}

    def post(self, to: Destination, body: bytes, headers: dict[str, str]) -> None:
        """``body`` to ``to``; raises ``PostFailed`` when it was not taken."""
        connection = self._open.get(to.url)
        if connection is None:
            if _proxied(to.url):
                _post_by_urllib(to, body, headers)
                return
            connection = self._open[to.url] = Connection(to)
        status = connection.post(body, headers)
        if not 200 <= status < 300:
            raise PostFailed(f"HTTP {status}")

    def close(self) -> None:
        for connection in self._open.values():
            connection.close()
        self._open.clear()


class Connection:
    """One HTTP/1.1 connection to a destination, opened when needed, kept while the
    collector keeps it."""

    def __init__(self, to: Destination) -> None:
        url = urlsplit(to.url)
        self._tls = url.scheme == "https"
        self._host = url.hostname or ""
        self._port = url.port or (443 if self._tls else 80)
        self._timeout = to.timeout
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self._start = f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\n".encode("latin-1")
        self._sock: socket.socket | None = None

    def post(self, body: bytes, headers: dict[str, str]) -> int:
        """The answer's status; a connection the collector closed while idle is opened again."""
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        if lines.count("\n") != len(headers) or lines.count("\r") != len(headers):
            raise PostFailed("a header holds a line break")  # it would start another
        head = self._start + f"{lines}Content-Length: {len(body)}\r\n\r\n".encode("latin-1")
        reused = self._sock is not None
        try:
            return self._exchange(head, body)
        except (OSError, ValueError) as exc:
            self.close()
            if not reused:
                raise PostFailed(str(exc) or type(exc).__name__) from None
        try:  # once more, on a new connection
            return self._exchange(head, body)
        except (OSError, ValueError) as exc:
            self.close()
            raise PostFailed(str(exc) or type(exc).__name__) from None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _exchange(self, head: bytes, body: bytes) -> int:
        sock = self._sock
        if sock is None:
            sock = socket.create_connection((self._host, self._port), self._timeout)
            if self._tls:
                context = ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=self._host)
            self._sock = sock
        sock.sendall(head + body)
        status, keep = _answer(sock)
        if not keep:
            self.close()
        return status


def _answer(sock: socket.socket) -> tuple[int, bool]:
    """Read one answer: its status, and whether the connection may be used again."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD:
            raise ValueError("the collector's answer head is too long")
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the collector closed the connection")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, status = status_line.split(" ", 2)[:2]
    fields = {}
    for line in lines:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip().lower()
    keep = version == "HTTP/1.1" and fields.get("connection") != "close"
    if "chunked" in fields.get("transfer-encoding", ""):
        _chunked(sock, rest)
    elif "content-length" in fields:
        _skip(sock, rest, int(fields["content-length"]))
    elif not (100 <= int(status) < 200 or int(status) in (204, 304)):
        keep = False  # a body that ends when the connection does
    return int(status), keep


def _skip(sock: socket.socket, got: bytes, length: int) -> None:
    if length > MAX_BODY:
        raise ValueError("the collector's answer is too long")
    left = length - len(got)
    while left > 0:
        chunk = sock.recv(min(left, 65536))
        if not chunk:
            raise ConnectionError("the collector closed the connection")
        left -= len(chunk)


def _chunked(sock: socket.socket, data: bytes) -> None:
    """Read a chunked body to its end (sizes, data, the last chunk and trailers)."""
    total = 0
    while True:
        while b"\r\n" not in data:
            data += _more(sock, data)
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        total += size
        if total > MAX_BODY:
            raise ValueError("the collector's answer is too long")
        if size == 0:
            while not (data.startswith(b"\r\n") or b"\r\n\r\n" in data):
                data += _more(sock, data)
            return
        while len(data) < size + 2:
            data += _more(sock, data)
        data = data[size + 2 :]


def _more(sock: socket.socket, data: bytes) -> bytes:
    if len(data) > MAX_HEAD + 65536:
        raise ValueError("the collector's answer is malformed")
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("the collector closed the connection")
    return chunk


def _proxied(url: str) -> bool:
    target = urlsplit(url)
    proxies = urllib.request.getproxies()
    if target.scheme not in proxies:
        return False
    return not urllib.request.proxy_bypass(target.hostname or "")


def _post_by_urllib(to: Destination, body: bytes, headers: dict[str, str]) -> None:
    request = urllib.request.Request(to.url, body, headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=to.timeout) as answer:
            answer.read()
    except OSError as exc:  # URLError and HTTPError are ones too
        raise PostFailed(str(exc)) from None
