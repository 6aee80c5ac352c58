import math
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from matplotlib.image import imread
from sklearn import metrics as skm

from kseq.callbacks import (AnnealOnPlateau, ClassificationReport, ConfusionMatrixLogger, ResumableEarlyStopping,
                            ResumableReduceLROnPlateau, StepTimer, WarmupCosineDecay)
from kseq.losses import FocalLoss
from kseq.metrics import BalancedAccuracy, ClassRecall, MacroF1
from kseq.reporting.plots import plot_history

HELPER = Path(__file__).with_name("helpers_existing_stack.py")
NAMES = ["normal", "rare", "very_rare"]


def tiny_data(n=64, seed=0):
    """Imbalanced 3-class sequences (N, T=8, F=2) whose label leaks into the mean of feature 0."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=[0.6, 0.3, 0.1])
    x = rng.normal(size=(n, 8, 2)).astype("float32")
    x[:, :, 0] += y[:, None]
    return x, y


def tiny_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((8, 2)),
        keras.layers.Conv1D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(3),
    ])


def numpy_warmup_cosine(step, peak, warmup, decay, alpha, initial):
    if step < warmup:
        return initial + (peak - initial) * step / warmup
    progress = min(step - warmup, decay) / decay
    return peak * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * progress)) + alpha)


@pytest.mark.parametrize("warmup, alpha, initial", [(10, 0.0, 0.0), (10, 0.1, 1e-4), (0, 0.05, 0.0)])
def test_warmup_cosine_matches_formula_and_keras(warmup, alpha, initial):
    schedule = WarmupCosineDecay(1e-3, warmup, 40, alpha=alpha, initial_learning_rate=initial)
    steps = [0, 1, 5, 9, 10, 11, 25, 49, 50, 51, 200]
    ours = [float(schedule(s)) for s in steps]
    expected = [numpy_warmup_cosine(s, 1e-3, warmup, 40, alpha, initial) for s in steps]
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-10)
    if warmup:
        keras_schedule = keras.optimizers.schedules.CosineDecay(
            initial, 40, alpha=alpha, warmup_target=1e-3, warmup_steps=warmup)
        np.testing.assert_allclose(ours, [float(keras_schedule(s)) for s in steps], rtol=1e-5, atol=1e-10)


def test_warmup_cosine_rejects_empty_decay():
    with pytest.raises(ValueError, match="decay_steps > 0"):
        WarmupCosineDecay(1e-3, 10, 0)


def test_finish_early_follows_the_rest_of_the_curve_twice_as_fast():
    """Warmup 10, decay 90 (the curve ends at step 100), told at step 40 to end at 70: from 40 on,
    step s reads the curve at 40 + 2 (s - 40), so 70 reads its end; before 40 nothing changes."""
    schedule = WarmupCosineDecay(1e-3, 10, 90, alpha=0.1)
    schedule.finish_early(40, 70)
    steps = [0, 5, 10, 39, 40, 41, 55, 69, 70, 71, 200]
    on_curve = [s if s < 40 else 40 + 2 * (s - 40) for s in steps]
    expected = [numpy_warmup_cosine(s, 1e-3, 10, 90, 0.1, 0.0) for s in on_curve]
    np.testing.assert_allclose([float(schedule(s)) for s in steps], expected, rtol=1e-5, atol=1e-10)
    assert float(schedule(70)) == pytest.approx(1e-4)  # alpha * peak, where the whole curve ends
    assert (schedule.finish_from, schedule.finish_at) == (40, 70)
    restored = WarmupCosineDecay.from_config(schedule.get_config())
    np.testing.assert_allclose([float(restored(s)) for s in steps], expected, rtol=1e-5, atol=1e-10)
    schedule.finish_early(100, 100)  # the budget's end: the unchanged curve
    np.testing.assert_allclose([float(schedule(s)) for s in steps],
                               [numpy_warmup_cosine(s, 1e-3, 10, 90, 0.1, 0.0) for s in steps], rtol=1e-5, atol=1e-10)


@pytest.mark.parametrize("step, end_step", [(5, 50), (50, 50), (50, 120), (60, 50)])
def test_finish_early_rejects_an_end_outside_the_rest_of_the_curve(step, end_step):
    with pytest.raises(ValueError, match="warmup_steps <= step < end_step <= 100"):
        WarmupCosineDecay(1e-3, 10, 90).finish_early(step, end_step)


@pytest.mark.parametrize("as_dataset", [False, True])
def test_classification_report_puts_sklearn_scores_in_logs(as_dataset):
    x, y = tiny_data(40, seed=1)
    model = tiny_model()
    # A dataset that reshuffles on every pass: scores must still pair each prediction with its label.
    data = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(40, seed=0).batch(16)
            if as_dataset else (x, y))
    report = ClassificationReport(data, class_names=NAMES, batch_size=16)
    report.set_model(model)
    logs = {"loss": 1.0}
    report.on_epoch_end(0, logs)
    p = np.argmax(model.predict(x, verbose=0), axis=-1)
    recalls = skm.recall_score(y, p, labels=[0, 1, 2], average=None, zero_division=0)
    expected = {
        "loss": 1.0,
        "val_macro_f1": skm.f1_score(y, p, labels=[0, 1, 2], average="macro", zero_division=0),
        "val_balanced_accuracy": skm.balanced_accuracy_score(y, p),
        **{f"val_recall_{name}": r for name, r in zip(NAMES, recalls)},
    }
    assert logs.keys() == expected.keys()
    for key, value in expected.items():
        assert logs[key] == pytest.approx(value), key


def test_classification_report_traces_a_model_compiled_for_several_steps_once():
    x, y = tiny_data(40, seed=2)
    model = tiny_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", steps_per_execution=4)
    report = ClassificationReport((x, y), class_names=NAMES, batch_size=6)  # executions of 4 and 3 batches
    report.set_model(model)
    for epoch in range(2):
        logs = {}
        report.on_epoch_end(epoch, logs)
    p = np.argmax(np.asarray(model(x)), axis=-1)
    assert logs["val_macro_f1"] == pytest.approx(skm.f1_score(y, p, labels=[0, 1, 2], average="macro",
                                                              zero_division=0))
    assert model.predict_function.experimental_get_tracing_count() == 1


def test_classification_report_names_recalls_by_index_without_class_names():
    x, y = tiny_data(16)
    report = ClassificationReport((x, y))
    report.set_model(tiny_model())
    logs = {}
    report.on_epoch_end(0, logs)
    assert {"val_recall_0", "val_recall_1", "val_recall_2"} <= logs.keys()


def test_confusion_matrix_logger_writes_png_and_tensorboard_image_every_n_epochs(tmp_path):
    x, y = tiny_data(16)
    logger = ConfusionMatrixLogger((x, y), NAMES, tmp_path / "cm", every=2, tensorboard=True)
    logger.set_model(tiny_model())
    logger.on_train_begin()
    for epoch in range(4):
        logger.on_epoch_end(epoch)
    logger.on_train_end()
    pngs = sorted(p.name for p in (tmp_path / "cm").glob("*.png"))
    assert pngs == ["confusion_matrix_epoch_002.png", "confusion_matrix_epoch_004.png"]
    assert imread(tmp_path / "cm" / pngs[0]).ndim == 3
    (event_file,) = (tmp_path / "cm").glob("events.out.tfevents.*")
    images = [(event.step, value.tag)
              for event in tf.compat.v1.train.summary_iterator(str(event_file))
              for value in event.summary.value]
    assert images == [(1, "confusion_matrix"), (3, "confusion_matrix")]


def test_plot_history_draws_every_quantity(tmp_path):
    history = {"epoch": [0, 1], "loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "macro_f1": [0.2, 0.4]}
    path = plot_history(history, tmp_path / "plots" / "curves.png")
    assert imread(path).shape[1] == 1000  # two panels, 5 inches each at 100 dpi
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_history({"epoch": [0]}, tmp_path / "empty.png")


def test_keras_file_restores_kseq_objects_without_custom_objects(tmp_path):
    x, y = tiny_data(16)
    model = tiny_model()
    schedule = WarmupCosineDecay(1e-2, warmup_steps=2, decay_steps=10, alpha=0.1)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=FocalLoss(gamma=1.0, alpha=[0.2, 0.3, 0.5]),
                  metrics=[MacroF1(3), BalancedAccuracy(3), ClassRecall(2)])
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.loss, FocalLoss) and loaded.loss.get_config() == model.loss.get_config()
    restored_schedule = loaded.optimizer.get_config()["learning_rate"]
    assert restored_schedule["registered_name"] == "kseq>WarmupCosineDecay"
    assert restored_schedule["config"] == schedule.get_config()
    assert int(loaded.optimizer.iterations) == 2
    np.testing.assert_allclose(
        float(loaded.optimizer.learning_rate), float(schedule(2)), rtol=1e-6)
    np.testing.assert_allclose(
        loaded.evaluate(x, y, return_dict=True, verbose=0)["macro_f1"],
        model.evaluate(x, y, return_dict=True, verbose=0)["macro_f1"])


def test_existing_keras_stack_monitors_kseq_scores_and_reloads_in_fresh_process(tmp_path):
    x, y = tiny_data(64)
    x_val, y_val = tiny_data(32, seed=1)
    model = tiny_model()
    model.compile(optimizer="adam", loss=FocalLoss(alpha=[0.2, 0.3, 0.5]),
                  metrics=[MacroF1(3), BalancedAccuracy(3)])
    checkpoint = tmp_path / "best.keras"
    history = model.fit(
        x, y, epochs=2, batch_size=16, verbose=0,
        callbacks=[
            ClassificationReport((x_val, y_val), class_names=NAMES),
            ConfusionMatrixLogger((x_val, y_val), NAMES, tmp_path / "cm", tensorboard=True),
            # restore_best_weights leaves the in-process model at the checkpointed epoch.
            keras.callbacks.EarlyStopping(monitor="val_macro_f1", mode="max", patience=5,
                                          restore_best_weights=True),
            keras.callbacks.ModelCheckpoint(checkpoint, monitor="val_macro_f1", mode="max",
                                            save_best_only=True),
            keras.callbacks.CSVLogger(tmp_path / "history.csv"),
            keras.callbacks.TensorBoard(tmp_path / "tb"),
        ],
    )
    # The scores came from ClassificationReport alone: fit had no validation_data.
    logged = pd.read_csv(tmp_path / "history.csv")
    assert {"val_macro_f1", "val_balanced_accuracy", "val_recall_very_rare"} <= set(logged.columns)
    np.testing.assert_allclose(logged["val_macro_f1"], history.history["val_macro_f1"], rtol=1e-6)
    assert len(list((tmp_path / "cm").glob("*.png"))) == 2
    assert list((tmp_path / "cm").glob("events.out.tfevents.*"))
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert checkpoint.exists()

    np.save(tmp_path / "inputs.npy", x_val)
    result = subprocess.run(
        [sys.executable, str(HELPER), str(checkpoint), str(tmp_path / "inputs.npy"),
         str(tmp_path / "outputs.npy")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr
    assert "loss: FocalLoss" in result.stdout
    assert "balanced_accuracy" in result.stdout and "macro_f1" in result.stdout
    fresh = np.load(tmp_path / "outputs.npy")
    assert np.max(np.abs(fresh - model.predict(x_val, verbose=0))) <= 1e-5


class _TickingClock:
    """Stands in for `time` in `kseq.callbacks`: each reading is one second after the previous one."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 1.0
        return self.now

    monotonic = perf_counter  # what `PeriodicBackup` reads


