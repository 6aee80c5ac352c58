"""kseq's training and serving paths against the seeds' PyTorch loops, side by side in one run.

One shared protocol (`vs_pytorch_protocol.py`: the worker processes and how they are driven) and a
module per model pair for the torch side (`pytorch_cnn.py`, `pytorch_gru.py`).
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
import statistics
import tempfile
from pathlib import Path

from machine import describe
from vs_pytorch_protocol import BATCH, EXPERIMENTS, WORKERS, Remote, worker_main


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

    from sklearn.metrics import f1_score

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
              f"{meta['steps']} steps (heartbeat scale {scale}), training batch {batch}, {steps} steps per epoch",
              flush=True)
        print(describe(), flush=True)
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
            results[w.kind]["macro_f1"] = f1_score(meta["y_test"], w("predict")["class_id"], average="macro",
                                                  labels=range(num_classes), zero_division=0)
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
