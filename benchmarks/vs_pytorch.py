"""kseq's `ecg_cnn` training path against the seed's PyTorch training loop, side by side in one run.

Both stacks train the seed's heartbeat CNN (Conv1d 1->32 k5 same + ReLU, Conv1d 32->64 k5 same +
ReLU, MaxPool 2, Flatten, Dense 128 ReLU + Dropout, Dense 64 ReLU + Dropout, Dense 5 logits) on
the same synthetic MIT-BIH-shaped data (`kseq.data.synthetic.make_heartbeats`, gap-filled with
`kseq.data.preprocess.fill_gaps` as `ecg_cnn` does), with class-balanced batches of 256, AdamW
(lr 1e-3, weight decay 1e-4) and the focal loss of `ecg_cnn.toml`:

- kseq: `make_train_dataset(..., sampler="rejection")`, `build_model("cnn", ...)` with ecg_cnn's
  hyperparameters, compiled as `kseq.training.train` compiles it (its optimizer, loss, metrics and
  `steps_per_execution`); inference through the exported SavedModel's `serving_default` signature
  (`kseq.export.export_serving`, then `tf.saved_model.load`).
- torch: `WeightedRandomSampler(1 / n_c per sample, num_samples=N, replacement=True)`, `DataLoader`
  batch 256, `AdamW`, the same focal loss; inference with the eager model under
  `torch.inference_mode()`, returning the same outputs (probabilities and class id).

Each stack runs in its own worker process (so each one's peak RSS is its own) and the two are
driven in alternation by this process: one kseq epoch, one torch epoch, and so on (which goes
first alternates each round), after a warm-up epoch each. Inference and latency measurements are
interleaved the same way. Figures are medians over the rounds.

    python benchmarks/vs_pytorch.py            # the full run (see benchmarks/README.md)
    python benchmarks/vs_pytorch.py --quick    # a short smoke run

The last line is exactly
`train_speedup=<kseq/torch samples/s> infer_speedup=<kseq/torch throughput> latency_ratio=<kseq/torch latency>`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCH = 256
RESULT = "@@result "


# --------------------------------------------------------------------------- workers


class Worker:
    """A training stack in this process: `setup`, `epoch`, `infer`, `latency`, `predict`."""

    def __init__(self, data: dict, args: dict):
        self.args = args
        self.x, self.y = data["x_train"], data["y_train"]
        self.x_test = data["x_test"]
        self.steps = math.ceil(len(self.y) / BATCH)


class KsqWorker(Worker):
    name = "kseq"

    def setup(self):
        import tensorflow as tf

        import kseq
        from kseq import export, training
        from kseq.config import load_config
        from kseq.data.pipeline import make_train_dataset
        from kseq.metrics import BalancedAccuracy, MacroF1

        self.tf = tf
        config = load_config("ecg_cnn", self.args["set"])
        self.config = config
        keras = __import__("keras")
        keras.utils.set_random_seed(0)
        hp = {k: v for k, v in config["model"].items() if k != "name"}
        num_classes = int(self.y.max()) + 1
        model = kseq.build_model(config["model"]["name"], self.x.shape[1:], num_classes, **hp)
        model.compile(
            optimizer=training.make_optimizer(config["optimizer"], self.steps, config["train"]["epochs"]),
            loss=training.make_loss(config["loss"], self.y, num_classes),
            metrics=["accuracy", MacroF1(num_classes), BalancedAccuracy(num_classes)],
            steps_per_execution=config["train"]["steps_per_execution"],
        )
        self.model = model
        self.dataset = make_train_dataset(
            self.x, self.y, sampler=config["sampler"]["kind"], batch_size=BATCH, seed=0,
            target=config["sampler"]["target"],
        )
        self.epoch()  # warm-up: traces the train function
        self.tmp = tempfile.TemporaryDirectory(prefix="kseq-bench-")
        export.export_serving(model, Path(self.tmp.name) / "serving", [f"c{i}" for i in range(num_classes)])
        self.serve = tf.saved_model.load(str(Path(self.tmp.name) / "serving")).signatures["serving_default"]
        self.infer(2)
        self.latency(20)
        return {"steps_per_execution": config["train"]["steps_per_execution"],
                "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}

    def epoch(self):
        self.model.fit(self.dataset, epochs=1, verbose=0)

    def _call(self, batch):
        out = self.serve(sequence=self.tf.constant(batch))
        return out["probabilities"].numpy(), out["class_id"].numpy()

    def infer(self, batches: int):
        for i in range(batches):
            start = (i * BATCH) % (len(self.x_test) - BATCH)
            self._call(self.x_test[start : start + BATCH])

    def latency(self, calls: int):
        times = []
        for i in range(calls):
            one = self.x_test[i % len(self.x_test)][None]
            t = time.perf_counter()
            self._call(one)
            times.append(time.perf_counter() - t)
        return times

    def predict(self):
        return [int(c) for i in range(0, len(self.x_test), BATCH) for c in self._call(self.x_test[i : i + BATCH])[1]]


class TorchWorker(Worker):
    name = "torch"

    def setup(self):
        import numpy as np
        import torch
        from torch import nn
        from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

        self.torch = torch
        torch.set_num_threads(self.args["torch_threads"])
        torch.manual_seed(0)
        channels_first = np.ascontiguousarray(self.x.transpose(0, 2, 1))  # (N, 1, 187): Conv1d's NCL
        x, y = torch.from_numpy(channels_first), torch.from_numpy(self.y.astype(np.int64))
        self.x_test_t = torch.from_numpy(np.ascontiguousarray(self.x_test.transpose(0, 2, 1)))
        counts = np.bincount(self.y)
        weights = torch.from_numpy((1.0 / counts)[self.y])
        sampler = WeightedRandomSampler(weights, num_samples=len(self.y), replacement=True,
                                        generator=torch.Generator().manual_seed(0))
        if self.args["torch_loader"] == "seed":
            # The seed's loop: per-sample indexing and default collation.
            self.loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, sampler=sampler, num_workers=0)
        else:
            # Its best form: the same sampler, each batch gathered in one indexing op.
            self.loader = DataLoader(_Batched(x, y), sampler=torch.utils.data.BatchSampler(sampler, BATCH, False),
                                     batch_size=None, num_workers=0)
        steps, features = self.x.shape[1], self.x.shape[2]
        self.model = nn.Sequential(
            nn.Conv1d(features, 32, 5, padding="same"), nn.ReLU(),
            nn.Conv1d(32, 64, 5, padding="same"), nn.ReLU(),
            nn.MaxPool1d(2), nn.Flatten(),
            nn.Linear(64 * (steps // 2), 128), nn.ReLU(), nn.Dropout(0.6),
            nn.Linear(128, 64), nn.ReLU(), nn.Dropout(0.6),
            nn.Linear(64, int(counts.size)),
        )
        # L2 as decoupled weight decay (AdamW), as in the seed.
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=1e-4)
        self.epoch()  # warm-up
        self.infer(2)
        self.latency(20)
        return {"threads": torch.get_num_threads(), "loader": self.args["torch_loader"]}

    def epoch(self):
        torch, model = self.torch, self.model
        model.train()
        total = torch.zeros(())
        for xb, yb in self.loader:
            loss = _focal_loss(torch, model(xb), yb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.detach()
        return float(total) / self.steps

    def _call(self, batch):
        with self.torch.inference_mode():
            probabilities = self.torch.softmax(self.model(batch), dim=-1)
            return probabilities.numpy(), probabilities.argmax(-1).numpy()

    def infer(self, batches: int):
        self.model.eval()
        for i in range(batches):
            start = (i * BATCH) % (len(self.x_test_t) - BATCH)
            self._call(self.x_test_t[start : start + BATCH])

    def latency(self, calls: int):
        self.model.eval()
        times = []
        for i in range(calls):
            one = self.x_test_t[i % len(self.x_test_t)][None]
            t = time.perf_counter()
            self._call(one)
            times.append(time.perf_counter() - t)
        return times

    def predict(self):
        self.model.eval()
        return [int(c) for i in range(0, len(self.x_test_t), BATCH) for c in self._call(self.x_test_t[i : i + BATCH])[1]]


class _Batched:
    """A map-style dataset indexed by a whole list of indices at once."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, index):
        return self.x[index], self.y[index]


