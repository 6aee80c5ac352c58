import numpy as np
import pytest

from kseq.config import infer_source
from kseq.data.loading import check_pair, load_datasets, stratified_split
from kseq.data.sequence_set import SequenceSet
from kseq.data.synthetic import make_heartbeats, write_heartbeat_csv
from kseq.utils.errors import InputError


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


@pytest.mark.parametrize("path, expected", [("X_TRAIN.ts", "ts"), ("x.TS", "ts"), ("beats.NPZ", "npz")])
def test_infer_source_from_suffix(path, expected):
    assert infer_source(path, "", "synthetic_ecg") == expected


# --- .ts train/test pairs and the bad-input rules of check_pair ------------------------------


def write_ts(path, rows, *, channels=1):
    """A .ts file of `rows` (label, [series per channel]) with unequal lengths allowed."""
    header = ["@problemName Tiny", "@timeStamps false", "@missing true", f"@univariate {str(channels == 1).lower()}",
              "@equalLength false", "@classLabel true " + " ".join(sorted({label for label, _ in rows})), "@data"]
    lines = [":".join(",".join(str(v) for v in series) for series in channel_values) + f":{label}"
             for label, channel_values in rows]
    path.write_text("\n".join(header + lines) + "\n")
    return str(path)


def ts_config(train, test="", **extra):
    return {"source": "ts", "path": train, "labels": "", "test_path": test, "test_labels": "",
            "test_split": 0.5, "class_names": [], **extra}


def rows(*labels, length=3, value=1.0):
    return [(label, [[value] * length]) for label in labels]


def test_ts_pair_maps_test_labels_onto_training_classes_and_pads_to_one_length(tmp_path):
    train_rows = [("up", [[1, 2, 3]]), ("down", [[3, 2, 1]]), ("up", [[1, 2, 4]]), ("flat", [[2, 2, 2]]),
                  ("down", [[4, 3, 2]]), ("flat", [[1, 1, 1]])]
    test_rows = [("up", [[1, 2, 3, 4, 5]]), ("down", [[5, 4]])]  # no "flat", longer and shorter series
    train, test = load_datasets(ts_config(write_ts(tmp_path / "X_TRAIN.ts", train_rows),
                                          write_ts(tmp_path / "X_TEST.ts", test_rows)), seed=0)
    assert train.class_names == test.class_names == ("down", "flat", "up")  # the training file's classes
    np.testing.assert_array_equal(train.y, [2, 0, 2, 1, 0, 1])
    np.testing.assert_array_equal(test.y, [2, 0])
    assert train.x.shape == (6, 5, 1) and test.x.shape == (2, 5, 1)
    np.testing.assert_array_equal(train.x[0, :, 0], [1, 2, 3, 0, 0])
    np.testing.assert_array_equal(test.x[1, :, 0], [5, 4, 0, 0, 0])
    np.testing.assert_array_equal(train.lengths, [3] * 6)
    np.testing.assert_array_equal(test.lengths, [5, 2])


def test_ts_training_file_alone_is_split(tmp_path):
    path = write_ts(tmp_path / "X_TRAIN.ts", rows("a", "b", "a", "b", "a", "b", "a", "b"))
    fit, test = load_datasets(ts_config(path), seed=0)
    assert np.bincount(fit.y).tolist() == [2, 2] and np.bincount(test.y).tolist() == [2, 2]


def test_class_with_one_training_series_is_named(tmp_path):
    path = write_ts(tmp_path / "X_TRAIN.ts", rows("a", "a", "b", "c", "c", "d"))
    with pytest.raises(InputError, match=r"X_TRAIN\.ts: classes 'b', 'd' have only 1 training series; "
                                         r"at least 2 per class are needed"):
        load_datasets(ts_config(path), seed=0)


def test_class_with_no_training_series_is_allowed_unless_tested():
    """Heartbeat files keep the five MIT-BIH names even when a file lacks some classes."""
    train = SequenceSet(np.ones((4, 3)), [0, 0, 1, 1], ("N", "S", "V"))
    check_pair(train, SequenceSet(np.ones((2, 3)), [0, 1], ("N", "S", "V")), "train.csv", "test.csv")
    with pytest.raises(InputError, match=r"^test\.csv: class 'V' is in the test set but not in the training set "
                                         r"train\.csv; every test class needs training series$"):
        check_pair(train, SequenceSet(np.ones((2, 3)), [0, 2], ("N", "S", "V")), "train.csv", "test.csv")


