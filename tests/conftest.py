"""Shared fixtures: one tiny ECG run trained once per session and reused by many tests, and the
callback that interrupts a run for the resume tests."""

import gzip
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
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


DATA = Path(__file__).parent / "data"


class InterruptAfter(keras.callbacks.Callback):
    """Interrupts training at the end of epoch `epoch`, as Ctrl-C would, leaving the run's partial folder."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.fixture(scope="session")
def real_heartbeat_csv(tmp_path_factory):
    """200 real MIT-BIH test beats in the Kaggle CSV format, unpacked from tests/data once per session."""
    path = tmp_path_factory.mktemp("real") / "mitbih_test_rows1-200.csv"
    path.write_bytes(gzip.decompress((DATA / "mitbih_test_rows1-200.csv.gz").read_bytes()))
    return path


@pytest.fixture
def tiny_config():
    """A fresh tiny `ecg_cnn` config; tests may change it."""
    return load_config("ecg_cnn", TINY_ECG)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One finished tiny `ecg_cnn` run (its folder, metrics and model)."""
    from kseq.training.trainer import train

    return train(load_config("ecg_cnn", TINY_ECG), tmp_path_factory.mktemp("runs"))
