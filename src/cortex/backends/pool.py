"""Kept-alive connections to one model server (``h1.Connection``), and new ones."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time

from .h1 import Connection

IDLE_SECONDS = 30.0  # a kept-alive connection unused this long is closed, not reused
MAX_IDLE = 64  # kept-alive connections per pool


class Pool:
    """Kept-alive connections to one origin, most recently used first."""

    def __init__(
        self,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        receive_buffer: int | None,
    ) -> None:
        self.host, self.port = host, port
        self._tls = tls
        self._receive_buffer = receive_buffer
        self._idle: list[Connection] = []

    def take(self) -> Connection | None:
        """A kept-alive connection, if one is still open and fresh."""
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if not connection.lost and now - connection.idle_since < IDLE_SECONDS:
                return connection
            connection.close()
        return None

    def give_back(self, connection: Connection) -> None:
        if not connection.reusable or len(self._idle) >= MAX_IDLE:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        self._idle.append(connection)

    async def connect(self) -> Connection:
        """A new connection (OSError if it cannot be made; socket.gaierror for a bad name)."""
        loop = asyncio.get_running_loop()
        addresses = await loop.getaddrinfo(
            self.host, self.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        error: OSError | None = None
        for family, type_, proto, _, address in addresses:
            sock = socket.socket(family, type_, proto)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._receive_buffer:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._receive_buffer)
                await loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            except BaseException:
                sock.close()
                raise
            _, connection = await loop.create_connection(
                lambda: Connection(loop),
                sock=sock,
                ssl=self._tls,
                server_hostname=self.host if self._tls else None,
            )
            return connection
        raise error or OSError("no address to connect to")

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
