"""kseq.serving.runtime: thread configuration and the serving caller (LiteRT checked against TensorFlow).

Thread pools can only be set before TensorFlow's runtime starts, so those checks run in a
fresh interpreter.
"""

import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pytest
import tensorflow as tf

import kseq
from kseq.serving import export, runtime


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_configure_threads_serve_sets_one_intra_op_thread_before_start():
    out = _run("""
        from kseq.serving import runtime
        print(runtime.configure_threads("serve"))
        print(runtime.configure_threads("serve"))  # idempotent
    """)
    # One intra-op thread; the inter-op pool keeps TensorFlow's default (0: one per core).
    assert out.splitlines() == ["{'intra_op': 1, 'inter_op': 0}"] * 2


def test_configure_threads_after_start_raises_clearly():
    out = _run("""
        import tensorflow as tf
        from kseq.serving import runtime
        tf.constant(1.0) + 1.0
        print(runtime.configure_threads("train"))  # defaults: nothing to change, no error
        try:
            runtime.configure_threads("serve")
        except RuntimeError as e:
            print("error:", "already started" in str(e))
    """)
    assert out.splitlines()[-1] == "error: True"


def test_unknown_role():
    with pytest.raises(ValueError, match="unknown role"):
        runtime.configure_threads("inference")


@pytest.fixture(scope="module")
def serving_dir(tmp_path_factory):
    model = kseq.build_model("cnn", (187, 1), 5, filters=(4, 8), dense_units=(16, 8))
    path = tmp_path_factory.mktemp("serving") / "serving"
    export.export_serving(model, path, ["N", "S", "V", "F", "Q"])
    return path


@pytest.mark.parametrize("batch", [1, 7])
def test_litert_answers_as_the_savedmodel_on_tensorflow(serving_dir, batch):
    litert = runtime.ServingFunction(serving_dir)
    tensorflow = runtime.ServingFunction(serving_dir, runtime="tensorflow")
    assert (litert.runtime, tensorflow.runtime) == ("litert", "tensorflow")
    x = np.random.default_rng(0).random((batch, 187, 1), dtype=np.float32)
    a, b = litert(x), tensorflow(x)
    assert set(a) == set(b) == {"probabilities", "class_id", "class_name"}
    np.testing.assert_allclose(a["probabilities"], b["probabilities"], atol=1e-6)
    np.testing.assert_array_equal(a["class_id"], b["class_id"])
    np.testing.assert_array_equal(a["class_name"], b["class_name"])
    assert a["probabilities"].shape == (batch, 5) and a["class_id"].dtype == np.int64


def test_one_instance_is_safe_to_share_between_threads(serving_dir):
    serving = runtime.ServingFunction(serving_dir)
    assert serving.runtime == "litert"  # the interpreter, not TensorFlow's thread-safe signature, is shared
    batches = [np.random.default_rng(i).random((i % 3 + 1, 187, 1), dtype=np.float32) for i in range(40)]
    reference = runtime.ServingFunction(serving_dir, runtime="tensorflow")
    expected = [reference(x)["probabilities"] for x in batches]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda x: serving(x)["probabilities"], batches))
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, atol=1e-6)


def test_falls_back_to_tensorflow_without_a_litert_model(tmp_path):
    model = kseq.build_model("rnn", (None, 2), 3, units=4, layers=1)  # a variable time axis: no LiteRT model
    export.export_serving(model, tmp_path / "serving", ["a", "b", "c"])
    assert runtime.ServingFunction(tmp_path / "serving").runtime == "tensorflow"
    with pytest.raises(ValueError, match=r"cannot serve on LiteRT: .*model\.tflite does not exist"):
        runtime.ServingFunction(tmp_path / "serving", runtime="litert")


def test_a_litert_model_that_disagrees_is_not_used(serving_dir, tmp_path):
    # Another CNN's LiteRT model in this export: same signature, other weights.
    other = kseq.build_model("cnn", (187, 1), 5, filters=(4, 8), dense_units=(16, 8))
    export.export_serving(other, tmp_path / "other", ["N", "S", "V", "F", "Q"])
    mixed = tmp_path / "mixed"
    shutil.copytree(serving_dir, mixed)
    shutil.copy(tmp_path / "other" / export.LITERT_MODEL, mixed / export.LITERT_MODEL)
    with pytest.warns(UserWarning, match="serving on TensorFlow, not LiteRT: model.tflite's output '\\w+' differs"):
        assert runtime.ServingFunction(mixed).runtime == "tensorflow"
    with pytest.raises(ValueError, match="output '\w+' differs from TensorFlow's on a probe batch"):
        runtime.ServingFunction(mixed, runtime="litert")


