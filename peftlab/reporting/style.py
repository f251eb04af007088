"""One look for every figure: single-column size, colour-blind-safe colours fixed per method.

A method keeps its colour and marker in every figure of a report, so a reader who learnt that
LoRA is blue in figure 1 does not have to re-read the legend of figure 4.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WIDTH_IN = 3.5  # one column of a two-column paper
HEIGHT_IN = 2.5
MARKERS = ["o", "s", "D", "^", "v", "P", "X", "<", ">", "*", "h", "p"]


def apply() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", palette="colorblind")
    matplotlib.rcParams.update(
        {
            "font.size": 8,
            "axes.labelsize": 8,
            "axes.titlesize": 8,
            "xtick.labelsize": 7,
            "ytick.labelsize": 7,
            "legend.fontsize": 6.5,
            "legend.title_fontsize": 7,
            "axes.linewidth": 0.6,
            "grid.linewidth": 0.4,
            "lines.linewidth": 1.2,
            "lines.markersize": 4,
            "savefig.dpi": 300,
            "pdf.fonttype": 42,  # TrueType in the PDF: editable text, accepted by camera-ready checkers
            "ps.fonttype": 42,
        }
    )


def figure(width: float = WIDTH_IN, height: float = HEIGHT_IN) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    apply()
    return plt.subplots(figsize=(width, height), layout="constrained")


def method_styles(labels: list[str]) -> dict[str, dict[str, Any]]:
    """Label → {color, marker}; the order given (the experiment file's) decides who gets which."""
    import seaborn as sns

    colors = sns.color_palette("colorblind", max(len(labels), 1))
    unique = list(dict.fromkeys(labels))
    return {
        label: {"color": colors[i % len(colors)], "marker": MARKERS[i % len(MARKERS)]} for i, label in enumerate(unique)
    }


AXES_KEY = "peftlab:axes"  # the PNG text chunk naming each panel's axis labels (read back by tests and tools)


def axis_labels(fig: Any) -> list[dict[str, str]]:
    """Each panel's {x, y} axis label (empty where a shared axis labels one panel only)."""
    return [{"x": ax.get_xlabel(), "y": ax.get_ylabel()} for ax in fig.axes]


def save(fig: Any, out_dir: Path, stem: str) -> list[Path]:
    """PNG and PDF of `fig` under `out_dir`; the PNG also carries its axis labels as text (`AXES_KEY`)."""
    import json

    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        path = out_dir / f"{stem}.{ext}"
        metadata = {AXES_KEY: json.dumps(axis_labels(fig))} if ext == "png" else None
        fig.savefig(path, dpi=300 if ext == "png" else None, bbox_inches="tight", pad_inches=0.02, metadata=metadata)
        paths.append(path)
    plt.close(fig)
    return paths
