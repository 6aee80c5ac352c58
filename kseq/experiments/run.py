"""Run a named experiment: `python -m kseq.experiments.run NAME_OR_TOML [options]`.

Parses arguments, resolves the config and calls `kseq.training.train`; bad input ends with one
line on stderr and exit code 2, and no run folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kseq.experiments.run", description=__doc__.splitlines()[0])
    parser.add_argument("experiment", nargs="?", help="a named experiment (see --list) or a TOML file")
    parser.add_argument("--list", action="store_true", help="list the named experiments and exit")
    parser.add_argument("--data", help="training data: heartbeat CSV, pain features CSV or .npz")
    parser.add_argument("--labels", help="labels CSV for --data (pain format)")
    parser.add_argument("--test-data", help="test data in the same format as --data")
    parser.add_argument("--test-labels", help="labels CSV for --test-data (pain format)")
    parser.add_argument("--output-dir", default="saved_models", help="where run folders go (default: saved_models)")
    parser.add_argument("--seed", type=int, help="seed for data, split, sampling and weights")
    parser.add_argument("--params", help="JSON file of {section.key: value}, e.g. best_params.json from kseq.tune")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value (repeatable)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the most recent interrupted run of this experiment")
    return parser.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> dict:
    """The experiment's config with the command line's data files, seed, params and overrides applied."""
    from kseq.config import load_config
    from kseq.data.loading import infer_source
    from kseq.errors import InputError

    params = {}
    if args.params:
        try:
            with open(args.params) as f:
                params = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(f"--params {args.params}: {e}") from None
    config = load_config(args.experiment, args.set, params)
    data = config["data"]
    if args.data:
        data.update(path=args.data, labels=args.labels or "", source=infer_source(args.data, args.labels, data["source"]))
    if args.test_data:
        data.update(test_path=args.test_data, test_labels=args.test_labels or "")
    if args.seed is not None:
        config["train"]["seed"] = args.seed
    return config


def main(argv=None) -> int:
    args = parse_args(argv)
    from kseq.config import experiment_names
    from kseq.errors import InputError

    if args.list:
        print("\n".join(experiment_names()))
        return 0
    if not args.experiment:
        print("error: name an experiment (or --list)", file=sys.stderr)
        return 2
    try:
        config = resolve_config(args)
        from kseq import evaluation, export, training

        resume = None
        if args.resume:
            resume = export.latest_partial(args.output_dir, config["experiment"]["name"])
            if resume is None:
                raise InputError(f"--resume: no interrupted run of {config['experiment']['name']} in {args.output_dir}")
        run = training.train(config, args.output_dir, resume=resume)
    except (InputError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"run folder: {run.directory}")
    print(evaluation.headline(run.metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
