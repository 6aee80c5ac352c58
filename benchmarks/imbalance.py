"""Imbalance: what a generic recipe's default does when classes are imbalanced, against the alternatives.

Each real development set (`../shared/data/ucr-dev/*.npz`) keeps its test split; its training
split is subsampled to an imbalance ratio (largest class over smallest): 1 is the split as it is;
for r > 1 the classes, from the largest to the smallest, keep counts spaced geometrically from
`r * s` down to `s`, where `s = floor(largest / r)` must be at least `MIN_PER_CLASS` (a cell where
it is not, because the largest class has fewer than 2r series, is reported as n/a). For each seed
(`--seeds`, default 0: the subsample's draw and the training's `train.seed`), the same subsample is
trained each way below with the generic `resnet` recipe, or the one `--experiment` names (every
other "auto" resolved as a run resolves it); a method whose resolved configuration equals one
already trained on that subsample (the default on balanced data is plain shuffling) reuses its
result instead of training again:

- `plain`: shuffled batches, crossentropy, the argmax (`sampler.kind = "none"`, `decisions.folds = 0`);
- `class_weight`: balanced class weights in the loss (`sampler.kind = "class_weight"`);
- `logit_adjusted`: shuffled batches, crossentropy of logits shifted by the log class priors
  (`loss.name = "logit_adjusted"`, `kseq.losses.LogitAdjustedCrossentropy`), the argmax;
- `rejection`: class-balanced batches (`sampler.kind = "rejection"`);
- `rejection+focal`: class-balanced batches and focal loss, gamma 2;
- `plain+decisions`: shuffled batches and crossentropy, with the default's decisions (below);
- `default`: the recipe as shipped (`kseq.training.recipe.resolve_imbalance`): on imbalanced data,
  decisions fitted on held-out predictions (out-of-fold predictions of the training split, on
  plain batches; or a validation split, on balanced batches, for data large enough for one),
  scored with those decisions as served.
  `default argmax` is the same model's argmax, for reference.

Test macro-F1 of every cell, the mean over the seeds (with several seeds, their range in
brackets), is printed as a table (also written into benchmarks/README.md between the `imbalance`
markers with `--readme`), and the last line is `default_minus_plain_macro_f1_at_10=
retention_at_10=`: the mean over the datasets whose ratio-10 cell exists of default minus plain at
ratio 10, and the mean of default at 10 over default at 1 (each dataset's cells first averaged over
the seeds).

    python benchmarks/imbalance.py                                  # all six, ratios 1 10 50
    python benchmarks/imbalance.py --datasets Trace Covid3Month_disc --ratios 1 10 --steps 300
    python benchmarks/imbalance.py --datasets Covid3Month_disc --ratios 1 10 --methods plain default --seeds 0 1 2
    python benchmarks/imbalance.py --experiment multirocket_hydra --methods plain class_weight plain+decisions default

A random-kernel model's ridge head is solved in closed form: it takes a sampler's weighting as
weights on each series' error (`kseq.data.sampling.expected_weights`), so `class_weight`,
`rejection` and `rejection+focal` solve the same balanced ridge, and its table is written between
markers of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ucr-dev"
DATASETS = ("Chinatown_subset", "Coffee", "Covid3Month_disc", "PigCVP", "Trace", "WatchExercise")
MIN_PER_CLASS = 2
METHODS = {
    "plain": ['sampler.kind="none"', "decisions.folds=0"],
    "class_weight": ['sampler.kind="class_weight"', "decisions.folds=0"],
    "logit_adjusted": ['sampler.kind="none"', 'loss.name="logit_adjusted"', "decisions.folds=0"],
    "rejection": ['sampler.kind="rejection"', "decisions.folds=0"],
    "rejection+focal": ['sampler.kind="rejection"', 'loss.name="focal"', "loss.gamma=2.0", "decisions.folds=0"],
    "plain+decisions": ['sampler.kind="none"'],
    "default": [],
}
README = Path(__file__).parent / "README.md"
BEGIN, END = "<!-- imbalance:begin -->", "<!-- imbalance:end -->"


def subsample_counts(counts: np.ndarray, ratio: int) -> np.ndarray | None:
    """Per-class counts with largest / smallest = `ratio`, or None when that leaves under 2 of a class."""
    if ratio == 1:
        return counts.copy()
    order = np.argsort(-counts, kind="stable")  # largest first
    smallest = counts[order[0]] // ratio
    if smallest < MIN_PER_CLASS:
        return None
    ranks = np.linspace(0.0, 1.0, len(counts))
    targets = np.round(smallest * ratio * float(ratio) ** -ranks).astype(int)
    kept = np.empty_like(counts)
    kept[order] = np.minimum(targets, counts[order])
    kept[order[-1]] = smallest
    return kept


def subsample(train_set, ratio: int, seed: int = 0):
    counts = np.bincount(train_set.y, minlength=len(train_set.class_names))
    kept = subsample_counts(counts, ratio)
    if kept is None:
        return None
    rng = np.random.default_rng(seed)
    index = np.sort(np.concatenate([rng.choice(np.flatnonzero(train_set.y == c), k, replace=False)
                                    for c, k in enumerate(kept)]))
    return train_set.subset(index)


def resolved_cell(experiment: str, train_set, test_set, method: str, steps: int | None, seed: int):
    """(config, splits): the `experiment` recipe with `method`'s overrides, resolved for `train_set`."""
    from kseq.config import load_config
    from kseq.training import trainer

    overrides = ["train.verbose=0", f"train.seed={seed}", *METHODS[method]]
    overrides += [f"train.steps={steps}"] if steps else []
    config = load_config(experiment, overrides)
    splits = trainer.prepare_arrays(config, train_set, test_set)
    return trainer.resolve_recipe(config, splits.fit, splits.validation, announce=False), splits


