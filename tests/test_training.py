import json
import math
import subprocess
import sys
import textwrap
import time
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import log_softmax
from sklearn.metrics import confusion_matrix, f1_score

from kseq.config import load_config
from kseq.utils.errors import InputError
from kseq.training.trainer import prepare_data, train
from tests.conftest import TINY_ECG, InterruptAfter

ARTIFACTS = {"config.toml", "model.keras", "serving", "metrics.json", "history.csv", "plots", "report.html"}


def test_run_folder_holds_every_artifact(tiny_run):
    names = {p.name for p in tiny_run.directory.iterdir()}
    assert names == ARTIFACTS
    assert {p.name for p in (tiny_run.directory / "plots").iterdir()} == {
        "training_curves.png", "confusion_matrix.png", "reliability.png", "saliency.png"}
    assert not list(tiny_run.directory.parent.glob(".partial-*"))
    metrics = json.loads((tiny_run.directory / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "balanced_accuracy", "per_class", "confusion_matrix"):
        assert key in metrics
    assert set(metrics["per_class"]) == {"N", "S", "V", "F", "Q"}
    # The figures are the saved model's on the test split, as scikit-learn scores them.
    test = prepare_data(tiny_run.config).test
    predicted = tiny_run.model.predict(test.x, verbose=0).argmax(1)
    assert metrics["macro_f1"] == pytest.approx(f1_score(test.y, predicted, labels=range(5), average="macro",
                                                         zero_division=0))
    assert metrics["accuracy"] == pytest.approx(np.mean(predicted == test.y))
    assert metrics["confusion_matrix"] == confusion_matrix(test.y, predicted, labels=range(5)).tolist()
    assert metrics["train_samples_per_second"] > 0
    assert "val_macro_f1" in tiny_run.history


def test_saved_model_reloads_without_custom_objects(tiny_run):
    import kseq  # noqa: F401  (registers kseq's serialisables)

    reloaded = keras.saving.load_model(tiny_run.directory / "model.keras")
    x = np.random.default_rng(0).random((4, 187, 1), dtype=np.float32)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), tiny_run.model.predict(x, verbose=0), atol=1e-5)


def test_saved_model_runs_one_step_per_execution_and_keeps_its_optimizer_state(tmp_path):
    # Trained 4 steps per call into TensorFlow; the saved model must not hand that to predict.
    run = train(load_config("ecg_cnn", [*TINY_ECG, "train.steps_per_execution=4"]), tmp_path)
    reloaded = keras.saving.load_model(run.directory / "model.keras")
    assert reloaded.steps_per_execution == 1
    steps = math.ceil(len(prepare_data(run.config).fit.y) / 64)  # one epoch of batches of 64
    assert int(reloaded.optimizer.iterations.numpy()) == steps > 4
    x = np.random.default_rng(0).random((9, 187, 1), dtype=np.float32)
    scores = reloaded.evaluate(x, np.arange(9) % 5, batch_size=4, verbose=0, return_dict=True)
    assert set(scores) == {"loss", "accuracy", "macro_f1", "balanced_accuracy"}
    np.testing.assert_allclose(reloaded.predict(x, batch_size=4, verbose=0), run.model(x), atol=1e-5)


def test_same_seed_same_weights_and_logits_and_new_folder(tiny_run, tmp_path):
    again = train(load_config("ecg_cnn", TINY_ECG), tiny_run.directory.parent.parent)
    assert again.directory != tiny_run.directory
    assert again.directory.parent == tiny_run.directory.parent
    for got, expected in zip(again.model.get_weights(), tiny_run.model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)
    x = np.random.default_rng(0).random((16, 187, 1), dtype=np.float32)
    logits = tiny_run.model.predict(x, verbose=0)
    np.testing.assert_array_equal(again.model.predict(x, verbose=0), logits)
    assert np.ptp(logits, axis=0).max() > 1e-4  # logits that vary with the input: a real comparison
    other = train(load_config("ecg_cnn", [*TINY_ECG, "train.seed=1"]), tmp_path)
    assert not np.array_equal(other.model.predict(x, verbose=0), logits)  # the seed does matter


