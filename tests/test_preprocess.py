"""Gap filling, the fitted feature transform and sliding windows (NumPy side)."""

import json

import numpy as np
import pandas as pd
import pytest

from kseq.data.preprocess import (
    average_by_sequence,
    fill_gaps,
    fit_feature_transform,
    sliding_windows,
    windows_to_examples,
)
from kseq.utils.errors import InputError

# --------------------------------------------------------------------------- fill_gaps


def cubic(t):
    return 0.002 * t**3 - 0.05 * t**2 + 0.3 * t + 1.0


def test_spline_fill_matches_pandas_reproduces_a_cubic_and_keeps_the_tail():
    t = np.arange(24, dtype=np.float64)
    x = np.zeros((3, 30, 2), np.float32)
    x[:, :24, 0] = cubic(t)
    x[:, :24, 1] = 1.0 + t
    x[0, [5, 6, 7, 15], 0] = np.nan
    x[2, 10, 1] = np.nan
    original = x.copy()

    out = fill_gaps(x, method="spline", order=3)

    expected = pd.Series(x[0, :24, 0], dtype=np.float64).interpolate(method="spline", order=3, s=0)
    np.testing.assert_allclose(out[0, :24, 0], expected.to_numpy(), rtol=1e-6)
    # An interpolating cubic spline reproduces a cubic exactly (pandas' default smoothing would not).
    np.testing.assert_allclose(out[0, [5, 6, 7, 15], 0], cubic(t[[5, 6, 7, 15]]), rtol=1e-5)
    np.testing.assert_allclose(out[2, 10, 1], 11.0, rtol=1e-5)
    assert np.all(out[:, 24:] == 0)
    np.testing.assert_array_equal(out[1], original[1])  # no NaN: untouched
    np.testing.assert_array_equal(x, original, strict=True)  # input not modified


def test_linear_fill_interpolates_inside_and_takes_nearest_value_at_the_signal_edges():
    series = [np.nan, 1.0, np.nan, 3.0, np.nan, 0.0, 0.0]  # signal = first 5 steps, then padding
    x = np.array(series, np.float32)[None, :, None]
    out = fill_gaps(x, method="linear")
    np.testing.assert_array_equal(out[0, :, 0], [1.0, 1.0, 2.0, 3.0, 3.0, 0.0, 0.0])


def test_spline_with_too_few_valid_samples_falls_back_to_linear():
    x = np.array([1.0, np.nan, 5.0, 0.0], np.float32)[None, :, None]
    np.testing.assert_array_equal(fill_gaps(x, order=3)[0, :, 0], [1.0, 3.0, 5.0, 0.0])


def test_fill_gaps_none_returns_input_and_unknown_method_raises():
    x = np.full((1, 3, 1), np.nan, np.float32)
    assert fill_gaps(x, method="none") is x
    with pytest.raises(ValueError, match="akima"):
        fill_gaps(x, method="akima")


# --------------------------------------------------------------------------- fit_feature_transform

NAMES = ["a", "b", "c", "legs", "hands", "eyes", "g"]


def limb_data(seed=0):
    """a; b = 3a + 1 (correlated); c constant; sparse limb counts; g on another scale; padded tail."""
    rng = np.random.default_rng(seed)
    x = np.zeros((5, 12, 7), np.float32)
    x[..., 0] = rng.normal(size=(5, 12))
    x[..., 1] = 3 * x[..., 0] + 1
    x[..., 2] = 2.0
    x[..., 3:6] = rng.integers(0, 3, size=(5, 12, 3)) * (rng.random((5, 12, 3)) < 0.3)
    x[..., 6] = 10 + 5 * rng.normal(size=(5, 12))
    x[0, 8:] = 0.0
    return x


def signal_frame(x):
    frame = pd.DataFrame(x.reshape(-1, x.shape[2]).astype(np.float64), columns=NAMES)
    return frame[(frame != 0).any(axis=1)]


def test_transform_merges_drops_and_scales_groups_with_pooled_statistics():
    x = limb_data()
    t = fit_feature_transform(
        x, NAMES, merge={"n_limbs": ["legs", "hands", "eyes"]}, groups={"pair": ["a", "g"]}
    )

    assert t["merged_features"] == ["a", "b", "c", "n_limbs", "g"]
    assert t["columns"] == [0, 1, 2, 3, 6]
    assert t["merge"] == [[3, [3, 4, 5]]]
    assert t["keep"] == [0, 3, 4]  # b correlated with a, c constant
    assert t["output_features"] == ["a", "n_limbs", "g"]
    assert t["groups"] == {"pair": ["a", "g"]}
    assert t["mask_padding"] is True

    frame = signal_frame(x)  # padding rows left out
    assert len(frame) == 5 * 12 - 4
    n_limbs = (frame[["legs", "hands", "eyes"]] != 0).any(axis=1).astype(float)
    pooled = pd.concat([frame["a"], frame["g"]])
    np.testing.assert_allclose(t["mean"], [pooled.mean(), n_limbs.mean(), pooled.mean()], rtol=1e-9)
    np.testing.assert_allclose(t["std"], [pooled.std(ddof=0), n_limbs.std(ddof=0), pooled.std(ddof=0)], rtol=1e-9)
    assert json.loads(json.dumps(t)) == t


