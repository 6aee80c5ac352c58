"""Multi-worker training: the strategy, which worker is the chief, and where the others keep state.

`train.strategy = "multi_worker"` trains under `tf.distribute.MultiWorkerMirroredStrategy` on the
cluster that `TF_CONFIG` describes; every worker runs the same command. Keras' advice for this
strategy is that only the chief writes to the model's directory and the other workers write to
temporary places, so that they never overwrite the chief's files. kseq follows it:

- the chief (task `chief`, or `worker` 0 when the cluster has no `chief`) writes the run folder;
- every other worker keeps its resumable state (the `BackupAndRestore` backup, best weights,
  history) in `<output_dir>/<experiment>/.worker-<index>/`, removed when training ends. It is
  kept on purpose after a crash: every worker must restore the same epoch when the job is
  restarted with `--resume` (Keras' fault-tolerance recipe), so each needs its own backup.

Without `train.strategy = "multi_worker"` a `TF_CONFIG` in the environment is ignored: each
process is then a chief of its own.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from pathlib import Path

from kseq.config import dump_config
from kseq.utils.errors import InputError
from kseq.utils.files import write_text

WORKER_PREFIX = ".worker-"


def _tf_config() -> tuple[dict, dict]:
    """`(cluster, task)` of `TF_CONFIG`; a one-worker cluster without it."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return {"chief": ["localhost"]}, {"type": "chief", "index": 0}
    try:
        tf_config = json.loads(raw)
        cluster, task = dict(tf_config["cluster"]), dict(tf_config["task"])
        task["index"] = int(task["index"])
        return cluster, task
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"TF_CONFIG: expected JSON with 'cluster' and 'task' (type, index): {e}") from None


def cluster_task() -> tuple[str, int, int]:
    """`(task type, task index, number of workers)` from `TF_CONFIG`; `("chief", 0, 1)` without it."""
    cluster, task = _tf_config()
    return str(task["type"]), task["index"], len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def multi_worker(config: dict) -> bool:
    return config["train"]["strategy"] == "multi_worker"


def is_chief(config: dict) -> bool:
    """True for the process that writes the run: every process unless `multi_worker` says otherwise."""
    if not multi_worker(config):
        return True
    cluster, task = _tf_config()
    return task["type"] == "chief" or (task["type"] == "worker" and task["index"] == 0 and "chief" not in cluster)


def num_workers(config: dict) -> int:
    """Workers taking part in training: those `TF_CONFIG` lists under `multi_worker`, else 1."""
    return cluster_task()[2] if multi_worker(config) else 1


@functools.cache
def multi_worker_strategy():
    """The process's one `MultiWorkerMirroredStrategy`: collectives are configured once per process."""
    import tensorflow as tf

    class Strategy(tf.distribute.MultiWorkerMirroredStrategy):
        """`reduce` as Keras' `fit` calls it on several workers (Keras 3.15).

        `fit` reduces a whole distributed `(x, y)` batch in one call (`_maybe_symbolic_build`),
        but TensorFlow's collective strategy reduces one value at a time (`Strategy.reduce`:
        "TODO: support `value` being a nest"); and it averages every step's scalar logs with
        `axis=0`, which a scalar does not have. Both fail on two workers; here a nest is reduced
        one value at a time, and a scalar across replicas only (the mean `axis=0` asks for).
        """

        def reduce(self, reduce_op, value, axis=None):
            def one(v):
                rank = self.experimental_local_results(v)[0].shape.rank
                return super(Strategy, self).reduce(reduce_op, v, None if rank == 0 else axis)

            return tf.nest.map_structure(one, value)

    return Strategy()


def worker_dir(output_dir, experiment: str) -> Path:
    """Where a non-chief worker of `experiment` keeps its state while it trains."""
    return Path(output_dir) / experiment / f"{WORKER_PREFIX}{cluster_task()[1]}"


def start_worker(output_dir, config: dict) -> Path:
    """A fresh state folder for this non-chief worker, holding the resolved `config.toml` (for `--resume`)."""
    folder = worker_dir(output_dir, config["experiment"]["name"])
    shutil.rmtree(folder, ignore_errors=True)  # a crashed job's state, not resumed: start over
    folder.mkdir(parents=True)
    write_text(folder / "config.toml", dump_config(config))
    return folder


def latest_state(output_dir, experiment: str, config: dict, latest_partial) -> Path | None:
    """What `--resume` continues: the chief's latest `.partial-*` run, another worker's own folder."""
    if is_chief(config):
        return latest_partial(output_dir, experiment)
    folder = worker_dir(output_dir, experiment)
    return folder if (folder / "config.toml").is_file() else None