def _focal_loss(torch, logits, y, gamma=2.0, alpha=0.25):
    """kseq's FocalLoss(gamma, alpha) on sparse labels, from logits: mean of alpha (1-p_t)^gamma -log p_t."""
    log_p = torch.log_softmax(logits, dim=-1).gather(1, y[:, None])[:, 0]
    p = log_p.exp().clamp(1e-7, 1 - 1e-7)
    return (alpha * (1 - p) ** gamma * -log_p).mean()


def worker_main(kind: str, data_path: str, args: dict) -> None:
    """Serve commands read from stdin, one JSON line each; answer on the original stdout."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # keep library chatter off the answer channel
    import numpy as np

    with np.load(data_path) as f:
        data = {k: f[k] for k in f.files}
    worker = (KsqWorker if kind == "kseq" else TorchWorker)(data, args)

    def answer(value):
        out.write(RESULT + json.dumps(value) + "\n")

    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "setup":
            t = time.perf_counter()
            info = worker.setup()
            answer({"info": info, "seconds": time.perf_counter() - t})
        elif op == "epoch":
            t = time.perf_counter()
            worker.epoch()
            answer({"seconds": time.perf_counter() - t, "samples": worker.steps * BATCH})
        elif op == "infer":
            t = time.perf_counter()
            worker.infer(command["batches"])
            answer({"seconds": time.perf_counter() - t, "samples": command["batches"] * BATCH})
        elif op == "latency":
            answer({"times": worker.latency(command["calls"])})
        elif op == "predict":
            answer({"class_id": worker.predict()})
        elif op == "quit":
            # ru_maxrss is in KiB on Linux.
            answer({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
            return


class Remote:
    """A worker process driven over its stdin/stdout."""

    def __init__(self, kind: str, data_path: str, args: argparse.Namespace, log_dir: str):
        self.kind = kind
        self.log = open(Path(log_dir) / f"{kind}.log", "w+")
        worker_args = json.dumps({"set": args.set, "torch_threads": args.torch_threads, "torch_loader": args.torch_loader})
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", kind, "--data", data_path, "--worker-args", worker_args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env,
        )

    def __call__(self, op: str, **kwargs) -> dict:
        self.proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(RESULT):
                return json.loads(line[len(RESULT):])
        self.log.seek(0)
        raise RuntimeError(f"{self.kind} worker died during {op!r}:\n{self.log.read()[-4000:]}")


# --------------------------------------------------------------------------- driver


def make_data(scale: float, path: str) -> dict:
    """The synthetic heartbeats, gap-filled as `ecg_cnn` does, saved for both workers."""
    import numpy as np

    from kseq.config import load_config
    from kseq.data.preprocess import fill_gaps
    from kseq.data.synthetic import make_heartbeats

    pre = load_config("ecg_cnn")["preprocess"]
    train, test = make_heartbeats(scale=scale, seed=0)
    x_train = fill_gaps(train.x, pre["fill_gaps"], pre["spline_order"])
    x_test = fill_gaps(test.x, pre["fill_gaps"], pre["spline_order"])
    # Any NaN a gap filler leaves (a feature with no valid sample) becomes 0 for both stacks.
    x_train, x_test = (np.nan_to_num(a, nan=0.0).astype(np.float32) for a in (x_train, x_test))
    np.savez(path, x_train=x_train, y_train=train.y.astype(np.int64), x_test=x_test, y_test=test.y.astype(np.int64))
    return {"n_train": len(train.y), "n_test": len(test.y), "y_test": test.y, "class_names": train.class_names}


def alternate(workers, round_: int):
    """The workers in this round's order: who goes first alternates."""
    return workers if round_ % 2 == 0 else workers[::-1]


