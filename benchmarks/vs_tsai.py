r"""kseq's `resnet` and `inception_time` experiments against tsai's README recipe, each a whole process.

Issue 22, item 5: at least as good as the PyTorch library a user would pick, in no more time.
That library is tsai, and what a user runs is its README recipe (`benchmarks/tsai_recipe.py`:
InceptionTimePlus, `TSStandardize()` batches, `fit_one_cycle(100, 3e-4)`, torch on 2 threads,
`set_seed(0)`); what a kseq user runs is `python -m kseq.experiments.run EXPERIMENT --data
SET.npz` (seed 0, TensorFlow's default threads). Each runs as its own process on each dev set,
timed wall clock from start to exit, so both pay their imports, data loading, training,
prediction of the test split and export: what the user waits for. Accuracy and macro-F1 are on
the archive's test split, which neither trains on (tsai is not even given it as fastai's
validation set, which its README does: scoring it after every epoch would only slow tsai down).

Each finished run is appended as one JSON line to `--results`; the table and summary come from
the newest record of each (dataset, system) there, so a full run (over an hour on 2 cores) can
be made in parts (`--datasets Coffee`) and a kseq change re-measured without re-running tsai
(`--skip-tsai`). Per experiment: `accuracy_minus_tsai_mean=` (kseq's test accuracy minus tsai's,
in points, mean over the datasets with both records) and `time_ratio_vs_tsai=` (kseq's wall time
over tsai's, geometric mean over the same datasets). The last line repeats them for the better
experiment (higher accuracy difference; on a tie, lower time ratio), with `experiment=NAME`.

tsai 0.4.1 pins `torch<2.8`, which clashes with the `bench` extra's torch 2.13.0, so it lives in
its own environment, installed with the pins overridden (`--no-deps`) on torch 2.13.0 CPU:

    python -m venv /work/tsai-venv
    /work/tsai-venv/bin/pip install torch==2.13.0
    /work/tsai-venv/bin/pip install tsai==0.4.1 --no-deps
    /work/tsai-venv/bin/pip install torch==2.13.0 torchvision==0.28.0 fastai pyts imbalanced-learn psutil scikit-learn
    # PyPI's torchvision is built against CUDA torch: its C ops do not load on the CPU torch, and
    # its import then fails registering a fake `torchvision::nms`; register those fakes only when
    # the ops loaded (tsai imports torchvision through fastai.vision, never its ops):
    sed -i 's/^@\(torch\.library\.register_fake("torchvision::[a-z]*")\)$/@(\1 if torchvision.extension._has_ops() else lambda fn: fn)/' \
        /work/tsai-venv/lib/python3.11/site-packages/torchvision/_meta_registrations.py
    /work/tsai-venv/bin/python -c "from tsai.basics import TSClassifier"  # check

(fastai 2.8.12, fastcore 2.2.41, pyts 0.14.1, scikit-learn 1.9.1 at the time; `tsai.all` does not
import with pyts 0.14, `tsai.basics`, which the recipe uses, does.)

    python benchmarks/vs_tsai.py [--data DIR] [--datasets Coffee Trace ...] [--experiments resnet inception_time]
        [--tsai-python PATH] [--epochs 100] [--results benchmarks/vs_tsai_runs.jsonl] [--skip-tsai]

Run it from the repository root (kseq runs as `python -m kseq...` there). `--tsai-python`
defaults to $KSEQ_TSAI_PYTHON or /work/tsai-venv/bin/python; `--epochs` other than 100 is for
checking the script, and the table shows each tsai record's epochs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import describe

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "experiments"))
from real_data import newest, timed_process, timed_run  # noqa: E402  (experiments/real_data.py: runs, records)

DATA_DIR = HERE.parents[1] / "shared/data/ucr-dev"
DATASETS = ["Coffee", "Trace", "PigCVP", "Chinatown_subset", "Covid3Month_disc", "WatchExercise"]


def run_kseq(experiment: str, data: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="vs-tsai-") as output_dir:  # the run folder is not kept
        result = timed_run(experiment, data, output_dir)
    return {key: result[key] for key in ("seconds", "accuracy", "macro_f1", "resolved")} | {
        "command": f"python -m kseq.experiments.run {experiment} --data {data.name}"}


def run_tsai(python: str, data: Path, epochs: int) -> dict:
    done, seconds = timed_process([python, str(HERE / "tsai_recipe.py"), str(data), "--epochs", str(epochs)])
    return {"seconds": round(seconds, 1), **json.loads(done.stdout.strip().splitlines()[-1]), "epochs": epochs,
            "command": f"{Path(python).name} benchmarks/tsai_recipe.py {data.name} --epochs {epochs}"}


def summarise(records: dict, experiments: list[str]) -> None:
    print("| dataset | system | test accuracy | test macro-F1 | wall time |")
    print("|---|---|---|---|---|")
    order = {dataset: i for i, dataset in enumerate(DATASETS)}
    for (dataset, system), r in sorted(records.items(), key=lambda item: (order.get(item[0][0], len(order)),
                                                                          item[0][0], item[0][1] != "tsai", item[0][1])):
        if system == "tsai" or system in experiments:
            name = f"tsai InceptionTimePlus, {r['epochs']} epochs" if system == "tsai" else f"kseq `{system}`"
            print(f"| {dataset} | {name} | {100 * r['accuracy']:.1f}% | {r['macro_f1']:.3f} | {r['seconds']:.0f} s |")
    scores = {}
    for experiment in experiments:
        both = [(r, records[dataset, "tsai"]) for (dataset, system), r in records.items()
                if system == experiment and (dataset, "tsai") in records]
        if not both:
            print(f"{experiment}: no dataset with both a kseq and a tsai record")
            continue
        difference = float(np.mean([100 * (ours["accuracy"] - theirs["accuracy"]) for ours, theirs in both]))
        ratio = math.exp(np.mean([math.log(ours["seconds"] / theirs["seconds"]) for ours, theirs in both]))
        scores[experiment] = difference, ratio
        print(f"{experiment}: accuracy_minus_tsai_mean={difference:.2f} time_ratio_vs_tsai={ratio:.2f} "
              f"datasets={len(both)}")
    if scores:
        best = min(scores, key=lambda e: (-round(scores[e][0], 6), scores[e][1]))
        print(f"accuracy_minus_tsai_mean={scores[best][0]:.2f} time_ratio_vs_tsai={scores[best][1]:.2f} "
              f"experiment={best}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="folder of the dev sets' .npz files")
    parser.add_argument("--datasets", nargs="+", default=DATASETS)
    parser.add_argument("--experiments", nargs="*", default=["resnet", "inception_time"],
                        help="kseq experiments to run (none: tsai alone)")
    parser.add_argument("--tsai-python", default=os.environ.get("KSEQ_TSAI_PYTHON", "/work/tsai-venv/bin/python"))
    parser.add_argument("--epochs", type=int, default=100, help="tsai's epochs (the recipe's 100)")
    parser.add_argument("--results", type=Path, default=HERE / "vs_tsai_runs.jsonl")
    parser.add_argument("--skip-tsai", action="store_true", help="keep tsai's earlier records, run kseq only")
    args = parser.parse_args()
    print(describe(), flush=True)
    systems = ([] if args.skip_tsai else ["tsai"]) + args.experiments
    for dataset in args.datasets:
        data = args.data / f"{dataset}.npz"
        for system in systems:
            try:
                result = run_tsai(args.tsai_python, data, args.epochs) if system == "tsai" else run_kseq(system, data)
            except RuntimeError as e:
                print(f"{dataset} {system}: {e}", file=sys.stderr)
                continue
            record = {"dataset": dataset, "system": system, **result, "date": time.strftime("%Y-%m-%d")}
            with open(args.results, "a") as f:
                f.write(json.dumps(record) + "\n")
            print(f"{dataset:18s} {system:16s} accuracy={result['accuracy']:.4f} macro_f1={result['macro_f1']:.4f} "
                  f"{result['seconds']:.0f} s", flush=True)
    summarise(newest(args.results, "system"), args.experiments or ["resnet", "inception_time"])


if __name__ == "__main__":
    main()
