"""The chat page: index.html at ``/`` and its two assets under ``/static/``, from the package.

Only the names in ``_TYPES`` are served (nothing is looked up from the request path), so
there is no path to traverse. ``no-cache`` with an ETag: browsers revalidate on every load
and get a ``304`` while the file is unchanged.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, Response

router = APIRouter(include_in_schema=False)

_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
}
# The page needs nothing but its own files and same-origin fetches; model output that
# somehow became markup still could not run a script or load anything.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@cache
def _load(name: str) -> tuple[bytes, str]:
    body = files(__name__).joinpath(name).read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


def _serve(name: str, request: Request) -> Response:
    body, etag = _load(name)
    headers = {"Cache-Control": "no-cache", "ETag": etag, "X-Content-Type-Options": "nosniff"}
    if name == "index.html":
        headers["Content-Security-Policy"] = _CSP
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=_TYPES[name], headers=headers)


@router.api_route("/", methods=["GET", "HEAD"])
async def page(request: Request) -> Response:
    """The chat page for browsers; Ollama's own answer for the tools that probe ``/``."""
    if "text/html" not in request.headers.get("accept", ""):
        return PlainTextResponse("Ollama is running")
    return _serve("index.html", request)


@router.api_route("/static/{name}", methods=["GET", "HEAD"])
async def asset(name: str, request: Request) -> Response:
    if name not in _TYPES or name == "index.html":
        raise HTTPException(404, "Not Found")
    return _serve(name, request)
