"""Runtime settings and serving: TensorFlow's thread pools, and a low-latency signature caller.

TensorFlow fixes its thread pools when its runtime starts (the first op run), so
`configure_threads` must be called at the start of a process, before any model is built or loaded.

- training: TensorFlow's defaults (one intra-op and one inter-op thread per core); splitting
  them otherwise only slows training steps.
- serving (role `serve`): one intra-op thread, and TensorFlow's default inter-op pool. A single
  request's kernels are too small to split across cores: a second intra-op thread mostly adds
  hand-offs and makes latency vary from process to process, while the inter-op pool still runs
  independent parts of a batch side by side (the two directions of a bidirectional layer).
  XLA's compiled programs hand their matrix products to that pool: with two intra-op threads on
  two cores, some processes answered one series through `multirocket_hydra` in 10-11 ms instead
  of about 4 for seconds at a time; with one thread, or with XLA's products kept on the calling
  thread (`XLA_FLAGS=--xla_cpu_multi_thread_eigen=false`), none did.
  `ServingFunction` sends single requests to XLA (recurrent and random-kernel models) or LiteRT,
  and batches of recurrent models to TensorFlow.

The measurements behind these choices are in `benchmarks/README.md` (sections vs_pytorch,
"Recurrent models" and vs_aeon).
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from kseq.serving.export import CLASS_NAMES_FILE, COMPILED_SIGNATURE, LITERT_MODEL

# Sizes the probe gives a variable (None) input dimension, one per probe batch.
_PROBE_SIZES = (16, 40)

# role -> (intra_op, inter_op); None keeps TensorFlow's default (one per core).
ROLES = {"train": (None, None), "serve": (1, None)}


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
                f"kseq.serving.runtime.configure_threads: TensorFlow's runtime has already started, so its "
                f"{key} thread count can no longer change; call it at the start of the process ({e})"
            ) from None
    return {key: get() for key, (get, _) in setters.items()}


class ServingFunction:
    """An exported signature (`serving_default`), called with NumPy and answering NumPy.

    `ServingFunction(path)(x)` returns the signature's outputs as a dict of NumPy arrays (for a
    kseq export: `probabilities`, `class_id`, `class_name`). `self.runtime` says what answers the
    calls of `self.runtime_batch_size` (None: every call); other calls run on TensorFlow:

    - `"xla"`: the export's `serving_compiled` function, the same computation compiled by XLA
      for single requests (`kseq.serving.export`; recurrent and random-kernel models with a fixed
      time axis), called eagerly, so that it runs on the calling thread; class names from the
      export's `assets` (`kseq.serving.export.CLASS_NAMES_FILE`).
    - `"litert"`: the export's LiteRT model `model.tflite` (`kseq.serving.export.export_litert`): every
      batch size for models without recurrent layers, batch 1 for recurrent ones.
    - `"tensorflow"`: the SavedModel's `serving_default` on TensorFlow's runtime.

    `runtime="auto"` takes the first of these the export holds (and `ai_edge_litert`, for LiteRT,
    is installed) whose answers to two probe batches match `serving_default`'s; naming a runtime
    insists on it. The order is what measured fastest for single requests (benchmarks/README.md,
    section vs_pytorch): a TensorFlow signature call pays a dispatch cost larger than a small
    convolutional model's whole forward pass on LiteRT, whose XNNPACK kernels run on the calling
    thread; and in a recurrent loop, where TensorFlow and LiteRT dispatch every op of every step,
    XLA fuses each step into a few kernels.
    Batches of recurrent models stay on TensorFlow, whose multi-threaded kernels were as fast as
    XLA's there or faster, and which needs no compilation per batch size.
    Start a serving process with `configure_threads("serve")`, so that each single request runs on
    one core. One instance may be shared between threads: TensorFlow and XLA calls run side by
    side, and so do LiteRT calls, each on an interpreter of its own (an interpreter is not
    reentrant): a pool holds up to one per core, created as concurrent callers need them. Each
    LiteRT interpreter runs on `litert_threads()` threads: one after `configure_threads("serve")`.
    """

    RUNTIMES = ("auto", "xla", "litert", "tensorflow")
    _NAMES = {"xla": "XLA", "litert": "LiteRT", "tensorflow": "TensorFlow"}

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
        self.max_steps = self._max_steps(signature)
        self._fast = None  # the runner of `self.runtime` when it is not TensorFlow
        self.runtime, self.runtime_batch_size = "tensorflow", None
        reasons = {}
        for candidate, load in (("xla", self._load_compiled), ("litert", self._load_litert)):
            if runtime not in ("auto", candidate):
                continue
            try:
                run, batch_size, what = load(signature, num_threads)
                self._check(run, batch_size, what)
            except _Unavailable as e:
                reasons[candidate] = e
                continue
            self._fast, self.runtime, self.runtime_batch_size = run, candidate, batch_size
            break
        if runtime not in ("auto", "tensorflow") and self.runtime != runtime:
            raise ValueError(f"{self.path}: cannot serve on {self._NAMES[runtime]}: {reasons[runtime]}")
        for candidate, reason in reasons.items():  # an artifact the export holds but that cannot serve
            if reason.present and runtime == "auto":
                warnings.warn(f"{self.path}: serving on {self._NAMES[self.runtime]}, not {self._NAMES[candidate]}: "
                              f"{reason}", stacklevel=2)

    def __call__(self, x) -> dict[str, np.ndarray]:
        x = np.asarray(x, dtype=self._input_spec.dtype.as_numpy_dtype)
        self._check_shape(x)
        if self._fast is not None and self.runtime_batch_size in (None, len(x)):
            return self._fast(x)
        return self._call_tensorflow(x)

    def _max_steps(self, signature: str) -> int | None:
        """The most steps a series may have when `serving_default` takes any length up to the
        fixed length of `serving_compiled` (a random-kernel export, `kseq.serving.export`, pads
        shorter series itself); None when the signature states every bound in its shape."""
        if (signature != "serving_default" or COMPILED_SIGNATURE not in self.loaded.signatures
                or self._input_spec.shape.as_list()[1] is not None):
            return None
        compiled = self.loaded.signatures[COMPILED_SIGNATURE].structured_input_signature[1][self._input_name]
        return compiled.shape.as_list()[1]

    def _check_shape(self, x: np.ndarray) -> None:
        """ValueError naming the shape the signature takes when `x` does not fit it: a model built
        for any length (time axis None) takes every length from 1 step up, a random-kernel model
        built for T steps any length up to T, a recurrent one exactly T (pad or cut the series to
        T first)."""
        expected = self._input_spec.shape.as_list()
        fits = x.ndim == len(expected) and all(d is None or d == n for d, n in zip(expected, x.shape))
        if fits and all(n >= 1 for n in x.shape[1:]) and (self.max_steps is None or x.shape[1] <= self.max_steps):
            return
        shown = ", ".join(self._axis_text(axis, size) for axis, size in enumerate(expected))
        raise ValueError(f"{self.path}: input {self._input_name!r} must have shape [{shown}]; got {list(x.shape)}")

    def _axis_text(self, axis: int, size: int | None) -> str:
        """How `_check_shape`'s message names one axis of the signature's input."""
        if axis == 0:
            return "batch"
        if size is not None:
            return str(size)
        return f"1 to {self.max_steps}" if axis == 1 and self.max_steps is not None else "any >= 1"

    def _call_tensorflow(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self._answer(self.signature, x)

    def _answer(self, function, x: np.ndarray) -> dict[str, np.ndarray]:
        """The outputs of a SavedModel signature or saved function for `x`, as NumPy arrays."""
        outputs = function(**{self._input_name: tf.constant(x)})
        return {name: value.numpy() for name, value in outputs.items()}

    def _load_compiled(self, signature: str, num_threads: int | None):
        """`(runner, batch size, name)` of the export's XLA-compiled signature (compiled by the probes)."""
        if signature != "serving_default" or COMPILED_SIGNATURE not in self.loaded.signatures:
            raise _Unavailable(f"the export has no {COMPILED_SIGNATURE!r} signature "
                               "(recurrent and random-kernel models only)")
        spec = self.loaded.signatures[COMPILED_SIGNATURE].structured_input_signature[1][self._input_name]
        # The saved function itself, not its signature: called eagerly, a function compiled at the
        # top runs as one XLA program on this thread, where a signature wraps it in an uncompiled
        # function that TensorFlow's graph executor runs on its thread pool (`kseq.serving.export`).
        compiled = getattr(self.loaded, COMPILED_SIGNATURE).get_concrete_function(spec)
        names = self._class_names()

        def run(x):
            # Shorter series get the trailing zeros `serving_default` gives them in its graph.
            if self.max_steps is not None and x.shape[1] < self.max_steps:
                x = np.pad(x, [(0, 0), (0, self.max_steps - x.shape[1]), (0, 0)])
            outputs = self._answer(compiled, x)
            return {**outputs, "class_name": names[outputs["class_id"]]}

        return run, spec.shape[0], COMPILED_SIGNATURE

    def _class_names(self) -> np.ndarray:
        """The export's class names as `serving_default` answers them (bytes), indexed by class id:
        `serving_compiled` answers ids only (`kseq.serving.export`)."""
        try:
            lines = (self.path / "assets" / CLASS_NAMES_FILE).read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise _Unavailable(f"{COMPILED_SIGNATURE} answers class ids, and their names cannot be read: {e}",
                               present=True) from None
        return np.array([line.encode() for line in lines], dtype=object)

    def _load_litert(self, signature: str, num_threads: int | None):
        """`(runner, batch size, file)` of the export's LiteRT model."""
        model = self.path / LITERT_MODEL
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise _Unavailable("ai_edge_litert is not installed (pip install ai-edge-litert)") from None
        if not model.is_file():
            raise _Unavailable(f"{model} does not exist")
        threads = num_threads or litert_threads()

        def new_runner():
            return Interpreter(model_path=str(model), num_threads=threads).get_signature_runner(signature)

        try:
            first = new_runner()
            batch = int(first.get_input_details()[self._input_name]["shape_signature"][0])
        except Exception as e:  # noqa: BLE001 (a corrupt or incompatible file: TensorFlow still serves)
            raise _Unavailable(f"{model} cannot be loaded or run: {_first_line(e)}", present=True) from None
        batch = batch if batch > 0 else None
        pool = _Pool(new_runner, first, size=_available_cores())

        def run(x):
            with pool.runner() as runner:
                return runner(**{self._input_name: x})

        return run, batch, LITERT_MODEL

    def _check(self, run, batch_size: int | None, what: str) -> None:
        """Raise `_Unavailable` when `run` fails or its answers to probe batches differ from TensorFlow's.

        Probes are batches of 1 and 3 (two of `batch_size` when it is fixed); a dimension the
        signature leaves variable (the time axis of a model built with `(None, F)`) gets a
        different concrete size in each probe, so the runtime must answer variable lengths as
        TensorFlow does. The second probe ends in all-zero steps, the padding that recurrent
        models mask, so their masked path is checked too.
        """
        shape = self._input_spec.shape.as_list()[1:]
        rng = np.random.default_rng(0)
        batches = (1, 3) if batch_size is None else (batch_size,) * 2
        for probe, (batch, size) in enumerate(zip(batches, _PROBE_SIZES)):
            concrete = [min(size, self.max_steps or size) if d is None else d for d in shape]
            x = rng.standard_normal((batch, *concrete)).astype(self._input_spec.dtype.as_numpy_dtype)
            if probe:
                x[:, x.shape[1] * 3 // 4:] = 0
            try:
                expected, got = self._call_tensorflow(x), run(x)
            except Exception as e:  # noqa: BLE001 (the runtime cannot run here: TensorFlow still serves)
                raise _Unavailable(f"{what} fails on a probe batch of {batch}: {_first_line(e)}",
                                   present=True) from None
            if got.keys() != expected.keys():
                raise _Unavailable(f"{what} outputs {sorted(got)} instead of {sorted(expected)}", present=True)
            for name, value in expected.items():
                close = (np.allclose(got[name], value, rtol=1e-4, atol=1e-5) if value.dtype.kind == "f"
                         else np.array_equal(got[name], value))
                if got[name].shape != value.shape or not close:
                    raise _Unavailable(f"{what}'s output {name!r} differs from TensorFlow's "
                                       f"on a probe batch of {batch}", present=True)


class _Pool:
    """Interpreters for concurrent callers: an interpreter runs one call at a time, so each caller
    takes an idle one, a new one while fewer than `size` exist, or else waits for one to be free."""

    def __init__(self, make, first, size: int):
        self._make, self._size, self._made = make, max(1, size), 1
        self._idle = [first]
        self._free = threading.Condition()

    @contextlib.contextmanager
    def runner(self):
        with self._free:
            while not self._idle and self._made >= self._size:
                self._free.wait()
            runner = self._idle.pop() if self._idle else None
            if runner is None:
                self._made += 1
        if runner is None:
            try:
                runner = self._make()
            except BaseException:
                with self._free:
                    self._made -= 1
                    self._free.notify()
                raise
        try:
            yield runner
        finally:
            with self._free:
                self._idle.append(runner)
                self._free.notify()


def litert_threads() -> int:
    """LiteRT's thread count for one call: TensorFlow's intra-op count where `configure_threads` set
    one (1 for role "serve", so a LiteRT request is single-core as TensorFlow's are), else every
    core this process may use."""
    return tf.config.threading.get_intra_op_parallelism_threads() or _available_cores()


class _Unavailable(Exception):
    """Why a runtime cannot serve an export; `present`: the export holds its artifact, which failed
    to load, to run or to match TensorFlow's answers (worth a warning, unlike an absent one)."""

    def __init__(self, reason: str, present: bool = False):
        super().__init__(reason)
        self.present = present


def _first_line(error: Exception) -> str:
    """An exception's first line of text, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
