"""The ECDF of TTFC per target, in three panels: concurrency 1, many paced, many back to back."""

from __future__ import annotations

from pathlib import Path

from suites.compare.loads import Samples
from suites.compare.plan import Plan


def plot(samples: dict[str, Samples], plan: Plan, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), sharey=True)
    n = plan.concurrency
    panels = (
        ("ttfc_c1", f"concurrency 1, {plan.short_tokens} tokens"),
        ("ttfc_cn_paced", f"concurrency {n}, {plan.cn_paced_tokens} tokens paced, starts spread"),
        ("ttfc_cn", f"concurrency {n}, {plan.short_tokens} tokens back to back"),
    )
    for ax, (key, label) in zip(axes, panels, strict=True):
        for name, s in samples.items():
            values = sorted(x * 1e3 for x in getattr(s, key))
            heights = [(i + 1) / len(values) for i in range(len(values))]
            ax.step(values, heights, where="post", label=name)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("time to first chunk, ms (log scale)")
        ax.set_title(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.axhline(0.99, color="grey", linewidth=0.6, linestyle=":")
    axes[0].set_ylabel("share of requests (ECDF)")
    axes[0].legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
