"""The line decoder, fed chunk boundaries explicitly and by hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cortex.stream.lines import LineDecoder, LineTooLong

STREAM = (
    '{"message":{"content":"Había"},"done":false}\n'
    '{"message":{"content":" una tortilla 🦄 ñ"},"done":false}\n'
    '{"done":true}\n'
).encode()


def decode_in_pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    decoder = LineDecoder()
    lines: list[bytes] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        lines += decoder.feed(data[start:cut])
        start = cut
    last = decoder.flush()
    return lines + ([last] if last is not None else [])


def test_whole_stream_in_one_chunk_gives_every_line() -> None:
    assert decode_in_pieces(STREAM, []) == STREAM.rstrip(b"\n").split(b"\n")


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_every_single_cut_point_reassembles_lines_and_utf8(cut: int) -> None:
    lines = decode_in_pieces(STREAM, [cut])
    assert lines == STREAM.rstrip(b"\n").split(b"\n")
    assert lines[1].decode() == '{"message":{"content":" una tortilla 🦄 ñ"},"done":false}'


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=30))
def test_any_chunking_decodes_to_the_same_lines(cuts: list[int]) -> None:
    assert decode_in_pieces(STREAM, cuts) == STREAM.rstrip(b"\n").split(b"\n")


@given(
    st.lists(
        st.text(
            alphabet=st.characters(exclude_characters="\n\r", exclude_categories=["Cs"]), min_size=1
        ),
        max_size=8,
    ),
    st.data(),
)
def test_arbitrary_lines_survive_arbitrary_chunking(texts: list[str], data: st.DataObject) -> None:
    lines = [line for line in (t.encode() for t in texts) if line.strip()]
    stream = b"".join(line + b"\n" for line in lines)
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=20))
    assert decode_in_pieces(stream, cuts) == lines


def test_a_chunk_without_newline_is_held_back() -> None:
    decoder = LineDecoder()
    assert decoder.feed(b'{"done":') == []
    assert decoder.pending == len(b'{"done":')
    assert decoder.feed(b"true}\n") == [b'{"done":true}']
    assert decoder.pending == 0


def test_last_line_without_newline_comes_out_of_flush() -> None:
    decoder = LineDecoder()
    assert decoder.feed(b'{"a":1}\n{"done":true}') == [b'{"a":1}']
    assert decoder.flush() == b'{"done":true}'
    assert decoder.flush() is None


def test_blank_lines_and_crlf_are_dropped() -> None:
    assert LineDecoder().feed(b'\n{"a":1}\r\n\r\n  \n{"b":2}\n') == [b'{"a":1}', b'{"b":2}']


def test_a_line_past_the_bound_raises() -> None:
    decoder = LineDecoder(max_line_bytes=16)
    decoder.feed(b"x" * 10)
    with pytest.raises(LineTooLong):
        decoder.feed(b"y" * 10)


def test_a_bounded_line_that_completes_in_time_is_fine() -> None:
    decoder = LineDecoder(max_line_bytes=16)
    assert decoder.feed(b"x" * 10) == []
    assert decoder.feed(b"y" * 5 + b"\nz") == [b"x" * 10 + b"y" * 5]


def test_a_line_past_the_bound_raises_even_when_it_ends_in_the_same_chunk() -> None:
    decoder = LineDecoder(max_line_bytes=16)
    decoder.feed(b"x" * 10)
    with pytest.raises(LineTooLong):
        decoder.feed(b"y" * 10 + b"\n")
    with pytest.raises(LineTooLong):
        LineDecoder(max_line_bytes=16).feed(b'{"ok":1}\n' + b"z" * 17 + b"\n")


def test_a_long_line_in_one_byte_pieces_is_joined_once_whole() -> None:
    line = b'{"response":"' + "ñ".encode() * 50_000 + b'"}'
    decoder = LineDecoder(max_line_bytes=len(line))
    for index in range(len(line)):
        assert decoder.feed(line[index : index + 1]) == []
    assert decoder.pending == len(line)
    assert decoder.feed(b"\n") == [line]
    assert decoder.pending == 0
    assert decoder.flush() is None


@pytest.mark.parametrize("keep_blank", [False, True])
@given(st.lists(st.sampled_from([b"data: {}", b"", b" ", b"\t\r", b"x", b": ping"]), max_size=12))
def test_event_sized_chunks_decode_as_the_whole_stream_does(
    keep_blank: bool, lines: list[bytes]
) -> None:
    """A server-sent event's usual chunk is one line and a blank one: read the same way."""
    stream = b"".join(line + b"\n" for line in lines)
    whole = LineDecoder(keep_blank=keep_blank).feed(stream)
    decoder = LineDecoder(keep_blank=keep_blank)
    pieces = stream.split(b"\n")[:-1]
    chunks = [b"".join(p + b"\n" for p in pieces[i : i + 2]) for i in range(0, len(pieces), 2)]
    assert [line for chunk in chunks for line in decoder.feed(chunk)] == whole
