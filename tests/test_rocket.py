"""MiniRocket, MultiRocket, Hydra and the ridge head against independent references.

References: plain NumPy loops written from the papers' definitions, aeon's numba MiniRocket and
MultiRocket transforms given the same biases, and scikit-learn's `RidgeClassifierCV`.
"""

import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.linear_model import RidgeClassifierCV

from kseq import SequenceClassifier, build_model
from kseq.data.sampling import expected_weights
from kseq.models.hydra import Hydra
from kseq.models.random_kernels import FeatureScaling, adapt_and_fit_head
from kseq.models.ridge import ALPHAS, ridge_classifier
from kseq.models.rocket import (NUM_KERNELS, MiniRocket, MultiRocket, convolutions, kernel_major_convolutions,
                                kernel_weights)
from kseq.serving.runtime import ServingFunction
from kseq.training import recipe


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def convolve(series, weights, dilation):
    """'Same' convolution with zero padding, written out: C_t = sum_j w_j x[t + (j - 4) d]."""
    out = np.zeros(len(series))
    for t in range(len(series)):
        for j, w in enumerate(weights):
            s = t + (j - 4) * dilation
            if 0 <= s < len(series):
                out[t] += w * series[s]
    return out


def pooled_region(kernel, dilation_index, dilation, length):
    """The reference's alternation: odd (kernel + dilation index) pools away from the padding."""
    pad = 4 * dilation if (kernel + dilation_index) % 2 else 0
    return pad, length - pad


def univariate(n, steps, seed):
    return np.random.default_rng(seed).normal(size=(n, steps, 1)).astype("float32")


def test_kernels_are_the_84_choices_of_three_taps_at_plus_two():
    w = kernel_weights()
    assert w.shape == (9, 84)
    assert (np.sort(w, axis=0) == np.array([-1] * 6 + [2] * 3)[:, None]).all()
    assert len({tuple(col) for col in w.T}) == 84


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("time_major", [False, True])
def test_convolutions_in_either_layout_are_the_written_out_sums_of_their_channels(time_major, channels):
    # MiniRocket's products pool (84, B, T) outputs and MultiRocket's pass over time reads multivariate
    # (T, B, 84) ones, each from its own product.
    x = np.random.default_rng(7).normal(size=(2, 30, channels)).astype("float32")
    selection = (np.random.default_rng(8).random((2, channels, 84)) < 0.5).astype("float32")  # (dilations, F, 84)
    if channels == 1:
        selection[:] = 1.0  # as `channel_combinations` gives a univariate series
    for i, conv in enumerate(convolutions(x, selection, [1, 3], time_major=time_major)):
        conv = numpy(conv)
        conv = np.transpose(conv, (1, 2, 0) if time_major else (1, 0, 2))  # (B, 84, T)
        for b, k in ((0, 0), (1, 5), (1, 83)):
            expected = sum(selection[i, f, k] * convolve(x[b, :, f], kernel_weights()[:, k], [1, 3][i])
                           for f in range(channels))
            np.testing.assert_allclose(conv[b, k], expected, atol=1e-5)


def test_one_batched_product_gives_each_dilations_written_out_sums():
    # A block's dilations (here two, of other series and channels) come out of one product, stacked by input.
    rng = np.random.default_rng(9)
    x, diff = rng.normal(size=(2, 30, 3)).astype("float32"), rng.normal(size=(2, 30, 3)).astype("float32")
    selection = (rng.random((2, 3, 84)) < 0.5).astype("float32")
    conv = numpy(kernel_major_convolutions([(x, 1, selection[0]), (diff, 3, selection[1])]))
    assert conv.shape == (2 * 84, 2, 30)
    for m, (series, dilation) in enumerate(((x, 1), (diff, 3))):
        for b, k in ((0, 0), (1, 7), (0, 83)):
            expected = sum(selection[m, f, k] * convolve(series[b, :, f], kernel_weights()[:, k], dilation)
                           for f in range(3))
            np.testing.assert_allclose(conv[m * 84 + k, b], expected, atol=1e-5)


def test_minirocket_ppv_of_a_hand_computed_kernel_dilation_and_bias():
    # 20 steps, 84 features: one dilation (1) and one bias per kernel.
    x = univariate(1, 20, seed=1)
    layer = MiniRocket(num_features=84)
    layer.build((None, 20, 1))
    biases = np.linspace(-1, 1, 84).astype("float32")
    layer.biases[0].assign(biases)
    features = numpy(layer(x))[0]
    for k in (0, 1, 41, 83):
        start, end = pooled_region(k, 0, 1, 20)
        c = convolve(x[0, :, 0], kernel_weights()[:, k], 1)[start:end]
        assert features[k] == pytest.approx(np.mean(c > biases[k]), abs=1e-6)
    # Kernel 0 (+2 on taps 0, 1, 2, which reach 4, 3 and 2 steps back) on a unit impulse at step 5,
    # bias 0.5: output 2 at steps 7, 8, 9, -1 at steps 1 to 6, 0 elsewhere (the 0.001 at step 19
    # only marks the series' length: 20 real steps, none of padding); PPV 3 / 20.
    impulse = np.zeros((1, 20, 1), "float32")
    impulse[0, 5], impulse[0, 19] = 1.0, 0.001
    layer.biases[0].assign(np.full(84, 0.5, "float32"))
    assert numpy(layer(impulse))[0, 0] == pytest.approx(3 / 20)


