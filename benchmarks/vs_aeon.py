"""kseq's `minirocket` and `multirocket_hydra` against aeon's numba/torch classifiers, side by side.

Pairs: kseq `minirocket` vs aeon `MiniRocketClassifier()`, kseq `multirocket_hydra` vs aeon
`MultiRocketHydraClassifier()` (aeon's Hydra needs `torch`). kseq runs as
`SequenceClassifier(name, normalize="none", validation_split=0.0)`, the settings of the
generic experiments' TOML files (ridge head below 10,000 series). Both get the same thread count
(`--threads`: TensorFlow's intra-op threads, aeon's `n_jobs`), on the same machine, in one run.

- Accuracy and *cold* time on the dev sets (`--datasets`, read from `--data-dir`): each fit runs
  in a fresh worker process with an empty numba cache (`NUMBA_CACHE_DIR`), so it pays numba's
  compilation (aeon) or TensorFlow's tracing and XLA's compilation (kseq).
- *Warm* time on a synthetic univariate set (`--size N,T`, default 5000,500: N training and N
  test series of three classes of noisy sines), in one worker per classifier that first fits a
  200-series subset (compiles and traces), then times `fit` on the N and `predict` on the N test
  series, and the latency of one series: aeon's `predict` on one series, in that worker; kseq's
  exported model (`SequenceClassifier.export`) through `kseq.serving.runtime.ServingFunction`,
  both in that worker (`--threads` intra-op threads) and *served*: in a fresh process started as
  kseq says to start a serving process (`configure_threads("serve")`: one intra-op thread per
  request). Medians of 30.

The last line: `accuracy_minus_aeon_mean=` (kseq's accuracy minus aeon's, in points, averaged over
datasets and both pairs), `train_speedup_vs_aeon=` and `predict_speedup_vs_aeon=` (warm, aeon's
time over kseq's, geometric mean over the two pairs) and `latency_ms=` (kseq's multirocket_hydra,
one series through the served model in its serving process, median). In the training worker, with
two intra-op threads, some processes on the 2-core benchmark machine answer a single series 2-2.5x
slower for seconds at a time, when XLA splits its matrix products across the second thread
(benchmarks/README.md, section vs_aeon); the serving process is the figure a deployment gets, and
the worker's is printed beside it.

    python benchmarks/vs_aeon.py [--quick] [--datasets Coffee Trace ...] [--threads 2]

`--quick`: three small dev sets and a 300 x 100 synthetic set, to check the script in minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import describe

DATA_DIR = Path("/work/shared/data/ucr-dev")
DATASETS = ["Coffee", "Trace", "PigCVP", "Chinatown_subset", "Covid3Month_disc", "WatchExercise"]
QUICK_DATASETS = ["Coffee", "Chinatown_subset", "Covid3Month_disc"]


def pairs() -> list[tuple[str, str]]:
    """aeon's Hydra runs on torch; without torch, `multirocket_hydra` meets aeon's MultiRocket alone
    (`MultiRocketClassifier`, MR-Hydra's numba half, cheaper than the whole), and the tables say so."""
    import importlib.util

    mr_hydra = "MultiRocketHydraClassifier" if importlib.util.find_spec("torch") else "MultiRocketClassifier"
    return [("minirocket", "MiniRocketClassifier"), ("multirocket_hydra", mr_hydra)]


def synthetic(n: int, steps: int, seed: int):
    """N series of three classes (sines of periods 10, 14, 20, random phase, noise)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(3, size=n)
    period = np.array([10, 14, 20])[y][:, None]
    t = np.arange(steps)[None, :]
    x = np.sin(2 * np.pi * (t / period + rng.uniform(size=(n, 1)))) + 0.8 * rng.normal(size=(n, steps))
    return x.astype("float32")[:, :, None], y


def make_classifier(library: str, name: str, threads: int):
    if library == "kseq":
        from kseq import SequenceClassifier

        return SequenceClassifier(name, normalize="none", validation_split=0.0, random_state=0)
    from aeon.classification import convolution_based

    return getattr(convolution_based, name)(random_state=0, n_jobs=threads)


def as_input(library: str, x: np.ndarray) -> np.ndarray:
    return x if library == "kseq" else np.ascontiguousarray(np.transpose(x, (0, 2, 1)))


def timed(call):
    started = time.perf_counter()
    out = call()
    return out, time.perf_counter() - started


def worker(args) -> dict:
    """One classifier in this fresh process: a dev set (cold) or the synthetic set (warm)."""
    if args.library == "kseq":
        from kseq.serving.runtime import configure_threads

        configure_threads("train", intra_op=args.threads, inter_op=1)
    if args.dataset != "synthetic":
        data = np.load(DATA_DIR / f"{args.dataset}.npz") if not args.data_dir else np.load(
            Path(args.data_dir) / f"{args.dataset}.npz")
        x_train, y_train, x_test, y_test = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
        clf = make_classifier(args.library, args.name, args.threads)
        _, fit_s = timed(lambda: clf.fit(as_input(args.library, x_train), y_train))
        predicted, predict_s = timed(lambda: clf.predict(as_input(args.library, x_test)))
        return {"accuracy": float(np.mean(predicted == y_test)), "fit_s": fit_s, "predict_s": predict_s}
    n, steps = args.size
    x, y = synthetic(2 * n, steps, seed=0)
    x_train, y_train, x_test = x[:n], y[:n], x[n:]
    make_classifier(args.library, args.name, args.threads).fit(as_input(args.library, x_train[:200]),
                                                               y_train[:200])  # compile / trace
    clf = make_classifier(args.library, args.name, args.threads)
    _, fit_s = timed(lambda: clf.fit(as_input(args.library, x_train), y_train))
    predicted, predict_s = timed(lambda: clf.predict(as_input(args.library, x_test)))
    one = as_input(args.library, x_test[:1])
    if args.library == "kseq":
        clf.export(Path(args.export))
        latencies = served_latencies(Path(args.export) / "serving", one)
    else:
        clf.predict(one)
        latencies = [timed(lambda: clf.predict(one))[1] for _ in range(30)]
    return {"accuracy": float(np.mean(predicted == y[n:])), "fit_s": fit_s, "predict_s": predict_s,
            "latency_ms": 1000 * float(np.median(latencies))}


def served_latencies(serving: Path, one: np.ndarray) -> list[float]:
    """Seconds per call of one series through an exported model, after one call that compiles."""
    from kseq.serving.runtime import ServingFunction

    serve = ServingFunction(serving)
    serve(one)
    return [timed(lambda: serve(one))[1] for _ in range(30)]


def serving_process(args) -> dict:
    """This fresh process serves `args.export` as a kseq serving process runs: one intra-op thread."""
    from kseq.serving.runtime import configure_threads

    configure_threads("serve")
    n, steps = args.size
    one = synthetic(2 * n, steps, seed=0)[0][n:n + 1]  # the worker's first test series
    return {"latency_ms": 1000 * float(np.median(served_latencies(Path(args.export) / "serving", one)))}


def run_worker(library: str, name: str, dataset: str, args, *, export: Path | None = None,
               serve: bool = False) -> dict:
    command = [sys.executable, __file__, "--worker", library, name, dataset, "--threads", str(args.threads),
               "--size", f"{args.size[0]},{args.size[1]}"]
    if args.data_dir:
        command += ["--data-dir", str(args.data_dir)]
    if export:
        command += ["--export", str(export)] + (["--serve"] if serve else [])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "NUMBA_NUM_THREADS": str(args.threads),
           "OMP_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        if dataset != "synthetic":  # cold: numba's on-disk cache would otherwise skip its compilation
            env["NUMBA_CACHE_DIR"] = cache
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=args.timeout)
    if done.returncode:
        raise RuntimeError(f"{library} {name} on {dataset} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=lambda s: tuple(int(v) for v in s.split(",")))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--timeout", type=int, default=3600)
    parser.add_argument("--worker", nargs=3, metavar=("LIBRARY", "NAME", "DATASET"))
    parser.add_argument("--export", help="worker: the folder kseq's warm model is exported to")
    parser.add_argument("--serve", action="store_true", help="worker: serve --export's model")
    args = parser.parse_args()
    args.size = args.size or ((300, 100) if args.quick else (5000, 500))
    if args.worker:
        args.library, args.name, args.dataset = args.worker
        print(json.dumps(serving_process(args) if args.serve else worker(args)))
        return
    datasets = args.datasets or (QUICK_DATASETS if args.quick else DATASETS)
    differences, pairs_ = [], pairs()
    print(f"pairs: {', '.join(f'kseq {a} vs aeon {b}' for a, b in pairs_)}")
    print(describe(), flush=True)
    print(f"threads={args.threads} datasets={' '.join(datasets)} "
          f"synthetic={args.size[0]}x{args.size[1]}")
    print("| dataset | kseq model | kseq accuracy | aeon accuracy | kseq cold fit s | aeon cold fit s | "
          "kseq predict s | aeon predict s |")
    print("|---|---|---|---|---|---|---|---|")
    for dataset in datasets:
        for ours, theirs in pairs_:
            a = run_worker("kseq", ours, dataset, args)
            b = run_worker("aeon", theirs, dataset, args)
            differences.append(100 * (a["accuracy"] - b["accuracy"]))
            print(f"| {dataset} | {ours} | {a['accuracy']:.4f} | {b['accuracy']:.4f} | {a['fit_s']:.1f} | "
                  f"{b['fit_s']:.1f} | {a['predict_s']:.2f} | {b['predict_s']:.2f} |", flush=True)
    train_ratios, predict_ratios, latency = [], [], None
    print(f"\nwarm, synthetic {args.size[0]} x {args.size[1]}:")
    print("| kseq model | kseq fit s | aeon fit s | kseq predict s | aeon predict s | kseq served ms | "
          f"kseq ms in worker ({args.threads} threads) | aeon ms in worker | kseq accuracy | aeon accuracy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for ours, theirs in pairs_:
        with tempfile.TemporaryDirectory(prefix="vs-aeon-export-") as folder:
            a = run_worker("kseq", ours, "synthetic", args, export=Path(folder) / "model")
            served = run_worker("kseq", ours, "synthetic", args, export=Path(folder) / "model", serve=True)
        b = run_worker("aeon", theirs, "synthetic", args)
        train_ratios.append(b["fit_s"] / a["fit_s"])
        predict_ratios.append(b["predict_s"] / a["predict_s"])
        if ours == "multirocket_hydra":
            latency = served["latency_ms"]
        print(f"| {ours} | {a['fit_s']:.1f} | {b['fit_s']:.1f} | {a['predict_s']:.2f} | {b['predict_s']:.2f} | "
              f"{served['latency_ms']:.2f} | {a['latency_ms']:.2f} | {b['latency_ms']:.2f} | "
              f"{a['accuracy']:.4f} | {b['accuracy']:.4f} |", flush=True)
    geometric = lambda r: math.exp(np.mean(np.log(r)))  # noqa: E731
    print(f"accuracy_minus_aeon_mean={np.mean(differences):.2f} train_speedup_vs_aeon={geometric(train_ratios):.2f} "
          f"predict_speedup_vs_aeon={geometric(predict_ratios):.2f} latency_ms={latency:.2f}")


if __name__ == "__main__":
    main()
