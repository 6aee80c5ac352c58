"""Process-wide runtime settings: TensorFlow's thread pools for training and for serving.

TensorFlow fixes its thread pools when its runtime starts (the first op run), so these settings
must be applied at the start of a process, before any model is built or loaded.

Measured on 2 CPU cores (see `benchmarks/README.md`, section vs_pytorch):

- training: TensorFlow's defaults (one intra-op thread per core) are the fastest; one thread is
  about 2.5x slower per step.
- serving single requests: every oneDNN kernel of a batch-1 call is tiny, and splitting it over
  the intra-op pool costs more in thread hand-offs than it saves; one intra-op and one inter-op
  thread cut batch-1 latency, while batch-256 throughput stays several times PyTorch's.
"""

from __future__ import annotations

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
