"""``cortex keys create|list|revoke`` and ``cortex usage``.

Keys are created where ``cortex serve`` reads them, from the same settings
(``--config``, ``CORTEX_*``): in Redis when ``redis_url`` is set, else in the
keys file. A running gateway picks a change up within ``keys_refresh`` seconds.
``cortex usage`` asks a running Córtex (``GET /cortex/usage``), so it works
with either store.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from ..access.keys import (
    FileKeyStore,
    KeyFileError,
    KeyStore,
    default_keys_file,
    generate_key,
    new_record,
)
from ..access.limits import StoreUnavailable
from ..config import KeyRecord, Settings
from ..sources import ConfigError, load_settings

T = TypeVar("T")

keys_app = typer.Typer(
    help="Create, list and revoke API keys (see README, 'API keys and limits').",
    no_args_is_help=True,
)
KeyOption = Annotated[
    str | None,
    typer.Option("--key", envvar="CORTEX_API_KEY", help="An API key, if Córtex requires them"),
]
ConfigOption = Annotated[
    Path | None, typer.Option(help="TOML settings file [default: $CORTEX_CONFIG]")
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"cortex: {message}", err=True)
    return typer.Exit(code)


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings({}, os.environ, config)
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None


def _store(settings: Settings) -> KeyStore:
    if settings.redis_url is not None:
        from ..access.limits_redis import RedisKeyStore, connect

        return RedisKeyStore(connect(settings.redis_url.get_secret_value()))
    return FileKeyStore(settings.keys_file or default_keys_file())


def _where(settings: Settings) -> str:
    if settings.redis_url is not None:
        return "Redis"
    return str(settings.keys_file or default_keys_file())


def _run(settings: Settings, call: Callable[[KeyStore], Awaitable[T]]) -> T:
    store = _store(settings)

    async def run() -> T:
        try:
            return await call(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except StoreUnavailable as exc:
        raise _fail(f"cannot reach Redis: {exc}") from None
    except KeyFileError as exc:
        raise _fail(str(exc)) from None


@keys_app.command()
def create(
    name: Annotated[str, typer.Argument(help="A name for the key: letters, digits, . _ -")],
    rpm: Annotated[int | None, typer.Option(help="Requests per minute")] = None,
    concurrent: Annotated[int | None, typer.Option(help="Requests in progress at once")] = None,
    tokens_per_day: Annotated[
        int | None, typer.Option(help="Prompt + completion tokens per UTC day")
    ] = None,
    models: Annotated[
        str | None, typer.Option(help="Comma-separated models it may use [default: all]")
    ] = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="May read every key's usage, not only its own")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Create a key and print it. It is shown this once: Córtex keeps only its hash."""
    settings = _settings(config)
    if any(k.name == name for k in settings.keys):
        raise _fail(f"a key named {name!r} is in the settings already")
    key = generate_key()
    allowed = [m.strip() for m in models.split(",") if m.strip()] if models else None
    try:
        record = new_record(
            name,
            key,
            rpm=rpm,
            concurrent=concurrent,
            tokens_per_day=tokens_per_day,
            models=allowed,
            admin=admin,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise _fail(f"invalid key: {problems}", 2) from None
    if not _run(settings, lambda store: store.add(record)):
        raise _fail(f"a key named {name!r} exists already (revoke it first)")
    typer.echo(key)
    typer.echo(f"key {name!r} created in {_where(settings)}; it will not be shown again", err=True)


@keys_app.command("list")
def list_keys(config: ConfigOption = None) -> None:
    """The keys, their limits and when they were created (never the keys themselves)."""
    settings = _settings(config)
    stored = _run(settings, lambda store: store.read())
    rows: list[tuple[str, ...]] = [
        ("NAME", "RPM", "CONCURRENT", "TOKENS/DAY", "MODELS", "ADMIN", "CREATED", "FROM")
    ]
    sources: list[tuple[KeyRecord, str]] = [(k, "settings") for k in settings.keys]
    sources += [(k, "store") for k in stored if k.name not in {s.name for s in settings.keys}]
    for k, source in sources:
        limits = (k.rpm, k.concurrent, k.tokens_per_day)
        rows.append(
            (
                k.name,
                *("-" if v is None else str(v) for v in limits),
                ",".join(k.models) if k.models else "all",
                "yes" if k.admin else "-",
                k.created or "-",
                source,
            )
        )
    _table(rows)


@keys_app.command()
def revoke(
    name: Annotated[str, typer.Argument(help="The key's name")], config: ConfigOption = None
) -> None:
    """Delete a key; gateways refuse it within ``keys_refresh`` seconds."""
    settings = _settings(config)
    if any(k.name == name for k in settings.keys):
        raise _fail(f"key {name!r} is in the settings file: remove its [[keys]] table there")
    if not _run(settings, lambda store: store.remove(name)):
        raise _fail(f"no key named {name!r}")
    left = _run(settings, lambda store: store.read())
    typer.echo(f"key {name!r} revoked", err=True)
    if not left and not settings.keys and not settings.keys_always_required:
        typer.echo(
            "cortex: no keys are left, so Córtex serves without keys again "
            "(set require_keys = true to refuse every request instead)",
            err=True,
        )


def usage(
    url: Annotated[str, typer.Option(envvar="CORTEX_URL", help="Córtex to ask")] = (
        "http://127.0.0.1:4000"
    ),
    key: KeyOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the raw JSON")] = False,
) -> None:
    """Requests, tokens and errors per API key and model, from a running Córtex."""
    request = urllib.request.Request(url.rstrip("/") + "/cortex/usage")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise _fail(f"HTTP {exc.code}: {_error_text(exc.read())}") from None
    except (urllib.error.URLError, OSError):
        raise _fail(f"cannot connect to Córtex at {url}; is `cortex serve` running?") from None
    if json_output:
        typer.echo(json.dumps(body, indent=2))
        return
    fields = ("key", "model", "requests", "prompt_tokens", "completion_tokens", "errors")
    rows: list[tuple[str, ...]] = [("KEY", "MODEL", "REQUESTS", "PROMPT", "COMPLETION", "ERRORS")]
    rows += [tuple(str(row[f]) for f in fields) for row in body["usage"]]
    _table(rows)
    today = body.get("tokens_today") or {}
    if today:
        typer.echo("tokens today: " + ", ".join(f"{k} {v}" for k, v in sorted(today.items())))


def _error_text(body: bytes) -> str:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:200]
    return str(error.get("message") if isinstance(error, dict) else error)


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
