"""Where settings come from: defaults < TOML file < ``CORTEX_*`` environment < flags.

``OLLAMA_HOST`` (Ollama's own convention) names the upstream only when nothing
else does, so a Córtex config file or flag always wins over it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .config import Settings


class ConfigError(ValueError):
    """Settings that cannot be used; the message says which and why."""


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge every source, highest precedence last; raise ConfigError on bad values."""
    environ = environ if environ is not None else {}
    given_flags = {k: v for k, v in (flags or {}).items() if v is not None}
    path = config_file or (Path(environ["CORTEX_CONFIG"]) if environ.get("CORTEX_CONFIG") else None)

    merged: dict[str, Any] = {}
    if path is not None:
        merged.update(_keys_from_environ(_read_toml(path), environ))
    merged.update(_from_environ(environ))
    merged.update(given_flags)
    if "upstream" not in merged and environ.get("OLLAMA_HOST"):
        merged["upstream"] = environ["OLLAMA_HOST"]
    if "upstream" not in merged and "upstream_kind" not in merged:
        merged["upstream_kind"] = "auto"  # Ollama on its default address if it answers, else local
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _keys_from_environ(config: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """A ``[[backends]]`` table's ``api_key_env`` names the variable holding its key, so a
    config file (a Kubernetes ConfigMap) need not carry the secret itself."""
    backends = config.get("backends")
    if not isinstance(backends, list):
        return config
    resolved = []
    for backend in backends:
        if isinstance(backend, dict) and "api_key_env" in backend:
            backend = dict(backend)
            variable = backend.pop("api_key_env")
            if not isinstance(variable, str) or not environ.get(variable):
                raise ConfigError(f"backends: api_key_env names {variable!r}, which is not set")
            if "api_key" in backend:
                raise ConfigError("backends: give api_key or api_key_env, not both")
            backend["api_key"] = environ[variable]
        resolved.append(backend)
    return {**config, "backends": resolved}


def _from_environ(environ: Mapping[str, str]) -> dict[str, str]:
    values = {}
    for name in Settings.model_fields:
        key = f"CORTEX_{name.upper()}"
        if environ.get(key):
            values[name] = environ[key]
    return values
