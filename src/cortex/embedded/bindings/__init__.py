"""llama.cpp's Python bindings behind one small interface, and the choice of one for this machine.

    prebuilt.py   xllamacpp, a portable wheel from PyPI that installs in seconds (the default)
    compiled.py   llama-cpp-python, compiled once by scripts/llama-wheel (the fallback)

``CORTEX_LLAMA=compiled`` (or ``prebuilt``) forces one; otherwise the prebuilt
wheel runs where it can (its CPU code needs x86-64-v3: AVX2, FMA, F16C, BMI2,
and never AVX-512 or AMX), and the compiled binding everywhere else.
"""

from __future__ import annotations

import importlib.util
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Kind = Literal["prebuilt", "compiled"]
MODULES: dict[Kind, str] = {"prebuilt": "xllamacpp", "compiled": "llama_cpp"}
# What the prebuilt wheel's x86-64 code executes (counted in docs/performance.md).
PREBUILT_X86_FLAGS = frozenset({"avx", "avx2", "fma", "f16c", "bmi1", "bmi2"})
NOT_INSTALLED = "the embedded model is not installed: run ./scripts/install local"


class PromptTooLong(ValueError):
    """The prompt does not fit in the model's context: the request's fault, not the model's."""


class Generation(Protocol):
    """One answer's text pieces with their finish reasons (``"stop"``, ``"length"`` or None).

    ``prompt_tokens`` is complete once the pieces end, and so is ``completion_tokens``
    where the engine counts them (a piece may hold more than one token: text held back
    until a stop sequence is ruled out); ``close`` stops the generation at the next
    token. A prompt longer than the context raises ``PromptTooLong`` before any piece."""

    prompt_tokens: int
    completion_tokens: int | None  # None: one token a piece

    def __iter__(self) -> Iterator[tuple[str, str | None]]: ...

    def close(self) -> None: ...


class Binding(Protocol):
    kind: Kind
    system_info: str  # llama.cpp's CPU features, as it reports them

    def complete(self, prompt: str, params: dict[str, Any]) -> Generation: ...

    def chat(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Generation: ...


@dataclass(frozen=True, slots=True)
class LoadSettings:
    model_path: str
    context: int
    threads: int | None  # None: half the CPUs, as llama-cpp-python's default
    repeat_window: int = 64  # tokens the repeat penalty looks back over (llama.cpp's default)


def default_threads() -> int:
    return max((os.cpu_count() or 2) // 2, 1)


def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags on x86-64 Linux; None where they are not read."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return None


def installed() -> set[Kind]:
    return {kind for kind, module in MODULES.items() if importlib.util.find_spec(module)}


def choose(wanted: str | None, available: set[Kind], flags: frozenset[str] | None) -> Kind:
    """The binding to load: the one asked for, else the prebuilt where this CPU runs it."""
    if wanted:
        kind = "compiled" if wanted.strip().lower() in ("compile", "compiled") else wanted
        if kind not in MODULES:
            raise ValueError(f"CORTEX_LLAMA={wanted!r}: expected 'prebuilt' or 'compiled'")
        if kind not in available:
            raise ImportError(f"{NOT_INSTALLED} (CORTEX_LLAMA={wanted} asks for {MODULES[kind]})")
        return kind
    runs_prebuilt = flags is None or PREBUILT_X86_FLAGS.issubset(flags)
    if "prebuilt" in available and runs_prebuilt:
        return "prebuilt"
    if "compiled" in available:
        return "compiled"
    if "prebuilt" in available:
        missing = " ".join(sorted(PREBUILT_X86_FLAGS - (flags or frozenset())))
        raise ImportError(
            f"this CPU lacks {missing}, which the prebuilt llama.cpp needs: "
            "run CORTEX_LLAMA=compile ./scripts/install local"
        )
    raise ImportError(NOT_INSTALLED)


def load(settings: LoadSettings, wanted: str | None = None) -> Binding:
    """Load the model with the binding chosen for this machine (``CORTEX_LLAMA`` by default)."""
    if wanted is None:
        wanted = os.environ.get("CORTEX_LLAMA")
    kind = choose(wanted, installed(), cpu_flags())
    if kind == "prebuilt":
        from .prebuilt import Prebuilt

        return Prebuilt(settings)
    from .compiled import Compiled

    return Compiled(settings)
