"""Data larger than memory: sequences in TFRecord shards, one class per shard, streamed by tf.data.

Layout of a shard folder (written by `write_shards` or `python -m kseq.cli.shard`):

    index.json                       class names, (T, F), and per split the shards: file, class, count
    train/c<class>-<k>.tfrecord      one record per sequence: its T * F float32 values, raw bytes
    validation/...  test/...

Why TFRecord: tf.data reads it natively (`TFRecordDataset`), record by record, with parallel
interleaving and no Python in the loop; it is split across workers by file (each worker's input
pipeline reads its own files of every class, see `train_dataset`); and raw float32 records
decode with one `decode_raw` per batch. Why one class per shard: the index then knows every
sequence's class and each class's count without reading a single feature, so class-balanced
sampling draws each batch's classes at the target class weights and takes the records from
per-class streams (`tf.data.Dataset.choose_from_datasets`), with no pass over the data; each
class keeps at least `min_shards_per_class` files so that it can be split by file among that
many workers.

`index.json` is written last, so a folder with an index is complete. Gaps (NaN) are filled when the
shards are written (`fill_gaps`), since interpolation is not a streaming step; the fitted feature
transforms and windows of `[preprocess]` need a pass over the data and are not available on shards.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import tensorflow as tf

from kseq.data.loading import stratified_split_index
from kseq.data.preprocess import fill_gaps as fill
from kseq.data.sampling import balanced_weights, target_distribution
from kseq.data.sequence_set import SequenceSet, Splits
from kseq.data.sources import CHUNK_ROWS
from kseq.utils.errors import InputError
from kseq.utils.files import write_atomically, write_text

INDEX = "index.json"
FORMAT = "kseq-shards/1"
SPLITS = ("train", "validation", "test")
_SHUFFLE_BUFFER = 4096  # records per class held for shuffling: memory stays flat whatever the data size
AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class ShardedFeatures:
    """The features of one split on disk: `shape` `(N, T, F)` like an array, read by streaming."""

    files: tuple[str, ...]
    classes: tuple[int, ...]
    counts: tuple[int, ...]
    shape: tuple[int, int, int]

    def __len__(self) -> int:
        return self.shape[0]


@dataclasses.dataclass(frozen=True)
class ShardSplit:
    """A split of a shard folder, in place of a `SequenceSet`: `x` on disk, labels `y` in shard
    order (from the index alone), `class_names`."""

    x: ShardedFeatures
    y: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.y)


def write_shards(path, train: SequenceSet, test: SequenceSet | None = None, *, validation_split: float = 0.1,
                 test_split: float | None = None, seed: int = 0, records_per_shard: int = 4096,
                 min_shards_per_class: int = 4, fill_gaps: str = "spline", chunk_rows: int = CHUNK_ROWS) -> Path:
    """Write `train` (less a stratified `validation_split`) and `test` as shards in the new folder `path`.

    Without `test`, a `test_split` holds out a stratified fraction of `train` as the test split,
    as `load_datasets` splits a training file (the same rows for the same `seed`). Within a class,
    sequences are written in a random order (`seed`), so that streaming the shards in a shuffled
    file order through a bounded shuffle buffer mixes them well. Splits are taken by row, and
    each shard's sequences are read, gap-filled and written `chunk_rows` at a time: series on disk
    (`kseq.data.loading.load_files` with `kseq.utils.disk_arrays.allocate_in`) are converted in
    bounded memory. Returns `path`.
    """
    path = Path(path)
    check_no_shards(path)
    if test is not None and test_split is not None:
        raise ValueError("write_shards: give test or test_split, not both")
    rows, test_part = np.arange(len(train)), None if test is None else (test, np.arange(len(test)))
    if test_split is not None:
        rows, held = stratified_split_index(train.y, test_split, seed)
        test_part = (train, held)
    parts = {"train": (train, rows)}
    if validation_split:
        kept, held = stratified_split_index(train.y[rows], validation_split, seed)
        parts["train"], parts["validation"] = (train, rows[kept]), (train, rows[held])
    if test_part is not None:
        parts["test"] = test_part
    rng = np.random.default_rng(seed)
    index = {"format": FORMAT, "class_names": list(train.class_names), "shape": list(train.x.shape[1:]),
             "fill_gaps": fill_gaps, "validation_split": validation_split, "seed": seed, "splits": {}}
    for split, (data, rows) in parts.items():
        (path / split).mkdir(parents=True, exist_ok=True)
        shards, y = [], data.y[rows]
        for c in range(len(train.class_names)):
            members = rows[rng.permutation(np.flatnonzero(y == c))]
            if not len(members):
                continue
            n_files = max(math.ceil(len(members) / records_per_shard), min(min_shards_per_class, len(members)))
            for k, chunk in enumerate(np.array_split(members, n_files)):
                name = f"{split}/c{c}-{k:05d}.tfrecord"
                _write_records(path / name, data.x, chunk, fill_gaps, chunk_rows)
                shards.append({"file": name, "class": c, "count": len(chunk)})
        index["splits"][split] = shards
    write_text(path / INDEX, json.dumps(index, indent=1) + "\n")
    return path


def check_no_shards(path) -> None:
    """InputError when the folder `path` already holds shards: a shard folder is written once."""
    if (Path(path) / INDEX).exists():
        raise InputError(f"{path}: already holds shards ({INDEX}); choose a new folder")


def _write_records(path: Path, x: np.ndarray, rows: np.ndarray, fill_gaps: str, chunk_rows: int) -> None:
    """One record per sequence `x[rows]`, in that order, gaps filled, read `chunk_rows` at a time."""
    def write(tmp):
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for start in range(0, len(rows), chunk_rows):
                for sequence in fill(x[rows[start:start + chunk_rows]], fill_gaps):
                    writer.write(sequence.tobytes())

    write_atomically(path, write)


def read_index(path) -> dict:
    """The folder's index, checked; InputError naming the folder or field when it is not one."""
    index_path = Path(path) / INDEX
    try:
        index = json.loads(index_path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: not a shard folder (no {INDEX}); write one with python -m kseq.cli.shard") from None
    except ValueError as e:
        raise InputError(f"{index_path}: not valid JSON: {e}") from None
    if index.get("format") != FORMAT:
        raise InputError(f"{index_path}: format {index.get('format')!r}; expected {FORMAT!r}")
    if not index["splits"].get("train"):
        raise InputError(f"{index_path}: splits.train lists no shards")
    return index


def open_split(path, split: str) -> ShardSplit | None:
    """Split `split` of the shard folder `path` (None when the folder has none)."""
    index = read_index(path)
    shards = index["splits"].get(split)
    if not shards:
        return None
    files = tuple(str(Path(path) / s["file"]) for s in shards)
    classes, counts = tuple(s["class"] for s in shards), tuple(s["count"] for s in shards)
    y = np.repeat(np.array(classes, dtype=np.int64), counts)
    x = ShardedFeatures(files, classes, counts, (len(y), *index["shape"]))
    return ShardSplit(x=x, y=y, class_names=tuple(index["class_names"]))


def prepare(config: dict) -> Splits:
    """`kseq.training.trainer.prepare_data` for `data.source = "shards"`: the splits, streamed from disk.

    The shards' own gap filling and validation split are written into `config`, so the run's
    `config.toml` says what was done.
    """
    pre, path = config["preprocess"], config["data"]["path"]
    for key in ("window", "drop_constant", "correlation_threshold", "merge", "groups"):
        if pre[key]:
            raise InputError(f"preprocess.{key}: not available when training from shards ({path}); it needs "
                             "the whole training set in memory")
    index = read_index(path)
    fit_split, val_split, test_split = (open_split(path, s) for s in SPLITS)
    if test_split is None:
        raise InputError(f"{path}: no test shards; write them with --test-data")
    config["preprocess"]["fill_gaps"] = index["fill_gaps"]
    config["data"]["validation_split"] = index["validation_split"] if val_split is not None else 0.0
    return Splits(fit_split, val_split, test_split)


def _decode(shape):
    """A batch of records -> float32 `(B, T, F)`, one `decode_raw` for the whole batch."""
    return lambda records: tf.reshape(tf.io.decode_raw(records, tf.float32), [-1, *shape])


def _class_stream(files: list[str], seed: int) -> tf.data.Dataset:
    """Endless raw records of one class: files in a reshuffled order, records through a shuffle buffer."""
    names = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=seed).repeat()
    records = names.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 4), block_length=1)
    return records.shuffle(_SHUFFLE_BUFFER, seed=seed + 1)


