"""`train(config) -> Run`: the one place that builds, compiles and fits a model from a config."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from kseq.utils.scores import softmax
from kseq.serving import decisions
from kseq.training import distribute, mixed_precision, recipe, run_folder
from kseq.reporting import evaluation, saliency
from kseq.callbacks import (AnnealOnPlateau, PeriodicBackup, ResumableEarlyStopping, ResumableReduceLROnPlateau,
                            StepTimer, StopOnNonFiniteLoss, WarmupCosineDecay)
from kseq.config import CHOICES, load_config
from kseq.data.loading import check_filled, load_datasets, stratified_split_index
from kseq.data.pipeline import bucket_lengths, length_grouping, length_order, make_eval_dataset, make_train_dataset
from kseq.data.preprocess import fill_gaps, fit_feature_transform, windows_to_examples
from kseq.data.sampling import expected_weights
from kseq.data.sequence_set import SequenceSet, Splits, signal_lengths
from kseq.data.shards import ShardedFeatures
from kseq.utils.errors import InputError
from kseq.utils.files import write_text
from kseq.losses import balanced_class_weights, class_priors, get_loss
from kseq.metrics import BalancedAccuracy, MacroF1
from kseq.models import accepts_any_length, build_model, model_names
from kseq.models.inference import predict_batches
from kseq.models.registry import model_arguments
from kseq.models.layers import all_layers
from kseq.models.preprocessing import (FeatureTransform, LengthFeature, LengthFraction, normalized_channels,
                                       sequence_classifier, with_feature_transform, with_normalization)
from kseq.models.random_kernels import adapt_and_fit_head, holds_random_kernels

STRATEGIES = CHOICES["train", "strategy"]


@dataclasses.dataclass
class Run:
    """A finished run: its folder, resolved config, test metrics, per-epoch history and model.

    On a multi-worker run's other workers `directory` is None and `metrics` empty: the chief
    writes the run."""

    directory: Path | None
    config: dict
    metrics: dict
    history: dict
    model: keras.Model


def make_strategy(name: str) -> tf.distribute.Strategy:
    """`default` (one device), `mirrored` (all local GPUs) or `multi_worker` (TF_CONFIG cluster)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return distribute.multi_worker_strategy()
    raise InputError(f"train.strategy: unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")


def training_seed(train_cfg: dict) -> int:
    """The seed of the weights and batches: `train.seed` itself, or one derived from it per `train.restart`.

    The data, its splits and the synthetic generators always take `train.seed`, so restarts of one
    experiment share their data and test split.
    """
    if not train_cfg["restart"]:
        return int(train_cfg["seed"])
    return int(np.random.SeedSequence([train_cfg["seed"], train_cfg["restart"]]).generate_state(1)[0] % 2**31)


def prepare_data(config: dict) -> Splits:
    """Load the files `[data]` names, then `prepare_arrays`.

    Shards (`data.source = "shards"`) are not loaded: their splits stream from disk (`kseq.data.shards`)."""
    if config["data"]["source"] == "shards":
        from kseq.data import shards

        return shards.prepare(config)
    train_set, test_set = load_datasets(config["data"], config["train"]["seed"])
    if (train_set.y < 0).any():
        raise InputError("training data: some sequences have no label (give --labels)")
    if (test_set.y < 0).any():
        raise InputError("test data: some sequences have no label (give --test-labels)")
    return prepare_arrays(config, train_set, test_set)


