"""p50 and p99 added time to first token and p99 added inter-token gap against concurrency,
per Córtex target and reference relay, the p99 beside the published figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from suites.concurrency.plan import PUBLISHED


def plot(figs: dict[str, dict[int, dict[str, Any]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(19, 5.5))
    panels = (
        ("ttft_p50", "p50 added time to first token"),
        ("ttft_p99", "p99 added time to first token (published: dashed)"),
        ("gap_p99", "p99 added gap between tokens (jitter)"),
    )
    for ax, (key, label) in zip(axes, panels, strict=True):
        for name, levels in figs.items():
            cs = sorted(levels)
            values = [levels[c][key]["pooled"] * 1e3 for c in cs]
            legend = name if "worker" not in name else f"Córtex {name}"  # else a reference
            ax.plot(cs, values, marker="o", label=legend)
        if key == "ttft_p99":
            for name, published in PUBLISHED.items():
                cs = sorted(published)
                ax.plot(cs, [published[c] for c in cs], linestyle="--", marker="x", label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("symlog", linthresh=1)
        ax.set_xticks([1, 4, 16, 64, 256], labels=["1", "4", "16", "64", "256"])
        ax.set_xlabel("concurrent streams")
        ax.set_ylabel("ms added over direct (symlog)")
        ax.set_title(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
