"""A routing simulator: real Córtex in front of simulated Ollama servers, under each routing rule.

    .venv/bin/python bench/routing_sim.py [--quick] [--plot PATH] [--rules R,..] [--set K=V]

Each case starts fresh simulated Ollama servers (bench/sim_upstream.py: model
loads and evictions under a memory budget, a prompt cache per loaded model,
time to first token growing with the uncached part of the prompt) in this
process, one or two ``cortex serve`` subprocesses in front of them with
``routing`` set to the rule, and aiohttp clients that stream ``/api/chat``
conversations through Córtex. Workloads (seeded, the same for every rule):

- ``shared-prefix``: multi-turn chats sharing a few long system prompts, half with
  a long retrieved document, on three backends with one model each in memory;
- ``three-models``: chats for three models (popularity 3:2:1) on three backends
  with room for two models each, each starting with a different one loaded;
- ``shared-prefix x2``: the first workload through two Córtex instances, the
  clients alternating requests between them (client-side round robin);
- ``shared-prefix x2 redis``: the same under ``state`` only, the two instances
  sharing where they sent each prompt through a redis-server started for it.

Measured at the clients: time to first token (request sent to first content
token), p50 and p99, and whether a conversation's turn went to the backend of its
previous turn (``X-Cortex-Backend``); at the servers: loads, evictions, and the
share of prompt tokens found in the prompt cache. Prints a table and the
targets' ratios, writes JSON to bench/results/ and an ECDF plot of TTFT to
docs/routing-ttft.png (``--quick``: beside the JSON).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import shutil
import string
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from harness import (
    HOST,
    ROOT,
    Cortex,
    Processes,
    choose_pinning,
    cortex_source,
    free_port,
    percentile,
    processes,
    start_gateway,
)
from report import cancel_on_sigterm, facts, parser, quick_or_full, run_benchmark, write_results
from sim_upstream import GB, Model, ServerSpec, SimServer, Timing

RULES = ("round-robin", "least-outstanding", "affinity", "state")
PLOT = ROOT / "docs" / "routing-ttft.png"
LLAMA = Model("llama3.1:8b", int(4.9 * GB), "llama", "8.0B")
QWEN = Model("qwen2.5:7b", int(4.7 * GB), "qwen2", "7.6B")
GEMMA = Model("gemma2:9b", int(5.4 * GB), "gemma2", "9.2B")
THREE = (LLAMA, QWEN, GEMMA)  # any two fit in 12 GB, not all three
SHARED, MODELS, TWICE = "shared-prefix", "three-models", "shared-prefix x2"
TWICE_REDIS = "shared-prefix x2 redis"
REDIS = "redis-server"


@dataclass(frozen=True)
class Plan:
    chats: int = 48  # shared-prefix conversations
    turns: int = 4
    chat_clients: int = 12
    system_prompts: int = 3
    system_chars: int = 6000
    documents: int = 6
    document_chars: int = 6000
    document_share: float = 0.5
    question_chars: tuple[int, int] = (100, 400)
    model_chats: int = 36  # three-models conversations
    model_turns: int = 2
    model_clients: int = 9
    model_system_chars: int = 1000
    model_weights: tuple[int, int, int] = (3, 2, 1)
    think_s: tuple[float, float] = (0.05, 0.4)  # between a conversation's turns
    backends: int = 3
    memory_gb: float = 12.0
    health_interval: float = 0.5
    seed: int = 20251202
    settings: tuple[str, ...] = ()  # TOML lines added to every Córtex's config (--set)


QUICK = Plan(
    chats=6, turns=3, chat_clients=6, model_chats=6, model_clients=6, think_s=(0.05, 0.2),
    health_interval=0.25,
)  # fmt: skip


@dataclass(frozen=True)
class Chat:
    id: int
    model: str
    system: str
    questions: tuple[str, ...]
    think_s: tuple[float, ...]


@dataclass(frozen=True)
class Workload:
    name: str
    servers: tuple[ServerSpec, ...]
    chats: tuple[Chat, ...]
    clients: int
    instances: int = 1
    redis: bool = False  # the instances share a redis-server
    rules: tuple[str, ...] = RULES


@dataclass
class Record:
    chat: int
    turn: int
    instance: int
    backend: str
    ttft_s: float | None
    total_s: float
    ok: bool
    error: str = ""
    server_ttft_s: float | None = None  # the server's own: its total minus eval duration

    @property
    def added_s(self) -> float | None:
        """What the way to the server and back added to TTFT: Córtex, sockets, event loops."""
        if self.ttft_s is None or self.server_ttft_s is None:
            return None
        return self.ttft_s - self.server_ttft_s


@dataclass
class Case:
    workload: str
    rule: str
    records: list[Record]
    servers: dict[str, dict[str, Any]]
    wall_s: float
    cortex_log: list[str] = field(default_factory=list)
    cortex_backends: list[Any] = field(default_factory=list)

    def ttfts(self) -> list[float]:
        return [r.ttft_s for r in self.records if r.ok and r.ttft_s is not None]

    def added(self) -> list[float]:
        return [r.added_s for r in self.records if r.ok and r.added_s is not None]

    def total(self, key: str) -> int:
        return sum(int(s[key]) for s in self.servers.values())

    def cached_share(self) -> float:
        prompt = self.total("prompt_tokens")
        return self.total("cached_tokens") / prompt if prompt else 0.0

    def same_backend_share(self) -> float:
        by_turn = {(r.chat, r.turn): r for r in self.records if r.ok}
        follow = [r for r in by_turn.values() if (r.chat, r.turn - 1) in by_turn]
        same = [r for r in follow if by_turn[(r.chat, r.turn - 1)].backend == r.backend]
        return len(same) / len(follow) if follow else 0.0

    def failed(self) -> list[Record]:
        return [r for r in self.records if not r.ok]

    def figures(self) -> dict[str, Any]:
        ttft = self.ttfts()
        return {
            "requests": len(self.records),
            "failed": len(self.failed()),
            "ttft_mean_ms": sum(ttft) / len(ttft) * 1e3 if ttft else None,
            "ttft_p50_ms": percentile(ttft, 50) * 1e3 if ttft else None,
            "ttft_p99_ms": percentile(ttft, 99) * 1e3 if ttft else None,
            "added_p50_ms": percentile(self.added(), 50) * 1e3 if self.added() else None,
            "added_p99_ms": percentile(self.added(), 99) * 1e3 if self.added() else None,
            "loads": self.total("loads"),
            "evictions": self.total("evictions"),
            "cached_share": self.cached_share(),
            "same_backend_share": self.same_backend_share(),
            "wall_s": self.wall_s,
        }


# ---- workloads ------------------------------------------------------------------------------


def text(rng: random.Random, chars: int, opening: str = "") -> str:
    words = [opening] if opening else []
    length = len(opening)
    while length < chars:
        word = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9)))
        words.append(word)
        length += len(word) + 1
    return " ".join(words)


def questions(rng: random.Random, plan: Plan, turns: int) -> tuple[str, ...]:
    return tuple(text(rng, rng.randint(*plan.question_chars), "Question:") for _ in range(turns))


def thinking(rng: random.Random, plan: Plan, turns: int) -> tuple[float, ...]:
    return tuple(rng.uniform(*plan.think_s) for _ in range(turns))


def shared_prefix_chats(plan: Plan) -> tuple[Chat, ...]:
    rng = random.Random(plan.seed)
    opening = "You are assistant {}."
    systems = [text(rng, plan.system_chars, opening.format(i)) for i in range(plan.system_prompts)]
    documents = [text(rng, plan.document_chars, f"Document {i}:") for i in range(plan.documents)]
    chats = []
    for number in range(plan.chats):
        asked = list(questions(rng, plan, plan.turns))
        if rng.random() < plan.document_share:
            asked[0] = f"{rng.choice(documents)}\n\n{asked[0]}"
        think = thinking(rng, plan, plan.turns)
        chats.append(Chat(number, LLAMA.name, rng.choice(systems), tuple(asked), think))
    return tuple(chats)


def three_model_chats(plan: Plan) -> tuple[Chat, ...]:
    rng = random.Random(plan.seed + 1)
    systems = {m.name: text(rng, plan.model_system_chars, f"You are {m.name}.") for m in THREE}
    chats = []
    for number in range(plan.model_chats):
        model = rng.choices(THREE, weights=plan.model_weights)[0]
        asked = questions(rng, plan, plan.model_turns)
        think = thinking(rng, plan, plan.model_turns)
        chats.append(Chat(number, model.name, systems[model.name], asked, think))
    return tuple(chats)


def servers(plan: Plan, models: Sequence[Model]) -> tuple[ServerSpec, ...]:
    """The backends, ``gpu-1``…, each able to load ``models``, the i-th with the i-th loaded."""
    memory = int(plan.memory_gb * GB)
    return tuple(
        ServerSpec(f"gpu-{i + 1}", tuple(models), memory, (models[i % len(models)].name,))
        for i in range(plan.backends)
    )


def workloads(plan: Plan) -> list[Workload]:
    shared = Workload(SHARED, servers(plan, [LLAMA]), shared_prefix_chats(plan), plan.chat_clients)
    three = Workload(MODELS, servers(plan, THREE), three_model_chats(plan), plan.model_clients)
    twice = replace(shared, name=TWICE, instances=2)
    return [shared, three, twice, replace(twice, name=TWICE_REDIS, redis=True, rules=("state",))]


# ---- Córtex ---------------------------------------------------------------------------------


def config(
    rule: str,
    ports: Sequence[int],
    names: Sequence[str],
    plan: Plan,
    dir: Path,
    redis_url: str | None = None,
) -> str:
    lines = [
        f'host = "{HOST}"',
        f"port = {free_port()}",
        f'routing = "{rule}"',
        f"health_interval = {plan.health_interval}",
        'log_level = "warning"',
        "access_log = false",
        "max_connections = 1000",
        f'keys_file = "{dir / "keys.json"}"',
        *plan.settings,
    ]
    if redis_url is not None:
        lines += [f'redis_url = "{redis_url}"', "require_keys = false"]
    for name, port in zip(names, ports, strict=True):
        lines += ["", "[[backends]]", f'name = "{name}"']
        lines += [f'url = "http://{HOST}:{port}"', 'kind = "ollama"']
    return "\n".join(lines) + "\n"


async def start_cortex(procs: Processes, toml: str, dir: Path) -> Cortex:
    path = dir / f"cortex-{free_port()}.toml"
    path.write_text(toml)
    port = int(toml.split("port = ", 1)[1].split("\n", 1)[0])
    argv = [sys.executable, "-m", "cortex", "serve", "--config", str(path)]
    return await start_gateway(procs, argv, port)


async def start_redis(procs: Processes) -> tuple[asyncio.subprocess.Process, str]:
    """A redis-server without persistence on a free port, on the servers' CPU."""
    if shutil.which(REDIS) is None:
        raise RuntimeError(f"{REDIS} is not installed (apt-get install redis-server)")
    port = free_port()
    argv = [REDIS, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    proc = await procs.spawn(argv, None, procs.log_file())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(b"PING\r\n")
            answer = await reader.readline()
            writer.close()
            if answer.startswith(b"+PONG"):
                return proc, f"redis://{HOST}:{port}/0"
        except OSError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{REDIS} did not answer on port {port}")


async def settle(session: aiohttp.ClientSession, port: int, models: set[str], wait: float) -> None:
    """Wait until Córtex lists every model, then for its next health check (``/api/ps``)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        async with session.get(f"http://{HOST}:{port}/api/tags") as resp:
            if resp.status == 200:
                listed = {m["name"] for m in (await resp.json())["models"]}
                if models <= listed:
                    break
        await asyncio.sleep(0.1)
    else:
        raise RuntimeError(f"Córtex on port {port} never listed {sorted(models)}")
    await asyncio.sleep(wait)


async def backends_status(session: aiohttp.ClientSession, port: int) -> Any:
    try:
        async with session.get(f"http://{HOST}:{port}/cortex/backends") as resp:
            return await resp.json() if resp.status == 200 else {"status": resp.status}
    except (aiohttp.ClientError, ValueError) as exc:
        return {"error": repr(exc)}


# ---- clients --------------------------------------------------------------------------------


async def ask(
    session: aiohttp.ClientSession, port: int, model: str, messages: list[dict[str, str]]
) -> tuple[Record, str]:
    """One streamed /api/chat; the record (chat and turn unset) and the answer's text."""
    body = orjson.dumps({"model": model, "messages": messages, "stream": True})
    started = time.perf_counter()
    first: float | None = None
    parts: list[str] = []
    url = f"http://{HOST}:{port}/api/chat"
    try:
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
            backend = r.headers.get("X-Cortex-Backend", "")
            if r.status != 200:
                error = f"HTTP {r.status}: {(await r.text())[:200]}"
                return failure(started, error, backend), ""
            done, error, server_ttft = False, "", None
            async for line in r.content:
                message = orjson.loads(line)
                content = (message.get("message") or {}).get("content") or ""
                if content and first is None:
                    first = time.perf_counter() - started
                parts.append(content)
                if message.get("done") is True:
                    done, server_ttft = True, server_first_token(message)
                error = error or str(message.get("error") or "")
    except (aiohttp.ClientError, orjson.JSONDecodeError, TimeoutError) as exc:
        return failure(started, repr(exc)), ""
    ok = done and not error
    error = error or ("" if done else "the stream ended without done")
    total = time.perf_counter() - started
    return Record(0, 0, 0, backend, first, total, ok, error, server_ttft), "".join(parts)


def server_first_token(done: dict[str, Any]) -> float | None:
    total, generating = done.get("total_duration"), done.get("eval_duration")
    if not isinstance(total, int) or not isinstance(generating, int):
        return None
    return (total - generating) / 1e9


def failure(started: float, error: str, backend: str = "") -> Record:
    return Record(0, 0, 0, backend, None, time.perf_counter() - started, False, error)


async def converse(
    session: aiohttp.ClientSession, chat: Chat, ports: Sequence[int], turns: itertools.count[int]
) -> list[Record]:
    messages = [{"role": "system", "content": chat.system}]
    records = []
    for turn, question in enumerate(chat.questions):
        messages.append({"role": "user", "content": question})
        instance = next(turns) % len(ports)
        record, answer = await ask(session, ports[instance], chat.model, messages)
        record.chat, record.turn, record.instance = chat.id, turn, instance
        records.append(record)
        if not record.ok:
            break
        messages.append({"role": "assistant", "content": answer})
        await asyncio.sleep(chat.think_s[turn])
    return records


async def drive(session: aiohttp.ClientSession, work: Workload, ports: list[int]) -> list[Record]:
    """``work.clients`` clients, each taking the next conversation when done with one."""
    queue = list(reversed(work.chats))
    turns = itertools.count()
    records: list[Record] = []

    async def client(index: int) -> None:
        await asyncio.sleep(index * 0.05)
        while queue:
            records.extend(await converse(session, queue.pop(), ports, turns))

    await asyncio.gather(*(client(i) for i in range(work.clients)))
    return records


# ---- a case: one workload under one rule ----------------------------------------------------


async def run_case(procs: Processes, plan: Plan, work: Workload, rule: str, dir: Path) -> Case:
    sims = [SimServer(spec) for spec in work.servers]
    ports = [await sim.start() for sim in sims]
    names = [spec.name for spec in work.servers]
    models = {m.name for spec in work.servers for m in spec.models}
    gateways = []
    redis, redis_url = await start_redis(procs) if work.redis else (None, None)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=300)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            toml = [config(rule, ports, names, plan, dir, redis_url) for _ in range(work.instances)]
            gateways = list(await asyncio.gather(*(start_cortex(procs, t, dir) for t in toml)))
            await asyncio.gather(
                *(settle(session, g.port, models, plan.health_interval) for g in gateways)
            )
            started = time.perf_counter()
            records = await drive(session, work, [g.port for g in gateways])
            wall = time.perf_counter() - started
            status = [await backends_status(session, g.port) for g in gateways]
    finally:
        for gateway in gateways:
            await procs.stop(gateway.proc)
        for sim in sims:
            await sim.stop()
        if redis is not None:
            await procs.stop(redis)
    log = [line for g in gateways for line in g.log_lines()]
    stats = {sim.spec.name: {**asdict(sim.stats), "in_memory": list(sim.runners)} for sim in sims}
    return Case(work.name, rule, records, stats, wall, log, status)


