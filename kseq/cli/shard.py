"""Convert a dataset to shards: `python -m kseq.cli.shard DATA [--test-data ...] --out DIR`.

Reads any source kseq reads (heartbeat CSV, pain CSV with `--labels`, `.npz`, UCR/UEA `.ts`) the
way a run does (`kseq.data.loading.load_datasets`: a training file without a test file is split by
`--test-split`), holds out a stratified validation split, and writes every split as TFRecord shards
with `kseq.data.write_shards`. Train from them with `python -m kseq.experiments.run NAME --data DIR`.
Bad input ends with one `error:` line and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from kseq.cli import common

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kseq.cli.shard", description=__doc__.splitlines()[0])
    parser.add_argument("data", help="training file: heartbeat CSV, pain features CSV, .npz or .ts")
    parser.add_argument("--labels", help="labels CSV for DATA (pain format)")
    parser.add_argument("--test-data", help="test file in the same format")
    parser.add_argument("--test-labels", help="labels CSV for --test-data (pain format)")
    parser.add_argument("--out", required=True, help="the new shard folder")
    parser.add_argument("--test-split", type=float, default=0.2, help="test fraction when no --test-data")
    parser.add_argument("--validation-split", type=float, default=0.1, help="stratified validation fraction")
    parser.add_argument("--seed", type=int, default=0, help="seeds the splits and the order within shards")
    parser.add_argument("--records-per-shard", type=int, default=4096)
    parser.add_argument("--min-shards-per-class", type=int, default=4,
                        help="at least this many files per class: the most workers that can share it by file")
    parser.add_argument("--fill-gaps", default="spline", choices=("spline", "linear", "none"))
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's C++ start-up notices")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    """Check the files, then load them as a run would and write the shards."""
    from kseq.config import DEFAULTS, with_data_files

    files = common.data_files(args)
    common.check_data_files(files, shards=False)
    config = with_data_files({"data": {**DEFAULTS["data"], "source": "heartbeat_csv",
                                       "test_split": args.test_split}}, files)
    common.load_tensorflow(args.verbose)
    from kseq.data.loading import load_datasets
    from kseq.data.shards import write_shards

    train, test = load_datasets(config["data"], args.seed)
    write_shards(args.out, train, test, validation_split=args.validation_split, seed=args.seed,
                 records_per_shard=args.records_per_shard, min_shards_per_class=args.min_shards_per_class,
                 fill_gaps=args.fill_gaps)
    print(f"shards: {args.out} ({len(train)} training and {len(test)} test sequences, "
          f"source {config['data']['source']})")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    return common.run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
