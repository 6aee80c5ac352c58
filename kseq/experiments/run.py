"""Run a named experiment: `python -m kseq.experiments.run NAME_OR_TOML [options]`.

Parses arguments, resolves and checks the config and the data files' names, and only then loads
TensorFlow (seconds) and calls `kseq.training.trainer.train`, so bad input is answered at once: one line
on stderr, exit code 2, and no run folder. A named ensemble (`--list` shows them) trains its
members and votes, as `python -m kseq.ensemble --experiment NAME`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DATA_SUFFIXES = (".csv", ".npz", ".ts")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kseq.experiments.run", description=__doc__.splitlines()[0])
    parser.add_argument("experiment", nargs="?", help="a named experiment (see --list) or a TOML file")
    parser.add_argument("--list", action="store_true", help="list the named experiments and exit")
    parser.add_argument("--data", help="training data: heartbeat CSV, pain features CSV, .npz, UCR/UEA .ts, or a shard folder")
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
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's C++ start-up notices (also KSEQ_VERBOSE=1)")
    return parser.parse_args(argv)


def check_data_files(args: argparse.Namespace) -> None:
    """Every data file named on the command line exists and is a format kseq reads."""
    from kseq.utils.errors import InputError

    if args.data and os.path.isdir(args.data):  # shards: the folder holds every split
        if not os.path.isfile(os.path.join(args.data, "index.json")):
            raise InputError(f"--data {args.data}: a folder must hold shards (index.json); "
                             "write them with python -m kseq.cli.shard")
        if args.test_data or args.labels:
            raise InputError(f"--data {args.data}: shards hold their own labels and test split; "
                             "drop --labels and --test-data")
        return
    for flag in ("data", "labels", "test_data", "test_labels"):
        path = getattr(args, flag)
        if path and not os.path.isfile(path):
            raise InputError(f"--{flag.replace('_', '-')} {path}: no such file")
    for flag in ("data", "test_data"):
        path = getattr(args, flag)
        if path and os.path.splitext(path)[1].lower() not in DATA_SUFFIXES:
            raise InputError(f"--{flag.replace('_', '-')} {path}: expected a {', '.join(DATA_SUFFIXES)} file")
    if args.test_data and not args.data:
        raise InputError("--test-data needs --data (the training file)")


def ensemble_names() -> list[str]:
    """The named ensembles shipped in `kseq/experiments/configs/ensembles/`."""
    from kseq.config import CONFIG_DIR

    return sorted(p.name[:-5] for p in (CONFIG_DIR / "ensembles").iterdir() if p.name.endswith(".toml"))


def resolve_config(args: argparse.Namespace) -> dict:
    """The experiment's config with the command line's data files, seed, params and overrides applied."""
    from kseq.config import infer_source, load_config
    from kseq.utils.errors import InputError

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


def ensemble_args(args: argparse.Namespace) -> list[str]:
    """The `python -m kseq.ensemble` arguments that train and vote the named ensemble `args.experiment`."""
    if args.resume or args.params:
        from kseq.utils.errors import InputError

        raise InputError(f"{args.experiment} is a named ensemble: --resume and --params apply to single experiments")
    argv = ["--experiment", args.experiment, "--output-dir", args.output_dir]
    for flag in ("data", "labels", "test_data", "test_labels", "seed"):
        if getattr(args, flag) is not None:
            argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    for override in args.set:
        argv += ["--set", override]
    return argv


def main(argv=None) -> int:
    args = parse_args(argv)
    from kseq.config import experiment_names
    from kseq.utils.errors import InputError
    from kseq.utils.tf_import import import_tensorflow

    ensembles = ensemble_names()
    if args.list:
        print("\n".join(experiment_names()))
        print("\n".join(f"{name} (ensemble)" for name in ensembles))
        return 0
    if not args.experiment:
        print("error: name an experiment (or --list)", file=sys.stderr)
        return 2
    try:
        check_data_files(args)
        if args.experiment in ensembles:
            forwarded = ensemble_args(args)
            import_tensorflow(args.verbose)
            from kseq import ensemble

            return ensemble.main(forwarded)
        config = resolve_config(args)
        import_tensorflow(args.verbose)
        from kseq.training import distribute, trainer
        from kseq.reporting import evaluation
        from kseq.serving import export

        resume = None
        if args.resume:  # a multi-worker job's other workers continue their own state (kseq.training.distribute)
            resume = distribute.latest_state(args.output_dir, config["experiment"]["name"], config,
                                             export.latest_partial)
            if resume is None:
                raise InputError(f"--resume: no interrupted run of {config['experiment']['name']} in {args.output_dir}")
        run = trainer.train(config, args.output_dir, resume=resume)
    except (InputError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if run.directory is None:
        print("worker done: the chief wrote the run folder")
        return 0
    print(f"run folder: {run.directory}")
    print(evaluation.headline(run.metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
