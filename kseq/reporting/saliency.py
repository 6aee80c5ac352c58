"""Saliency (`kseq.explain`): which time steps (and features) of a sequence drove a model's score for a class.

`explain(model, x)` uses one of two standard, citable methods:

- `grad_cam` (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
  Gradient-based Localization"), on the last `Conv1D` layer of the model's own layers: each
  channel of that layer's output is weighted by the time-average of the class logit's gradient
  with respect to it, the weighted sum is passed through a ReLU and resampled to the input's
  length. It localises in time only (a convolution mixes the features), so it gives no
  per-feature importance.
- `integrated_gradients` (Sundararajan et al. 2017, "Axiomatic Attribution for Deep Networks"):
  the gradient of the class logit averaged along the straight path from a baseline (zeros) to
  the input, times (input - baseline); its attributions sum to logit(x) - logit(baseline)
  (completeness). Any differentiable model, recurrent ones and wrapped ones included.

`method="auto"` picks Grad-CAM when the model has a `Conv1D` layer of its own (the convolutional
builders, unwrapped), integrated gradients otherwise (recurrent models, and models behind
in-graph preprocessing, whose convolutions sit inside a nested model).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from kseq.utils.scores import softmax
from kseq.reporting import plots

METHODS = ("auto", "grad_cam", "integrated_gradients")
IG_STEPS = 64
# Path points x time steps per gradient pass of integrated gradients: bounds its memory whatever
# the series' length (64 points of a 2,618-step series in one pass held about 3 GB of a ResNet's
# activations).
IG_CHUNK_STEPS = 16_384
# The report's figure: path points x real steps over all its series, from which the number of
# path points is cut (to MIN_REPORT_IG_STEPS at least), so long series cost seconds, not minutes.
REPORT_IG_BUDGET = 2**18
MIN_REPORT_IG_STEPS = 16
# Classes the report's figure draws (two series each): beyond a dozen panels a figure is no longer
# read, and each panel costs an explanation (PigCVP's 52 classes of 2,000 steps: 137 s for 104).
MAX_REPORT_CLASSES = 6


@dataclasses.dataclass
class Explanation:
    """Importance per example: `time_importance` (N, T) >= 0; `feature_importance` (N, F) >= 0 and
    signed `attributions` (N, T, F) for integrated gradients (None for Grad-CAM); the explained
    `class_index` (N,) and the `method` used."""

    method: str
    class_index: np.ndarray
    time_importance: np.ndarray
    feature_importance: np.ndarray | None = None
    attributions: np.ndarray | None = None


def last_conv_layer(model: keras.Model):
    """The model's last own `Conv1D` layer, or None."""
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv1D)]
    return convs[-1] if convs else None


def explain(model: keras.Model, x, class_index=None, method: str = "auto", steps: int = IG_STEPS) -> Explanation:
    """Per-time-step (and, for integrated gradients, per-feature) importance of `x` (N, T, F).

    `class_index`: the class explained, an int or one per example; None explains each example's
    predicted class (the argmax of the model's logits).
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}; got {method!r}")
    x = np.asarray(x, np.float32)
    if class_index is None:
        class_index = np.asarray(model(x, training=False)).argmax(-1)
    class_index = np.broadcast_to(np.asarray(class_index, np.int64), (len(x),)).copy()
    conv = last_conv_layer(model)
    if method == "auto":
        method = "grad_cam" if conv is not None else "integrated_gradients"
    if method == "grad_cam":
        if conv is None:
            raise ValueError(f"grad_cam needs a Conv1D layer of the model's own; {model.name} has none")
        return Explanation("grad_cam", class_index, grad_cam(model, conv, x, class_index))
    attributions = integrated_gradients(model, x, class_index, steps)
    magnitude = np.abs(attributions)
    return Explanation("integrated_gradients", class_index, magnitude.sum(-1), magnitude.sum(1), attributions)


def grad_cam(model: keras.Model, conv, x: np.ndarray, class_index: np.ndarray) -> np.ndarray:
    """Grad-CAM maps (N, T) of `conv`'s output for the logits of `class_index`, resampled to T."""
    probe = keras.Model(model.inputs, [conv.output, model.output])
    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        activations, logits = probe(inputs, training=False)
        target = tf.gather(logits, class_index, batch_dims=1)
    gradients = tape.gradient(target, activations)
    weights = tf.reduce_mean(gradients, axis=1, keepdims=True)  # (N, 1, K): each channel's importance
    cam = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1)).numpy()  # (N, T')
    steps = x.shape[1]
    if cam.shape[1] == steps:
        return cam
    centres = (np.arange(cam.shape[1]) + 0.5) * steps / cam.shape[1] - 0.5
    return np.stack([np.interp(np.arange(steps), centres, row) for row in cam])