def prepare_arrays(config: dict, train_set: SequenceSet, test_set: SequenceSet | None = None,
                   validation_set: SequenceSet | None = None) -> Splits:
    """Gap-fill, hold out the validation split, and fit the feature transform on the fit split only.

    The validation split is `validation_set` when given, else `data.validation_split` of
    `train_set` (stratified; resolved here when `"auto"`, see `kseq.training.recipe`, and set in
    `config["data"]` to the number used), else none.
    """
    seed, pre = config["train"]["seed"], config["preprocess"]
    train_set, test_set, validation_set = (
        None if s is None else dataclasses.replace(s, x=fill_gaps(s.x, pre["fill_gaps"], pre["spline_order"]))
        for s in (train_set, test_set, validation_set)
    )
    for data, name in ((train_set, "training data"), (test_set, "test data"), (validation_set, "validation data")):
        if data is not None:
            check_filled(data, name, pre["fill_gaps"])
    fit_index = np.arange(len(train_set))
    if validation_set is not None:
        config["data"]["validation_split"] = 0.0
        fit_set, val_set = train_set, validation_set
    else:
        config["data"]["validation_split"] = recipe.resolve_validation(config, train_set.y)
        fit_set, val_set = train_set, None
        if config["data"]["validation_split"]:
            fit_index, held = stratified_split_index(train_set.y, config["data"]["validation_split"], seed)
            fit_set, val_set = train_set.subset(fit_index), train_set.subset(held)
    transform = None
    if pre["drop_constant"] or pre["correlation_threshold"] or pre["merge"] or pre["groups"]:
        names = train_set.feature_names or tuple(f"f{i}" for i in range(train_set.x.shape[2]))
        transform = fit_feature_transform(
            fit_set.x,
            names,
            drop_constant=pre["drop_constant"],
            correlation_threshold=pre["correlation_threshold"] or None,
            merge=pre["merge"] or None,
            groups=pre["groups"] or None,
        )
    return Splits(fit_set, val_set, test_set, transform, fit_index)


def resolve_recipe(config: dict, fit_set: SequenceSet, val_set: SequenceSet | None, announce: bool = True) -> dict:
    """`config` with every `"auto"` resolved for these splits (`kseq.training.recipe`); prints the `resolved:` line."""
    x_fit, _ = to_examples(fit_set, config["preprocess"])
    config = {**config, "preprocess": {**config["preprocess"],
                                       "normalize": recipe.resolve_normalize(config, x_fit)}}
    config = recipe.resolve_imbalance(config, fit_set.y, validation=val_set is not None)
    any_length = takes_any_length(config, x_fit)
    lengths = fit_set.real_lengths() if any_length else None
    unequal = lengths is not None and lengths.min() < lengths.max()
    real_steps = None if lengths is None else float(lengths.mean())
    config = recipe.resolve(config, num_train=len(x_fit), sequence_length=x_fit.shape[1],
                            validation=val_set is not None, real_steps=real_steps,
                            native_bfloat16=mixed_precision.native_bfloat16(), unequal_lengths=unequal,
                            accelerator=bool(tf.config.list_physical_devices("GPU")))
    grouping = None
    if unequal and not recipe.solves_head(config):  # batches grouped by length: how, and why
        bucket = bucket_lengths(lengths, x_fit.shape[1], len(x_fit))
        grouping = length_grouping(bucket, fit_set.y, int(config["sampler"]["batch_size"]))
    config = recipe.resolve_length_scale(config, grouping)
    if announce:
        print(recipe.summary(config, num_train=len(x_fit), num_validation=0 if val_set is None else len(val_set),
                             length_grouping=grouping), flush=True)
    return config


def to_examples(data: SequenceSet, pre: dict) -> tuple[np.ndarray, np.ndarray]:
    """Whole sequences, or sliding windows labelled with their sequence when `preprocess.window` is set."""
    if not pre["window"]:
        return data.x, data.y
    xw, yw, _ = windows_to_examples(data.x, data.y, pre["window"], pre["stride"] or pre["window"])
    return xw, yw


