"""Long prompts: time to first token for request bodies of about 1k, 10k and 100k tokens
(about 4 bytes a token), one request at a time, per target."""

from __future__ import annotations

from harness.loadgen import chat_request, checked, run_load
from harness.machine import HOST

from suites.concurrency.plan import Plan
from suites.concurrency.targets import Target

BYTES_PER_TOKEN = 4


def prompt_of(tokens: int) -> str:
    """A prompt of about ``tokens`` tokens: that many four-byte words."""
    return "abc " * tokens


async def long_prompts(targets: list[Target], plan: Plan) -> dict[str, dict[int, list[float]]]:
    """Per target and prompt size, the times to first token (10-token answers)."""
    out: dict[str, dict[int, list[float]]] = {t.name: {} for t in targets}
    for size in plan.prompt_tokens:
        prompt = prompt_of(size)
        for target in targets:
            request = chat_request(HOST, target.port, 10, 0, target.client, prompt=prompt)
            checked((await run_load(HOST, target.port, request, 5, 1))[0], "warm-up")
            results, _ = await run_load(HOST, target.port, request, plan.prompt_requests, 1)
            out[target.name][size] = [r.ttfc for r in checked(results, target.name)]
    return out