def macro_f1(y_true, y_pred, num_classes: int) -> float:
    import numpy as np

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    scores = []
    for c in range(num_classes):
        tp = np.sum((y_pred == c) & (y_true == c))
        predicted, actual = np.sum(y_pred == c), np.sum(y_true == c)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return float(np.mean(scores))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--scale", type=float, help="fraction of MIT-BIH's size (default 0.25; --quick 0.03)")
    parser.add_argument("--rounds", type=int, help="timed epochs per stack, alternated (default 5; --quick 2)")
    parser.add_argument("--infer-rounds", type=int, default=5, help="alternated inference rounds")
    parser.add_argument("--latency-calls", type=int, default=300, help="batch-1 calls per stack")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override ecg_cnn's config for kseq, as `kseq.experiments.run --set`")
    parser.add_argument("--torch-threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    parser.add_argument("--torch-loader", choices=("batched", "seed"), default="batched",
                        help="batched: one indexing op per batch (torch's fastest); seed: per-sample collation")
    parser.add_argument("--worker", choices=("kseq", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--worker-args", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.data, json.loads(args.worker_args))
        return

    scale = args.scale or (0.03 if args.quick else 0.25)
    rounds = args.rounds or (2 if args.quick else 5)
    infer_rounds = 2 if args.quick else args.infer_rounds
    latency_calls = 60 if args.quick else args.latency_calls

    with tempfile.TemporaryDirectory(prefix="vs-pytorch-") as tmp:
        data_path = str(Path(tmp) / "data.npz")
        meta = make_data(scale, data_path)
        print(f"data: {meta['n_train']} training / {meta['n_test']} test beats (scale {scale}), "
              f"batch {BATCH}, {math.ceil(meta['n_train'] / BATCH)} steps per epoch; {os.cpu_count()} CPUs", flush=True)
        workers = [Remote("kseq", data_path, args, tmp), Remote("torch", data_path, args, tmp)]
        results = {w.kind: {"epoch_s": [], "infer_sps": [], "latency_s": []} for w in workers}
        for w in workers:  # one at a time, so neither warms up while the other is measured
            setup = w("setup")
            print(f"{w.kind}: setup + warm-up {setup['seconds']:.1f} s, {setup['info']}", flush=True)
        samples = None
        for r in range(rounds):
            for w in alternate(workers, r):
                epoch = w("epoch")
                samples = epoch["samples"]
                results[w.kind]["epoch_s"].append(epoch["seconds"])
            print(f"round {r + 1}/{rounds}: " + ", ".join(
                f"{k} {v['epoch_s'][-1]:.2f} s" for k, v in results.items()), flush=True)
        infer_batches = max(4, min(40, meta["n_test"] // BATCH))
        for r in range(infer_rounds):
            for w in alternate(workers, r):
                run = w("infer", batches=infer_batches)
                results[w.kind]["infer_sps"].append(run["samples"] / run["seconds"])
        chunk = max(1, latency_calls // 3)
        for r in range(3):
            for w in alternate(workers, r):
                results[w.kind]["latency_s"] += w("latency", calls=chunk)["times"]
        num_classes = len(meta["class_names"])
        for w in workers:
            results[w.kind]["macro_f1"] = macro_f1(meta["y_test"], w("predict")["class_id"], num_classes)
            results[w.kind]["peak_rss_mib"] = w("quit")["peak_rss_mib"]
            w.proc.wait()

    med = {k: {"epoch_s": statistics.median(v["epoch_s"]),
               "train_sps": statistics.median(samples / s for s in v["epoch_s"]),
               "infer_sps": statistics.median(v["infer_sps"]),
               "latency_ms": 1e3 * statistics.median(v["latency_s"]),
               "macro_f1": v["macro_f1"], "peak_rss_mib": v["peak_rss_mib"]} for k, v in results.items()}
    rows = [("training samples/s", "train_sps", "{:,.0f}"), ("epoch time (s)", "epoch_s", "{:.2f}"),
            ("inference samples/s (batch 256)", "infer_sps", "{:,.0f}"),
            ("latency, batch 1 (ms, median)", "latency_ms", "{:.3f}"),
            ("peak RSS (MiB)", "peak_rss_mib", "{:,.0f}"),
            (f"test macro-F1 after {rounds + 1} epochs", "macro_f1", "{:.3f}")]
    print(f"\nmedians over {rounds} alternated epochs, {infer_rounds} inference rounds, "
          f"{len(results['kseq']['latency_s'])} latency calls per stack")
    print(f"{'':34}{'kseq':>12}{'torch':>12}{'kseq/torch':>12}")
    for label, key, fmt in rows:
        k, t = med["kseq"][key], med["torch"][key]
        print(f"{label:34}{fmt.format(k):>12}{fmt.format(t):>12}{k / t if t else float('nan'):>12.2f}")
    train_speedup = med["kseq"]["train_sps"] / med["torch"]["train_sps"]
    infer_speedup = med["kseq"]["infer_sps"] / med["torch"]["infer_sps"]
    latency_ratio = med["kseq"]["latency_ms"] / med["torch"]["latency_ms"]
    print(f"train_speedup={train_speedup:.2f} infer_speedup={infer_speedup:.2f} latency_ratio={latency_ratio:.2f}")


if __name__ == "__main__":
    main()
