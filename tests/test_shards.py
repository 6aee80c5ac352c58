"""Shards: TFRecord files one class each, written from any source, streamed with the same samplers."""

import json
import tracemalloc

import numpy as np
import pytest
import tensorflow as tf

from kseq.config import load_config
from kseq.data import SequenceSet, load_npz, make_heartbeats
from kseq.data.loading import load_datasets, stratified_split
from kseq.data.preprocess import fill_gaps
from kseq.data.pipeline import make_eval_dataset, make_train_dataset
from kseq.cli.shard import main as shard_main
from kseq.data.shards import open_split, read_index, write_shards
from kseq.utils.errors import InputError
from kseq.training.trainer import train
from tests.conftest import TINY_ECG


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    train_set, test_set = make_heartbeats(scale=0.01, seed=0)
    folder = write_shards(tmp_path_factory.mktemp("s") / "shards", train_set, test_set, records_per_shard=64)
    return train_set, test_set, folder


def rows_by_class(x, y, c):
    """The sequences of class `c` as a sorted list of byte strings: order-free comparison."""
    return sorted(row.tobytes() for row in np.asarray(x, np.float32)[y == c])


def test_shards_hold_every_sequence_once_with_its_class(tiny):
    train_set, test_set, folder = tiny
    index = read_index(folder)
    fit, held = stratified_split(train_set, 0.1, 0)
    for name, expected in (("train", fit), ("validation", held), ("test", test_set)):
        split = open_split(folder, name)
        np.testing.assert_array_equal(np.bincount(split.y, minlength=5), np.bincount(expected.y, minlength=5))
        x, y = (np.concatenate(parts) for parts in zip(*((a.numpy(), b.numpy()) for a, b in
                                                           make_eval_dataset(split.x, split.y, batch_size=50))))
        np.testing.assert_array_equal(y, split.y)
        for c in range(5):
            # NaN gaps filled at writing, as the in-memory path fills them before training
            assert rows_by_class(x, y, c) == rows_by_class(fill_gaps(expected.x, "spline"), expected.y, c)
    per_class = [sum(s["class"] == c for s in index["splits"]["train"]) for c in range(5)]
    assert min(per_class) >= min(4, np.bincount(fit.y).min())  # files enough to split a class among 4 workers


