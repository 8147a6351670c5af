"""What the portable llama.cpp build costs: tokens/s of two builds of the binding, side by side.

Each build lives in its own virtualenv (``scripts/llama-wheel`` with other
``CORTEX_LLAMA_CMAKE_ARGS`` and its own ``CORTEX_WHEELHOUSE``); this runs the
same prompts on the bundled model directly through each, in interleaved rounds,
one process per round and build, and prints the second build's ratio to the first.

    .venv/bin/python bench/build_flags.py /tmp/other/venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from embedded import bundled_model
from harness.machine import machine
from harness.results import write_results

# Runs inside each build's interpreter: load, warm, then time answers from distinct prompts.
CHILD = """
import json, sys, time
import llama_cpp
from llama_cpp import Llama
path, tokens, start, answers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
llm = Llama(model_path=path, n_ctx=2048, verbose=False)
def text(n): return ", ".join(str(i) for i in range(n, n + 60)) + ","
list(llm.create_completion(text(1), max_tokens=4, temperature=0, stream=True))
rates = []
for k in range(answers):
    stamps = []
    for chunk in llm.create_completion(text(start + 97 * k), max_tokens=tokens,
                                       temperature=0, stream=True):
        if chunk["choices"][0]["text"]:
            stamps.append(time.perf_counter())
    rates.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
print(json.dumps({"rates": rates, "system": llama_cpp.llama_print_system_info().decode()}))
"""


def run(python: str, model: str, tokens: int, start: int, answers: int) -> dict[str, object]:
    done = subprocess.run(
        [python, "-c", CHILD, model, str(tokens), str(start), str(answers)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        return {"rates": [], "died": done.returncode, "stderr": tail}
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("other", help="the Python of the virtualenv with the other build")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    model = str(bundled_model())
    builds = {"portable": sys.executable, "other": args.other}
    rates: dict[str, list[float]] = {name: [] for name in builds}
    systems: dict[str, object] = {}
    for number in range(args.rounds):
        for name, python in builds.items():
            result = run(python, model, args.tokens, 1000 + 1000 * number, 3)
            if "died" in result:
                print(f"{name} build died ({result['died']}): {result['stderr']}", file=sys.stderr)
            rates[name] += result["rates"]  # type: ignore[arg-type]
            systems[name] = result.get("system")
        print(f"round {number + 1}/{args.rounds} done", file=sys.stderr)
    table = {name: statistics.median(r) if r else None for name, r in rates.items()}
    for name, rate in table.items():
        shown = f"{rate:.1f}" if rate is not None else "died"
        print(f"{name:10} tokens/s p50 {shown:>8}   {systems.get(name)}")
    if table["portable"] and table["other"]:
        print(f"\nother / portable: tokens/s ×{table['other'] / table['portable']:.3f}")
    write_results("build-flags", {"machine": machine(), "rates": rates, "systems": systems})


if __name__ == "__main__":
    main()
