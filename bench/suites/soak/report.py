"""The soak's report: outcomes, violations, what each Córtex holds, leaks, and the verdict."""

from __future__ import annotations

from typing import Any


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
