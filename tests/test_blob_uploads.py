"""``POST /api/blobs/:digest``: a model's weights streamed through Córtex to the Ollama
servers a create may go to, as the client sends them, never held whole."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from tests.conftest import StartGateway
from tests.fakes import FakeOllama

MiB = 1024 * 1024


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _pieces(blob: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for start in range(0, len(blob), size):
        yield blob[start : start + size]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_blob_larger_than_max_body_bytes_streams_through_whole(
    fake: FakeOllama, start_gateway: StartGateway, framing: str
) -> None:
    gateway = start_gateway(max_body_bytes=1000)
    blob = bytes(range(256)) * (12 * MiB // 256)
    digest = _digest(blob)
    content = blob if framing == "content-length" else _pieces(blob)
    answer = httpx.post(gateway.url + f"/api/blobs/{digest}", content=content, timeout=30)
    assert answer.status_code == 201, answer.text
    assert digest in fake.blobs
    assert httpx.head(gateway.url + f"/api/blobs/{digest}").status_code == 200
    posted = [r for r in fake.requests if r.path == f"/api/blobs/{digest}" and r.method == "POST"]
    assert len(posted) == 1


def test_a_blob_the_server_has_is_a_200_at_once(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    blob = b"weights already there"
    fake.blobs.add(_digest(blob))
    answer = httpx.post(start_gateway().url + f"/api/blobs/{_digest(blob)}", content=blob)
    assert answer.status_code == 200


@pytest.mark.parametrize(
    "digest", ["sha256:xyz", "sha256:" + "0" * 63, "md5:" + "0" * 64, "..", "sha256-" + "g" * 64]
)
def test_an_invalid_digest_is_a_400_that_never_reaches_a_server(
    fake: FakeOllama, start_gateway: StartGateway, digest: str
) -> None:
    gateway = start_gateway()
    for answer in (
        httpx.post(gateway.url + f"/api/blobs/{digest}", content=b"x"),
        httpx.head(gateway.url + f"/api/blobs/{digest}"),
    ):
        assert answer.status_code in (400, 404)  # ".." is not even a blob's path
        if answer.status_code == 400 and answer.request.method == "POST":
            assert answer.json() == {"error": "invalid digest format"}
    assert not any(r.path.startswith("/api/blobs") for r in fake.requests)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_blob_over_max_blob_bytes_is_a_413(
    fake: FakeOllama, start_gateway: StartGateway, framing: str
) -> None:
    gateway = start_gateway(max_blob_bytes=100_000)
    blob = b"w" * 300_000
    content = blob if framing == "content-length" else _pieces(blob, 50_000)
    answer = httpx.post(gateway.url + f"/api/blobs/{_digest(blob)}", content=content)
    assert answer.status_code == 413
    assert "larger than the 100000-byte limit" in answer.json()["error"]
    assert _digest(blob) not in fake.blobs
    if framing == "content-length":  # refused before any server is asked
        assert not any(r.path.startswith("/api/blobs") for r in fake.requests)


def test_a_digest_mismatch_is_the_servers_own_400(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    digest = _digest(b"something else")
    answer = httpx.post(start_gateway().url + f"/api/blobs/{digest}", content=b"these bytes")
    assert answer.status_code == 400
    assert "digest mismatch" in answer.json()["error"]
    assert digest not in fake.blobs


class SlowDisk:
    """An Ollama that answers every probe with 404 and reads a blob's body as it comes,
    noting how much arrived and whether the sender went away before its end."""

    def __init__(self) -> None:
        self.received = 0
        self.half = threading.Event()
        self.ended = threading.Event()
        self.cut_short = False
        self.give_up_at: int | None = None  # bytes after which it drops the connection
        self.expected = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> SlowDisk:
        self._thread.start()
        start = asyncio.start_server(self._serve, sock=self._sock)
        self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result(5)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _stop(self) -> None:
        """Close the listener and every connection still open (Córtex's probes too)."""
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await asyncio.sleep(0.05)  # their transports finish closing on the loop

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                if not head.startswith("POST /api/blobs/"):
                    body = b'{"error":"not found"}'
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n")
                    writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                    continue
                length = int(head.lower().split("content-length: ")[1].split("\r\n")[0])
                self.expected = length
                while self.received < length:
                    piece = await reader.read(64 * 1024)
                    if not piece:
                        self.cut_short = True
                        self.ended.set()
                        return
                    self.received += len(piece)
                    if self.give_up_at is not None and self.received >= self.give_up_at:
                        return  # its disk is full: it hangs up
                    if self.received >= length // 2:
                        self.half.set()
                    await asyncio.sleep(0.001)  # a slow disk
                writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
                self.ended.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.ended.set()
        finally:
            self._writers.discard(writer)
            writer.close()


@pytest.fixture
def slow_disk() -> Iterator[SlowDisk]:
    with SlowDisk() as server:
        yield server


def _send_blob_head(url: str, digest: str, length: int) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    client = socket.create_connection((host, int(port)))
    head = f"POST /api/blobs/{digest} HTTP/1.1\r\nHost: localhost\r\n"
    client.sendall(f"{head}Content-Length: {length}\r\n\r\n".encode())
    return client


def test_the_server_reads_the_blob_before_the_client_has_sent_it_all(
    slow_disk: SlowDisk, start_gateway: StartGateway
) -> None:
    blob = b"b" * (8 * MiB)
    gateway = start_gateway(upstream=slow_disk.url, upstream_kind="ollama")
    with _send_blob_head(gateway.url, _digest(blob), len(blob)) as client:
        client.sendall(blob[: len(blob) * 3 // 4])
        # Córtex holding the body whole would send the server nothing yet.
        assert slow_disk.half.wait(10), f"the server got {slow_disk.received} bytes"
        client.sendall(blob[len(blob) * 3 // 4 :])
        client.settimeout(10)
        assert client.recv(4096).startswith(b"HTTP/1.1 201 ")
    assert slow_disk.received == len(blob) and not slow_disk.cut_short


def test_a_client_that_hangs_up_mid_blob_ends_the_servers_upload(
    slow_disk: SlowDisk, start_gateway: StartGateway
) -> None:
    blob = b"c" * (8 * MiB)
    gateway = start_gateway(upstream=slow_disk.url, upstream_kind="ollama")
    with _send_blob_head(gateway.url, _digest(blob), len(blob)) as client:
        client.sendall(blob[: len(blob) * 3 // 4])
        assert slow_disk.half.wait(10)
    assert slow_disk.ended.wait(10), "the server's upload was left open"
    assert slow_disk.cut_short and slow_disk.received < len(blob)


def test_a_blob_that_stops_arriving_is_a_408(fake: FakeOllama, start_gateway: StartGateway) -> None:
    gateway = start_gateway(body_timeout=0.5)
    with _send_blob_head(gateway.url, _digest(b"never sent whole"), 1000) as client:
        client.sendall(b"the first ten")
        client.settimeout(10)
        reply = client.recv(4096)
    assert reply.startswith(b"HTTP/1.1 408 "), reply
    assert b"the request body stopped for 0.5 s" in reply
    assert not fake.blobs


def test_the_ollama_client_uploads_a_gguf_larger_than_max_body_bytes_then_creates(
    fake: FakeOllama, start_gateway: StartGateway, tmp_path: Path
) -> None:
    gateway = start_gateway(max_body_bytes=1000)
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"GGUF" + bytes(range(256)) * (5 * MiB // 256))
    with ollama.Client(host=gateway.url) as client:
        digest = client.create_blob(weights)
        assert digest in fake.blobs
        created = client.create(model="made:1", files={"model.gguf": digest}, stream=False)
    assert created.status == "success"
    assert "made:1" in fake.models


def test_a_server_that_goes_away_mid_blob_is_reported_before_the_body_ends(
    slow_disk: SlowDisk, start_gateway: StartGateway
) -> None:
    blob = b"d" * (8 * MiB)
    gateway = start_gateway(upstream=slow_disk.url, upstream_kind="ollama")
    slow_disk.give_up_at = 2 * MiB
    with _send_blob_head(gateway.url, _digest(blob), len(blob)) as client:
        client.sendall(blob[: 4 * MiB])
        client.settimeout(10)
        reply = client.recv(4096)  # without the other half of the body
    assert reply.startswith(b"HTTP/1.1 502 "), reply
    assert b"closed the connection before it answered the upload" in reply


def test_a_blob_goes_to_every_server_a_create_may_go_to_at_once(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    with FakeOllama(models=["other:7b"]) as second:
        gateway = start_gateway(backends=[{"url": fake.url}, {"url": second.url}])
        blob = bytes(range(256)) * (3 * MiB // 256)
        second.blobs.add(_digest(blob))  # one has it already: it answers 200
        answer = httpx.post(gateway.url + f"/api/blobs/{_digest(blob)}", content=_pieces(blob))
        assert answer.status_code == 201  # the other stored it
        assert _digest(blob) in fake.blobs
        for server in (fake, second):
            assert any(r.path == f"/api/blobs/{_digest(blob)}" for r in server.requests)