def test_test_classes_absent_from_training_file_are_named(tmp_path):
    train = write_ts(tmp_path / "X_TRAIN.ts", rows("a", "a", "b", "b"))
    test = write_ts(tmp_path / "X_TEST.ts", rows("a", "c", "e", "c"))
    with pytest.raises(InputError, match=r"X_TEST\.ts: classes 'c', 'e' are in the test set but not in the "
                                         r"training set .*X_TRAIN\.ts"):
        load_datasets(ts_config(train, test), seed=0)


def test_different_channel_counts_name_both_files(tmp_path):
    train = write_ts(tmp_path / "X_TRAIN.ts", [(c, [[1, 2], [3, 4]]) for c in "aabb"], channels=2)
    test = write_ts(tmp_path / "X_TEST.ts", rows("a", "b"))
    with pytest.raises(InputError, match=r"X_TRAIN\.ts has 2 channels but .*X_TEST\.ts has 1; "
                                         r"expected the same channels in both"):
        load_datasets(ts_config(train, test), seed=0)


def test_npz_with_different_channel_counts_goes_through_the_same_check(tmp_path):
    np.savez(tmp_path / "data.npz", x_train=np.zeros((4, 6, 2)), y_train=np.array([0, 1, 0, 1]),
             x_test=np.zeros((2, 6, 3)), y_test=np.array([0, 1]))
    data = {"source": "npz", "path": str(tmp_path / "data.npz")}
    with pytest.raises(InputError, match=r"data\.npz \(x_train\) has 2 channels but .*data\.npz \(x_test\) has 3"):
        load_datasets(data, seed=0)


def test_npz_without_a_test_split_is_split_like_a_lone_csv(tmp_path):
    """An npz of `x_train, y_train` alone is split, stratified, by `data.test_split`, as a training
    CSV given without `--test-data` is; `--test-data` beside an npz is refused, not ignored."""
    x = np.arange(40 * 6, dtype=np.float32).reshape(40, 6) + 1
    y = np.array([1] * 30 + [2] * 10)  # 1-based labels: classes "1" and "2"
    np.savez(tmp_path / "data.npz", x_train=x, y_train=y)
    data = {"source": "npz", "path": str(tmp_path / "data.npz"), "test_split": 0.25, "test_path": ""}
    train, test = load_datasets(data, seed=3)
    assert train.class_names == test.class_names == ("1", "2")
    assert (len(train.y), len(test.y)) == (30, 10)
    np.testing.assert_array_equal(np.bincount(test.y), [round(0.25 * 30), round(0.25 * 10)])  # stratified
    seen = np.sort(np.concatenate([train.x[:, 0, 0], test.x[:, 0, 0]]))
    np.testing.assert_array_equal(seen, x[:, 0])  # every series once
    again = load_datasets(data, seed=3)[1]
    np.testing.assert_array_equal(again.x, test.x)  # the seed fixes the split
    with pytest.raises(InputError, match=r"^--test-data other\.npz: an npz training file holds its own test split"):
        load_datasets({**data, "test_path": "other.npz"}, seed=3)


def test_series_missing_in_every_channel_is_named_1_based(tmp_path):
    train = write_ts(tmp_path / "X_TRAIN.ts", [("a", [[1, 2], [3, 4]]), ("a", [[1, "?"], [3, 4]]),
                                               ("b", [["?", "?"], ["?", "?"]]), ("b", [[5, 6], [7, 8]])], channels=2)
    with pytest.raises(InputError, match=r"^.*X_TRAIN\.ts: series 3 \(1-based\) has no values: every channel is "
                                         r"missing; remove it or give it data$"):
        load_datasets(ts_config(train), seed=0)


def test_all_missing_ignores_the_zero_padding():
    """Series 1 is all NaN over its own length (2 steps); the zeros after it are padding."""
    x = np.array([[np.nan, np.nan, 0.0], [1.0, np.nan, 0.0], [1.0, 2.0, 3.0]])
    good = SequenceSet(np.ones((4, 3)), [0, 0, 1, 1], ("a", "b"))
    with pytest.raises(InputError, match=r"^test\.csv: series 1 \(1-based\) has no values"):
        check_pair(good, SequenceSet(x, [0, 1, 1], ("a", "b"), lengths=np.array([2, 2, 3])), "train.csv", "test.csv")


def test_synthetic_data_passes_the_checks():
    train, test = load_datasets({"source": "synthetic_ecg", "scale": 0.01}, seed=0)
    assert set(np.unique(train.y)) == set(np.unique(test.y)) == set(range(5))


def test_all_zero_series_is_padding_not_missing():
    """A heartbeat row of zeros has length 0: nothing missing, so no error."""
    data = SequenceSet(np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 0.0], [4.0, 4.0]]), [0, 0, 1, 1], ("a", "b"),
                       lengths=np.array([0, 2, 1, 2]))
    check_pair(data, None, "train.csv")