def build_window_model(config: dict, input_shape, num_classes: int, transform: dict | None,
                       x_fit: np.ndarray | None = None) -> keras.Model:
    """The registered model, behind the normalisation `preprocess.normalize` names and the fitted
    feature transform when set.

    Raw input -> `FeatureTransform` -> normalisation -> model: all in-graph, so the saved model
    takes raw sequences. The `"channel"` normalisations, `LengthFeature` and `LengthFraction`
    (`model.length_feature`, `model.length_scale`) are adapted on `x_fit` (the raw training
    examples, passed through the transform first); without it their statistics stay as built (a
    copy whose weights are set afterwards).
    """
    hp = {k: v for k, v in config["model"].items() if k != "name"}
    name = config["model"]["name"]
    if "seed" not in hp and name in model_names() and "seed" in (model_arguments(name) or ()):
        # A model's own random parameters (the random-kernel transforms') follow the run's seed, as
        # initial weights do: `--seed` and `train.restart` give different kernels, not copies.
        hp["seed"] = training_seed(config["train"])
    kind = config["preprocess"]["normalize"]
    streamed = x_fit is not None and not isinstance(x_fit, np.ndarray)  # shards, read from disk
    if streamed and "channel" in kind:
        raise InputError(f"preprocess.normalize = {kind!r} is fitted on sequences in memory; sharded "
                         "data streams from disk: use 'series' or 'none'")
    for key in ("length_feature", "length_scale"):
        if streamed and hp.get(key):
            raise InputError(f"model.{key} = true is fitted on the training series' lengths in memory; "
                             "sharded data streams from disk: use false or 'auto'")
    if transform is not None:
        input_shape = (input_shape[0], len(transform["output_features"]))
        if x_fit is not None:
            x_fit = keras.ops.convert_to_numpy(FeatureTransform(transform)(x_fit))
    network_input = (*input_shape[:-1], normalized_channels(kind, input_shape[-1]))
    try:
        with mixed_precision.policy_scope(config["train"]["dtype_policy"]):  # the network's, not its normalisation's
            model = build_model(name, network_input, num_classes, **hp)
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"[model]: {e}") from None
    if x_fit is not None and not streamed:
        for layer in all_layers(model):
            if isinstance(layer, (LengthFeature, LengthFraction)):
                layer.adapt(x_fit)
    random_kernels = holds_random_kernels(model)
    if random_kernels and config["train"]["dtype_policy"] != "float32":
        raise InputError(f"train.dtype_policy = {config['train']['dtype_policy']!r}: model.name = {name!r} holds "
                         "random-kernel transforms, which compute in float32 (their features count comparisons "
                         "with biases that bfloat16 would round); use 'float32'")
    if random_kernels and streamed:
        raise InputError(f"model.name = {name!r} fits its random kernels (and a ridge head) on series in memory; "
                         "sharded data streams from disk: pass the data file itself as --data, or train a "
                         "network (resnet, inception_time, ...) on the shards")
    if kind != "none":
        model = with_normalization(model, kind, x_fit, name=f"{model.name}_normalized")
    if transform is None:
        return model
    return with_feature_transform(model, transform, name=f"{model.name}_with_transform")


