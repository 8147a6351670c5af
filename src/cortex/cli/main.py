"""The ``cortex`` command: thin argument parsing over the library."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from ..backends.local import LocalBackend
from ..listening import listen_socket, reserve, serving_mode
from ..observe import logs
from ..server import resolve_upstream
from ..server import serve as serve_until_stopped
from ..sources import ConfigError, load_settings
from . import chat as terminal_chat
from .keys import KeyOption, keys_app, usage

cli = typer.Typer(no_args_is_help=True, add_completion=False)
DEFAULT_URL = "http://127.0.0.1:4000"


@cli.callback()
def _root() -> None:
    """Córtex: one streaming endpoint in front of your local model servers."""


@cli.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: 127.0.0.1]")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: 4000]")] = None,
    upstream: Annotated[
        list[str] | None,
        typer.Option(
            help="Model server URL; repeat for several backends "
            "[default: $CORTEX_UPSTREAM, $OLLAMA_HOST, :11434]"
        ),
    ] = None,
    default_model: Annotated[
        str | None, typer.Option(help="Model for requests that name none")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML settings file [default: $CORTEX_CONFIG]")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning or error")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Processes sharing the port [default: 1]")
    ] = None,
) -> None:
    """Run the gateway."""
    flags: dict[str, object] = {
        "host": host,
        "port": port,
        "upstream": upstream[0] if upstream and len(upstream) == 1 else None,
        "backends": [{"url": url} for url in upstream] if upstream and len(upstream) > 1 else None,
        "default_model": default_model,
        "log_level": log_level,
        "workers": workers,
    }
    try:
        settings = load_settings(flags, os.environ, config)
    except ConfigError as exc:
        typer.echo(f"cortex: {exc}", err=True)
        raise typer.Exit(2) from None
    logs.configure(settings.log_level)
    settings = resolve_upstream(settings)
    try:
        per_worker = serving_mode(settings.workers) == "a socket per worker"
        sock = reserve(settings) if per_worker else listen_socket(settings)
    except OSError as exc:
        typer.echo(
            f"cortex: cannot listen on {settings.host}:{settings.port}: {exc.strerror}", err=True
        )
        raise typer.Exit(1) from None
    if not serve_until_stopped(settings, sock):
        raise typer.Exit(1)


@cli.command()
def chat(
    prompt: Annotated[
        str | None, typer.Argument(help="Ask once; without it, a conversation")
    ] = None,
    url: Annotated[str, typer.Option(envvar="CORTEX_URL", help="Córtex to talk to")] = DEFAULT_URL,
    local: Annotated[bool, typer.Option(help="Use the embedded model here, no server")] = False,
    model: Annotated[str | None, typer.Option(help="Model name [default: the server's]")] = None,
    system: Annotated[str | None, typer.Option(help="A system message")] = None,
    json_lines: Annotated[bool, typer.Option("--json", help="Print the raw chunks")] = False,
    key: KeyOption = None,
) -> None:
    """Chat in the terminal; answers stream as they are generated. Ctrl-C stops an answer."""
    backend = LocalBackend() if local else None
    if backend is not None:
        lines = terminal_chat.local_lines(backend)
    else:
        lines = terminal_chat.remote_lines(url, key)
    session = terminal_chat.Session(lines, model, system, json_lines)
    talk = session.interactive() if prompt is None else session.ask(prompt)
    ok = asyncio.run(talk if backend is None else terminal_chat.with_local(backend, talk))
    if ok is False:
        raise typer.Exit(1)


@cli.command()
def models(
    url: Annotated[str, typer.Option(envvar="CORTEX_URL", help="Córtex to ask")] = DEFAULT_URL,
    key: KeyOption = None,
) -> None:
    """List the models Córtex can serve."""
    try:
        entries = asyncio.run(terminal_chat.list_models(url, key))
    except terminal_chat.ChatFailed as exc:
        typer.echo(f"cortex: {exc}", err=True)
        raise typer.Exit(1) from None
    for entry in entries:
        details = entry.get("details") or {}
        sizes = (details.get("parameter_size"), details.get("quantization_level"))
        typer.echo("\t".join([str(entry.get("name")), *(v for v in sizes if v)]))


cli.add_typer(keys_app, name="keys")
cli.command()(usage)


def main() -> None:
    cli()