# ---- the report -----------------------------------------------------------------------------


def ms(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(cases: list[Case]) -> list[str]:
    head = "| workload | rule | requests | failed | TTFT p50 ms | TTFT p99 ms | TTFT mean ms "
    head += "| loads | evictions | prompt cached | same backend | added p99 ms |"
    lines = [head, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for case in cases:
        f = case.figures()
        lines.append(
            f"| {case.workload} | {case.rule} | {f['requests']} | {f['failed']} "
            f"| {ms(f['ttft_p50_ms'])} | {ms(f['ttft_p99_ms'])} | {ms(f['ttft_mean_ms'])} "
            f"| {f['loads']} "
            f"| {f['evictions']} | {f['cached_share']:.0%} | {f['same_backend_share']:.0%} "
            f"| {ms(f['added_p99_ms'], 1)} |"
        )
    return lines


def find(cases: list[Case], workload: str, rule: str) -> Case | None:
    return next((c for c in cases if c.workload == workload and c.rule == rule), None)


def targets(cases: list[Case]) -> list[dict[str, Any]]:
    """The issue's targets, each with its figure and whether this run met it."""
    out = []
    state, least = find(cases, SHARED, "state"), find(cases, SHARED, "least-outstanding")
    if state and least and state.ttfts() and least.ttfts():
        change = percentile(state.ttfts(), 50) / percentile(least.ttfts(), 50) - 1
        name = f"{SHARED} TTFT p50, state vs least-outstanding"
        out.append(target(name, change, change <= -0.5, f"{change:+.0%} (aim: -50% or lower)"))
    state, least = find(cases, MODELS, "state"), find(cases, MODELS, "least-outstanding")
    if state and least and least.total("loads"):
        fewer = 1 - state.total("loads") / least.total("loads")
        name = f"{MODELS} loads, state vs least-outstanding"
        out.append(target(name, fewer, fewer >= 0.8, f"{fewer:.0%} fewer (aim: 80% fewer)"))
    for workload, rule in ((TWICE, "affinity"), (TWICE, "state"), (TWICE_REDIS, "state")):
        one, two = find(cases, SHARED, rule), find(cases, workload, rule)
        if one and two:
            points = (two.same_backend_share() - one.same_backend_share()) * 100
            cached = (two.cached_share() - one.cached_share()) * 100
            shown = f"{points:+.0f} points (prompt cached {cached:+.0f} points; aim: -10 or more)"
            sharing = " sharing Redis" if workload == TWICE_REDIS else ""
            name = f"affinity hit rate, 2 instances{sharing} vs 1, {rule}"
            out.append(target(name, points, points >= -10, shown))
    return out


def target(name: str, value: float, met: bool, shown: str) -> dict[str, Any]:
    return {"target": name, "value": value, "met": met, "shown": shown}


def plot(cases: list[Case], path: Path, title: str) -> None:
    """One panel per workload: the ECDF of TTFT under each rule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    panel = {TWICE_REDIS: TWICE}  # the shared-Redis case is one more line on its panel
    names = list(dict.fromkeys(panel.get(c.workload, c.workload) for c in cases))
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for case in (c for c in cases if panel.get(c.workload, c.workload) == name):
            values = sorted(v * 1e3 for v in case.ttfts())
            shares = [(i + 1) / len(values) for i in range(len(values))]
            label = f"{case.rule}, Redis" if case.workload == TWICE_REDIS else case.rule
            ax.step(values, shares, where="post", label=label)
        ax.set_xscale("log")
        ax.set_xticks([20, 50, 100, 200, 500, 1000, 2000, 5000])
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(name)
        ax.set_xlabel("time to first token (ms, log scale)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right")
    axes[0][0].set_ylabel("share of requests")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_report(cases: list[Case], goals: list[dict[str, Any]], elapsed: float) -> None:
    print("\n".join(table(cases)))
    print()
    for goal in goals:
        print(f"{'met   ' if goal['met'] else 'MISSED'}  {goal['target']}: {goal['shown']}")
    for case in cases:
        where = f"{case.workload}/{case.rule}"
        for record in case.failed()[:3]:
            print(f"failed: {where} chat {record.chat} turn {record.turn}: {record.error}")
        if case.cortex_log:
            lines = len(case.cortex_log)
            print(f"Córtex logged {lines} line(s) in {where}: {case.cortex_log[0][:300]}")
    print(f"took {elapsed:.0f} s")


# ---- main -----------------------------------------------------------------------------------


async def main(
    quick: bool, plot_path: Path | None, rules: Sequence[str], settings: Sequence[str]
) -> int:
    cancel_on_sigterm()
    plan, mode = quick_or_full(quick, Plan(), QUICK)
    plan = replace(plan, settings=tuple(settings))
    pinning = choose_pinning()
    pinning.pin_load_generator()
    print(f"routing simulator, {mode} run; Córtex {cortex_source()}; {pinning.describe()}")
    started = time.monotonic()
    cases = []
    with tempfile.TemporaryDirectory(prefix="cortex-routing-") as tmp:
        async with processes(pinning) as procs:
            for work in workloads(plan):
                for rule in (r for r in rules if r in work.rules):
                    case = await run_case(procs, plan, work, rule, Path(tmp))
                    done = f"{len(case.records)} requests in {case.wall_s:.1f} s"
                    print(f"  {work.name:<22} {rule:<18} {done}", flush=True)
                    cases.append(case)
    elapsed = time.monotonic() - started
    goals = targets(cases)
    print_report(cases, goals, elapsed)
    payload = {
        **facts(mode, plan),
        "timing": asdict(Timing()),
        "elapsed_s": elapsed,
        "targets": goals,
        "table": table(cases),
        "cases": [{**asdict(c), "figures": c.figures()} for c in cases],
    }
    results = write_results("routing", payload)
    path = plot_path or (PLOT if not quick else results.with_suffix(".png"))
    plot(cases, path, f"Time to first token by routing rule ({mode} run)")
    print(f"results in {results.relative_to(ROOT)}; plot in {path}")
    return 1 if any(c.failed() for c in cases) else 0


if __name__ == "__main__":
    args = parser(__doc__, "a short run (< 1 min): fewer conversations")
    args.add_argument("--plot", type=Path, help=f"where the plot goes [default: {PLOT}]")
    args.add_argument("--rules", default=",".join(RULES), help="rules to run, comma-separated")
    args.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a TOML line for every Córtex's config, e.g. affinity_slack=4 (repeatable)",
    )
    opts = args.parse_args()
    settings = [line.replace("=", " = ", 1) for line in opts.set]
    run = main(opts.quick, opts.plot, opts.rules.split(","), settings)
    run_benchmark(run, "the servers and Córtex")
