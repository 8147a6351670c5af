"""``codecs.plan``: which call serves a request, and whether the answer is forwarded as it
comes or read and written again (a client of another dialect, or a whole answer from a
server that only streams)."""

from __future__ import annotations

import orjson

from cortex.asks import Generation
from cortex.backends.local import EMBEDDED
from cortex.backends.ollama import OLLAMA
from cortex.stream.encode import NDJSON
from cortex.stream.translate import CrossDialect

CHAT = {
    "model": "m",
    "messages": [{"role": "user", "content": "hi"}],
    "options": {"num_predict": 5, "temperature": 0.2},
    "stream": False,
}


def ask(stream: bool) -> Generation:
    payload = {**CHAT, "stream": stream}
    return Generation(payload, orjson.dumps(payload), "ollama", "chat", stream, NDJSON)


def test_a_whole_answer_from_ollama_is_forwarded_as_it_comes() -> None:
    call = OLLAMA.generation(ask(stream=False))
    assert call.translator is None  # one JSON object, passed on
    assert orjson.loads(call.body)["stream"] is False


def test_a_whole_answer_from_a_server_that_only_streams_is_streamed_and_gathered() -> None:
    call = EMBEDDED.generation(ask(stream=False))
    assert call.path == "/api/chat"
    body = orjson.loads(call.body)
    assert body["stream"] is True
    assert body["options"]["num_predict"] == 5
    assert body["messages"] == CHAT["messages"]
    assert isinstance(call.translator, CrossDialect)
    lines = [
        b'{"model":"m","message":{"role":"assistant","content":"Hel"},"done":false}\n',
        b'{"model":"m","message":{"role":"assistant","content":"lo"},"done":false}\n',
        b'{"model":"m","message":{"role":"assistant","content":""},"done":true,'
        b'"done_reason":"stop","eval_count":2,"prompt_eval_count":3}\n',
    ]
    assert all(call.translator.feed([line]) == b"" for line in lines)  # nothing until the end
    answer = orjson.loads(call.translator.close())
    assert answer["message"] == {"role": "assistant", "content": "Hello"}
    assert (answer["done"], answer["done_reason"]) == (True, "stop")
    assert (answer["eval_count"], answer["prompt_eval_count"]) == (2, 3)


def test_a_stream_from_a_server_that_only_streams_is_forwarded_as_it_comes() -> None:
    call = EMBEDDED.generation(ask(stream=True))
    assert call.translator is not None
    assert not isinstance(call.translator, CrossDialect)
    assert call.body == orjson.dumps({**CHAT, "stream": True})