def test_minirocket_ppv_of_multivariate_series_sums_each_kernels_channels():
    # Each kernel sums the outputs of the channels its combination draws: the definition above,
    # written out per channel.
    x = np.random.default_rng(4).normal(size=(2, 20, 3)).astype("float32")
    x[1, 15:] = 0.0  # 15 real steps
    layer = MiniRocket(num_features=84, seed=1)
    layer.build((None, 20, 3))
    biases = np.linspace(-2, 2, 84).astype("float32")
    layer.biases[0].assign(biases)
    selection = numpy(layer.selections[0])[0]  # (channels, 84)
    features = numpy(layer(x))
    for i, length in ((0, 20), (1, 15)):
        for k in range(NUM_KERNELS):
            c = sum(selection[f, k] * convolve(x[i, :length, f], kernel_weights()[:, k], 1) for f in range(3))
            start, end = pooled_region(k, 0, 1, length)
            assert features[i, k] == pytest.approx(np.mean(c[start:end] > biases[k]), abs=1e-6)


def test_minirocket_ppv_of_series_shorter_than_a_kernel():
    # 6 steps and 4 (padded): a kernel spans 9, so the kernels that trim their region by half a
    # span pool no step, PPV 0, and the others pool every real step.
    x = univariate(2, 6, seed=3)
    x[1, 4:] = 0.0
    layer = MiniRocket(num_features=84)
    layer.build((None, 6, 1))
    biases = np.linspace(-1, 1, 84).astype("float32")
    layer.biases[0].assign(biases)
    features = numpy(layer(x))
    assert layer._plans[0][0] == [1]
    for i, length in ((0, 6), (1, 4)):
        for k in range(NUM_KERNELS):
            ppv = multirocket_reference(x[i, :length, 0], kernel_weights()[:, k], 1, 0, k, biases[k])[0]
            assert features[i, k] == pytest.approx(ppv, abs=1e-6)


def test_minirocket_equals_aeon_given_the_same_biases():
    from aeon.transformations.collection.convolution_based import MiniRocket as AeonMiniRocket

    x = univariate(12, 70, seed=2)
    reference = AeonMiniRocket(n_kernels=840, random_state=0).fit(np.transpose(x, (0, 2, 1)))
    _, _, dilations, per_dilation, biases = reference.parameters
    layer = MiniRocket(num_features=840)
    layer.build((None, 70, 1))
    assert layer._plans[0] == (list(dilations), list(per_dilation))
    layer.biases[0].assign(biases)
    np.testing.assert_allclose(numpy(layer(x)), reference.transform(np.transpose(x, (0, 2, 1))), atol=1e-6)


def test_minirocket_adapt_takes_biases_from_training_quantiles():
    from kseq.models.rocket import quantiles

    x = univariate(30, 50, seed=3)
    x[::3, 40:] = 0.0  # some series of 40 steps
    layer = MiniRocket(num_features=840, seed=0)
    layer.adapt(x)
    dilations, per_dilation = layer._plans[0]
    biases = numpy(layer.biases[0])
    q = quantiles(84 * sum(per_dilation))
    n = per_dilation[0]
    for k in (0, 5, 83):  # first dilation: each kernel's biases are quantiles of one series' outputs
        candidates = [np.quantile(convolve(series[:, 0][:40 if i % 3 == 0 else 50], kernel_weights()[:, k],
                                           dilations[0]), q[k * n:(k + 1) * n])
                      for i, series in enumerate(x)]
        assert any(np.allclose(c, biases[k * n:(k + 1) * n], atol=1e-5) for c in candidates)
    again = MiniRocket(num_features=840, seed=0)
    again.adapt(x)
    np.testing.assert_array_equal(numpy(again.biases[0]), biases)


def multirocket_reference(series, weights, dilation, dilation_index, kernel, bias):
    """PPV, MPV, MIPV, LSPV of one kernel, dilation and bias, from the paper's definitions."""
    start, end = pooled_region(kernel, dilation_index, dilation, len(series))
    c = convolve(series, weights, dilation)[start:end]
    positive = c > bias
    run = longest = 0
    for p in positive:
        run = run + 1 if p else 0
        longest = max(longest, run)
    indices = np.flatnonzero(positive)
    return (positive.mean() if len(c) else 0.0,  # a region shorter than the kernel's span: nothing is positive
            (c[positive] - bias).mean() if positive.any() else 0.0,
            indices.mean() if positive.any() else -1.0, longest)