def learning_rate(opt: dict, steps_per_epoch: int, epochs: int) -> float | WarmupCosineDecay:
    """`optimizer.learning_rate` as a constant (lowered on plateau) or a warmup-then-cosine schedule
    over the run's `steps_per_epoch * epochs` steps (`optimizer.schedule`)."""
    if opt["schedule"] == "cosine":
        total = steps_per_epoch * epochs
        warmup = max(1, total // 20)
        return WarmupCosineDecay(peak_learning_rate=opt["learning_rate"], warmup_steps=warmup,
                                 decay_steps=total - warmup)
    if opt["schedule"] != "constant":
        raise InputError(f"optimizer.schedule: expected 'constant' or 'cosine'; got {opt['schedule']!r}")
    return float(opt["learning_rate"])


def make_optimizer(opt: dict, rate: float | WarmupCosineDecay) -> keras.optimizers.Optimizer:
    """AdamW at `rate` (from `learning_rate`)."""
    if opt["name"] != "adamw":
        raise InputError(f"optimizer.name: only 'adamw' is supported; got {opt['name']!r}")
    return keras.optimizers.AdamW(learning_rate=rate, weight_decay=opt["weight_decay"])


def make_loss(loss_config: dict, y_fit: np.ndarray, num_classes: int) -> keras.losses.Loss:
    kwargs = {k: v for k, v in loss_config.items() if k != "name"}
    if kwargs.get("class_weights") == "balanced":
        kwargs["class_weights"] = balanced_class_weights(y_fit, num_classes).tolist()
    if loss_config["name"] == "logit_adjusted" and "class_priors" not in kwargs:
        kwargs["class_priors"] = class_priors(y_fit, num_classes).tolist()  # the training set's, as shifted
    if loss_config["name"] == "focal":
        kwargs["num_classes"] = num_classes  # so a per-class alpha of the wrong length fails here
    try:
        return get_loss(loss_config["name"], **kwargs)
    except (TypeError, ValueError) as e:
        raise InputError(f"[loss]: {e}") from None


def completed_epochs(partial: Path) -> int:
    """Epochs an interrupted run completed: the epoch Keras' `BackupAndRestore` resumes from,
    read from the metadata it saves next to its weights (0 when it saved none)."""
    metadata = partial / "backup" / "training_metadata.json"
    return int(json.loads(metadata.read_text())["epoch"]) if metadata.is_file() else 0


BACKUP_SECONDS = 30.0  # at most this much training between two backups of a run (`PeriodicBackup`)
BEST_WEIGHTS = "best.weights.h5"  # in a run's work folder: its best epoch's weights, read when `fit` ends


def make_callbacks(config: dict, partial: Path, resuming: bool, rate: float | WarmupCosineDecay,
                   steps_per_epoch: int) -> list[keras.callbacks.Callback]:
    """Resumable backups (`PeriodicBackup`, every `BACKUP_SECONDS`), early stopping on
    `train.monitor`, the best epoch's checkpoint when it is kept (`recipe.keeps_best_epoch`), CSV history.

    A run that keeps its final weights under the cosine schedule (`rate`) does not stop at a
    plateau but anneals first (`AnnealOnPlateau`): its final weights are the ones it returns.

    The checkpoint lives beside the backup, not in it: `BackupAndRestore` deletes its folder when
    training ends, which until 2026-12-03 took the checkpoint with it, unread, so every run ended
    on its last epoch."""
    train = config["train"]
    monitor, mode = train["monitor"], "min" if train["monitor"].endswith("loss") else "max"
    # The best value each can take (losses are >= 0; accuracy, macro-F1 and balanced accuracy <= 1):
    # reached within `min_delta`, the plateau is certain and the run stops waiting for it.
    bound = 0.0 if mode == "min" else 1.0
    history_csv = partial / "history.csv"
    best_so_far, logged = None, []
    if resuming and history_csv.exists() and history_csv.stat().st_size:
        # The epochs after the last backup are trained again: their rows go, as their results will come back.
        history = pd.read_csv(history_csv).iloc[:completed_epochs(partial)]
        write_text(history_csv, history.to_csv(index=False))
        if monitor in history:
            logged = history[monitor].tolist()  # replayed, so patience counts the interrupted epochs too
            best_so_far = float(min(logged) if mode == "min" else max(logged)) if logged else None
    # Workers of a multi-worker job must all resume from the same epoch: they back up every epoch.
    interval = 0.0 if train["strategy"] == "multi_worker" else BACKUP_SECONDS
    callbacks = [
        PeriodicBackup(str(partial / "backup"), interval),
        AnnealOnPlateau(rate, steps_per_epoch, train["epochs"], monitor=monitor, mode=mode,
                        patience=train["early_stopping_patience"], min_delta=train["min_delta"], bound=bound,
                        logged=logged)
        if recipe.anneals_on_plateau(config) else
        ResumableEarlyStopping(monitor=monitor, mode=mode, patience=train["early_stopping_patience"],
                               min_delta=train["min_delta"], bound=bound, logged=logged),
        keras.callbacks.CSVLogger(str(history_csv), append=resuming),
    ]
    if recipe.keeps_best_epoch(train):
        callbacks.insert(1, keras.callbacks.ModelCheckpoint(
            str(partial / BEST_WEIGHTS), monitor=monitor, mode=mode, save_best_only=True, save_weights_only=True,
            initial_value_threshold=best_so_far))
    if config["optimizer"]["schedule"] == "constant" and train["reduce_lr_patience"]:
        callbacks.append(ResumableReduceLROnPlateau(
            monitor=monitor, mode=mode, patience=train["reduce_lr_patience"], factor=train["reduce_lr_factor"],
            logged=logged))
    return callbacks


@dataclasses.dataclass
class Fitted:
    """What `fit` returns: the model on whole raw sequences (logits), its per-epoch history, and timings."""

    model: keras.Model
    history: dict
    epochs_run: int
    samples: int
    fit_seconds: float
    step_seconds: float


def fit(config: dict, fit_set: SequenceSet, val_set: SequenceSet | None, transform: dict | None, workdir: Path,
        *, resume: bool = False, callbacks=(), sample_weight: np.ndarray | None = None) -> Fitted:
    """The one training loop: build and compile the model a resolved `config` describes, and fit it.

    Shared by `train` (config files -> run folder) and `kseq.SequenceClassifier` (arrays).
    `workdir` holds the resumable backup, the best epoch's weights when they are kept
    (`recipe.keeps_best_epoch`; loaded at the end) and `history.csv`; with `resume`, training continues
    from the epoch its backup completed.
    `sample_weight` (per series of `fit_set`) is drawn by the `weighted` sampler.
    """
    pre, train_cfg = config["preprocess"], config["train"]
    keras.utils.set_random_seed(training_seed(train_cfg))
    x_fit, y_fit = to_examples(fit_set, pre)
    validation = None if val_set is None else to_examples(val_set, pre)
    if sample_weight is not None and len(sample_weight) != len(y_fit):
        raise InputError(f"{len(sample_weight)} sample weights for {len(y_fit)} training examples")
    num_classes = len(fit_set.class_names)
    batch_size = config["sampler"]["batch_size"]
    steps_per_epoch = math.ceil(len(y_fit) / batch_size)
    any_length = takes_any_length(config, x_fit)
    input_shape = (None, x_fit.shape[2]) if any_length else x_fit.shape[1:]
    strategy = make_strategy(train_cfg["strategy"])
    with strategy.scope():
        model = build_window_model(config, input_shape, num_classes, transform, x_fit)
        rate = learning_rate(config["optimizer"], steps_per_epoch, train_cfg["epochs"])
        model.compile(
            optimizer=make_optimizer(config["optimizer"], rate),
            loss=make_loss(config["loss"], y_fit, num_classes),
            metrics=training_metrics(num_classes),
            # Whole executions per epoch, whatever the config asks (`recipe.whole_executions`).
            steps_per_execution=recipe.whole_executions(steps_per_epoch, train_cfg["steps_per_execution"]),
            # Training only: `one_step_per_execution` recompiles the trained model with Keras' own choice.
            jit_compile="auto" if train_cfg["jit_compile"] == "keras" else train_cfg["jit_compile"],
        )
    if train_cfg["dtype_policy"] != "float32":  # served in float32: it must train on the kernels it is served with
        moved = mixed_precision.float32_where_wrong(model)
        if moved and train_cfg["verbose"] != 0:  # said once a run, not again by its out-of-fold models
            print(mixed_precision.described_in_float32(moved), flush=True)
    def batches(input_context=None):
        # Epoch e's batches depend on (seed, e) only, so a resumed run continues the stream.
        return make_train_dataset(
            x_fit, y_fit, sampler=config["sampler"]["kind"], batch_size=batch_size, seed=training_seed(train_cfg),
            target=config["sampler"]["target"], weights=sample_weight, epochs=train_cfg["epochs"],
            first_epoch=completed_epochs(workdir) if resume else 0, input_context=input_context,
            lengths=fit_set.real_lengths() if any_length else None,
        )

    try:
        if isinstance(x_fit, ShardedFeatures) and train_cfg["strategy"] == "multi_worker":
            dataset = strategy.distribute_datasets_from_function(batches)  # each worker reads its own files
        else:
            dataset = batches()
    except ValueError as e:
        raise InputError(f"[sampler]: {e}") from None
    verbose = train_cfg["verbose"]
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    step_timer = StepTimer()
    started = time.perf_counter()
    # Random-kernel models: transforms fitted by `adapt`; a ridge head is solved, with no gradient steps.
    solved = adapt_and_fit_head(
        model, x_fit, y_fit, config["model"]["head"], seed=training_seed(train_cfg),
        sample_weight=expected_weights(config["sampler"]["kind"], y_fit, config["sampler"]["target"], sample_weight),
    ) if holds_random_kernels(model) else None
    if solved is not None:
        pd.DataFrame(solved).to_csv(workdir / "history.csv", index=False)
        # Its state as a trained model's, so the saved model reloads without Keras' warning that
        # the saved optimizer holds fewer variables than the compiled one.
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)
    if solved is None and train_cfg["strategy"] == "default":
        build_training_state(model, dataset)
    epochs = [] if solved is not None else model.fit(
        dataset,
        epochs=train_cfg["epochs"],
        validation_data=None if validation is None else make_eval_dataset(
            *validation, batch_size=batch_size, lengths=val_set.real_lengths() if any_length else None),
        callbacks=[StopOnNonFiniteLoss(), step_timer,
                   *make_callbacks(config, workdir, resume, rate, steps_per_epoch), *callbacks],
        steps_per_epoch=steps_per_epoch,  # one pass of `dataset` holds all the epochs
        shuffle=False,  # the sampler already draws each epoch afresh
        verbose=verbose,
    ).epoch
    fit_seconds = time.perf_counter() - started
    one_step_per_execution(model, num_classes)
    best = workdir / BEST_WEIGHTS
    if best.exists():  # consumed here: the run folder holds the model, not its checkpoint
        model.load_weights(str(best))
        best.unlink()
    if train_cfg["strategy"] == "multi_worker" or train_cfg["dtype_policy"] != "float32":
        model = float32_copy(model, config, input_shape, num_classes, transform)
    if pre["window"]:
        model = sequence_classifier(model, fit_set.x.shape[1], fit_set.x.shape[2], pre["window"],
                                    pre["stride"] or pre["window"])
    history = pd.read_csv(workdir / "history.csv").to_dict(orient="list")  # all epochs, resumed ones too
    return Fitted(model=model, history=history, epochs_run=len(epochs),
                  samples=len(epochs) * steps_per_epoch * batch_size,
                  fit_seconds=fit_seconds, step_seconds=step_timer.seconds)


