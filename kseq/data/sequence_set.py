"""`SequenceSet`: the labelled (N, T, F) arrays every loader returns."""

from __future__ import annotations

import dataclasses

import numpy as np

from kseq.utils.padding import signal_lengths


@dataclasses.dataclass(frozen=True)
class SequenceSet:
    """Sequences `x` (N, T, F) float32 with integer labels `y` (N,) into `class_names`.

    A label of -1 marks an unlabelled sequence (a test file given without labels). `lengths`, when
    the source knows them (.ts files, npz `lengths_*` arrays, heartbeat CSVs), holds each series'
    own length; the steps after it are zero padding. `real_lengths()` falls back to the trailing
    all-zero steps where they are not known.
    """

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    lengths: np.ndarray | None = None
    feature_names: tuple[str, ...] | None = None

    def __post_init__(self):
        x = np.asarray(self.x, dtype=np.float32)
        if x.ndim == 2:
            x = x[:, :, None]
        if x.ndim != 3:
            raise ValueError(f"x must be (N, T) or (N, T, F); got shape {x.shape}")
        y = np.asarray(self.y).astype(np.int64)
        if y.shape != (x.shape[0],):
            raise ValueError(f"y must have shape ({x.shape[0]},); got {y.shape}")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        if len(y) and (y.min() < -1 or y.max() >= len(self.class_names)):
            raise ValueError(f"labels must lie in [0, {len(self.class_names)}) or be -1; got {y.min()}..{y.max()}")
        if self.feature_names is not None:
            names = tuple(str(n) for n in self.feature_names)
            if len(names) != x.shape[2]:
                raise ValueError(f"{len(names)} feature names for {x.shape[2]} features")
            object.__setattr__(self, "feature_names", names)
        if self.lengths is not None:
            lengths = np.asarray(self.lengths)
            if (lengths.shape != y.shape or not np.issubdtype(lengths.dtype, np.integer)
                    or (len(lengths) and (lengths.min() < 0 or lengths.max() > x.shape[1]))):
                raise ValueError(f"lengths must be {len(y)} integers in [0, {x.shape[1]}]; got {lengths.dtype} "
                                 f"{lengths.shape}")
            object.__setattr__(self, "lengths", lengths.astype(np.int64))

    def real_lengths(self) -> np.ndarray:
        """Each series' real steps, int64 (N,), each in [1, T]: `lengths` where known, else up to
        its last step that is not all zeros (the trailing zeros are padding, as the models that
        mask padding decide)."""
        lengths = self.lengths if self.lengths is not None else signal_lengths(self.x)
        return np.clip(lengths, 1, max(self.x.shape[1], 1))

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index) -> "SequenceSet":
        """The rows at `index`, keeping class and feature names."""
        lengths = None if self.lengths is None else self.lengths[index]
        return dataclasses.replace(self, x=self.x[index], y=self.y[index], lengths=lengths)


@dataclasses.dataclass(frozen=True)
class Splits:
    """The splits one run uses, as `kseq.training.trainer.prepare_data` hands them on.

    `fit` trains the weights, `validation` (None without one) early-stops and fits the decisions,
    `test` is reported. `transform` is the feature transform fitted on `fit` (None when no feature
    step is configured) and `fit_index` the rows of the training set that `fit` holds (None for
    shards, which are split on disk). The splits are `SequenceSet`s, or `ShardSplit`s streamed from
    a shard folder.
    """

    fit: SequenceSet
    validation: SequenceSet | None
    test: SequenceSet | None
    transform: dict | None = None
    fit_index: np.ndarray | None = None
