"""Hyperparameter search: `python -m kseq.cli.tune EXPERIMENT --trials N [--storage URL] [--study NAME]`.

Every machine runs the same command against the same study (`kseq.tune` explains the storage,
heartbeats and summary). The experiment, its keys and the counts are checked before TensorFlow
loads; a storage that fails is named with its password masked.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from kseq.cli import common


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kseq.cli.tune", description=__doc__.splitlines()[0])
    parser.add_argument("experiment", help="a named experiment or a TOML file with a [search] table")
    parser.add_argument("--trials", type=int, required=True, help="trials this worker runs")
    parser.add_argument("--storage", help="database URL shared by all workers, e.g. postgresql://user@host/db "
                        "(default: a journal file <output-dir>/<experiment>/optuna-journal.log)")
    parser.add_argument("--study", help="study name (default: the experiment's name)")
    parser.add_argument("--timeout", type=float, help="start no new trial after this many seconds")
    parser.add_argument("--output-dir", default="saved_models", help="where run folders go (default: saved_models)")
    parser.add_argument("--heartbeat", type=int, default=60,
                        help="database storages: seconds between a running trial's heartbeats; a trial "
                             "silent for twice as long is marked failed (default: 60)")
    parser.add_argument("--retries", type=int, default=2,
                        help="database storages: times a trial whose worker died is run again (default: 2)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value in every trial (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's C++ start-up notices")
    return parser.parse_args(argv)


def report(study, summary, args: argparse.Namespace) -> int:
    """Print the study's best value and params, and the command that retrains with them."""
    from optuna.trial import TrialState

    from kseq.tune import OBJECTIVE

    counts = {state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,))) for state in TrialState}
    print("trials: " + ", ".join(f"{n} {name}" for name, n in counts.items() if n))
    if not counts["complete"]:
        print(f"error: no trial of study {study.study_name} has completed", file=sys.stderr)
        return 1
    best = study.best_trial
    print(f"best {OBJECTIVE}: {best.value:.4f} (trial {best.number}, run {best.user_attrs.get('run_dir')})")
    print(f"best params: {json.dumps(best.params)}")
    print(f"summary: {summary}")
    retrain = ["python", "-m", "kseq.experiments.run", args.experiment, "--output-dir", args.output_dir,
               "--params", str(summary / "best_params.json")]
    retrain += [item for text in args.set for item in ("--set", text)]
    print(f"retrain: {shlex.join(retrain)}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Check the arguments, then run this worker's trials and report the study."""
    from kseq.config import check_tuning, load_config

    check_tuning(args.trials, args.timeout, args.heartbeat, args.retries)
    load_config(args.experiment, args.set)  # names a bad experiment or key before TensorFlow loads
    common.load_tensorflow(args.verbose)
    import sqlalchemy.exc

    from kseq import tune

    try:
        study, summary = tune.tune(args.experiment, args.trials, storage=args.storage, study=args.study,
                                   timeout=args.timeout, output_dir=args.output_dir, heartbeat=args.heartbeat,
                                   retries=args.retries, overrides=args.set)
    except sqlalchemy.exc.SQLAlchemyError as e:
        raise tune.storage_error(args.storage, e) from None
    return report(study, summary, args)


def main(argv=None) -> int:
    args = parse_args(argv)
    return common.run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
