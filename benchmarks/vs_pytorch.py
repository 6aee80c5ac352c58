"""kseq's training and serving paths against the seeds' PyTorch loops, side by side in one run.

`--model cnn` (default) is the heartbeat CNN, `--model gru` the heartbeat GRU of `ecg_gru` (2 x 32
bidirectional GRU over the 187 steps of a beat) and `--model bigru` the pain seed's best model,
`pain_bigru` (3 x 100 bidirectional GRU on sliding windows of 40 steps, stride 20, of the
embedded pain data, each sequence's logits the mean of its 7 windows'). The recurrent models use
their experiment's config throughout (sampler target, batch size, focal loss with its alpha and
label smoothing, L2, AdamW); torch gets `nn.GRU` with the same layers, the same dropout on
every layer's inputs, the last step of both directions into one linear layer, the same L2 added
to its loss, `WeightedRandomSampler` weighted like kseq's sampler target (1/n_c for uniform,
1/sqrt(n_c) for sqrt), and for the pain data the windows of the feature-transformed sequences
(kseq's `FeatureTransform`, applied once beforehand; kseq applies it in its graph). No
validation split: both train on the whole training split. A recurrent export's XLA-compiled
signature takes one sequence, so `ServingFunction` answers batch-1 calls compiled by XLA and
batches of 256 on TensorFlow (the "kseq on TensorFlow" rows then differ from kseq's by noise
alone for batch 256).

For `--model cnn`, both stacks train the seed's heartbeat CNN (Conv1d 1->32 k5 same + ReLU,
Conv1d 32->64 k5 same + ReLU, MaxPool 2, Flatten, Dense 128 ReLU + Dropout, Dense 64 ReLU + Dropout, Dense 5 logits) on
the same synthetic MIT-BIH-shaped data (`kseq.data.synthetic.make_heartbeats`, gap-filled with
`kseq.data.preprocess.fill_gaps` as `ecg_cnn` does), with class-balanced batches of 256, AdamW
(lr 1e-3, weight decay 1e-4) and the focal loss of `ecg_cnn.toml`:

- kseq: `make_train_dataset(..., sampler="rejection")`, `build_model("cnn", ...)` with ecg_cnn's
  hyperparameters, compiled as `kseq.training.trainer` compiles it (its optimizer, loss, metrics and
  `steps_per_execution`), `fit` one epoch at a time. Serving: the export that
  `kseq.serving.export.export_serving` wrote (SavedModel and its LiteRT compilation `model.tflite`),
  loaded in a fresh process through `kseq.serving.runtime.ServingFunction`, which runs LiteRT (the CNN)
  or the XLA-compiled signature (single requests to the recurrent models) after checking it
  against the SavedModel; the process starts with `kseq.serving.runtime.configure_threads("serve")`. The
  SavedModel's signature on TensorFlow is timed beside it and printed as its own rows.
- torch: `WeightedRandomSampler(1 / n_c per sample, num_samples=N, replacement=True)`, `DataLoader`
  batch 256 (`num_workers=0`), `AdamW`, the same focal loss. Serving: the saved `state_dict` in
  a fresh process, the eager model `eval()` under `torch.inference_mode()`, returning the same
  outputs (probabilities and class id). Torch gets its best settings: `OMP_WAIT_POLICY=PASSIVE`
  and, for each of training, batch-256 and batch-1 calls, whichever of 1 or all cores' threads
  measures faster at the start (`--torch-threads auto`).

Each stack trains in its own worker process and serves from another (so each peak RSS is that
process's own), all driven from this process in alternation: one kseq epoch, one torch epoch, and
so on (who goes first alternates each round), after a warm-up epoch each; inference and latency
rounds are interleaved the same way. Figures are medians over the rounds.

    python benchmarks/vs_pytorch.py            # the full run (see benchmarks/README.md)
    python benchmarks/vs_pytorch.py --quick    # a short smoke run
    python benchmarks/vs_pytorch.py --model bigru
    python benchmarks/vs_pytorch.py --model gru --scale 0.05

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

BATCH = 256  # inference batch (training batches are the experiment's `sampler.batch_size`)
RESULT = "@@result "
EXPERIMENTS = {"cnn": "ecg_cnn", "gru": "ecg_gru", "bigru": "pain_bigru"}


# --------------------------------------------------------------------------- workers


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
            optimizer=trainer.make_optimizer(config["optimizer"], self.steps, config["train"]["epochs"]),
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
        x = torch.from_numpy(torch_layout(self.args, self.x))
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
        self.model = torch_model(self.args, self.x.shape[1], self.x.shape[2], int(counts.size))
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
        x = self.torch.from_numpy(torch_layout(self.args, self.data["torch_x_test"]))
        model = sequence_model(self.torch, self.model, self.args)
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
        self.x = torch.from_numpy(torch_layout(self.args, self.x_np))
        window = self.args["window"] or self.x_np.shape[1]
        self.network = torch_model(self.args, window, self.x_np.shape[2], int(self.args["num_classes"]))
        self.network.load_state_dict(torch.load(path))
        self.network.eval()
        self.model = sequence_model(torch, self.network, self.args)
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


def torch_layout(args: dict, x):
    """(N, T, F) as the torch model takes it: (N, F, T) for Conv1d, unchanged for batch-first GRUs."""
    import numpy as np

    return np.ascontiguousarray(x.transpose(0, 2, 1) if args["model"] == "cnn" else x)


def torch_model(args: dict, steps: int, features: int, num_classes: int):
    """The experiment's network in torch: the seed CNN (ecg_cnn) or a GRU stack (ecg_gru, pain_bigru)."""
    from torch import nn

    if args["model"] != "cnn":
        return torch_gru(features, num_classes, **args["rnn"])
    return nn.Sequential(
        nn.Conv1d(features, 32, 5, padding="same"), nn.ReLU(),
        nn.Conv1d(32, 64, 5, padding="same"), nn.ReLU(),
        nn.MaxPool1d(2), nn.Flatten(),
        nn.Linear(64 * (steps // 2), 128), nn.ReLU(), nn.Dropout(0.6),
        nn.Linear(128, 64), nn.ReLU(), nn.Dropout(0.6),
        nn.Linear(64, num_classes),
    )


def torch_gru(features: int, num_classes: int, *, units: int, layers: int, bidirectional: bool, dropout: float):
    """`kseq.build_model("rnn", cell="gru", ...)` in torch: dropout on every layer's inputs, the last
    step of both directions, one linear layer to the logits."""
    import torch
    from torch import nn

    class GRUClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_dropout = nn.Dropout(dropout)
            self.gru = nn.GRU(features, units, layers, batch_first=True, bidirectional=bidirectional,
                              dropout=dropout if layers > 1 else 0.0)
            self.directions = 2 if bidirectional else 1
            self.head = nn.Linear(units * self.directions, num_classes)

        def forward(self, x):
            _, last = self.gru(self.input_dropout(x))  # (layers * directions, N, units)
            return self.head(torch.cat(list(last[-self.directions:]), dim=-1))

    return GRUClassifier()


def sequence_model(torch, model, args: dict):
    """`model` on whole sequences: windowed models (`preprocess.window`) averaged over their windows,
    folded into the batch as kseq's `sequence_classifier` does."""
    window, stride = args["window"], args["stride"]
    if not window:
        return model

    def call(x):  # (B, T, F)
        windows = x.unfold(1, window, stride).transpose(2, 3)  # (B, W, window, F)
        b, w = windows.shape[:2]
        return model(windows.reshape(b * w, window, x.shape[2])).reshape(b, w, -1).mean(1)

    return call


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
            [sys.executable, os.path.abspath(__file__), "--worker", kind, "--data", data_path,
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


# --------------------------------------------------------------------------- driver


def make_data(model: str, scale: float, path: str) -> dict:
    """The experiment's data, prepared as its config says, saved for the workers.

    Heartbeats (`cnn`, `gru`): gap-filled as the config does; both stacks train on the beats.
    Pain (`bigru`): the feature transform fitted on the training split (`kseq.training.trainer.prepare_arrays`,
    no validation split); kseq trains on the raw windows (its model applies the transform), torch
    on the windows of the transformed sequences. Returns what the driver and the workers need.
    """
    import keras
    import numpy as np

    from kseq.training import trainer
    from kseq.config import load_config
    from kseq.data.preprocess import windows_to_examples
    from kseq.data.synthetic import make_heartbeats, make_pain
    from kseq.models.preprocessing import FeatureTransform

    config = load_config(EXPERIMENTS[model], ["data.validation_split=0.0"])
    pre = config["preprocess"]
    if model == "bigru":
        train, test = make_pain(seed=0, n_test=600)  # 661 training sequences; 600 test ones fill batches of 256
    else:
        train, test = make_heartbeats(scale=scale, seed=0)
    splits = trainer.prepare_arrays(config, train, test)
    fit_set, test_set, transform = splits.fit, splits.test, splits.transform
    # Any NaN a gap filler leaves (a feature with no valid sample) becomes 0 for both stacks.
    x_train, x_test = (np.nan_to_num(a, nan=0.0).astype(np.float32) for a in (fit_set.x, test_set.x))
    torch_x_train, torch_x_test = x_train, x_test
    if transform is not None:
        apply = FeatureTransform(transform)
        torch_x_train, torch_x_test = (keras.ops.convert_to_numpy(apply(a)) for a in (x_train, x_test))
    y_train = fit_set.y
    if pre["window"]:
        x_train, _, _ = windows_to_examples(x_train, y_train, pre["window"], pre["stride"])
        torch_x_train, y_train, _ = windows_to_examples(torch_x_train, y_train, pre["window"], pre["stride"])
    np.savez(path, x_train=x_train, y_train=y_train.astype(np.int64), x_test=x_test, y_test=test_set.y.astype(np.int64),
             torch_x_train=torch_x_train, torch_x_test=torch_x_test)
    loss, hp = config["loss"], config["model"]
    worker_args = {
        "model": model, "batch": config["sampler"]["batch_size"], "sampler_target": config["sampler"]["target"],
        "transform": json.dumps(transform) if transform is not None else "",
        "window": pre["window"] or 0, "stride": pre["stride"] or pre["window"] or 0,
        "learning_rate": config["optimizer"]["learning_rate"], "weight_decay": config["optimizer"]["weight_decay"],
        "focal": {"gamma": loss["gamma"], "alpha": loss.get("alpha"), "label_smoothing": loss.get("label_smoothing", 0.0)},
        "l2": hp.get("l2", 0.0),
        "rnn": None if model == "cnn" else {"units": hp["units"], "layers": hp["layers"],
                                            "bidirectional": hp["bidirectional"],
                                            "dropout": hp["recurrent_input_dropout"]},
    }
    return {"n_train": len(y_train), "n_test": len(test_set.y), "y_test": test_set.y,
            "class_names": fit_set.class_names, "steps": x_test.shape[1], "worker_args": worker_args}


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
    parser.add_argument("--model", choices=tuple(EXPERIMENTS), default="cnn",
                        help="cnn: ecg_cnn (default); gru: ecg_gru; bigru: pain_bigru")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--scale", type=float,
                        help="heartbeats: fraction of MIT-BIH's size (default: the config's; --quick 0.03)")
    parser.add_argument("--rounds", type=int, help="timed epochs per stack, alternated (default 4; --quick 2)")
    parser.add_argument("--infer-rounds", type=int, default=10, help="alternated batch-256 inference rounds")
    parser.add_argument("--latency-calls", type=int, default=300, help="batch-1 calls per stack")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override the experiment's config for kseq, as `kseq.experiments.run --set`")
    parser.add_argument("--torch-threads", default="auto",
                        help="torch.set_num_threads; auto (default): the fastest of 1..cores, per measurement")
    parser.add_argument("--torch-loader", choices=("batched", "seed"), default="batched",
                        help="batched (default): one indexing op per batch; seed: per-sample collation")
    parser.add_argument("--kseq-train-threads", default="", metavar="INTRA,INTER",
                        help="override kseq.serving.runtime's training thread counts (0: TensorFlow's default)")
    parser.add_argument("--kseq-serve-threads", default="", metavar="INTRA,INTER",
                        help="override kseq.serving.runtime's serving thread counts (0: TensorFlow's default)")
    parser.add_argument("--tf-data-autotune", choices=("as-is", "off"), default="as-is",
                        help="off: turn tf.data autotuning off on kseq's training dataset (what-if)")
    parser.add_argument("--worker", choices=tuple(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--worker-args", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.data, json.loads(args.worker_args))
        return

    from kseq.config import load_config

    scale = args.scale or (0.03 if args.quick else load_config(EXPERIMENTS[args.model])["data"].get("scale", 1.0))
    rounds = args.rounds or (2 if args.quick else 4)
    infer_rounds = 2 if args.quick else args.infer_rounds
    latency_calls = 60 if args.quick else args.latency_calls

    with tempfile.TemporaryDirectory(prefix="vs-pytorch-") as tmp:
        data_path = str(Path(tmp) / "data.npz")
        meta = make_data(args.model, scale, data_path)
        num_classes = len(meta["class_names"])
        worker_args = {**meta["worker_args"], "set": args.set, "torch_threads": args.torch_threads,
                       "torch_loader": args.torch_loader, "kseq_train_threads": args.kseq_train_threads,
                       "tf_data_autotune": args.tf_data_autotune, "kseq_serve_threads": args.kseq_serve_threads,
                       "num_classes": num_classes}
        batch = worker_args["batch"]
        steps = math.ceil(meta["n_train"] / batch)
        print(f"{EXPERIMENTS[args.model]}: {meta['n_train']} training examples / {meta['n_test']} test sequences of "
              f"{meta['steps']} steps (heartbeat scale {scale}), training batch {batch}, {steps} steps per epoch; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
        results = {k: {"epoch_s": [], "infer_sps": [], "latency_s": [], "tf_infer_sps": [], "tf_latency_s": []}
                   for k in ("kseq", "torch")}

        # Training: one epoch each in turn, after a warm-up epoch each.
        train = [Remote("kseq", data_path, worker_args, tmp), Remote("torch", data_path, worker_args, tmp)]
        for w in train:  # one at a time, so neither warms up while the other is measured
            setup = w("setup")
            print(f"{w.kind}: setup + warm-up epoch {setup['seconds']:.1f} s, {setup['info']}", flush=True)
        for r in range(rounds):
            for w in alternate(train, r):
                results[w.kind]["epoch_s"].append(w("epoch")["seconds"])
            print(f"epoch {r + 1}/{rounds}: " + ", ".join(
                f"{k} {v['epoch_s'][-1]:.2f} s" for k, v in results.items()), flush=True)
        artifacts = {"kseq": str(Path(tmp) / "serving"), "torch": str(Path(tmp) / "model.pt")}
        for w in train:
            results[w.kind]["macro_f1"] = macro_f1(meta["y_test"], w("predict")["class_id"], num_classes)
            w("export", path=artifacts[w.kind])
            results[w.kind]["train_rss_mib"] = w.quit()

        # Serving: each stack loads its exported model in a fresh process.
        serve = [Remote("kseq-serve", data_path, worker_args, tmp), Remote("torch-serve", data_path, worker_args, tmp)]
        for w in serve:
            setup = w("setup", path=artifacts[w.kind.removesuffix("-serve")])
            print(f"{w.kind}: load + warm-up {setup['seconds']:.1f} s, {setup['info']}", flush=True)
        infer_batches = max(4, min(20, meta["n_test"] // BATCH))
        for r in range(infer_rounds):
            for w in alternate(serve, r):
                run = w("infer", batches=infer_batches)
                results[w.kind.removesuffix("-serve")]["infer_sps"].append(run["samples"] / run["seconds"])
                if w.kind == "kseq-serve":
                    run = w("infer", batches=infer_batches, tensorflow=True)
                    results["kseq"]["tf_infer_sps"].append(run["samples"] / run["seconds"])
        chunks = 10 if not args.quick else 3
        calls = latency_calls // chunks
        for r in range(chunks):
            for w in alternate(serve, r):
                results[w.kind.removesuffix("-serve")]["latency_s"] += w("latency", calls=calls)["times"]
                if w.kind == "kseq-serve":
                    results["kseq"]["tf_latency_s"] += w("latency", calls=calls, tensorflow=True)["times"]
        for w in serve:
            results[w.kind.removesuffix("-serve")]["serve_rss_mib"] = w.quit()

    med = {k: {"epoch_s": statistics.median(v["epoch_s"]),
               "train_sps": statistics.median(steps * batch / s for s in v["epoch_s"]),
               "infer_sps": statistics.median(v["infer_sps"]),
               "latency_ms": 1e3 * statistics.median(v["latency_s"]),
               "latency_p90_ms": 1e3 * statistics.quantiles(v["latency_s"], n=10)[-1],
               "tf_infer_sps": statistics.median(v["tf_infer_sps"] or v["infer_sps"]),
               "tf_latency_ms": 1e3 * statistics.median(v["tf_latency_s"] or v["latency_s"]),
               "macro_f1": v["macro_f1"], "train_rss_mib": v["train_rss_mib"],
               "serve_rss_mib": v["serve_rss_mib"]} for k, v in results.items()}
    rows = [("training samples/s", "train_sps", "{:,.0f}"), ("epoch time (s)", "epoch_s", "{:.2f}"),
            ("inference samples/s (batch 256)", "infer_sps", "{:,.0f}"),
            ("latency, batch 1 (ms, median)", "latency_ms", "{:.3f}"),
            ("latency, batch 1 (ms, p90)", "latency_p90_ms", "{:.3f}"),
            ("  kseq on TensorFlow: samples/s", "tf_infer_sps", "{:,.0f}"),
            ("  kseq on TensorFlow: latency (ms)", "tf_latency_ms", "{:.3f}"),
            ("peak RSS, training process (MiB)", "train_rss_mib", "{:,.0f}"),
            ("peak RSS, serving process (MiB)", "serve_rss_mib", "{:,.0f}"),
            (f"test macro-F1 after {rounds + 1} epochs", "macro_f1", "{:.3f}")]
    print(f"\nmedians over {rounds} alternated epochs, {infer_rounds} alternated inference rounds of "
          f"{infer_batches} batches, {len(results['kseq']['latency_s'])} latency calls per stack; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'':36}{'kseq':>11}{'torch':>11}{'kseq/torch':>12}")
    for label, key, fmt in rows:
        k, t = med["kseq"][key], med["torch"][key]
        print(f"{label:36}{fmt.format(k):>11}{fmt.format(t):>11}{k / t if t else float('nan'):>12.2f}")
    train_speedup = med["kseq"]["train_sps"] / med["torch"]["train_sps"]
    infer_speedup = med["kseq"]["infer_sps"] / med["torch"]["infer_sps"]
    latency_ratio = med["kseq"]["latency_ms"] / med["torch"]["latency_ms"]
    print(f"train_speedup={train_speedup:.2f} infer_speedup={infer_speedup:.2f} latency_ratio={latency_ratio:.2f}")


if __name__ == "__main__":
    main()
