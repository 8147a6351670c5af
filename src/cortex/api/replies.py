"""Small JSON responses, encoded with orjson."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

JSON_MEDIA_TYPE = "application/json; charset=utf-8"


def json_reply(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON_MEDIA_TYPE)


def raw_json_reply(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=JSON_MEDIA_TYPE)
