"""The report: the table per wave (streams, memory, CPU), the verdicts, and the JSON form."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from harness.memory import Memory, mib
from harness.stats import summary
from harness.tables import Table, print_table

from suites.streams.plan import KB, TARGET_PER_STREAM, Plan
from suites.streams.wave import Wave


def kb(n: float) -> str:
    return f"{n / KB:.1f} KB"


def rates(w: Wave) -> dict[str, Any]:
    return summary([s.token_rate for s in w.streams if s.token_rate > 0])


def wave_rows(w: Wave) -> dict[str, str]:
    ok = len(w.streams) - len(w.failures())
    rate = rates(w)
    messages = sum(s.result.messages for s in w.streams)
    ttfc = summary([s.result.ttfc for s in w.streams if s.result.ok])
    return {
        "complete and intact": f"{ok}/{len(w.streams)}",
        "most open at once": str(w.max_open),
        "connections dropped, accept queue full": str(w.listen_drops),
        "ramp-up / whole wave": f"{w.ramp_s:.1f} s / {w.wall_s:.1f} s",
        "tokens/s per stream p50 (p10..p90)": (
            f"{rate['p50']:.1f} ({rate['min']:.1f}..{rate['p90']:.1f})" if rate["n"] else "-"
        ),
        "messages/s delivered, all streams": f"{messages / w.wall_s:,.0f}",
        "first token p50 / p99": (
            f"{ttfc['p50'] * 1e3:.0f} / {ttfc['p99'] * 1e3:.0f} ms" if ttfc["n"] else "-"
        ),
    }


def memory_rows(idle: Memory, w: Wave, after: Memory, streams: int) -> dict[str, str]:
    top = w.plateau().memory
    per = w.per_stream(idle)
    return {
        "RSS idle / all open / after": f"{mib(idle.rss)} / {mib(top.rss)} / {mib(after.rss)}",
        "USS idle / all open / after": f"{mib(idle.uss)} / {mib(top.uss)} / {mib(after.uss)}",
        "PSS idle / all open / after": f"{mib(idle.pss)} / {mib(top.pss)} / {mib(after.pss)}",
        "per open stream: RSS (USS, PSS)": (f"{kb(per.rss)} ({kb(per.uss)}, {kb(per.pss)})"),
        "open files idle / all open / after": f"{idle.fds} / {top.fds} / {after.fds}",
    }


def cpu_rows(w: Wave) -> dict[str, str]:
    return {f"CPU {name} (share of one CPU)": f"{s / w.wall_s:.0%}" for name, s in w.cpu_s.items()}


def print_report(
    plan: Plan, data: dict[str, Any], base: dict[str, Any], via: dict[str, Any]
) -> None:
    m = data["machine"]
    print(f"Many open streams ({data['mode']}), Córtex from {m['cortex_source']}")
    print(f"machine: {m['nproc']} CPUs usable, {m['cpu_model']}; python {m['python']}")
    print(f"pinning: {data['pinning']}; Córtex workers: {plan.workers}")
    print(f"open files limit {data['nofile']}; {data['kernel']}")
    rate = 1000 / plan.delay_ms
    print(
        f"{plan.streams} streams x {plan.tokens} tokens, a token every {plan.delay_ms:g} ms "
        f"({rate:g} tokens/s asked), opened {plan.batch} at a time"
    )
    n = plan.streams
    columns = {
        "direct (fake upstream)": (base["idle"], base["wave"], base["after"]),
        "via Córtex, wave 1": (via["idle"], via["wave1"], via["after1"]),
        "via Córtex, wave 2": (via["idle"], via["wave2"], via["after2"]),
    }
    cells = {
        name: wave_rows(w) | memory_rows(idle, w, after, n) | cpu_rows(w)
        for name, (idle, w, after) in columns.items()
    }
    table = Table(["", *cells])
    for label in dict.fromkeys(label for c in cells.values() for label in c):
        table.add(label, *(c.get(label, "-") for c in cells.values()))
    print_table(table)
    for line in verdicts(plan, base, via):
        print(line)


def verdicts(plan: Plan, base: dict[str, Any], via: dict[str, Any]) -> list[str]:
    n = plan.streams
    per = via["wave1"].per_stream(via["idle"]).rss
    fake = base["wave"].per_stream(base["idle"]).rss
    leak = via["after2"].minus(via["after1"])
    peaks = via["wave2"].plateau().memory.rss - via["wave1"].plateau().memory.rss
    broken = len(via["wave1"].failures()) + len(via["wave2"].failures())
    asked = 1000 / plan.delay_ms
    got = rates(via["wave1"]).get("p50", 0.0)
    lines = [
        f"per open stream: Córtex {kb(per)} RSS, x{per / fake:.1f} the fake upstream's {kb(fake)}; "
        f"{per / TARGET_PER_STREAM:.0%} of the {kb(TARGET_PER_STREAM)} target: "
        + ("MET" if per <= TARGET_PER_STREAM else "MISSED"),
        f"streams complete and intact: {2 * n - broken}/{2 * n} through Córtex: "
        + ("MET" if not broken else "MISSED"),
        f"leak check, after wave 2 - after wave 1: RSS {leak.rss / 2**20:+.1f} MiB "
        f"({leak.rss / n:+.0f} B per stream), USS {leak.uss / 2**20:+.1f} MiB, "
        f"open files {leak.fds:+d}; all open, wave 2 - wave 1: RSS {peaks / 2**20:+.1f} MiB "
        "(RSS after a wave also moves with what the allocators give back)",
        f"token rate per stream p50 {got:.1f}/s of the {asked:g}/s asked: "
        + ("MET" if got >= 0.95 * asked else "MISSED"),
    ]
    for name, w in (("direct", base["wave"]), ("wave 1", via["wave1"]), ("wave 2", via["wave2"])):
        for problem in sorted(set(w.failures()))[:3]:
            lines.append(f"{name}: {problem}")
    return lines


def to_json(value: Any) -> Any:
    if isinstance(value, Wave):
        return {
            "streams": len(value.streams),
            "failures": value.failures()[:20],
            "max_open": value.max_open,
            "ramp_s": value.ramp_s,
            "wall_s": value.wall_s,
            "cpu_s": value.cpu_s,
            "listen_drops": value.listen_drops,
            "plateau": asdict(value.plateau().memory),
            "plateau_open": value.plateau().open,
            "token_rate": rates(value),
            "ttfc": summary([s.result.ttfc for s in value.streams if s.result.ok]),
            "samples": [[s.t, s.open, s.memory.rss, s.memory.uss] for s in value.samples],
        }
    if isinstance(value, Memory):
        return asdict(value)
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value
