"""Towards an OpenAI-compatible server (llama.cpp's llama-server, vLLM, LM Studio…):
embeddings and model details; answers go through the codecs (``Wire.generation``)."""

from __future__ import annotations

import time
from typing import Any, Literal

import orjson

from ..asks import Embedding
from ..catalog import ModelEntry, find_model, from_openai, tags_body
from ..errors import ModelNotFound
from .base import Exchange, Wire, upstream_json

# model_info keys are "<architecture>.<fact>"; an OpenAI-compatible server names none.
UNKNOWN_ARCHITECTURE = "unknown"


class OpenAIWire(Wire):
    kind: Literal["openai", "anthropic"] = "openai"
    server = "an OpenAI-compatible server"
    catalogue_path = "/models"
    exact_names = True
    load_signal: Literal["engine"] = "engine"
    tokenizes = True

    def models(self, catalogue: bytes) -> list[ModelEntry]:
        return from_openai(catalogue)

    def embedding(self, ask: Embedding) -> Exchange:
        if ask.route == "openai":
            return Exchange("/embeddings", ask.body())
        legacy = ask.route == "ollama-embeddings"
        text = ask.payload["prompt"] if legacy else ask.payload["input"]
        body: dict[str, Any] = {"model": ask.model, "input": text, "encoding_format": "float"}
        if ask.payload.get("dimensions"):
            body["dimensions"] = ask.payload["dimensions"]

        sent = time.monotonic_ns()

        def as_ollama(answer: bytes) -> bytes:
            vectors, prompt_tokens = _vectors(upstream_json(answer))
            if legacy:
                return orjson.dumps({"embedding": vectors[0] if vectors else []})
            # Ollama always sends the timings and the count; clients' schemas require them.
            return orjson.dumps(
                {
                    "model": ask.model,
                    "embeddings": vectors,
                    "total_duration": time.monotonic_ns() - sent,
                    "load_duration": 0,
                    "prompt_eval_count": prompt_tokens,
                }
            )

        return Exchange("/embeddings", orjson.dumps(body), as_ollama)

    def show(self, name: str, raw: bytes, models: list[ModelEntry]) -> Exchange | bytes:
        """What an OpenAI-compatible server says of a model: its catalogue entry, its context
        (vLLM's ``max_model_len``, llama-server's ``n_ctx``) and what llama-server's
        ``/props`` says it can do; never fill-in-the-middle, which no call here carries."""
        entry = find_model(models, name)
        if entry is None:
            raise ModelNotFound(f'model "{name}" not found')
        info: dict[str, Any] = {"general.architecture": UNKNOWN_ARCHITECTURE}
        if entry.context_length is not None:
            info[f"{UNKNOWN_ARCHITECTURE}.context_length"] = entry.context_length
        return orjson.dumps(
            {
                "modelfile": "",
                "parameters": "",
                "template": "",  # no .Suffix: clients read that as no fill-in-the-middle
                "details": orjson.loads(tags_body([entry]))["models"][0]["details"],
                "model_info": info,
                "capabilities": list(entry.capabilities or ("completion",)),
            }
        )


def _vectors(answer: Any) -> tuple[list[Any], int]:
    data = sorted(answer.get("data") or [], key=lambda item: item.get("index", 0))
    usage = answer.get("usage") or {}
    return [item.get("embedding") for item in data], int(usage.get("prompt_tokens") or 0)


OPENAI = OpenAIWire()
