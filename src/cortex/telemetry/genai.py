"""What OpenTelemetry's GenAI and HTTP semantic conventions call things, read from Córtex's
own objects: no SDK here, so the rules are plain functions with fast tests.

The conventions followed (docs/observability.md cites them): GenAI spans and metrics
as of semantic-conventions v1.36 by default, and their latest experimental names
(``gen_ai.provider.name`` for v1.36's ``gen_ai.system``) when
``OTEL_SEMCONV_STABILITY_OPT_IN`` lists ``gen_ai_latest_experimental``; HTTP's
stable names, plus the old ones too with ``http/dup``. Never a prompt, an
answer or a key: only names, counts and parameters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import CortexError, UpstreamStatus

# Explicit bucket boundaries the GenAI metric conventions give, in seconds and tokens.
Buckets = tuple[float, ...]
DURATION_BUCKETS: Buckets = tuple(0.01 * 2**n for n in range(14))  # 0.01, 0.02 … 81.92
TTFT_BUCKETS: Buckets = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75)
TTFT_BUCKETS += (1.0, 2.5, 5.0, 7.5, 10.0)
TPOT_BUCKETS: Buckets = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
TOKEN_BUCKETS: Buckets = tuple(float(4**n) for n in range(14))  # 1, 4, 16 … 67108864

# The upstream's dialect, as the provider the conventions name: a local OpenAI-compatible
# server (vLLM, llama-server) speaks OpenAI's API, whose telemetry flavour is "openai";
# Ollama has no well-known value, so it is named as itself.
PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "ollama": "ollama"}
EMBEDDED = "llama.cpp"  # the embedded model, a llama.cpp in a child process

OPERATIONS = {"chat": "chat", "generate": "text_completion", "completion": "text_completion"}
EMBEDDINGS = "embeddings"

# Where each dialect keeps the request parameters the conventions record.
_MAX_TOKENS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
_PARAMETERS = frozenset((*_MAX_TOKENS, "options", "temperature", "top_p"))
_MAX_TOKENS_KEY, _TEMPERATURE = "gen_ai.request.max_tokens", "gen_ai.request.temperature"
_TOP_P = "gen_ai.request.top_p"


@dataclass(frozen=True, slots=True)
class Conventions:
    """Which names to emit, from ``OTEL_SEMCONV_STABILITY_OPT_IN``."""

    latest_genai: bool = False  # gen_ai_latest_experimental
    old_http: bool = False  # http/dup: the pre-1.23 HTTP names as well as the stable ones

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Conventions:
        chosen = {v.strip() for v in environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", "").split(",")}
        return cls("gen_ai_latest_experimental" in chosen, "http/dup" in chosen)

    @property
    def provider_key(self) -> str:
        return "gen_ai.provider.name" if self.latest_genai else "gen_ai.system"


def provider(kind: str | None) -> str:
    """The provider name for a backend of this dialect (None: the embedded model)."""
    return EMBEDDED if kind is None else PROVIDERS.get(kind, kind)


def request_parameters(payload: Mapping[str, Any]) -> dict[str, Any]:
    """``gen_ai.request.*`` from a client's body, where it gave them (Ollama's in options)."""
    return dict(parameter_pairs(payload))


def parameter_pairs(payload: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """``request_parameters`` as (name, value) pairs: a key for the encoder's cache."""
    if _PARAMETERS.isdisjoint(payload):
        return ()
    options = payload.get("options")
    source: Mapping[str, Any] = options if isinstance(options, dict) else payload
    if "max_tokens" in payload:
        limit = payload["max_tokens"]
    elif "max_completion_tokens" in payload:
        limit = payload["max_completion_tokens"]
    elif "max_output_tokens" in payload:
        limit = payload["max_output_tokens"]
    else:
        limit = source.get("num_predict")
    pairs: tuple[tuple[str, Any], ...] = ()
    if type(limit) is int:  # not a bool, nor a float
        pairs = ((_MAX_TOKENS_KEY, limit),)
    value = source["temperature"] if "temperature" in source else payload.get("temperature")
    if type(value) is float or type(value) is int:
        pairs += ((_TEMPERATURE, float(value)),)
    value = source["top_p"] if "top_p" in source else payload.get("top_p")
    if type(value) is float or type(value) is int:
        pairs += ((_TOP_P, float(value)),)
    return pairs


CANCELLED = "cancelled"  # the client went away: the attempt was stopped, not failed


def error_type(exc: BaseException) -> str:
    """A low-cardinality name for why an attempt ended early: the upstream's status, else
    the kind of fault (``timeout``, ``upstream-error``…), ``cancelled`` when the client
    left, else the exception's class."""
    if isinstance(exc, asyncio.CancelledError):
        return CANCELLED
    if isinstance(exc, UpstreamStatus):
        return str(exc.status)
    if isinstance(exc, CortexError):
        return exc.outcome
    return type(exc).__qualname__