def test_step_timer_times_training_batches_only(monkeypatch):
    """Only the clock readings at training batches count: each batch's begin-to-end reads one
    tick, however much validation and epoch-end work (which read the clock too) there is."""
    clock = _TickingClock()
    monkeypatch.setattr("kseq.callbacks.time", clock)
    x, y = tiny_data(40, seed=2)
    model = tiny_model()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    timer = StepTimer()
    busy = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: [clock.perf_counter() for _ in range(50)])
    model.fit(x, y, batch_size=8, epochs=3, validation_data=(x, y), callbacks=[timer, busy], verbose=0)
    assert timer.seconds == 3 * 5  # 3 epochs of 40 / 8 batches, one tick each


def _plateau_model(rate=1.0):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(rate), loss="mse")
    return model


def _drive(callback, model, values, first_epoch=0):
    """Epoch ends with `values` of the callback's monitor, as `fit` calls them; the epoch it stopped at, or None."""
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, value in enumerate(values, start=first_epoch):
        callback.on_epoch_end(epoch, {callback.monitor: value})
        if model.stop_training:
            return epoch
    return None


def test_resumed_early_stopping_counts_the_interrupted_epochs():
    """Best at epoch 0, then worse; patience 3: an uninterrupted run stops at epoch 3. Interrupted
    after epoch 1, the resumed run must stop at epoch 3 too, not wait 3 more epochs (Keras' own
    EarlyStopping starts from zero: it would stop at epoch 4 of 5, or never in a short run)."""
    values = [1.0, 1.5, 1.6, 1.7, 1.8, 1.9]
    whole = _drive(ResumableEarlyStopping(monitor="val_loss", patience=3), _plateau_model(), values)
    assert whole == 3
    resumed = _drive(ResumableEarlyStopping(monitor="val_loss", patience=3, logged=values[:2]), _plateau_model(),
                     values[2:], first_epoch=2)
    assert resumed == whole
    plain = _drive(keras.callbacks.EarlyStopping(monitor="val_loss", patience=3), _plateau_model(), values[2:],
                   first_epoch=2)
    assert plain != whole  # what the fix is for