def run_cell(config: dict, splits, test_set, method: str) -> dict:
    """Train a resolved configuration; the test macro-F1 of the argmax and as served."""
    from kseq.reporting import evaluation
    from kseq.training import recipe, trainer

    batch_size = config["sampler"]["batch_size"]
    with tempfile.TemporaryDirectory(prefix="kseq-imbalance-") as work:
        fitted = trainer.fit(config, splits.fit, splits.validation, splits.transform, Path(work))
    test_logits = trainer.predict_logits(fitted.model, test_set.x, batch_size)
    probabilities = np.exp(test_logits - test_logits.max(1, keepdims=True))
    argmax = evaluation.report(test_set.y, probabilities / probabilities.sum(1, keepdims=True),
                               test_set.class_names)["macro_f1"]
    served, held_out = argmax, "argmax"
    decided = "decisions.folds=0" not in METHODS[method]  # the recipe resolves the decisions
    if decided and (splits.validation is not None or config["decisions"]["folds"]):
        held_out = "validation" if splits.validation is not None else f"{config['decisions']['folds']}-fold"
        _, fitted_decisions = trainer.fit_decisions(config, fitted.model, splits.fit, splits.validation,
                                                    splits.transform, test_logits, test_set)
        served = fitted_decisions["decisions"]["test"]["macro_f1"]
        if "offsets_skipped" in fitted_decisions["decisions"]:
            held_out += " (temperature only)"  # too few held-out series of a class for offsets
    steps = "none (solved head)" if recipe.solves_head(config) else config["train"]["steps"]
    return {"argmax": argmax, "served": served, "sampler": config["sampler"]["kind"], "decisions": held_out,
            "steps": steps}


