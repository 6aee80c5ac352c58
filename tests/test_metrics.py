import keras
import numpy as np
import pytest
from sklearn import metrics as skm

from kseq.metrics import BalancedAccuracy, ClassRecall, MacroF1

C = 4


def sk_macro_f1(y, p, sample_weight=None, num_classes=C):
    """kseq's one macro-F1: the mean over all `num_classes` classes, absent ones scoring 0."""
    return skm.f1_score(y, p, labels=range(num_classes), average="macro", zero_division=0,
                        sample_weight=sample_weight)


def sk_recall(class_id):
    def score(y, p, sample_weight=None):
        return skm.recall_score(y, p, labels=[class_id], average=None, zero_division=0,
                                sample_weight=sample_weight)[0]
    return score


CASES = [
    (MacroF1(C), sk_macro_f1),
    (BalancedAccuracy(C), skm.balanced_accuracy_score),
    (ClassRecall(0), sk_recall(0)),
    (ClassRecall(3), sk_recall(3)),
]


def random_batches(seed, sizes=(7, 16, 1, 9), num_classes=C, label_classes=C):
    rng = np.random.default_rng(seed)
    labels = [rng.integers(0, label_classes, size=n) for n in sizes]
    logits = [rng.normal(size=(n, num_classes)).astype("float32") for n in sizes]
    return labels, logits


@pytest.mark.parametrize("metric, reference", CASES)
def test_streaming_value_equals_sklearn_on_the_whole_epoch(metric, reference):
    labels, logits = random_batches(0)
    metric.reset_state()
    for i, (y, z) in enumerate(zip(labels, logits)):
        metric.update_state(y[:, None] if i % 2 else y, z)  # (B, 1) and (B,) labels alike
    y, p = np.concatenate(labels), np.argmax(np.concatenate(logits), axis=-1)
    np.testing.assert_allclose(float(metric.result()), reference(y, p), atol=1e-6)


@pytest.mark.parametrize("metric, reference", CASES)
def test_sample_weights_weight_the_counts_as_in_sklearn(metric, reference):
    labels, logits = random_batches(1)
    weights = [np.random.default_rng(i).uniform(size=len(y)) for i, y in enumerate(labels)]
    metric.reset_state()
    for y, z, w in zip(labels, logits, weights):
        metric.update_state(y, z, sample_weight=w)
    y, p = np.concatenate(labels), np.argmax(np.concatenate(logits), axis=-1)
    np.testing.assert_allclose(
        float(metric.result()), reference(y, p, sample_weight=np.concatenate(weights)), atol=1e-6
    )


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_absent_classes_follow_sklearn_hand_computed():
    # Class 2 is predicted but never true; class 3 is neither true nor predicted.
    y_true, y_pred = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])
    logits = np.eye(C, dtype="float32")[y_pred]
    results = {}
    for metric in (MacroF1(C), BalancedAccuracy(C), ClassRecall(2), ClassRecall(3)):
        metric.update_state(y_true, logits)
        results[metric.name] = float(metric.result())
    # F1: class 0 = 2/3, class 1 = 1, class 2 = 0, class 3 (absent from both) = 0 -> 5/12.
    assert results["macro_f1"] == pytest.approx(5 / 12) == sk_macro_f1(y_true, y_pred)
    # Recall over true classes 0 and 1 only: (1/2 + 1) / 2.
    assert results["balanced_accuracy"] == pytest.approx(0.75)
    assert results["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    assert results["recall_2"] == 0.0 and results["recall_3"] == 0.0


def test_probabilities_score_like_logits():
    # Logits, probabilities and one-hot predictions of the same argmax all score the argmax; a
    # metric that thresholded scores (e.g. at 0.5) or read one column instead would differ here.
    y = np.array([0, 1, 2, 3, 0, 1])
    logits = np.array([[2.0, 1.9, 1.8, 1.7], [-1.0, -0.5, -2.0, -3.0], [0.1, 0.2, 0.3, 0.0],
                       [5.0, 0.0, 0.0, 4.0], [0.0, 0.0, 0.0, 0.1], [1.0, 2.0, 0.0, 0.0]], "float32")
    predicted = logits.argmax(axis=-1)  # [0, 1, 2, 0, 3, 1]: every probability below 0.5 but one
    for metric, reference in CASES:
        for scores in (logits, keras.ops.softmax(logits), np.eye(C, dtype="float32")[predicted]):
            metric.reset_state()
            metric.update_state(y, scores)
            assert float(metric.result()) == pytest.approx(reference(y, predicted), abs=1e-6), metric.name


@pytest.mark.parametrize("metric", [MacroF1(C), BalancedAccuracy(C), ClassRecall(1)])
def test_reset_state_starts_a_new_epoch(metric):
    labels, logits = random_batches(3)
    metric.update_state(labels[0], logits[0])
    metric.reset_state()
    metric.update_state(labels[1], logits[1])
    fresh = type(metric).from_config(metric.get_config())
    fresh.update_state(labels[1], logits[1])
    assert float(metric.result()) == float(fresh.result())


def test_names_default_and_override():
    assert [MacroF1(3).name, BalancedAccuracy(3).name, ClassRecall(2).name] == [
        "macro_f1", "balanced_accuracy", "recall_2"]
    assert ClassRecall(2, name="recall_minority").name == "recall_minority"


def test_compiled_model_evaluate_equals_sklearn_on_predictions():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(4).normal(size=(50, 6)).astype("float32")
    y = np.random.default_rng(5).integers(0, 3, size=50)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[MacroF1(3), BalancedAccuracy(3), ClassRecall(1)])
    scores = model.evaluate(x, y, batch_size=8, return_dict=True, verbose=0)
    p = np.argmax(model.predict(x, verbose=0), axis=-1)
    assert scores["macro_f1"] == pytest.approx(sk_macro_f1(y, p, num_classes=3), abs=1e-6)
    assert scores["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p), abs=1e-6)
    assert scores["recall_1"] == pytest.approx(sk_recall(1)(y, p), abs=1e-6)


@pytest.mark.parametrize("metric", [MacroF1(5, name="f1"), BalancedAccuracy(6), ClassRecall(4)])
def test_metrics_round_trip_by_registered_name(metric):
    config = keras.saving.serialize_keras_object(metric)
    assert config["registered_name"] == f"kseq>{type(metric).__name__}"
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is type(metric) and restored.get_config() == metric.get_config()


def test_macro_f1_is_one_definition_everywhere_when_a_class_is_absent():
    """Perfect predictions on a split without class 2: 2/3 over all three classes, in the
    streaming metric, the validation callback and the test report alike (not 1.0 over two)."""
    from kseq.callbacks import ClassificationReport
    from kseq.reporting.evaluation import report

    y = np.array([0, 0, 1, 1, 1])
    logits = np.eye(3, dtype="float32")[y]
    expected = sk_macro_f1(y, y, num_classes=3)
    assert expected == pytest.approx(2 / 3)
    streaming = MacroF1(3)
    streaming.update_state(y, logits)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Identity()])
    callback = ClassificationReport((logits, y), class_names=["a", "b", "c"])
    callback.set_model(model)
    logs = {}
    callback.on_epoch_end(0, logs)
    assert float(streaming.result()) == pytest.approx(expected)
    assert logs["val_macro_f1"] == pytest.approx(expected)
    assert report(y, logits, ("a", "b", "c"))["macro_f1"] == pytest.approx(expected)