@pytest.mark.parametrize("steps, real, num_features", [(6, 5, 84), (24, 18, 84), (60, 47, 3 * 84)])
def test_multirocket_four_poolings_match_their_definitions(steps, real, num_features):
    # 6 steps: series shorter than a kernel's span, whose trimmed regions are empty. 24 steps:
    # one dilation, one window of the pass over time. 60 steps: dilations 1, 2 and 7, whose taps
    # reach past the windows' edges, and windows of 25 steps (a batch: three, the last padded)
    # or 50 (one series alone: two).
    x = univariate(2, steps, seed=4)
    x[1, real:] = 0.0  # a shorter series, zero-padded
    layer = MultiRocket(num_features=num_features)
    layer.build((None, steps, 1))
    rng = np.random.default_rng(5)
    biases = [rng.normal(0, 1, size=variable.shape[0]).astype("float32") for variable in layer.biases]
    for variable, values in zip(layer.biases, biases):
        variable.assign(values)
    in_batch = numpy(layer(x)).reshape(2, 4, 2, -1)  # (series, operator, representation, feature)
    for i, length in ((0, steps), (1, real)):
        alone = numpy(layer(x[i:i + 1])).reshape(4, 2, -1)
        representations = [x[i, :length, 0], np.diff(x[i, :length, 0])]
        for r, series in enumerate(representations):
            dilations, per_dilation = layer._plans[r]
            first = 0
            for d, (dilation, n) in enumerate(zip(dilations, per_dilation)):
                for k in (0, 7, 50, 83):
                    feature = first + k * n + n - 1  # the kernel's last bias at this dilation
                    expected = multirocket_reference(series, kernel_weights()[:, k], dilation, d, k, biases[r][feature])
                    np.testing.assert_allclose(in_batch[i, :, r, feature], expected, atol=1e-5)
                    np.testing.assert_allclose(alone[:, r, feature], expected, atol=1e-5)
                first += NUM_KERNELS * n
        assert len(dilations) == (3 if steps == 60 else 1)


def test_multirocket_ppv_mpv_mipv_equal_aeons_given_the_same_biases():
    from aeon.transformations.collection.convolution_based import MultiRocket as AeonMultiRocket

    x = univariate(6, 60, seed=6)
    reference = AeonMultiRocket(n_kernels=168, random_state=0).fit(np.transpose(x, (0, 2, 1)))
    layer = MultiRocket(num_features=168)
    layer.build((None, 60, 1))
    for variable, (dilations, per_dilation, biases) in zip(layer.biases, (reference.parameter, reference.parameter1)):
        variable.assign(biases)
    ours = numpy(layer(x)).reshape(6, 4, 2, 168)
    # aeon: per representation [PPV, LSPV, MPV, MIPV] blocks; its MPV averages C + b, ours C - b.
    theirs = reference.transform(np.transpose(x, (0, 2, 1))).reshape(6, 2, 4, 168).transpose(0, 2, 1, 3)
    bias = np.stack([reference.parameter[2], reference.parameter1[2]])[None]
    # The series only: aeon's loop over the difference offsets its windows by one step (it sizes
    # them from the series' length), where ours is the difference's own "same" convolution,
    # which `test_multirocket_four_poolings_match_their_definitions` checks.
    ours, theirs, bias = ours[:, :, 0], theirs[:, :, 0], bias[:, 0]
    np.testing.assert_allclose(ours[:, 0], theirs[:, 0], atol=1e-6)  # PPV
    np.testing.assert_allclose(ours[:, 2], theirs[:, 3], atol=1e-4)  # MIPV
    np.testing.assert_allclose(np.where(ours[:, 0] > 0, ours[:, 1] + 2 * bias, 0), theirs[:, 2], atol=1e-4)


def hydra_reference(layer, series):
    """Hydra counts of one univariate series from the weights, by loops: (dilations, 2, 2, h, k)."""
    kernels = numpy(layer.kernels)  # (dilations, 2, 9, h * k)
    h, k = layer.groups_per_input, layer.num_kernels
    out = np.zeros((len(layer.dilations), 2, 2, h, k))
    for d, dilation in enumerate(layer.dilations):
        for i, s in enumerate((series, np.diff(series))):
            z = np.stack([convolve(s, kernels[d, i, :, j], dilation) for j in range(h * k)], axis=1)
            z = z.reshape(len(s), h, k)
            for t in range(len(s)):
                for g in range(h):
                    out[d, i, 0, g, z[t, g].argmax()] += z[t, g].max()
                    out[d, i, 1, g, z[t, g].argmin()] += 1
    return out.reshape(-1)


