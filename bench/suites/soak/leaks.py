"""What each Córtex holds (open files, RSS) before and after, the leaks that shows, and the
soak's figures as its JSON has them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from suites.soak.clients import Tally
from suites.soak.cortex import SoakCortex

FD_SLACK_PER_CLIENT = 1  # a kept-alive upstream connection per concurrent stream, at most
RSS_SLACK = 48 * 1024 * 1024


@dataclass(frozen=True)
class Held:
    """Per Córtex (by kind): whether it runs, its open files and RSS (-1 once it died)."""

    alive: dict[str, bool]
    fds: dict[str, int]
    rss: dict[str, int]

    @classmethod
    def now(cls, cortexes: list[SoakCortex]) -> Held:
        alive = {c.kind: c.alive() for c in cortexes}
        fds = {c.kind: c.fds() if alive[c.kind] else -1 for c in cortexes}
        rss = {c.kind: c.rss() if alive[c.kind] else -1 for c in cortexes}
        return cls(alive, fds, rss)

    def rss_mib(self) -> dict[str, float]:
        return {k: round(v / 2**20, 1) for k, v in self.rss.items()}

    @staticmethod
    def slack(concurrency: int) -> int:
        return FD_SLACK_PER_CLIENT * concurrency + 4


def leaks(before: Held, after: Held, slack: int, upstream_open: int) -> list[str]:
    found = []
    for kind in before.fds:
        if not after.alive[kind]:
            found.append(f"Córtex ({kind}) died")
            continue
        if after.fds[kind] > before.fds[kind] + slack:
            found.append(
                f"Córtex ({kind}) holds {after.fds[kind]} fds, baseline "
                f"{before.fds[kind]} (+{slack} allowed for pooled connections)"
            )
        if after.rss[kind] > before.rss[kind] + RSS_SLACK:
            found.append(
                f"Córtex ({kind}) RSS {after.rss[kind] / 2**20:.1f} MiB, baseline "
                f"{before.rss[kind] / 2**20:.1f} MiB (+{RSS_SLACK / 2**20:g} allowed)"
            )
    if upstream_open:
        found.append(f"{upstream_open} upstream requests still open after the clients left")
    return found


def figures(
    args: argparse.Namespace,
    tally: Tally,
    cortexes: list[SoakCortex],
    before: Held,
    after: Held,
    peak_rss: dict[str, int],
    elapsed: float,
    settled_in: float,
    upstream_open: int,
) -> dict[str, Any]:
    return {
        "duration_s": round(elapsed, 1),
        "concurrency": args.concurrency,
        "kinds": args.kinds,
        "disconnect_rate": args.disconnect_rate,
        "seed": args.seed,
        "requests": tally.requests,
        "requests_per_s": round(tally.requests / elapsed, 1),
        "outcomes": dict(tally.outcomes.most_common()),
        "scenarios": dict(tally.by_scenario.most_common()),
        "silent_truncations": tally.outcomes.get("violation: silent truncation", 0),
        "violations": tally.violation_count(),
        "violation_examples": tally.violations,
        "unexpected_examples": tally.unexpected,
        "cortex": {
            c.kind: {
                "fds_baseline": before.fds[c.kind],
                "fds_after": after.fds[c.kind],
                "rss_mib_baseline": round(before.rss[c.kind] / 2**20, 1),
                "rss_mib_peak": round(peak_rss[c.kind] / 2**20, 1),
                "rss_mib_after": round(after.rss[c.kind] / 2**20, 1),
                "tracebacks_in_log": c.tracebacks(),
                "log": str(c.log),
            }
            for c in cortexes
        },
        "settled_in_s": round(settled_in, 1),
        "upstream_requests_open_after": upstream_open,
        "leaks": leaks(before, after, Held.slack(args.concurrency), upstream_open),
    }
