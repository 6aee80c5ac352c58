"""Vote finished runs, or train members and vote: `python -m kseq.cli.ensemble`.

```
python -m kseq.cli.ensemble RUN_DIR RUN_DIR [...]                  # vote over finished runs
python -m kseq.cli.ensemble --train pain_bigru pain_lstm [...]     # train each named experiment, then vote
python -m kseq.cli.ensemble --experiment pain_ensemble             # a named ensemble (members + vote)
```
Options: `--vote majority|soft`, `--data/--labels/--test-data/--test-labels` (evaluate on these
files; with `--train`, also train on them), `--seed N` and `--set section.key=value` (for the
members `--train`/`--experiment` trains), `--output-dir DIR`, `--export DIR`. What the vote is and
what the ensemble folder holds: `kseq.ensemble`. The arguments, run folders, named ensemble and
data files are checked before TensorFlow loads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kseq.cli import common
from kseq.config import VOTES


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kseq.cli.ensemble", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", metavar="RUN_DIR", help="finished run folders to vote")
    parser.add_argument("--train", nargs="+", metavar="EXPERIMENT", help="train these named experiments, then vote")
    parser.add_argument("--experiment", metavar="NAME",
                        help="a named ensemble (or its TOML file): train its members, then vote")
    parser.add_argument("--vote", choices=VOTES, help="majority (default) or soft")
    common.add_data_arguments(parser, shards=False)
    parser.add_argument("--output-dir", default="saved_models", help="where run and ensemble folders go")
    parser.add_argument("--export", metavar="DIR", help="also write the ensemble as one TF SavedModel at DIR")
    parser.add_argument("--seed", type=int, help="seed of the members to train")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value of every member to train (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's C++ start-up notices")
    return parser.parse_args(argv)


def run(args: argparse.Namespace):
    """Resolve the members (training them if asked), evaluate the vote, write and export it.

    Returns the evaluated `kseq.ensemble.Ensemble` and the exported SavedModel's folder (or None).
    """
    from kseq.config import read_named_ensemble, read_run
    from kseq.utils.errors import InputError

    sources = sum(map(bool, (args.runs, args.train, args.experiment)))
    if sources != 1:
        raise InputError("give run folders, --train EXPERIMENT [...] or --experiment NAME (exactly one)")
    if args.runs and (args.set or args.seed is not None):
        raise InputError("--set and --seed apply to members being trained (--train, --experiment), not run folders")
    if args.export and Path(args.export).exists():
        raise InputError(f"--export {args.export}: already exists; refusing to overwrite it")
    data_files = common.data_files(args)
    common.check_data_files(data_files, shards=False)
    for directory in args.runs:
        read_run(directory)
    name, vote, runs = "ensemble", args.vote or "majority", args.runs
    if args.experiment:
        spec = read_named_ensemble(args.experiment)
        name, vote = spec["name"], args.vote or spec["vote"]
    common.load_tensorflow(args.verbose)
    from kseq import ensemble

    if not runs:
        entries = spec["members"] if args.experiment else args.train
        runs = ensemble.train_members(entries, args.output_dir, args.set, args.seed, data_files)
    result = ensemble.evaluate(ensemble.load_members(runs), vote, args.output_dir, name, data_files)
    exported = (ensemble.export_ensemble(result.model, args.export, result.metrics["class_names"], result.decision)
                if args.export else None)
    return result, exported


def format_table(ensemble) -> str:
    """Members and the ensemble side by side: accuracy, macro-F1 and balanced accuracy."""
    rows = [(f"{Path(m['directory']).parent.name}/{Path(m['directory']).name}", m["model"], m["metrics"])
            for m in ensemble.metrics["members"]]
    rows.append((f"ensemble ({ensemble.metrics['vote']} vote)", "", ensemble.metrics))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'member':<{width}}  {'model':<14} {'accuracy':>8} {'macro_f1':>8} {'balanced_accuracy':>17}"]
    lines += [f"{label:<{width}}  {model:<14} {m['accuracy']:>8.4f} {m['macro_f1']:>8.4f} "
              f"{m['balanced_accuracy']:>17.4f}" for label, model, m in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> int:
        result, exported = run(args)
        print(format_table(result))
        print(f"ensemble folder: {result.directory}")
        if exported:
            print(f"SavedModel: {exported}")
        return 0

    return common.run_command(body)


if __name__ == "__main__":
    sys.exit(main())
