"""Model aliases: names that clients hard-code (``claude-sonnet-4-5``, ``gpt-4o``), served by
local models.

``aliases = {"claude-sonnet-4-5" = "qwen3:8b", "claude-haiku-*" = "qwen3:1.7b"}`` in the
settings. A name is looked up as it was asked (by ``modelname.canonical``), then against the
patterns (``*`` and ``?``, as shell globs) in the order written. An alias is listed in
``/api/tags`` and ``/v1/models`` beside its model (patterns are not: they name no one model).
A key allowed an alias may use it, and a key allowed a model may use any alias of it. A name
that is no alias and no model is still a 404.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from fnmatch import fnmatchcase

from .catalog import ModelEntry, find_model
from .modelname import canonical

GLOB = frozenset("*?[")


class Aliases:
    def __init__(self, table: Mapping[str, str]) -> None:
        self._exact = {canonical(k): v for k, v in table.items() if not GLOB & set(k)}
        self._named = {k: v for k, v in table.items() if not GLOB & set(k)}
        self._patterns = [(k, v) for k, v in table.items() if GLOB & set(k)]

    def __bool__(self) -> bool:
        return bool(self._exact or self._patterns)

    def resolve(self, name: str) -> str | None:
        """The model ``name`` stands for, if it is an alias."""
        found = self._exact.get(canonical(name))
        if found is not None:
            return found
        return next(
            (model for pattern, model in self._patterns if fnmatchcase(name, pattern)), None
        )

    def listed(self, entries: list[ModelEntry]) -> list[ModelEntry]:
        """The catalogue with each alias beside its model, when some backend serves it."""
        added = []
        for alias, model in self._named.items():
            entry = find_model(entries, model)
            if entry is not None and find_model(entries, alias) is None:
                added.append(replace(entry, name=alias, ollama=_renamed(entry, alias)))
        return entries + added


def _renamed(entry: ModelEntry, alias: str) -> dict[str, object] | None:
    if entry.ollama is None:
        return None
    return {**entry.ollama, "name": alias, "model": alias}
