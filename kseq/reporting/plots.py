"""PNG figures of a run: confusion matrix, training curves, reliability diagram and saliency.

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


def plot_reliability(calibration: dict, path) -> Path:
    """Reliability diagram of the test split before and after temperature scaling.

    Bars: accuracy per confidence bin; the diagonal is perfect calibration. Reads the bin tables
    `kseq.serving.decisions.decide` stores in `metrics.json["calibration"]`.
    """
    fig = Figure(figsize=(9, 4), layout="constrained")
    for i, when in enumerate(("before", "after")):
        table = calibration[f"test_reliability_{when}"]
        edges = np.asarray(table["edges"])
        width = np.diff(edges)
        accuracy = np.array([np.nan if a is None else a for a in table["accuracy"]])
        ax = fig.add_subplot(1, 2, i + 1)
        ax.bar(edges[:-1], np.nan_to_num(accuracy), width=width, align="edge", edgecolor="black",
               alpha=0.7, label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
        temperature = 1.0 if when == "before" else calibration["temperature"]
        ax.set_title(f"{when}: T = {temperature:.3g}, ECE = {calibration[f'test_ece_{when}']:.4f}")
        ax.set_xlabel("confidence (top probability)")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(loc="upper left")
    return _save(fig, path)


def plot_saliency(signals, importances, titles, method: str, path, max_features: int = 3) -> Path:
    """Each signal (T, F) (its first `max_features` features) drawn over its importance (T,) as a
    heat strip, two panels a row (`kseq.reporting.saliency.plot_saliency`)."""
    rows = -(-len(signals) // 2)
    fig = Figure(figsize=(12, 2.4 * rows), layout="constrained")
    for k, (signal, importance, title) in enumerate(zip(signals, importances, titles)):
        ax = fig.add_subplot(rows, 2, k + 1)
        signal = np.asarray(signal)[:, :max_features]
        low, high = float(np.nanmin(signal)), float(np.nanmax(signal))
        high = high if high > low else low + 1.0
        peak = float(np.max(importance))
        ax.imshow((importance / peak if peak > 0 else importance)[None, :], aspect="auto", cmap="Reds",
                  vmin=0, vmax=1, alpha=0.6, extent=(-0.5, len(importance) - 0.5, low, high), origin="lower")
        ax.plot(signal, color="black", linewidth=0.9)
        ax.set_xlim(-0.5, len(importance) - 0.5)
        ax.set_ylim(low, high)
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"saliency ({method.replace('_', ' ')}) for the predicted class; darker red: more important")
    return _save(fig, path)


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
