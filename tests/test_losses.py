import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from kseq.losses import (FocalLoss, LogitAdjustedCrossentropy, SmoothedCrossentropy, balanced_class_weights,
                         class_priors, get_loss)

C = 5


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=2.0, size=(32, C)).astype("float32")
    labels = rng.integers(0, C, size=32)
    return labels, logits


def softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("alpha", [0.25, [0.1, 0.2, 0.3, 0.4, 0.5]])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("from_logits", [True, False])
def test_focal_matches_keras_categorical_focal(batch, alpha, label_smoothing, from_logits):
    labels, logits = batch
    y_pred = logits if from_logits else softmax(logits)
    ours = FocalLoss(gamma=2.0, alpha=alpha, label_smoothing=label_smoothing,
                     from_logits=from_logits, reduction=None)
    ref = keras.losses.CategoricalFocalCrossentropy(
        alpha=alpha, gamma=2.0, label_smoothing=label_smoothing,
        from_logits=from_logits, reduction=None)
    np.testing.assert_allclose(ours(labels, y_pred), ref(np.eye(C)[labels], y_pred), atol=1e-6)


def test_focal_without_focusing_is_sparse_crossentropy(batch):
    labels, logits = batch
    ref = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    np.testing.assert_allclose(FocalLoss(gamma=0.0)(labels, logits), ref, atol=1e-6)


@pytest.mark.parametrize("from_logits", [True, False])
def test_smoothed_crossentropy_matches_keras_categorical(batch, from_logits):
    labels, logits = batch
    y_pred = logits if from_logits else softmax(logits)
    ours = SmoothedCrossentropy(label_smoothing=0.2, from_logits=from_logits)
    ref = keras.losses.CategoricalCrossentropy(label_smoothing=0.2, from_logits=from_logits)
    np.testing.assert_allclose(ours(labels, y_pred), ref(np.eye(C)[labels], y_pred), atol=1e-6)


@pytest.mark.parametrize("loss", [FocalLoss(), SmoothedCrossentropy()])
def test_column_labels_equal_flat_labels(batch, loss):
    labels, logits = batch
    np.testing.assert_allclose(loss(labels[:, None], logits), loss(labels, logits), atol=1e-7)


@pytest.mark.parametrize("cls", [FocalLoss, SmoothedCrossentropy])
def test_class_weights_scale_by_true_class_and_combine_with_sample_weight(batch, cls):
    labels, logits = batch
    weights = np.array([1.0, 2.0, 0.5, 3.0, 0.0])
    sample_weight = np.random.default_rng(1).uniform(size=len(labels))
    per_sample = np.asarray(cls(reduction=None)(labels, logits))
    weighted = cls(class_weights=weights.tolist())
    np.testing.assert_allclose(
        weighted(labels, logits, sample_weight=sample_weight),
        np.mean(per_sample * weights[labels] * sample_weight),
        rtol=1e-5,
    )


