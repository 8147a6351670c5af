"""Towards a server that speaks Anthropic's Messages API (Ollama 0.14 and later,
llama.cpp's llama-server, vLLM, LM Studio): answers go to its ``/v1/messages``.

Every such server also serves OpenAI's ``/v1/models`` and ``/v1/embeddings``, so its
catalogue, embeddings and model details are read as an OpenAI-compatible server's.
"""

from __future__ import annotations

from typing import Literal

from .openai import OpenAIWire


class AnthropicWire(OpenAIWire):
    kind: Literal["anthropic"] = "anthropic"
    server = "a server of Anthropic's Messages API"


ANTHROPIC = AnthropicWire()
