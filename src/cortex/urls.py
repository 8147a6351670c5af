"""Upstream addresses: Ollama's ``OLLAMA_HOST`` forms made whole, and passwords kept out of logs."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

OLLAMA_DEFAULT_PORT = 11434


def normalize_upstream(value: str, *, openai: bool = False) -> str:
    """Accept Ollama's ``OLLAMA_HOST`` forms: ``host``, ``host:port``, ``:port``, full URLs.

    An OpenAI-compatible base URL without a path gets ``/v1``, as the OpenAI SDKs expect.
    """
    value = value.strip()
    if not value:
        raise ValueError("the upstream address is empty")
    if "://" not in value:
        value = "http://" + value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"unsupported upstream scheme {parts.scheme!r} (use http or https)")
    host = parts.hostname or "127.0.0.1"
    default_port = 443 if parts.scheme == "https" else 80 if openai else OLLAMA_DEFAULT_PORT
    port = parts.port or default_port
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}"
    if parts.username:
        credentials = parts.username + (f":{parts.password}" if parts.password else "")
        netloc = f"{credentials}@{netloc}"
    path = parts.path.rstrip("/") or ("/v1" if openai else "")
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def redact_url(url: str) -> str:
    """The URL as it may appear in logs: without any password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