def build_training_state(model: keras.Model, dataset: tf.data.Dataset) -> None:
    """Create the loss's, the metrics' and the optimizer's variables before `fit` traces its step.

    With no distribution strategy in scope, Keras creates them inside the first trace of the
    training step, and TensorFlow traces a function that creates variables twice (once to lift
    their initialisers out of the graph, once without them). On a ResNet that second trace costs
    as much as the first, about 4 s of a run on 2 CPU cores, paid again by every out-of-fold
    model. Keras' own symbolic build (what it runs under a distribution strategy) creates them all
    from the dataset's element spec: no batch is drawn, so the seeded batches `fit` sees are the
    ones it would have seen, and nothing is computed.
    """
    model._symbolic_build(data_batch=dataset.element_spec)


def training_metrics(num_classes: int) -> list:
    """The metrics a model is compiled with: what the run's `history.csv` and progress lines show."""
    return ["accuracy", MacroF1(num_classes), BalancedAccuracy(num_classes)]


def one_step_per_execution(model: keras.Model, num_classes: int) -> None:
    """Recompile a trained `model` to run one batch per call into TensorFlow, keeping its optimizer
    (with its state) and loss.

    `steps_per_execution` pays off in training, where many tiny steps each cross into TensorFlow.
    After it, the setting would travel in `model.keras`'s compile config to every user who loads
    the model, and Keras' TensorFlow `predict` builds its graph from that many copies of the model
    (`predict_logits`): seconds of tracing before a first answer on long series.
    """
    with model.distribute_strategy.scope():
        model.compile(optimizer=model.optimizer, loss=model.loss, metrics=training_metrics(num_classes),
                      steps_per_execution=1)


