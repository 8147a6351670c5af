"""The relay people write by hand: FastAPI and httpx, served by uvicorn.

    .venv/bin/python bench/handwritten.py --port 8001 --upstream http://127.0.0.1:11434

One route, ``POST /api/chat``: the request body goes to the upstream as it is and the
answer's bytes come back as they arrive. The benchmark's baseline for what a gateway
costs when nobody has worked on it.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse


def create_app(upstream: str) -> FastAPI:
    client = httpx.AsyncClient(base_url=upstream, timeout=None)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/api/chat")
    async def chat(request: Request) -> StreamingResponse:
        body = await request.body()

        async def relay() -> AsyncIterator[bytes]:
            headers = {"content-type": "application/json"}
            async with client.stream("POST", "/api/chat", content=body, headers=headers) as r:
                async for chunk in r.aiter_raw():
                    yield chunk

        return StreamingResponse(relay(), media_type="application/x-ndjson")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--upstream", default="http://127.0.0.1:11434")
    args = parser.parse_args()
    uvicorn.run(create_app(args.upstream), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
