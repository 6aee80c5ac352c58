"""The protocol of `vs_pytorch.py`: its worker processes, what each does, and how they are driven.

Each stack trains in its own worker process and serves from another (so each peak RSS is that
process's own). A worker reads one JSON command a line on stdin (`setup`, `epoch`, `infer`,
`latency`, `predict`, `export`, `quit`) and answers one `RESULT` line on stdout; `Remote` drives
it from the benchmark's process. The kseq side is the same for every model pair; the torch side
takes its network, input layout and whole-sequence call from the pair's module (`PAIRS`).
"""

from __future__ import annotations

import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytorch_cnn
import pytorch_gru

BATCH = 256  # inference batch (training batches are the experiment's `sampler.batch_size`)
RESULT = "@@result "
SCRIPT = Path(__file__).with_name("vs_pytorch.py")  # the entry point that starts a worker
PAIRS = {model: pair for pair in (pytorch_cnn, pytorch_gru) for model in pair.EXPERIMENTS}
EXPERIMENTS = {model: pair.EXPERIMENTS[model] for model, pair in PAIRS.items()}


def _median_time(fn, repeats: int = 1) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


class KseqTrain:
    """kseq's training path: config, sampler, model, compile and fit as `kseq.training.trainer` does."""

    def __init__(self, data: dict, args: dict):
        self.args, self.data = args, data
        self.x, self.y = data["x_train"], data["y_train"]
        self.batch = args["batch"]
        self.steps = math.ceil(len(self.y) / self.batch)

    def setup(self):
        from kseq.serving import runtime

        runtime.configure_threads("train", **_thread_args(self.args["kseq_train_threads"]))
        import keras
        import tensorflow as tf

        from kseq.training import trainer
        from kseq.config import load_config
        from kseq.data.pipeline import make_train_dataset
        from kseq.metrics import BalancedAccuracy, MacroF1

        config = load_config(EXPERIMENTS[self.args["model"]], self.args["set"])
        self.pre = config["preprocess"]
        keras.utils.set_random_seed(0)
        self.num_classes = int(self.y.max()) + 1
        transform = json.loads(self.args["transform"]) if self.args["transform"] else None
        model = trainer.build_window_model(config, self.x.shape[1:], self.num_classes, transform)
        model.compile(
            optimizer=trainer.make_optimizer(config["optimizer"], trainer.learning_rate(
                config["optimizer"], self.steps, config["train"]["epochs"])),
            loss=trainer.make_loss(config["loss"], self.y, self.num_classes),
            metrics=["accuracy", MacroF1(self.num_classes), BalancedAccuracy(self.num_classes)],
            steps_per_execution=config["train"]["steps_per_execution"],
        )
        self.model = model
        self.dataset = make_train_dataset(
            self.x, self.y, sampler=config["sampler"]["kind"], batch_size=self.batch, seed=0,
            target=config["sampler"]["target"],
        )
        if self.args["tf_data_autotune"] == "off":
            # What-if for a pipeline change: see benchmarks/README.md, section vs_pytorch.
            options = tf.data.Options()
            options.autotune.enabled = False
            self.dataset = self.dataset.with_options(options)
        self.epoch()  # warm-up: traces the train function
        return {"steps_per_execution": config["train"]["steps_per_execution"],
                "tf_data_autotune": self.args["tf_data_autotune"],
                "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}

    def epoch(self):
        self.model.fit(self.dataset, epochs=1, verbose=0)

    def sequence_model(self):
        """The trained model on whole sequences: windowed models averaged over their windows."""
        from kseq.models.preprocessing import sequence_classifier

        if not self.pre["window"]:
            return self.model
        _, steps, features = self.data["x_test"].shape
        return sequence_classifier(self.model, steps, features, self.pre["window"], self.pre["stride"])

    def predict(self):
        from kseq.data.pipeline import make_eval_dataset

        logits = self.sequence_model().predict(make_eval_dataset(self.data["x_test"], batch_size=BATCH), verbose=0)
        return logits.argmax(-1).tolist()

    def export(self, path):
        from kseq.serving import export

        export.export_serving(self.sequence_model(), path, [f"c{i}" for i in range(self.num_classes)])


class TorchTrain:
    """The seed's PyTorch loop: WeightedRandomSampler, DataLoader, AdamW, focal loss."""

    def __init__(self, data: dict, args: dict):
        self.args, self.data = args, data
        self.x, self.y = data["torch_x_train"], data["y_train"]
        self.batch = args["batch"]
        self.steps = math.ceil(len(self.y) / self.batch)

    def setup(self):
        import numpy as np
        import torch
        from torch.utils.data import BatchSampler, DataLoader, TensorDataset, WeightedRandomSampler

        self.torch = torch
        torch.manual_seed(0)
        x = torch.from_numpy(PAIRS[self.args["model"]].layout(self.x))
        y = torch.from_numpy(self.y.astype(np.int64))
        counts = np.bincount(self.y)
        weights = 1.0 / (np.sqrt(counts) if self.args["sampler_target"] == "sqrt" else counts)
        sampler = WeightedRandomSampler(torch.from_numpy(weights[self.y]), num_samples=len(self.y),
                                        replacement=True, generator=torch.Generator().manual_seed(0))
        if self.args["torch_loader"] == "seed":
            # The seed's loader: per-sample indexing and default collation.
            self.loader = DataLoader(TensorDataset(x, y), batch_size=self.batch, sampler=sampler, num_workers=0)
        else:
            # The same sampler, each batch gathered in one indexing op (faster).
            self.loader = DataLoader(_Batched(x, y), sampler=BatchSampler(sampler, self.batch, False),
                                     batch_size=None, num_workers=0)
        self.model = PAIRS[self.args["model"]].network(self.args, self.x.shape[1], self.x.shape[2], int(counts.size))
        # The seed's L2 as AdamW's decoupled weight decay; a config's kernel L2 is added to the loss.
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.args["learning_rate"],
                                           weight_decay=self.args["weight_decay"])
        self.kernels = [p for p in self.model.parameters() if p.dim() > 1]
        self.model.train()
        batches = (batch for _ in iter(int, 1) for batch in self.loader)  # endless

        def steps(n=3):
            for _ in range(n):
                self._step(*next(batches))

        self.threads = _calibrate_threads(torch, self.args["torch_threads"], steps)
        self.epoch()  # warm-up
        return {"threads": self.threads, "loader": self.args["torch_loader"]}

    def _step(self, xb, yb):
        loss = focal_loss(self.torch, self.model(xb), yb, **self.args["focal"])
        if self.args["l2"]:
            loss = loss + self.args["l2"] * sum((w * w).sum() for w in self.kernels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def epoch(self):
        self.torch.set_num_threads(self.threads)
        self.model.train()
        total = self.torch.zeros(())
        for xb, yb in self.loader:
            total += self._step(xb, yb)
        return float(total) / self.steps

    def predict(self):
        self.model.eval()
        x = self.torch.from_numpy(PAIRS[self.args["model"]].layout(self.data["torch_x_test"]))
        model = PAIRS[self.args["model"]].sequence_model(self.torch, self.model, self.args)
        with self.torch.inference_mode():  # in batches, as kseq's predict, to keep memory flat
            return [c for i in range(0, len(x), BATCH) for c in model(x[i : i + BATCH]).argmax(-1).tolist()]

    def export(self, path):
        self.torch.save(self.model.state_dict(), path)


class KseqServe:
    """The export that `kseq.serving.export.export_serving` wrote, served through `kseq.serving.runtime.ServingFunction`.

    `ServingFunction` runs the export's LiteRT model or XLA-compiled signature (checked against
    the SavedModel on load); the SavedModel's plain signature on TensorFlow is timed beside it
    (`on_tensorflow`).
    """

    def __init__(self, data: dict, args: dict):
        self.args, self.x = args, data["x_test"]

    def setup(self, path):
        from kseq.serving import runtime

        runtime.configure_threads("serve", **_thread_args(self.args["kseq_serve_threads"]))
        import tensorflow as tf

        self.serving = runtime.ServingFunction(path)
        self.on_tensorflow = runtime.ServingFunction(path, runtime="tensorflow")
        for _ in range(3):  # warm-up: first calls at each batch size
            for tensorflow in (False, True):
                self.infer(2, tensorflow)
                self.latency(10, tensorflow)
        return {"runtime": self.serving.runtime,
                "tensorflow intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                "tensorflow inter_op": tf.config.threading.get_inter_op_parallelism_threads()}

    def call(self, tensorflow: bool = False):
        serving = self.on_tensorflow if tensorflow else self.serving

        def call(batch):
            out = serving(batch)
            return out["probabilities"], out["class_id"]

        return call

    def infer(self, batches: int, tensorflow: bool = False):
        call = self.call(tensorflow)
        for i in range(batches):
            start = (i * BATCH) % (len(self.x) - BATCH)
            call(self.x[start : start + BATCH])

    def latency(self, calls: int, tensorflow: bool = False):
        return _latencies(self.call(tensorflow), self.x, calls)


class TorchServe:
    """The trained torch model, eager, `eval()` under `torch.inference_mode()`."""

    def __init__(self, data: dict, args: dict):
        self.args, self.x_np = args, data["torch_x_test"]

    def setup(self, path):
        import torch

        self.torch = torch
        self.x = torch.from_numpy(PAIRS[self.args["model"]].layout(self.x_np))
        window = self.args["window"] or self.x_np.shape[1]
        self.network = PAIRS[self.args["model"]].network(self.args, window, self.x_np.shape[2], int(self.args["num_classes"]))
        self.network.load_state_dict(torch.load(path))
        self.network.eval()
        self.model = PAIRS[self.args["model"]].sequence_model(torch, self.network, self.args)
        for _ in range(3):
            self.infer(2)
            self.latency(10)
        # Torch may change its thread count at any time: give each measurement its best.
        self.infer_threads = _calibrate_threads(torch, self.args["torch_threads"], lambda: self.infer(3))
        self.latency_threads = _calibrate_threads(torch, self.args["torch_threads"], lambda: self.latency(30))
        return {"threads (batch 256)": self.infer_threads, "threads (batch 1)": self.latency_threads}

    def __call__(self, batch):
        with self.torch.inference_mode():
            probabilities = self.torch.softmax(self.model(batch), dim=-1)
            return probabilities.numpy(), probabilities.argmax(-1).numpy()

    def infer(self, batches: int):
        if hasattr(self, "infer_threads"):
            self.torch.set_num_threads(self.infer_threads)
        for i in range(batches):
            start = (i * BATCH) % (len(self.x) - BATCH)
            self(self.x[start : start + BATCH])

    def latency(self, calls: int):
        if hasattr(self, "latency_threads"):
            self.torch.set_num_threads(self.latency_threads)
        return _latencies(self, self.x, calls)


def _thread_args(setting: str) -> dict:
    """"INTRA,INTER" -> keyword arguments of `kseq.serving.runtime.configure_threads`; "" -> its defaults."""
    if not setting:
        return {}
    intra, inter = (int(n) for n in setting.split(","))
    return {"intra_op": intra, "inter_op": inter}


def _latencies(call, x, calls: int) -> list[float]:
    times = []
    for i in range(calls):
        one = x[i % len(x)][None]
        t = time.perf_counter()
        call(one)
        times.append(time.perf_counter() - t)
    return times


def _calibrate_threads(torch, setting: str, run, rounds: int = 3) -> int:
    """`setting` threads, or with "auto" whichever of 1..cores runs `run` fastest (alternated, median)."""
    if setting != "auto":
        torch.set_num_threads(int(setting))
        return int(setting)
    candidates = sorted({1, os.cpu_count() or 1})
    times = {n: [] for n in candidates}
    for _ in range(rounds):
        for n in candidates:
            torch.set_num_threads(n)
            times[n].append(_median_time(run))
    best = min(candidates, key=lambda n: statistics.median(times[n]))
    torch.set_num_threads(best)
    return best


class _Batched:
    """A map-style dataset indexed by a whole list of indices at once."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, index):
        return self.x[index], self.y[index]


def focal_loss(torch, logits, y, gamma=2.0, alpha=0.25, label_smoothing=0.0):
    """kseq's `FocalLoss(gamma, alpha, label_smoothing)` on sparse labels from logits: the mean over
    samples of `sum_c alpha (1 - p_c)^gamma (-t_c log p_c)`, `t` the smoothed one-hot target (without
    smoothing, the true class's term alone)."""
    alpha = 1.0 if alpha is None else alpha
    log_p = torch.log_softmax(logits, dim=-1)
    if not label_smoothing:
        log_p = log_p.gather(1, y[:, None])[:, 0]
        p = log_p.exp().clamp(1e-7, 1 - 1e-7)
        return (alpha * (1 - p) ** gamma * -log_p).mean()
    classes = logits.shape[-1]
    targets = torch.nn.functional.one_hot(y, classes) * (1 - label_smoothing) + label_smoothing / classes
    p = log_p.exp().clamp(1e-7, 1 - 1e-7)
    return (alpha * (1 - p) ** gamma * -targets * log_p).sum(-1).mean()


WORKERS = {"kseq": KseqTrain, "torch": TorchTrain, "kseq-serve": KseqServe, "torch-serve": TorchServe}


def peak_rss_mib() -> float:
    """This process's peak resident set size.

    `VmHWM` from /proc, not `getrusage(RUSAGE_SELF).ru_maxrss`: on Linux the latter survives
    `fork` + `exec`, so a worker would report at least the driver's peak (which holds the data
    and TensorFlow) however small it is itself.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker_main(kind: str, data_path: str, args: dict) -> None:
    """Serve commands read from stdin, one JSON line each; answer on the original stdout."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # keep library chatter off the answer channel
    import numpy as np

    with np.load(data_path) as f:
        data = {k: f[k] for k in f.files}
    worker = WORKERS[kind](data, args)

    def answer(value):
        out.write(RESULT + json.dumps(value) + "\n")

    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        t = time.perf_counter()
        if op == "setup":
            answer({"info": worker.setup(**command), "seconds": time.perf_counter() - t})
        elif op == "epoch":
            worker.epoch()
            answer({"seconds": time.perf_counter() - t, "samples": worker.steps * worker.batch})
        elif op == "infer":
            worker.infer(**command)
            answer({"seconds": time.perf_counter() - t, "samples": command["batches"] * BATCH})
        elif op == "latency":
            answer({"times": worker.latency(**command)})
        elif op == "predict":
            answer({"class_id": worker.predict()})
        elif op == "export":
            worker.export(command["path"])
            answer({})
        elif op == "quit":
            answer({"peak_rss_mib": peak_rss_mib()})
            return


class Remote:
    """A worker process driven over its stdin/stdout."""

    def __init__(self, kind: str, data_path: str, worker_args: dict, log_dir: str):
        self.kind = kind
        self.log = open(Path(log_dir) / f"{kind}.log", "w+")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        if kind.startswith("torch"):
            # Torch's best on a shared machine: OpenMP threads that sleep rather than spin when idle
            # (spinning threads fight other processes for the cores; 2 threads then run 2-4x slower).
            env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--worker", kind, "--data", data_path,
             "--worker-args", json.dumps(worker_args)],
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

    def quit(self) -> float:
        rss = self("quit")["peak_rss_mib"]
        self.proc.wait()
        return rss