def takes_any_length(config: dict, x_fit) -> bool:
    """True when the model is built for any length (input `(None, F)`) and trained on batches cut
    to their longest member: a model registered `any_length` (`kseq.models.accepts_any_length`),
    on whole sequences in memory (not windows, which have one length, nor shards)."""
    return (accepts_any_length(config["model"]["name"]) and not config["preprocess"]["window"]
            and isinstance(x_fit, np.ndarray))


def float32_copy(model: keras.Model, config: dict, input_shape, num_classes: int, transform) -> keras.Model:
    """The trained weights in the same model built in float32 outside any strategy, compiled as
    `model` is, with its optimizer's state (`model.keras` keeps it, for training on).

    A model built under `MultiWorkerMirroredStrategy` runs collectives with the other workers in
    `predict` and when saved; the copy lets the chief alone evaluate and export it. A model trained
    in `mixed_bfloat16` (`kseq.training.mixed_precision`) computes in bfloat16, which LiteRT's
    converter cannot lower; its copy evaluates, explains and serves in float32, as every other
    run's model does (its variables were float32 all along).
    """
    config = {**config, "train": {**config["train"], "dtype_policy": "float32"}}
    copy_ = build_window_model(config, input_shape, num_classes, transform)
    copy_.set_weights(model.get_weights())
    optimizer = model.optimizer.from_config(model.optimizer.get_config())
    copy_.compile(optimizer=optimizer, loss=model.loss, metrics=training_metrics(num_classes))
    optimizer.build(copy_.trainable_variables)
    for target, source in zip(optimizer.variables, model.optimizer.variables, strict=True):
        target.assign(source)
    return copy_


