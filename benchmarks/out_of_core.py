"""Training ecg_cnn from shards beside training it in memory: peak RSS, throughput, class balance.

    python benchmarks/out_of_core.py [--scale 1.0] [--epochs 1] [--repeats 3] [--out DIR]

In one run: writes the embedded heartbeats at `scale` (1x) and at 4 x `scale` (4x) as shards
(each in its own process, so no measured process ever holds the data), then trains `ecg_cnn` for
`--epochs`, each run in a fresh process reporting its own peak RSS (`ru_maxrss`) and training
samples/s (`train_samples_per_second`, training steps alone): in memory at 1x, from shards at 1x
and from shards at 4x. The 1x pair runs `--repeats` times, memory and shards alternating, and the
throughput ratio is the median of the pairs' ratios (one run on shared cores varied from 0.74 to
0.97); the RSS figures are each kind's largest. Then draws 200 batches of the 4x shards' rejection stream and compares
their class shares with the uniform target. The last line reads
`shard_vs_memory_throughput=<median of shards 1x / memory 1x> ratios=<each pair's> rss_4x_mb= rss_shards_1x_mb=
rss_memory_1x_mb= balance_error=` (balance_error: the largest |share - target| over the classes).
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
from pathlib import Path

from machine import describe

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def child(task: dict) -> None:
    """One measured step, in its own process; prints one JSON line."""
    import numpy as np

    from kseq.data import SequenceSet, make_heartbeats, write_shards

    if task["kind"] == "write":  # past the embedded size (scale 1): several generated sets, other seeds
        parts = math.ceil(task["scale"])
        sets = [make_heartbeats(scale=task["scale"] / parts, seed=k) for k in range(parts)]
        train = SequenceSet(np.concatenate([s.x for s, _ in sets]), np.concatenate([s.y for s, _ in sets]),
                            sets[0][0].class_names)
        test = sets[0][1]
        del sets
        write_shards(task["shards"], train, test, seed=0)
        print(json.dumps({"sequences": len(train)}))
        return
    from kseq.config import load_config
    from kseq.training.trainer import train as train_run

    overrides = [f"data.scale={task['scale']}", f"train.epochs={task['epochs']}", "train.verbose=0"]
    if task["kind"] == "shards":
        overrides += ["data.source=shards", f"data.path={task['shards']}"]
    run = train_run(load_config("ecg_cnn", overrides), task["runs"])
    print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "samples_per_second": run.metrics["train_samples_per_second"],
                      "macro_f1": run.metrics["macro_f1"]}))


def measure(task: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(task)], capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{task['kind']} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def balance_error(shards: str, batches: int = 200) -> float:
    import numpy as np

    from kseq.data.pipeline import make_train_dataset
    from kseq.data.shards import open_split

    split = open_split(shards, "train")
    stream = make_train_dataset(split.x, split.y, sampler="rejection", batch_size=256, seed=0, epochs=1)
    labels = np.concatenate([y.numpy() for _, y in stream.take(batches)])
    shares = np.bincount(labels, minlength=len(split.class_names)) / len(labels)
    return float(np.abs(shares - 1 / len(split.class_names)).max())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0, help="1x: this fraction of the embedded 87,554 beats")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="runs of the 1x memory/shards pair (median ratio)")
    parser.add_argument("--out", help="working folder (default: a temporary one)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    print(describe(), flush=True)
    out = Path(args.out or tempfile.mkdtemp(prefix="kseq-out-of-core-"))
    common = {"epochs": args.epochs, "runs": str(out / "runs")}
    for factor in (1, 4):
        shards = str(out / f"shards-{factor}x")
        written = measure({"kind": "write", "scale": args.scale * factor, "shards": shards})
        print(f"wrote {written['sequences']} training beats to {shards}", flush=True)
    runs = {"memory_1x": [], "shards_1x": []}
    for repeat in range(args.repeats):
        for name, kind in (("memory_1x", "memory"), ("shards_1x", "shards")):
            runs[name].append(measure({**common, "kind": kind, "scale": args.scale, "shards": str(out / "shards-1x")}))
            print(name, repeat + 1, json.dumps(runs[name][-1]), flush=True)
    shards_4x = measure({**common, "kind": "shards", "scale": args.scale * 4, "shards": str(out / "shards-4x")})
    print("shards_4x", json.dumps(shards_4x), flush=True)
    error = balance_error(str(out / "shards-4x"))
    ratios = [s["samples_per_second"] / m["samples_per_second"] for m, s in zip(runs["memory_1x"], runs["shards_1x"])]
    rss = {name: max(r["rss_mb"] for r in results) for name, results in runs.items()}
    print(f"shard_vs_memory_throughput={statistics.median(ratios):.2f} ratios={','.join(f'{r:.2f}' for r in ratios)} "
          f"rss_4x_mb={shards_4x['rss_mb']:.0f} rss_shards_1x_mb={rss['shards_1x']:.0f} "
          f"rss_memory_1x_mb={rss['memory_1x']:.0f} balance_error={error:.3f}")


if __name__ == "__main__":
    main()
