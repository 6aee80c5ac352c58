"""Run the generic experiments on real UCR/UEA datasets and print the real-data results table.

Usage:
    python experiments/real_data.py run DATA_DIR NAME [NAME ...] --experiments resnet fcn ...
    python experiments/real_data.py run DATA_DIR NAME [NAME ...] --experiments aeon:MiniRocketClassifier
    python experiments/real_data.py table

`run` calls `python -m kseq.experiments.run EXPERIMENT --data DATA_DIR/NAME.npz` (a named
ensemble the same way) once per dataset and experiment, times the whole command (wall clock:
loading, training, evaluation and export), and appends one JSON line per run to
`experiments/real_data_runs.jsonl` with the command, its wall time and the run's test metrics.
`table` prints the markdown table of experiments/README.md from that file: the newest run of
each (dataset, experiment), next to the published accuracy where the archive's tables have one.

An experiment `aeon:CLASSIFIER` is a reference on the same split: aeon's
`CLASSIFIER(random_state=0, n_jobs=2)` (from `aeon.classification.convolution_based`, which
`kseq[ts]` installs), fitted on the training split as stored (padded series stay padded), timed
the same way as a whole process (`python experiments/real_data.py reference CLASSIFIER DATA`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
RUNS = HERE / "real_data_runs.jsonl"

# Published test accuracy (%) on the archive's own split (UCR 2018). ResNet: Ismail Fawaz et al.
# (2019), github.com/hfawaz/dl-4-tsc results/results-ucr-128.csv, the mean of its five runs
# (iterations 0-4), the figure issue 22 compares with (its PLAID, 94.0%, is that mean).
# InceptionTime (the five-network ensemble): Ismail Fawaz et al. (2020), github.com/hfawaz/
# InceptionTime results-InceptionTime-128.csv. Chinatown_subset is aeon's cut with a smaller test
# split and Covid3Month_disc is not in the UCR 2018 tables, so neither has a comparable figure.
PUBLISHED = {
    # dataset: (ResNet, InceptionTime)
    "Coffee": (100.0, 100.0),
    "Trace": (100.0, 100.0),
    "PigCVP": (91.8, 96.2),
}


def timed_process(command: list[str]):
    """(the finished process, its wall-clock seconds) of `command`; RuntimeError (exit code and the
    tail of stderr) when it fails."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"exit {done.returncode}\n{done.stderr[-2000:]}")
    return done, seconds


def timed_run(experiment: str, data: Path, output_dir: str) -> dict:
    """`python -m kseq.experiments.run EXPERIMENT --data DATA --output-dir OUTPUT_DIR`, timed as a whole
    process: {seconds, accuracy, macro_f1, folder, resolved}. `benchmarks/vs_tsai.py` times kseq with it too.
    RuntimeError (exit code and the tail of stderr) when the run fails."""
    done, seconds = timed_process([sys.executable, "-m", "kseq.experiments.run", experiment,
                                   "--data", str(data), "--output-dir", output_dir])
    folder = re.findall(r"^(?:run|ensemble) folder: (.+)$", done.stdout, flags=re.M)[-1]
    metrics = json.loads((Path(folder) / "metrics.json").read_text())
    resolved = re.findall(r"^resolved: .+$", done.stdout, flags=re.M)
    return {"seconds": round(seconds, 1), "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
            "folder": folder, "resolved": resolved[0] if resolved else ""}


REFERENCE = "aeon:"  # an experiment named aeon:CLASSIFIER is aeon's classifier, see `reference`


def reference(classifier: str, data: Path) -> dict:
    """aeon's `classifier` fitted on `data`'s training split: {accuracy, macro_f1} on its test split."""
    import numpy as np
    from aeon.classification import convolution_based
    from sklearn.metrics import f1_score

    arrays = np.load(data)
    x_train, x_test = (np.ascontiguousarray(np.transpose(arrays[k], (0, 2, 1))) for k in ("x_train", "x_test"))
    model = getattr(convolution_based, classifier)(random_state=0, n_jobs=2).fit(x_train, arrays["y_train"])
    predicted = model.predict(x_test)
    return {"accuracy": float(np.mean(predicted == arrays["y_test"])),
            "macro_f1": float(f1_score(arrays["y_test"], predicted, average="macro"))}


def timed_reference(classifier: str, data: Path) -> dict:
    """`reference` in a process of its own, timed as a whole as `timed_run` times kseq."""
    done, seconds = timed_process([sys.executable, __file__, "reference", classifier, str(data)])
    return {"seconds": round(seconds, 1), **json.loads(done.stdout.strip().splitlines()[-1])}


def run(data_dir: Path, names: list[str], experiments: list[str]) -> None:
    for name in names:
        for experiment in experiments:
            data = data_dir / f"{name}.npz"
            classifier = experiment.removeprefix(REFERENCE) if experiment.startswith(REFERENCE) else None
            try:
                result = (timed_reference(classifier, data) if classifier
                          else timed_run(experiment, data, f"saved_models/real-data/{name}"))
            except RuntimeError as e:
                print(f"{name} {experiment}: {e}", file=sys.stderr)
                continue
            command = (f"python experiments/real_data.py reference {classifier} {name}.npz" if classifier
                       else f"python -m kseq.experiments.run {experiment} --data {name}.npz")
            record = {"dataset": name, "experiment": experiment, **result, "command": command}
            with open(RUNS, "a") as f:
                f.write(json.dumps(record) + "\n")
            print(f"{name:20s} {experiment:24s} acc={record['accuracy']:.4f} f1={record['macro_f1']:.4f} "
                  f"{record['seconds']:.0f} s", flush=True)


def newest(runs: Path, system: str) -> dict:
    """{(dataset, record[system]): record}: the last record of each in the JSON-lines file `runs`
    ({} when it does not exist). `benchmarks/vs_tsai.py` reads its own results with it too."""
    records = {}
    if runs.exists():
        for line in runs.read_text().splitlines():
            record = json.loads(line)
            records[record["dataset"], record[system]] = record
    return records


def table() -> None:
    newest_runs = newest(RUNS, "experiment")
    print("| dataset | experiment | test accuracy | test macro-F1 | wall time | published accuracy | command |")
    print("|---|---|---|---|---|---|---|")
    gaps = {}
    for (dataset, experiment), r in sorted(newest_runs.items()):
        resnet, inception = PUBLISHED.get(dataset, (None, None))
        published = {"resnet": resnet, "inception_time_ensemble": inception}.get(experiment)
        shown = "-" if published is None else f"{published:.1f}%"
        if published is not None:
            gaps.setdefault(experiment, []).append(100 * r["accuracy"] - published)
        print(f"| {dataset} | `{experiment}` | {100 * r['accuracy']:.1f}% | {r['macro_f1']:.3f} | "
              f"{r['seconds']:.0f} s | {shown} | `{r['command']}` |")
    print()
    for experiment, gap in sorted(gaps.items()):
        print(f"`{experiment}` against its published accuracy on {len(gap)} datasets: mean "
              f"{sum(gap) / len(gap):+.1f} points, worst {min(gap):+.1f}.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("run", "table", "reference"))
    parser.add_argument("data_dir", nargs="?", help="run: the datasets' folder; reference: aeon's classifier")
    parser.add_argument("names", nargs="*", help="run: dataset names; reference: the npz file")
    parser.add_argument("--experiments", nargs="+", default=["resnet"])
    args = parser.parse_args()
    if args.action == "run":
        run(Path(args.data_dir), args.names, args.experiments)
    elif args.action == "reference":
        print(json.dumps(reference(args.data_dir, Path(args.names[0]))))
    else:
        table()
