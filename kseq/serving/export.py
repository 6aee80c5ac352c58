"""Export a trained model for serving: `model.keras`, a TF SavedModel and its LiteRT model.

The SavedModel's `serving_default` takes raw sequences and answers probabilities, class ids and
class names, with the fitted decision (`kseq.serving.decisions`) inside when there is one, so a
server needs nothing of kseq's Python to answer as the run was evaluated.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import keras
import pandas as pd
import tensorflow as tf

from kseq.config import dump_config
from kseq.models.decision import Decision
from kseq.models.layers import all_layers
from kseq.models.random_kernels import holds_random_kernels
from kseq.models.xla_programs import traced_for_export
from kseq.utils.files import new_folder, write_atomically, write_text
LITERT_MODEL = "model.tflite"  # inside the SavedModel folder: the same signature, compiled for LiteRT
COMPILED_SIGNATURE = "serving_compiled"  # loop-bound exports: `serving_default` compiled by XLA, batch 1
CLASS_NAMES_FILE = "class_names.txt"  # in the SavedModel's `assets` folder: one name a line, in class id order


def export_serving(model: keras.Model, path, class_names, decision: Decision | None = None) -> None:
    """Write a TF SavedModel with signature `serving_default`, and its LiteRT model where one converts.

    Input `sequence` float32 [None, T, F], or [None, None, F] for a model built for any length
    (`kseq.models.accepts_any_length`: series of any length, padded or not, the LiteRT model
    included, which resizes its input per call) and for a random-kernel model (series of at most
    T steps: shorter ones are padded with trailing zeros inside the signature, the padding their
    features ignore, so a server sends each recording at its own length); outputs `probabilities`
    [None, C], `class_id` [None] (int64) and `class_name` [None] (string). Class names also go to
    `assets/class_names.txt`. Without a `decision` the probabilities are the softmax of `model`'s
    logits and `class_id` their argmax; with one (`kseq.serving.decisions`, fitted on the
    validation split) they are its temperature-scaled probabilities and its decision (argmax
    after per-class offsets).
    `model.tflite` holds the same signature for LiteRT: with the variable batch for models
    without recurrent layers, and for a batch of exactly 1 for recurrent ones with a fixed time
    axis (`export_litert`). Those recurrent models, and the random-kernel ones
    (`kseq.models.random_kernels`), also get `serving_compiled`, the signature for a batch of 1
    compiled by XLA, which `kseq.serving.runtime.ServingFunction` sends single requests to.
    The signatures are traced `traced_for_export` (`kseq.models.xla_programs`): a layer whose
    fastest form in process would export badly traces its other form, equal to the bit.
    """
    def scores(sequence):
        logits = model(sequence, training=False)
        if decision is None:
            probabilities = tf.nn.softmax(logits, axis=-1)
            return probabilities, tf.argmax(probabilities, axis=-1)
        return decision(logits), tf.argmax(decision.scores(logits), axis=-1)

    recurrent, fixed_shape = _has_recurrent_layer(model), None not in model.input_shape[1:]
    random_kernels = fixed_shape and holds_random_kernels(model)
    max_steps = model.input_shape[1] if random_kernels else None
    with traced_for_export():  # the forms of the layers' programs that export compactly
        _write_saved_model(model, scores, class_names, None, path,
                           compiled=fixed_shape and (recurrent or random_kernels), max_steps=max_steps)
    assets = Path(path) / "assets"
    assets.mkdir(exist_ok=True)
    write_text(assets / CLASS_NAMES_FILE, "\n".join(class_names) + "\n")
    if not recurrent:
        export_litert(path)
    elif fixed_shape:
        # The converter lowers a recurrent loop to LiteRT's built-in WHILE op only when every
        # shape in it is known: a batch-1 copy of the signature, converted from a scratch folder.
        with tempfile.TemporaryDirectory(prefix="kseq-litert-") as scratch, traced_for_export():
            _write_saved_model(model, scores, class_names, 1, scratch)
            export_litert(scratch, destination=path)


def _write_saved_model(model: keras.Model, scores, class_names, batch_size: int | None, path, *,
                       compiled: bool = False, max_steps: int | None = None) -> None:
    """A SavedModel at `path` whose `serving_default` signature answers `scores(sequence)` ->
    `(probabilities, class_id)` with the class names, for batches of `batch_size` (None: any).

    With `max_steps`, `serving_default` takes series of any length up to `max_steps` and pads
    them with trailing zeros to the model's fixed length (`_padded_to`); `serving_compiled` keeps
    the fixed length, and `kseq.serving.runtime.ServingFunction` pads before calling it.

    With `compiled`, also `serving_compiled`: `scores` for a batch of 1, the whole function
    compiled by XLA (`jit_compile=True`) on its first call, answering `probabilities` and
    `class_id` (the class names, a string lookup XLA cannot compile, are row `class_id` of
    `assets/class_names.txt`). It is for single requests to models whose computation is a loop
    over time: XLA fuses a recurrent step's small matmuls and gate arithmetic into a few kernels,
    where TensorFlow's runtime dispatches every op of every step (benchmarks/README.md, section
    vs_pytorch); a random-kernel transform's LSPV loop runs on LiteRT op by op, several times
    slower than compiled (benchmarks/README.md, section vs_aeon). Compiled whole, its loaded
    function called eagerly runs as one XLA program on the caller's thread
    (`kseq.serving.runtime.ServingFunction`); a compiled function nested in an uncompiled one, as
    the string lookup needs, runs through TensorFlow's graph executor on its thread pool, 0.9 ms
    slower per `multirocket_hydra` request of about 6 ms (benchmarks/README.md, section vs_aeon).
    `serving_default` stays uncompiled, for servers without XLA and for the LiteRT converter.
    """
    shape = [batch_size, *model.input_shape[1:]]
    spec = tf.TensorSpec(shape if max_steps is None else [batch_size, None, *shape[2:]], tf.float32, name="sequence")
    names = tf.constant(list(class_names))
    any_length = scores if max_steps is None else _padded_to(max_steps, scores)

    def serve(sequence):
        probabilities, class_id = any_length(sequence)
        return {"probabilities": probabilities, "class_id": class_id, "class_name": tf.gather(names, class_id)}

    # Not `archive.track(model)`: the endpoints' traces already hold every variable they read, and
    # tracking the model as well saves each variable twice (keras-team/keras#23553: twice the
    # folder, twice the memory of every server that loads it) and has TensorFlow trace the whole
    # model once more for a signature of Keras' own that nothing here serves.
    archive = keras.export.ExportArchive()
    archive.add_endpoint("serving_default", serve, input_signature=[spec])
    if compiled:  # one shape, so XLA compiles once
        def numeric(sequence):
            probabilities, class_id = scores(sequence)
            return {"probabilities": probabilities, "class_id": class_id}

        single = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32, name="sequence")
        # A `tf.function` given whole is saved as it is (compiled at the top), not wrapped in another.
        archive.add_endpoint(COMPILED_SIGNATURE, tf.function(numeric, input_signature=[single], jit_compile=True,
                                                             autograph=False))
    archive.write_out(str(path), verbose=False)


def _padded_to(max_steps: int, scores):
    """`scores` for series of at most `max_steps` steps, padded with trailing zeros to exactly
    `max_steps`; a longer series fails with an error that names the bound."""
    def padded(sequence):
        extra = max_steps - tf.shape(sequence)[1]
        check = tf.debugging.assert_non_negative(extra, message=f"sequence: this model takes series of at most "
                                                               f"{max_steps} steps")
        with tf.control_dependencies([check]):  # before the pad, which would fail with a message of its own
            extra = tf.identity(extra)
        # A reshape, not `tf.ensure_shape`, states the static length: LiteRT has no EnsureShape op.
        return scores(tf.reshape(tf.pad(sequence, [[0, 0], [0, extra], [0, 0]]), [-1, max_steps, sequence.shape[2]]))
    return padded


def export_litert(saved_model_dir, destination=None) -> Path | None:
    """Compile a SavedModel's `serving_default` into `model.tflite` in `destination` (default: the same folder).

    The same signature (inputs, outputs, batch) as a flatbuffer for LiteRT's XNNPACK CPU
    kernels, which answer a single request several times faster than TensorFlow's runtime
    (benchmarks/README.md, section vs_pytorch) and serve without TensorFlow installed. Returns
    the file, or None with a warning when the converter cannot express the model in LiteRT's
    built-in ops (a recurrent loop over a variable batch, for one).
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=["serving_default"])
    try:
        flatbuffer = converter.convert()
    except Exception as e:  # noqa: BLE001 (an optional file: never lose the run over it; the error is reported)
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        warnings.warn(f"{saved_model_dir}: no LiteRT model written, the converter failed: {first_line}",
                      stacklevel=2)
        return None
    path = Path(destination or saved_model_dir) / LITERT_MODEL
    write_atomically(path, lambda tmp: tmp.write_bytes(flatbuffer))
    return path


def _has_recurrent_layer(model: keras.Model) -> bool:
    """True for a model with recurrent layers, in wrappers or nested models too: LiteRT's converter
    lowers Keras' recurrent loops only at a fixed batch size, so such models get a batch-1 LiteRT model."""
    return any(isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional)) for layer in all_layers(model))


def write_model(folder: Path, model: keras.Model, class_names, decision: Decision | None = None) -> None:
    """`model.keras` (the raw model, logits out) and `serving/` (the SavedModel with `decision`
    when given, and `model.tflite` where it converts)."""
    model.save(folder / "model.keras")
    export_serving(model, folder / "serving", class_names, decision)


def write_model_folder(path: Path, model: keras.Model, config: dict, history: dict, class_names,
                       decision: Decision | None = None) -> Path:
    """A fitted model's folder outside any run (`SequenceClassifier.export`): `model.keras`,
    `serving/` (with `decision` when given), `config.toml` and `history.csv`, written under a
    temporary name, then renamed."""
    with new_folder(path) as partial:
        write_model(partial, model, class_names, decision)
        write_text(partial / "config.toml", dump_config(config))
        write_text(partial / "history.csv", pd.DataFrame(history).to_csv(index=False))
    return Path(path)
