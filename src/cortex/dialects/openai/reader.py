"""OpenAI's streamed chat (or text completion) events, read into events.

Tool calls stream as fragments by index: a new index starts a call and ends the
one before it, as text does (servers send a call's fragments together, and never
go back to a call they left). The finish reason is held
back until ``[DONE]`` so the usage event that follows it rides on the ``Finish``.
"""

from __future__ import annotations

from typing import Any

from ...errors import UpstreamProtocolError
from ...events import (
    Event,
    Failure,
    Finish,
    FinishReason,
    Reasoning,
    Text,
    ToolArguments,
    ToolEnd,
    ToolStart,
    Usage,
    model_name,
    token_count,
)
from ...stream.sse import Event as SSEEvent
from ...stream.sse import SSEDecoder
from ..ollama.reader import json_object, logprobs

UNEXPECTED_SHAPE = "the model server sent an event of an unexpected shape"


class OpenAIReader:
    reads_sse = True

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self._done = False
        self._finish: FinishReason | None = None
        self._usage = Usage()
        self._open: int | None = None  # the upstream's index of the call being streamed
        self._highest = -1  # the highest index seen
        self._calls = 0  # calls started, for each one's index in the answer
        self.model: str | None = None

    def read(self, lines: list[bytes]) -> list[Event]:
        return self._events(self._sse.feed(lines))

    def close(self) -> list[Event]:
        events = self._events(self._sse.flush())
        if not self._done and self._finish is not None:  # some servers omit [DONE]
            events += self._end()
        return events

    def _events(self, received: list[SSEEvent]) -> list[Event]:
        events: list[Event] = []
        for sse in received:
            if self._done:
                break
            if sse.data == b"[DONE]":
                events += self._end()
                continue
            message = json_object(sse.data)
            error = message.get("error")
            if error is not None or sse.name == b"error":
                text = error.get("message") if isinstance(error, dict) else error
                events.append(Failure(str(text or "the model server reported an error")))
                break
            if self.model is None:
                self.model = model_name(message.get("model"))
            self._read(message, events)
        return events

    def _end(self) -> list[Event]:
        self._done = True
        events: list[Event] = []
        if self._open is not None:
            events.append(ToolEnd(self._calls - 1))
            self._open = None
        reason: FinishReason = "tool_calls" if self._calls else self._finish or "stop"
        events.append(Finish(reason, self._usage))
        return events

    def _read(self, message: dict[str, Any], events: list[Event]) -> None:
        usage = message.get("usage")
        if isinstance(usage, dict):
            self._usage = usage_of(usage)
        choices = message.get("choices") or []
        if not isinstance(choices, list):
            raise UpstreamProtocolError(UNEXPECTED_SHAPE)
        if not choices:
            return
        choice = choices[0]
        if not isinstance(choice, dict) or not isinstance(delta := choice.get("delta") or {}, dict):
            raise UpstreamProtocolError(UNEXPECTED_SHAPE)
        content = delta.get("content") or choice.get("text") or ""
        thinking = delta.get("reasoning_content") or delta.get("reasoning") or ""
        if not isinstance(content, str) or not isinstance(thinking, str):
            raise UpstreamProtocolError(UNEXPECTED_SHAPE)
        if (thinking or content) and self._open is not None:
            events.append(ToolEnd(self._calls - 1))
            self._open = None
        if thinking:
            events.append(Reasoning(thinking))
        if content:
            probabilities = choice.get("logprobs")
            found = probabilities.get("content") if isinstance(probabilities, dict) else None
            events.append(Text(content, logprobs(found) if found else None))
        fragments = delta.get("tool_calls") or []
        if not isinstance(fragments, list):
            raise UpstreamProtocolError(UNEXPECTED_SHAPE)
        for fragment in fragments:
            self._call(fragment, events)
        if choice.get("finish_reason"):
            reason = choice["finish_reason"]
            self._finish = reason if reason in ("length", "tool_calls") else "stop"

    def _call(self, fragment: Any, events: list[Event]) -> None:
        function = (fragment.get("function") or {}) if isinstance(fragment, dict) else None
        index = fragment.get("index", 0) if isinstance(fragment, dict) else None
        if not isinstance(function, dict) or type(index) is not int:
            raise UpstreamProtocolError(UNEXPECTED_SHAPE)
        name, arguments = function.get("name") or "", function.get("arguments") or ""
        call_id = fragment.get("id")
        if not isinstance(name, str) or not isinstance(arguments, str):
            raise UpstreamProtocolError(UNEXPECTED_SHAPE)
        if index != self._open:
            if index <= self._highest:
                raise UpstreamProtocolError(UNEXPECTED_SHAPE)  # a call it had left
            if self._open is not None:
                events.append(ToolEnd(self._calls - 1))
            self._open = self._highest = index
            self._calls += 1
            events.append(
                ToolStart(self._calls - 1, call_id if isinstance(call_id, str) else None, name)
            )
        elif name:
            raise UpstreamProtocolError(UNEXPECTED_SHAPE)  # a second name for one call
        if arguments:
            events.append(ToolArguments(self._calls - 1, arguments))


def usage_of(usage: dict[str, Any]) -> Usage:
    """OpenAI's ``usage`` object, its details included."""
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    return Usage(
        token_count(usage.get("prompt_tokens")),
        token_count(usage.get("completion_tokens")),
        token_count(prompt_details.get("cached_tokens"))
        if isinstance(prompt_details, dict)
        else None,
        token_count(completion_details.get("reasoning_tokens"))
        if isinstance(completion_details, dict)
        else None,
    )
