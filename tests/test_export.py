import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from kseq import build_model
from kseq.serving import export
from kseq.models.decision import Decision
from kseq.models.preprocessing import sequence_classifier
from kseq.serving.runtime import ServingFunction
from kseq.training import run_folder
from kseq.utils.files import write_json


def softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def served_decision(logits, metrics):
    """NumPy reference of a run's export: probabilities softmax(z / T); class_id argmax(log p + offsets);
    and which rows are decided by a margin wide enough to compare float32 against float64."""
    decision = metrics["decisions"]
    temperature, offsets = decision["temperature"], np.array(list(decision["offsets"].values()))
    probabilities = softmax(logits.astype(np.float64) / temperature)
    scores = np.sort(np.log(probabilities) + offsets, axis=-1)
    clear = scores[:, -1] - scores[:, -2] > 1e-4
    return probabilities, (np.log(probabilities) + offsets).argmax(-1), clear


def test_serving_matches_keras_model_in_a_tensorflow_only_process(tiny_run, tmp_path):
    x = np.random.default_rng(1).random((16, 187, 1), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    # TensorFlow 2.21 imports keras when it is installed; blocking it (and kseq) proves serving needs neither.
    script = textwrap.dedent(f"""
        import sys
        sys.modules["keras"] = sys.modules["kseq"] = None
        import numpy as np, tensorflow as tf
        serve = tf.saved_model.load({str(tiny_run.directory / "serving")!r}).signatures["serving_default"]
        out = serve(sequence=tf.constant(np.load({str(tmp_path / "x.npy")!r})))
        np.save({str(tmp_path / "p.npy")!r}, out["probabilities"].numpy())
        np.save({str(tmp_path / "c.npy")!r}, out["class_id"].numpy())
        print([n.decode() for n in out["class_name"].numpy()[:3]])
        assert not any(name.split(".")[0] in ("keras", "kseq") for name, m in sys.modules.items() if m is not None)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tiny_run.directory / "metrics.json").read_text())
    expected, class_id, clear = served_decision(tiny_run.model.predict(x, verbose=0), metrics)
    probabilities = np.load(tmp_path / "p.npy")
    assert np.abs(probabilities - expected).max() <= 1e-5
    assert clear.sum() >= 12
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy")[clear], class_id[clear])
    names = (tiny_run.directory / "serving" / "assets" / "class_names.txt").read_text().split()
    assert names == ["N", "S", "V", "F", "Q"]


def test_litert_model_serves_without_tensorflow(tiny_run, tmp_path):
    x = np.random.default_rng(2).random((16, 187, 1), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["tensorflow"] = sys.modules["keras"] = sys.modules["kseq"] = None
        import numpy as np
        from ai_edge_litert.interpreter import Interpreter
        model = Interpreter(model_path={str(tiny_run.directory / "serving" / export.LITERT_MODEL)!r})
        out = model.get_signature_runner("serving_default")(sequence=np.load({str(tmp_path / "x.npy")!r}))
        np.save({str(tmp_path / "p.npy")!r}, out["probabilities"])
        print(" ".join(n.decode() for n in out["class_name"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tiny_run.directory / "metrics.json").read_text())
    expected, class_id, clear = served_decision(tiny_run.model.predict(x, verbose=0), metrics)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, atol=1e-5)
    served = np.array(done.stdout.split())
    assert clear.sum() >= 12
    np.testing.assert_array_equal(served[clear], np.array(["N", "S", "V", "F", "Q"])[class_id[clear]])


def test_decision_layer_rules_both_exports(tmp_path):
    import keras

    keras.utils.set_random_seed(0)  # the test's own weights, whatever ran before it in this process
    model = build_model("cnn", (24, 2), 3, filters=[4], dense_units=[8])
    x = np.random.default_rng(3).normal(size=(64, 24, 2)).astype("float32")
    logits = model.predict(x, verbose=0).astype(np.float64)
    # Offsets that centre each class's mean tempered logit, so they move the decisions of an
    # untrained model, whichever class its random weights favour.
    offsets = np.round(-(logits / 2.5).mean(axis=0), 2)
    decision = Decision(temperature=2.5, offsets=offsets.tolist())
    export.export_serving(model, tmp_path / "serving", ["a", "b", "c"], decision)
    probabilities = softmax(logits / 2.5)
    class_id = (np.log(probabilities) + offsets).argmax(-1)
    assert (class_id != logits.argmax(-1)).any()  # the offsets change some decisions
    for runtime in ("tensorflow", "litert"):
        out = ServingFunction(tmp_path / "serving", runtime=runtime)(x)
        np.testing.assert_allclose(out["probabilities"], probabilities, atol=1e-5)
        np.testing.assert_array_equal(out["class_id"], class_id)
        np.testing.assert_array_equal(out["class_name"].astype(str), np.array(["a", "b", "c"])[class_id])


def test_the_saved_model_stores_each_weight_once(tmp_path):
    """The SavedModel's checkpoint holds as many values as the model and its decision have, not
    twice as many (an archive that also tracks the model stores each variable a second time,
    keras-team/keras#23553), and it still answers as the model does."""
    import tensorflow as tf

    model = build_model("resnet", (None, 2), 3, filters=[4, 8], kernel_sizes=[3])
    decision = Decision(temperature=2.0, offsets=[0.1, 0.0, -0.1])
    export.export_serving(model, tmp_path / "serving", ["a", "b", "c"], decision)
    stored = tf.train.list_variables(str(tmp_path / "serving" / "variables" / "variables"))
    values = sum(int(np.prod(shape)) for name, shape in stored if not name.startswith("_CHECKPOINTABLE"))
    decision_values = sum(int(np.prod(w.shape)) for w in decision.weights)
    assert values == model.count_params() + decision_values
    x = np.random.default_rng(0).normal(size=(5, 30, 2)).astype("float32")
    expected = softmax(model.predict(x, verbose=0).astype(np.float64) / 2.0)
    np.testing.assert_allclose(ServingFunction(tmp_path / "serving")(x)["probabilities"], expected, atol=1e-5)


def _padded_batch(batch, steps, features, seed):
    """Random sequences, every other one ending in all-zero steps (the padding recurrent models mask)."""
    x = np.random.default_rng(seed).normal(size=(batch, steps, features)).astype(np.float32)
    x[::2, steps * 2 // 3:] = 0
    return x


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_recurrent_exports_get_a_batch_1_litert_model_that_answers_as_keras(tmp_path, cell):
    # The pain models' shape: a masked bidirectional stack on sliding windows, logits averaged.
    window_model = build_model("rnn", (8, 3), 3, cell=cell, bidirectional=True, layers=2, units=5)
    model = sequence_classifier(window_model, 20, 3, window=8, stride=4)
    export.export_serving(model, tmp_path / "serving", ["a", "b", "c"])
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(tmp_path / "serving" / export.LITERT_MODEL)).get_signature_runner()
    assert list(runner.get_input_details()["sequence"]["shape_signature"]) == [1, 20, 3]
    x = _padded_batch(4, 20, 3, seed=3)
    expected = softmax(model.predict(x, verbose=0))
    for i in range(len(x)):  # padded and unpadded sequences
        out = runner(sequence=x[i : i + 1])
        assert np.abs(out["probabilities"] - expected[i : i + 1]).max() <= 1e-5
        assert out["class_name"][0].decode() == "abc"[expected[i].argmax()]


def test_recurrent_models_with_a_variable_time_axis_export_no_litert_model(tmp_path):
    model = build_model("rnn", (None, 2), 3, units=4, layers=1)
    export.export_serving(model, tmp_path / "serving", ["a", "b", "c"])
    assert (tmp_path / "serving" / "saved_model.pb").is_file()
    assert not (tmp_path / "serving" / export.LITERT_MODEL).exists()
    # Asked anyway, the converter fails on the variable-batch loop: a warning, no file, the SavedModel untouched.
    with pytest.warns(UserWarning, match="no LiteRT model written"):
        assert export.export_litert(tmp_path / "serving") is None
    assert not (tmp_path / "serving" / export.LITERT_MODEL).exists()


def test_finalize_never_replaces_an_existing_run(tmp_path):
    partial = tmp_path / "exp" / ".partial-r1"
    partial.mkdir(parents=True)
    (tmp_path / "exp" / "r1").mkdir()
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        run_folder.finalize(partial)
    assert partial.exists()


def test_start_run_writes_config_and_latest_partial_finds_it(tmp_path, tiny_config):
    partial = run_folder.start_run(tmp_path, "ecg_cnn", tiny_config)
    assert partial.name.startswith(".partial-")
    assert (partial / "config.toml").read_text().startswith("[experiment]")
    assert run_folder.latest_partial(tmp_path, "ecg_cnn") == partial
    assert run_folder.finalize(partial).name == partial.name.removeprefix(".partial-")
    assert run_folder.latest_partial(tmp_path, "ecg_cnn") is None


def test_write_text_leaves_no_temporary_file(tmp_path):
    write_json(tmp_path / "m.json", {"a": np.float32(0.5), "b": [1, 2]})
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
    assert (tmp_path / "m.json").read_text().startswith('{\n  "a": 0.5')