def _anneal(logged=(), patience=3, min_delta=0.0, bound=None):
    schedule = WarmupCosineDecay(1.0, warmup_steps=5, decay_steps=95)  # 10 epochs of 10 steps
    callback = AnnealOnPlateau(schedule, steps_per_epoch=10, epochs=10, monitor="val_loss", patience=patience,
                               min_delta=min_delta, bound=bound, logged=logged)
    return schedule, callback


def test_anneal_on_plateau_finishes_the_schedule_over_patience_epochs_then_stops():
    """Best at epoch 0, patience 3: where `EarlyStopping` stops at epoch 3, the rate still at
    0.70 of its peak (cos at 35 of 95 decay steps), the run goes on for ceil(3 x 0.70) = 3 more
    epochs, over which the rest of the cosine curve is followed (twice as fast), and stops at
    epoch 6 with the rate at the curve's end, zero."""
    values = [1.0, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0, 2.1, 2.2, 2.3]
    assert _drive(ResumableEarlyStopping(monitor="val_loss", patience=3), _plateau_model(), values) == 3
    schedule, callback = _anneal()
    assert _drive(callback, _plateau_model(), values) == 6
    assert (schedule.finish_from, schedule.finish_at) == (40, 70)
    assert float(schedule(39)) == pytest.approx(numpy_warmup_cosine(39, 1.0, 5, 95, 0.0, 0.0), rel=1e-5)
    for step in (40, 50, 60):  # the rest of the curve, from 40 to 100, in 30 steps
        expected = numpy_warmup_cosine(40 + (step - 40) * 60 / 30, 1.0, 5, 95, 0.0, 0.0)
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5)
    assert float(schedule(70)) == pytest.approx(0.0, abs=1e-7)
    # A plateau with fewer than `patience` epochs left runs to the budget's end on the curve as it was.
    schedule, callback = _anneal(patience=3)
    assert _drive(callback, _plateau_model(), [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.6, 0.7, 0.8, 0.9]) == 9
    assert (schedule.finish_from, schedule.finish_at) == (100, 100)
    # Patience 6: the plateau at epoch 6 leaves 0.23 of the peak rate (65 of 95 decay steps), so
    # ceil(6 x 0.23) = 2 epochs of anneal, not 6: the run stops at epoch 8, not at the budget's end.
    schedule, callback = _anneal(patience=6)
    assert _drive(callback, _plateau_model(), values) == 8
    assert (schedule.finish_from, schedule.finish_at) == (70, 90)


