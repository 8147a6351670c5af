"""Settings: every knob, its type, default and check (``sources.py`` says where they come
from)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from .keepalive import seconds
from .modelname import pick
from .urls import normalize_upstream

DEFAULT_UPSTREAM = "http://127.0.0.1:11434"
MiB = 1024 * 1024

UpstreamKind = Literal["ollama", "openai", "anthropic", "local"]
# How a backend is chosen among those that may serve a request (see routing/router.py).
RoutingRule = Literal["state", "affinity", "least-outstanding", "round-robin"]
# An Ollama duration: seconds, or a Go duration ("5m", "1h30m"); negative is forever.
KeepAlive = str | float
# The Ollama version Córtex reports when no backend is an Ollama (VS Code wants 0.6.4 or later).
OLLAMA_VERSION = "0.32.15"


def _split_kind(data: Any, url_key: str, kind_key: str) -> Any:
    """``openai+http://host:8080`` (or ``anthropic+…``) names the dialect in the URL; ``local``
    is the embedded model."""
    if isinstance(data, dict) and isinstance(data.get(url_key), str):
        kind, plus, url = data[url_key].partition("+")
        if data[url_key] == "local":
            return {**data, url_key: "http://127.0.0.1", kind_key: "local"}
        if plus and kind in ("ollama", "openai", "anthropic"):
            return {**data, url_key: url, kind_key: data.get(kind_key) or kind}
    return data


# Browser pages that may call Córtex by default: the ones served from this machine, as
# with Ollama. A ``*`` matches anything (a port, a subdomain).
LOCAL_ORIGINS = tuple(
    f"{scheme}://{host}{port}"
    for scheme in ("http", "https")
    for host in ("localhost", "127.0.0.1", "[::1]", "0.0.0.0")
    for port in ("", ":*")
) + tuple(  # desktop apps and editor extensions
    f"{scheme}://*" for scheme in ("app", "file", "tauri", "vscode-webview", "vscode-file")
)


KEY_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class KeyRecord(BaseModel):
    """One key's name, hash and limits (a ``[[keys]]`` table in TOML); never the key itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=KEY_NAME)
    key_hash: str
    rpm: int | None = Field(default=None, gt=0)
    concurrent: int | None = Field(default=None, gt=0)
    tokens_per_day: int | None = Field(default=None, gt=0)
    models: list[str] | None = None
    admin: bool = False  # sees every key's usage; other keys see only their own
    created: str | None = None

    @field_validator("key_hash")
    @classmethod
    def _hex_digest(cls, value: str) -> str:
        digest = value.removeprefix("sha256:").strip().lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError("key_hash must be the SHA-256 of the key, 64 hex digits")
        return digest

    def allows(self, model: str) -> bool:
        """The key may use this model: one its list names, by ``modelname.canonical``."""
        return self.models is None or pick(self.models, model) is not None


