"""Events written as the Responses API's stream of named server-sent events.

Every event is ``event: <type>`` and ``data: <json>`` with that ``type`` and a
``sequence_number`` counting from 0. The stream opens with ``response.created``
and ``response.in_progress``; each run of reasoning, of text, and each tool call
is one output item (``response.output_item.added`` … ``.done``, with its part
and delta events between; a call of a custom tool is a ``custom_tool_call``, its
input written whole when the call ends); it ends with ``response.completed``,
``response.incomplete`` (the output-token limit was reached) or
``response.failed``. Reasoning is written as raw ``reasoning_text`` content
(``response.reasoning_text.delta``), as OpenAI and vLLM give an open-weight
model's reasoning; a client that asked for ``reasoning.summary`` (Codex does)
gets it as the summary (``response.reasoning_summary_text.delta``), as Ollama
writes it, since a summary is what such a client shows. The heartbeat is an SSE
comment: the stream defines none, and every SSE reader skips comments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import orjson

from ...errors import CortexError
from ...events import (
    Answer,
    Event,
    Failure,
    Finish,
    Reasoning,
    Text,
    ToolArguments,
    ToolEnd,
    ToolStart,
)
from . import custom
from . import response as r
from .tools import chat_tools

SUMMARIES = ("auto", "concise", "detailed")


class Kind(NamedTuple):
    """How one kind of item's single part is written."""

    item: Literal["message", "reasoning", "summary"]
    added: str
    delta: str
    done: str
    part_done: str
    at: str  # the key of the part's place: content_index or summary_index


MESSAGE = Kind(
    "message",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "content_index",
)
REASONING = Kind(
    "reasoning",
    "response.content_part.added",
    "response.reasoning_text.delta",
    "response.reasoning_text.done",
    "response.content_part.done",
    "content_index",
)
SUMMARY = Kind(
    "summary",
    "response.reasoning_summary_part.added",
    "response.reasoning_summary_text.delta",
    "response.reasoning_summary_text.done",
    "response.reasoning_summary_part.done",
    "summary_index",
)


@dataclass(slots=True)
class Item:
    """An output item being written: its place, id, and text or arguments so far."""

    index: int
    id: str
    pieces: list[str] = field(default_factory=list)
    call_id: str = ""
    name: tuple[str | None, str] = (None, "")
    custom: bool = False


