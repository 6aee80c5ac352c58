"""PNG figures of a run: confusion matrix and training curves.

Figures are built with `matplotlib.figure.Figure` (Agg canvas) rather than pyplot, so drawing
needs no display and touches no global pyplot state, even from a training callback.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def plot_confusion_matrix(cm, class_names, path, title=None) -> Path:
    """Draw confusion matrix `cm` (rows: true, columns: predicted) with counts in each cell."""
    cm = np.asarray(cm)
    size = max(4.0, 0.6 * len(class_names) + 2.0)
    fig = Figure(figsize=(size, size), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(cm, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, labels=[str(n) for n in class_names], rotation=45, ha="right")
    ax.set_yticks(ticks, labels=[str(n) for n in class_names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = cm.max() / 2 if cm.size else 0
    for (i, j), count in np.ndenumerate(cm):
        ax.text(j, i, f"{count:g}", ha="center", va="center",
                color="white" if count > threshold else "black")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_history(history: dict[str, list], path) -> Path:
    """Training curves: one panel per logged quantity, its `val_` counterpart on the same axes."""
    names = [k for k in history if k != "epoch" and not (k.startswith("val_") and k[4:] in history)]
    if not names:
        raise ValueError("history has nothing to plot.")
    cols = min(len(names), 3)
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(5 * cols, 3.5 * rows), layout="constrained")
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        epochs = np.arange(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], label=name)
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], label=f"val_{name}")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.legend()
    return _save(fig, path)


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