def predict_proba(model: keras.Model, x: np.ndarray, config: dict) -> np.ndarray:
    """Softmax probabilities of a fitted model on raw sequences, gaps filled as in training."""
    pre = config["preprocess"]
    x = fill_gaps(x, pre["fill_gaps"], pre["spline_order"])
    logits = predict_logits(model, x, config["sampler"]["batch_size"])
    return softmax(logits)


def train(config: dict, output_dir="saved_models", *, resume: Path | None = None, callbacks=(),
          run_id: str | None = None) -> Run:
    """Train the experiment `config` describes and write its run folder under `output_dir`.

    Read the data the config names (`prepare_data`), resolve its `"auto"` values, `fit`, evaluate
    on the test split, fit the `[decisions]` on the validation split (`kseq.serving.decisions`), draw the
    saliency figure (`kseq.reporting.saliency`) and write the run. `resume` is the `.partial-*` folder of an
    interrupted run: its saved config is used and training continues from its last completed
    epoch. Extra `callbacks` go to `fit` (Optuna's pruner uses this). `run_id` names the run folder (default:
    time, seed and a random tag). Bad input leaves no folder behind.
    """
    if resume is not None:
        config = load_config(str(resume / "config.toml"))
    config = copy.deepcopy(config)
    splits = prepare_data(config)
    fit_set, val_set, test_set, transform = splits.fit, splits.validation, splits.test, splits.transform
    decisions.check_settings(config["decisions"], fit_set.class_names)
    config = resolve_recipe(config, fit_set, val_set)
    chief = distribute.is_chief(config)
    partial = resume or (run_folder.start_run(output_dir, config["experiment"]["name"], config, run_id) if chief
                         else distribute.start_worker(output_dir, config))
    try:
        fitted = fit(config, fit_set, val_set, transform, partial, resume=resume is not None, callbacks=callbacks)
    except InputError:
        if resume is None:
            shutil.rmtree(partial, ignore_errors=True)
            with contextlib.suppress(OSError):  # the experiment's folder too, unless other runs are in it
                partial.parent.rmdir()
        raise
    if not chief:  # the chief evaluates and writes the run; this worker's state was temporary
        shutil.rmtree(partial, ignore_errors=True)
        return Run(directory=None, config=config, metrics={}, history=fitted.history, model=fitted.model)
    batch_size = config["sampler"]["batch_size"]
    test_logits = predict_logits(fitted.model, test_set.x, batch_size)  # once: metrics, decisions, saliency
    metrics = evaluate_on_test(test_logits, test_set)
    metrics.update(throughput(fitted.samples, fitted.fit_seconds, fitted.step_seconds))
    metrics["epochs"] = len(fitted.history.get("epoch", []))
    decision, fitted_decisions = fit_decisions(config, fitted.model, fit_set, val_set, transform, test_logits, test_set)
    metrics.update(fitted_decisions)
    # Shards stream from disk: no sequences in memory to draw. Random-kernel features are step
    # functions of the input (counts of C > bias): no gradient for a saliency map to follow.
    if isinstance(test_set.x, np.ndarray) and not holds_random_kernels(fitted.model):
        saliency.plot_saliency(fitted.model, test_set, test_logits, partial / "plots" / "saliency.png")
    directory = run_folder.write_run(partial, fitted.model, metrics, fitted.history, fit_set.class_names, decision)
    return Run(directory=directory, config=config, metrics=metrics, history=fitted.history, model=fitted.model)