@pytest.mark.parametrize("steps, real, dilations", [(40, 30, [1, 2, 4]), (6, 4, [1])])
def test_hydra_counts_match_the_loops(steps, real, dilations):
    # 6 steps: series shorter than a kernel's span, every tap past an end.
    x = univariate(2, steps, seed=7)
    x[1, real:] = 0.0
    layer = Hydra(num_kernels=3, num_groups=4, seed=1)
    features = numpy(layer(x))
    assert layer.dilations == dilations
    np.testing.assert_allclose(features[0], hydra_reference(layer, x[0, :, 0]), atol=1e-4)
    np.testing.assert_allclose(features[1], hydra_reference(layer, x[1, :real, 0]), atol=1e-4)
    # Min counts: every step of a series (and of its difference) counts once per group.
    d = len(dilations)
    min_counts = features.reshape(2, d, 2, 2, 2, 3)[:, :, :, 1].sum(axis=(-1, -2))
    expected = np.array([[steps, steps - 1]] * d + [[real, real - 1]] * d).reshape(2, d, 2) * 2
    np.testing.assert_array_equal(min_counts, expected)


def test_hydra_kernels_are_zero_mean_with_unit_l1_norm():
    layer = Hydra(num_kernels=8, num_groups=16, seed=0)
    layer.build((None, 100, 3))
    w = numpy(layer.kernels)
    np.testing.assert_allclose(w.sum(axis=2), 0, atol=1e-6)
    np.testing.assert_allclose(np.abs(w).sum(axis=2), 1, atol=1e-6)
    # Each group sums clip(3 // 2, 2, 8) = 2 channel draws.
    assert (numpy(layer.mixing).sum(axis=2) == 2).all()


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("make", [lambda: MiniRocket(num_features=336, seed=0),
                                  lambda: MultiRocket(num_features=168, seed=0),
                                  lambda: Hydra(num_kernels=4, num_groups=8, seed=0)],
                         ids=["MiniRocket", "MultiRocket", "Hydra"])
def test_features_do_not_depend_on_padding(make, channels):
    rng = np.random.default_rng(8)
    layer = make()
    train = rng.normal(size=(10, 48, channels)).astype("float32")
    if hasattr(layer, "adapt"):
        layer.adapt(train)
    series = rng.normal(size=(3, 35, channels)).astype("float32")
    padded = [np.pad(series, ((0, 0), (0, extra), (0, 0))) for extra in (13, 40)]  # 48 and 75 steps
    short, long_ = (numpy(layer(p)) for p in padded)
    np.testing.assert_allclose(short, long_, atol=1e-5)
    # One series alone (its own compiled program: MultiRocket's pass in windows of 50 steps, not 25).
    np.testing.assert_allclose(numpy(layer(padded[1][1:2])), short[1:2], atol=1e-5)
    # A Keras mask says the same as the trailing zeros.
    noisy = padded[0].copy()
    noisy[:, 35:] = 9.0
    mask = np.arange(48)[None, :] < 35
    np.testing.assert_allclose(numpy(layer(noisy, mask=np.repeat(mask, 3, axis=0))), short, atol=1e-5)