class BackendSettings(BaseModel):
    """One model server behind Córtex (a ``[[backends]]`` table in TOML)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = ""
    url: str = DEFAULT_UPSTREAM
    kind: UpstreamKind = "ollama"
    weight: float = Field(default=1.0, gt=0)
    max_concurrent: int | None = Field(default=None, gt=0)
    models: list[str] | None = None
    api_key: SecretStr | None = None
    keep_alive_max: KeepAlive | None = None  # the longest keep_alive an Ollama request may ask
    keep_alive_override: KeepAlive | None = None  # the keep_alive every Ollama request gets

    @model_validator(mode="before")
    @classmethod
    def _split_kind_prefix(cls, data: Any) -> Any:
        return _split_kind(data, "url", "kind")

    @field_validator("keep_alive_max", "keep_alive_override")
    @classmethod
    def _duration(cls, value: KeepAlive | None) -> KeepAlive | None:
        return _checked_duration(value)

    @model_validator(mode="after")
    def _normalize(self) -> BackendSettings:
        object.__setattr__(
            self, "url", normalize_upstream(self.url, openai=self.kind in ("openai", "anthropic"))
        )
        if not self.name and self.kind == "local":
            object.__setattr__(self, "name", "local")
        return self


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=0, le=65535)
    upstream: str = DEFAULT_UPSTREAM
    upstream_kind: UpstreamKind | Literal["auto"] | None = None
    upstream_api_key: SecretStr | None = None
    default_model: str | None = None
    connect_timeout: float = Field(default=10.0, gt=0)
    first_byte_timeout: float = Field(default=300.0, gt=0)
    load_timeout: float = Field(default=300.0, ge=0)  # added for a model not in memory
    idle_timeout: float = Field(default=30.0, gt=0)
    heartbeat_interval: float = Field(default=15.0, gt=0)
    max_body_bytes: int = Field(default=10 * MiB, gt=0)
    max_blob_bytes: int = Field(default=1024 * 1024 * MiB, gt=0)  # a model's weights, streamed
    max_connections: int = Field(default=10_000, ge=1)
    max_head_bytes: int = Field(default=64 * 1024, ge=1024)
    head_timeout: float = Field(default=10.0, gt=0)
    body_timeout: float = Field(default=30.0, gt=0)
    max_line_bytes: int = Field(default=8 * MiB, gt=0)
    max_response_bytes: int = Field(default=64 * MiB, gt=0)
    upstream_socket_buffer: int = Field(default=256 * 1024, ge=4096)
    client_socket_buffer: int = Field(default=256 * 1024, ge=4096)
    models_cache_seconds: float = Field(default=60.0, ge=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True
    metrics: bool = True
    cors_origins: list[str] = Field(default_factory=lambda: list(LOCAL_ORIGINS))
    allowed_hosts: list[str] = Field(default_factory=list)
    local_model_path: Path | None = None
    local_model_name: str | None = None
    local_chat_template: bool | None = None
    local_threads: int | None = Field(default=None, gt=0)
    local_context: int = Field(default=2048, ge=256)
    backends: list[BackendSettings] = Field(default_factory=list)
    health_interval: float = Field(default=15.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    circuit_failures: int = Field(default=3, ge=1)
    circuit_cooldown: float = Field(default=10.0, gt=0)
    queue_size: int = Field(default=256, ge=0)
    queue_timeout: float = Field(default=30.0, gt=0)
    affinity_slack: int = Field(default=2, ge=0)
    routing: RoutingRule = "state"
    cold_slack: int = Field(default=4, ge=0)
    balance_homes: bool = True  # a new conversation skips a home with its share (homes.py)
    routing_share: Literal["redis", "none"] | None = None  # None: "redis" with redis_url
    keys: list[KeyRecord] = Field(default_factory=list)  # [[keys]] tables; see access/keys.py
    keys_file: Path | None = None  # default: keys.default_keys_file()
    keys_refresh: float = Field(default=2.0, gt=0)
    require_keys: bool | None = None  # None: only with redis_url or once a key exists
    ops_require_key: bool = True
    redis_url: SecretStr | None = None
    limits_on_redis_failure: Literal["open", "closed"] = "open"
    drain_timeout: float = Field(default=30.0, ge=0)
    aliases: dict[str, str] = Field(default_factory=dict)  # asked name (or glob) -> model
    builtin_tools: Literal["drop", "refuse"] = "drop"  # a Responses request's hosted tools
    responses_ttl: float = Field(default=7 * 86400.0, gt=0)  # how long stored responses live
    responses_max_items: int = Field(default=1000, ge=1)  # in memory, without redis_url
    responses_max_bytes: int = Field(default=64 * MiB, ge=1024)  # in memory, in all
    responses_max_item_bytes: int = Field(default=8 * MiB, ge=1024)  # one conversation
    workers: int = Field(default=1, ge=1, le=64)
    ollama_version: str = OLLAMA_VERSION  # /api/version when no backend is an Ollama
    # Where /api/pull (and /api/create, blobs) go: "routed", "all", or a backend's name.
    pull_to: str = "routed"
    keep_alive_max: KeepAlive | None = None  # for every backend without its own
    keep_alive_override: KeepAlive | None = None

    @model_validator(mode="before")
    @classmethod
    def _split_kind_prefix(cls, data: Any) -> Any:
        return _split_kind(data, "upstream", "upstream_kind")

    @field_validator("keep_alive_max", "keep_alive_override")
    @classmethod
    def _duration(cls, value: KeepAlive | None) -> KeepAlive | None:
        return _checked_duration(value)

    @model_validator(mode="after")
    def _pull_target(self) -> Settings:
        names = {b.name for b in self.backend_list()}
        if self.pull_to not in ("routed", "all") and self.pull_to not in names:
            raise ValueError(
                f'pull_to is "routed", "all" or a backend\'s name, not {self.pull_to!r}'
            )
        return self

    @field_validator("cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """``CORTEX_CORS_ORIGINS="https://a.example,http://localhost:*"`` (empty: none)."""
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @model_validator(mode="after")
    def _normalize_upstream(self) -> Settings:
        url = normalize_upstream(
            self.upstream, openai=self.upstream_kind in ("openai", "anthropic")
        )
        object.__setattr__(self, "upstream", url)
        return self

    def backend_list(self) -> list[BackendSettings]:
        """The configured backends, or the single ``upstream`` as one; each with the global
        keep_alive policy where it has none of its own."""
        backends = self.backends or [
            BackendSettings(url=self.upstream, kind=self.kind, api_key=self.upstream_api_key)
        ]
        policy = {
            "keep_alive_max": self.keep_alive_max,
            "keep_alive_override": self.keep_alive_override,
        }
        return _named(
            [
                b.model_copy(update={k: v for k, v in policy.items() if getattr(b, k) is None})
                for b in backends
            ]
        )

    @model_validator(mode="after")
    def _share_needs_redis(self) -> Settings:
        if self.routing_share == "redis" and self.redis_url is None:
            raise ValueError('routing_share = "redis" needs redis_url')
        return self

    @property
    def shared_routing_url(self) -> str | None:
        """The Redis where instances share where they sent prompts, if they do."""
        if self.redis_url is None or self.routing_share == "none":
            return None
        return self.redis_url.get_secret_value()

    @property
    def keys_always_required(self) -> bool:
        """``require_keys``; unset, true with a shared (Redis) key store: a Redis that
        lost its data must not open the gateway."""
        return self.require_keys if self.require_keys is not None else self.redis_url is not None

    @property
    def kind(self) -> UpstreamKind:
        """The upstream's dialect; ``auto`` is resolved at start-up (see ``server.py``)."""
        kind = self.upstream_kind
        return "ollama" if kind is None or kind == "auto" else kind


def _named(backends: list[BackendSettings]) -> list[BackendSettings]:
    """Unnamed backends get neutral names (``backend-2``) that say nothing of their address:
    names go out in ``X-Cortex-Backend`` and ``/cortex/backends``, to any client."""
    taken = {b.name for b in backends if b.name}
    named = []
    for number, backend in enumerate(backends, start=1):
        if not backend.name:
            name = f"backend-{number}"
            while name in taken:
                name += "'"
            taken.add(name)
            backend = backend.model_copy(update={"name": name})
        named.append(backend)
    return named


def _checked_duration(value: KeepAlive | None) -> KeepAlive | None:
    if value is not None and seconds(value) is None:
        raise ValueError(f"{value!r} is not a duration (seconds, or like 5m, 1h30m, -1)")
    return value
