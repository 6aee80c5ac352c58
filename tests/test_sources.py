"""Tests for kseq.data.sources: the real heartbeat fixture, npz and pain CSV, and every error message."""

import csv
import re
import sys

import numpy as np
import pandas as pd
import pytest

from kseq.data import load_heartbeat_csv, load_npz, load_pain_csv, load_ts
from kseq.data.sources import PAIN_FEATURE_COLUMNS, parse_pain_frames, signal_lengths
from kseq.utils.errors import InputError

def _raises(match, call, *args, **kwargs):
    """Assert `call` raises InputError whose message matches every regex in `match`."""
    with pytest.raises(InputError) as info:
        call(*args, **kwargs)
    for pattern in [match] if isinstance(match, str) else match:
        assert re.search(pattern, str(info.value)), f"{pattern!r} not in {info.value}"
    return str(info.value)


# --- heartbeat CSV ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(real_heartbeat_csv):
    return load_heartbeat_csv(real_heartbeat_csv)


@pytest.fixture(scope="module")
def real_lines(real_heartbeat_csv):
    return real_heartbeat_csv.read_text().splitlines()[:4]


def test_real_fixture_shape_labels_and_range(real):
    assert real.x.shape == (200, 187, 1)
    assert real.x.dtype == np.float32
    assert real.class_names == ("N", "S", "V", "F", "Q")
    assert (real.y == 0).all()
    assert real.x.min() >= 0.0 and real.x.max() <= 1.0


def test_real_fixture_values_match_csv_module(real, real_heartbeat_csv):
    with open(real_heartbeat_csv, newline="") as handle:
        rows = {i: row for i, row in enumerate(csv.reader(handle)) if i in (0, 100, 199)}
    assert len(rows) == 3
    for i, row in rows.items():
        assert len(row) == 188
        np.testing.assert_array_equal(real.x[i, :, 0], np.array(row[:187], dtype=np.float32))


def test_real_fixture_lengths_cut_the_zero_tail(real):
    for i in (0, 1, 100):
        row = real.x[i, :, 0]
        assert real.lengths[i] == max(j for j in range(187) if row[j] != 0) + 1
    assert (real.lengths < 187).any() and real.lengths.min() >= 1


def test_chunked_read_matches_and_finds_bad_lines_in_later_chunks(tmp_path, real, real_heartbeat_csv):
    chunked = load_heartbeat_csv(real_heartbeat_csv, chunk_rows=30)
    np.testing.assert_array_equal(chunked.x, real.x)
    np.testing.assert_array_equal(chunked.lengths, real.lengths)
    lines = real_heartbeat_csv.read_text().splitlines()
    for number, text in ((190, lines[189] + ",0"), (95, lines[94][: lines[94].rindex(",")])):
        path = _with_line(tmp_path, lines, number, text)
        _raises(rf"beats\.csv line {number}: found 18[79] values, expected 188", load_heartbeat_csv, path,
                chunk_rows=30)


def test_signal_lengths_counts_nan_as_signal_and_empty_rows_as_zero():
    x = np.array([[1, 0, 2, 0, 0], [0, 0, 0, 0, 0], [1, np.nan, 0, 0, 0], [1, 1, 1, 1, 1]], np.float32)
    np.testing.assert_array_equal(signal_lengths(x), [3, 0, 2, 5])


def test_ptbdb_class_names(tmp_path, real_lines):
    path = tmp_path / "ptbdb.csv"
    path.write_text("\n".join(line[: line.rindex(",")] + f",{label:.18e}" for line, label in zip(real_lines, (1, 0))))
    data = load_heartbeat_csv(path, class_names=("normal", "abnormal"))
    assert data.class_names == ("normal", "abnormal")
    np.testing.assert_array_equal(data.y, [1, 0])


def _with_line(tmp_path, lines, number, text):
    """A copy of `lines` with line `number` (1-based) replaced by `text`, written to a file."""
    lines = list(lines)
    lines[number - 1] = text
    path = tmp_path / "beats.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("ending, last", [("\r\n", ""), ("\r", "\r"), ("\n", "\n\n")])
def test_heartbeat_line_endings(tmp_path, real, real_lines, ending, last):
    path = tmp_path / "endings.csv"
    path.write_bytes((ending.join(real_lines[:3]) + last).encode())
    if last == "\n\n":  # a blank last line is a line with no values
        _raises(r"endings\.csv line 4: found 0 values, expected 188", load_heartbeat_csv, path)
    else:
        np.testing.assert_array_equal(load_heartbeat_csv(path).x, real.x[:3])