def two_shapes(n=40, steps=60, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    t = np.arange(steps)
    x = np.sin(2 * np.pi * t / np.where(y == 1, 6, 15)[:, None]) + 0.5 * rng.normal(size=(n, steps))
    return x.astype("float32")[:, :, None], y


@pytest.mark.parametrize("n,num_features", [(40, 336), (200, 168)], ids=["gram", "covariance"])
def test_ridge_head_equals_ridge_classifier_cv_on_the_same_features(n, num_features):
    x, y = two_shapes(n)
    y = (np.arange(n) % 3 + y) % 3  # three classes, partly predictable
    layer = MiniRocket(num_features=num_features, seed=0)
    layer.adapt(x)
    features = numpy(layer(x)) + np.random.default_rng(1).normal(0, 0.05, size=(n, num_features))
    test = features[::2] + 0.01
    reference = RidgeClassifierCV(alphas=ALPHAS).fit(features, y)
    fit = ridge_classifier(features, y, 3)
    assert fit.alpha == reference.alpha_
    np.testing.assert_allclose(test @ fit.kernel + fit.bias, reference.decision_function(test), atol=1e-4)
    np.testing.assert_array_equal((test @ fit.kernel + fit.bias).argmax(1), reference.predict(test))


def test_ridge_binary_columns_are_sklearns_decision_and_its_negative():
    x, y = two_shapes(30)
    features = np.random.default_rng(2).normal(size=(30, 80)) + y[:, None] * np.linspace(0, 1, 80)
    reference = RidgeClassifierCV(alphas=ALPHAS).fit(features, y)
    fit = ridge_classifier(features, y, 2)
    decision = features @ fit.kernel + fit.bias
    assert fit.alpha == reference.alpha_
    np.testing.assert_allclose(decision[:, 1], reference.decision_function(features), atol=1e-4)
    np.testing.assert_allclose(decision[:, 0], -decision[:, 1], atol=1e-4)


@pytest.mark.parametrize("n,num_features", [(40, 336), (200, 168)], ids=["gram", "covariance"])
def test_weighted_ridge_equals_ridge_classifier_cv_with_class_and_sample_weights(n, num_features):
    x, _ = two_shapes(n)
    y = np.repeat([0, 1, 2], [n * 7 // 10, n // 5, n - n * 7 // 10 - n // 5])  # imbalanced, 7:2:1
    layer = MiniRocket(num_features=num_features, seed=0)
    layer.adapt(x)
    features = numpy(layer(x)) + y[:, None] * 0.1 + np.random.default_rng(4).normal(0, 0.05, (n, num_features))
    test = features[::3] + 0.01
    weight = np.random.default_rng(5).uniform(0.2, 3.0, n)
    for reference, sample_weight in [
        (RidgeClassifierCV(alphas=ALPHAS, class_weight="balanced").fit(features, y),
         expected_weights("class_weight", y)),
        (RidgeClassifierCV(alphas=ALPHAS).fit(features, y, sample_weight=weight), weight),
    ]:
        fit = ridge_classifier(features, y, 3, sample_weight=sample_weight)
        assert fit.alpha == reference.alpha_
        np.testing.assert_allclose(test @ fit.kernel + fit.bias, reference.decision_function(test), atol=1e-4)


def test_ridge_fitted_a_few_feature_columns_at_a_time_equals_ridge_classifier_cv(monkeypatch):
    """The Gram matrix, the means and the kernel are sums over blocks of feature columns
    (`COLUMN_BLOCK`), so float32 features are never copied whole into float64: blocks of 7 columns,
    the last one short, give scikit-learn's weighted fit on the same features."""
    from kseq.models import ridge

    monkeypatch.setattr(ridge, "COLUMN_BLOCK", 7)
    rng = np.random.default_rng(7)
    y = np.arange(40) % 3
    features = (rng.normal(size=(40, 100)) + y[:, None] * np.linspace(-0.5, 0.5, 100) + 2.0).astype("float32")
    weight = rng.uniform(0.2, 3.0, 40)
    reference = RidgeClassifierCV(alphas=ALPHAS).fit(features.astype("float64"), y, sample_weight=weight)
    fit = ridge_classifier(features, y, 3, sample_weight=weight)
    assert fit.alpha == reference.alpha_
    np.testing.assert_allclose(features @ fit.kernel + fit.bias, reference.decision_function(features), atol=1e-4)


def test_a_ridge_head_takes_the_runs_class_weights():
    """`sampler.kind = "class_weight"` (the recipe's choice on imbalanced small data) reaches the
    solved head: its decisions are scikit-learn's balanced ridge on the model's own features."""
    x, _ = two_shapes(40, seed=6)
    y = np.repeat([0, 1], [32, 8])
    clf = SequenceClassifier("minirocket", {"num_features": 84}, sampler="class_weight", random_state=0).fit(x, y)
    features = numpy(keras.Model(clf.model_.input, clf.model_.get_layer("minirocket_transform_scaling").output)(x))
    kernel, bias = clf.model_.get_layer("logits").get_weights()
    balanced = RidgeClassifierCV(alphas=ALPHAS, class_weight="balanced").fit(features, y)
    plain = RidgeClassifierCV(alphas=ALPHAS).fit(features, y)
    decision = (features @ kernel + bias)[:, 1]
    np.testing.assert_allclose(decision, balanced.decision_function(features), atol=1e-3)
    assert np.abs(decision - plain.decision_function(features)).max() > 1e-2  # the weights changed the fit


@pytest.mark.parametrize("block", [None, 2], ids=["one_block", "blocks_of_2"])
def test_feature_scaling_standardises_and_sparse_scaling_keeps_zeros(block, monkeypatch):
    """The statistics are NumPy's over all series, whether taken in one block of columns or in
    several (`kseq.models.ridge.COLUMN_BLOCK`, the last one short)."""
    if block:
        from kseq.models import ridge
        monkeypatch.setattr(ridge, "COLUMN_BLOCK", block)
    rng = np.random.default_rng(3)
    features = rng.normal(size=(50, 4)) * [1, 2, 3, 0]
    dense = FeatureScaling()
    dense.adapt(features)
    out = numpy(dense(features.astype("float32")))
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(0), [1, 1, 1, 0], atol=1e-4)
    counts = np.maximum(rng.normal(size=(50, 3)), 0) * 10
    sparse = FeatureScaling(sparse=True)
    sparse.adapt(counts)
    root = np.sqrt(counts)
    expected = np.where(root != 0, (root - root.mean(0)) / (root.std(0, ddof=1) + (root == 0).mean(0) ** 4 + 1e-8), 0)
    np.testing.assert_allclose(numpy(sparse(counts.astype("float32"))), expected, atol=1e-5)


@pytest.mark.parametrize("name,hp", [("minirocket", dict(num_features=168)),
                                     ("multirocket_hydra", dict(num_features=84, num_groups=4))])
def test_ridge_model_learns_and_reloads_equal(name, hp, tmp_path):
    x, y = two_shapes(40)
    model = build_model(name, x.shape[1:], 2, **hp)
    history = adapt_and_fit_head(model, x[:20], y[:20], "ridge")
    assert history["epoch"] == [0] and history["ridge_alpha"][0] in ALPHAS
    logits = model.predict(x[20:], verbose=0)
    assert np.mean(logits.argmax(1) == y[20:]) >= 0.9  # sines of period 6 and 15 in noise
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_head_is_ridge_for_small_data_and_logistic_for_large():
    config = {"sampler": {"batch_size": 32}, "train": {"steps": 0, "monitor": "loss", "epochs": 1,
                                                        "early_stopping_patience": 5, "min_delta": 0.0,
                                                        "steps_per_execution": 1, "dtype_policy": "float32",
                                                        "jit_compile": "keras"},
              "model": {"name": "multirocket_hydra"}}
    assert recipe.resolve(config, num_train=500, sequence_length=100, validation=False)["model"]["head"] == "ridge"
    assert recipe.resolve(config, num_train=20_000, sequence_length=100,
                          validation=False)["model"]["head"] == "logistic"
    fixed = {**config, "model": {"name": "minirocket", "head": "logistic"}}
    assert recipe.resolve(fixed, num_train=50, sequence_length=100, validation=False)["model"]["head"] == "logistic"


def test_ridge_head_refuses_hidden_layers():
    from kseq import InputError

    with pytest.raises(InputError, match="closed form"):
        build_model("minirocket", (30, 1), 2, num_features=84, dense_units=[8])


def test_sequence_classifier_multirocket_hydra_and_a_logistic_head():
    x, y = two_shapes(40, seed=4)
    labels = np.where(y == 1, "fast", "slow")
    clf = SequenceClassifier("multirocket_hydra", {"num_features": 84, "num_groups": 4}, random_state=0)
    clf.fit(x[:20], labels[:20])
    assert clf.config_["model"]["head"] == "ridge"
    assert clf.score(x[20:], labels[20:]) >= 0.9
    logistic = SequenceClassifier("minirocket", {"num_features": 168, "head": "logistic"}, steps=60,
                                  learning_rate=1e-2, random_state=0).fit(x[:20], labels[:20])
    assert logistic.config_["preprocess"]["normalize"] == "none"  # "auto" gives the random kernels raw series
    scaling = logistic.model_.get_layer("minirocket_transform_scaling")
    assert np.abs(numpy(scaling.mean)).sum() > 0  # adapted before training
    assert len(logistic.history_["loss"]) > 1 and logistic.history_["loss"][-1] < logistic.history_["loss"][0]
    assert logistic.score(x[20:], labels[20:]) >= 0.8


def test_random_kernels_adapt_on_the_normalised_series_a_branching_normalisation_gives():
    """`normalize = "series+channel"` puts two normalisations side by side in front of the model;
    the transforms' biases come from their concatenation (it used to end the fit with a traceback)."""
    x, y = two_shapes(40, seed=5)
    x = np.concatenate([x, 50.0 + 10.0 * x[::-1]], axis=-1)  # a second channel on another level and scale
    clf = SequenceClassifier("minirocket", {"num_features": 84}, normalize="series+channel", random_state=0)
    clf.fit(x[:20], y[:20])
    train = x[:20].astype("float64")
    shape = (train - train.mean(axis=1, keepdims=True)) / train.std(axis=1, keepdims=True)
    level = (train - train.mean(axis=(0, 1))) / train.std(axis=(0, 1))
    reference = MiniRocket(num_features=84, seed=0)
    reference.adapt(np.concatenate([shape, level], axis=-1).astype("float32"))
    rocket = next(layer for layer in clf.model_._flatten_layers() if isinstance(layer, MiniRocket))
    np.testing.assert_allclose(rocket.biases[0].numpy(), reference.biases[0].numpy(), rtol=1e-4, atol=1e-4)
    assert clf.score(x[20:], y[20:]) >= 0.9


def test_the_runs_seed_draws_the_random_kernels_unless_the_model_names_its_own():
    """`--seed` and `train.restart` give another draw of the random kernels, as they give other
    initial weights (they used to build the same transforms: seed 0 whatever the run's)."""
    from kseq.config import load_config
    from kseq.training.trainer import build_window_model, training_seed

    def seeds(*overrides):
        config = load_config("multirocket_hydra", ["model.num_features=84", "model.head=\"ridge\"", *overrides])
        model = build_window_model(config, (40, 3), 2, transform=None)
        rocket, hydra = (next(layer for layer in model._flatten_layers() if isinstance(layer, kind))
                         for kind in (MultiRocket, Hydra))
        return rocket.seed, hydra.seed, training_seed(config["train"])

    assert seeds() == (0, 0, 0)
    assert seeds("train.seed=7") == (7, 7, 7)
    restarted = seeds("train.seed=7", "train.restart=2")
    assert restarted[0] == restarted[1] == restarted[2] not in (0, 7)
    assert seeds("train.seed=7", "model.seed=3")[:2] == (3, 3)  # a seed the config gives stays


def test_cli_runs_minirocket_with_no_other_flag(tmp_path):
    x, y = two_shapes(60, steps=50, seed=5)
    np.savez(tmp_path / "data.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    done = subprocess.run([sys.executable, "-m", "kseq.experiments.run", "minirocket", "--data",
                           str(tmp_path / "data.npz"), "--output-dir", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "head=ridge" in done.stdout
    (run,) = (tmp_path / "out" / "minirocket").iterdir()
    for artifact in ("model.keras", "serving/saved_model.pb", "metrics.json", "report.html", "config.toml"):
        assert (run / artifact).exists(), artifact
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = keras.saving.load_model(run / "model.keras")
    # A solved head takes no gradient step; its saved optimizer still matches the compiled one.
    assert not [w for w in caught if "optimizer" in str(w.message)], [str(w.message) for w in caught]
    assert np.mean(model.predict(x[40:], verbose=0).argmax(1) == y[40:]) >= 0.9
    assert 'head = "ridge"' in (run / "config.toml").read_text()
    # Single requests go to the XLA-compiled signature (LiteRT would run the transform op by op).
    serving = ServingFunction(run / "serving")
    assert (serving.runtime, serving.runtime_batch_size) == ("xla", 1)
    logits = model.predict(x[40:41], verbose=0)
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(serving(x[40:41])["probabilities"], expected, atol=1e-5)
    litert = ServingFunction(run / "serving", runtime="litert")  # model.tflite is written and agrees too
    np.testing.assert_allclose(litert(x[40:41])["probabilities"], expected, atol=1e-5)
    # A shorter series is served at its own length, as the model answers it padded with zeros to 50.
    short = x[40:43, :30]
    logits = model.predict(np.pad(short, [(0, 0), (0, 20), (0, 0)]), verbose=0)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    tensorflow = ServingFunction(run / "serving", runtime="tensorflow")
    for served in (serving, litert, tensorflow):
        np.testing.assert_allclose(served(short[:1])["probabilities"], expected[:1], atol=1e-5)
        np.testing.assert_allclose(served(short)["probabilities"], expected, atol=1e-5)
        with pytest.raises(ValueError, match=r"must have shape \[batch, 1 to 50, 1\]; got \[1, 51, 1\]"):
            served(np.ones((1, 51, 1), "float32"))
    signature = tf.saved_model.load(str(run / "serving")).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="takes series of at most 50 steps"):
        signature(sequence=tf.ones((1, 51, 1)))


@pytest.mark.parametrize("batch", [1, 5, 64, 70, 300])
def test_features_of_a_batch_are_those_of_its_series_whatever_its_size(batch, monkeypatch):
    """Batches of every size go through the compiled programs' two static shapes (1, and chunks,
    here of 64, a smaller batch padded to one): each series' features are those it has alone,
    and none is lost or repeated."""
    from kseq.models import xla_programs

    monkeypatch.setattr(xla_programs, "CHUNK_ELEMENTS", 64 * 30 * 84)  # 30 steps x 84 rows (one dilation): chunks of 64
    rng = np.random.default_rng(9)
    x = rng.normal(size=(batch, 30, 1)).astype("float32")
    layer = MiniRocket(num_features=84, seed=0)
    layer.adapt(x if batch > 1 else np.repeat(x, 3, axis=0))
    features = numpy(layer(x))
    assert features.shape == (batch, 84)
    for i in sorted({0, batch // 2, batch - 1}):
        np.testing.assert_allclose(features[i], numpy(layer(x[i:i + 1]))[0], atol=1e-6)
    # The same through a graph whose batch size is unknown until it runs (a served signature).
    import tensorflow as tf

    graph = tf.function(layer.call, input_signature=[tf.TensorSpec([None, 30, 1], tf.float32)])
    np.testing.assert_allclose(graph(x).numpy(), features, atol=1e-6)


def test_univariate_batches_pool_in_one_pass_and_the_export_traces_the_products_equal_to_the_bit():
    """A univariate `MiniRocket` pools a batch in one pass over time in process and by products
    with one column where it is exported (`traced_for_export`) or given one series; the two give
    the same features, to the bit, padding and all (the products are checked against written-out
    PPVs and aeon above)."""
    from kseq.models import xla_programs
    from kseq.models.xla_programs import traced_for_export

    assert MiniRocket.time_major((64, 100, 1))
    assert not MiniRocket.time_major((1, 100, 1)) and not MiniRocket.time_major((64, 100, 3))
    with traced_for_export():
        assert not MiniRocket.time_major((64, 100, 1))
    assert MiniRocket.time_major((64, 100, 1))  # the context ends with its block
    rng = np.random.default_rng(4)
    x = rng.normal(size=(37, 64, 1)).astype("float32")
    for i, length in enumerate(rng.integers(10, 65, 37)):
        x[i, length:] = 0
    layer = MiniRocket(num_features=840, seed=0)
    layer.adapt(x)
    in_process = numpy(layer(x))
    assert any(key[:2] == (MiniRocket, True) for key in xla_programs._PROGRAMS)  # the pass ran
    with traced_for_export():
        exported = tf.function(layer.call, input_signature=[tf.TensorSpec([None, 64, 1], tf.float32)])
        served = exported.get_concrete_function()
    np.testing.assert_array_equal(served(tf.constant(x)).numpy(), in_process)
    np.testing.assert_array_equal(numpy(layer(x[5:6])), in_process[5:6])


def test_chunks_hold_a_bounded_number_of_values_however_long_the_series():
    """Series per chunk: at most `CHUNK_ELEMENTS` (2**25) over steps x rows, between 1 and 256, in
    as few chunks as a batch of 256 needs, filled up by fewer series than there are chunks."""
    from kseq.models.xla_programs import CHUNK_ELEMENTS, MAX_CHUNK, chunk_size

    assert CHUNK_ELEMENTS == 2 ** 25 and MAX_CHUNK == 256
    assert chunk_size(500, 3864) == 16  # MultiRocket's 46 dilation-representation pairs, 500 steps: at most 17
    assert chunk_size(500, 84 * 23) == 32  # MiniRocket's 23 dilations: at most 34, 8 chunks of 32
    assert chunk_size(2000, 4368) == 3  # 2,000 steps: at most 33554432 // 8736000 = 3
    assert chunk_size(30, 84) == 256  # short series: at most 256
    assert chunk_size(10 ** 6, 84) == 1  # never fewer than one series
    for rows in range(1, 3000, 7):
        bound = max(1, min(256, 2 ** 25 // (500 * rows)))
        chunk = chunk_size(500, rows)
        count = -(-256 // chunk)
        assert chunk <= bound and count == -(-256 // bound) and count * chunk - 256 < count


def test_multirocket_and_hydra_chunks_count_their_rows_and_keep_each_series_features(monkeypatch):
    """`rows_per_step` is what a step holds in the programs: MultiRocket 84 per dilation of the
    series and of its difference, Hydra its kernels and taps per dilation and input; with chunks of two
    series, a batch of five gives each series the features it has alone."""
    from kseq.models import xla_programs
    from kseq.models.rocket import fit_dilations

    x = np.random.default_rng(3).normal(size=(5, 200, 1)).astype("float32")
    multi, hydra = MultiRocket(num_features=336, seed=0), Hydra(num_kernels=4, num_groups=8, seed=0)
    multi.adapt(x)
    hydra.build(x.shape)
    assert multi.rows_per_step == 84 * (len(fit_dilations(200, 336)[0]) + len(fit_dilations(199, 336)[0]))
    # two inputs of four groups of four kernels, and the nine taps of the one channel their product reads
    assert hydra.rows_per_step == len(hydra.dilations) * 2 * (4 * 4 + 9)
    for layer in (multi, hydra):
        monkeypatch.setattr(xla_programs, "CHUNK_ELEMENTS", 2 * 200 * layer.rows_per_step)
        assert xla_programs.chunk_size(200, layer.rows_per_step) == 2
        features = numpy(layer(x))
        for i in (0, 4):
            np.testing.assert_allclose(features[i], numpy(layer(x[i:i + 1]))[0], atol=1e-5)


def test_multivariate_chunks_count_the_taps_each_channel_adds(monkeypatch):
    """On multivariate series the programs read nine shifted copies of every channel per dilation
    (and input), which outnumber the kernel outputs from 10 channels on: `rows_per_step` counts
    them, so a chunk of many-channel series stays within `CHUNK_ELEMENTS` (963 channels: 20 GB a
    chunk without them), and a batch cut into chunks of two gives each series its features alone."""
    from kseq.models import xla_programs
    from kseq.models.rocket import fit_dilations

    x = np.random.default_rng(4).normal(size=(5, 120, 12)).astype("float32")
    mini, multi = MiniRocket(num_features=168, seed=0), MultiRocket(num_features=168, seed=0)
    hydra = Hydra(num_kernels=4, num_groups=8, seed=0)
    for layer in (mini, multi):
        layer.adapt(x)
    hydra.build(x.shape)
    per_dilation = 84 + 9 * 12
    assert mini.rows_per_step == per_dilation * len(fit_dilations(120, 168)[0])
    assert multi.rows_per_step == per_dilation * (len(fit_dilations(120, 168)[0]) + len(fit_dilations(119, 168)[0]))
    assert hydra.rows_per_step == len(hydra.dilations) * 2 * (4 * 4 + 9 * 12)
    for layer in (mini, multi, hydra):
        monkeypatch.setattr(xla_programs, "CHUNK_ELEMENTS", 2 * 120 * layer.rows_per_step)
        assert xla_programs.chunk_size(120, layer.rows_per_step) == 2
        features = numpy(layer(x))
        for i in (0, 4):
            np.testing.assert_allclose(features[i], numpy(layer(x[i:i + 1]))[0], atol=1e-5)
