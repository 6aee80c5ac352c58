"""Callbacks that report class-balanced validation scores, time training steps, and a warmup +
cosine LR schedule.

`ClassificationReport` writes its scores into the epoch `logs`, so callbacks placed after it
in the list (`EarlyStopping`, `ModelCheckpoint`, `ReduceLROnPlateau`, `CSVLogger`,
`TensorBoard`) can monitor and record `val_macro_f1` and friends.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from sklearn import metrics as skm

from kseq.models.inference import predict_arrays
from kseq.reporting.plots import plot_confusion_matrix
from kseq.utils.errors import InputError


def _predict(model, validation_data, batch_size):
    """Labels and model outputs `(y_true, y_prob)` for `(x, y)` arrays or a finite dataset."""
    if isinstance(validation_data, tf.data.Dataset):
        # Predict batch by batch so labels stay aligned even if the dataset reshuffles.
        y_true, y_prob = [], []
        for batch in validation_data:
            y_true.append(np.asarray(batch[1]).reshape(-1))
            y_prob.append(model.predict_on_batch(batch[0]))
        y_true, y_prob = np.concatenate(y_true), np.concatenate(y_prob)
    else:
        x, y = validation_data
        y_true = np.asarray(y).reshape(-1)
        if isinstance(x, np.ndarray):
            # Not `model.predict`: it traces a graph of `steps_per_execution` copies of the model
            # (up to 16 in kseq's runs), and again for the last, shorter execution.
            y_prob = predict_arrays(model, x, batch_size)
        else:
            y_prob = model.predict(x, batch_size=batch_size, verbose=0)
    return y_true.astype(np.int64), y_prob


class ClassificationReport(keras.callbacks.Callback):
    """Adds `val_macro_f1`, `val_balanced_accuracy` and `val_recall_<class>` to each epoch's logs.

    Scores come from scikit-learn on predictions for `validation_data` (`(x, y)` arrays or a
    finite `tf.data.Dataset` of `(x, y)` batches). `val_macro_f1` averages over all classes
    (`class_names`, else the model's outputs), absent ones scoring 0, as `kseq.metrics.MacroF1`.
    Place it before the callbacks that should see them. Its keys overwrite same-named ones from
    `fit(validation_data=...)`.
    """

    def __init__(self, validation_data, class_names=None, batch_size: int = 256):
        super().__init__()
        self.validation_data = validation_data
        self.class_names = list(class_names) if class_names is not None else None
        self.batch_size = batch_size

    def on_epoch_end(self, epoch, logs=None):
        y_true, y_prob = _predict(self.model, self.validation_data, self.batch_size)
        y_pred = np.argmax(y_prob, axis=-1)
        names = self.class_names or list(range(y_prob.shape[-1]))
        labels = list(range(len(names)))
        recalls = skm.recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
        with warnings.catch_warnings():
            # sklearn warns when predictions hold classes absent from y_true: common early on.
            warnings.simplefilter("ignore", UserWarning)
            balanced = skm.balanced_accuracy_score(y_true, y_pred)
        logs["val_macro_f1"] = float(skm.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))
        logs["val_balanced_accuracy"] = float(balanced)
        for name, recall in zip(names, recalls):
            logs[f"val_recall_{name}"] = float(recall)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """End training with an `InputError` the first batch whose loss is NaN or infinite.

    Keras' `TerminateOnNaN` only stops, and the run would then be evaluated and written with
    weights that hold NaN; a non-finite loss means the data or the learning rate is wrong, so
    `kseq.training.trainer.train` ends the run with one `error:` line and leaves no run folder.
    """

    def __init__(self):
        super().__init__()
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise InputError(f"training loss is {float(loss)} at epoch {self.epoch + 1}, batch {batch + 1}; "
                             "expected finite values: check the data for extreme values and lower "
                             "optimizer.learning_rate")


class _Replay:
    """Mixin for a monitoring callback resumed after an interruption: `on_train_begin` resets its
    state (Keras' way), then replays the monitored values the interrupted run logged (`logged`, one
    per completed epoch) through the callback's own `on_epoch_end`, so its best value, patience
    count and cooldown are those an uninterrupted run would have. The learning rate is left as
    `BackupAndRestore` restored it (already reduced where the interrupted run reduced it)."""

    def __init__(self, *args, logged=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.logged = [float(v) for v in logged]

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if not self.logged:
            return
        reduces = isinstance(self, keras.callbacks.ReduceLROnPlateau)  # replaying must not reduce it again
        restored = float(ops.convert_to_numpy(self.model.optimizer.learning_rate)) if reduces else None
        for epoch, value in enumerate(self.logged):
            super().on_epoch_end(epoch, {self.monitor: value})
        if reduces:
            self.model.optimizer.learning_rate = restored
        self.model.stop_training = False


class _CertainPlateau(keras.callbacks.EarlyStopping):
    """`EarlyStopping` that also stops once no epoch can improve on the best: `bound` is the best
    value the monitor can take (0 for a loss, 1 for an accuracy or an F1 score; None: not known, Keras'
    behaviour), and when even the monitor at its bound would not count as an improvement (the best
    value within `min_delta` of it), the patience left can only run out, so waiting for it trains
    epochs whose outcome is already decided. A training loss under `min_delta` (kseq's recipes:
    `FLAT_LOSS`, 1e-3) is such a plateau, and so is a validation score of 1.0."""

    def __init__(self, *args, bound: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.bound = None if bound is None else float(bound)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if (self.bound is not None and self.best is not None and not self.model.stop_training
                and not bool(self._is_improvement(self.bound, self.best))):
            self.stopped_epoch = epoch
            self.model.stop_training = True


class ResumableEarlyStopping(_Replay, _CertainPlateau):
    """`EarlyStopping` that counts its patience across a `--resume` (see `_Replay`) and stops as soon
    as the plateau is certain (see `_CertainPlateau`, with `bound`)."""


class ResumableReduceLROnPlateau(_Replay, keras.callbacks.ReduceLROnPlateau):
    """`ReduceLROnPlateau` that counts its patience across a `--resume` (see `_Replay`)."""


class _FinishOnPlateau(_CertainPlateau):
    """`EarlyStopping` whose plateau, waited out or certain, finishes the learning-rate schedule
    instead of stopping at once (`AnnealOnPlateau`)."""

    def __init__(self, schedule: "WarmupCosineDecay", steps_per_epoch: int, epochs: int, **kwargs):
        super().__init__(**kwargs)
        self.schedule, self.steps_per_epoch, self.epochs = schedule, int(steps_per_epoch), int(epochs)
        self.end_epoch = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.end_epoch = None
        end = self.schedule.warmup_steps + self.schedule.decay_steps
        self.schedule.finish_early(end, end)  # the whole curve, until a plateau says otherwise

    def on_epoch_end(self, epoch, logs=None):
        if self.end_epoch is None:
            super().on_epoch_end(epoch, logs)
            if self.model.stop_training:  # a plateau: anneal over the epochs the rate left asks for, then end
                self.model.stop_training = False
                step = (epoch + 1) * self.steps_per_epoch
                share = float(ops.convert_to_numpy(self.schedule(step))) / self.schedule.peak_learning_rate
                self.end_epoch = min(epoch + 1 + max(1, math.ceil(self.patience * share)), self.epochs)
                if self.end_epoch < self.epochs:
                    self.schedule.finish_early(step, self.end_epoch * self.steps_per_epoch)
        if self.end_epoch is not None and epoch + 1 >= self.end_epoch:
            self.stopped_epoch = epoch
            self.model.stop_training = True


class AnnealOnPlateau(_Replay, _FinishOnPlateau):
    """Early stopping for a run that keeps its final weights under `WarmupCosineDecay`: when
    `monitor` has not improved for `patience` epochs, or cannot improve any more (`bound`, see
    `_CertainPlateau`), the rest of the schedule is followed over `patience` more epochs times the
    share of the peak rate left (`WarmupCosineDecay.finish_early`; at least one, at most to the
    budget's end), and the run ends there, annealed.

    Why not stop at once: a plateau of the training loss can come while the rate is still high,
    where the loss is noisy (batches of two series on small data), and weights taken there are
    not those the schedule would have settled into. Coffee, `resnet`, no validation split: a
    plain stop at epoch 66 of 143, the rate at 0.6 of its peak, left 96.4% test accuracy,
    training to the end 100.0% (benchmarks/README.md, section vs_tsai). The anneal is as long
    as the rate left asks: a plateau near the curve's end, where the rate is almost zero,
    still ends the run almost at once. Resumable like `ResumableEarlyStopping`: replaying the
    interrupted epochs finishes the schedule where the uninterrupted run did.

    Example:

        schedule = WarmupCosineDecay(1e-3, warmup_steps=50, decay_steps=950)
        model.compile(optimizer=keras.optimizers.AdamW(schedule), loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=100, steps_per_epoch=10,
                  callbacks=[AnnealOnPlateau(schedule, steps_per_epoch=10, epochs=100, monitor="loss", patience=25,
                                             min_delta=1e-3, bound=0.0)])
    """


class PeriodicBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that writes its backup at an epoch's end only once `interval` seconds
    have passed since training started or since its last backup (0: every epoch, Keras' way).

    A backup is the model's and the optimizer's whole state; on small data, where an epoch is
    ten steps of a few milliseconds, writing it every epoch took as long as the steps themselves
    (Chinatown_subset's `resnet`, 200 epochs: `fit` took 55.6 s for 27.9 s of steps, and 26.0 s
    with this backup and no checkpoint; benchmarks/README.md, section vs_tsai). An interrupted
    run resumes from its last backup and trains the epochs after it again, on the same batches
    (they depend on the seed and the epoch alone), so it still ends exactly as an uninterrupted
    one; what an interruption costs is at most `interval` seconds of training.
    """

    def __init__(self, backup_dir, interval: float = 0.0):
        super().__init__(backup_dir)
        self.interval = float(interval)
        self._due = 0.0

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._due = time.monotonic() + self.interval

    def on_epoch_end(self, epoch, logs=None):
        if time.monotonic() >= self._due:
            super().on_epoch_end(epoch, logs)
            self._due = time.monotonic() + self.interval


class StepTimer(keras.callbacks.Callback):
    """Seconds spent in training steps alone: the sum, over `fit`'s training batches, of the time
    from `on_train_batch_begin` to `on_train_batch_end` (fetching the batch and the step itself).

    Validation, other callbacks' epoch-end work and checkpointing fall outside those intervals,
    so `samples / seconds` is training throughput, not the wall time of `fit` per sample.
    """

    def __init__(self):
        super().__init__()
        self.seconds = 0.0
        self._started = None

    def on_train_batch_begin(self, batch, logs=None):
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds += time.perf_counter() - self._started


class ConfusionMatrixLogger(keras.callbacks.Callback):
    """Every `every` epochs, draws the validation confusion matrix to a PNG in `log_dir`.

    Files are named `confusion_matrix_epoch_{epoch:03d}.png` (epochs counted from 1). With
    `tensorboard=True` (needs the `tensorboard` package) the image also goes to a TensorBoard
    event file in `log_dir`, at step `epoch` as Keras' `TensorBoard` callback counts.
    """

    def __init__(
        self,
        validation_data,
        class_names,
        log_dir,
        every: int = 1,
        tensorboard: bool = False,
        batch_size: int = 256,
    ):
        super().__init__()
        self.validation_data = validation_data
        self.class_names = list(class_names)
        self.log_dir = Path(log_dir)
        self.every = every
        self.tensorboard = tensorboard
        self.batch_size = batch_size
        self._writer = None

    def on_train_begin(self, logs=None):
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.tensorboard:
            self._writer = tf.summary.create_file_writer(str(self.log_dir))

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        y_true, y_prob = _predict(self.model, self.validation_data, self.batch_size)
        cm = skm.confusion_matrix(y_true, np.argmax(y_prob, axis=-1), labels=list(range(len(self.class_names))))
        path = plot_confusion_matrix(
            cm,
            self.class_names,
            self.log_dir / f"confusion_matrix_epoch_{epoch + 1:03d}.png",
            title=f"epoch {epoch + 1}",
        )
        if self._writer is not None:
            image = tf.image.decode_png(path.read_bytes(), channels=4)
            with self._writer.as_default():
                tf.summary.image("confusion_matrix", image[None], step=epoch)
            self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


@keras.saving.register_keras_serializable(package="kseq")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from `initial_learning_rate` to `peak_learning_rate` over `warmup_steps`,
    then cosine decay to `alpha * peak_learning_rate` over the next `decay_steps`, then flat.

    The same curve as `keras.optimizers.schedules.CosineDecay` with `warmup_target`, named by
    its peak, which is the number one tunes. `finish_early` can end the curve sooner while
    training runs (`AnnealOnPlateau`); `finish_from` and `finish_at` are where it was told to.

    Example:

        schedule = WarmupCosineDecay(1e-3, warmup_steps=100, decay_steps=1900)
        optimizer = keras.optimizers.AdamW(learning_rate=schedule)
    """

    def __init__(
        self,
        peak_learning_rate: float,
        warmup_steps: int,
        decay_steps: int,
        alpha: float = 0.0,
        initial_learning_rate: float = 0.0,
        finish_from: int | None = None,
        finish_at: int | None = None,
    ):
        if warmup_steps < 0 or decay_steps <= 0:
            raise ValueError(
                f"need warmup_steps >= 0 and decay_steps > 0; got {warmup_steps}, {decay_steps}."
            )
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.decay_steps = int(decay_steps)
        self.alpha = float(alpha)
        self.initial_learning_rate = float(initial_learning_rate)
        # Read by the compiled training step, so `finish_early` takes effect on its next call.
        self._finish = keras.Variable([0.0, 0.0], trainable=False, dtype="float32", name="finish")
        end = self.warmup_steps + self.decay_steps
        self.finish_early(end if finish_from is None else finish_from, end if finish_at is None else finish_at)

    def finish_early(self, step: int, end_step: int) -> None:
        """Reach the curve's end at `end_step` instead of `warmup_steps + decay_steps`: from `step`
        on, the rest of the curve is followed `(end - step) / (end_step - step)` times faster.

        A run that stops before its budget then still ends annealed, at the same rate as a run
        that trained to the end, not at whatever rate the curve had reached. `finish_early(end, end)`
        (the budget's end) is the unchanged curve.
        """
        end = self.warmup_steps + self.decay_steps
        if not self.warmup_steps <= step <= end_step <= end or (step == end_step and end_step != end):
            raise ValueError(f"need warmup_steps <= step < end_step <= {end} (or both {end}); "
                             f"got step={step}, end_step={end_step}.")
        speed = 1.0 if step == end_step else (end - step) / (end_step - step)
        self._finish.assign([float(step), speed])

    @property
    def finish_from(self) -> int:
        return int(round(float(ops.convert_to_numpy(self._finish)[0])))

    @property
    def finish_at(self) -> int:
        step, speed = (float(v) for v in ops.convert_to_numpy(self._finish))
        return int(round(step + (self.warmup_steps + self.decay_steps - step) / speed))

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = self.initial_learning_rate + (
            self.peak_learning_rate - self.initial_learning_rate
        ) * step / max(self.warmup_steps, 1)
        start, speed = self._finish[0], self._finish[1]
        step_on_curve = ops.where(step < start, step, start + (step - start) * speed)
        progress = ops.clip((step_on_curve - self.warmup_steps) / self.decay_steps, 0.0, 1.0)
        cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
        decayed = self.peak_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)
        return ops.where(step < self.warmup_steps, warmup, decayed)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "initial_learning_rate": self.initial_learning_rate,
            "finish_from": self.finish_from,
            "finish_at": self.finish_at,
        }
