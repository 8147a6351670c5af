"""What OpenTelemetry costs Córtex: CPU per request with tracing off and on, in one run.

    .venv/bin/python bench/otel.py [--quick]

Starts bench/fake_upstream.py, a small OTLP/HTTP sink (in this process: its CPU is not
Córtex's) and, in each round, measures the same load of short streams through two
``cortex serve`` in front of the fake: one with no ``OTEL_*`` variables (telemetry off)
and one exporting traces and metrics to the sink, sampling every request
(``OTEL_TRACES_SAMPLER=always_on``; spans batched every 5 s, the default, and metrics
every 10 s instead of 60 so that their exports fall inside the run). Rounds interleave the
two, so drift on the shared machine hits both alike; each round prints what other
processes used of the machine meanwhile. Short streams (a few tokens) make the
per-request cost, where telemetry's lives, the largest share of Córtex's CPU: the
ratio is the worst case. Both dialect paths Córtex relays most: Ollama byte for byte and
OpenAI → Ollama translated. Writes JSON to bench/results/otel-<timestamp>.json.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass
from typing import Any

from harness.cli import parser, quick_or_full, run_benchmark
from harness.loadgen import chat_request
from harness.loads import warmed_load
from harness.machine import HOST
from harness.processes import Gateway, Processes, free_port, processes
from harness.results import begin_run, write_results
from harness.rounds import RoundNoise, interleaved
from harness.servers import start_cortex, start_upstream
from harness.tables import Table


@dataclass(frozen=True)
class Plan:
    rounds: int = 7
    requests: int = 2000
    warmup: int = 200
    concurrency: int = 8
    tokens: int = 8
    long_tokens: int = 256  # a more typical answer, where the per-request cost is amortized
    long_requests: int = 300


QUICK = Plan(rounds=3, requests=600, warmup=100, long_requests=100)


class Sink(asyncio.Protocol):
    """Answers every request with an empty 200: the empty protobuf is a whole Export*Response."""

    received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            Sink.received += 1
            answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"
            self.transport.write(answer + b"Content-Length: 0\r\n\r\n")  # type: ignore[attr-defined]


async def relays(procs: Processes, upstream_port: int, sink_port: int) -> dict[str, Gateway]:
    traced = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{HOST}:{sink_port}",
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_METRIC_EXPORT_INTERVAL": "10000",  # the default 60 s would fall outside a run
        "OTEL_SERVICE_NAME": "cortex-bench",
    }
    off = {"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_SDK_DISABLED": "true"}
    return {
        "off": await start_cortex(procs, upstream_port, env=off),
        "on": await start_cortex(procs, upstream_port, env=traced),
    }


async def measure(plan: Plan, procs: Processes) -> dict[str, Any]:
    upstream, upstream_port = await start_upstream(procs)
    loop = asyncio.get_running_loop()
    sink_port = free_port()
    sink = await loop.create_server(Sink, HOST, sink_port)
    gateways = await relays(procs, upstream_port, sink_port)
    noise = RoundNoise(plan.rounds)
    cpu_us: dict[tuple[str, str], list[float]] = {}
    loads = [("ollama", plan.tokens, plan.requests), ("openai", plan.tokens, plan.requests)]
    loads.append(("ollama", plan.long_tokens, plan.long_requests))
    try:
        for round_ in range(plan.rounds):
            noise.start()
            for dialect, tokens, requests in interleaved(loads, round_):
                for name in interleaved(("off", "on"), round_):
                    gateway = gateways[name]
                    request = chat_request(HOST, gateway.port, tokens, 0, dialect)
                    load = await warmed_load(
                        gateway.port,
                        request,
                        plan.warmup,
                        requests,
                        plan.concurrency,
                        {"cortex": gateway.proc.pid},
                        f"{dialect} {name}",
                    )
                    per_request = load.used["cortex"]["cpu_s"] / requests * 1e6
                    cpu_us.setdefault((f"{dialect}-{tokens}", name), []).append(per_request)
            noise.end()
    finally:
        for gateway in gateways.values():
            await procs.stop(gateway.proc)
        await procs.stop(upstream)
        sink.close()
    return {"cpu_us": cpu_us, "noise": noise.per_round, "exports_received": Sink.received}


def table(cpu_us: dict[tuple[str, str], list[float]], plan: Plan) -> tuple[Table, dict[str, Any]]:
    header = ["path", "off µs/request", "on µs/request", "on/off (median of rounds)", "range"]
    out = Table(header)
    summary: dict[str, Any] = {}
    short, long = plan.tokens, plan.long_tokens
    for load, label in (
        (f"ollama-{short}", f"Ollama → Ollama, {short} tokens"),
        (f"openai-{short}", f"OpenAI → Ollama, {short} tokens"),
        (f"ollama-{long}", f"Ollama → Ollama, {long} tokens"),
    ):
        off, on = cpu_us[(load, "off")], cpu_us[(load, "on")]
        ratios = [b / a for a, b in zip(off, on, strict=True)]
        ratio = statistics.median(ratios)
        summary[load] = {"off_us": off, "on_us": on, "ratios": ratios, "median_ratio": ratio}
        out.rows.append(
            [
                label,
                f"{statistics.median(off):.0f}",
                f"{statistics.median(on):.0f}",
                f"×{ratio:.3f}",
                f"×{min(ratios):.3f} – ×{max(ratios):.3f}",
            ]
        )
    return out, summary


async def main(plan: Plan, mode: str) -> int:
    report, pinning = begin_run("Córtex with OpenTelemetry off and on", mode, plan)
    async with processes(pinning) as procs:
        measured = await measure(plan, procs)
    shown, summary = table(measured["cpu_us"], plan)
    report.tables.append(shown)
    report.data.update(
        summary=summary, noise=measured["noise"], exports=measured["exports_received"]
    )
    report.finish([])
    report.print_tables()
    print(
        f"CPU of the Córtex process per request (streams at concurrency {plan.concurrency}, "
        f"{plan.requests} short or {plan.long_requests} long a round, {plan.rounds} rounds); on = "
        f"traces and metrics exported, every request sampled ({measured['exports_received']} "
        "exports received)."
    )
    report.print_end(write_results("otel", report.data))
    return 0


if __name__ == "__main__":
    args = parser(__doc__, "three short rounds").parse_args()
    plan, mode = quick_or_full(args.quick, Plan(), QUICK)
    run_benchmark(main(plan, mode), "the fake upstream and both Córtex")
