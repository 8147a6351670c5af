"""Soak: thousands of streams through Córtex with random upstream faults and clients leaving.

    .venv/bin/python bench/soak.py                      # 10 minutes, 32 clients at once
    .venv/bin/python bench/soak.py --duration 60 --concurrency 16

Córtex runs as subprocesses (``python -m cortex serve``), one in front of the fake model
server as Ollama and one as an OpenAI-compatible server; the fake (``tests/fakes``) runs
in this process and picks each request's behaviour by the model it names. Every client
asks in one of five framings (Ollama NDJSON, Ollama SSE, OpenAI SSE, and the non-streaming
form of each dialect) for an answer whose upstream misbehaves at random (cut lines and
characters, stalls, resets, early closes, garbage, error lines, error statuses) or not at
all, and some clients hang up at a random moment.

Each answer read to its end is judged by ``tests/invariant.py``: the whole answer, or an
explicit error. At the end, once everything has settled, it checks what Córtex holds:
its open file descriptors and memory against the baseline taken after a warm-up at full
load, and the upstream requests still open at the fake (a stalled one that nobody
closed). It exits 1 on any silent truncation (or other broken answer) or leak; ``--json``
writes every figure, with examples of each failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes import FakeOllama, Script  # noqa: E402
from tests.fakes.transport import Conn, Request  # noqa: E402
from tests.invariant import (  # noqa: E402
    FRAMINGS,
    ClientFraming,
    Reply,
    Violation,
    judge,
    parse_response,
    request_bytes,
)

TOKENS = ("Había", " una", " vez", " un", " 🦄", " en", " Ñuñoa")
IDLE_TIMEOUT = 1.0
FIRST_BYTE_TIMEOUT = 2.0
CLIENT_TIMEOUT = 30.0  # an answer not over by then is a hang (Córtex's own limits are ~2 s)
FD_SLACK_PER_CLIENT = 1  # a kept-alive upstream connection per concurrent stream, at most
RSS_SLACK = 48 * 1024 * 1024


@dataclass(frozen=True)
class Scenario:
    """What the upstream does, and what a client that stays must get."""

    name: str
    script: Script
    expect: str  # "complete", "error" or "either"
    weight: float = 1.0
    text: str | None = "".join(TOKENS)


def scenarios() -> list[Scenario]:
    long_tokens = tuple(f" palabra{i} ñ🦄" for i in range(300))
    base: dict[str, Any] = {"tokens": TOKENS}
    cases = [
        Scenario("none", Script(**base), "complete", 4),
        Scenario(
            "long_paced",
            Script(tokens=long_tokens, delay=0.002),
            "complete",
            2,
            "".join(long_tokens),
        ),
        Scenario("long_burst", Script(tokens=long_tokens), "complete", 2, "".join(long_tokens)),
        Scenario("split_lines", Script(**base, fault="split_lines", split_pause=0.001), "complete"),
        Scenario("split_utf8", Script(**base, fault="split_utf8", split_pause=0.001), "complete"),
        Scenario("no_trailing_newline", Script(**base, fault="no_trailing_newline"), "complete"),
        Scenario("header_delay", Script(**base, header_delay=0.2), "complete"),
        Scenario("stall_short", Script(**base, fault="stall_mid", stall=0.2), "complete"),
        Scenario("stall_before_first", Script(**base, fault="stall_before_first"), "error", 0.5),
        Scenario("stall_mid", Script(**base, fault="stall_mid", fault_after=3), "error", 0.5),
        Scenario("reset_mid", Script(**base, fault="reset_mid", fault_after=2), "error"),
        Scenario("reset_first", Script(**base, fault="reset_mid", fault_after=0), "error"),
        Scenario("close_mid", Script(**base, fault="close_mid", fault_after=2), "error"),
        Scenario("garbage", Script(**base, fault="garbage_line", fault_after=2), "either"),
        Scenario(
            "garbage_data",
            Script(**base, fault="garbage_line", fault_after=2, garbage=b"data: <html>\n\n"),
            "error",
        ),
        Scenario("error_line", Script(**base, error_line_after=2), "error"),
        Scenario("status_500", Script(**base, fault="status", status=500), "error"),
        Scenario(
            "status_502_html",
            Script(
                **base,
                fault="status",
                status=502,
                error_body=b"<html>bad gateway</html>",
                error_content_type="text/html",
            ),
            "error",
        ),
        Scenario("header_delay_long", Script(**base, header_delay=3600.0), "error", 0.5),
    ]
    return cases


class SoakUpstream(FakeOllama):
    """The fake, counting the requests it is still answering."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0

    async def _serve(self, conn: Conn, req: Request) -> bool:
        self.in_flight += 1
        try:
            return await super()._serve(conn, req)
        finally:
            self.in_flight -= 1


