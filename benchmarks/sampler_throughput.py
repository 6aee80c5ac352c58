"""Throughput of kseq's samplers on MIT-BIH-shaped data, beside a plain shuffled pipeline and the builtin.

    python benchmarks/sampler_throughput.py [--quick]

Measures, in one run: samples/s of `from_tensor_slices((x, y)).shuffle(N).batch(256)`, of every kseq
sampler and of `Dataset.rejection_resample` (on a few batches: it is slow); then the time of training
the seed CNN for a fixed number of steps on `rejection` batches over that on `none` batches,
alternating the two. The last line reads
`rejection_vs_plain=<ratio> rejection_vs_builtin=<ratio> epoch_ratio=<ratio>`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import keras
import numpy as np
import tensorflow as tf
from machine import describe

import kseq
from kseq.data.pipeline import SAMPLERS, make_train_dataset

# Class sizes of the MIT-BIH arrhythmia training split (Kaggle heartbeat CSV): N, S, V, F, Q.
MITBIH_COUNTS = (72_471, 2_223, 5_788, 641, 6_431)
LENGTH = 187
BATCH = 256


def mitbih_shaped(scale: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random float32 beats `(N, 187, 1)` with MIT-BIH class proportions (scaled by `scale`)."""
    rng = np.random.default_rng(seed)
    counts = [max(1, round(c * scale)) for c in MITBIH_COUNTS]
    y = rng.permutation(np.repeat(np.arange(len(counts)), counts))
    x = rng.standard_normal((len(y), LENGTH, 1), dtype=np.float32)
    return x, y


def samples_per_second(dataset: tf.data.Dataset) -> float:
    """Samples per second over one full iteration of `dataset`."""
    start, seen = time.perf_counter(), 0
    for batch in dataset:
        seen += batch[1].shape[0]
    return seen / (time.perf_counter() - start)


def best_rates(datasets: dict[str, tf.data.Dataset], rounds: int) -> dict[str, float]:
    """Each dataset's best epoch rate over `rounds`, taking turns so that load on the machine hits all alike."""
    rates = dict.fromkeys(datasets, 0.0)
    for _ in range(rounds):
        for name, dataset in datasets.items():
            rates[name] = max(rates[name], samples_per_second(dataset))
    return rates


def builtin_rejection(x: np.ndarray, y: np.ndarray, seed: int = 0) -> tf.data.Dataset:
    """`Dataset.rejection_resample` towards uniform, given the true class distribution (its fast path)."""
    counts = np.bincount(y)
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(y), seed=seed)
        .repeat()
        .rejection_resample(
            lambda _, label: tf.cast(label, tf.int32),
            target_dist=np.full(len(counts), 1 / len(counts)),
            initial_dist=counts / counts.sum(),
            seed=seed,
        )
        .map(lambda _, example: example)
        .batch(BATCH)
    )


def training_seconds(x, y, steps: int, fits: int) -> dict[str, list[float]]:
    """Times of `fits` fits of `steps` CNN training steps each on `none` and on `rejection` batches, alternated."""
    model = kseq.build_model("cnn", x.shape[1:], int(y.max()) + 1)
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    datasets = {name: make_train_dataset(x, y, sampler=name, batch_size=BATCH) for name in ("none", "rejection")}
    for dataset in datasets.values():  # warm up: trace the train step for each element spec
        model.fit(dataset, epochs=1, steps_per_epoch=min(steps, 5), shuffle=False, verbose=0)
    times = {name: [] for name in datasets}
    for fit in range(fits):
        for name in sorted(datasets, reverse=fit % 2 == 1):
            start = time.perf_counter()
            model.fit(datasets[name], epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
            times[name].append(time.perf_counter() - start)
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the data and a few steps: a smoke test")
    args = parser.parse_args(argv)
    print(describe(), flush=True)
    scale, epochs, builtin_batches, steps, fits = (0.1, 2, 2, 10, 1) if args.quick else (1.0, 5, 20, 150, 5)

    x, y = mitbih_shaped(scale)
    print(f"data: x {x.shape} float32, class counts {np.bincount(y).tolist()}, batch {BATCH}")
    datasets = {"plain shuffle(N).batch": tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y)).batch(BATCH)}
    for name in SAMPLERS:
        datasets[f"kseq {name}"] = make_train_dataset(x, y, sampler=name, batch_size=BATCH)
    rates = best_rates(datasets, rounds=epochs)
    builtin_name = f"Dataset.rejection_resample ({builtin_batches} batches)"
    rates[builtin_name] = samples_per_second(builtin_rejection(x, y).take(builtin_batches))
    for name, rate in rates.items():
        print(f"{name:<44} {rate:>14,.0f} samples/s")

    seconds = training_seconds(x, y, steps, fits)
    for name, values in seconds.items():
        value = statistics.median(values)
        each = ", ".join(f"{v:.2f}" for v in values)
        rate = steps * BATCH / value
        print(f"cnn fit, {steps} steps on {name:<10} {value:>6.2f} s median ({rate:,.0f} samples/s); each: {each}")
    # Pair each rejection fit with the none fit beside it, so slow drifts in machine load cancel.
    epoch_ratio = statistics.median(r / n for r, n in zip(seconds["rejection"], seconds["none"]))

    rejection = rates["kseq rejection"]
    builtin = rates[builtin_name]
    print(
        f"rejection_vs_plain={rejection / rates['plain shuffle(N).batch']:.2f} "
        f"rejection_vs_builtin={rejection / builtin:.0f} "
        f"epoch_ratio={epoch_ratio:.3f}"
    )


if __name__ == "__main__":
    main()
