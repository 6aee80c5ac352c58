"""Embedded synthetic datasets shaped like the real ones, so every experiment runs with no download.

`make_heartbeats` imitates the Kaggle MIT-BIH heartbeats (5 imbalanced classes, 187 samples,
zero-padded tails, a few NaN gaps); `make_pain` imitates the long-format pain-level data. Both are
seeded and vectorised, and the writers produce the real file formats for the loaders and benchmarks.
"""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.signal

from kseq.data.sequence_set import SequenceSet
from kseq.data.sources import (
    HEARTBEAT_CLASSES,
    HEARTBEAT_SAMPLES,
    PAIN_CLASSES,
    PAIN_STEPS,
    parse_pain_frames,
    signal_lengths,
)
from kseq.utils.errors import InputError

# Real MIT-BIH class counts (N, S, V, F, Q) of the Kaggle train and test files.
HEARTBEAT_COUNTS = {"train": (72471, 2223, 5788, 641, 6431), "test": (18118, 556, 1448, 162, 1608)}
# Real pain-level training counts (no_pain, low_pain, high_pain).
PAIN_COUNTS = (511, 94, 56)

# Per-beat morphology: parameter -> (mean per class N, S, V, F, Q), (sd per class). Times are in
# samples at 125 Hz from the beat's R peak; amplitudes are relative to a normal R wave of 1.
_MORPHOLOGY = {
    "r_amp": ((1.0, 1.0, 1.35, 1.15, 1.1), (0.08, 0.1, 0.25, 0.12, 0.2)),
    "r_width": ((1.25, 1.15, 3.2, 2.0, 2.4), (0.2, 0.2, 0.6, 0.35, 0.5)),
    "s_amp": ((-0.25, -0.25, -0.5, -0.38, -0.45), (0.08, 0.08, 0.15, 0.1, 0.15)),
    "t_pos": ((34.0, 29.0, 42.0, 38.0, 40.0), (4.0, 4.0, 6.0, 5.0, 6.0)),
    "t_width": ((7.0, 6.0, 10.0, 8.5, 9.0), (1.2, 1.2, 2.0, 1.5, 2.0)),
    "t_amp": ((0.2, 0.12, -0.25, 0.0, -0.12), (0.06, 0.06, 0.08, 0.07, 0.1)),
    "next_rr": ((1.0, 1.22, 1.28, 1.12, 1.0), (0.04, 0.07, 0.08, 0.06, 0.02)),
    "p_amp": ((0.09, -0.04, 0.08, 0.08, 0.0), (0.03, 0.05, 0.03, 0.03, 0.02)),
    "spike_amp": ((0.0, 0.0, 0.0, 0.0, 0.6), (0.0, 0.0, 0.0, 0.0, 0.25)),
    "noise": ((0.012, 0.012, 0.014, 0.014, 0.03), (0.004, 0.004, 0.005, 0.005, 0.02)),
}
_NAN_SHARE = 0.05  # beats with a run of 2..8 missing samples inside the signal


def make_heartbeats(scale=1.0, seed=0) -> tuple[SequenceSet, SequenceSet]:
    """Synthetic MIT-BIH-shaped heartbeats: `(train, test)` with the real class proportions.

    Each beat starts at an R peak and is built from Gaussian P/QRS/T waves with class-specific
    morphology (S: narrow QRS, odd P, late next beat; V: wide QRS, inverted T, compensatory
    pause; F: between N and V; Q: paced and noisy), per-beat variation, noise and baseline
    wander, then min-max normalised to [0, 1] over its signal and zero-padded to 187 samples.
    About 5% of beats carry a NaN gap of 2-8 samples. The classes overlap: the seed CNN reaches
    a macro-F1 near 0.9 (F the hardest), not 1.0. `scale` in (0, 1] draws a stratified fraction
    of both splits, at least one beat per class.
    """
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not 0 < scale <= 1:
        raise InputError(f"data.scale must be a number in (0, 1]; got {scale!r}")
    train_rng, test_rng = np.random.default_rng(seed).spawn(2)
    return tuple(
        _heartbeat_split(np.maximum(1, np.round(scale * np.array(counts))).astype(int), rng)
        for counts, rng in ((HEARTBEAT_COUNTS["train"], train_rng), (HEARTBEAT_COUNTS["test"], test_rng))
    )


def _heartbeat_split(counts: np.ndarray, rng: np.random.Generator) -> SequenceSet:
    """`counts[c]` beats of each class, shuffled, as a SequenceSet with lengths."""
    y = rng.permutation(np.repeat(np.arange(len(counts)), counts))
    x, signal = _beats(y, rng)
    _punch_gaps(x, signal, rng)
    return SequenceSet(x, y, HEARTBEAT_CLASSES, lengths=signal_lengths(x))