def test_unknown_runtime(serving_dir):
    with pytest.raises(ValueError, match="unknown runtime 'onnx'"):
        runtime.ServingFunction(serving_dir, runtime="onnx")


@pytest.mark.parametrize("content", [b"", b"not a flatbuffer" * 64], ids=["empty", "garbage"])
def test_a_corrupt_litert_model_falls_back_to_tensorflow(serving_dir, tmp_path, content):
    corrupt = tmp_path / "corrupt"
    shutil.copytree(serving_dir, corrupt)
    (corrupt / export.LITERT_MODEL).write_bytes(content)
    with pytest.warns(UserWarning, match="serving on TensorFlow, not LiteRT: .*model\\.tflite"):
        serving = runtime.ServingFunction(corrupt)
    assert serving.runtime == "tensorflow"
    x = np.random.default_rng(1).random((2, 187, 1), dtype=np.float32)
    expected = runtime.ServingFunction(serving_dir, runtime="tensorflow")(x)
    np.testing.assert_array_equal(serving(x)["probabilities"], expected["probabilities"])
    with pytest.raises(ValueError, match="cannot serve on LiteRT: .*model\\.tflite"):
        runtime.ServingFunction(corrupt, runtime="litert")


def test_a_variable_length_signature_is_probed_and_served(tmp_path):
    model = kseq.build_model("fcn", (None, 2), 3)  # builders accept a variable time dimension
    export.export_serving(model, tmp_path / "serving", ["a", "b", "c"])
    serving = runtime.ServingFunction(tmp_path / "serving")
    assert serving.runtime == "litert"  # the probe ran at two concrete lengths and LiteRT agreed
    for steps in (17, 60):
        x = np.random.default_rng(steps).normal(size=(2, steps, 2)).astype(np.float32)
        expected = keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(x, verbose=0), axis=-1))
        np.testing.assert_allclose(serving(x)["probabilities"], expected, atol=1e-5)


@pytest.fixture(scope="module")
def recurrent_model_and_dir(tmp_path_factory):
    model = kseq.build_model("rnn", (15, 2), 3, cell="gru", bidirectional=True, layers=2, units=6)
    path = tmp_path_factory.mktemp("recurrent") / "serving"
    export.export_serving(model, path, ["a", "b", "c"])
    return model, path


@pytest.mark.parametrize("name", ["xla", "litert"])
def test_recurrent_exports_serve_single_requests_compiled_and_batches_on_tensorflow(recurrent_model_and_dir, name):
    model, path = recurrent_model_and_dir
    serving = runtime.ServingFunction(path, runtime="auto" if name == "xla" else name)
    assert (serving.runtime, serving.runtime_batch_size) == (name, 1)  # auto: XLA first
    x = np.random.default_rng(4).normal(size=(5, 15, 2)).astype(np.float32)
    x[1::2, 10:] = 0  # zero padding, masked by the model
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(x, verbose=0), axis=-1))
    batched = serving(x)  # 5 sequences: TensorFlow
    assert np.abs(batched["probabilities"] - expected).max() <= 1e-5

    def no_tensorflow(_):
        raise AssertionError("a single request went to TensorFlow")

    serving._call_tensorflow = no_tensorflow
    for i in range(len(x)):
        single = serving(x[i : i + 1])
        assert np.abs(single["probabilities"] - expected[i : i + 1]).max() <= 1e-5
        assert single["class_id"].tolist() == [expected[i].argmax()]
        assert [n.decode() for n in single["class_name"]] == [["a", "b", "c"][expected[i].argmax()]]
    with pytest.raises(AssertionError, match="went to TensorFlow"):
        serving(x[:2])