def test_anneal_on_plateau_counts_gains_under_min_delta_as_a_flat_loss():
    """A loss near zero creeping down 3e-4 an epoch: every epoch improves on the last, so with no
    `min_delta` the run never plateaus. With min_delta 1e-3 the best stays epoch 1's 0.1 (0.0997,
    0.0994, 0.0991 are none of them under 0.099), so patience 3 runs out at epoch 4 and the
    anneal takes ceil(3 x the rate left at step 50) more epochs."""
    values = [1.0, 0.1, 0.0997, 0.0994, 0.0991, 0.0988, 0.0985, 0.0982, 0.0979, 0.0976]
    schedule, callback = _anneal()
    assert _drive(callback, _plateau_model(), values) is None
    schedule, callback = _anneal(min_delta=1e-3)
    share = numpy_warmup_cosine(50, 1.0, 5, 95, 0.0, 0.0)  # 0.54 of the peak
    whole = _drive(callback, _plateau_model(), values)
    assert whole == 4 + math.ceil(3 * share) == 6
    assert (schedule.finish_from, schedule.finish_at) == (50, 70)
    # Resumed mid-way, the replayed epochs count against the same `min_delta`.
    schedule, callback = _anneal(logged=values[:3], min_delta=1e-3)
    assert _drive(callback, _plateau_model(), values[3:], first_epoch=3) == whole


