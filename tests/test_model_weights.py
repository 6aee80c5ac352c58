"""Refactors of the builders keep seeded models identical, so the named experiments' results hold.

`keras.utils.set_random_seed` makes a model's initial weights a function of the layers created,
their order, names and initialisers. `data/model_weights.json` holds, for every builder with its
default arguments and for every shipped experiment's `[model]`, each weight's path, shape, sum and
sum of absolute values at seed 0, computed by the builders as they were before they were split
into encoders and one shared head (commit 86fca75). A change that reorders, renames or
re-initialises a layer changes these and fails here.

A TensorFlow or Keras upgrade may change the random streams themselves; then regenerate the file
with `weights_digest` at the last commit known to give the old results, never from a changed builder.
"""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from kseq import build_model
from kseq.config import load_config

EXPECTED = json.loads((Path(__file__).parent / "data" / "model_weights.json").read_text())
NUM_CLASSES = 5


def weights_digest(name, input_shape, **hp):
    """[path, shape, sum, sum of |w|] of every weight of the model built at seed 0."""
    keras.utils.set_random_seed(0)
    model = build_model(name, input_shape, NUM_CLASSES, **hp)
    return [[w.path, list(w.shape), float(np.sum(np.asarray(w, np.float64))),
             float(np.sum(np.abs(np.asarray(w, np.float64))))] for w in model.weights]


def assert_same_digest(actual, expected):
    # rtol 1e-5: recurrent kernels are orthogonal matrices from a float32 QR decomposition, whose
    # sums move in the 7th digit between TensorFlow builds (2.21: up to 8e-7 relative). A reordered,
    # renamed or re-initialised layer moves them in the first digits.
    assert [(path, shape) for path, shape, *_ in actual] == [(path, shape) for path, shape, *_ in expected]
    np.testing.assert_allclose([sums for *_, s, a in actual for sums in (s, a)],
                               [sums for *_, s, a in expected for sums in (s, a)], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("name", sorted(EXPECTED["builders"]))
def test_default_builder_weights_are_unchanged(name):
    assert_same_digest(weights_digest(name, (60, 3)), EXPECTED["builders"][name])


@pytest.mark.parametrize("experiment", sorted(EXPECTED["experiments"]))
def test_shipped_experiment_weights_are_unchanged(experiment):
    hp = dict(load_config(experiment)["model"])
    input_shape = (187, 1) if experiment.startswith("ecg") else (40, 12)
    assert_same_digest(weights_digest(hp.pop("name"), input_shape, **hp), EXPECTED["experiments"][experiment])


# The [model] tables of the shipped experiments whose keys changed, as kseq 0.1 shipped them.
KSEQ_0_1_MODEL_TABLES = {
    "ecg_gru": {"name": "rnn", "cell": "gru", "bidirectional": True, "layers": 2, "units": 32, "dropout": 0.1,
                "l2": 1e-4},
    "ecg_hybrid": {"name": "hybrid", "conv_filters": [32, 32], "kernel_size": 5, "pool_size": 2, "cell": "gru",
                   "bidirectional": True, "layers": 1, "units": 32, "dropout": 0.1, "l2": 1e-4},
    "pain_attention": {"name": "attention", "cell": "gru", "bidirectional": True, "layers": 1, "units": 64,
                       "dropout": 0.2, "l2": 1e-4},
    "pain_bigru": {"name": "rnn", "cell": "gru", "bidirectional": True, "layers": 3, "units": 100,
                   "dropout": 0.2, "l2": 1e-4},
    "pain_lstm": {"name": "rnn", "cell": "lstm", "layers": 2, "units": 64, "dropout": 0.2, "l2": 1e-4},
}


def layer_configs(model):
    return [layer.get_config() for layer in model.layers]


@pytest.mark.parametrize("experiment", sorted(KSEQ_0_1_MODEL_TABLES))
def test_kseq_0_1_model_tables_build_the_same_model_with_a_warning(experiment):
    hp = dict(KSEQ_0_1_MODEL_TABLES[experiment])
    name = hp.pop("name")
    with pytest.warns(FutureWarning) as caught:
        old = build_model(name, (40, 12), NUM_CLASSES, **hp)
    messages = [str(w.message) for w in caught]
    assert any(f"dropout={hp['dropout']} without 'recurrent_input_dropout' keeps its kseq 0.1 meaning" in m
               for m in messages)
    assert ("conv_filters" in hp) == any("'conv_filters' is deprecated; use 'filters'" in m for m in messages)
    current = dict(load_config(experiment)["model"])
    assert current.pop("name") == name
    assert layer_configs(old) == layer_configs(build_model(name, (40, 12), NUM_CLASSES, **current))
