"""Shared fixtures: one tiny ECG run trained once per session and reused by many tests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from kseq.config import load_config

# Small enough for 2 cores: ~1% of the embedded heartbeats, a narrow CNN, one epoch.
TINY_ECG = [
    "data.scale=0.01",
    "model.filters=[4, 8]",
    "model.dense_units=[16, 8]",
    "sampler.batch_size=64",
    "train.epochs=1",
    "train.verbose=0",
]


@pytest.fixture
def tiny_config():
    """A fresh tiny `ecg_cnn` config; tests may change it."""
    return load_config("ecg_cnn", TINY_ECG)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One finished tiny `ecg_cnn` run (its folder, metrics and model)."""
    from kseq.training import train

    return train(load_config("ecg_cnn", TINY_ECG), tmp_path_factory.mktemp("runs"))
