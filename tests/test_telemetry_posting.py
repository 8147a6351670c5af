"""The exporter's own HTTP/1.1 posts, against a real socket that answers as scripted:
lengths, chunks, closes, error statuses and a collector that drops an idle connection."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from cortex.telemetry.posting import Poster, PostFailed
from cortex.telemetry.settings import Destination

OK_LENGTH = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 3\r\n\r\nabc"
)
OK_CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4;x=y\r\nabcd\r\n2\r\nef\r\n0\r\nTrailer: 1\r\n\r\n"
)
OK_CLOSE = b"HTTP/1.0 200 OK\r\n\r\nbody until the end"


class Collector:
    """Accepts connections and answers each request with the next scripted answer; an
    answer of None closes the connection instead (after reading the request)."""

    def __init__(self, answers: list[bytes | None]) -> None:
        self.answers = answers
        self.requests: list[bytes] = []
        self.connections = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self._server.accept()
            except OSError:  # closed by the test
                return
            self.connections += 1
            with conn:
                while self.answers:
                    request = self._request(conn)
                    if request is None:
                        break
                    self.requests.append(request)
                    answer = self.answers.pop(0)
                    if answer is None:
                        break
                    conn.sendall(answer)
                    if answer.startswith(b"HTTP/1.0"):
                        break

    @staticmethod
    def _request(conn: socket.socket) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(
            next(line for line in head.split(b"\r\n") if line.startswith(b"Content-Length:"))[15:]
        )
        while len(body) < length:
            body += conn.recv(65536)
        return head + b"\r\n\r\n" + body

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def poster() -> Iterator[Poster]:
    made = Poster()
    yield made
    made.close()


def _to(collector: Collector) -> Destination:
    return Destination(f"http://127.0.0.1:{collector.port}/v1/traces", {"X-Key": "k"}, 5.0, False)


def test_answers_of_every_framing_are_read_and_the_connection_kept_while_it_may_be(
    poster: Poster,
) -> None:
    collector = Collector([OK_LENGTH, OK_CHUNKED, OK_LENGTH, OK_CLOSE, OK_LENGTH])
    to = _to(collector)
    for n in range(5):
        poster.post(to, b"body%d" % n, {"Content-Type": "application/x-protobuf"})
    # the HTTP/1.0 answer ended its connection: the last post opened another
    assert collector.connections == 2
    first = collector.requests[0]
    assert first.startswith(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"Content-Type: application/x-protobuf\r\n" in first
    assert first.endswith(b"Content-Length: 5\r\n\r\nbody0")
    assert [r[-5:] for r in collector.requests] == [b"body%d" % n for n in range(5)]
    collector.close()


def test_a_connection_the_collector_dropped_while_idle_is_opened_again(poster: Poster) -> None:
    collector = Collector([OK_LENGTH, None, OK_LENGTH])
    to = _to(collector)
    poster.post(to, b"one", {})
    poster.post(to, b"two", {})  # the kept connection fails: once more, on a new one
    assert collector.connections == 2
    assert [r[-3:] for r in collector.requests] == [b"one", b"two", b"two"]
    collector.close()


def test_an_error_status_or_no_collector_fails_the_post(poster: Poster) -> None:
    collector = Collector([b"HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n"])
    with pytest.raises(PostFailed, match="503"):
        poster.post(_to(collector), b"x", {})
    collector.close()
    nobody = socket.create_server(("127.0.0.1", 0))
    port = nobody.getsockname()[1]
    nobody.close()
    with pytest.raises(PostFailed):
        poster.post(Destination(f"http://127.0.0.1:{port}/v1/traces", {}, 5.0, False), b"x", {})


def test_a_header_with_a_line_break_is_refused_not_sent(poster: Poster) -> None:
    collector = Collector([OK_LENGTH])
    with pytest.raises(PostFailed, match="line break"):
        poster.post(_to(collector), b"x", {"X-Key": "k\r\nX-Evil: 1"})
    assert collector.requests == []
    collector.close()
