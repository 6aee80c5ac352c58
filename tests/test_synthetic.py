"""Tests for kseq.data.synthetic: the heartbeat and pain generators and their CSV writers."""

import re

import numpy as np
import pytest

from kseq.data import load_heartbeat_csv, load_pain_csv, make_heartbeats, make_pain
from kseq.data.sources import PAIN_FEATURE_COLUMNS, signal_lengths
from kseq.data.synthetic import HEARTBEAT_COUNTS, write_heartbeat_csv, write_pain_csv
from kseq.utils.errors import InputError

@pytest.fixture(scope="module")
def full():
    """The full-size heartbeats, generated once (a couple of seconds)."""
    return make_heartbeats(scale=1.0, seed=0)


@pytest.fixture(scope="module")
def small():
    return make_heartbeats(scale=0.02, seed=0)


@pytest.fixture(scope="module")
def pain():
    return make_pain(seed=0)


# --- heartbeats ------------------------------------------------------------------------------


def test_full_size_class_counts_are_the_real_ones(full):
    for split, data in zip(("train", "test"), full):
        np.testing.assert_array_equal(np.bincount(data.y, minlength=5), HEARTBEAT_COUNTS[split])


def test_scaled_counts_are_stratified_with_at_least_one_per_class(small):
    for split, data in zip(("train", "test"), small):
        expected = np.maximum(1, np.round(0.02 * np.array(HEARTBEAT_COUNTS[split])))
        np.testing.assert_array_equal(np.bincount(data.y, minlength=5), expected)
    train, _ = make_heartbeats(scale=1e-5, seed=0)
    np.testing.assert_array_equal(np.bincount(train.y), [1, 1, 1, 1, 1])


def test_beats_are_normalised_zero_padded_and_shuffled(small):
    train, test = small
    assert train.x.shape[1:] == (187, 1) and train.x.dtype == np.float32
    assert train.class_names == test.class_names == ("N", "S", "V", "F", "Q")
    x = train.x[:, :, 0]
    assert np.nanmin(x) == 0.0 and np.nanmax(x) == 1.0
    np.testing.assert_array_equal(train.lengths, signal_lengths(train.x))
    assert train.lengths.min() >= 40 and (train.lengths < 187).mean() > 0.8
    assert not (np.diff(train.y) >= 0).all()  # not sorted by class


def test_nan_gaps_are_short_inner_runs_in_about_five_percent(full):
    x, lengths = full[0].x[:, :, 0], full[0].lengths
    gaps = np.isnan(x)
    rows = np.flatnonzero(gaps.any(axis=1))
    assert 0.04 < len(rows) / len(x) < 0.06
    for row in rows[:500]:
        where = np.flatnonzero(gaps[row])
        assert 2 <= len(where) <= 8 and (np.diff(where) == 1).all()  # one run of 2..8
        assert where[0] >= 1 and where[-1] <= lengths[row] - 2  # never the first or last signal sample


def test_normal_mean_beat_looks_like_the_real_one(full, real_heartbeat_csv):
    real = load_heartbeat_csv(real_heartbeat_csv)
    train = full[0]
    synthetic = np.nanmean(train.x[train.y == 0, :, 0], axis=0)
    assert np.corrcoef(real.x[:, :, 0].mean(axis=0), synthetic)[0, 1] > 0.8
    assert abs(np.median(train.lengths) - np.median(real.lengths)) < 15


def test_classes_differ_in_morphology(full):
    train = full[0]
    means = np.stack([np.nanmean(train.x[train.y == c, :60, 0], axis=0) for c in range(5)])
    width_at_half = (means > 0.5).sum(axis=1)  # QRS width: V wide, S narrow like N
    assert width_at_half[2] > width_at_half[0] + 1 and abs(width_at_half[1] - width_at_half[0]) <= 1
    assert means[0, 25:45].max() > means[2, 25:45].max()  # V's T wave is inverted


def test_heartbeats_are_seeded(small):
    again = make_heartbeats(scale=0.02, seed=0)
    other = make_heartbeats(scale=0.02, seed=1)
    for a, b in zip(small, again):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(small[0].x, other[0].x, equal_nan=True)


@pytest.mark.parametrize("scale", [0, -0.1, 1.5, "0.5", True])
def test_bad_scale_names_the_field(scale):
    with pytest.raises(InputError, match=r"data\.scale must be a number in \(0, 1\]"):
        make_heartbeats(scale=scale)


