"""Runtime settings and serving: TensorFlow's thread pools, and a low-latency signature caller.

TensorFlow fixes its thread pools when its runtime starts (the first op run), so
`configure_threads` must be called at the start of a process, before any model is built or loaded.

Measured on 2 CPU cores (see `benchmarks/README.md`, section vs_pytorch):

- training: TensorFlow's defaults (one intra-op and one inter-op thread per core) are as fast as
  any other split; one intra-op and one inter-op thread together are about 3x slower per step.
- serving single requests on TensorFlow: every oneDNN kernel of a batch-1 call is tiny, and
  splitting it over the intra-op pool costs more in thread hand-offs than it saves; one intra-op
  and one inter-op thread cut batch-1 latency by more than half. `ServingFunction` goes further
  and runs the export's LiteRT model where there is one (for recurrent models: single requests).
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from kseq.export import LITERT_MODEL

# Sizes the LiteRT probe gives a variable (None) input dimension, one per probe batch.
_PROBE_SIZES = (16, 40)

# role -> (intra_op, inter_op); None keeps TensorFlow's default (one per core).
ROLES = {"train": (None, None), "serve": (1, 1)}


def configure_threads(role: str = "train", *, intra_op: int | None = None, inter_op: int | None = None) -> dict:
    """Set TensorFlow's intra-op and inter-op thread counts for a training or a serving process.

    `role` picks the measured defaults of `ROLES`; `intra_op`/`inter_op` override them. Call it
    before TensorFlow runs its first op. Calling it again with the same settings is harmless;
    asking for other settings once the runtime has started raises `RuntimeError`.

    Returns the settings in force: `{"intra_op": n, "inter_op": n}` (0 means TensorFlow's default).
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    default_intra, default_inter = ROLES[role]
    wanted = {
        "intra_op": intra_op if intra_op is not None else default_intra,
        "inter_op": inter_op if inter_op is not None else default_inter,
    }
    setters = {
        "intra_op": (tf.config.threading.get_intra_op_parallelism_threads,
                     tf.config.threading.set_intra_op_parallelism_threads),
        "inter_op": (tf.config.threading.get_inter_op_parallelism_threads,
                     tf.config.threading.set_inter_op_parallelism_threads),
    }
    for key, n in wanted.items():
        get, set_ = setters[key]
        if n is None or get() == n:
            continue
        try:
            set_(int(n))
        except RuntimeError as e:
            raise RuntimeError(
                f"kseq.runtime.configure_threads: TensorFlow's runtime has already started, so its "
                f"{key} thread count can no longer change; call it at the start of the process ({e})"
            ) from None
    return {key: get() for key, (get, _) in setters.items()}


class ServingFunction:
    """An exported signature (`serving_default`), called with NumPy and answering NumPy.

    `ServingFunction(path)(x)` returns the signature's outputs as a dict of NumPy arrays (for a
    kseq export: `probabilities`, `class_id`, `class_name`). With `runtime="auto"` it runs on
    LiteRT when the export holds `model.tflite` (`kseq.export.export_litert`) and `ai_edge_litert`
    is installed, after the LiteRT answer to a probe batch has matched TensorFlow's; otherwise on
    TensorFlow. `runtime="litert"` or `"tensorflow"` insists on one. `self.runtime` says which runs.
    A LiteRT model compiled for one batch size (`litert_batch_size`: 1 for recurrent exports,
    whose loops convert only at a fixed batch) answers calls of that size, and TensorFlow the rest.

    LiteRT matters for single requests: a TensorFlow signature call costs a few hundred
    microseconds of dispatch and thread hand-offs on 2 cores, more than the seed CNN's whole
    forward pass; LiteRT's XNNPACK kernels run on the calling thread (benchmarks/README.md).
    Calls are serialised by a lock, so one instance may be shared between threads.
    """

    RUNTIMES = ("auto", "litert", "tensorflow")

    def __init__(self, path, signature: str = "serving_default", *, runtime: str = "auto",
                 num_threads: int | None = None):
        if runtime not in self.RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}; expected one of {', '.join(self.RUNTIMES)}")
        self.path = Path(path)
        self.loaded = tf.saved_model.load(str(self.path))  # holds the variables the signature reads
        self.signature = self.loaded.signatures[signature]
        inputs = self.signature.structured_input_signature[1]
        if len(inputs) != 1:
            raise ValueError(f"{self.path}: signature {signature!r} takes {len(inputs)} inputs; expected one")
        (self._input_name, self._input_spec), = inputs.items()
        self._lock = threading.Lock()
        self._litert = None
        self.litert_batch_size = None  # the one batch size LiteRT answers; None: any
        if runtime != "tensorflow":
            self._litert = self._load_litert(signature, num_threads, required=runtime == "litert")
        self.runtime = "litert" if self._litert is not None else "tensorflow"

    def __call__(self, x) -> dict[str, np.ndarray]:
        x = np.asarray(x, dtype=self._input_spec.dtype.as_numpy_dtype)
        if self._litert is not None and self.litert_batch_size in (None, len(x)):
            with self._lock:
                return self._litert(**{self._input_name: x})
        return self._call_tensorflow(x)

    def _call_tensorflow(self, x: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.signature(**{self._input_name: tf.constant(x)})
        return {name: value.numpy() for name, value in outputs.items()}

    def _load_litert(self, signature: str, num_threads: int | None, required: bool):
        """LiteRT's runner of `signature`, or None (an error if `required`) when it is missing or differs."""
        model = self.path / LITERT_MODEL
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            Interpreter = None
        reason = ("ai_edge_litert is not installed (pip install ai-edge-litert)" if Interpreter is None
                  else f"{model} does not exist" if not model.is_file() else None)
        if reason is None:
            try:
                runner = Interpreter(model_path=str(model), num_threads=num_threads or _available_cores()
                                     ).get_signature_runner(signature)
                batch = int(runner.get_input_details()[self._input_name]["shape_signature"][0])
                self.litert_batch_size = batch if batch > 0 else None
                reason = self._litert_mismatch(runner)
            except Exception as e:  # noqa: BLE001 (a corrupt or incompatible file: TensorFlow still serves)
                reason = f"{model} cannot be loaded or run: {_first_line(e)}"
            if reason is None:
                return runner
            self.litert_batch_size = None
            if not required:
                warnings.warn(f"{self.path}: serving on TensorFlow, not LiteRT: {reason}", stacklevel=3)
        if required:
            raise ValueError(f"{self.path}: cannot serve on LiteRT: {reason}")
        return None

    def _litert_mismatch(self, runner) -> str | None:
        """Why LiteRT's answers to probe batches differ from TensorFlow's, or None.

        Probes are batches of 1 and 3 (two of `litert_batch_size` when the LiteRT model has a
        fixed batch); a dimension the signature leaves variable (the time axis of a model built
        with `(None, F)`) gets a different concrete size in each probe, so LiteRT must answer
        variable lengths as TensorFlow does. The second probe ends in all-zero steps, the padding
        that recurrent models mask, so their masked path is checked too.
        """
        shape = self._input_spec.shape.as_list()[1:]
        rng = np.random.default_rng(0)
        batches = (1, 3) if self.litert_batch_size is None else (self.litert_batch_size,) * 2
        for probe, (batch, size) in enumerate(zip(batches, _PROBE_SIZES)):
            concrete = [size if d is None else d for d in shape]
            x = rng.standard_normal((batch, *concrete)).astype(self._input_spec.dtype.as_numpy_dtype)
            if probe:
                x[:, x.shape[1] * 3 // 4:] = 0
            expected, got = self._call_tensorflow(x), runner(**{self._input_name: x})
            if got.keys() != expected.keys():
                return f"outputs {sorted(got)} instead of {sorted(expected)}"
            for name, value in expected.items():
                close = (np.allclose(got[name], value, rtol=1e-4, atol=1e-5) if value.dtype.kind == "f"
                         else np.array_equal(got[name], value))
                if got[name].shape != value.shape or not close:
                    return f"output {name!r} differs from TensorFlow's on a probe batch of {batch}"
        return None


def _first_line(error: Exception) -> str:
    """An exception's first line of text, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
