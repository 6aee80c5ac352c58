import numpy as np
import pytest

from kseq.config import infer_source
from kseq.data.loading import load_datasets, stratified_split
from kseq.data.sequence_set import SequenceSet
from kseq.data.synthetic import make_heartbeats, write_heartbeat_csv
from kseq.errors import InputError


def labelled(counts):
    y = np.repeat(np.arange(len(counts)), counts)
    x = np.arange(len(y), dtype=np.float32)[:, None, None]  # the row number, to trace rows
    return SequenceSet(x=x, y=y, class_names=tuple("abcdefgh"[: len(counts)]))


def test_stratified_split_takes_the_fraction_of_every_class():
    data = labelled([100, 20, 5, 2])
    kept, held = stratified_split(data, 0.1, seed=0)
    assert np.bincount(held.y).tolist() == [10, 2, 1, 1]  # at least one of a class with two or more
    assert np.bincount(kept.y).tolist() == [90, 18, 4, 1]
    rows = np.concatenate([kept.x.ravel(), held.x.ravel()])
    assert sorted(rows.tolist()) == list(range(len(data)))  # a partition: nothing lost or repeated


def test_stratified_split_is_seeded():
    data = labelled([50, 10])
    a = stratified_split(data, 0.2, seed=1)[1].x.ravel()
    assert np.array_equal(a, stratified_split(data, 0.2, seed=1)[1].x.ravel())
    assert not np.array_equal(a, stratified_split(data, 0.2, seed=2)[1].x.ravel())


def test_real_file_without_test_file_is_split(tmp_path):
    train, _ = make_heartbeats(scale=0.01, seed=0)
    write_heartbeat_csv(train, tmp_path / "train.csv")
    data = {"source": "heartbeat_csv", "path": str(tmp_path / "train.csv"), "labels": "", "test_path": "",
            "test_labels": "", "test_split": 0.2, "scale": 1.0, "class_names": []}
    fit, test = load_datasets(data, seed=0)
    assert len(fit) + len(test) == len(train)
    assert abs(len(test) - 0.2 * len(train)) <= len(train.class_names)
    assert fit.class_names == ("N", "S", "V", "F", "Q")


def test_class_names_from_config_name_the_labels(tmp_path):
    """PTBDB-style two-class heartbeat files: labels 0 and 1 named by `data.class_names`."""
    train, _ = make_heartbeats(scale=0.01, seed=0)
    two = train.subset(np.flatnonzero(train.y < 2))
    write_heartbeat_csv(two, tmp_path / "ptb.csv")
    data = {"source": "heartbeat_csv", "path": str(tmp_path / "ptb.csv"), "labels": "", "test_path": "",
            "test_labels": "", "test_split": 0.2, "class_names": ["normal", "abnormal"]}
    fit, test = load_datasets(data, seed=0)
    assert fit.class_names == test.class_names == ("normal", "abnormal")
    assert set(np.unique(fit.y)) == {0, 1}


@pytest.mark.parametrize(
    "path, labels, default, expected",
    [
        ("beats.npz", "", "synthetic_ecg", "npz"),
        ("features.csv", "labels.csv", "synthetic_ecg", "pain_csv"),
        ("beats.csv", "", "synthetic_ecg", "heartbeat_csv"),
        ("features.csv", "", "synthetic_pain", "pain_csv"),
    ],
)
def test_infer_source(path, labels, default, expected):
    assert infer_source(path, labels, default) == expected


def test_unknown_source_names_the_field():
    with pytest.raises(InputError, match="data.source: unknown source 'parquet'"):
        load_datasets({"source": "parquet", "path": "x"}, seed=0)
