"""The protocol on the pipes between the gateway and the embedded model's process.

Gateway to child, one JSON object a line on the child's stdin:
    {"op": "start", "id": 7, "path": "/api/chat", "body": {...}, "window": 16}
    {"op": "credit", "id": 7, "n": 4}      the gateway took 4 more lines of answer 7
    {"op": "cancel", "id": 7}              the client left: stop at the next token
The child may run ahead of the gateway by ``window`` lines of an answer, no more
(backpressure). End of stdin means the gateway is gone; the child exits.

Child to gateway, on the child's original stdout:
    b"7 <an Ollama NDJSON line>\n"         a line of answer 7, relayed as is
    b"! {\"event\": \"ready\", ...}\n"     the model loaded and generated a token
    b"! {\"event\": \"failed\", \"error\": \"...\"}\n"   it could not; the child exits
    b"! {\"event\": \"refused\", \"id\": 7, \"error\": \"...\"}\n"   its prompt is too long
    b"! {\"event\": \"end\", \"id\": 7, \"tokens\": 12}\n"   answer 7 is over
"""

from __future__ import annotations

from typing import Any

import orjson

EVENT_PREFIX = b"! "
WINDOW = 16  # lines an answer may run ahead of the client


def command(op: str, **fields: Any) -> bytes:
    return orjson.dumps({"op": op, **fields}) + b"\n"


def event(name: str, **fields: Any) -> bytes:
    return EVENT_PREFIX + orjson.dumps({"event": name, **fields}) + b"\n"


def answer_line(job: int, line: bytes) -> bytes:
    return b"%d %s\n" % (job, line)
