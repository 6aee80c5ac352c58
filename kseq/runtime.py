"""Runtime settings and helpers: TensorFlow's thread pools, and a low-overhead serving caller.

TensorFlow fixes its thread pools when its runtime starts (the first op run), so
`configure_threads` must be called at the start of a process, before any model is built or loaded.

Measured on 2 CPU cores (see `benchmarks/README.md`, section vs_pytorch):

- training: TensorFlow's defaults (one intra-op and one inter-op thread per core) are as fast as
  any other split; one intra-op and one inter-op thread together are about 3x slower per step.
- serving single requests: every oneDNN kernel of a batch-1 call is tiny, and splitting it over
  the intra-op pool costs more in thread hand-offs than it saves; one intra-op and one inter-op
  thread cut batch-1 latency by more than half, while batch-256 throughput stays about twice
  PyTorch's best.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

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
    """A SavedModel signature (by default `serving_default`), called with NumPy and answering NumPy.

    `ServingFunction(path)(x)` returns the signature's outputs as a dict of NumPy arrays (for a
    kseq export: `probabilities`, `class_id`, `class_name`). Calling a loaded signature the
    public way (`signature(sequence=x)`) spends about 100 us per call binding its arguments in
    Python, as much as the whole batch-1 forward pass of a small model. A single-input signature
    is therefore called through its concrete function's flat entry point (TensorFlow's
    `ConcreteFunction._call_flat`, given the input tensor and the captured variables), the step
    the public call ends in. That entry point is not public API, so it is used only after a probe
    call has matched the public call's outputs exactly; otherwise, and with `fast=False`, every
    call goes the public way.
    """

    def __init__(self, path, signature: str = "serving_default", *, fast: bool = True):
        self.loaded = tf.saved_model.load(str(Path(path)))  # holds the variables the signature reads
        self.signature = self.loaded.signatures[signature]
        inputs = self.signature.structured_input_signature[1]
        self._input_name, self._input_spec = next(iter(inputs.items())) if len(inputs) == 1 else (None, None)
        self._captured = self.signature.captured_inputs
        self.fast = bool(fast and self._input_spec is not None and self._flat_call_matches())

    def __call__(self, x) -> dict[str, np.ndarray]:
        if self._input_spec is None:
            raise TypeError("this signature takes several inputs; call `.signature(**inputs)` instead")
        x = tf.constant(x, dtype=self._input_spec.dtype)
        outputs = self._call_flat(x) if self.fast else self.signature(**{self._input_name: x})
        return {name: value.numpy() for name, value in outputs.items()}

    def _call_flat(self, x):
        return self.signature._call_flat([x], self._captured)  # noqa: SLF001 (see the class docstring)

    def _flat_call_matches(self) -> bool:
        shape = [1 if d is None else d for d in self._input_spec.shape.as_list()]
        probe = tf.zeros(shape, self._input_spec.dtype)
        try:
            flat = self._call_flat(probe)
        except (AttributeError, TypeError, ValueError, tf.errors.OpError):
            return False
        public = self.signature(**{self._input_name: probe})
        return (isinstance(flat, dict) and flat.keys() == public.keys()
                and all(np.array_equal(flat[k].numpy(), public[k].numpy()) for k in public))