def test_a_loss_within_min_delta_of_zero_is_a_certain_plateau_and_anneals_at_once():
    """Min_delta 1e-3, patience 3: epoch 2's loss 0.0008 leaves nothing an epoch could gain (an
    improvement would need a loss under -0.0002), so with the bound 0 the plateau is epoch 2's and
    the anneal takes ceil(3 x the rate left at step 30) epochs; without it the patience is waited
    out to epoch 5 first. A run resumed after epoch 1 or after epoch 3 ends where the whole one does."""
    values = [1.0, 0.1, 0.0008, 0.0007, 0.0006, 0.0005, 0.0004, 0.0003, 0.0002, 0.0001]
    schedule, callback = _anneal(min_delta=1e-3)
    share_at_6 = numpy_warmup_cosine(60, 1.0, 5, 95, 0.0, 0.0)
    assert _drive(callback, _plateau_model(), values) == 5 + math.ceil(3 * share_at_6) == 7
    schedule, callback = _anneal(min_delta=1e-3, bound=0.0)
    share_at_3 = numpy_warmup_cosine(30, 1.0, 5, 95, 0.0, 0.0)  # 0.80 of the peak
    whole = _drive(callback, _plateau_model(), values)
    assert whole == 2 + math.ceil(3 * share_at_3) == 5
    assert (schedule.finish_from, schedule.finish_at) == (30, 60)
    for interrupted_after in (2, 4):
        schedule, callback = _anneal(logged=values[:interrupted_after], min_delta=1e-3, bound=0.0)
        assert _drive(callback, _plateau_model(), values[interrupted_after:], first_epoch=interrupted_after) == whole
        assert (schedule.finish_from, schedule.finish_at) == (30, 60)
    # A loss still 1e-3 or more above the bound can improve: the patience counts as before.
    schedule, callback = _anneal(min_delta=1e-3, bound=0.0)
    assert _drive(callback, _plateau_model(), [1.0, 0.1, 0.05, 0.0015, 0.0011, 0.0011, 0.0011]) is None


def test_a_perfect_validation_score_stops_at_once_on_the_epoch_keras_would_keep():
    """A validation macro-F1 of 1.0 cannot be beaten: with the bound 1, early stopping ends the
    run on the epoch that reached it, which is the best epoch Keras' own `EarlyStopping` (which
    waits out its patience first) keeps."""
    values = [0.5, 0.9, 1.0, 1.0, 0.8, 1.0, 1.0, 1.0]
    certain = ResumableEarlyStopping(monitor="val_macro_f1", mode="max", patience=3, bound=1.0)
    plain = keras.callbacks.EarlyStopping(monitor="val_macro_f1", mode="max", patience=3)
    assert _drive(certain, _plateau_model(), values) == 2
    assert _drive(plain, _plateau_model(), values) == 5
    assert certain.best_epoch == plain.best_epoch == 2
    assert _drive(ResumableEarlyStopping(monitor="val_macro_f1", mode="max", patience=3, bound=1.0),
                  _plateau_model(), [0.5, 0.9, 0.99, 0.98, 0.97, 0.96]) == 5  # under 1.0: patience as before


def test_resumed_anneal_on_plateau_finishes_where_an_uninterrupted_run_does():
    values = [1.0, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0, 2.1]
    schedule, callback = _anneal()
    whole = _drive(callback, _plateau_model(), values)
    for interrupted_after in (2, 5):  # before the plateau, and while annealing
        schedule, callback = _anneal(logged=values[:interrupted_after])
        model = _plateau_model()
        assert _drive(callback, model, values[interrupted_after:], first_epoch=interrupted_after) == whole
        assert (schedule.finish_from, schedule.finish_at) == (40, 70)


def test_resumed_reduce_lr_on_plateau_reduces_when_an_uninterrupted_run_does():
    values = [1.0, 1.2, 1.3, 1.4, 1.5]
    whole_model = _plateau_model()
    whole_rates = []
    callback = ResumableReduceLROnPlateau(monitor="val_loss", patience=2, factor=0.5)
    callback.set_model(whole_model)
    callback.on_train_begin()
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {"val_loss": value})
        whole_rates.append(float(keras.ops.convert_to_numpy(whole_model.optimizer.learning_rate)))
    assert whole_rates == [1.0, 1.0, 0.5, 0.5, 0.25]
    # Interrupted after epoch 1: the backup restores the rate (1.0); the patience count must carry on.
    model = _plateau_model(1.0)
    callback = ResumableReduceLROnPlateau(monitor="val_loss", patience=2, factor=0.5, logged=values[:2])
    callback.set_model(model)
    callback.on_train_begin()
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == 1.0  # replay reduced nothing
    rates = []
    for epoch, value in enumerate(values[2:], start=2):
        callback.on_epoch_end(epoch, {"val_loss": value})
        rates.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
    assert rates == whole_rates[2:]
