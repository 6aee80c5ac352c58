"""Run a named experiment: `python -m kseq.experiments.run NAME_OR_TOML [options]`.

Parses arguments, resolves and checks the config and the data files' names, and only then loads
TensorFlow (seconds) and calls `kseq.training.trainer.train`, so bad input is answered at once: one line
on stderr, exit code 2, and no run folder. A named ensemble (`--list` shows them) trains its
members and votes, as `python -m kseq.cli.ensemble --experiment NAME`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from kseq.cli import common

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kseq.experiments.run", description=__doc__.splitlines()[0])
    parser.add_argument("experiment", nargs="?", help="a named experiment (see --list) or a TOML file")
    parser.add_argument("--list", action="store_true", help="list the named experiments and exit")
    common.add_data_arguments(parser)
    parser.add_argument("--output-dir", default="saved_models", help="where run folders go (default: saved_models)")
    parser.add_argument("--seed", type=int, help="seed for data, split, sampling and weights")
    parser.add_argument("--params", help="JSON file of {section.key: value}, e.g. best_params.json from kseq.cli.tune")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value (repeatable)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the most recent interrupted run of this experiment")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's C++ start-up notices (also KSEQ_VERBOSE=1)")
    return parser.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> dict:
    """The experiment's config with the command line's data files, seed, params and overrides applied."""
    from kseq.config import load_config, with_data_files
    from kseq.utils.errors import InputError

    params = {}
    if args.params:
        try:
            with open(args.params) as f:
                params = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(f"--params {args.params}: {e}") from None
    config = with_data_files(load_config(args.experiment, args.set, params), common.data_files(args))
    if args.seed is not None:
        config["train"]["seed"] = args.seed
    return config


def ensemble_args(args: argparse.Namespace) -> list[str]:
    """The `python -m kseq.cli.ensemble` arguments that train and vote the named ensemble `args.experiment`."""
    if args.resume or args.params:
        from kseq.utils.errors import InputError

        raise InputError(f"{args.experiment} is a named ensemble: --resume and --params apply to single experiments")
    argv = ["--experiment", args.experiment, "--output-dir", args.output_dir]
    for name, path in common.data_files(args).items():
        argv += [common.flag(name), path]
    if args.seed is not None:
        argv += ["--seed", str(args.seed)]
    for override in args.set:
        argv += ["--set", override]
    return argv


def run(args: argparse.Namespace) -> int:
    """Train the experiment (or the named ensemble) the arguments name, once they are checked."""
    from kseq.config import ensemble_names, experiment_names
    from kseq.utils.errors import InputError

    ensembles = ensemble_names()
    if args.list:
        print("\n".join(experiment_names()))
        print("\n".join(f"{name} (ensemble)" for name in ensembles))
        return 0
    if not args.experiment:
        raise InputError("name an experiment (or --list)")
    common.check_data_files(common.data_files(args))
    if args.experiment in ensembles:
        forwarded = ensemble_args(args)
        common.load_tensorflow(args.verbose)
        from kseq.cli import ensemble

        return ensemble.main(forwarded)
    config = resolve_config(args)
    common.load_tensorflow(args.verbose)
    from kseq.reporting import evaluation
    from kseq.training import distribute, run_folder, trainer

    resume = None
    if args.resume:  # a multi-worker job's other workers continue their own state (kseq.training.distribute)
        resume = distribute.latest_state(args.output_dir, config["experiment"]["name"], config,
                                         run_folder.latest_partial)
        if resume is None:
            raise InputError(f"--resume: no interrupted run of {config['experiment']['name']} in {args.output_dir}")
    result = trainer.train(config, args.output_dir, resume=resume)
    if result.directory is None:
        print("worker done: the chief wrote the run folder")
        return 0
    print(f"run folder: {result.directory}")
    print(evaluation.headline(result.metrics))
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    return common.run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