def test_interrupted_run_resumes_from_its_backup_on_the_batches_of_an_uninterrupted_one(tmp_path, monkeypatch):
    """An interrupted run leaves its partial folder with a backup; resuming finishes it there.
    Epoch 1 after a resume must train on epoch 1's batches, not replay epoch 0's: the final
    weights equal those of the same run left uninterrupted."""
    from kseq.training import trainer

    monkeypatch.setattr(trainer, "BACKUP_SECONDS", 0.0)  # a backup every epoch
    config = load_config("ecg_cnn", [*TINY_ECG, "train.epochs=2", "train.early_stopping_patience=5",
                                     "model.dropout=0.0"])  # batches the only randomness left
    whole = train(config, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "split", callbacks=[InterruptAfter(0)])
    (partial,) = (tmp_path / "split" / "ecg_cnn").glob(".partial-*")
    assert (partial / "backup").is_dir()
    resumed = train(config, tmp_path / "split", resume=partial)
    assert not partial.exists()
    assert resumed.metrics["epochs"] == 2
    assert resumed.history["epoch"] == whole.history["epoch"] == [0, 1]
    np.testing.assert_allclose(resumed.history["loss"], whole.history["loss"], rtol=1e-5)
    for got, expected in zip(resumed.model.get_weights(), whole.model.get_weights(), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


class _EpochClock:
    """Stands in for `time` in `kseq.callbacks`: each `monotonic` reading is one second after the
    previous one (`PeriodicBackup` reads it at the start and at each epoch's end)."""

    perf_counter = staticmethod(time.perf_counter)

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        self.now += 1.0
        return self.now


def test_run_interrupted_after_its_last_backup_trains_the_later_epochs_again(tmp_path, monkeypatch):
    """Backups every 1.5 clock seconds at a second an epoch: the backup holds epochs 0-1 when the
    run is interrupted after epoch 2. The resumed run drops epoch 2's history row, trains epochs
    2 and 3 again on their own batches, and ends exactly as the uninterrupted run."""
    from kseq.training import trainer

    monkeypatch.setattr(trainer, "BACKUP_SECONDS", 1.5)
    config = load_config("ecg_cnn", [*TINY_ECG, "train.epochs=4", "train.early_stopping_patience=5",
                                     "model.dropout=0.0"])
    monkeypatch.setattr("kseq.callbacks.time", _EpochClock())
    whole = train(config, tmp_path / "whole")
    monkeypatch.setattr("kseq.callbacks.time", _EpochClock())
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "split", callbacks=[InterruptAfter(2)])
    (partial,) = (tmp_path / "split" / "ecg_cnn").glob(".partial-*")
    assert trainer.completed_epochs(partial) == 2
    assert len((partial / "history.csv").read_text().splitlines()) == 1 + 3  # header and epochs 0-2
    resumed = train(config, tmp_path / "split", resume=partial)
    assert resumed.history["epoch"] == whole.history["epoch"] == [0, 1, 2, 3]
    np.testing.assert_allclose(resumed.history["loss"], whole.history["loss"], rtol=1e-5)
    for got, expected in zip(resumed.model.get_weights(), whole.model.get_weights(), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


class _ScriptedScore(keras.callbacks.Callback):
    """Overwrites the monitored score of each epoch with `scores[epoch]` before the checkpoint sees it."""

    def __init__(self, monitor, scores):
        super().__init__()
        self.monitor, self.scores = monitor, scores

    def on_epoch_end(self, epoch, logs=None):
        logs[self.monitor] = self.scores[epoch]


class _EpochWeights(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([np.array(w) for w in self.model.get_weights()])


@pytest.mark.parametrize("monitor,scores,kept", [("val_macro_f1", [0.2, 0.9, 0.5], 1), ("loss", [0.9, 0.1, 0.5], 2)],
                         ids=["validation: best epoch", "training loss: last epoch"])
def test_run_ends_on_its_best_validation_epoch_or_else_on_its_last(monitor, scores, kept, tmp_path, monkeypatch):
    """With a validation score monitored, the model a run returns and saves holds its best epoch's
    weights, not its last's (until 2026-12-03 the checkpoint was deleted with the backup folder
    before it was read); monitoring the training loss, it holds the last epoch's."""
    from kseq.training import trainer

    make_callbacks = trainer.make_callbacks
    monkeypatch.setattr(trainer, "make_callbacks",
                        lambda *args: [_ScriptedScore(monitor, scores), *make_callbacks(*args)])
    epoch_weights = _EpochWeights()
    config = load_config("ecg_cnn", [*TINY_ECG, "train.epochs=3", "train.early_stopping_patience=5",
                                     f"train.monitor={monitor!r}"])
    run = train(config, tmp_path, callbacks=[epoch_weights])
    assert len(epoch_weights.weights) == 3
    other = epoch_weights.weights[(kept + 1) % 3]
    assert any(not np.array_equal(a, b) for a, b in zip(epoch_weights.weights[kept], other))
    for got, expected in zip(run.model.get_weights(), epoch_weights.weights[kept], strict=True):
        np.testing.assert_array_equal(got, expected)
    reloaded = keras.saving.load_model(run.directory / "model.keras")
    for got, expected in zip(reloaded.get_weights(), epoch_weights.weights[kept], strict=True):
        np.testing.assert_array_equal(got, expected)
    assert not list(run.directory.rglob("*.weights.h5"))


def test_a_plateau_of_the_training_loss_anneals_the_rate_to_zero_before_the_run_ends(tmp_path, monkeypatch):
    """Cosine schedule, final weights kept, patience 2, a training loss that stops improving after
    epoch 0: `EarlyStopping` would end the run at epoch 2 (the third) at a high rate; the run goes
    on for ceil(2 x the share of the peak rate left) = 2 epochs and ends with the rate at zero."""
    from kseq.training import trainer

    make_callbacks = trainer.make_callbacks
    monkeypatch.setattr(trainer, "make_callbacks",
                        lambda *args: [_ScriptedScore("loss", [1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]),
                                       *make_callbacks(*args)])
    config = load_config("ecg_cnn", [*TINY_ECG, "train.epochs=8", "train.early_stopping_patience=2",
                                     "train.monitor='loss'", "optimizer.schedule='cosine'"])
    run = train(config, tmp_path)
    assert run.metrics["epochs"] == 5
    steps_per_epoch = math.ceil(len(prepare_data(run.config).fit) / 64)
    assert int(run.model.optimizer.iterations) == 5 * steps_per_epoch
    assert float(run.model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("monitor,scores,overrides,epochs", [
    ("val_macro_f1", [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [], 2),
    ("loss", [1.0, 0.0005, 0.0004, 0.0003, 0.0002, 0.0001, 0.0001, 0.0001],
     ["train.min_delta=1e-3", "optimizer.schedule='cosine'"], None)], ids=["validation score 1.0", "loss under min_delta"])
def test_a_run_stops_waiting_once_its_monitor_cannot_improve(monitor, scores, overrides, epochs, tmp_path, monkeypatch):
    """Patience 5 over 8 epochs, the best at epoch 1: Keras' `EarlyStopping` would wait until epoch
    6. A validation macro-F1 of 1.0 ends the run at once, on that epoch; a training loss within
    `min_delta` of zero starts the anneal at once (ceil(5 x the rate left) epochs), which ends
    before the budget, with the rate at zero."""
    from kseq.training import trainer

    make_callbacks = trainer.make_callbacks
    monkeypatch.setattr(trainer, "make_callbacks", lambda *args: [_ScriptedScore(monitor, scores), *make_callbacks(*args)])
    epoch_weights = _EpochWeights()
    config = load_config("ecg_cnn", [*TINY_ECG, "train.epochs=8", "train.early_stopping_patience=5",
                                     f"train.monitor={monitor!r}", *overrides])
    run = train(config, tmp_path, callbacks=[epoch_weights])
    if epochs is not None:
        assert run.metrics["epochs"] == len(epoch_weights.weights) == epochs
        for got, expected in zip(run.model.get_weights(), epoch_weights.weights[1], strict=True):
            np.testing.assert_array_equal(got, expected)
    else:
        # Waiting out the patience, the plateau would come at epoch 6 and its anneal reach the budget's end.
        assert run.metrics["epochs"] < 8
        assert float(run.model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)


def test_every_epoch_runs_its_own_steps_whatever_the_steps_per_execution():
    """Keras runs whole executions of `steps_per_execution`: at 16 a call, epochs of 20 steps ran
    32, the next epoch's batches, and this budget of 60 steps took 92 optimizer steps."""
    from kseq import SequenceClassifier

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 24, 1)).astype("float32"), np.arange(40) % 2
    clf = SequenceClassifier("cnn", batch_size=2, steps=60, validation_split=0.0, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(x, y)
    assert not [w for w in caught if "ran out of data" in str(w.message)]
    assert clf.config_["train"]["steps_per_execution"] == 10  # the 20 steps of an epoch in two calls
    assert len(clf.history_["loss"]) == 3 and int(clf.model_.optimizer.iterations) == 60


def test_a_configured_steps_per_execution_is_lowered_to_divide_the_epoch(tmp_path):
    import copy

    config = load_config("ecg_cnn", [*TINY_ECG, "train.epochs=2", "train.steps_per_execution=4"])
    steps_per_epoch = math.ceil(len(prepare_data(copy.deepcopy(config)).fit) / 64)
    assert steps_per_epoch % 4  # the case where whole executions of 4 would run past each epoch
    at_epoch_end = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: at_epoch_end.append(int(record.model.optimizer.iterations)))
    train(config, tmp_path, callbacks=[record])
    assert at_epoch_end == [steps_per_epoch, 2 * steps_per_epoch]


def test_throughput_counts_training_steps_not_validation(tmp_path, monkeypatch):
    """With a clock that ticks one second per reading, each training batch takes one second
    (its begin and end readings) whatever validation and callbacks do: 64 samples a second."""
    from tests.test_callbacks import _TickingClock

    monkeypatch.setattr("kseq.callbacks.time", _TickingClock())
    run = train(load_config("ecg_cnn", [*TINY_ECG, "train.epochs=2", "train.early_stopping_patience=5"]), tmp_path)
    fit_labels = prepare_data(run.config).fit.y
    assert run.metrics["train_step_seconds"] == 2 * math.ceil(len(fit_labels) / 64)
    assert run.metrics["train_samples_per_second"] == 64.0


def test_class_weight_sampler_weights_the_loss(tmp_path):
    """`class_weight` draws the batches `none` draws and weights their loss by class: same seed,
    same batches, so only the weights can make the two models differ (dropped weights would not)."""
    runs = {kind: train(load_config("ecg_cnn", [*TINY_ECG, f"sampler.kind={kind}", "model.dropout=0.0"]),
                        tmp_path / kind) for kind in ("none", "class_weight")}
    assert {kind: run.config["sampler"]["kind"] for kind, run in runs.items()} == {"none": "none",
                                                                                   "class_weight": "class_weight"}
    difference = max(np.abs(a - b).max() for a, b in zip(runs["none"].model.get_weights(),
                                                         runs["class_weight"].model.get_weights(), strict=True))
    assert difference > 1e-3
    from kseq.data.pipeline import make_train_dataset

    fit = prepare_data(runs["none"].config).fit
    draws = {kind: next(iter(make_train_dataset(fit.x, fit.y, sampler=kind, batch_size=64, seed=0, epochs=1)))
             for kind in ("none", "class_weight")}
    np.testing.assert_array_equal(draws["none"][1], draws["class_weight"][1])  # the same batch ...
    weights = np.asarray(draws["class_weight"][2])
    counts = np.bincount(fit.y, minlength=5)
    np.testing.assert_allclose(weights, len(fit.y) / (np.count_nonzero(counts) * counts[np.asarray(draws["none"][1])]),
                               rtol=1e-5)  # ... weighted N / (C * n_c), scikit-learn's "balanced"


def test_bad_model_argument_is_an_input_error_and_leaves_no_folder(tmp_path):
    config = load_config("ecg_cnn", [*TINY_ECG, "model.nonsense=3"])
    with pytest.raises(InputError, match=r"\[model\].*nonsense"):
        train(config, tmp_path)
    assert not (tmp_path / "ecg_cnn").exists()


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from kseq.config import load_config
        from kseq.training.trainer import prepare_data, train
        config = load_config("ecg_cnn", {TINY_ECG!r} + ["train.strategy=mirrored"])
        import keras

        class Strategy(keras.callbacks.Callback):  # what fit trains under, seen from inside train()
            def on_train_batch_end(self, batch, logs=None):
                strategy = self.model.distribute_strategy
                variable = self.model.trainable_variables[0].value
                self.seen = (type(strategy).__name__, strategy.num_replicas_in_sync,
                             len(getattr(variable, "values", [variable])))

        seen = Strategy()
        run = train(config, {str(tmp_path)!r}, callbacks=[seen])
        print("seen", *seen.seen, run.metrics["epochs"])
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    # fit ran under a 2-replica MirroredStrategy, its variables mirrored on both devices.
    assert "seen MirroredStrategy 2 2 1" in out.stdout, out.stdout[-2000:]


def test_pain_bigru_config_builds_three_bidirectional_gru_100():
    from kseq.training.trainer import build_window_model

    config = load_config("pain_bigru")
    model = build_window_model(config, (config["preprocess"]["window"], 38), 3, transform=None)
    wrappers = [layer for layer in model.layers if isinstance(layer, keras.layers.Bidirectional)]
    assert len(wrappers) == 3
    assert all(isinstance(w.forward_layer, keras.layers.GRU) and w.forward_layer.units == 100 for w in wrappers)


def test_pain_windows_and_transform_serve_whole_sequences(tmp_path):
    config = load_config("pain_gru", ["train.epochs=1", "model.layers=1", "model.units=4", "train.verbose=0"])
    run = train(config, tmp_path)
    assert run.model.input_shape == (None, 160, 38)
    assert run.metrics["per_class"]["high_pain"]["support"] > 0
    x = np.random.default_rng(0).normal(size=(2, 160, 38)).astype("float32")
    reloaded = keras.saving.load_model(run.directory / "model.keras")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), run.model.predict(x, verbose=0), atol=1e-5)


