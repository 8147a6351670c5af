"""The relay core on its own: chunk boundaries, the clock rules and the end rules, with the
time given by hand (the core reads no clock and does no I/O)."""

from __future__ import annotations

import orjson
import pytest

from cortex.dialects.ollama.passthrough import OllamaPassthrough
from cortex.dialects.ollama.reader import OllamaReader
from cortex.dialects.openai.writer import CHUNK, Envelope, OpenAIWriter
from cortex.errors import FirstByteTimeout, IdleTimeout, UpstreamIncomplete, UpstreamProtocolError
from cortex.stream.core import RelayCore, RelayLimits
from cortex.stream.encode import NDJSON, SSE
from cortex.stream.translate import CrossDialect

LIMITS = RelayLimits(
    first_byte=10.0, idle=3.0, heartbeat=1.0, max_line_bytes=256, max_response_bytes=1 << 20
)
STARTED = 100.0
LINES = [
    '{"message":{"role":"assistant","content":"Había"},"done":false}'.encode(),
    '{"message":{"role":"assistant","content":" una vez 🦄"},"done":false}'.encode(),
    b'{"message":{"role":"assistant","content":""},"done":true,"eval_count":2}',
]
BODY = b"".join(line + b"\n" for line in LINES)


def ndjson_core(limits: RelayLimits = LIMITS) -> RelayCore:
    return RelayCore(OllamaPassthrough(NDJSON), limits, STARTED)


def run(core: RelayCore, chunks: list[bytes]) -> bytes:
    out = b"".join(core.data(chunk, STARTED + 1) for chunk in chunks)
    return out + core.end()


@pytest.mark.parametrize("cut", range(len(BODY) + 1))
def test_a_body_cut_anywhere_reaches_the_client_as_whole_lines(cut: int) -> None:
    core = ndjson_core()
    assert run(core, [BODY[:cut], BODY[cut:]]) == BODY
    assert core.finished and core.failure is None


def test_a_body_cut_into_single_bytes_reaches_the_client_as_whole_lines() -> None:
    core = ndjson_core()
    assert run(core, [BODY[i : i + 1] for i in range(len(BODY))]) == BODY
    assert core.failure is None


def test_each_complete_line_is_returned_by_the_chunk_that_completes_it() -> None:
    core = ndjson_core()
    assert core.data(LINES[0][:10], STARTED + 1) == b""
    assert core.data(LINES[0][10:] + b"\n" + LINES[1][:5], STARTED + 2) == LINES[0] + b"\n"


def test_a_last_line_without_its_newline_is_read_at_the_end() -> None:
    core = ndjson_core()
    assert run(core, [BODY.rstrip(b"\n")]) == BODY
    assert core.failure is None


def test_the_first_byte_deadline_counts_from_the_request() -> None:
    core = ndjson_core()
    assert core.due() == STARTED + 10.0
    assert core.wake(STARTED + 9.9) == b""
    assert core.failure is None
    core.wake(STARTED + 10.0)
    assert isinstance(core.failure, FirstByteTimeout) and core.finished
    assert "10 s" in core.failure.message


def test_after_the_first_byte_the_idle_deadline_counts_from_the_last_chunk() -> None:
    core = ndjson_core()
    core.data(LINES[0] + b"\n", STARTED + 5)
    assert core.due() == STARTED + 8.0  # the idle deadline, before the first-byte one
    core.data(LINES[1][:3], STARTED + 7)
    assert core.due() == STARTED + 10.0
    core.wake(STARTED + 10.0)
    assert isinstance(core.failure, IdleTimeout)


def test_time_spent_waiting_for_the_client_is_not_upstream_silence() -> None:
    core = ndjson_core()
    core.data(LINES[0] + b"\n", STARTED + 1)
    core.resumed(STARTED + 30)  # the driver waited 29 s for a slow client
    assert core.due() == STARTED + 33
    assert core.wake(STARTED + 32) == b"" and core.failure is None


def test_a_complete_answer_followed_by_silence_ends_well() -> None:
    core = ndjson_core()
    out = core.data(BODY, STARTED + 1)
    assert core.translator.complete and not core.finished  # the upstream may still close
    assert core.wake(core.due()) == b""
    assert core.finished and core.failure is None
    assert out == BODY


def test_an_upstream_that_ends_before_the_final_line_is_an_incomplete_answer() -> None:
    core = ndjson_core()
    run(core, [LINES[0] + b"\n"])
    assert isinstance(core.failure, UpstreamIncomplete)


def test_server_sent_events_get_a_heartbeat_each_interval_of_silence() -> None:
    core = RelayCore(OllamaPassthrough(SSE), LIMITS, STARTED)
    assert core.due() == STARTED + 1.0
    assert core.wake(STARTED + 1.0) == b": ping\n\n"
    assert core.due() == STARTED + 2.0
    core.data(LINES[0] + b"\n", STARTED + 2.5)
    assert core.due() == STARTED + 3.5  # silence counts from the chunk
    assert core.wake(STARTED + 3.0) == b""


def test_ndjson_has_no_heartbeat_so_only_the_deadline_wakes() -> None:
    assert ndjson_core().due() == STARTED + 10.0


def test_a_line_longer_than_the_bound_is_a_protocol_error() -> None:
    core = ndjson_core()
    core.data(b"x" * 300, STARTED + 1)
    assert isinstance(core.failure, UpstreamProtocolError) and core.finished
    assert core.data(BODY, STARTED + 2) == b""  # nothing more is relayed


def test_a_line_that_is_not_json_stops_after_the_good_lines() -> None:
    core = ndjson_core()
    out = core.data(LINES[0] + b"\nnot json\n" + LINES[1] + b"\n", STARTED + 1)
    assert out == LINES[0] + b"\n"
    assert isinstance(core.failure, UpstreamProtocolError) and core.finished


def test_a_translated_stream_is_written_in_the_clients_dialect_through_the_same_rules() -> None:
    core = RelayCore(
        CrossDialect(OllamaReader(), OpenAIWriter("m", False), aggregate=False), LIMITS, STARTED
    )
    assert core.due() == STARTED + 1.0  # OpenAI's framing has a heartbeat comment
    out = run(core, [BODY[:17], BODY[17:]])
    assert core.failure is None
    assert out.count(b"chat.completion.chunk") == 4  # role, two pieces, finish
    assert out.endswith(b"data: [DONE]\n\n")
    assert "🦄".encode() in out


def test_an_answer_gathered_whole_is_bounded_like_one_read_whole() -> None:
    """A client that asked for no stream gets the upstream's stream gathered into one
    answer; what is gathered is bounded by ``max_response_bytes`` as a whole answer read as
    it came is, not held without limit until the upstream ends."""
    limits = RelayLimits(
        first_byte=10.0, idle=3.0, heartbeat=1.0, max_line_bytes=256, max_response_bytes=1024
    )
    core = RelayCore(
        CrossDialect(OllamaReader(), OpenAIWriter("m", False), aggregate=True),
        limits,
        STARTED,
    )
    line = b'{"message":{"role":"assistant","content":"tok "},"done":false}\n'
    sent = 0
    while not core.finished and sent < 4096:
        assert core.data(line, STARTED + 1) == b""
        sent += len(line)
    assert isinstance(core.failure, UpstreamProtocolError)
    assert "exceeded 1024 bytes" in core.failure.message
    assert 1024 < sent <= 1024 + len(line)


def test_a_stream_relayed_as_it_comes_is_not_bounded_in_total() -> None:
    limits = RelayLimits(
        first_byte=10.0, idle=3.0, heartbeat=1.0, max_line_bytes=256, max_response_bytes=1024
    )
    core = RelayCore(OllamaPassthrough(NDJSON), limits, STARTED)
    for _ in range(100):
        assert core.data(LINES[0] + b"\n", STARTED + 1) == LINES[0] + b"\n"
    assert core.data(LINES[2] + b"\n", STARTED + 1) == LINES[2] + b"\n"
    core.end()
    assert core.finished and core.failure is None


ENDINGS = {
    "an error line": b'{"error":"model runner crashed"}',
    "a line that is not JSON": b"<html>oops",
    "a JSON array": b"[1,2]",
    "JSON null": b"null",
    "a JSON string": b'"done"',
    "the final line": LINES[-1],
}


def fed(lines: list[bytes], batches: list[list[bytes]]) -> tuple[bytes, object, bool, bool]:
    """What an Ollama passthrough makes of ``batches``, fed until it fails or ends."""
    translator = OllamaPassthrough(NDJSON)
    out = b""
    for batch in batches:
        out += translator.feed(batch)
        if translator.failure is not None or translator.ended:
            break
    failure = translator.failure and str(translator.failure)
    return out, failure, translator.complete, translator.ended


@pytest.mark.parametrize("ending", ENDINGS)
def test_a_line_alone_in_its_batch_is_judged_as_in_a_batch_of_many(ending: str) -> None:
    lines = [*LINES[:2], ENDINGS[ending], LINES[0]]
    one_by_one = fed(lines, [[line] for line in lines])
    assert one_by_one == fed(lines, [lines])
    out, failure, complete, ended = one_by_one
    forwarded = LINES[0] + b"\n" + LINES[1] + b"\n"
    if ending == "an error line":  # forwarded, and the stream ends with it
        assert (out, failure, ended) == (forwarded + ENDINGS[ending] + b"\n", None, True)
    elif ending == "the final line":
        assert out == forwarded + LINES[2] + b"\n" + LINES[0] + b"\n"
        assert (failure, complete, ended) == (None, True, False)
    else:
        assert out == forwarded
        assert failure is not None and "not a JSON object" in failure


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("model", ["llama3.2:1b", 'a "quoted" módel\\🦄'])
def test_a_streamed_chunk_is_its_whole_object_encoded(include_usage: bool, model: str) -> None:
    """The envelope encodes what repeats once; the bytes are those of the whole object."""
    envelope = Envelope("chatcmpl-", model, include_usage)
    choices = [{"index": 0, "delta": {"content": "Había 🦄"}, "finish_reason": None}]
    for usage in (None, {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}):
        whole = envelope.whole(CHUNK, choices)
        if include_usage:
            whole["usage"] = usage
        for _ in range(2):  # the second time from the kept start
            assert envelope.event(CHUNK, choices, usage) == b"data: %s\n\n" % orjson.dumps(whole)


@pytest.mark.parametrize("cuts", [(1, 2), (1,), (2,), ()])
def test_a_translated_batch_relays_the_lines_before_a_bad_one(cuts: tuple[int, ...]) -> None:
    """However the lines are batched, those before a bad line reach the client."""
    lines = [*LINES[:2], b"<html>oops"]
    translator = CrossDialect(OllamaReader(), OpenAIWriter("m", False), aggregate=False)
    out = b""
    for start, end in zip((0, *cuts), (*cuts, len(lines)), strict=True):
        out += translator.feed(lines[start:end])
        if translator.failure is not None:
            break
    assert translator.failure is not None
    contents = [
        orjson.loads(event[len(b"data: ") :])["choices"][0]["delta"].get("content")
        for event in out.split(b"\n\n")
        if event
    ]
    assert contents == ["", "Había", " una vez 🦄"]  # the role's chunk, then both pieces