def write_readme(table: str, experiment: str) -> None:
    """The table between the markers of `experiment` (`resnet`'s are the section's first)."""
    begin, end = (BEGIN, END) if experiment == "resnet" else (BEGIN.replace(":", f":{experiment}:"),
                                                                END.replace(":", f":{experiment}:"))
    text = README.read_text()
    block = f"{begin}\n{table}\n{end}"
    if begin in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n## imbalance: {experiment}\n\n{block}\n"
    README.write_text(text)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="resnet", help="the generic recipe trained (default: resnet)")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--ratios", nargs="+", type=int, default=[1, 10, 50])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0],
                        help="subsample and training seeds; each cell is the mean over them")
    parser.add_argument("--steps", type=int, default=None,
                        help="optimizer steps per training instead of the recipe's budget (a quicker, rougher run)")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--readme", action="store_true", help="write the table into benchmarks/README.md")
    args = parser.parse_args(argv)

    from kseq.data.sources import load_npz

    results: dict = {}
    lines = ["| dataset | ratio | train counts | " + " | ".join(args.methods)
             + (" | default argmax | default resolved |" if "default" in args.methods else " |"),
             "|---|---|---|" + "---|" * (len(args.methods) + (2 if "default" in args.methods else 0))]
    print(lines[0], flush=True)
    for name in args.datasets:
        train_set, test_set = load_npz(args.data_dir / f"{name}.npz")
        for ratio in args.ratios:
            subsets = [subsample(train_set, ratio, seed) for seed in args.seeds]
            if subsets[0] is None:
                counts = np.bincount(train_set.y)
                row = (f"| {name} | {ratio} | n/a: largest class {counts.max()} < {MIN_PER_CLASS * ratio} | "
                       + " | ".join("-" for _ in args.methods) + (" | - | - |" if "default" in args.methods else " |"))
            else:
                per_seed = {method: [] for method in args.methods}
                for seed, subset in zip(args.seeds, subsets):
                    trained = []  # (resolved config, result) on this subsample
                    for method in args.methods:
                        started = time.perf_counter()
                        with contextlib.redirect_stdout(io.StringIO()):
                            config, splits = resolved_cell(args.experiment, subset, test_set, method, args.steps, seed)
                            result = next((r for c, r in trained if c == config), None)
                            reused = result is not None
                            if not reused:
                                result = run_cell(config, splits, test_set, method)
                                trained.append((config, result))
                        per_seed[method].append(result)
                        print(f"  {name} ratio {ratio} seed {seed} {method}: macro-F1 {result['served']:.3f} "
                              + ("(same configuration as above)" if reused else
                                 f"({time.perf_counter() - started:.0f} s)"), file=sys.stderr, flush=True)
                cells = {method: {key: float(np.mean([r[key] for r in runs])) if key in ("argmax", "served")
                                  else runs[0][key] for key in runs[0]} for method, runs in per_seed.items()}
                results[name, ratio] = cells
                counts = "/".join(str(c) for c in np.bincount(subsets[0].y))

                def cell(method, key="served"):
                    values = [r[key] for r in per_seed[method]]
                    spread = f" [{min(values):.3f}-{max(values):.3f}]" if len(values) > 1 else ""
                    return f"{np.mean(values):.3f}{spread}"

                row = f"| {name} | {ratio} | {counts} | " + " | ".join(cell(m) for m in args.methods)
                if "default" in cells:
                    d = cells["default"]
                    row += (f" | {cell('default', 'argmax')} | sampler={d['sampler']}, decisions={d['decisions']}, "
                            f"steps={d['steps']} |")
                else:
                    row += " |"
            lines.append(row)
            print(row, flush=True)
    at_10 = [name for name in args.datasets if (name, 10) in results and (name, 1) in results]
    if "default" in args.methods and "plain" in args.methods and at_10:
        gain = np.mean([results[n, 10]["default"]["served"] - results[n, 10]["plain"]["served"] for n in at_10])
        retention = np.mean([results[n, 10]["default"]["served"] / results[n, 1]["default"]["served"] for n in at_10])
        summary = f"default_minus_plain_macro_f1_at_10={gain:.3f} retention_at_10={retention:.3f}"
    else:
        summary = "default_minus_plain_macro_f1_at_10=n/a retention_at_10=n/a"
    command = "python benchmarks/imbalance.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.readme:
        seeds = f"seeds {', '.join(map(str, args.seeds))}"
        write_readme("\n".join([f"`{command.strip()}` ({seeds}; ratio-10 means over: {', '.join(at_10) or 'none'})", "",
                                *lines, "", f"Last line: `{summary}`"]), args.experiment)
    print(summary)


if __name__ == "__main__":
    main()
