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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kseq.cli.shard", description=__doc__.splitlines()[0])
    parser.add_argument("data", help="training file: heartbeat CSV, pain features CSV, .npz or .ts")
    parser.add_argument("--labels", default="", help="labels CSV for DATA (pain format)")
    parser.add_argument("--test-data", default="", help="test file in the same format")
    parser.add_argument("--test-labels", default="", help="labels CSV for --test-data (pain format)")
    parser.add_argument("--out", required=True, help="the new shard folder")
    parser.add_argument("--test-split", type=float, default=0.2, help="test fraction when no --test-data")
    parser.add_argument("--validation-split", type=float, default=0.1, help="stratified validation fraction")
    parser.add_argument("--seed", type=int, default=0, help="seeds the splits and the order within shards")
    parser.add_argument("--records-per-shard", type=int, default=4096)
    parser.add_argument("--min-shards-per-class", type=int, default=4,
                        help="at least this many files per class: the most workers that can share it by file")
    parser.add_argument("--fill-gaps", default="spline", choices=("spline", "linear", "none"))
    args = parser.parse_args(argv)

    from kseq.config import DEFAULTS, infer_source
    from kseq.utils.errors import InputError

    try:
        for flag in ("data", "labels", "test_data", "test_labels"):
            path = getattr(args, flag)
            if path and not os.path.isfile(path):
                raise InputError(f"--{flag.replace('_', '-')} {path}: no such file")
        source = infer_source(args.data, args.labels, "heartbeat_csv")
        data = {**DEFAULTS["data"], "source": source, "path": args.data, "labels": args.labels,
                "test_path": args.test_data, "test_labels": args.test_labels, "test_split": args.test_split}
        from kseq.utils.tf_import import import_tensorflow

        import_tensorflow()
        from kseq.data.loading import load_datasets
        from kseq.data.shards import write_shards

        train, test = load_datasets(data, args.seed)
        write_shards(args.out, train, test, validation_split=args.validation_split, seed=args.seed,
                     records_per_shard=args.records_per_shard, min_shards_per_class=args.min_shards_per_class,
                     fill_gaps=args.fill_gaps)
    except (InputError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"shards: {args.out} ({len(train)} training and {len(test)} test sequences, source {source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
