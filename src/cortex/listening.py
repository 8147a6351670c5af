"""Córtex's listening sockets: one shared by every process, or one per worker process.

Accepted connections inherit a listening socket's fixed send buffer, so the kernel
cannot grow megabytes of queued answer for a client that reads slowly (Linux
autotuning would); Córtex's own reads stop once that buffer is full.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from typing import Any, Literal

from .config import Settings

BACKLOG = 2048  # connections the kernel holds for a process until it accepts them

Mode = Literal["one process", "a socket per worker", "one shared socket"]


def serving_mode(workers: int, platform: str = sys.platform) -> Mode:
    """How ``workers`` processes listen. Linux spreads the connections of an address
    across the sockets bound to it with SO_REUSEPORT (elsewhere the option exists
    without the spreading); without it the workers share one socket."""
    if workers == 1:
        return "one process"
    if platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT"):
        return "a socket per worker"
    return "one shared socket"


@dataclass(frozen=True)
class Address:
    """Where Córtex listens, resolved once: every worker binds exactly this."""

    family: socket.AddressFamily
    sockaddr: tuple[Any, ...]

    @property
    def port(self) -> int:
        return int(self.sockaddr[1])


def listen_socket(settings: Settings) -> socket.socket:
    """The one listening socket, for one process or for processes that share it."""
    sock = _bound(settings, resolve(settings), reuse_port=False)
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def reserve(settings: Settings) -> socket.socket:
    """The supervisor's hold on the address: bound with SO_REUSEPORT (a port of 0 becomes
    a free port here, once) and never listening, so it is never given a connection: a
    listening socket that nobody accepts on would get its share of them and hang them."""
    return _bound(settings, resolve(settings), reuse_port=True)


def worker_socket(settings: Settings, address: Address) -> socket.socket:
    """A worker's own socket on the shared address, bound and not yet listening: uvicorn
    listens on it once the worker's app has started, so no connection waits on a worker
    that is still starting (the embedded model's self-test, say)."""
    return _bound(settings, address, reuse_port=True)


def address_of(sock: socket.socket) -> Address:
    return Address(socket.AddressFamily(sock.family), tuple(sock.getsockname()))


def resolve(settings: Settings) -> Address:
    family, _, _, _, sockaddr = socket.getaddrinfo(
        settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    return Address(family, tuple(sockaddr))


def _bound(settings: Settings, address: Address, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings.client_socket_buffer)
        if address.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address.sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock
