"""The SSE decoder, line by line: events end at a blank line, data lines join with \\n."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cortex.dialects.openai.passthrough import OpenAIPassthrough
from cortex.errors import UpstreamIncomplete
from cortex.stream.lines import LineDecoder
from cortex.stream.sse import Event, SSEDecoder


def events_of(stream: bytes) -> list[Event]:
    lines = LineDecoder(keep_blank=True).feed(stream)
    decoder = SSEDecoder()
    return decoder.feed(lines) + decoder.flush()


def test_an_event_with_several_data_lines_is_one_event() -> None:
    assert events_of(b'data: {"a":\ndata: 1}\n\n') == [Event(b'{"a":\n1}')]


def test_an_event_is_not_dispatched_before_its_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed([b"data: one"]) == []
    assert decoder.feed([b"data: two"]) == []
    assert decoder.feed([b""]) == [Event(b"one\ntwo")]


def test_the_event_field_names_only_its_own_event() -> None:
    stream = b'event: error\ndata: {"error":"x"}\n\ndata: {"b":2}\n\n'
    assert events_of(stream) == [Event(b'{"error":"x"}', b"error"), Event(b'{"b":2}')]


def test_comments_ids_and_retry_hints_are_not_data() -> None:
    stream = b": keep-alive\n\nid: 7\nretry: 100\ndata: x\n\n"
    assert events_of(stream) == [Event(b"x")]


def test_one_space_after_the_colon_is_dropped_and_no_more() -> None:
    assert events_of(b"data:x\n\ndata:  y\n\n") == [Event(b"x"), Event(b" y")]


def test_crlf_line_ends_are_read_as_lf() -> None:
    assert events_of(b"data: a\r\ndata: b\r\n\r\n") == [Event(b"a\nb")]


def test_a_last_event_without_its_blank_line_still_counts() -> None:
    assert events_of(b"data: [DONE]\n") == [Event(b"[DONE]")]


def test_blank_lines_alone_make_no_events() -> None:
    assert events_of(b"\n\n\n") == []


def test_an_event_encodes_back_to_what_it_decodes_from() -> None:
    for event in (Event(b"x"), Event(b"a\nb", b"error")):
        assert events_of(event.encode()) == [event]


def test_a_multi_line_openai_event_passes_through_as_one_event() -> None:
    passthrough = OpenAIPassthrough()
    chunk = b'{"choices":[{"index":0,\n"delta":{"content":"hola"},"finish_reason":null}]}'
    lines = LineDecoder(keep_blank=True).feed(
        b"".join(b"data: " + part + b"\n" for part in chunk.split(b"\n"))
        + b"\n"
        + b"data: [DONE]\n\n"
    )
    out = passthrough.feed(lines)
    assert passthrough.failure is None
    assert passthrough.pieces == 1
    assert passthrough.complete
    assert events_of(out) == [Event(chunk), Event(b"[DONE]")]


def test_an_event_whose_data_lines_come_in_two_reads_is_one_event() -> None:
    decoder = SSEDecoder()
    assert decoder.feed([b"data: one"]) == []
    assert decoder.feed([b"data: two", b""]) == [Event(b"one\ntwo")]
    assert decoder.feed([b"event: error"]) == []
    assert decoder.feed([b"data: three", b""]) == [Event(b"three", b"error")]


def test_a_completions_piece_counts_and_the_first_finish_reason_is_the_answers() -> None:
    passthrough = OpenAIPassthrough()
    events = [
        b'{"choices":[{"index":0,"text":""},{"index":1,"text":"hola"}]}',
        b'{"choices":[{"index":0,"text":"","finish_reason":"stop"},'
        b'{"index":1,"text":"","finish_reason":"length"}]}',
        b'{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}',
    ]
    for event in events:
        passthrough.feed([b"data: " + event, b""])
    assert passthrough.failure is None
    assert (passthrough.pieces, passthrough.finish_reason) == (1, "stop")
    assert passthrough.close() == b"data: [DONE]\n\n"  # a finished answer that omits it


def test_an_unfinished_answer_without_its_done_is_incomplete() -> None:
    passthrough = OpenAIPassthrough()
    passthrough.feed([b'data: {"choices":[{"index":0,"delta":{"content":"ho"}}]}', b""])
    with pytest.raises(UpstreamIncomplete):
        passthrough.close()


def test_a_whole_named_event_in_one_read_leaves_no_name_behind() -> None:
    decoder = SSEDecoder()
    assert decoder.feed([b"event: stale"]) == []
    assert decoder.feed([b"event: ping", b"data: 1", b""]) == [Event(b"1", b"ping")]
    assert decoder.feed([b"data: 2", b""]) == [Event(b"2")]


FIELDS = st.sampled_from(
    [b"event: ping", b"event:x", b"data: {}", b"data:1", b"data: [DONE]", b": ok", b"id: 7", b""]
)


@given(st.lists(FIELDS, max_size=16), st.lists(st.integers(1, 4), max_size=16))
def test_lines_read_in_any_batches_make_the_events_they_make_one_by_one(
    lines: list[bytes], sizes: list[int]
) -> None:
    one_by_one, batched = SSEDecoder(), SSEDecoder()
    expected = [event for line in lines for event in one_by_one.feed([line])]
    got, start = [], 0
    for size in [*sizes, len(lines)]:
        got += batched.feed(lines[start : start + size])
        start += size
    assert got == expected
    assert one_by_one.flush() == batched.flush()
