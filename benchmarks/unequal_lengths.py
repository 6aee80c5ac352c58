"""Unequal lengths: one epoch of `resnet` on padded batches against batches grouped by length.

    python benchmarks/unequal_lengths.py [--series 1000] [--batch-size 64] [--seed 0]

1,000 univariate series with a long tail of lengths, as real recordings have: 80% of 50-300 steps,
20% of 300-1,000, zero-padded to 1,000 steps; three classes told apart by a sine's frequency. The
model is the generic `resnet` recipe's: per-series normalisation in-graph, then `resnet` (AdamW,
crossentropy from logits), batch 64 (the recipe's for 1,000 series), sampler `none`.

- padded: the model built for 1,000 steps, fed `make_train_dataset(x, y)`: every batch 1,000 steps.
- grouped: the same model built for any length, fed `make_train_dataset(x, y, lengths=...)`: batches
  of similar length, each cut to its longest member (what `kseq.training.trainer.fit` does for a
  model registered `any_length`).

Each path fits one warm-up epoch (graph tracing included), then one timed epoch; the two paths
take turns, so load on the machine hits both alike. `bucketed_vs_padded_speedup` is the padded
timed epoch over the grouped one. Then, on the trained grouped model and on freshly built `fcn`
and `inception_time` models (each behind the same normalisation), every one of 64 series is
scored at its own length and zero-padded to 1,000 steps and to its length + 37;
`logits_padding_invariance_max_diff` is the largest absolute difference of logits. The last line
reads `bucketed_vs_padded_speedup=<ratio> logits_padding_invariance_max_diff=<diff>`.
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np
from machine import describe

import kseq  # noqa: F401  (registers the models and layers)
from kseq.data.pipeline import make_train_dataset, steps_per_epoch
from kseq.models import build_model
from kseq.models.preprocessing import with_normalization

PADDED_LENGTH = 1000
CLASSES = 3


def long_tail(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(x, y, lengths)`: n series, 80% of 50-300 steps and 20% of 300-1,000, zero-padded to 1,000."""
    rng = np.random.default_rng(seed)
    short = rng.random(n) < 0.8
    lengths = np.where(short, rng.integers(50, 301, n), rng.integers(300, PADDED_LENGTH + 1, n))
    y = rng.integers(0, CLASSES, n)
    x = np.zeros((n, PADDED_LENGTH, 1), np.float32)
    for i, length in enumerate(lengths):
        t = np.arange(length)
        x[i, :length, 0] = np.sin(2 * np.pi * t / (8 + 8 * y[i]) + rng.uniform(0, 2 * np.pi))
        x[i, :length, 0] += 0.3 * rng.standard_normal(length)
    return x, y, lengths


def recipe_model(name: str, steps: int | None, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = with_normalization(build_model(name, (steps, 1), CLASSES), "series")
    model.compile(optimizer=keras.optimizers.AdamW(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def fit_epoch(model: keras.Model, dataset, steps: int) -> float:
    """Seconds to fit one epoch of `steps` batches."""
    start = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    return time.perf_counter() - start


def invariance(model: keras.Model, x: np.ndarray, lengths: np.ndarray) -> float:
    """Largest |logits| difference between each series at its own length and padded further."""
    worst = 0.0
    for series, length in zip(x, lengths):
        own = series[None, :length]
        reference = keras.ops.convert_to_numpy(model(own, training=False))
        for padded_to in (PADDED_LENGTH, length + 37):
            padded = np.zeros((1, padded_to, 1), np.float32)
            padded[0, :length] = own[0]
            got = keras.ops.convert_to_numpy(model(padded, training=False))
            worst = max(worst, float(np.abs(got - reference).max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(describe(), flush=True)

    x, y, lengths = long_tail(args.series, args.seed)
    steps = steps_per_epoch(len(y), args.batch_size)
    print(f"{len(y)} series, lengths {lengths.min()}-{lengths.max()} (mean {lengths.mean():.0f}, "
          f"{100 * lengths.sum() / x.shape[0] / x.shape[1]:.0f}% of the padded steps are real), "
          f"batch {args.batch_size}, {steps} steps per epoch", flush=True)
    padded_model, grouped_model = recipe_model("resnet", PADDED_LENGTH, args.seed), recipe_model("resnet", None, args.seed)
    padded_data = make_train_dataset(x, y, sampler="none", batch_size=args.batch_size, seed=args.seed)
    grouped_data = make_train_dataset(x, y, sampler="none", batch_size=args.batch_size, seed=args.seed,
                                      lengths=lengths)
    cut = sum(int(batch[0].shape[0]) * int(batch[0].shape[1]) for batch in grouped_data)
    print(f"grouped batches hold {100 * cut / (len(y) * PADDED_LENGTH):.0f}% of the padded steps", flush=True)
    seconds = {}
    for phase in ("warm-up", "timed"):
        for name, model, data in (("padded", padded_model, padded_data), ("grouped", grouped_model, grouped_data)):
            seconds[name, phase] = fit_epoch(model, data, steps)
            print(f"{name:8s} {phase} epoch: {seconds[name, phase]:.1f} s", flush=True)
    speedup = seconds["padded", "timed"] / seconds["grouped", "timed"]
    first = seconds["padded", "warm-up"] / seconds["grouped", "warm-up"]
    print(f"first epochs (tracing included): padded over grouped {first:.2f}", flush=True)

    probe = np.random.default_rng(args.seed + 1).choice(len(y), 64, replace=False)
    diffs = {"resnet (trained, grouped)": invariance(grouped_model, x[probe], lengths[probe])}
    for name in ("fcn", "inception_time"):
        diffs[f"{name} (initial weights)"] = invariance(recipe_model(name, None, args.seed), x[probe], lengths[probe])
    for name, diff in diffs.items():
        print(f"padding invariance, {name}: max |logit difference| {diff:.2e}", flush=True)
    print(f"bucketed_vs_padded_speedup={speedup:.2f} logits_padding_invariance_max_diff={max(diffs.values()):.2e}")


if __name__ == "__main__":
    main()
