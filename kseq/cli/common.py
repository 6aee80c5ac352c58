"""What every kseq command line shares: the data-file arguments, their checks, and the one-line error.

A user's mistake on the command line (a missing file, an unknown key, a value out of range) is
answered in a fraction of a second, before TensorFlow loads, as one `error: ...` line on stderr
and exit code 2, never a traceback: `run_command` is the one place that turns `InputError` into
that line.
"""

from __future__ import annotations

import argparse
import os
import sys

DATA_SUFFIXES = (".csv", ".npz", ".ts")
DATA_FLAGS = ("data", "labels", "test_data", "test_labels")


def add_data_arguments(parser: argparse.ArgumentParser, *, shards: bool = True) -> None:
    """`--data`, `--labels`, `--test-data` and `--test-labels`, as every command names them."""
    formats = "heartbeat CSV, pain features CSV, .npz, UCR/UEA .ts" + (", or a shard folder" if shards else "")
    parser.add_argument("--data", help=f"training data: {formats}")
    parser.add_argument("--labels", help="labels CSV for --data (pain format)")
    parser.add_argument("--test-data",
                        help="test data in the same format as --data (a CSV or .ts; an npz holds its own)")
    parser.add_argument("--test-labels", help="labels CSV for --test-data (pain format)")


def flag(name: str) -> str:
    """The command-line spelling of an argument's attribute name: `test_data` -> `--test-data`."""
    return "--" + name.replace("_", "-")


def data_files(args: argparse.Namespace) -> dict:
    """The data-file arguments that were given, by attribute name."""
    return {name: getattr(args, name) for name in DATA_FLAGS if getattr(args, name, None)}


def check_data_files(files: dict, *, shards: bool = True) -> None:
    """Every data file named exists and is a format kseq reads; `--test-data` comes with `--data`.

    With `shards`, `--data` may also be a folder of shards (`python -m kseq.cli.shard`), which holds
    its own labels and test split.
    """
    from kseq.utils.errors import InputError

    data = files.get("data")
    if shards and data and os.path.isdir(data):
        if not os.path.isfile(os.path.join(data, "index.json")):
            raise InputError(f"--data {data}: a folder must hold shards (index.json); "
                             "write them with python -m kseq.cli.shard")
        if files.get("test_data") or files.get("labels"):
            raise InputError(f"--data {data}: shards hold their own labels and test split; "
                             "drop --labels and --test-data")
        return
    for name, path in files.items():
        if not os.path.isfile(path):
            raise InputError(f"{flag(name)} {path}: no such file")
    for name in ("data", "test_data"):
        path = files.get(name)
        if path and os.path.splitext(path)[1].lower() not in DATA_SUFFIXES:
            raise InputError(f"{flag(name)} {path}: expected a {', '.join(DATA_SUFFIXES)} file")
    if files.get("test_data") and not data:
        raise InputError("--test-data needs --data (the training file)")


def run_command(body, *errors: type[BaseException]) -> int:
    """`body()`'s exit code, or 2 after one `error: ...` line for bad input (and the extra `errors`)."""
    from kseq.utils.errors import InputError

    try:
        return body()
    except (InputError, FileNotFoundError, *errors) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def load_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow once the arguments are known to be good (`kseq.utils.tf_import`)."""
    from kseq.utils.tf_import import import_tensorflow

    import_tensorflow(verbose)
