"""Small clients for end-to-end tests: raw sockets where httpx would hide the wire."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import orjson


def post_chat(url: str, payload: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(url + "/api/chat", content=orjson.dumps(payload), timeout=15, **kwargs)


def stream_lines(
    url: str, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[httpx.Response, list[tuple[float, bytes]]]:
    """POST a chat and collect each line with the time it arrived."""
    lines: list[tuple[float, bytes]] = []
    with httpx.stream(
        "POST", url + "/api/chat", content=orjson.dumps(payload), headers=headers, timeout=15
    ) as response:
        buffer = b""
        for chunk in response.iter_raw():
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            lines += [(time.monotonic(), line) for line in complete if line]
        if buffer:
            lines.append((time.monotonic(), buffer))
    return response, lines


def parsed(lines: list[tuple[float, bytes]]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for _, line in lines]


def open_raw_stream(
    host: str, port: int, payload: dict[str, Any], rcvbuf: int | None = None
) -> socket.socket:
    """Send a chat request on a raw socket and return it unread."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((host, port))
    body = orjson.dumps(payload)
    sock.sendall(
        b"POST /api/chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    return sock


def read_until(sock: socket.socket, marker: bytes, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data