# ---- Córtex as a subprocess ------------------------------------------------------------------


@dataclass
class Cortex:
    kind: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def rss(self) -> int:
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def alive(self) -> bool:
        return self.process.poll() is None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_cortex(kind: str, upstream: str, logs: Path) -> Cortex:
    port = free_port()
    env = {
        **os.environ,
        "CORTEX_IDLE_TIMEOUT": str(IDLE_TIMEOUT),
        "CORTEX_FIRST_BYTE_TIMEOUT": str(FIRST_BYTE_TIMEOUT),
        "CORTEX_CONNECT_TIMEOUT": "2",
        "CORTEX_CIRCUIT_FAILURES": "1000000000",  # faults are the point: keep the circuit closed
        "CORTEX_QUEUE_TIMEOUT": "5",
    }
    log = logs / f"cortex-{kind}.log"
    prefix = "openai+" if kind == "openai" else ""
    command = [sys.executable, "-m", "cortex", "serve", "--port", str(port)]
    command += ["--upstream", prefix + upstream, "--log-level", "warning"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"Córtex ({kind}) exited at start; see {log}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return Cortex(kind, port, process, log)
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"Córtex ({kind}) did not listen within 30 s; see {log}")


# ---- clients ---------------------------------------------------------------------------------


@dataclass
class Tally:
    requests: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    violations: list[dict[str, Any]] = field(default_factory=list)
    unexpected: list[dict[str, Any]] = field(default_factory=list)
    by_scenario: Counter[str] = field(default_factory=Counter)

    def violation_count(self) -> int:
        return sum(v for k, v in self.outcomes.items() if k.startswith("violation"))

    def note(self, bucket: list[dict[str, Any]], entry: dict[str, Any]) -> None:
        if len(bucket) < 20:
            bucket.append(entry)


async def one_request(
    cortex: Cortex,
    framing: ClientFraming,
    scenario: Scenario,
    leave_after: int | None,
    secrets: tuple[str, ...],
    tally: Tally,
) -> None:
    """One request on a fresh connection: read to the end and judge it, or leave early."""
    tally.requests += 1
    tally.by_scenario[scenario.name] += 1
    where = {"cortex": cortex.kind, "framing": framing.name, "scenario": scenario.name}
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", cortex.port)
    except OSError as exc:
        tally.outcomes["connect-failed"] += 1
        tally.note(tally.violations, {**where, "problem": f"cannot connect: {exc}"})
        return
    data = bytearray()
    try:
        writer.write(request_bytes(framing, framing.payload(f"soak-{scenario.name}")))
        if leave_after == 0:  # hang up before any answer, while Córtex waits for the upstream
            await asyncio.sleep(random.random() * 0.05)
            tally.outcomes["client-left"] += 1
            return
        async with asyncio.timeout(CLIENT_TIMEOUT):
            while chunk := await reader.read(65536):
                data += chunk
                if leave_after is not None and len(data) >= leave_after:
                    tally.outcomes["client-left"] += 1
                    return
    except TimeoutError:
        tally.outcomes["violation: hang"] += 1
        tally.note(tally.violations, {**where, "problem": f"no end in {CLIENT_TIMEOUT:g} s"})
        return
    except ConnectionError as exc:
        tally.outcomes["violation: connection broken"] += 1
        tally.note(tally.violations, {**where, "problem": f"{exc!r} after {len(data)} bytes"})
        return
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    judge_reply(parse_or_none(bytes(data)), framing, scenario, secrets, where, tally)


def parse_or_none(data: bytes) -> Reply | None:
    try:
        return parse_response(data)
    except (Violation, ValueError, IndexError):
        return None


def judge_reply(
    reply: Reply | None,
    framing: ClientFraming,
    scenario: Scenario,
    secrets: tuple[str, ...],
    where: dict[str, Any],
    tally: Tally,
) -> None:
    if reply is None:
        tally.outcomes["violation: no response"] += 1
        tally.note(
            tally.violations, {**where, "problem": "the connection closed without a response"}
        )
        return
    expected = scenario.text if scenario.expect != "error" else None
    try:
        verdict = judge(framing, reply, expected, secrets=secrets)
    except Violation as exc:
        kind = (
            "silent truncation" if "truncation" in str(exc) or "cut short" in str(exc) else "broken"
        )
        tally.outcomes[f"violation: {kind}"] += 1
        tally.note(
            tally.violations,
            {
                **where,
                "problem": str(exc)[:500],
                "raw": reply.raw[-600:].decode("utf-8", "replace"),
            },
        )
        return
    if verdict.outcome == "complete":
        tally.outcomes["complete"] += 1
    else:
        tally.outcomes["error in-band" if verdict.in_band else f"error {verdict.status}"] += 1
    if scenario.expect != "either" and verdict.outcome != scenario.expect:
        tally.outcomes[f"unexpected {verdict.outcome}"] += 1
        tally.note(
            tally.unexpected,
            {**where, "got": verdict.outcome, "status": verdict.status, "error": verdict.error},
        )