def numpy_focal(labels, logits, gamma, alpha, label_smoothing):
    """Float64 focal loss per sample from the formula, via a stable log-softmax."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    n = logits.shape[-1]
    targets = np.eye(n)[labels] * (1 - label_smoothing) + label_smoothing / n
    return np.sum(alpha * (1 - np.exp(log_p)) ** gamma * -targets * log_p, axis=-1)


@pytest.mark.parametrize(
    "loss, gamma, alpha, label_smoothing",
    [(FocalLoss(reduction=None), 2.0, 1.0, 0.0),
     (FocalLoss(alpha=0.5, label_smoothing=0.1, reduction=None), 2.0, 0.5, 0.1),
     (SmoothedCrossentropy(reduction=None), 0.0, 1.0, 0.1)],
)
def test_extreme_logits_give_finite_values_and_gradients(loss, gamma, alpha, label_smoothing):
    logits = tf.constant(np.random.default_rng(3).choice([-100.0, 100.0], size=(16, 3)), "float32")
    labels = np.random.default_rng(4).integers(0, 3, size=16)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        values = loss(labels, logits)
    grads = tape.gradient(values, logits)
    assert np.all(np.isfinite(values)) and np.all(np.isfinite(grads))
    ref = numpy_focal(labels, logits, gamma, alpha, label_smoothing)
    assert ref.max() > 50  # the batch holds sure misses, not only easy hits
    np.testing.assert_allclose(values, ref, rtol=1e-5, atol=1e-5)


def test_balanced_class_weights_match_sklearn():
    y = np.random.default_rng(2).choice(4, size=200, p=[0.7, 0.2, 0.07, 0.03])
    ref = compute_class_weight("balanced", classes=np.arange(4), y=y)
    np.testing.assert_allclose(balanced_class_weights(y, 4), ref, rtol=1e-12)


def test_balanced_class_weights_need_every_class():
    with pytest.raises(ValueError, match=r"\[2\]"):
        balanced_class_weights([0, 1, 1, 3], 4)


@pytest.mark.parametrize("cls", [FocalLoss, SmoothedCrossentropy])
def test_unresolved_balanced_string_points_to_helper(cls):
    with pytest.raises(ValueError, match="balanced_class_weights"):
        cls(class_weights="balanced")


def test_get_loss_builds_by_name(batch):
    labels, logits = batch
    focal = get_loss("focal", gamma=1.0, class_weights=[1.0] * C)
    assert isinstance(focal, FocalLoss) and focal.gamma == 1.0
    assert get_loss("smoothed_crossentropy", label_smoothing=0.3).label_smoothing == 0.3
    ref = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    np.testing.assert_allclose(get_loss("crossentropy")(labels, logits), ref, atol=1e-6)


def test_get_loss_unknown_name_lists_known():
    with pytest.raises(ValueError, match="crossentropy, focal, logit_adjusted, smoothed_crossentropy"):
        get_loss("hinge")


@pytest.mark.parametrize(
    "loss",
    [FocalLoss(gamma=1.5, alpha=[0.2, 0.3, 0.1, 0.2, 0.2], label_smoothing=0.05,
               class_weights=[1, 2, 3, 4, 5]),
     SmoothedCrossentropy(label_smoothing=0.2, class_weights=[5, 4, 3, 2, 1], from_logits=False)],
)
def test_losses_round_trip_by_registered_name(batch, loss):
    labels, logits = batch
    y_pred = logits if loss.from_logits else softmax(logits)
    config = keras.saving.serialize_keras_object(loss)
    assert config["registered_name"] == f"kseq>{type(loss).__name__}"
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is type(loss) and restored.get_config() == loss.get_config()
    np.testing.assert_allclose(restored(labels, y_pred), loss(labels, y_pred), atol=1e-7)


@pytest.mark.parametrize("alpha, num_classes, message", [
    ([0.1, 0.2, 0.3], 5, r"alpha has 3 entries but num_classes is 5"),
    ([0.25], None, r"alpha=\[0\.25\] has one entry; give a float .* or one entry per class"),
    ([0.25], 5, r"alpha=\[0\.25\] has one entry"),
])
def test_focal_alpha_of_the_wrong_length_is_refused_at_construction(alpha, num_classes, message):
    with pytest.raises(ValueError, match=message):
        FocalLoss(alpha=alpha, num_classes=num_classes)


def test_focal_alpha_list_checked_against_the_predictions_at_the_first_call(batch):
    labels, logits = batch  # 5 classes
    loss = FocalLoss(alpha=[0.2, 0.3, 0.5])  # no num_classes: the length is checked at the first call
    with pytest.raises(ValueError, match=r"alpha has 3 entries but the predictions have 5 classes"):
        loss(labels, logits)


def test_focal_num_classes_round_trips_and_matches_keras(batch):
    labels, logits = batch
    alpha = [0.1, 0.2, 0.3, 0.2, 0.2]
    loss = FocalLoss(alpha=alpha, num_classes=C, reduction=None)
    assert FocalLoss.from_config(loss.get_config()).get_config() == loss.get_config()
    ref = keras.losses.CategoricalFocalCrossentropy(alpha=alpha, gamma=2.0, from_logits=True, reduction=None)
    np.testing.assert_allclose(loss(labels, logits), ref(np.eye(C)[labels], logits), atol=1e-6)


def test_get_loss_with_a_wrong_alpha_from_a_config_is_an_input_error():
    from kseq.utils.errors import InputError
    from kseq.training.trainer import make_loss

    with pytest.raises(InputError, match=r"\[loss\]: alpha has 2 entries but num_classes is 5"):
        make_loss({"name": "focal", "gamma": 2.0, "alpha": [0.5, 0.5]}, np.arange(10) % 5, 5)


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_logit_adjusted_is_keras_crossentropy_of_shifted_logits(batch, tau):
    labels, logits = batch
    priors = np.array([0.5, 0.25, 0.15, 0.07, 0.03])
    ours = LogitAdjustedCrossentropy(class_priors=priors * 7.0, tau=tau, reduction=None)  # any scale: normalised
    ref = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(
        labels, logits + tau * np.log(priors).astype("float32"))
    np.testing.assert_allclose(ours(labels, logits), ref, atol=1e-6)
    np.testing.assert_allclose(ours(labels[:, None], logits), ref, atol=1e-6)


def test_logit_adjusted_with_uniform_priors_or_no_shift_is_crossentropy(batch):
    labels, logits = batch
    ref = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    np.testing.assert_allclose(LogitAdjustedCrossentropy(np.ones(C))(labels, logits), ref, atol=1e-6)
    np.testing.assert_allclose(LogitAdjustedCrossentropy(np.arange(1, C + 1), tau=0.0)(labels, logits), ref,
                               atol=1e-6)


def test_logit_adjusted_round_trips_by_registered_name(batch):
    labels, logits = batch
    loss = get_loss("logit_adjusted", class_priors=[0.4, 0.3, 0.1, 0.1, 0.1], tau=0.8)
    config = keras.saving.serialize_keras_object(loss)
    assert config["registered_name"] == "kseq>LogitAdjustedCrossentropy"
    restored = keras.saving.deserialize_keras_object(config)
    assert restored.get_config() == loss.get_config()
    np.testing.assert_allclose(restored(labels, logits), loss(labels, logits), atol=1e-7)


@pytest.mark.parametrize("priors", [[1.0], [0.5, 0.0, 0.5], [[0.5, 0.5]]])
def test_logit_adjusted_refuses_priors_that_are_not_positive_frequencies(priors):
    with pytest.raises(ValueError, match="class_priors must be a positive frequency"):
        LogitAdjustedCrossentropy(priors)


def test_class_priors_are_the_label_frequencies_and_the_config_gets_them_from_training():
    from kseq.training.trainer import make_loss

    y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    np.testing.assert_allclose(class_priors(y, 3), np.bincount(y) / len(y))
    np.testing.assert_allclose(make_loss({"name": "logit_adjusted"}, y, 3).class_priors, np.bincount(y) / len(y))
    with pytest.raises(ValueError, match=r"\[1\]"):  # a class absent from training has no prior
        class_priors([0, 2, 2], 3)


def test_logit_adjusted_training_puts_the_boundary_where_balanced_error_is_least():
    """Two unit-variance Gaussians at -1 and +1, nine parts to one. A linear model trained by
    crossentropy learns the posterior, whose boundary the prior pushes into the rare class:
    x = log(9) / 2 = 1.10. Trained by the logit-adjusted loss it learns the likelihood ratio,
    whose boundary is the midpoint, x = 0, where the two classes' error rates are equal."""
    rng = np.random.default_rng(0)
    y = (np.arange(20_000) % 10 == 0).astype("int32")
    x = (rng.normal(size=y.size) + np.where(y == 1, 1.0, -1.0)).astype("float32")[:, None]

    def boundary(loss):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2)])
        model.compile(keras.optimizers.Adam(0.05), loss)
        model.fit(x, y, batch_size=2_000, epochs=60, verbose=0)
        w, b = model.layers[0].get_weights()
        return -(b[1] - b[0]) / (w[0, 1] - w[0, 0])  # where the two logits are equal

    plain = boundary(keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    adjusted = boundary(LogitAdjustedCrossentropy(class_priors(y, 2)))
    assert abs(plain - np.log(9.0) / 2) < 0.1 and abs(adjusted) < 0.1, (plain, adjusted)
