"""Recipes that adapt to the data: resolve a config's `"auto"` values once the training set is known.

The generic experiments (`resnet`, `fcn`, `inception_time`, `cnn`, `gru`) leave the values that
depend on the data as `"auto"`; a user's dataset may hold 20 series or 80,000, 24 steps or
2,000, and no fixed batch size, epoch count or validation split suits both ends. Every value is
resolved to a number before training starts, printed in one line and written to the run's
`config.toml`, so a run is reproduced from its folder alone.

The rules, in the order they apply:

- `data.validation_split`: `0.1` when a stratified tenth holds at least `MIN_VALIDATION_PER_CLASS`
  series of every class, else `0`: on the UCR archive's tens of series a validation split of a
  handful would choose the "best" epoch by noise and take series away from training. With no
  validation, the final weights are selected the way the published protocols do (Wang et al.
  2017; Ismail Fawaz et al. 2019): the epoch with the lowest training loss.
- `sampler.batch_size`: `N / 10` training series, between 2 and 64, as the ResNet and
  InceptionTime reference code does (`min(N / 10, 16 or 64)`), so tiny data still takes ten
  optimizer steps an epoch. The random-kernel models take `N` series a batch, up to 64: on
  small data their batches only chunk the transform.
- `train.steps`: a budget of optimizer steps, not epochs, so 30 series and 80,000 series both get
  enough updates: `MAX_STEPS`, cut to what `COMPUTE_BUDGET` sequence-steps allow for long series
  (a 1,000 x 500 dataset trains in minutes on two CPU cores), but never under `MIN_EPOCHS` passes
  over the data. `train.epochs` becomes the whole number of epochs that covers it.
- `train.monitor`: `val_macro_f1` with a validation split, the training `loss` without one; the
  checkpoint keeps the best epoch by it.
- `train.early_stopping_patience`: a quarter of the epochs (at least `MIN_PATIENCE`), so a run
  that has stopped improving ends early but a slow start is not cut short.
- `train.steps_per_execution`: up to `MAX_STEPS_PER_EXECUTION` steps per call into TensorFlow,
  which amortises the per-step overhead that dominates tiny batches on a CPU.
- `model.pool_size` (`hybrid` front ends): the pooling factor that leaves the recurrent layers at
  most `MAX_RECURRENT_STEPS` steps, since a recurrent layer's cost grows with every step it runs.
- `model.head` (the random-kernel models, `minirocket` and `multirocket_hydra`; "auto" when not
  given): `"ridge"`, solved in closed form with leave-one-out choice of its penalty, below
  `RIDGE_MAX_SERIES` training series, else `"logistic"`, trained by gradient with kseq's samplers
  and losses. The MiniRocket paper's advice: ridge is the more accurate on small data, but its
  eigendecomposition grows with the cube of the series count, while logistic regression scales
  linearly (`kseq.models.random_kernels`).

The learning-rate policy is the config's `optimizer.schedule`; the generic experiments use
`cosine` (linear warmup over the first 5% of the budget, then cosine decay to zero), which fits a
budget known in advance: the rate anneals over exactly the steps the run will take, where
ReduceLROnPlateau would need tens of epochs of patience that a short budget does not have.
"""

from __future__ import annotations

import math

import numpy as np

from kseq.utils.errors import InputError

AUTO = "auto"
MIN_VALIDATION_PER_CLASS = 10
VALIDATION_FRACTION = 0.1
MIN_BATCH, MAX_BATCH = 2, 64
MAX_STEPS = 2000
COMPUTE_BUDGET = 2e7  # batch x time steps summed over the run: ~5 minutes of a ResNet on 2 CPU cores
MIN_EPOCHS = 10
MIN_PATIENCE = 5
MAX_STEPS_PER_EXECUTION = 16
MAX_RECURRENT_STEPS = 64
RIDGE_MAX_SERIES = 10_000
RANDOM_KERNEL_MODELS = ("minirocket", "multirocket_hydra")

# The keys that may be "auto", by section.
AUTO_KEYS = {
    "data": ("validation_split",),
    "sampler": ("batch_size",),
    "train": ("steps", "monitor", "early_stopping_patience", "steps_per_execution"),
    "model": ("pool_size", "head"),
}