def test_single_requests_on_xla_are_safe_to_share_between_threads(recurrent_model_and_dir):
    model, path = recurrent_model_and_dir
    serving = runtime.ServingFunction(path)
    assert serving.runtime == "xla"  # no lock: XLA calls from several threads run side by side
    x = np.random.default_rng(5).normal(size=(24, 15, 2)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(x, verbose=0), axis=-1))
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: serving(x[i : i + 1])["probabilities"][0], range(len(x))))
    np.testing.assert_allclose(np.stack(got), expected, atol=1e-5)


def test_the_compiled_function_is_xla_compiled_whole_for_one_request(recurrent_model_and_dir):
    model, path = recurrent_model_and_dir
    loaded = tf.saved_model.load(str(path))
    spec = loaded.signatures[export.COMPILED_SIGNATURE].structured_input_signature[1]["sequence"]
    assert spec.shape.as_list() == [1, 15, 2]
    # Compiled at its top, so that an eager call runs one XLA program on the calling thread.
    compiled = getattr(loaded, export.COMPILED_SIGNATURE).get_concrete_function(spec)
    assert compiled.function_def.attr["_XlaMustCompile"].b
    x = np.random.default_rng(6).normal(size=(1, 15, 2)).astype(np.float32)
    outputs = compiled(tf.constant(x))
    assert sorted(outputs) == ["class_id", "probabilities"]  # names: assets/class_names.txt
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(x, verbose=0), axis=-1))
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-5)
    assert outputs["class_id"].numpy().tolist() == [expected.argmax()]
    plain = loaded.signatures["serving_default"]
    assert not any("_XlaMustCompile" in f.attr for f in plain.graph.as_graph_def().library.function)


def test_an_export_of_earlier_versions_still_serves_compiled(recurrent_model_and_dir, tmp_path):
    """Before, `serving_compiled` was an uncompiled function answering the class names around a
    compiled one; such an export serves on XLA as it did, with the same answers."""
    model, _ = recurrent_model_and_dir
    names = tf.constant(["a", "b", "c"])
    compiled = tf.function(lambda x: tf.nn.softmax(model(x, training=False)), jit_compile=True, autograph=False)

    def serve(sequence):
        probabilities = compiled(sequence)
        class_id = tf.argmax(probabilities, axis=-1)
        return {"probabilities": probabilities, "class_id": class_id, "class_name": tf.gather(names, class_id)}

    archive = keras.export.ExportArchive()
    archive.add_endpoint("serving_default", serve, input_signature=[tf.TensorSpec([None, 15, 2], tf.float32,
                                                                                   name="sequence")])
    archive.add_endpoint(export.COMPILED_SIGNATURE, serve,
                         input_signature=[tf.TensorSpec([1, 15, 2], tf.float32, name="sequence")])
    archive.write_out(str(tmp_path / "old"), verbose=False)
    (tmp_path / "old" / "assets").mkdir(exist_ok=True)
    (tmp_path / "old" / "assets" / export.CLASS_NAMES_FILE).write_text("a\nb\nc\n")
    serving = runtime.ServingFunction(tmp_path / "old")
    assert (serving.runtime, serving.runtime_batch_size) == ("xla", 1)
    x = np.random.default_rng(7).normal(size=(1, 15, 2)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(x, verbose=0), axis=-1))
    single = serving(x)
    np.testing.assert_allclose(single["probabilities"], expected, atol=1e-5)
    assert [n.decode() for n in single["class_name"]] == [["a", "b", "c"][expected[0].argmax()]]


def test_without_its_class_names_the_compiled_function_is_not_used(recurrent_model_and_dir, tmp_path):
    _, path = recurrent_model_and_dir
    copy = tmp_path / "serving"
    shutil.copytree(path, copy)
    (copy / "assets" / export.CLASS_NAMES_FILE).unlink()
    with pytest.warns(UserWarning, match="serving on LiteRT, not XLA: serving_compiled answers class ids, and their "
                                         "names cannot be read"):
        assert runtime.ServingFunction(copy).runtime == "litert"