def _beats(y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Beats (N, 187) float32 in [0, 1] with zero tails for labels `y`, and their signal lengths."""
    n = len(y)
    p = {name: np.asarray(mean)[y] + np.asarray(sd)[y] * rng.standard_normal(n)
         for name, (mean, sd) in _MORPHOLOGY.items()}
    # The Kaggle beats span 1.2 x the median RR interval of their 10 s window.
    rr = 88.0 * np.exp(0.22 * rng.standard_normal(n))
    signal = np.clip(np.round(1.2 * rr), 50, HEARTBEAT_SAMPLES).astype(int)
    width = np.maximum(p["r_width"], 0.6)
    r_at = rng.uniform(0.0, 1.0, n)
    next_r = rr * p["next_rr"]
    waves = (
        (p["r_amp"], r_at, width),  # this beat's QRS ...
        (p["s_amp"], r_at + 2.2 * width, 0.9 * width),
        (p["t_amp"], p["t_pos"] * np.sqrt(rr / 88.0), np.maximum(p["t_width"], 3.0)),  # ... its T wave
        (p["p_amp"], next_r - rng.normal(18.0, 2.5, n), np.full(n, 3.5)),  # the next beat's P ...
        (p["spike_amp"], next_r - 4.0, np.full(n, 0.5)),  # ... pacing spike (Q only) ...
        (rng.normal(0.93, 0.08, n), next_r, np.full(n, 1.25)),  # ... and its normal QRS
        (np.full(n, -0.25), next_r + 2.8, np.full(n, 1.1)),
    )
    t = np.arange(HEARTBEAT_SAMPLES, dtype=np.float32)
    x = np.zeros((n, HEARTBEAT_SAMPLES), np.float32)
    for amp, centre, w in waves:
        x += amp.astype(np.float32)[:, None] * _bump(t, centre, w)
    x += _wander(t, n, rng) + np.abs(p["noise"]).astype(np.float32)[:, None] * rng.standard_normal(x.shape, np.float32)
    return _normalise(x, signal), signal


def _bump(t: np.ndarray, centre: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Unit Gaussian bumps, one row per beat: exp(-((t - centre) / width)^2 / 2)."""
    z = (t[None, :] - centre.astype(np.float32)[:, None]) / width.astype(np.float32)[:, None]
    return np.exp(-0.5 * z * z)


def _wander(t: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Slow baseline wander: one random sinusoid (period 150-500 samples) per beat."""
    amp = np.abs(rng.normal(0.05, 0.03, n)).astype(np.float32)[:, None]
    period = rng.uniform(150, 500, n).astype(np.float32)[:, None]
    phase = rng.uniform(0, 2 * np.pi, n).astype(np.float32)[:, None]
    return amp * np.sin(2 * np.pi * t[None, :] / period + phase)


def _normalise(x: np.ndarray, signal: np.ndarray) -> np.ndarray:
    """Min-max normalise each row over its first `signal` samples and zero the tail, in place."""
    inside = np.arange(x.shape[1])[None, :] < signal[:, None]
    low = np.where(inside, x, np.inf).min(axis=1, keepdims=True)
    high = np.where(inside, x, -np.inf).max(axis=1, keepdims=True)
    x -= low
    x /= high - low
    x[~inside] = 0.0
    return x


def _punch_gaps(x: np.ndarray, signal: np.ndarray, rng: np.random.Generator) -> None:
    """Set a run of 2-8 samples to NaN in ~5% of beats, never the first or last two signal samples.

    Keeping two clear of the end keeps the gap inside `signal_lengths` even when the last sample
    is the beat's minimum (exactly 0 after normalising).
    """
    rows = np.flatnonzero(rng.random(len(x)) < _NAN_SHARE)
    size = rng.integers(2, 9, len(rows))
    start = 1 + (rng.random(len(rows)) * (signal[rows] - 2 - size)).astype(int)
    t = np.arange(x.shape[1])[None, :]
    gaps = (t >= start[:, None]) & (t < (start + size)[:, None])
    x[rows] = np.where(gaps, np.nan, x[rows])


def write_heartbeat_csv(seq_set: SequenceSet, path) -> Path:
    """Write `seq_set` in the Kaggle heartbeat format that `load_heartbeat_csv` reads back.

    No header; per line 187 samples then the label, all as `%.18e`. The Kaggle files have no
    NaN; gaps here are written as `nan`, which the loader reads back as NaN.
    """
    if seq_set.x.shape[1:] != (HEARTBEAT_SAMPLES, 1):
        raise InputError(f"write_heartbeat_csv needs x of shape (N, {HEARTBEAT_SAMPLES}, 1); got {seq_set.x.shape}")
    if len(seq_set) and seq_set.y.min() < 0:
        raise InputError("write_heartbeat_csv needs every sequence labelled; y has -1 (unlabelled)")
    path = Path(path)
    rows = np.column_stack([seq_set.x[:, :, 0], seq_set.y])
    np.savetxt(path, rows, fmt="%.18e", delimiter=",")
    return path


# --- Pain-level data -------------------------------------------------------------------------

_JOINT_SCALES = (1e-3, 1.0, 100.0)  # joints 00-09, 10-19, 20-29
_SIGNAL_JOINTS = np.r_[0:6, 12:18, 20:26]  # joints that carry the class-dependent oscillation
_LIMBS = {"n_legs": "one+peg_leg", "n_hands": "one+hook_hand", "n_eyes": "one+eye_patch"}
_PIRATE_SHARE = 0.03


def make_pain(seed=0, n_test=200) -> tuple[SequenceSet, SequenceSet]:
    """Synthetic pain-level data: `(train, test)` of (N, 160, 38) with labels.

    661 training sequences (511 / 94 / 56 no / low / high pain) and `n_test` (>= 3) test ones in
    the same proportions, generated as the real long-format tables and parsed by `parse_pain_frames`,
    the code path of `load_pain_csv`.
    """
    frames = _pain_frames(seed, n_test)
    return tuple(
        parse_pain_frames(frames[f"{split}_features"], frames[f"{split}_labels"],
                          features_source=f"make_pain {split} features", labels_source=f"make_pain {split} labels")
        for split in ("train", "test")
    )


def write_pain_csv(directory, seed=0, n_test=200) -> dict[str, Path]:
    """Write the `make_pain` data as the real CSV files; returns their paths by name.

    Names: `train_features`, `train_labels`, `test_features`, `test_labels` (files `<name>.csv`).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, frame in _pain_frames(seed, n_test).items():
        paths[name] = directory / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    return paths


def _pain_frames(seed, n_test) -> dict[str, pd.DataFrame]:
    """The long-format feature and label tables of both splits, keyed like `write_pain_csv`."""
    if isinstance(n_test, bool) or not isinstance(n_test, numbers.Integral) or n_test < len(PAIN_CLASSES):
        raise InputError(f"data.n_test must be an integer >= {len(PAIN_CLASSES)}; got {n_test!r}")
    train_rng, test_rng = np.random.default_rng(seed).spawn(2)
    frames = {}
    for split, counts, rng in (("train", PAIN_COUNTS, train_rng), ("test", _proportional(n_test), test_rng)):
        frames[f"{split}_features"], frames[f"{split}_labels"] = _pain_split(np.array(counts), rng)
    return frames


def _proportional(total: int) -> np.ndarray:
    """`total` split over the classes in the real training proportions (largest remainder, >= 1 each)."""
    share = total * np.array(PAIN_COUNTS) / sum(PAIN_COUNTS)
    counts = np.floor(share).astype(int)
    counts[np.argsort(counts - share)[: total - counts.sum()]] += 1
    for empty in np.flatnonzero(counts == 0):
        counts[counts.argmax()] -= 1
        counts[empty] = 1
    return counts


def _pain_split(counts: np.ndarray, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feature and label tables for `counts[c]` sequences of each pain class, shuffled."""
    y = rng.permutation(np.repeat(np.arange(len(counts)), counts))
    n = len(y)
    columns = {
        "sample_index": np.repeat(np.arange(n), PAIN_STEPS),
        "time": np.tile(np.arange(PAIN_STEPS), n),
    }
    surveys = _surveys(y, rng)
    for i in range(surveys.shape[2]):
        columns[f"pain_survey_{i + 1}"] = surveys[:, :, i].ravel()
    pirate = np.repeat(rng.random(n) < _PIRATE_SHARE, PAIN_STEPS)
    for column, other in _LIMBS.items():
        columns[column] = np.where(pirate, other, "two")
    joints = _joints(y, rng)
    for j in range(joints.shape[2]):
        columns[f"joint_{j:02d}"] = joints[:, :, j].ravel()
    labels = pd.DataFrame({"sample_index": np.arange(n), "label": np.array(PAIN_CLASSES)[y]})
    return pd.DataFrame(columns), labels


def _surveys(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Four survey answers in 0..2 per step (N, 160, 4): a class-shifted level per sequence plus jitter."""
    level = 0.6 + 0.4 * y[:, None, None] + 0.5 * rng.standard_normal((len(y), 1, 4))
    jitter = 0.3 * rng.standard_normal((len(y), PAIN_STEPS, 4))
    return np.clip(np.round(level + jitter), 0, 2).astype(np.int64)


def _joints(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Joint readings (N, 160, 31) float32: AR(1) noise, a class-dependent oscillation in some
    joints, groups scaled 1e-3 / 1 / 100, joint_11 tracking joint_10 and joint_30 constant."""
    n = len(y)
    noise = scipy.signal.lfilter([1.0], [1.0, -0.8], rng.standard_normal((n, PAIN_STEPS, 30)), axis=1)  # AR(1)
    amp = (1.0 + 0.6 * y + 0.25 * rng.standard_normal(n))[:, None, None]
    cycles = np.clip(2.0 + 1.2 * y + 0.5 * rng.standard_normal(n), 0.5, None)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, (n, 1, len(_SIGNAL_JOINTS)))
    steps = np.arange(PAIN_STEPS)[None, :, None]
    joints = 0.6 * noise + rng.uniform(-1, 1, (1, 1, 30))
    joints[:, :, _SIGNAL_JOINTS] += amp * np.sin(2 * np.pi * cycles * steps / PAIN_STEPS + phase)
    joints[:, :, 11] = 0.9 * joints[:, :, 10] + 0.15 * rng.standard_normal((n, PAIN_STEPS))
    joints *= np.repeat(_JOINT_SCALES, 10)
    return np.concatenate([joints, np.full((n, PAIN_STEPS, 1), 0.5)], axis=2).astype(np.float32)
