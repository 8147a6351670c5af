"""The least a Python relay can do: copy bytes both ways, on uvloop, with no HTTP at all.

    .venv/bin/python bench/pipe_relay.py --port 8002 --upstream 127.0.0.1:11434

Each client connection gets its own upstream connection, and every byte read on one side
is written to the other in the same callback; reading stops while the other side's
buffer is full. It parses nothing, so it is not a gateway: bench/concurrency.py measures
it beside Córtex as the floor of what CPython on this machine adds to a token's way,
whatever the relay does with it.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import cast

import uvloop


class Side(asyncio.Protocol):
    """One connection of a pair: what it reads goes to ``peer``'s transport."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: Side | None = None
        self.early = bytearray()  # the client's bytes before the upstream connection opens

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self.early += data
            if self.transport is not None and len(self.early) > 1 << 20:
                self.transport.pause_reading()
        else:
            peer.transport.write(data)

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


def client_side(upstream: tuple[str, int], tasks: set[asyncio.Task[None]]) -> Side:
    client = Side()

    async def join() -> None:
        loop = asyncio.get_running_loop()
        try:
            _, server = await loop.create_connection(Side, *upstream)
        except OSError:
            if client.transport is not None:
                client.transport.close()
            return
        client.peer, server.peer = server, client
        if client.early and server.transport is not None:
            server.transport.write(bytes(client.early))
            client.early.clear()
            if client.transport is not None:
                client.transport.resume_reading()

    task = asyncio.get_running_loop().create_task(join())
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return client


async def serve(host: str, port: int, upstream: tuple[str, int]) -> None:
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: client_side(upstream, tasks), host, port)
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--upstream", default="127.0.0.1:11434", help="host:port")
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    uvloop.run(serve(args.host, args.port, (host, int(port))))


if __name__ == "__main__":
    main()
