"""Multi-worker training with real processes: two workers on loopback ports, TF_CONFIG."""

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from kseq.training import distribute
from kseq.config import load_config
from kseq.data.pipeline import make_train_dataset
from kseq.utils.errors import InputError
from kseq.training.trainer import prepare_data, train
from tests.conftest import TINY_ECG

ROOT = Path(__file__).parent.parent
# Dropout off: per-replica masks differ from one device's, so the batches are the only randomness left.
TWO_EPOCHS = ["model.dropout=0.0", "train.epochs=2", "train.early_stopping_patience=5"]


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(out: Path, *extra: str, stdin=None) -> list[subprocess.Popen]:
    ports = ",".join(map(str, free_ports(2)))
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("TF_CONFIG", None)
    return [subprocess.Popen([sys.executable, "-m", "tests.multi_worker", str(i), str(out), ports, *extra],
                             cwd=ROOT, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
            for i in range(2)]


def finish(workers, timeout=300) -> list[str]:
    outputs = []
    for w in workers:
        try:
            out, err = w.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for other in workers:
                other.kill()
            raise
        assert w.returncode == 0, err[-4000:]
        outputs.append(out)
    return outputs



@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """Two workers trained to the end, and the same experiment trained in one process."""
    out = tmp_path_factory.mktemp("multi_worker")
    outputs = finish(start_workers(out, *TWO_EPOCHS))
    single = train(load_config("ecg_cnn", [*TINY_ECG, *TWO_EPOCHS]), out / "single")
    return out, [np.load(out / f"worker{i}.npz") for i in range(2)], outputs, single


def weights(npz) -> list[np.ndarray]:
    return [npz[f"arr_{i}"] for i in range(sum(k.startswith("arr_") for k in npz.files))]


def test_both_workers_end_with_identical_weights_equal_to_one_process(two_workers):
    _, (w0, w1), _, single = two_workers
    assert list(w0["epochs"]) == list(w1["epochs"]) == [0, 1]
    assert len(weights(w0)) == len(single.model.get_weights())
    for a, b, reference in zip(weights(w0), weights(w1), single.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
        # Two replicas of 32 sum their gradients where one device sums 64: float rounding only.
        np.testing.assert_allclose(a, reference, rtol=1e-4, atol=1e-6)


def test_run_metrics_equal_a_single_process_run(two_workers):
    out, _, _, single = two_workers
    (run,) = (out / "runs" / "ecg_cnn").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["confusion_matrix"] == single.metrics["confusion_matrix"]
    for key in ("accuracy", "macro_f1", "balanced_accuracy"):
        assert metrics[key] == pytest.approx(single.metrics[key], abs=1e-9)
    assert metrics["epochs"] == 2


def test_only_the_chief_writes_the_run_folder(two_workers):
    out, (w0, w1), outputs, _ = two_workers
    (run,) = (out / "runs" / "ecg_cnn").iterdir()  # no .worker-1 state, no second run, no .partial
    assert not run.name.startswith(".") and str(w0["directory"]) == str(run)
    assert str(w1["directory"]) == "None"
    assert {p.name for p in run.iterdir()} >= {"config.toml", "model.keras", "serving", "metrics.json"}


def test_each_worker_gets_its_own_half_of_every_balanced_global_batch(two_workers):
    """Worker 0's share of each step followed by worker 1's is exactly the one-process sampler's
    batch: nothing duplicated across workers, nothing dropped, the class balance kept."""
    _, (w0, w1), _, single = two_workers
    fit_set = prepare_data(single.config).fit
    ids = np.arange(len(fit_set.y), dtype=np.float32).reshape(-1, 1, 1)
    reference = np.stack([x.numpy().ravel().astype(np.int64) for x, _ in
                          make_train_dataset(ids, fit_set.y, batch_size=64, seed=0, epochs=1)])
    assert w0["seen"].shape == w1["seen"].shape == (len(reference), 32)
    np.testing.assert_array_equal(np.concatenate([w0["seen"], w1["seen"]], axis=1), reference)
    shares = np.bincount(fit_set.y[reference.ravel()], minlength=5) / reference.size
    np.testing.assert_allclose(shares, 0.2, atol=0.07)  # uniform target; 832 draws, sd 0.014


def test_from_shards_each_worker_reads_its_own_files_in_balanced_batches(two_workers):
    """From shards, each worker's input pipeline draws its half of every global batch from its own
    files: no sequence reaches both workers, and every record carries its own class."""
    _, (w0, w1), _, single = two_workers
    y = prepare_data(single.config).fit.y
    steps = -(-len(y) // 64)
    for w in (w0, w1):
        assert w["shard_ids"].shape == w["shard_labels"].shape == (steps, 32)
        np.testing.assert_array_equal(y[w["shard_ids"]], w["shard_labels"])
    assert not set(w0["shard_ids"].ravel()) & set(w1["shard_ids"].ravel())
    labels = np.concatenate([w0["shard_labels"], w1["shard_labels"]], axis=1)
    np.testing.assert_allclose(np.bincount(labels.ravel(), minlength=5) / labels.size, 0.2, atol=0.07)


def test_two_workers_train_from_shards_to_the_end(tmp_path):
    """`--data shards/` under multi_worker: each worker streams its own files, both end with the
    same weights, and the chief's run folder holds the whole test split's metrics."""
    from kseq.data import make_heartbeats, write_shards

    train_set, test_set = make_heartbeats(scale=0.01, seed=0)
    folder = write_shards(tmp_path / "shards", train_set, test_set, records_per_shard=64)
    finish(start_workers(tmp_path, *TWO_EPOCHS, "data.source=shards", f"data.path={folder}"))
    w0, w1 = (np.load(tmp_path / f"worker{i}.npz") for i in range(2))
    assert list(w0["epochs"]) == list(w1["epochs"]) == [0, 1]
    for a, b in zip(weights(w0), weights(w1), strict=True):
        np.testing.assert_array_equal(a, b)
    (run,) = (tmp_path / "runs" / "ecg_cnn").iterdir()
    assert str(w0["directory"]) == str(run) and str(w1["directory"]) == "None"
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.sum(metrics["confusion_matrix"], axis=1).tolist() == np.bincount(test_set.y, minlength=5).tolist()


def test_chief_rule_follows_tf_config(monkeypatch):
    config = load_config("ecg_cnn", ["train.strategy=multi_worker"])
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    for task, chief in ((("worker", 0), True), (("worker", 1), False)):
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": dict(zip(("type", "index"), task))}))
        assert distribute.is_chief(config) is chief and distribute.num_workers(config) == 2
    with_chief = {"chief": ["127.0.0.1:3"], **cluster}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": with_chief, "task": {"type": "worker", "index": 0}}))
    assert not distribute.is_chief(config) and distribute.num_workers(config) == 3
    assert distribute.is_chief(load_config("ecg_cnn"))  # TF_CONFIG means nothing without multi_worker
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(InputError, match="TF_CONFIG"):
        distribute.is_chief(config)


def test_killed_worker_resumes_from_the_last_epoch_when_the_job_restarts(two_workers, tmp_path):
    """Keras' fault-tolerance path: worker 1 dies during epoch 1, the job is restarted with
    `--resume`, and every worker restores its `BackupAndRestore` state of epoch 0 and trains
    epoch 1 only, on the batches an uninterrupted run draws."""
    _, _, _, single = two_workers
    workers = start_workers(tmp_path, *TWO_EPOCHS, "--hang-after-epoch0", stdin=subprocess.PIPE)
    watchdog = threading.Timer(300, lambda: [w.kill() for w in workers])
    watchdog.start()
    try:
        for w in workers:  # both finished epoch 0 and wait in the callback: the job is mid-training
            assert "epoch 0 saved" in iter_until(w.stdout, "epoch 0 saved"), w.stderr.read()[-3000:]
        workers[1].kill()  # the lost worker
        workers[0].kill()  # the chief would fail on its lost peer; the job is then restarted
        for w in workers:
            w.communicate()
    finally:
        watchdog.cancel()
    (partial,) = (tmp_path / "runs" / "ecg_cnn").glob(".partial-*")
    assert json.loads((partial / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    assert (tmp_path / "runs" / "ecg_cnn" / ".worker-1" / "backup").is_dir()

    finish(start_workers(tmp_path, *TWO_EPOCHS, "--resume"))
    w0, w1 = (np.load(tmp_path / f"worker{i}.npz") for i in range(2))
    assert list(w0["epochs"]) == [0, 1]  # history.csv: epoch 0 from the first attempt, epoch 1 after resuming
    assert sorted(p.name for p in (tmp_path / "runs" / "ecg_cnn").iterdir()) == [partial.name.removeprefix(".partial-")]
    for a, b, reference in zip(weights(w0), weights(w1), single.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, reference, rtol=1e-4, atol=1e-6)


def iter_until(stream, text: str) -> str:
    """Lines read from `stream` up to the first holding `text` (or to its end)."""
    seen = ""
    for line in stream:
        seen += line
        if text in line:
            break
    return seen
