"""Córtex beside nginx and a hand-written relay, side by side in one run (issue #7).

    bench/run [--quick]          # installs what is missing, then runs this
    .venv/bin/python bench/compare.py [--quick]

The same loads go straight at a fake model server (bench/fake_upstream.py) and
through three relays in front of it: nginx (the reference), Córtex, and the
FastAPI + httpx relay people write by hand (bench/handwritten.py); a second
Córtex, in front of the fake as an OpenAI server, gives the translated path
(Ollama client, OpenAI upstream). The relays share one CPU, the upstream and
the load generator the other. Prints the figures and the issue's targets with
met / missed, writes JSON to bench/results/ and a plot of the time to first
chunk to docs/performance-ttfc.png (a quick run puts it beside its JSON). Its
parts are in bench/suites/compare/.

To measure another checkout's Córtex with this bench code, put its src first:
``PYTHONPATH=/other/src bench/run``; ``--before /other/src`` measures it beside this
one in the same run.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import orjson
from harness.cli import parser, quick_or_full, run_benchmark
from harness.cpu import Snapshot
from harness.machine import ROOT
from harness.pinning import Pinning
from harness.processes import processes
from harness.results import Report, begin_run, write_results
from harness.servers import start_upstream
from harness.tables import print_table
from suites.compare.aims import aims_table
from suites.compare.figures import figures, figures_table
from suites.compare.hangups import disconnect_rounds
from suites.compare.loads import LoadRun, Samples, relay_rounds
from suites.compare.plan import PLOT, QUICK, Plan
from suites.compare.plot import plot
from suites.compare.targets import start_relays


async def measure(
    plan: Plan, report: Report, pinning: Pinning
) -> tuple[dict[str, Samples], list[str]]:
    samples: dict[str, Samples] = {}
    with tempfile.TemporaryDirectory(prefix="cortex-compare-") as tmp:
        workdir = Path(tmp)
        async with processes(pinning) as procs:
            upstream, upstream_port = await start_upstream(procs)
            targets = await start_relays(procs, upstream_port, workdir, True, plan.before)
            samples = {t.name: Samples() for t in targets}
            noise = await relay_rounds(targets, plan, [upstream.pid, os.getpid()], samples)
            report.data["noise_per_round"] = noise
            logs = [line for t in targets for line in t.log_lines()]
            await procs.stop_all()
        async with processes(pinning) as procs:
            start = Snapshot.now()
            logs += await disconnect_rounds(procs, plan, workdir, samples)
            quiet = Snapshot.now().others_since(start)
            report.data["noise_disconnect"] = quiet
            print(
                f"  hang-ups: others used {quiet['others']:.0%} of the machine, "
                f"the hypervisor stole {quiet['steal']:.0%}",
                flush=True,
            )
    return samples, logs


async def main(plan: Plan, mode: str, plot_path: Path) -> int:
    title, shown = (
        "Córtex vs nginx vs hand-written relay",
        "relays (nginx, Córtex, hand-written) as {}",
    )
    report, pinning = begin_run(title, mode, plan, shown=shown)
    samples, logs = await measure(plan, report, pinning)
    figs = figures(samples, plan.rounds)
    report.tables += [figures_table(figs, plan), aims_table(figs)[0], aims_table(figs, "#17")[0]]
    report.data |= {"figures": figs, "samples": {n: asdict(s) for n, s in samples.items()}}
    report.finish(logs)
    json_path = write_results("compare", report.data)
    plot_path = plot_path if mode == "full" else json_path.with_name(f"{json_path.stem}-ttfc.png")
    plot(samples, plan, plot_path, "Time to first chunk: direct and through each relay")
    report.print_tables()
    report.print_notes()
    took = report.data["elapsed_s"]
    print(f"took {took:.0f} s; results in {json_path.relative_to(ROOT)}, plot in {plot_path}")
    return 0


def reprint(path: Path) -> None:
    """The tables of an earlier run, from its JSON."""
    data = orjson.loads(path.read_bytes())
    plan = Plan(**data["plan"])
    samples = {}
    for name, fields in data["samples"].items():
        runs = {
            k: [LoadRun(**r) for r in fields[k]] for k in ("short", "short_c1", "fast", "paced")
        }
        samples[name] = Samples(**(fields | runs))
    figs = figures(samples, plan.rounds)
    print(f"{path.name}: {data['mode']} run, noise per round {data.get('noise_per_round')}")
    print_table(figures_table(figs, plan))
    print_table(aims_table(figs)[0])
    print_table(aims_table(figs, "#17")[0])


def cli(argv: list[str] | None = None) -> None:
    command = parser(__doc__, "one small round, about a minute")
    command.add_argument("--plot", type=Path, default=PLOT, help="where a full run puts the plot")
    command.add_argument("--tables", type=Path, help="print the tables of a results JSON, and stop")
    command.add_argument(
        "--before", type=Path, help="an earlier Córtex's src/ (e.g. a git worktree's), measured too"
    )
    args = command.parse_args(argv)
    if args.tables:
        reprint(args.tables)
        return
    plan, mode = quick_or_full(args.quick, Plan(), QUICK)
    if args.before:
        plan = replace(plan, before=str(args.before.resolve()))
    run_benchmark(main(plan, mode, args.plot), "the upstream and the relays")


if __name__ == "__main__":
    cli()