def test_without_a_validation_split_serving_keeps_the_argmax(tmp_path):
    run = train(load_config("ecg_cnn", [*TINY_ECG, "data.validation_split=0", "train.monitor=loss"]), tmp_path)
    metrics = json.loads((run.directory / "metrics.json").read_text())
    assert metrics["decisions"] == {"fitted": False, "reason": "no validation split"}
    assert metrics["calibration"] == {"fitted": False, "reason": "no validation split"}
    assert not (run.directory / "plots" / "reliability.png").exists()
    assert "not fitted (no validation split)" in (run.directory / "report.html").read_text()
    x = np.random.default_rng(0).random((16, 187, 1), dtype=np.float32)
    out = tf.saved_model.load(str(run.directory / "serving")).signatures["serving_default"](sequence=tf.constant(x))
    logits = run.model.predict(x, verbose=0)
    np.testing.assert_array_equal(out["class_id"].numpy(), logits.argmax(-1))


def test_a_recall_floor_for_an_unknown_class_fails_before_training(tmp_path):
    with pytest.raises(InputError, match="decisions.recall_floor: unknown class 'X'"):
        train(load_config("ecg_cnn", [*TINY_ECG, "decisions.recall_floor={X = 0.9}"]), tmp_path)
    assert not list(tmp_path.iterdir())


