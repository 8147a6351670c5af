"""llama-cpp-python, compiled for this machine's baseline by scripts/llama-wheel."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

from . import Kind, LoadSettings, PromptTooLong, default_threads

TOO_LONG = "exceed context window"  # llama-cpp-python's ValueError for a prompt over the context


class CompiledGeneration:
    def __init__(self, chunks: Iterator[Any], chat: bool, prompt_tokens: int, llm: Any) -> None:
        self._chunks = chunks
        self._chat = chat
        self._llm = llm
        self.prompt_tokens = prompt_tokens
        self.completion_tokens: int | None = None  # llama-cpp-python streams a token a piece

    def __iter__(self) -> Iterator[tuple[str, str | None]]:
        pieces = 0
        try:
            for chunk in self._chunks:
                choice = chunk["choices"][0]
                text = (choice["delta"].get("content") or "") if self._chat else choice["text"]
                pieces += bool(text)
                yield text, choice["finish_reason"]
        except ValueError as exc:
            if TOO_LONG in str(exc):
                raise PromptTooLong(str(exc)) from exc
            raise
        if self._chat:  # a chat template: what is in the context but the answer
            self.prompt_tokens = max(int(self._llm.n_tokens) - pieces, 0)

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


class Compiled:
    kind: Kind = "compiled"

    def __init__(self, settings: LoadSettings) -> None:
        llama_cpp: Any = importlib.import_module("llama_cpp")  # installed where it is chosen
        self._llm: Any = llama_cpp.Llama(
            model_path=settings.model_path,
            n_ctx=settings.context,
            n_threads=settings.threads or default_threads(),
            last_n_tokens_size=settings.repeat_window,
            verbose=False,
        )
        self.system_info = llama_cpp.llama_print_system_info().decode(errors="replace").strip()

    def complete(self, prompt: str, params: dict[str, Any]) -> CompiledGeneration:
        prompt_tokens = len(self._llm.tokenize(prompt.encode(), add_bos=True))
        chunks = self._llm.create_completion(prompt, stream=True, **params)
        return CompiledGeneration(chunks, False, prompt_tokens, self._llm)

    def chat(self, messages: list[dict[str, str]], params: dict[str, Any]) -> CompiledGeneration:
        chunks = self._llm.create_chat_completion(messages=messages, stream=True, **params)
        return CompiledGeneration(chunks, True, 0, self._llm)