def fit_decisions(config: dict, model: keras.Model, fit_set: SequenceSet, val_set: SequenceSet | None,
                  transform: dict | None, test_logits: np.ndarray, test_set: SequenceSet):
    """The run's decisions (`kseq.serving.decisions.decide`) fitted on held-out logits: `model`'s
    on the validation split, else out-of-fold predictions of `fit_set` when `decisions.folds` is
    set (each fold's model a training of its own), else none. Returns `decide`'s (layer, report)."""
    val_logits, y_val, folds = None, None, None
    if val_set is not None:
        val_logits, y_val = predict_logits(model, val_set.x, config["sampler"]["batch_size"]), val_set.y
    elif config["decisions"]["folds"]:
        folds = int(config["decisions"]["folds"])
        val_logits, y_val = out_of_fold_logits(config, fit_set, transform), fit_set.y
    return decisions.decide(val_logits, y_val, test_logits, test_set.y, test_set.class_names, config["decisions"],
                            folds=folds)


def out_of_fold_logits(config: dict, fit_set: SequenceSet, transform: dict | None) -> np.ndarray:
    """Logits for every series of `fit_set` from a model that did not train on it.

    `decisions.folds` stratified folds; each fold's model is trained as the run's is (same
    resolved config, epochs and seed) on the other folds, so held-out predictions exist even
    when the data is too small for a validation split. Decisions fitted on them are then applied
    to the run's model, trained on all of `fit_set`.
    """
    from sklearn.model_selection import StratifiedKFold

    folds, seed = int(config["decisions"]["folds"]), int(config["train"]["seed"])
    batch_size = int(config["sampler"]["batch_size"])
    logits = np.zeros((len(fit_set), len(fit_set.class_names)), np.float32)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for train_index, held_index in splitter.split(np.zeros(len(fit_set)), fit_set.y):
        fold_config = copy.deepcopy(config)
        fold_config["train"]["verbose"] = 0
        with tempfile.TemporaryDirectory(prefix="kseq-fold-") as work:
            fitted = fit(fold_config, fit_set.subset(train_index), None, transform, Path(work))
        logits[held_index] = predict_logits(fitted.model, fit_set.x[held_index], batch_size)
    return logits


def throughput(samples: int, fit_seconds: float, step_seconds: float) -> dict:
    """`train_seconds`: the wall time of `fit` (validation and callbacks included);
    `train_step_seconds` and `train_samples_per_second`: training steps alone (`StepTimer`)."""
    return {"train_seconds": fit_seconds, "train_step_seconds": step_seconds,
            "train_samples_per_second": samples / step_seconds if step_seconds else 0.0}


def predict_logits(model: keras.Model, x, batch_size: int) -> np.ndarray:
    """The model's logits for `x` (an array, or shards streamed from disk), in batches.

    A model that takes any length gets the series in order of length, each batch cut to its
    longest member (trailing all-zero steps, the padding such a model ignores), and the logits
    come back in the order of `x`.

    Batch by batch (`predict_on_batch`), not `model.predict`: Keras' TensorFlow `predict` traces
    the model once per step of `steps_per_execution` into one graph, again for the last, shorter
    execution, which took 13 of 15 s to predict PigCVP's 208 test series; one batch at a time
    traces it once, whatever the model was compiled with (a member of an ensemble from a run
    folder written before `one_step_per_execution`, a user's own model). A model
    built under a strategy of several replicas keeps `predict`, which splits each batch between
    them (`predict_on_batch` would give every replica the whole batch). A fixed-length model's
    short last batch is filled up to the others' shape (`kseq.models.inference`), so it traces
    no second time.
    """
    def predict(dataset, fill: bool = False):
        if model.distribute_strategy.num_replicas_in_sync > 1:
            return model.predict(dataset, verbose=0)
        return predict_batches(model, dataset, batch_size, fill=fill)

    if model.input_shape[1] is not None or not isinstance(x, np.ndarray):
        return predict(make_eval_dataset(x, batch_size=batch_size), fill=len(x) > batch_size)
    lengths = np.maximum(signal_lengths(x), 1)
    logits = predict(make_eval_dataset(x, batch_size=batch_size, lengths=lengths))
    in_order = np.empty_like(logits)
    in_order[length_order(lengths)] = logits
    return in_order


def evaluate_on_test(test_logits: np.ndarray, test_set: SequenceSet) -> dict:
    """`evaluation.report` of the softmax probabilities of the model's logits on the test split."""
    probabilities = softmax(test_logits)
    return evaluation.report(test_set.y, probabilities, test_set.class_names)
