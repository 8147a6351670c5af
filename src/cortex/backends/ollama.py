"""Towards an Ollama server (and the embedded model, which speaks Ollama's wire format):
embeddings and model details; answers go through the codecs (``Wire.generation``)."""

from __future__ import annotations

from typing import Any, Literal

import orjson

from ..asks import Embedding
from ..catalog import ModelEntry, from_tags
from ..dialects.openai.request import embedding_base64
from ..errors import BadRequest
from .base import Exchange, Wire, upstream_json


class OllamaWire(Wire):
    kind: Literal["ollama"] = "ollama"
    server = "Ollama"
    catalogue_path = "/api/tags"
    exact_names = False
    load_signal: Literal["residency"] = "residency"
    tokenizes = False

    def models(self, catalogue: bytes) -> list[ModelEntry]:
        return from_tags(catalogue)

    def embedding(self, ask: Embedding) -> Exchange:
        if ask.route == "ollama-embed":
            return Exchange("/api/embed", ask.body())
        if ask.route == "ollama-embeddings":
            return Exchange("/api/embeddings", ask.body())
        text = ask.payload["input"]
        if isinstance(text, list) and any(not isinstance(item, str) for item in text):
            raise BadRequest(
                "this model's server is Ollama, whose embeddings take text, not token ids: "
                "send input as a string or a list of strings"
            )
        body: dict[str, Any] = {"model": ask.model, "input": text}
        if ask.payload.get("dimensions"):
            body["dimensions"] = ask.payload["dimensions"]
        encoding = ask.payload.get("encoding_format")

        def as_openai(answer: bytes) -> bytes:
            return orjson.dumps(_openai_embeddings(ask.model, upstream_json(answer), encoding))

        return Exchange("/api/embed", orjson.dumps(body), as_openai)

    def show(self, name: str, raw: bytes, models: list[ModelEntry]) -> Exchange | bytes:
        return Exchange("/api/show", raw)


def _openai_embeddings(model: str, answer: Any, encoding: str | None) -> dict[str, Any]:
    vectors = answer.get("embeddings") or []
    encode = embedding_base64 if encoding == "base64" else list
    prompt_tokens = int(answer.get("prompt_eval_count") or 0)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(vector)}
            for i, vector in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


OLLAMA = OllamaWire()
