"""From a config's `[data]` table to the (train, test) `SequenceSet` pair, and stratified splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kseq.data import sources, synthetic
from kseq.data.sequence_set import SequenceSet
from kseq.errors import InputError

SOURCES = ("synthetic_ecg", "synthetic_pain", "heartbeat_csv", "pain_csv", "npz")


def stratified_split(data: SequenceSet, fraction: float, seed: int) -> tuple[SequenceSet, SequenceSet]:
    """Split off `fraction` of every class (at least one sample of a class with two or more)."""
    rng = np.random.default_rng(seed)
    held_out = []
    for c in np.unique(data.y):
        members = rng.permutation(np.flatnonzero(data.y == c))
        take = int(round(fraction * len(members)))
        if len(members) >= 2:
            take = min(max(take, 1), len(members) - 1)
        held_out.append(members[:take])
    held = np.sort(np.concatenate(held_out))
    kept = np.setdiff1d(np.arange(len(data)), held)
    return data.subset(kept), data.subset(held)


def load_datasets(data: dict, seed: int) -> tuple[SequenceSet, SequenceSet]:
    """Load the train and test sets a `[data]` table describes.

    A real training file without a test file is split, stratified, by `data.test_split`.
    """
    source = data["source"]
    if source == "synthetic_ecg":
        return synthetic.make_heartbeats(scale=data["scale"], seed=seed)
    if source == "synthetic_pain":
        return synthetic.make_pain(seed=seed)
    if source not in SOURCES:
        raise InputError(f"data.source: unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    if not data["path"]:
        raise InputError(f"data.path: source {source!r} needs a file (--data PATH)")
    if source == "npz":
        return sources.load_npz(data["path"])
    names = {"class_names": tuple(data["class_names"])} if data.get("class_names") else {}
    load = {
        "heartbeat_csv": lambda path, labels: sources.load_heartbeat_csv(path, **names),
        "pain_csv": lambda path, labels: sources.load_pain_csv(path, labels or None, **names),
    }[source]
    train = load(data["path"], data["labels"])
    if data["test_path"]:
        return train, load(data["test_path"], data["test_labels"])
    return stratified_split(train, data["test_split"], seed)