def test_heartbeat_missing_and_empty_file(tmp_path):
    _raises(r"nope\.csv: no such file", load_heartbeat_csv, tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    _raises(r"empty\.csv: empty file; expected lines of 188", load_heartbeat_csv, tmp_path / "empty.csv")


@pytest.mark.parametrize("number, change, found", [
    (3, lambda line: line + ",1.0", 189),  # a line too long
    (2, lambda line: line[: line.rindex(",")], 187),  # a line too short
    (1, lambda line: line[: line.rindex(",")], 187),  # the first line sets pandas' width
    (2, lambda line: "", 0),  # a blank line
])
def test_heartbeat_wrong_value_count_names_line_and_counts(tmp_path, real_lines, number, change, found):
    path = _with_line(tmp_path, real_lines, number, change(real_lines[number - 1]))
    _raises(rf"beats\.csv line {number}: found {found} values, expected 188", load_heartbeat_csv, path)


def test_heartbeat_non_numeric_cell_names_line_and_column(tmp_path, real_lines):
    cells = real_lines[1].split(",")
    cells[4] = "abc"
    path = _with_line(tmp_path, real_lines, 2, ",".join(cells))
    _raises(r"beats\.csv line 2, column 5: 'abc' is not a number", load_heartbeat_csv, path)


@pytest.mark.parametrize("label, shown", [("5.0", "5.0"), ("0.5", "0.5"), ("-1", "-1.0"), ("nan", "nan")])
def test_heartbeat_bad_label_names_line(tmp_path, real_lines, label, shown):
    line = real_lines[2]
    path = _with_line(tmp_path, real_lines, 3, line[: line.rindex(",") + 1] + label)
    _raises(rf"beats\.csv line 3: label {shown} is not a class index; expected a whole number in 0\.\.4",
            load_heartbeat_csv, path)


def test_heartbeat_label_outside_custom_class_names(tmp_path, real_lines):
    line = real_lines[3]
    path = _with_line(tmp_path, real_lines, 4, line[: line.rindex(",") + 1] + "2.0")
    _raises(r"line 4: label 2\.0 .* 0\.\.1 for \('normal', 'abnormal'\)",
            load_heartbeat_csv, path, ("normal", "abnormal"))


def test_heartbeat_nan_cells_read_as_nan(tmp_path, real_lines):
    cells = real_lines[0].split(",")
    cells[3], cells[4] = "nan", ""
    data = load_heartbeat_csv(_with_line(tmp_path, real_lines, 1, ",".join(cells)))
    assert np.isnan(data.x[0, 3:5, 0]).all() and not np.isnan(data.x[1:]).any()


# --- npz -------------------------------------------------------------------------------------


def _npz(tmp_path, **arrays):
    base = {"x_train": np.zeros((4, 6)), "y_train": np.array([0, 1, 2, 1]),
            "x_test": np.zeros((2, 6)), "y_test": np.array([2, 0])}
    path = tmp_path / "data.npz"
    np.savez(path, **{key: value for key, value in {**base, **arrays}.items() if value is not None})
    return path


def test_npz_int_labels_univariate(tmp_path):
    x = np.arange(24, dtype=np.float64).reshape(4, 6)
    x[0, 2] = np.nan
    train, test = load_npz(_npz(tmp_path, x_train=x))
    assert train.x.shape == (4, 6, 1) and test.x.shape == (2, 6, 1) and train.x.dtype == np.float32
    assert np.isnan(train.x[0, 2, 0]) and train.x[1, 0, 0] == 6
    assert train.class_names == ("0", "1", "2")
    np.testing.assert_array_equal(train.y, [0, 1, 2, 1])
    np.testing.assert_array_equal(test.y, [2, 0])


@pytest.mark.parametrize("y_train, y_test, names, train_ids, test_ids", [
    ([1, 2, 3, 2], [3, 1], ("1", "2", "3"), [0, 1, 2, 1], [2, 0]),  # the archive's 1-based labels
    ([-1, 1, 1, -1], [1.0, -1.0], ("-1", "1"), [0, 1, 1, 0], [1, 0]),  # -1/1, whole floats in a split
    ([0, 10, 2, 10], [2, 0], ("0", "2", "10"), [0, 2, 1, 2], [1, 0]),  # numbers sort as numbers, no gaps
])
def test_npz_int_labels_without_class_names_are_the_distinct_labels(tmp_path, y_train, y_test, names,
                                                                     train_ids, test_ids):
    """Without class_names every class is a label the data holds: 1-based labels used to make an
    empty class "0" that macro-F1 scored as a class never predicted."""
    train, test = load_npz(_npz(tmp_path, y_train=np.array(y_train), y_test=np.array(y_test)))
    assert train.class_names == test.class_names == names
    np.testing.assert_array_equal(train.y, train_ids)
    np.testing.assert_array_equal(test.y, test_ids)
    np.testing.assert_array_equal(np.array(names, dtype=float)[train.y], y_train)  # each id names its own label


def test_npz_labels_as_a_column_read_as_a_vector(tmp_path):
    train, test = load_npz(_npz(tmp_path, y_train=np.array([[1], [0], [1], [2]]), y_test=np.array([[0], [2]])))
    np.testing.assert_array_equal(train.y, [1, 0, 1, 2])
    np.testing.assert_array_equal(test.y, [0, 2])


def test_npz_without_test_arrays_gives_no_test_set(tmp_path):
    train, test = load_npz(_npz(tmp_path, x_test=None, y_test=None, y_train=np.array(["b", "a", "b", "c"])))
    assert test is None and train.class_names == ("a", "b", "c")
    np.testing.assert_array_equal(train.y, [1, 0, 1, 2])


def test_npz_multivariate_with_class_names(tmp_path):
    path = _npz(tmp_path, x_train=np.ones((4, 6, 3)), x_test=np.ones((2, 6, 3)),
                class_names=np.array(["a", "b", "c", "d"]))
    train, test = load_npz(path)
    assert train.x.shape == (4, 6, 3) and test.x.shape == (2, 6, 3)
    assert train.class_names == test.class_names == ("a", "b", "c", "d")


def test_npz_string_labels_sorted_or_in_given_order(tmp_path):
    labels = {"y_train": np.array(["v", "n", "n", "s"]), "y_test": np.array(["s", "v"])}
    train, test = load_npz(_npz(tmp_path, **labels))
    assert train.class_names == ("n", "s", "v")
    np.testing.assert_array_equal(train.y, [2, 0, 0, 1])
    np.testing.assert_array_equal(test.y, [1, 2])
    train, test = load_npz(_npz(tmp_path, **labels, class_names=np.array(["v", "s", "n"])))
    assert train.class_names == ("v", "s", "n")
    np.testing.assert_array_equal(train.y, [0, 2, 2, 1])


# Malformed npz files: tests/test_bad_input.py (LOADERS).


def test_npz_lengths_are_kept_and_nan_padding_reads_as_zero(tmp_path):
    x = np.arange(1, 25, dtype=np.float64).reshape(4, 6)
    x[0, 3:] = np.nan  # padding given as NaN, as aeon and pandas pad
    x[1, 5:] = 0.0
    train, test = load_npz(_npz(tmp_path, x_train=x, lengths_train=np.array([3, 5, 6, 6]),
                                lengths_test=np.array([6, 1], dtype=np.int32)))
    np.testing.assert_array_equal(train.lengths, [3, 5, 6, 6])
    np.testing.assert_array_equal(test.lengths, [6, 1])
    np.testing.assert_array_equal(train.x[0, :, 0], [1, 2, 3, 0, 0, 0])  # no NaN left for gap filling
    np.testing.assert_array_equal(train.x[1:, :, 0], x[1:])
    assert train.lengths.dtype == np.int64


def test_npz_without_lengths_falls_back_to_trailing_zero_steps(tmp_path):
    x = np.ones((4, 6))
    x[0, 4:] = 0  # two trailing zero steps: padding
    x[1, 1:3] = 0  # zeros inside the series: data
    x[2] = 0  # nothing but zeros: one step
    train, _ = load_npz(_npz(tmp_path, x_train=x))
    assert train.lengths is None
    np.testing.assert_array_equal(train.real_lengths(), [4, 6, 1, 6])


@pytest.mark.parametrize("arrays, message", [
    ({"lengths_train": np.array([3, 5, 6])}, r"lengths_train must hold one integer length per series of "
                                              r"x_train, shape \(4,\); got int64 \(3,\)"),
    ({"lengths_test": np.array([3.0, 5.0])}, r"lengths_test must hold one integer length per series of x_test"),
    ({"lengths_train": np.array([3, 0, 7, 6])}, r"lengths_train has lengths outside \[1, 6\] \(the steps of "
                                                 r"x_train\) at rows 1, 2; e\.g\. lengths_train\[1\] = 0"),
    ({"x_test": np.ones((2, 6)), "lengths_test": np.array([6, 4])},
     r"x_test has values after the length lengths_test gives at rows 1; expected padding \(0 or NaN\)"),
])
def test_npz_length_errors(tmp_path, arrays, message):
    _raises([r"data\.npz", message], load_npz, _npz(tmp_path, **arrays))



# --- pain CSV --------------------------------------------------------------------------------

STEPS = 160


def _pain_tables(n=3):
    """Long-format features for samples 0..n-1 (sample 2 a pirate) and their labels."""
    rng = np.random.default_rng(0)
    sample = np.repeat(np.arange(n), STEPS)
    columns = {"sample_index": sample, "time": np.tile(np.arange(STEPS), n)}
    for name in PAIN_FEATURE_COLUMNS:
        if name.startswith("n_"):
            columns[name] = np.where(sample == 2, "one+peg_leg", "two")
        else:
            columns[name] = rng.integers(0, 3, len(sample)) if name.startswith("pain") else rng.normal(size=len(sample))
    labels = pd.DataFrame({"sample_index": [2, 0, 1][:n], "label": ["high_pain", "no_pain", "low_pain"][:n]})
    return pd.DataFrame(columns), labels


def _write_pain(tmp_path, features, labels=None):
    features.to_csv(tmp_path / "features.csv", index=False)
    if labels is None:
        return tmp_path / "features.csv", None
    labels.to_csv(tmp_path / "labels.csv", index=False)
    return tmp_path / "features.csv", tmp_path / "labels.csv"


def test_pain_csv_shapes_features_and_labels(tmp_path):
    features, labels = _pain_tables()
    data = load_pain_csv(*_write_pain(tmp_path, features, labels))
    assert data.x.shape == (3, STEPS, 38) and data.x.dtype == np.float32
    assert data.feature_names == PAIN_FEATURE_COLUMNS
    assert data.class_names == ("no_pain", "low_pain", "high_pain")
    np.testing.assert_array_equal(data.y, [0, 1, 2])  # aligned by sample_index, not file order
    legs = data.feature_names.index("n_legs")
    np.testing.assert_array_equal(data.x[:, 0, legs], [0.0, 0.0, 1.0])
    joint = data.feature_names.index("joint_07")
    np.testing.assert_allclose(data.x[1, :, joint], features["joint_07"][STEPS:2 * STEPS], rtol=1e-6)


def test_pain_csv_interleaved_rows_and_column_order_follow_the_file(tmp_path):
    features, _ = _pain_tables()
    shuffled = features.iloc[np.argsort(features["time"].to_numpy(), kind="stable")]  # samples interleaved
    shuffled = shuffled[["time", "sample_index", "joint_30", *PAIN_FEATURE_COLUMNS[:-1]]]
    data = load_pain_csv(_write_pain(tmp_path, shuffled)[0])
    assert data.feature_names[0] == "joint_30"
    np.testing.assert_allclose(data.x[2, :, 0], features["joint_30"][2 * STEPS:], rtol=1e-6)
    np.testing.assert_array_equal(data.y, [-1, -1, -1])


def test_parse_pain_frames_matches_load_pain_csv(tmp_path):
    features, labels = _pain_tables()
    parsed = parse_pain_frames(features, labels)
    loaded = load_pain_csv(*_write_pain(tmp_path, features, labels))
    np.testing.assert_array_equal(parsed.x, loaded.x)
    np.testing.assert_array_equal(parsed.y, loaded.y)


def _drop(frame, row):
    return frame.drop(index=row).reset_index(drop=True)


def _set(frame, row, column, value):
    frame = frame.astype({column: object})
    frame.loc[row, column] = value
    return frame


def _swap(frame, a, b):
    order = np.arange(len(frame))
    order[[a, b]] = order[[b, a]]
    return frame.iloc[order].reset_index(drop=True)


@pytest.mark.parametrize("change, message", [
    (lambda f: _drop(f, 200), r"features\.csv: expected 160 time steps per sample; sample_index 1 \(159 steps\)"),
    (lambda f: _set(f, 5, "time", 4), r"features\.csv: sample_index 0: time 4 is duplicated"),
    (lambda f: _swap(f, 170, 171), r"features\.csv: sample_index 1: time 10 comes after time 11"),
    (lambda f: f.drop(columns=["n_eyes", "joint_05"]), r"features\.csv: missing columns n_eyes, joint_05"),
    (lambda f: _set(f, 7, "joint_03", "oops"), r"features\.csv line 9, column joint_03: 'oops' is not a number"),
    (lambda f: _set(f, 3, "time", 2.5), r"features\.csv line 5, column time: 2\.5 is not a whole number"),
    (lambda f: _set(f, 0, "n_hands", None), r"features\.csv line 2, column n_hands: empty"),
])
def test_pain_feature_errors(tmp_path, change, message):
    features, labels = _pain_tables()
    _raises(message, load_pain_csv, *_write_pain(tmp_path, change(features), labels))


@pytest.mark.parametrize("change, message", [
    (lambda f: _set(f, 1, "label", "medium_pain"),
     r"labels\.csv line 3: label 'medium_pain' is not one of \('no_pain', 'low_pain', 'high_pain'\)"),
    (lambda f: pd.concat([f, pd.DataFrame({"sample_index": [7, 9], "label": ["no_pain"] * 2})]),
     r"labels\.csv: sample_index 7, 9 labelled but absent from .*features\.csv"),
    (lambda f: f.iloc[1:], r"labels\.csv: no label for sample_index 2 of .*features\.csv"),
    (lambda f: pd.concat([f, f.iloc[:1]]), r"labels\.csv line 5: sample_index 2 is labelled twice"),
    (lambda f: f.rename(columns={"label": "class"}), r"labels\.csv: missing columns label"),
])
def test_pain_label_errors(tmp_path, change, message):
    features, labels = _pain_tables()
    _raises(message, load_pain_csv, *_write_pain(tmp_path, features, change(labels)))


def test_pain_missing_and_empty_files(tmp_path):
    _raises(r"absent\.csv: no such file", load_pain_csv, tmp_path / "absent.csv")
    features, _ = _pain_tables()
    path = _write_pain(tmp_path, features)[0]
    _raises(r"absent_labels\.csv: no such file", load_pain_csv, path, tmp_path / "absent_labels.csv")
    (tmp_path / "empty.csv").write_text("")
    _raises(r"empty\.csv: empty file", load_pain_csv, tmp_path / "empty.csv")


# --- UCR/UEA .ts (aeon's reader) -------------------------------------------------------------
# Small files written here by hand; the expected arrays are the values typed into them.


def _ts(tmp_path, body, *, name="data.ts", univariate=True, equal=True, labels="a b"):
    """A .ts file: the usual header, then `body` (one series per line) after @data."""
    header = ["# written by hand for kseq's tests", "@problemName Tiny", "@timeStamps false", "@missing true",
              f"@univariate {str(univariate).lower()}", f"@equalLength {str(equal).lower()}",
              f"@classLabel true {labels}", "@data"]
    path = tmp_path / name
    path.write_text("\n".join(header + body.strip().splitlines()) + "\n")
    return path


def test_ts_univariate_equal_length(tmp_path):
    data = load_ts(_ts(tmp_path, "1,2,3,4:b\n5,6,7,8.5:a\n-1,0,0.25,9:b"))
    assert data.x.dtype == np.float32 and data.x.shape == (3, 4, 1)
    np.testing.assert_array_equal(data.x[:, :, 0], [[1, 2, 3, 4], [5, 6, 7, 8.5], [-1, 0, 0.25, 9]])
    assert data.class_names == ("a", "b")
    np.testing.assert_array_equal(data.y, [1, 0, 1])
    np.testing.assert_array_equal(data.lengths, [4, 4, 4])


def test_ts_multivariate_is_time_by_channel(tmp_path):
    path = _ts(tmp_path, "1,2,3:10,20,30:a\n4,5,6:40,50,60:b", univariate=False)
    data = load_ts(path)
    assert data.x.shape == (2, 3, 2)
    np.testing.assert_array_equal(data.x[0], [[1, 10], [2, 20], [3, 30]])
    np.testing.assert_array_equal(data.x[1], [[4, 40], [5, 50], [6, 60]])


def test_ts_unequal_lengths_are_zero_padded_at_the_end(tmp_path):
    path = _ts(tmp_path, "1,2:7,8:a\n1,2,3,4:5,6,7,8:b\n9,9,9:1,1,1:a", univariate=False, equal=False)
    data = load_ts(path)
    assert data.x.shape == (3, 4, 2)
    np.testing.assert_array_equal(data.lengths, [2, 4, 3])
    np.testing.assert_array_equal(data.x[0], [[1, 7], [2, 8], [0, 0], [0, 0]])
    np.testing.assert_array_equal(data.x[2], [[9, 1], [9, 1], [9, 1], [0, 0]])


def test_ts_missing_values_read_as_nan(tmp_path):
    data = load_ts(_ts(tmp_path, "1,?,3,?:a\n?,6,7,8:b\n1,2,3,4:a"))
    expected = np.array([[1, np.nan, 3, np.nan], [np.nan, 6, 7, 8], [1, 2, 3, 4]], np.float32)
    np.testing.assert_array_equal(data.x[:, :, 0], expected)  # NaN positions match too


def test_ts_string_labels_sorted_lowercased_and_not_mangled(tmp_path):
    """aeon lowercases lines; kseq keeps "nan" inside a label ("banana") as written."""
    data = load_ts(_ts(tmp_path, "1,2:Walking\n3,4:banana\n5,6:Walking\n7,8:cycling",
                       labels="Walking banana cycling"))
    assert data.class_names == ("banana", "cycling", "walking")
    np.testing.assert_array_equal(data.y, [2, 0, 2, 1])


def test_ts_numeric_labels_sort_as_numbers(tmp_path):
    data = load_ts(_ts(tmp_path, "1,2:10\n3,4:2\n5,6:-1\n7,8:2", labels="-1 2 10"))
    assert data.class_names == ("-1", "2", "10")
    np.testing.assert_array_equal(data.y, [2, 1, 0, 1])


def test_ts_given_class_names_keep_their_order_and_spelling(tmp_path):
    data = load_ts(_ts(tmp_path, "1,2:walking\n3,4:Run"), class_names=("Run", "Walking", "Sit"))
    assert data.class_names == ("Run", "Walking", "Sit")
    np.testing.assert_array_equal(data.y, [1, 0])


@pytest.mark.parametrize("body, kwargs, message", [
    ("1,2,3:a\n4,x,6:b", {}, r"data\.ts line 10: 'x' is not a number or \?"),
    ("1,2,3:a\n\n4,5,6:b", {}, r"data\.ts line 10: empty line after @data"),
    ("1,2,3:a\n4,5,6:1,2,3:b", {}, r"data\.ts line 10: .*case 2"),
    ("1,2,3:4,5:a", {"univariate": False}, r"data\.ts line 9: .*different number of observations"),
    ("1,2,3:a\n4,inf,6:b", {}, r"data\.ts line 10: infinite value"),
    ("1,2,3:a\n4,5,6:c", {"class_names": ("a", "b")}, r"data\.ts line 10: label 'c' is not one of \('a', 'b'\)"),
    ("", {}, r"data\.ts: no series after @data"),
])
def test_ts_malformed_files(tmp_path, body, kwargs, message):
    names = kwargs.pop("class_names", None)
    text = _raises(message, load_ts, _ts(tmp_path, body or "\n", **kwargs), class_names=names)
    assert "\n" not in text


def test_ts_unlabelled_and_unreadable_files(tmp_path):
    (tmp_path / "free.ts").write_text("@problemName x\n@univariate true\n@classLabel false\n@data\n1,2,3\n")
    _raises(r"free\.ts: no class labels \(@classLabel false\)", load_ts, tmp_path / "free.ts")
    _raises(r"gone\.ts: no such file", load_ts, tmp_path / "gone.ts")
    (tmp_path / "binary.ts").write_bytes(b"\xff\xfe@problemName")
    _raises(r"binary\.ts: not a UTF-8 text file", load_ts, tmp_path / "binary.ts")


def test_ts_without_aeon_says_how_to_install(tmp_path, monkeypatch):
    path = _ts(tmp_path, "1,2:a")
    monkeypatch.setitem(sys.modules, "aeon.datasets", None)  # the import now fails as if not installed
    _raises(r"data\.ts: reading \.ts files needs aeon; pip install 'kseq\[ts\]'", load_ts, path)