def test_a_batch_1_runtime_that_disagrees_is_not_used(recurrent_model_and_dir, tmp_path):
    model, path = recurrent_model_and_dir
    other = kseq.build_model("rnn", (15, 2), 3, cell="gru", bidirectional=True, layers=2, units=6)
    export.export_serving(other, tmp_path / "other", ["a", "b", "c"])
    mixed = tmp_path / "mixed"
    shutil.copytree(path, mixed)
    shutil.copy(tmp_path / "other" / export.LITERT_MODEL, mixed / export.LITERT_MODEL)
    with pytest.raises(ValueError, match="cannot serve on LiteRT: .*output '\\w+' differs from TensorFlow's on a probe batch of 1"):
        runtime.ServingFunction(mixed, runtime="litert")
    assert runtime.ServingFunction(mixed).runtime == "xla"  # the compiled signature still agrees


def test_a_compiled_signature_that_disagrees_is_not_used(recurrent_model_and_dir, monkeypatch):
    _, path = recurrent_model_and_dir

    def off_by_one_percent(self, signature, num_threads):
        def run(x):
            out = self._call_tensorflow(x)
            return {**out, "probabilities": out["probabilities"] * 1.01}
        return run, 1, export.COMPILED_SIGNATURE

    monkeypatch.setattr(runtime.ServingFunction, "_load_compiled", off_by_one_percent)
    with pytest.warns(UserWarning, match="serving on LiteRT, not XLA: serving_compiled's output 'probabilities' differs"):
        serving = runtime.ServingFunction(path)
    assert (serving.runtime, serving.runtime_batch_size) == ("litert", 1)
    with pytest.raises(ValueError, match="cannot serve on XLA: serving_compiled's output"):
        runtime.ServingFunction(path, runtime="xla")


class _RecordingInterpreter:
    """LiteRT's Interpreter, recording the thread count it was given and, once `meet` is set,
    making each call wait at a barrier for another caller: two callers get past it only if two
    calls run at the same time (a lock around one interpreter would leave the first waiting)."""

    threads, meet, original = [], None, None

    def __init__(self, *args, num_threads=None, **kwargs):
        type(self).threads.append(num_threads)
        self.real = type(self).original(*args, num_threads=num_threads, **kwargs)

    def get_signature_runner(self, name):
        runner = self.real.get_signature_runner(name)

        class Runner:
            def get_input_details(self):
                return runner.get_input_details()

            def __call__(self, **inputs):
                if _RecordingInterpreter.meet is not None:
                    _RecordingInterpreter.meet.wait()
                return runner(**inputs)

        return Runner()


@pytest.fixture
def recording(monkeypatch):
    import ai_edge_litert.interpreter

    monkeypatch.setattr(_RecordingInterpreter, "original", ai_edge_litert.interpreter.Interpreter)
    monkeypatch.setattr(ai_edge_litert.interpreter, "Interpreter", _RecordingInterpreter)
    monkeypatch.setattr(_RecordingInterpreter, "threads", [])
    monkeypatch.setattr(_RecordingInterpreter, "meet", None)
    return _RecordingInterpreter


def test_litert_takes_the_configured_intra_op_thread_count(serving_dir, recording, monkeypatch):
    """`configure_threads("serve")` sets one intra-op thread; LiteRT then runs on one thread too."""
    monkeypatch.setattr(tf.config.threading, "get_intra_op_parallelism_threads", lambda: 1)
    assert runtime.ServingFunction(serving_dir).runtime == "litert"
    assert recording.threads == [1]
    monkeypatch.setattr(tf.config.threading, "get_intra_op_parallelism_threads", lambda: 0)  # TF's default
    runtime.ServingFunction(serving_dir)
    assert recording.threads[-1] == runtime._available_cores()
    runtime.ServingFunction(serving_dir, num_threads=3)
    assert recording.threads[-1] == 3


def test_concurrent_litert_callers_run_in_parallel(serving_dir, recording, monkeypatch):
    import threading

    monkeypatch.setattr(runtime, "_available_cores", lambda: 2)  # a pool of up to two interpreters
    serving = runtime.ServingFunction(serving_dir, runtime="litert")
    recording.meet = threading.Barrier(2, timeout=120)
    x = np.random.default_rng(0).random((1, 187, 1), dtype=np.float32)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: serving(x)["class_id"], range(2)))  # BrokenBarrierError if serialised
    assert len(recording.threads) == 2  # the second caller got an interpreter of its own
    np.testing.assert_array_equal(answers[0], answers[1])
