"""Mixed bfloat16 against float32: the training step of each convolutional network, side by side.

    python benchmarks/mixed_precision.py [--steps 10] [--models cnn fcn resnet inception_time] [--seed 0]
    python benchmarks/mixed_precision.py --kernels

What `train.dtype_policy = "auto"` rests on (`kseq/training/recipe.py`): on this CPU, which
networks train faster in Keras' `mixed_bfloat16` policy, on which shapes of batch. Five batches
shaped like the dev sets' (random values; the arithmetic does not depend on them), the first two
under the recipe's threshold of 1,000 series-steps a batch (`ARITHMETIC_BATCH_STEPS`),
where it keeps float32:

- `tiny`: 2 series x 24 steps x 1 channel (Chinatown_subset's batch);
- `small`: 2 x 286 x 1 (Coffee's);
- `short`: 10 x 275 x 1 (Trace's);
- `long`: 10 x 2,000 x 1 (PigCVP's);
- `multichannel`: 9 x 1,500 x 6 channels, seen as 12 (`series+channel`; WatchExercise's batch at
  about its mean length).

A bfloat16 step is only worth its speed where it computes what float32 does: the bfloat16 model is
the one the trainer trains, each layer this machine computes wrong in bfloat16 moved to float32
(`kseq.training.mixed_precision.float32_where_wrong`), and each row says which were and how far
off they were ("right" where none).

For each network and shape, one process builds the model twice with the trainer's own
`kseq.training.trainer.build_window_model`, from the network's generic experiment config with
`train.dtype_policy` set (the network in the policy, its normalisation in float32), warms both up
(three steps each: tracing), then times `--steps` training steps of each in turn, so load on the
machine hits both alike. A row gives the median step of each and float32's over bfloat16's.
The `cnn` is built for the batch's length (it takes one length); the others for any length.

Last line: `long_series_speedup=<x> short_series_speedup=<x> small_batch_speedup=<x>`: the
geometric mean of float32's step over `mixed_bfloat16`'s for the networks the recipe trains in it
(`MIXED_PRECISION_MODELS`), over the two long shapes, on the short one, and over the two under
the threshold.

`--kernels` times nothing: it checks one bfloat16 `Conv1D` of 64 filters ('same' padding, on 2
series of 256 steps) for every width of `KERNEL_WIDTHS` over every channel count of
`KERNEL_CHANNELS` against the same layer in float32, prints each one's error (the largest
difference over the float32 output's largest magnitude; `mixed_precision.TOLERANCE` separates
rounding from a wrong kernel), and ends with `wrong_bfloat16_kernels=<wrong>/<checked>`.
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np
from machine import describe

import kseq  # noqa: F401  (registers the models and layers)
from kseq.config import load_config
from kseq.training import mixed_precision
from kseq.training.recipe import MIXED_PRECISION_MODELS
from kseq.training.trainer import build_window_model

SHAPES = {"tiny": (2, 24, 1), "small": (2, 286, 1), "short": (10, 275, 1), "long": (10, 2000, 1),
          "multichannel": (9, 1500, 6)}
CLASSES = 7
POLICIES = ("float32", "mixed_bfloat16")
KERNEL_WIDTHS = (1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 16, 20, 40)  # the generic networks' widths among them
KERNEL_CHANNELS = (1, 2, 3, 4, 6, 8, 10, 12, 16, 24, 32, 64, 128)


def recipe_model(name: str, policy: str, x: np.ndarray, seed: int) -> keras.Model:
    """`name`'s generic experiment built in `policy` behind the recipe's normalisation, as the trainer builds it."""
    keras.utils.set_random_seed(seed)
    kind = "series" if x.shape[-1] == 1 else "series+channel"
    config = load_config(name, [f'preprocess.normalize="{kind}"', f'train.dtype_policy="{policy}"'])
    steps = x.shape[1] if name == "cnn" else None
    model = build_window_model(config, (steps, x.shape[-1]), CLASSES, None, x)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def step_times(name: str, shape: tuple, steps: int, seed: int) -> tuple[dict[str, float], str]:
    """Median seconds of a training step in each policy, the two models' steps taken in turn, and
    whether this machine computes the bfloat16 model's layers right."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype("float32")
    y = rng.integers(0, CLASSES, shape[0])
    models = {policy: recipe_model(name, policy, x, seed) for policy in POLICIES}
    wrong = mixed_precision.float32_where_wrong(models["mixed_bfloat16"])  # as the trainer trains it
    kernels = "right" if not wrong else "in float32: " + ", ".join(f"`{layer.name}` {error:.0%}" for layer, error in wrong)
    return median_steps(models, x, y, steps), kernels