async def client(
    rng: random.Random,
    stop_at: float,
    cortexes: list[Cortex],
    cases: list[Scenario],
    disconnect_rate: float,
    secrets: tuple[str, ...],
    tally: Tally,
) -> None:
    weights = [c.weight for c in cases]
    while time.monotonic() < stop_at:
        cortex = rng.choice(cortexes)
        framing = rng.choice(FRAMINGS)
        scenario = rng.choices(cases, weights)[0]
        leave_after = None
        if rng.random() < disconnect_rate:
            leave_after = rng.choice([0, 1, rng.randint(100, 2000), rng.randint(2000, 20000)])
        await one_request(cortex, framing, scenario, leave_after, secrets, tally)


# ---- the run ---------------------------------------------------------------------------------


async def settle(
    fake: SoakUpstream, cortexes: list[Cortex], baseline: dict[str, int], slack: int, limit: float
) -> float:
    """Wait until no upstream request is open and Córtex's descriptors are near the baseline."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if fake.in_flight == 0 and all(c.fds() <= baseline[c.kind] + slack for c in cortexes):
            break
        await asyncio.sleep(0.25)
    return time.monotonic() - started


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    cases = scenarios()
    logs = Path(tempfile.mkdtemp(prefix="cortex-soak-"))
    with SoakUpstream() as fake:
        for case in cases:
            name = f"soak-{case.name}"
            fake.models.append(name)
            fake.scripts[name] = case.script
        cortexes = [start_cortex(kind, fake.url, logs) for kind in args.kinds]
        secrets = (f"127.0.0.1:{fake.port}", f":{fake.port}")
        tally = Tally()
        try:
            # warm-up at full load: imports, pools, allocator arenas; then the baseline
            warm = min(20.0, max(5.0, args.duration / 10))
            print(f"warm-up {warm:g} s at concurrency {args.concurrency} …", flush=True)
            stop = time.monotonic() + warm
            await asyncio.gather(
                *(
                    client(rng, stop, cortexes, cases, args.disconnect_rate, secrets, Tally())
                    for _ in range(args.concurrency)
                )
            )
            slack = FD_SLACK_PER_CLIENT * args.concurrency + 4
            await settle(fake, cortexes, {c.kind: 10**9 for c in cortexes}, 0, 15)
            baseline_fds = {c.kind: c.fds() for c in cortexes}
            baseline_rss = {c.kind: c.rss() for c in cortexes}
            mib = {k: round(v / 2**20, 1) for k, v in baseline_rss.items()}
            print(f"baseline: fds {baseline_fds}, RSS MiB {mib}", flush=True)

            started = time.monotonic()
            stop = started + args.duration
            peak_rss = dict(baseline_rss)

            async def sample() -> None:
                while time.monotonic() < stop:
                    await asyncio.sleep(min(10.0, args.duration / 20))
                    for c in cortexes:
                        if c.alive():
                            peak_rss[c.kind] = max(peak_rss[c.kind], c.rss())
                    elapsed = time.monotonic() - started
                    print(
                        f"  {elapsed:6.0f} s  {tally.requests} requests  "
                        f"{tally.violation_count()} violations  "
                        f"upstream open {fake.in_flight}",
                        flush=True,
                    )

            await asyncio.gather(
                sample(),
                *(
                    client(rng, stop, cortexes, cases, args.disconnect_rate, secrets, tally)
                    for _ in range(args.concurrency)
                ),
            )
            elapsed = time.monotonic() - started
            settled_in = await settle(fake, cortexes, baseline_fds, slack, 30)
            alive = {c.kind: c.alive() for c in cortexes}
            after_fds = {c.kind: c.fds() if c.alive() else -1 for c in cortexes}
            after_rss = {c.kind: c.rss() if c.alive() else -1 for c in cortexes}
        finally:
            for c in cortexes:
                if c.alive():
                    c.process.send_signal(signal.SIGTERM)
            for c in cortexes:
                try:
                    c.process.wait(10)
                except subprocess.TimeoutExpired:
                    c.process.kill()
        upstream_open = fake.in_flight

    tracebacks = {c.kind: c.log.read_text(errors="replace").count("Traceback") for c in cortexes}
    leaks = []
    for c in cortexes:
        if not alive[c.kind]:
            leaks.append(f"Córtex ({c.kind}) died")
            continue
        if after_fds[c.kind] > baseline_fds[c.kind] + slack:
            leaks.append(
                f"Córtex ({c.kind}) holds {after_fds[c.kind]} fds, baseline "
                f"{baseline_fds[c.kind]} (+{slack} allowed for pooled connections)"
            )
        if after_rss[c.kind] > baseline_rss[c.kind] + RSS_SLACK:
            leaks.append(
                f"Córtex ({c.kind}) RSS {after_rss[c.kind] / 2**20:.1f} MiB, baseline "
                f"{baseline_rss[c.kind] / 2**20:.1f} MiB (+{RSS_SLACK / 2**20:g} allowed)"
            )
    if upstream_open:
        leaks.append(f"{upstream_open} upstream requests still open after the clients left")
    violations = tally.violation_count()
    truncations = tally.outcomes.get("violation: silent truncation", 0)

    report = {
        "duration_s": round(elapsed, 1),
        "concurrency": args.concurrency,
        "kinds": args.kinds,
        "disconnect_rate": args.disconnect_rate,
        "seed": args.seed,
        "requests": tally.requests,
        "requests_per_s": round(tally.requests / elapsed, 1),
        "outcomes": dict(tally.outcomes.most_common()),
        "scenarios": dict(tally.by_scenario.most_common()),
        "silent_truncations": truncations,
        "violations": violations,
        "violation_examples": tally.violations,
        "unexpected_examples": tally.unexpected,
        "cortex": {
            c.kind: {
                "fds_baseline": baseline_fds[c.kind],
                "fds_after": after_fds[c.kind],
                "rss_mib_baseline": round(baseline_rss[c.kind] / 2**20, 1),
                "rss_mib_peak": round(peak_rss[c.kind] / 2**20, 1),
                "rss_mib_after": round(after_rss[c.kind] / 2**20, 1),
                "tracebacks_in_log": tracebacks[c.kind],
                "log": str(c.log),
            }
            for c in cortexes
        },
        "settled_in_s": round(settled_in, 1),
        "upstream_requests_open_after": upstream_open,
        "leaks": leaks,
    }
    return report


def print_report(r: dict[str, Any]) -> None:
    print()
    print(
        f"soak: {r['requests']} requests in {r['duration_s']} s ({r['requests_per_s']}/s), "
        f"concurrency {r['concurrency']}, Córtex in front of {', '.join(r['kinds'])}"
    )
    print("outcomes:")
    for name, count in r["outcomes"].items():
        print(f"  {count:8d}  {name}")
    others = r["violations"] - r["silent_truncations"]
    print(f"silent truncations: {r['silent_truncations']}   other violations: {others}")
    for example in r["violation_examples"][:5]:
        print(f"  e.g. {example}")
    for example in r["unexpected_examples"][:5]:
        print(f"  unexpected: {example}")
    for kind, c in r["cortex"].items():
        print(
            f"Córtex ({kind}): fds {c['fds_baseline']} → {c['fds_after']}, RSS MiB "
            f"{c['rss_mib_baseline']} → {c['rss_mib_after']} (peak {c['rss_mib_peak']}), "
            f"tracebacks in its log: {c['tracebacks_in_log']}"
        )
    print(f"upstream requests still open: {r['upstream_requests_open_after']}", end=" ")
    print(f"(settled in {r['settled_in_s']} s)")
    print("leaks: " + ("; ".join(r["leaks"]) if r["leaks"] else "none"))
    print("RESULT: " + ("FAIL" if r["violations"] or r["leaks"] else "PASS"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    parser.add_argument("--concurrency", type=int, default=32, help="clients at once (default 32)")
    parser.add_argument(
        "--kinds",
        type=lambda s: s.split(","),
        default=["ollama", "openai"],
        help="upstream dialects, comma-separated (default ollama,openai)",
    )
    parser.add_argument(
        "--disconnect-rate",
        type=float,
        default=0.1,
        help="share of clients that hang up early (default 0.1)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="random seed (default: a new one each run)"
    )
    parser.add_argument("--json", help="write the report as JSON to this file")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.randrange(2**32)
    report = asyncio.run(run(args))
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False))
        print(f"written to {args.json}")
    sys.exit(1 if report["violations"] or report["leaks"] else 0)


if __name__ == "__main__":
    main()
