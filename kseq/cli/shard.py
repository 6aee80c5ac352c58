"""Convert a dataset to shards: `python -m kseq.cli.shard DATA [--test-data ...] --out DIR`.

Reads any source kseq reads (heartbeat CSV, pain CSV with `--labels`, `.npz`, UCR/UEA `.ts`) with
the checks a run makes (`kseq.data.loading.load_files`; a training file without a test file is split
by `--test-split`), holds out a stratified validation split, and writes every split as TFRecord
shards with `kseq.data.write_shards`. The series of a heartbeat CSV or an npz, the formats whose
files get large, are read `--chunk-rows` at a time into a scratch folder on disk beside `--out`
(removed at the end) and written from there, so memory holds a chunk whatever the file's size; the
shards equal those `write_shards` writes from the same data in memory. Train from them with
`python -m kseq.experiments.run NAME --data DIR`. Bad input ends with one `error:` line and exit
code 2, before any shard is written.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

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
    parser.add_argument("--records-per-shard", type=_positive, default=4096)
    parser.add_argument("--min-shards-per-class", type=int, default=4,
                        help="at least this many files per class: the most workers that can share it by file")
    parser.add_argument("--fill-gaps", default="spline", choices=("spline", "linear", "none"))
    parser.add_argument("--chunk-rows", type=_positive, help="series read and written at a time (heartbeat CSV and "
                        "npz); memory holds about this many (default: kseq.data.sources.CHUNK_ROWS, 8192)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's C++ start-up notices")
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    """A whole number >= 1, for argparse."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= 1")
    return int(text)


def run(args: argparse.Namespace) -> int:
    """Check the files, then read them as a run would, series on disk, and write the shards."""
    from kseq.config import DEFAULTS, with_data_files

    files = common.data_files(args)
    common.check_data_files(files, shards=False)
    config = with_data_files({"data": {**DEFAULTS["data"], "source": "heartbeat_csv",
                                       "test_split": args.test_split}}, files)
    common.load_tensorflow(args.verbose)
    from kseq.data.loading import load_files
    from kseq.data.shards import check_no_shards, read_index, write_shards
    from kseq.data.sources import CHUNK_ROWS
    from kseq.utils.disk_arrays import allocate_in

    out, chunk_rows = Path(args.out), args.chunk_rows or CHUNK_ROWS
    check_no_shards(out)
    beside = next(folder for folder in out.absolute().parents if folder.is_dir())  # creates no folder yet
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.scratch-", dir=beside) as scratch:
        train, test = load_files(config["data"], allocate=allocate_in(scratch), chunk_rows=chunk_rows)
        write_shards(out, train, test, validation_split=args.validation_split,
                     test_split=args.test_split if test is None else None, seed=args.seed,
                     records_per_shard=args.records_per_shard, min_shards_per_class=args.min_shards_per_class,
                     fill_gaps=args.fill_gaps, chunk_rows=chunk_rows)
    written = ", ".join(f"{sum(s['count'] for s in shards)} {split}"
                        for split, shards in read_index(out)["splits"].items())
    print(f"shards: {out} ({written} sequences, source {config['data']['source']})")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    return common.run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
