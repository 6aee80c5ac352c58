"""XLA-compiled training steps against Keras' plain ones, for each convolutional network, side by side.

    python benchmarks/xla.py [--steps 10] [--models cnn fcn inception_time resnet] [--seed 0]

What `train.jit_compile = "auto"` rests on (`kseq/training/recipe.py`): on this CPU, which
networks' float32 training steps XLA makes faster, on which shapes of batch. Keras leaves XLA off
on a CPU; a step of a few short series is mostly per-step overhead (op dispatch, the optimizer's
per-variable updates), which XLA fuses, where a step of long series is mostly convolutions. Batches
shaped like the recipe's (random values; the arithmetic does not depend on them), in float32, the
dtype the recipe trains every network in below its threshold of 1,000 series-steps a batch
(`ARITHMETIC_BATCH_STEPS`), and `cnn` and `inception_time` above it, and `fcn` and `resnet` too on
hardware without native bfloat16:

- `tiny`: 2 series x 24 steps x 1 channel (Chinatown_subset's batch);
- `small`: 2 x 286 x 1 (Coffee's);
- `medium`: 14 x 84 x 1 (Covid3Month_disc's, just over the threshold);
- `short`: 10 x 275 x 1 (Trace's);
- `wide`: 20 x 500 x 1 (a set of 1,000 series of 500 steps, under the compute budget);
- `long`: 10 x 2,000 x 1 (PigCVP's).

For each network and shape, one process builds the model twice with the trainer's own
`kseq.training.trainer.build_window_model` from the network's generic experiment config (float32),
compiles it with and without `jit_compile`, warms both up (three steps each: tracing, and XLA's
compilation), then times `--steps` training steps of each in turn, so load on the machine hits
both alike. A row gives the median step of each, plain over XLA, and what the recipe resolves
`train.jit_compile` to at that shape.

Last line: `overhead_bound_speedup=<x> arithmetic_speedup=<x>`: the geometric mean of the plain
step over the XLA step over the networks, for the shapes under the threshold (`tiny`, `small`)
and over it (`medium`, `short`, `wide`, `long`).
"""

from __future__ import annotations

import argparse

import keras
import numpy as np
from machine import describe
from mixed_precision import median_steps

import kseq  # noqa: F401  (registers the models and layers)
from kseq.config import load_config
from kseq.training import recipe
from kseq.training.trainer import build_window_model

SHAPES = {"tiny": (2, 24, 1), "small": (2, 286, 1), "medium": (14, 84, 1), "short": (10, 275, 1),
          "wide": (20, 500, 1), "long": (10, 2000, 1)}
CLASSES = 7


def compiled_model(name: str, x: np.ndarray, jit_compile: bool, seed: int) -> keras.Model:
    """`name`'s generic experiment in float32 behind its normalisation, as the trainer builds it."""
    keras.utils.set_random_seed(seed)
    config = load_config(name, ['preprocess.normalize="series"', 'train.dtype_policy="float32"'])
    steps = x.shape[1] if name == "cnn" else None  # the cnn takes one length; the others any
    model = build_window_model(config, (steps, x.shape[-1]), CLASSES, None, x)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit_compile)
    return model


def step_times(name: str, shape: tuple, steps: int, seed: int) -> dict[bool, float]:
    """Median seconds of a training step, plain (False) and XLA-compiled (True), taken in turn."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype("float32")
    y = rng.integers(0, CLASSES, shape[0])
    return median_steps({jit: compiled_model(name, x, jit, seed) for jit in (False, True)}, x, y, steps)


def resolved(name: str, shape: tuple) -> object:
    """`train.jit_compile` as the recipe resolves it for a training set of ten such batches, on a CPU,
    for a float32 run: the dtype these steps are timed in, which the recipe trains every batch in on
    hardware without native bfloat16 (bfloat16 steps are never compiled)."""
    config = load_config(name, ['train.dtype_policy="float32"'])
    batch, length, _ = shape
    # The recipe's batch is a tenth of the series (at least 2): ten batches' worth gives this batch.
    config = recipe.resolve(config, num_train=10 * batch, sequence_length=length, validation=False)
    return config["train"]["jit_compile"]


def geometric_mean(values) -> float:
    return float(np.exp(np.mean(np.log(values)))) if values else float("nan")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--models", nargs="+", default=list(recipe.XLA_MODELS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(describe(), flush=True)
    print("| network | batch (series x steps x channels) | plain step | XLA step | speedup | recipe |")
    print("|---|---|---|---|---|---|")
    speedups = {}
    for shape_name, shape in SHAPES.items():
        for name in args.models:
            t = step_times(name, shape, args.steps, args.seed)
            speedups[name, shape_name] = t[False] / t[True]
            choice = resolved(name, shape)
            print(f"| `{name}` | {shape_name}: {' x '.join(map(str, shape))} | {1000 * t[False]:.1f} ms "
                  f"| {1000 * t[True]:.1f} ms | {speedups[name, shape_name]:.2f}x "
                  f"| {str(choice).lower() if isinstance(choice, bool) else choice} |", flush=True)
    # Under the recipe's threshold a step is overhead (`tiny`, `small`), over it arithmetic.
    overhead_bound = {s for s, (batch, length, _) in SHAPES.items() if batch * length < recipe.ARITHMETIC_BATCH_STEPS}
    overhead = geometric_mean([v for (_, s), v in speedups.items() if s in overhead_bound])
    arithmetic = geometric_mean([v for (_, s), v in speedups.items() if s not in overhead_bound])
    print(f"overhead_bound_speedup={overhead:.2f} arithmetic_speedup={arithmetic:.2f}")


if __name__ == "__main__":
    main()