def is_auto(value) -> bool:
    return isinstance(value, str) and value == AUTO


def resolve_validation(config: dict, y_train: np.ndarray) -> float:
    """`data.validation_split` as a number: `0.1` when that leaves every class enough series, else `0`."""
    split = config["data"]["validation_split"]
    if not is_auto(split):
        return float(split)
    counts = np.bincount(y_train)
    smallest = int(counts[counts > 0].min())
    return VALIDATION_FRACTION if smallest * VALIDATION_FRACTION >= MIN_VALIDATION_PER_CLASS else 0.0


def resolve(config: dict, *, num_train: int, sequence_length: int, validation: bool) -> dict:
    """Every remaining `"auto"` of `config` as a number, given the training examples' count and length.

    Returns a new config; `config` is left as it was. `validation` says whether a validation split
    exists (after `resolve_validation`).
    """
    config = {section: dict(values) if isinstance(values, dict) else values for section, values in config.items()}
    sampler, train, model = config["sampler"], config["train"], config["model"]
    if is_auto(sampler["batch_size"]):
        # The random-kernel models' batches only chunk their transform (no gradient steps on small data).
        per_batch = num_train if model.get("name") in RANDOM_KERNEL_MODELS else num_train // 10
        sampler["batch_size"] = int(np.clip(per_batch, MIN_BATCH, MAX_BATCH))
    batch_size = int(sampler["batch_size"])
    steps_per_epoch = math.ceil(num_train / batch_size)
    if is_auto(train["steps"]):
        affordable = int(COMPUTE_BUDGET // (batch_size * sequence_length))
        train["steps"] = max(min(MAX_STEPS, affordable), MIN_EPOCHS * steps_per_epoch)
    if train["steps"]:
        train["epochs"] = math.ceil(int(train["steps"]) / steps_per_epoch)
        train["steps"] = train["epochs"] * steps_per_epoch
    if is_auto(train["monitor"]):
        train["monitor"] = "val_macro_f1" if validation else "loss"
    if not validation and train["monitor"].startswith("val_"):
        raise InputError(f"train.monitor = {train['monitor']!r} needs a validation split, but "
                         "data.validation_split is 0; monitor 'loss' or set a split")
    if is_auto(train["early_stopping_patience"]):
        train["early_stopping_patience"] = max(MIN_PATIENCE, train["epochs"] // 4)
    if is_auto(train["steps_per_execution"]):
        train["steps_per_execution"] = min(steps_per_epoch, MAX_STEPS_PER_EXECUTION)
    if model.get("name") in RANDOM_KERNEL_MODELS and is_auto(model.get("head", AUTO)):
        model["head"] = "ridge" if num_train < RIDGE_MAX_SERIES else "logistic"
    if is_auto(model.get("pool_size")):
        blocks = len(model.get("filters", (64, 64)))
        model["pool_size"] = max(1, math.ceil((sequence_length / MAX_RECURRENT_STEPS) ** (1 / blocks)))
    return config


def summary(config: dict, *, num_train: int, num_validation: int) -> str:
    """The one line a run prints before training: the data's size and every value that shapes training."""
    train, sampler, opt = config["train"], config["sampler"], config["optimizer"]
    steps_per_epoch = math.ceil(num_train / int(sampler["batch_size"]))
    selection = (f"best {train['monitor']} on {num_validation} validation series" if num_validation
                 else "no validation split (too few series per class): weights from the lowest training loss")
    parts = [
        f"{num_train} training examples",
        f"batch_size={sampler['batch_size']}",
        f"steps={train['epochs'] * steps_per_epoch} ({train['epochs']} epochs of {steps_per_epoch})",
        f"learning_rate={opt['learning_rate']:g} {opt['schedule']}",
        f"early_stopping_patience={train['early_stopping_patience']} epochs",
        f"normalize={config['preprocess']['normalize']}",
        selection,
    ]
    if config["model"].get("name") == "hybrid":  # its pooling is the one "auto" of [model]
        parts.insert(-1, f"pool_size={config['model']['pool_size']}")
    if config["model"].get("name") in RANDOM_KERNEL_MODELS:
        parts.insert(-1, f"head={config['model']['head']}")
    return "resolved: " + ", ".join(parts)