def test_a_recall_floor_is_met_on_validation_and_reported(tmp_path):
    # data.scale 0.1: every class has at least decisions.MIN_VALIDATION_SUPPORT validation beats
    # (at 0.01, F has one, and the offsets are skipped: test_tiny_validation_classes_skip_the_offsets).
    overrides = [*TINY_ECG, "data.scale=0.1"]
    run = train(load_config("ecg_cnn", [*overrides, "decisions.recall_floor={V = 0.9}"]), tmp_path)
    fitted = run.metrics["decisions"]
    assert "offsets_skipped" not in fitted
    assert fitted["recall_floor"] == {"V": 0.9} and fitted["validation"]["recall_shortfall_tuned_in_sample"] == 0.0
    # The floor binds on the validation split: recompute V's recall there from the saved model.
    val_set = prepare_data(load_config("ecg_cnn", overrides)).validation
    log_p = log_softmax(run.model.predict(val_set.x, verbose=0) / fitted["temperature"], axis=-1)
    predicted = (log_p + list(fitted["offsets"].values())).argmax(-1)
    v = val_set.class_names.index("V")
    assert ((predicted == v) & (val_set.y == v)).sum() / (val_set.y == v).sum() >= 0.9


@pytest.mark.slow  # four trainings (the run's and three folds') and an export
def test_generic_recipe_on_small_imbalanced_multichannel_data(tmp_path):
    """Levels in physical units and a 9:1 imbalance: the recipe resolves series+channel normalisation
    (fitted on the training series, saved with the model), class weights, and decisions fitted on
    out-of-fold predictions, since 3 minority series leave no room for a validation split."""
    import tomllib

    rng = np.random.default_rng(0)

    def draw(counts):
        y = np.repeat([0, 1], counts)
        x = rng.normal(0.0, 1.0, (len(y), 16, 2)).astype("float32")
        x[..., 1] = 200.0 + 5.0 * x[..., 1] + 20.0 * y[:, None]  # channel 1: a level in physical units
        return x, y

    x_train, y_train = draw((27, 3))
    x_test, y_test = draw((10, 10))
    data = tmp_path / "imbalanced.npz"
    np.savez(data, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    config = load_config("resnet", [f"data.path={json.dumps(str(data))}", 'data.source="npz"', "train.steps=30",
                                    "model.filters=[4]", "model.kernel_sizes=[3]", "train.verbose=0"])
    run = train(config, tmp_path / "out")
    written = tomllib.loads((run.directory / "config.toml").read_text())
    assert written["preprocess"]["normalize"] == "series+channel"
    assert written["sampler"]["kind"] == "class_weight" and written["decisions"]["folds"] == 3  # small data
    assert run.metrics["decisions"]["fitted_on"] == "out-of-fold predictions of the training split (3 folds)"
    # 3 minority series, 1 per fold: no offsets (the bar is 5 in every fold), the temperature fitted.
    assert "fewer than 5 held-out series in each of 3 folds" in run.metrics["decisions"]["offsets_skipped"]
    assert run.metrics["calibration"]["fitted"]
    reloaded = keras.saving.load_model(run.directory / "model.keras")
    standardize = next(layer for layer in reloaded._flatten_layers() if layer.name == "channel_standardization")
    steps = x_train.reshape(-1, 2).astype("float64")  # no padding: every step is signal
    np.testing.assert_allclose(keras.ops.convert_to_numpy(standardize.mean), steps.mean(0), rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(standardize.std), steps.std(0), rtol=1e-4)


def test_tiny_validation_classes_skip_the_offsets(tiny_run):
    """At data.scale=0.01 the validation split holds a single F beat: no offsets, and metrics.json says why."""
    fitted = json.loads((tiny_run.directory / "metrics.json").read_text())["decisions"]
    val_set = prepare_data(tiny_run.config).validation
    support = np.bincount(val_set.y, minlength=5)
    assert support[val_set.class_names.index("F")] < 5
    assert set(fitted["offsets"].values()) == {0.0} and "fewer than 5 validation series" in fitted["offsets_skipped"]


def test_training_state_built_before_fit_traces_the_step_once_and_trains_the_same():
    """`build_training_state` creates the loss's, metrics' and optimizer's variables before `fit`,
    so TensorFlow traces the training step once (Keras alone creates them inside the first trace,
    which TensorFlow then traces again); the weights and every epoch's metrics are unchanged."""
    from kseq.models import build_model
    from kseq.training.trainer import build_training_state, training_metrics

    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 20, 2)).astype("float32")
    y = (np.arange(16) % 3).astype("int32")

    def fitted(prebuilt: bool):
        keras.utils.set_random_seed(0)
        model = build_model("resnet", (None, 2), 3, filters=[4], kernel_sizes=[3])
        model.compile(optimizer=keras.optimizers.AdamW(1e-2),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=training_metrics(3), steps_per_execution=2)
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
        traces, step = [], model.train_step
        model.train_step = lambda data: (traces.append(1), step(data))[1]
        if prebuilt:
            build_training_state(model, dataset)
        history = model.fit(dataset, epochs=3, shuffle=False, verbose=0).history
        return len(traces), model.get_weights(), history

    traces, weights, history = fitted(prebuilt=True)
    _, reference_weights, reference_history = fitted(prebuilt=False)
    assert traces == 1
    assert history == reference_history
    for got, want in zip(weights, reference_weights, strict=True):
        np.testing.assert_array_equal(got, want)
