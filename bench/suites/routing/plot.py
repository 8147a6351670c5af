"""The ECDF of TTFT under each rule, one panel per workload."""

from __future__ import annotations

from pathlib import Path

from suites.routing.case import Case
from suites.routing.plan import TWICE, TWICE_REDIS


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