def train_dataset(x: ShardedFeatures, y: np.ndarray, *, sampler: str, batch_size: int, seed: int, target,
                  epochs: int | None, first_epoch: int = 0,
                  input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
    """`make_train_dataset` on shards: epochs `first_epoch .. epochs - 1` of `ceil(N / batch_size)` batches.

    Each batch's classes are drawn first, `batch_size` at a time (one stateless categorical draw
    per batch), and its records are then taken from the per-class streams in that order
    (`choose_from_datasets`); the drawn classes are the batch's labels. The resampling samplers
    (`rejection`, `weighted`, `oversample`) draw the classes with the target class weights
    (`oversample`: uniform over the classes present), so every drawn sequence's class follows the
    target, as with rejection in memory; `none` and `class_weight` draw them in proportion to the
    class counts (a shuffled stream of all the data), `class_weight` adding each record's balanced
    weight. Why classes first: every per-record step of tf.data costs CPU time, and a label
    attached to each record by a `map` cost more than the small models spend on the record;
    drawn per batch, a record costs only its read, shuffle and choice (benchmarks/README.md,
    section out_of_core). Epoch `e` is drawn from `(seed, e)` alone, so a resumed run continues
    the stream.

    With `input_context` (from `tf.distribute.Strategy.distribute_datasets_from_function`), this
    is one input pipeline's share: batches of the per-replica size, class draws of its own, and
    every class's files split among the pipelines (a class with fewer files than pipelines is read
    whole by each, in an order of each pipeline's own), so workers read disjoint files and the
    global batch keeps the target balance.
    """
    pipelines, pipeline_id = (1, 0) if input_context is None else (input_context.num_input_pipelines,
                                                                   input_context.input_pipeline_id)
    local_replicas = 1 if input_context is None else input_context.num_replicas_in_sync // pipelines
    per_batch = batch_size if input_context is None else input_context.get_per_replica_batch_size(batch_size)
    counts = np.bincount(y, minlength=max(x.classes) + 1)
    if sampler in ("rejection", "weighted", "oversample"):
        weights = target_distribution("uniform" if sampler == "oversample" else target, counts)
    else:
        weights = counts / counts.sum()
    present = [c for c in range(len(counts)) if counts[c]]
    steps = -(-len(y) // batch_size) * local_replicas  # this pipeline's batches per epoch
    logits = tf.constant(np.log([[float(weights[c]) for c in present]]), tf.float32)
    labels_of_choice = tf.constant(present, tf.int32)

    def files_of(c: int) -> list[str]:
        files = [f for f, k in zip(x.files, x.classes) if k == c]
        return files[pipeline_id::pipelines] if len(files) >= pipelines else files

    def stream_seed(c: int, s: int) -> int:
        """A class read whole by every pipeline is shuffled with a seed of each pipeline's own: with
        one seed, every worker would take the same records in the same order, filling its share of
        a global batch with the records the other workers' shares hold."""
        shared = pipelines > 1 and len(files_of(c)) == sum(k == c for k in x.classes)
        return int(np.random.SeedSequence([s, pipeline_id]).generate_state(1)[0] % 2**31) if shared else s

    def epoch(e: int) -> tf.data.Dataset:
        seeds = np.random.SeedSequence([seed, e]).generate_state(len(present) + 1) % 2**31
        streams = [_class_stream(files_of(c), stream_seed(c, int(s))) for c, s in zip(present, seeds)]
        choices = tf.data.Dataset.range(steps).map(lambda i: tf.random.stateless_categorical(
            logits, per_batch, seed=tf.stack([tf.constant(int(seeds[-1]), tf.int64), i * pipelines + pipeline_id]))[0])
        records = tf.data.Dataset.choose_from_datasets(streams, choices.unbatch()).batch(per_batch)
        return tf.data.Dataset.zip(records, choices.map(lambda c: tf.gather(labels_of_choice, c)))

    epoch_ids = list(range(first_epoch, epochs)) if epochs is not None else [first_epoch]
    batches = epoch(first_epoch).take(len(epoch_ids) and -1)  # nothing left to draw: an empty pass
    for e in epoch_ids[1:]:
        batches = batches.concatenate(epoch(e))
    decode = _decode(x.shape[1:])
    if sampler == "class_weight":  # sklearn's balanced weight N / (C * n_c), as in memory
        per_class = tf.constant(balanced_weights(counts), tf.float32)
        batches = batches.map(lambda r, yb: (decode(r), yb, tf.gather(per_class, yb)), num_parallel_calls=AUTOTUNE)
    else:
        batches = batches.map(lambda r, yb: (decode(r), yb), num_parallel_calls=AUTOTUNE)
    batches = batches.apply(tf.data.experimental.assert_cardinality(len(epoch_ids) * steps))
    return _data_sharded(batches.prefetch(AUTOTUNE))


def eval_dataset(x: ShardedFeatures, y: np.ndarray | None, batch_size: int) -> tf.data.Dataset:
    """Every record once, in index order (the order of the split's labels), in batches."""
    records = tf.data.TFRecordDataset(list(x.files))
    batches = records.batch(batch_size).map(_decode(x.shape[1:]), num_parallel_calls=AUTOTUNE)
    if y is not None:
        labels = tf.data.Dataset.from_tensor_slices(y.astype(np.int32)).batch(batch_size)
        batches = tf.data.Dataset.zip(batches, labels)
    batches = batches.apply(tf.data.experimental.assert_cardinality(-(-len(x) // batch_size)))
    return _data_sharded(batches.prefetch(AUTOTUNE))


def _data_sharded(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Handed to `experimental_distribute_dataset`, each worker keeps its part of every batch (the
    per-class streams and their class draws are not a file source tf.distribute can split)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