def test_transform_without_groups_or_padding_mask_standardises_each_feature_over_all_steps():
    x = limb_data()
    t = fit_feature_transform(x, NAMES, mask_padding=False)
    # With the padding counted, c (2.0 in the signal, 0.0 in the padding) is no longer constant.
    assert t["output_features"] == ["a", "c", "legs", "hands", "eyes", "g"]
    frame = pd.DataFrame(x.reshape(-1, 7).astype(np.float64), columns=NAMES)[t["output_features"]]
    np.testing.assert_allclose(t["mean"], frame.mean().to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(t["std"], frame.std(ddof=0).to_numpy(), rtol=1e-9)


def test_kept_constant_feature_is_only_centred():
    x = limb_data()
    t = fit_feature_transform(x, NAMES, drop_constant=False, correlation_threshold=None)
    assert t["output_features"] == NAMES
    assert (t["mean"][2], t["std"][2]) == (2.0, 1.0)


def test_correlation_drop_is_greedy_in_column_order():
    rng = np.random.default_rng(1)
    a = rng.normal(size=4000)
    b = a + np.sqrt(0.2) * rng.normal(size=4000)
    c = b + np.sqrt(0.2) * rng.normal(size=4000)
    corr = pd.DataFrame({"a": a, "b": b, "c": c}).corr()
    assert corr.loc["a", "b"] > 0.9 and corr.loc["b", "c"] > 0.9 and corr.loc["a", "c"] < 0.9
    x = np.stack([a, b, c], axis=-1).reshape(40, 100, 3)
    # b goes (too close to a); c stays: it is only compared with the kept a.
    assert fit_feature_transform(x, ["a", "b", "c"])["output_features"] == ["a", "c"]
    assert fit_feature_transform(x, ["a", "b", "c"], correlation_threshold=None)["output_features"] == ["a", "b", "c"]


def test_auto_groups_cluster_correlated_features():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(2, 3000))
    cols = {
        "x1": base[0], "x2": base[0] + rng.normal(size=3000),  # corr ~0.71
        "x3": 5 + base[1], "x4": 5 + base[1] + rng.normal(size=3000),
        "x5": rng.normal(size=3000),
    }
    frame = pd.DataFrame(cols)
    x = frame.to_numpy().reshape(30, 100, 5)
    t = fit_feature_transform(x, list(cols), groups="auto", group_distance=0.5)
    assert t["groups"] == {"group_0": ["x1", "x2"], "group_1": ["x3", "x4"]}
    pooled = pd.concat([frame["x3"], frame["x4"]])
    np.testing.assert_allclose(t["mean"][2:4], [pooled.mean()] * 2, rtol=1e-6)
    np.testing.assert_allclose(t["std"][4], frame["x5"].std(ddof=0), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, field, name",
    [
        ({"merge": {"n_limbs": ["legs", "tail"]}}, "merge", "tail"),
        ({"groups": {"pair": ["a", "wings"]}}, "groups", "wings"),
        ({"merge": {"n_limbs": ["legs", "hands"]}, "groups": {"pair": ["legs"]}}, "groups", "legs"),
    ],
)
def test_unknown_feature_names_raise_input_error_naming_field_and_feature(kwargs, field, name):
    with pytest.raises(InputError, match=rf"{field}\[.*{name!r}"):
        fit_feature_transform(limb_data(), NAMES, **kwargs)


def test_fit_refuses_nan():
    x = limb_data()
    x[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="fill_gaps"):
        fit_feature_transform(x, NAMES)


# --------------------------------------------------------------------------- windows


def test_sliding_windows_are_a_view_of_the_hand_cut_windows():
    x = np.arange(2 * 7 * 2, dtype=np.float32).reshape(2, 7, 2)
    w = sliding_windows(x, window=3, stride=2)
    expected = np.stack([x[:, s : s + 3] for s in (0, 2, 4)], axis=1)
    np.testing.assert_array_equal(w, expected, strict=True)
    assert np.shares_memory(w, x)


@pytest.mark.parametrize("window, stride", [(8, 1), (0, 1), (3, 0)])
def test_sliding_windows_validate_window_and_stride(window, stride):
    with pytest.raises(ValueError):
        sliding_windows(np.zeros((1, 7, 1)), window, stride)


def test_windows_to_examples_label_each_window_with_its_sequence():
    x = np.arange(2 * 7 * 2, dtype=np.float32).reshape(2, 7, 2)
    xw, yw, seq = windows_to_examples(x, np.array([4, 1]), window=3, stride=2)
    assert xw.shape == (6, 3, 2)
    np.testing.assert_array_equal(xw[4], x[1, 2:5])
    np.testing.assert_array_equal(yw, [4, 4, 4, 1, 1, 1])
    np.testing.assert_array_equal(seq, [0, 0, 0, 1, 1, 1])


def test_average_by_sequence_is_the_per_sequence_mean():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(7, 3))
    seq = np.array([0, 0, 2, 2, 2, 1, 0])
    expected = pd.DataFrame(logits).groupby(seq).mean().to_numpy()
    np.testing.assert_allclose(average_by_sequence(logits, seq, 3), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="every sequence"):
        average_by_sequence(logits, seq, 4)