def test_streamed_batches_are_balanced_and_epoch_e_depends_on_seed_and_e_only(tiny):
    train_set, _, folder = tiny
    split = open_split(folder, "train")
    stream = make_train_dataset(split.x, split.y, sampler="rejection", batch_size=64, seed=3, epochs=3)
    batches = [(x.numpy(), y.numpy()) for x, y in stream]
    steps = -(-len(split.y) // 64)
    assert len(batches) == 3 * steps and all(len(y) == 64 for _, y in batches)
    shares = np.bincount(np.concatenate([y for _, y in batches]), minlength=5) / (3 * steps * 64)
    np.testing.assert_allclose(shares, 0.2, atol=0.03)  # uniform target; 2,304 draws, sd 0.008
    fit = stratified_split(train_set, 0.1, 0)[0]
    of_class = [set(rows_by_class(fill_gaps(fit.x, "spline"), fit.y, c)) for c in range(5)]
    for x, y in batches:  # every drawn record is one of the class it is labelled with
        assert all(row.tobytes() in of_class[label] for row, label in zip(x, y))
    resumed = [(x.numpy(), y.numpy()) for x, y in make_train_dataset(
        split.x, split.y, sampler="rejection", batch_size=64, seed=3, epochs=3, first_epoch=1)]
    for (xa, ya), (xb, yb) in zip(resumed, batches[steps:], strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    other = next(iter(make_train_dataset(split.x, split.y, batch_size=64, seed=4, epochs=1)))[0].numpy()
    assert not np.array_equal(other, batches[0][0])


def test_each_input_pipeline_reads_its_own_files_in_balanced_per_replica_batches(tmp_path):
    # Sequence i holds the value i, so a drawn record names itself; 4 classes, one with 2 files only.
    y = np.repeat(np.arange(4), [600, 300, 160, 40])
    ids = SequenceSet(np.arange(len(y), dtype=np.float32).reshape(-1, 1, 1), y, ("a", "b", "c", "d"))
    split = open_split(write_shards(tmp_path / "ids", ids, validation_split=0, records_per_shard=40,
                                    min_shards_per_class=2), "train")
    seen = []
    for pipeline_id in range(3):
        context = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=pipeline_id,
                                             num_replicas_in_sync=3)
        stream = make_train_dataset(split.x, split.y, sampler="rejection", batch_size=60, seed=0, epochs=2,
                                    input_context=context)
        batches = [(x.numpy().ravel().astype(int), y.numpy()) for x, y in stream]
        assert len(batches) == 2 * -(-len(y) // 60) and all(len(b) == 20 for b, _ in batches)
        drawn, labels = (np.concatenate(parts) for parts in zip(*batches))
        np.testing.assert_array_equal(y[drawn], labels)  # each record carries its own class
        np.testing.assert_allclose(np.bincount(labels, minlength=4) / len(labels), 0.25, atol=0.04)
        seen.append(set(drawn.tolist()))
    for a, b in ((0, 1), (0, 2), (1, 2)):  # disjoint, except class d: 2 files for 3 pipelines, read by each
        assert {i for i in seen[a] & seen[b] if y[i] != 3} == set()
    assert set.union(*seen) >= set(np.flatnonzero(y == 3).tolist())


def test_a_class_every_pipeline_reads_whole_repeats_in_a_global_batch_only_by_chance(tmp_path):
    """Class d (40 records, 2 files) is read whole by each of 3 pipelines. A global batch (the three
    per-replica batches together) may hold a d record twice only as often as independent draws of
    the same numbers of d records would; with one shuffle order for all, every pipeline took the
    same records (5.1 repeats a global batch, against 1.9 by chance)."""
    y = np.repeat(np.arange(4), [600, 300, 160, 40])
    ids = SequenceSet(np.arange(len(y), dtype=np.float32).reshape(-1, 1, 1), y, ("a", "b", "c", "d"))
    split = open_split(write_shards(tmp_path / "ids", ids, validation_split=0, records_per_shard=40,
                                    min_shards_per_class=2), "train")
    per_pipeline = []
    for pipeline_id in range(3):
        context = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=pipeline_id,
                                             num_replicas_in_sync=3)
        stream = make_train_dataset(split.x, split.y, sampler="rejection", batch_size=60, seed=0, epochs=2,
                                    input_context=context)
        per_pipeline.append([x.numpy().ravel().astype(int) for x, _ in stream])
    rng = np.random.default_rng(0)
    repeats, chance = [], []
    for shares in zip(*per_pipeline):  # one global batch
        minority = [share[y[share] == 3] for share in shares]
        together = np.concatenate(minority)
        repeats.append(len(together) - len(np.unique(together)))
        draws = [np.concatenate([rng.choice(40, len(m), replace=False) for m in minority]) for _ in range(200)]
        chance.append(np.mean([len(d) - len(np.unique(d)) for d in draws]))
    assert np.mean(repeats) <= 1.5 * np.mean(chance) + 0.5, (np.mean(repeats), np.mean(chance))


def test_cli_converts_npz_and_training_from_shards_runs_end_to_end(tmp_path, capsys):
    train_set, test_set = make_heartbeats(scale=0.01, seed=1)
    np.savez(tmp_path / "beats.npz", x_train=train_set.x, y_train=train_set.y, x_test=test_set.x, y_test=test_set.y,
             class_names=np.array(train_set.class_names))
    assert shard_main([str(tmp_path / "beats.npz"), "--out", str(tmp_path / "shards")]) == 0
    config = load_config("ecg_cnn", [*TINY_ECG, "data.source=shards", f"data.path={tmp_path / 'shards'}"])
    run = train(config, tmp_path / "runs")
    metrics = json.loads((run.directory / "metrics.json").read_text())
    assert sum(v["support"] for v in metrics["per_class"].values()) == len(test_set)
    assert np.sum(metrics["confusion_matrix"], axis=1).tolist() == np.bincount(test_set.y, minlength=5).tolist()
    assert "val_macro_f1" in run.history and run.model.input_shape == (None, 187, 1)
    assert shard_main([str(tmp_path / "beats.npz"), "--out", str(tmp_path / "shards")]) == 2
    assert "already holds shards" in capsys.readouterr().err


def test_bad_shard_input_is_one_line_naming_it(tmp_path, tiny):
    with pytest.raises(InputError, match="not a shard folder"):
        read_index(tmp_path)
    with pytest.raises(ValueError, match="give test or test_split, not both"):
        write_shards(tmp_path / "both", tiny[0], tiny[1], test_split=0.2)
    config = load_config("ecg_cnn", [*TINY_ECG, "data.source=shards", f"data.path={tiny[2]}", "preprocess.window=20"])
    with pytest.raises(InputError, match="preprocess.window"):
        train(config, tmp_path / "runs")
    # Random kernels are fitted in memory (they used to end with a TypeError deep in the fit).
    config = load_config("minirocket", ["data.source=shards", f"data.path={tiny[2]}", "model.num_features=84"])
    with pytest.raises(InputError, match="model.name = 'minirocket'.*streams from disk"):
        train(config, tmp_path / "runs")
    assert not (tmp_path / "runs" / "minirocket").exists()
    # So are per-channel statistics and the length layers' (the feature's used to stay at 0 and 1, unfitted).
    for setting, key in (("preprocess.normalize=channel", "preprocess.normalize"),
                         ("model.length_feature=true", "model.length_feature"),
                         ("model.length_scale=true", "model.length_scale")):
        config = load_config("resnet", ["data.source=shards", f"data.path={tiny[2]}", setting])
        with pytest.raises(InputError, match=f"{key} = .*streams from disk"):
            train(config, tmp_path / "runs")
    assert not (tmp_path / "runs" / "resnet").exists()


def test_cli_data_folder_without_shards_is_one_error_line(tmp_path, capsys):
    from kseq.experiments.run import main

    assert main(["ecg_cnn", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "index.json" in err and str(tmp_path) in err


def heartbeat_csv(path, x, y):
    """The Kaggle heartbeat format: a series' 187 values then its label, one series a line (NaN as `nan`)."""
    np.savetxt(path, np.column_stack([x.reshape(len(x), -1), y]), fmt="%.9g", delimiter=",")
    return path


def beats_npz(path, save=np.savez, order=np.ascontiguousarray):
    """Heartbeats as an npz with `lengths_train`, NaN gaps and, in a few training series, NaN padding."""
    train_set, test_set = make_heartbeats(scale=0.01, seed=1)
    x = train_set.x[:, :, 0].copy()
    padded = np.arange(x.shape[1])[None, :] >= train_set.lengths[:, None]
    x[::9] = np.where(padded[::9], np.nan, x[::9])  # padding as NaN: read as 0
    save(path, x_train=order(x), y_train=train_set.y, lengths_train=train_set.lengths, x_test=test_set.x,
         y_test=test_set.y, class_names=np.array(train_set.class_names))
    return path


def files_of(folder):
    """Every file under `folder`, by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kind", ["heartbeat_csv", "npz", "npz_compressed", "npz_fortran_order"])
def test_the_command_line_streams_a_file_to_the_shards_write_shards_writes_from_memory(tmp_path, kind):
    """The command line reads 7 series at a time into arrays on disk; `write_shards` on the sets
    `load_datasets` (or `load_npz`) reads whole must write the same files, index included."""
    if kind == "heartbeat_csv":  # no test file: the test split is held out of the file, by row
        beats, _ = make_heartbeats(scale=0.01, seed=2)
        path = heartbeat_csv(tmp_path / "beats.csv", beats.x, beats.y)
        data = {**load_config("resnet")["data"], "source": "heartbeat_csv", "path": str(path), "test_split": 0.2}
        train_set, test_set = load_datasets(data, seed=3)
    else:
        save = np.savez_compressed if kind == "npz_compressed" else np.savez
        order = np.asfortranarray if kind == "npz_fortran_order" else np.ascontiguousarray
        path = beats_npz(tmp_path / "beats.npz", save, order)
        train_set, test_set = load_npz(path)
    assert np.isnan(train_set.x).any()  # gaps to fill, chunk by chunk
    expected = write_shards(tmp_path / "memory", train_set, test_set, seed=3, records_per_shard=40)
    assert shard_main([str(path), "--out", str(tmp_path / "streamed"), "--seed", "3", "--records-per-shard", "40",
                       "--chunk-rows", "7"]) == 0
    streamed, memory = files_of(tmp_path / "streamed"), files_of(expected)
    assert sorted(streamed) == sorted(memory) and len(memory) > 30
    assert [name for name in memory if streamed[name] != memory[name]] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, "memory", "streamed"])  # no scratch left


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_the_command_line_converts_a_file_in_a_fraction_of_its_size_in_memory(tmp_path, suffix):
    """36,000 heartbeats, 27 MB as float32 in memory (a 40 MB CSV), read 256 at a time: the traced
    peak (NumPy reports its allocations to tracemalloc) stays under a quarter of the data. Reading
    the file whole, as `load_datasets` does, holds all of it."""
    rng = np.random.default_rng(0)
    block = np.round(rng.uniform(0, 1, (500, 187)), 3).astype(np.float32)  # 500 distinct series, repeated
    n = 72 * len(block)
    y = np.arange(n) % 5
    if suffix == ".csv":
        lines = [",".join(row) for row in np.char.mod("%.3f", block)]
        text = "".join(f"{lines[i % len(block)]},{y[i]}\n" for i in range(n))
        (tmp_path / "big.csv").write_text(text)
        del text
        heartbeat_csv(tmp_path / "small.csv", block[:50], y[:50])
    else:
        x = np.tile(block, (72, 1))
        np.savez(tmp_path / "big.npz", x_train=x, y_train=y, x_test=x[:500], y_test=y[:500])
        np.savez(tmp_path / "small.npz", x_train=block, y_train=y[:500], x_test=block[:50], y_test=y[:50])
        n += 500
        del x
    data_bytes = n * 187 * 4
    # A first, small conversion imports and caches what any conversion needs, outside the measurement.
    assert shard_main([str(tmp_path / f"small{suffix}"), "--out", str(tmp_path / "small"), "--chunk-rows", "256"]) == 0
    tracemalloc.start()
    try:
        code = shard_main([str(tmp_path / f"big{suffix}"), "--out", str(tmp_path / "big"), "--chunk-rows", "256"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 0
    assert sum(s["count"] for shards in read_index(tmp_path / "big")["splits"].values() for s in shards) == n
    assert peak < data_bytes / 4, f"traced peak {peak / 2**20:.1f} MiB for {data_bytes / 2**20:.1f} MiB of series"


@pytest.mark.parametrize("write, message", [
    (lambda path: heartbeat_csv(path.with_suffix(".csv"), np.where(np.arange(30)[:, None] == 19, np.nan, 0.5)
                                * np.ones((30, 187)), np.arange(30) % 2),
     "beats.csv: series 20 (1-based) has no values: every channel is missing"),
    (lambda path: heartbeat_csv(path.with_suffix(".csv"), np.full((30, 187), 0.5), np.where(np.arange(30) == 16, 9,
                                                                                             np.arange(30) % 2)),
     "beats.csv line 17: label 9.0 is not a class index"),
    (lambda path: np.savez(path.with_suffix(".npz"), x_train=np.where(np.isin(np.arange(30), [9, 15])[:, None],
                                                                      np.inf, np.ones((30, 12))),
                           y_train=np.arange(30) % 2, x_test=np.ones((4, 12)), y_test=np.arange(4) % 2)
     or path.with_suffix(".npz"),
     "beats.npz: x_train has infinite values in rows 9, 15; expected finite numbers or NaN"),
], ids=["series without values", "label not a class", "infinite values"])
def test_bad_input_streamed_is_one_error_line_naming_the_series_and_nothing_is_written(tmp_path, capsys, write,
                                                                                       message):
    """Problems past the first chunk of 7 series are named by their place in the file."""
    path = write(tmp_path / "beats")
    assert shard_main([str(path), "--out", str(tmp_path / "shards"), "--chunk-rows", "7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no shards, no scratch folder