class ResponsesWriter:
    """One response's events, written for a client of the Responses API."""

    heartbeat: bytes | None = b": keep-alive\n\n"

    def __init__(self, model: str, request_echo: dict[str, Any], response_id: str | None = None):
        self.response_id = response_id or r.new_id("resp")
        self.response: dict[str, Any] | None = None  # the finished response, to store
        self._base = r.response_object(self.response_id, model, request_echo)
        summary = (request_echo.get("reasoning") or {}).get("summary") in SUMMARIES
        self._reasoning = SUMMARY if summary else REASONING
        self._names = chat_tools(request_echo.get("tools"), "drop")[1]
        self._sequence = 0
        self._started = False
        self._ended = False
        self._output: list[dict[str, Any]] = []
        self._open: tuple[Kind, Item] | None = None
        self._calls: dict[int, Item] = {}
        self._pieces = 0

    def write(self, events: list[Event]) -> bytes:
        out = self._start()
        for event in events:
            if self._ended:
                break
            if type(event) is Text and event.text:  # a token, the usual event: no match
                out += self._piece(MESSAGE, event.text)
                continue
            match event:
                case Reasoning(text) if text:
                    out += self._piece(self._reasoning, text)
                case ToolStart(index, call_id, name):
                    out += self._close_open("completed") + self._call_added(index, call_id, name)
                case ToolArguments(index, piece) if index in self._calls and piece:
                    out += self._arguments(self._calls[index], piece)
                case ToolEnd(index) if index in self._calls:
                    out += self._call_done(self._calls.pop(index), "completed")
                case Finish():
                    out += self._finish(event)
                case Failure(message):
                    out += self._failed(CortexError(message))
        return out

    def error(self, exc: CortexError) -> bytes:
        if self._ended:
            return b""
        code = exc.code or ("rate_limit_exceeded" if exc.status == 429 else "server_error")
        fields = {"code": code, "message": exc.message, "param": None}
        return self._start() + self._event("error", fields) + self._failed(exc)

    def whole(self, answer: Answer) -> bytes:
        finish = answer.finish or Finish("stop")
        status: r.ItemStatus = "incomplete" if finish.reason == "length" else "completed"
        output: list[dict[str, Any]] = []
        if answer.thinking:
            summary = self._reasoning is SUMMARY
            rs = self._item_id("rs", len(output))
            output.append(r.reasoning_item(rs, answer.thinking, summary, "completed"))
        if answer.content:
            msg = self._item_id("msg", len(output))
            output.append(r.message_item(msg, answer.content, "completed"))
        for _, call in sorted(answer.calls.items()):
            call_id = call.id or r.new_id("call")
            name = self._names.wire_name(call.name)
            arguments = call.arguments or "{}"
            if call.name in self._names.custom:
                text = custom.input_text(arguments)
                ctc = self._item_id("ctc", len(output))
                output.append(r.call_item(ctc, call_id, name, text, "completed", custom=True))
            else:
                fc = self._item_id("fc", len(output))
                output.append(r.call_item(fc, call_id, name, arguments, "completed"))
        if output and status == "incomplete":
            output[-1]["status"] = "incomplete"
        usage = r.usage_object(finish.usage, answer.pieces)
        self.response = r.finished(self._base, status, output, usage)
        self._ended = True
        return orjson.dumps(self.response)

    def _event(self, kind: str, fields: dict[str, Any]) -> bytes:
        data = orjson.dumps({"type": kind, "sequence_number": self._sequence, **fields})
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self._event("response.created", {"response": self._base}) + self._event(
            "response.in_progress", {"response": self._base}
        )

    def _piece(self, kind: Kind, text: str) -> bytes:
        self._pieces += 1
        out = b""
        if self._open is None or self._open[0] is not kind:
            out = self._close_open("completed") + self._opened(kind)
        assert self._open is not None
        item = self._open[1]
        item.pieces.append(text)
        fields = {"item_id": item.id, "output_index": item.index, kind.at: 0, "delta": text}
        if kind is MESSAGE:
            fields["logprobs"] = []
        return out + self._event(kind.delta, fields)

    def _item_id(self, prefix: str, index: int) -> str:
        return r.item_id(prefix, self.response_id, index)

    def _opened(self, kind: Kind) -> bytes:
        index = len(self._output)
        item = Item(index, self._item_id("msg" if kind is MESSAGE else "rs", index))
        self._open = (kind, item)
        shown = self._item(kind, item, None, "in_progress")
        self._output.append(shown)
        where = {"item_id": item.id, "output_index": item.index, kind.at: 0}
        added = {"output_index": item.index, "item": shown}
        part = {**where, "part": self._part(kind, "")}
        return self._event("response.output_item.added", added) + self._event(kind.added, part)

    def _close_open(self, status: r.ItemStatus) -> bytes:
        if self._open is None:
            return b""
        kind, item = self._open
        self._open = None
        text = "".join(item.pieces)
        where = {"item_id": item.id, "output_index": item.index, kind.at: 0}
        done = {**where, "text": text} | ({"logprobs": []} if kind is MESSAGE else {})
        shown = self._output[item.index] = self._item(kind, item, text, status)
        return (
            self._event(kind.done, done)
            + self._event(kind.part_done, {**where, "part": self._part(kind, text)})
            + self._event("response.output_item.done", {"output_index": item.index, "item": shown})
        )

    @staticmethod
    def _item(kind: Kind, item: Item, text: str | None, status: r.ItemStatus) -> dict[str, Any]:
        if kind is MESSAGE:
            return r.message_item(item.id, text, status)
        return r.reasoning_item(item.id, text, kind is SUMMARY, status)

    @staticmethod
    def _part(kind: Kind, text: str) -> dict[str, Any]:
        if kind is MESSAGE:
            return r.text_part(text)
        return {"type": "summary_text" if kind is SUMMARY else "reasoning_text", "text": text}

    def _call_added(self, index: int, call_id: str | None, name: str) -> bytes:
        kind = "ctc" if name in self._names.custom else "fc"
        place = len(self._output)
        item = Item(place, self._item_id(kind, place), call_id=call_id or r.new_id("call"))
        item.name, item.custom = self._names.wire_name(name), kind == "ctc"
        self._calls[index] = item
        shown = r.call_item(item.id, item.call_id, item.name, "", "in_progress", custom=item.custom)
        self._output.append(shown)
        return self._event(
            "response.output_item.added", {"output_index": item.index, "item": shown}
        )

    def _arguments(self, call: Item, piece: str) -> bytes:
        call.pieces.append(piece)
        if call.custom:  # its input is a string inside these JSON pieces: written at the end
            return b""
        fields = {"item_id": call.id, "output_index": call.index, "delta": piece}
        return self._event("response.function_call_arguments.delta", fields)

    def _call_done(self, item: Item, status: r.ItemStatus) -> bytes:
        arguments = "".join(item.pieces) or "{}"
        where = {"item_id": item.id, "output_index": item.index}
        if item.custom:
            text = custom.input_text(arguments)
            shown = r.call_item(item.id, item.call_id, item.name, text, status, custom=True)
            out = self._event("response.custom_tool_call_input.delta", {**where, "delta": text})
            out += self._event("response.custom_tool_call_input.done", {**where, "input": text})
        else:
            shown = r.call_item(item.id, item.call_id, item.name, arguments, status)
            fields = {**where, "arguments": arguments, "name": item.name[1]}
            out = self._event("response.function_call_arguments.done", fields)
        self._output[item.index] = shown
        done = {"output_index": item.index, "item": shown}
        return out + self._event("response.output_item.done", done)

    def _finish(self, finish: Finish) -> bytes:
        status: r.ItemStatus = "incomplete" if finish.reason == "length" else "completed"
        out = self._close_open(status)
        for index in sorted(self._calls):
            out += self._call_done(self._calls.pop(index), status)
        usage = r.usage_object(finish.usage, self._pieces)
        self.response = r.finished(self._base, status, self._output, usage)
        self._ended = True
        return out + self._event(f"response.{status}", {"response": self.response})

    def _failed(self, exc: CortexError) -> bytes:
        self.response = r.failed(self._base, self._output, exc)
        self._ended = True
        return self._event("response.failed", {"response": self.response})