def integrated_gradients(model: keras.Model, x: np.ndarray, class_index: np.ndarray, steps: int = IG_STEPS,
                         baseline: np.ndarray | None = None) -> np.ndarray:
    """Signed attributions (N, T, F): (x - baseline) times the mean gradient of the class logit
    at `steps` midpoints of the path from `baseline` (zeros by default) to `x`."""
    baseline = np.zeros_like(x) if baseline is None else np.asarray(baseline, np.float32)
    alphas = ((np.arange(steps) + 0.5) / steps).astype(np.float32)[:, None, None]
    per_pass = max(1, IG_CHUNK_STEPS // max(x.shape[1], 1))
    out = np.empty_like(x)
    for i in range(len(x)):
        gradient = np.zeros(x.shape[1:], np.float32)
        for start in range(0, steps, per_pass):  # the path in passes of bounded size
            path = tf.constant(baseline[i] + alphas[start:start + per_pass] * (x[i] - baseline[i]))
            with tf.GradientTape() as tape:
                tape.watch(path)
                target = model(path, training=False)[:, int(class_index[i])]
            gradient += tape.gradient(target, path).numpy().sum(axis=0)
        out[i] = (x[i] - baseline[i]) * gradient / steps
    return out


def pick_examples(probabilities: np.ndarray, y: np.ndarray,
                  max_classes: int = MAX_REPORT_CLASSES) -> list[tuple[int, str]]:
    """Per class present in `y`: its most and least confident sequences (probability of their class).

    With more than `max_classes` classes present, the `max_classes` the model is least sure of
    (lowest mean probability of their own class over their series, ties by class index), in class
    order: the ones a reader should look at.
    """
    classes = np.unique(y)
    if len(classes) > max_classes:
        own = probabilities[np.arange(len(y)), y]
        mean_own = np.array([own[y == c].mean() for c in classes])
        classes = np.sort(classes[np.argsort(mean_own, kind="stable")[:max_classes]])
    picks = []
    for c in classes:
        rows = np.flatnonzero(y == c)
        confidence = probabilities[rows, c]
        picks.append((int(rows[confidence.argmax()]), "most confident"))
        if len(rows) > 1:
            picks.append((int(rows[confidence.argmin()]), "least confident"))
    return picks


def plot_saliency(model: keras.Model, test_set, test_logits, path):
    """`plots/saliency.png`: for each class (the `MAX_REPORT_CLASSES` hardest of more), its most
    and least confident test sequences (by the softmax of `test_logits`, the model's logits on
    `test_set`), drawn over their importance for the predicted class
    (`kseq.reporting.plots.plot_saliency`)."""
    probabilities = softmax(test_logits)
    picks = pick_examples(probabilities, test_set.y)
    # A model that takes any length explains each series without its padding.
    lengths = test_set.real_lengths() if model.input_shape[1] is None else np.full(len(test_set), test_set.x.shape[1])
    signals = [test_set.x[i, :lengths[i]] for i, _ in picks]
    steps = int(np.clip(REPORT_IG_BUDGET // sum(map(len, signals)), MIN_REPORT_IG_STEPS, IG_STEPS))
    explanations = [explain(model, signal[None], steps=steps) for signal in signals]
    names = test_set.class_names
    titles = [f"true {names[test_set.y[i]]} ({label}), predicted {names[e.class_index[0]]} "
              f"p={probabilities[i, e.class_index[0]]:.2f}" for (i, label), e in zip(picks, explanations)]
    return plots.plot_saliency(signals, [e.time_importance[0] for e in explanations], titles,
                               explanations[0].method, path)