def test_heartbeat_csv_round_trip_in_the_kaggle_format(small, tmp_path):
    train = small[0]
    assert np.isnan(train.x).any()
    path = write_heartbeat_csv(train, tmp_path / "beats.csv")
    first = path.read_text().splitlines()[0].split(",")
    assert len(first) == 188
    assert all(re.fullmatch(r"-?\d\.\d{18}e[+-]\d\d|nan", cell) for cell in first)
    loaded = load_heartbeat_csv(path)
    np.testing.assert_array_equal(loaded.x, train.x)  # NaN compares equal here
    np.testing.assert_array_equal(loaded.y, train.y)
    np.testing.assert_array_equal(loaded.lengths, train.lengths)


def test_write_heartbeat_csv_rejects_other_shapes_and_unlabelled(small, tmp_path, pain):
    with pytest.raises(InputError, match=r"needs x of shape \(N, 187, 1\); got \(661, 160, 38\)"):
        write_heartbeat_csv(pain[0], tmp_path / "x.csv")
    unlabelled = small[1].subset(slice(0, 3))
    object.__setattr__(unlabelled, "y", np.full(3, -1))
    with pytest.raises(InputError, match=r"needs every sequence labelled"):
        write_heartbeat_csv(unlabelled, tmp_path / "x.csv")


# --- pain ------------------------------------------------------------------------------------


def test_pain_shapes_counts_and_features(pain):
    train, test = pain
    assert train.x.shape == (661, 160, 38) and test.x.shape == (200, 160, 38)
    assert train.x.dtype == np.float32 and train.feature_names == PAIN_FEATURE_COLUMNS
    np.testing.assert_array_equal(np.bincount(train.y), [511, 94, 56])
    np.testing.assert_array_equal(np.bincount(test.y), [155, 28, 17])
    np.testing.assert_array_equal(np.bincount(make_pain(seed=0, n_test=3)[1].y), [1, 1, 1])


def _column(data, name):
    return data.x[:, :, data.feature_names.index(name)]


def test_pain_raw_columns_look_like_the_real_data(pain):
    train = pain[0]
    surveys = train.x[:, :, :4]
    assert set(np.unique(surveys)) == {0.0, 1.0, 2.0}
    limbs = np.stack([_column(train, c) for c in ("n_legs", "n_hands", "n_eyes")])
    assert (limbs == limbs[:1]).all() and (limbs == limbs[:, :, :1]).all()  # together, constant in time
    assert 0 < limbs[0, :, 0].mean() < 0.1
    assert np.ptp(_column(train, "joint_30")) == 0
    assert np.corrcoef(_column(train, "joint_10").ravel(), _column(train, "joint_11").ravel())[0, 1] > 0.9
    scale = [np.median([_column(train, f"joint_{j:02d}").std() for j in range(g, g + 10)]) for g in (0, 10, 20)]
    assert scale[1] / scale[0] > 100 and scale[2] / scale[1] > 30


def test_pain_class_signal_is_present_but_overlapping(pain):
    train = pain[0]
    survey = train.x[:, :, :4].mean(axis=(1, 2))
    swing = _column(train, "joint_12").std(axis=1)
    for feature in (survey, swing):
        means = [feature[train.y == c].mean() for c in range(3)]
        assert means[0] < means[1] < means[2]
        assert feature[train.y == 0].max() > feature[train.y == 2].min()  # the classes overlap


@pytest.mark.slow  # writes the full 88 MB of CSV: a few seconds
def test_pain_is_seeded_and_round_trips_through_csv(pain, tmp_path):
    paths = write_pain_csv(tmp_path / "pain", seed=0)
    assert sorted(p.name for p in paths.values()) == [
        "test_features.csv", "test_labels.csv", "train_features.csv", "train_labels.csv"]
    header = paths["train_features"].read_text().split("\n", 1)[0].split(",")
    assert header == ["sample_index", "time", *PAIN_FEATURE_COLUMNS]
    assert "one+peg_leg" in paths["train_features"].read_text()
    for split, data in zip(("train", "test"), pain):
        loaded = load_pain_csv(paths[f"{split}_features"], paths[f"{split}_labels"])
        np.testing.assert_array_equal(loaded.x, data.x)
        np.testing.assert_array_equal(loaded.y, data.y)
    assert not np.array_equal(make_pain(seed=1)[0].x, pain[0].x)


@pytest.mark.parametrize("n_test", [2, 0, 10.0, True])
def test_bad_n_test_names_the_field(n_test):
    with pytest.raises(InputError, match=r"data\.n_test must be an integer >= 3"):
        make_pain(n_test=n_test)
