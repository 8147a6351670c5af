"""The ``cortex`` command: thin argument parsing over the library."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from .config import ConfigError, load_settings
from .server import build_server, listen_socket, resolve_upstream

cli = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Córtex, a streaming LLM gateway."
)


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
        str | None,
        typer.Option(help="Model server URL [default: $CORTEX_UPSTREAM, $OLLAMA_HOST, :11434]"),
    ] = None,
    default_model: Annotated[
        str | None, typer.Option(help="Model for requests that name none")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML settings file [default: $CORTEX_CONFIG]")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning or error")] = None,
) -> None:
    """Run the gateway."""
    flags = {
        "host": host,
        "port": port,
        "upstream": upstream,
        "default_model": default_model,
        "log_level": log_level,
    }
    try:
        settings = load_settings(flags, os.environ, config)
    except ConfigError as exc:
        typer.echo(f"cortex: {exc}", err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = resolve_upstream(settings)
    try:
        sock = listen_socket(settings)
    except OSError as exc:
        typer.echo(
            f"cortex: cannot listen on {settings.host}:{settings.port}: {exc.strerror}", err=True
        )
        raise typer.Exit(1) from None
    server = build_server(settings)
    server.run(sockets=[sock])
    if not server.started:
        raise typer.Exit(1)


def main() -> None:
    cli()