def median_steps(models: dict, x: np.ndarray, y: np.ndarray, steps: int) -> dict:
    """Median seconds of a training step on `(x, y)` for each of `models` (by key), after three
    warm-up steps each (tracing), their steps taken in turn so load on the machine hits all alike."""
    for model in models.values():
        for _ in range(3):
            model.train_on_batch(x, y)
    times = {key: [] for key in models}
    for _ in range(steps):
        for key, model in models.items():
            started = time.perf_counter()
            model.train_on_batch(x, y)
            times[key].append(time.perf_counter() - started)
    return {key: float(np.median(t)) for key, t in times.items()}


def kernel_errors(seed: int) -> None:
    """Each bfloat16 `Conv1D` of `KERNEL_WIDTHS` x `KERNEL_CHANNELS` against float32, as a table."""
    print("| channels \\ width | " + " | ".join(map(str, KERNEL_WIDTHS)) + " |")
    print("|---" * (len(KERNEL_WIDTHS) + 1) + "|")
    wrong = []
    for channels in KERNEL_CHANNELS:
        cells = []
        for width in KERNEL_WIDTHS:
            keras.utils.set_random_seed(seed)
            with mixed_precision.policy_scope("mixed_bfloat16"):
                model = keras.Sequential([keras.Input((256, channels)), keras.layers.Conv1D(64, width, padding="same")])
            ((_, error),) = mixed_precision.bfloat16_errors(model, seed=seed)
            if error > mixed_precision.TOLERANCE:
                wrong.append(f"{width}x{channels}")
            cells.append(f"**{error:.0%}**" if error > mixed_precision.TOLERANCE else f"{error:.1%}")
        print(f"| {channels} | " + " | ".join(cells) + " |", flush=True)
    print(f"wrong_bfloat16_kernels={len(wrong)}/{len(KERNEL_WIDTHS) * len(KERNEL_CHANNELS)}"
          + (f" (width x channels: {' '.join(wrong)})" if wrong else ""))


def geometric_mean(values) -> float:
    return float(np.exp(np.mean(np.log(values)))) if values else float("nan")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--models", nargs="+", default=["cnn", "fcn", "resnet", "inception_time"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kernels", action="store_true", help="check bfloat16 convolutions against float32 only")
    args = parser.parse_args(argv)
    print(describe(), flush=True)
    if args.kernels:
        kernel_errors(args.seed)
        return
    print("| network | batch (series x steps x channels) | float32 step | mixed_bfloat16 step | speedup "
          "| bfloat16 kernels |")
    print("|---|---|---|---|---|---|")
    speedups = {}
    for shape_name, shape in SHAPES.items():
        for name in args.models:
            t, kernels = step_times(name, shape, args.steps, args.seed)
            speedups[name, shape_name] = t["float32"] / t["mixed_bfloat16"]
            print(f"| `{name}` | {shape_name}: {' x '.join(map(str, shape))} | {1000 * t['float32']:.1f} ms "
                  f"| {1000 * t['mixed_bfloat16']:.1f} ms | {speedups[name, shape_name]:.2f}x | {kernels} |", flush=True)
    candidates = [name for name in args.models if name in MIXED_PRECISION_MODELS]
    long_ = geometric_mean([speedups[name, s] for name in candidates for s in ("long", "multichannel")])
    short = geometric_mean([speedups[name, "short"] for name in candidates])
    small = geometric_mean([speedups[name, s] for name in candidates for s in ("tiny", "small")])
    print(f"long_series_speedup={long_:.2f} short_series_speedup={short:.2f} small_batch_speedup={small:.2f}")


if __name__ == "__main__":
    main()
