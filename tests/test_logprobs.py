"""Log probabilities carried across dialects: Ollama's and OpenAI's entries are one shape."""

from __future__ import annotations

import orjson

from cortex.dialects.ollama.reader import OllamaReader
from cortex.dialects.ollama.writer import OllamaWriter
from cortex.dialects.openai.reader import OpenAIReader
from cortex.dialects.openai.writer import OpenAIWriter
from cortex.events import Text
from cortex.stream.encode import NDJSON
from cortex.stream.translate import CrossDialect
from tests.invariant import sse_events

ENTRY = {
    "token": "Hola",
    "logprob": -0.25,
    "bytes": [72, 111, 108, 97],
    "top_logprobs": [{"token": "Hola", "logprob": -0.25, "bytes": [72, 111, 108, 97]}],
}
OLLAMA_LINES = [
    orjson.dumps(
        {
            "model": "m",
            "message": {"role": "assistant", "content": "Hola"},
            "done": False,
            "logprobs": [ENTRY],
        }
    ),
    orjson.dumps({"model": "m", "message": {"role": "assistant", "content": ""}, "done": True}),
]


def test_ollama_logprobs_reach_an_openai_client_in_each_chunk() -> None:
    translate = CrossDialect(OllamaReader(), OpenAIWriter("m", False), aggregate=False)
    out = translate.feed(OLLAMA_LINES) + translate.close()
    chunks = [orjson.loads(data) for _, data in sse_events(out) if data != "[DONE]"]
    with_content = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert with_content[0]["choices"][0]["logprobs"] == {"content": [ENTRY]}


def test_a_whole_openai_answer_gathers_every_logprob() -> None:
    translate = CrossDialect(OllamaReader(), OpenAIWriter("m", False), aggregate=True)
    translate.feed(OLLAMA_LINES)
    whole = orjson.loads(translate.close())
    assert whole["choices"][0]["logprobs"] == {"content": [ENTRY]}


def test_openai_logprobs_reach_an_ollama_client_on_each_line() -> None:
    chunk = {
        "choices": [{"index": 0, "delta": {"content": "Hola"}, "logprobs": {"content": [ENTRY]}}]
    }
    final = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    lines = [
        b"data: " + orjson.dumps(chunk),
        b"",
        b"data: " + orjson.dumps(final),
        b"",
        b"data: [DONE]",
        b"",
    ]
    translate = CrossDialect(OpenAIReader(), OllamaWriter("m", "chat", NDJSON), aggregate=False)
    out = translate.feed(lines) + translate.close()
    first = orjson.loads(out.split(b"\n")[0])
    assert first["logprobs"] == [ENTRY]


def test_entries_that_are_not_objects_are_left_out() -> None:
    line = orjson.dumps(
        {"message": {"role": "assistant", "content": "a"}, "done": False, "logprobs": [1, ENTRY]}
    )
    [event] = OllamaReader().read([line])
    assert event == Text("a", (ENTRY,))
