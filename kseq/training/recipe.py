"""Recipes that adapt to the data: resolve a config's `"auto"` values once the training set is known.

The generic experiments (`resnet`, `fcn`, `inception_time`, `cnn`, `gru`) leave the values that
depend on the data as `"auto"`; a user's dataset may hold 20 series or 80,000, 24 steps or
2,000, and no fixed batch size, epoch count or validation split suits both ends. Every value is
resolved to a number before training starts, printed in one line and written to the run's
`config.toml`, so a run is reproduced from its folder alone.

The rules, in the order they apply:

- `data.validation_split`: `0.1` when a stratified tenth holds at least `MIN_VALIDATION_PER_CLASS`
  series of every class, else `0`: on the UCR archive's tens of series a validation split of a
  handful would choose the "best" epoch by noise and take series away from training. With no
  validation, a run keeps its final weights, where the `cosine` schedule has annealed the rate to
  zero (`keeps_best_epoch`). The published protocols (Wang et al. 2017; Ismail Fawaz et al.
  2019) keep the epoch with the lowest training loss instead, under a rate that never anneals;
  every figure of this project's real-data table was measured with the final weights.
- `sampler.batch_size`: `N / 10` training series, between 2 and 64, as the ResNet and
  InceptionTime reference code does (`min(N / 10, 16 or 64)`), so tiny data still takes ten
  optimizer steps an epoch. The random-kernel models take `N` series a batch, up to 64: on
  small data their batches only chunk the transform.
- `train.steps`: a budget of optimizer steps, not epochs, so 30 series and 80,000 series both get
  enough updates: `MAX_STEPS`, cut to what `COMPUTE_BUDGET` sequence-steps allow for long series
  (a 1,000 x 500 dataset trains in minutes on two CPU cores), but never under `MIN_EPOCHS` passes
  over the data. `train.epochs` becomes the whole number of epochs that covers it. The budget
  counts real steps: a model trained on batches cut to their longest member (`any_length`) pays
  for a series' own length, not the padding after it, so series of unequal length are costed by
  their mean real length (on a held-out set where 76% of the padded steps were padding, counting
  padded steps cut the run to 26 epochs, still far from converged).
- Long series, where the budget rather than `MAX_STEPS` or `MIN_EPOCHS` decides the steps: the
  batch shrinks until the budget buys `MAX_STEPS` updates, down to `LONG_SERIES_BATCH` (the
  ResNet reference's `min(N / 10, 16)`). The same compute then takes more, smaller steps, which
  is what a run short of its budget's updates lacks; data large enough for the epoch floor to
  decide keeps its batch.
- `train.dtype_policy`: `mixed_bfloat16` where a step is arithmetic rather than per-step
  overhead, a batch computing at least `ARITHMETIC_BATCH_STEPS` series-steps (batch x
  real steps), for the networks (`MIXED_PRECISION_MODELS`), on hardware that computes bfloat16
  natively (`kseq.training.mixed_precision.native_bfloat16`); else `float32`. bfloat16 halves the
  arithmetic's memory traffic and doubles its vector width, but not the op dispatch that most of
  a step of a few tiny series costs. Whole `resnet` runs on an AMD AVX-512 BF16 machine, the
  same test figures either way: WatchExercise (9 x about 1,500 real steps a batch) 592 -> 396 s,
  PigCVP (10 x 2,000) 492 -> 380 s, Trace (10 x 275) 173 -> 120 s, Covid3Month_disc (14 x 84)
  97 -> 78 s (`fcn`: the same figures on WatchExercise, 288 -> 212 s, and Trace, 91 -> 66 s;
  PigCVP 51.0% -> 52.4%, three test series of 208, 265 -> 180 s; Covid3Month_disc 65.6% ->
  62.3%, 59 -> 42 s, but 65.0% against 64.5% over seeds 0-2). Below the threshold, whole runs by
  hand: Coffee (2 x 286) 59 -> 59 s, nothing; Chinatown_subset (2 x 24) 40 -> 34 s, but one test
  series of 22 lost. A step of either network ran 1.3-1.5x faster in bfloat16 from Trace's batch
  up, 1.2x on those two (`benchmarks/mixed_precision.py`), so below the threshold the gain is
  smallest and was not shown to keep the figures. The threshold lies between the measured shapes
  (572 and 1,176 series-steps) and was not tuned further. `inception_time` steps gained as
  much, but its WatchExercise run lost one test series of 42 (90.5% -> 88.1%) for 529 -> 497 s,
  so it keeps float32; the seeds' `cnn`, with steps of tens of milliseconds, gained 1.0-1.3x
  and was never run whole in it. The recurrent models were not measured in it and keep float32;
  the random-kernel models take no gradient steps. The trained model is evaluated and served in
  float32 (`kseq.training.trainer.float32_copy`), so it must train on the kernels it is served
  with: on an Intel machine with AMX some bfloat16 convolutions are wrong (a WatchExercise
  `resnet` trained around its first one answered 33.3% as served, against 90.5% in float32), and
  for a day the recipes trained in float32 everywhere because of it. Now each run checks every
  layer on its machine before training and computes the wrong ones in float32
  (`kseq.training.mixed_precision.float32_where_wrong`, a line in the run's output), which keeps
  the speed and serves what trained. On that machine (AMX), against the float32 rows: `resnet`
  WatchExercise 90.5% in 508 s -> 92.9% in 374 s (its first convolution in float32), PigCVP
  90.4% in 488 s -> 88.9% in 358 s, Trace 100.0% in 124 -> 100 s, Covid3Month_disc 68.9% in 69 s
  -> 67.2% in 72 s; `fcn` the same or better on all four in 0.61-0.84x the time
  (benchmarks/README.md, section mixed_precision, "Back to bfloat16"). Over seeds 0-2: PigCVP 88.0% in
  float32 against 87.3% in bfloat16 (one test series of 208 apart at seed 1, none at seed 2),
  WatchExercise 90.5% against 92.1%.
- `train.jit_compile`: `true` (training steps compiled by XLA), on a CPU and series of one length,
  for float32 steps of the networks whose float32 steps XLA sped up at every batch measured
  (`XLA_FLOAT32_MODELS`: `cnn`, `fcn`, `resnet`), and for `inception_time` too where a step is
  per-step overhead rather than arithmetic (`XLA_MODELS`: a batch of under
  `ARITHMETIC_BATCH_STEPS` series-steps, the bfloat16 threshold from the other side); `false` on
  series of unequal lengths, whose batches, cut to their longest member, come in many lengths that
  XLA would each compile (`resnet`'s step: about 2.5 s on 2 cores, the first epoch's cost, against
  steps of milliseconds; on WatchExercise, in float32, 53 s of compilation against steps 1.12x
  faster, 4% of the run: benchmarks/README.md, section xla); else `"keras"`, Keras' own choice,
  which is XLA on a GPU (for a model whose layers it compiles) and never on a CPU. XLA fuses the
  op dispatch and the optimizer's per-variable updates that most of a small step costs, and the
  convolutions' elementwise neighbours (batch norm, activations, residual sums) on long series.
  Measured (`benchmarks/xla.py`, a float32 step, plain over XLA, 2 cores): on an Intel AVX-512
  machine with AMX, at Chinatown_subset's batch (2 x 24) `cnn` 1.65x, `fcn` 2.03x,
  `inception_time` 1.04x, `resnet` 1.95x; at Coffee's (2 x 286) 1.71x, 1.37x, 1.50x, 1.38x; at
  Trace's (10 x 275) 1.28x, 1.11x, 0.86x, 1.27x. On an Intel AVX-512 machine without bfloat16,
  where `fcn` and `resnet` train in float32 at every batch, at Trace's 1.27x, 1.14x, 0.82-0.99x,
  1.29x; at the 1,000 x 500 set's (20 x 500) 1.01x, 1.14x, 1.00x, 1.13x; at ACSF1's (10 x 1,460)
  1.22x, 1.28x, 1.14x, 1.19x; at PigCVP's (10 x 2,000) 1.35x, 1.37x, 1.09x, 1.23x; on channels,
  `cnn`, `fcn` and `resnet` at 10 x 500 x 12 1.21x, 1.26x, 1.21x and at 8 x 250 x 64 1.22x, 1.22x,
  1.32x. Where `fcn` and `resnet` train in bfloat16, XLA did not speed them up (a scratch probe:
  `resnet` 52.5 -> 56.5 ms at Trace's batch, 315 -> 322 ms at PigCVP's, `fcn` 22.2 -> 25.7 ms at
  Trace's), so only float32 steps compile. Whole `resnet` runs on the machine without bfloat16
  (benchmarks/README.md, section xla): PigCVP 651 -> 535 ms a step, 732 -> 605 s, 90.4% -> 89.9%
  (one test series of 208); Trace 116 -> 86 ms a step, 100.0% both. The recurrent models' training
  was slower under XLA (benchmarks/README.md, vs_pytorch); on a GPU nothing was measured, so Keras
  decides there. Only training compiles: the trained model is recompiled with Keras' choice
  (`kseq.training.trainer.one_step_per_execution`), so evaluation, saliency and `model.keras` are
  as before. XLA's kernels round differently, so a run's figures are those of another draw of the
  same training, not the same numbers.
- `train.monitor`: `val_macro_f1` with a validation split, the training `loss` without one; with
  a validation split the run ends on the best epoch by it, without one on its last.
- `train.early_stopping_patience`: a quarter of the epochs (at least `MIN_PATIENCE`), so a run
  that has stopped improving ends early but a slow start is not cut short. A run that keeps its
  final weights under the `cosine` schedule does not end at the plateau itself, where the rate
  may still be high and the training loss noisy: it follows the rest of the schedule over the
  patience times the share of the peak rate left, then ends (`kseq.callbacks.AnnealOnPlateau`).
  Coffee's `resnet`, stopped at once at epoch 66 of 143: 96.4% test accuracy; annealed: 100.0%.
- `train.min_delta`: `FLAT_LOSS` (1e-3 nats) on the training loss, 0 on a validation score. A
  training loss that has fitted the training set keeps creeping down by ten-thousandths, each
  one an "improvement" to Keras' default of 0, so on small data a run trained to its budget's
  end long after it had converged (Chinatown_subset's `resnet`: training accuracy 1.0 from epoch
  30, loss 0.0011 at epoch 60 and 0.0005 at epoch 200). A mean crossentropy 1e-3 lower raises
  the geometric mean of the true class's probability by 0.1%: flat, as scikit-learn's MLPs call
  a loss whose gains stay under their `tol` (1e-4 over 10 epochs; the patience here is a quarter
  of the run, so the tolerance is wider). A loss still falling, or stuck high, gains more than
  that over the patience, so hard data keeps its budget. Measured with `resnet` on the six dev
  sets (benchmarks/README.md, section vs_tsai): Chinatown_subset 42 -> 30 s, Trace 120 -> 103 s,
  WatchExercise 396 -> 363 s, PigCVP 380 -> 370 s; the same test figures on four sets and, over
  seeds 0-2, the same means within half a point on the other two. A best loss already within
  `min_delta` of zero leaves nothing a later epoch could gain (an improvement would need a
  negative loss), so the plateau is certain there, and the run anneals at once instead of first
  waiting out the patience (`bound` of `kseq.callbacks.AnnealOnPlateau`; a validation score of
  1.0 ends a run the same way, on the epoch it would have kept): Chinatown_subset's `resnet`
  141 -> 111 epochs, the same test figures. Of the dev sets' network rows, eight end sooner
  (experiments/README.md, "Since 2026-12-07, later"): the same test accuracy on six, Trace's
  `cnn` two series of 100 better, Covid3Month_disc's `gru` three of 61 worse at seed 0 (over
  seeds 0-2 a mean of 63.9% against 65.0%: one seed worse, one equal, one better).
- `train.steps_per_execution`: up to `MAX_STEPS_PER_EXECUTION` steps per call into TensorFlow,
  which amortises the per-step overhead that dominates tiny batches on a CPU; a divisor of the
  epoch's steps (`whole_executions`).
- `model.length_feature` (`resnet`, `fcn`, `inception_time`): `true` when the training series
  have unequal lengths. A model built for any length pools over each series' real steps, so its
  features do not depend on the padding, and with the padding they lose the length, which the
  published results on the archive's unequal-length sets kept (those sets were padded to one
  length with low noise, visible to the network) and which can be part of a class (a gesture's
  duration). The standardised log length (`kseq.models.preprocessing.LengthFeature`, fitted on
  the training series) joins the pooled features, one more input to the head; padding still
  changes nothing. Equal lengths would make it a constant: `false`; shards too, whose lengths
  are not in memory to fit it on (`true` there is an error). Measured with `resnet` on
  PickupGestureWiimoteZ (aeon's copy, 29-361 steps, 10 classes, 50 test series), seeds 0-3:
  68.0 / 66.0 / 64.0 / 72.0% with it against 68.0 / 64.0 / 62.0 / 72.0% without (macro-F1 0.645
  against 0.627 on average; a scratch driver's; the shipped code at 60eb771 gave 64.0 / 68.0 /
  64.0 / 64.0%); JapaneseVowels and WatchExercise in experiments/README.md.
- `model.length_scale` (`resnet`, `fcn`; `resolve_length_scale`, after the batch size): `true`
  where the training lengths give the class away, the pooled features then scaled by each
  series' length over the longest training series'. One log length beside 128 averages is a
  weak hand on PickupGestureWiimoteZ, whose gestures' durations tell them apart: 5.4 points under
  the reference's mean (65.0%), where the archive's padded copy of the same set (`*_eq_*.ts`) scores
  69.5% (seeds 0-3). With the scale the network reads the length in every feature, as the padded
  copy let it, and padding still changes nothing: 71.0% over the same seeds (`resnet`;
  `inception_time`, 79.0% without it, gained nothing and keeps `false` under "auto"). Where
  lengths tell little of the class (WatchExercise, JapaneseVowels) the scale cost test series,
  so it follows the grouping's measure, not the lengths alone.
- `model.pool_size` (`hybrid` front ends): the pooling factor that leaves the recurrent layers at
  most `MAX_RECURRENT_STEPS` steps, since a recurrent layer's cost grows with every step it runs.
- `preprocess.normalize` (`resolve_normalize`): `"series"` for univariate series and for series
  already z-normalised, else `"series+channel"`. No single transform keeps what every dataset
  needs: per-series z-normalisation (the archive's convention) keeps each channel's shape but
  erases its level and scale, which on one held-out multivariate set carry the class (80.0% with
  it, 98.9% without); raw values keep the level but leave sensor channels in physical units on
  scales a network trains badly on (WatchExercise, the issue's measurement: 85.7% raw). So a
  multivariate model sees both, concatenated along the channels: each channel z-normalised per
  series (shape) and standardised per channel with the training set's mean and standard
  deviation (`kseq.models.preprocessing.ChannelStandardization`, fitted by `adapt`, saved in the
  model: the channels' levels relative to one another, on a common scale). Both are affine maps
  of the input, so nothing is thrown away; WatchExercise, under one recipe: 91.4% with both and
  with the shape alone, over seeds 0-4 (92.9% against 88.1% at seed 0; float32, AVX2). A
  univariate series keeps the archive's convention, `"series"`: the reference code of the
  published univariate results (ResNet, InceptionTime) z-normalises every series before
  training, and a univariate level is one number per series that a small training
  set memorises rather than learns (PigCVP, two series per class and levels from 0 to 8, under one
  recipe: 80.3% with the level view, 90.4% without). Where every series already has mean 0 and
  deviation 1, a standardised copy would repeat the z-normalised one: `"series"`. The
  multivariate rule was fixed before any run; the univariate one after PigCVP's measurement, on
  the convention the published figures share. A
  univariate set whose level is the class needs `normalize = "series+channel"` set by hand.
  A choice between the views on held-out training data was tried as a probe and rejected: a
  1-NN on the training set favoured the raw levels on WatchExercise, where the network does best
  with both, so it would have thrown the shape away.
- `sampler.kind` and `decisions.folds` (`resolve_imbalance`): when the largest class is at least
  `IMBALANCE_RATIO` times the smallest, decisions (`kseq.serving.decisions`: per-class offsets
  and a temperature) fitted on held-out predictions. With a validation split (data large enough
  for one), they are fitted on it, and batches are class-balanced (the `rejection` sampler, which
  emulates PyTorch's `WeightedRandomSampler`): a run over large data sees each series a few times,
  and balanced batches are what the seed's heartbeat pipeline trained on. Without one (small
  data), they are fitted on out-of-fold predictions of the training split from
  `min(MAX_DECISION_FOLDS, smallest class)` extra models (`trainer.out_of_fold_logits`), and the
  loss is weighted by class (`class_weight`) over plainly shuffled batches: resampling a
  minority class of a few series mostly repeats them. Measured (`benchmarks/imbalance.py`,
  Covid3Month_disc test macro-F1, one seed, 61 test series), at imbalance ratio 10: plain
  shuffling 0.424, with the out-of-fold decisions 0.434, class weights 0.543, balanced batches
  0.445, balanced batches and focal loss 0.545. Class weights gained most for one training; an
  earlier measurement, before runs annealed at a plateau (`AnnealOnPlateau`), had ranked them
  lower (0.479 against plain 0.464 and plain with the decisions 0.529), when a run could stop
  at a high rate. As the set is (ratio 2.6) the tools cost: plain 0.620, plain with the
  decisions 0.511 (their fold models, fitted to zero loss, needed a temperature of 6.8); before
  the anneal, plain 0.643, with the decisions 0.612, class weights 0.551. So the threshold,
  `IMBALANCE_RATIO`: the decisions lose at 2.6 (offsets fitted on a hundred-odd out-of-fold
  predictions are noisy, and a mild imbalance barely biases the argmax) and gain at 10; read
  linearly in the log of the ratio, their gain crosses zero at 4 in the first measurement and at
  9 in the second, and 9 is where KEEL's imbalanced-data archive (Fernandez et al.) starts to
  call a set "highly" imbalanced. Below it the data is shuffled plainly and keeps the argmax,
  with no extra models to train (the folds cost three more trainings, four times a run's time).
  Over seeds 0-2 (subsample and training), at ratio 10: plain 0.440, class weights 0.480, the
  default 0.510 (above plain on every seed); seeds move a cell by up to 0.14. Rerun since the
  length feature and the certain plateau, over ten subsamples: plain 0.480, class weights 0.492,
  the default 0.440: the out-of-fold offsets, fitted to fold models that each saw two thirds of
  a seven-series minority, over-corrected the model trained on all seven. So out-of-fold offsets
  now need `MIN_VALIDATION_SUPPORT` series of every class in each fold (`kseq.serving.decisions`),
  a validation split's bar, else the temperature alone: the default 0.492 over the same ten
  (benchmarks/README.md#imbalance). Logit adjustment (`loss.name = "logit_adjusted"`, Menon et
  al. 2021), which keeps acting at zero training error where class weights fade, scored 0.498
  over the same ten: 0.006 above the class weights, well inside the seeds' spread, not enough
  to change the default for.
  The random-kernel models' ridge head is solved, not trained on batches: it takes the sampler's
  weighting as weights on each series' error (`kseq.data.sampling.expected_weights`; class
  weights are scikit-learn's `class_weight="balanced"`), and their configs fit no decisions
  (`decisions.folds = 0`): over ten subsamples of Covid3Month_disc at ratio 10 the class weights
  gained 0.020 macro-F1 over the plain ridge, and out-of-fold decisions on top lost 0.015.
- `model.head` (the random-kernel models, `minirocket` and `multirocket_hydra`; "auto" when not
  given): `"ridge"`, solved in closed form with leave-one-out choice of its penalty, below
  `RIDGE_MAX_SERIES` training series, else `"logistic"`, trained by gradient with kseq's samplers
  and losses. The MiniRocket paper's advice: ridge is the more accurate on small data, but its
  eigendecomposition grows with the cube of the series count, while logistic regression scales
  linearly (`kseq.models.random_kernels`).

The learning-rate policy is the config's `optimizer.schedule`; the generic experiments use
`cosine` (linear warmup over the first 5% of the budget, then cosine decay to zero), which fits a
budget known in advance: the rate anneals over exactly the steps the run will take, where
ReduceLROnPlateau would need tens of epochs of patience that a short budget does not have.
"""

from __future__ import annotations

import math

import numpy as np

from kseq.utils.errors import InputError
from kseq.utils.padding import signal_mask

AUTO = "auto"
MIN_VALIDATION_PER_CLASS = 10
VALIDATION_FRACTION = 0.1
MIN_BATCH, MAX_BATCH = 2, 64
LONG_SERIES_BATCH = 16  # the smallest batch the budget rule shrinks to (the ResNet reference's cap)
MAX_STEPS = 2000
COMPUTE_BUDGET = 2e7  # batch x time steps summed over the run: ~5 minutes of a ResNet on 2 CPU cores
MIN_EPOCHS = 10
MIN_PATIENCE = 5
FLAT_LOSS = 1e-3  # nats of mean training crossentropy: less gained over the patience is a flat loss
MAX_STEPS_PER_EXECUTION = 16
MAX_RECURRENT_STEPS = 64
RIDGE_MAX_SERIES = 10_000
RANDOM_KERNEL_MODELS = ("minirocket", "multirocket_hydra")
MIXED_PRECISION_MODELS = ("fcn", "resnet")  # the networks bfloat16 made much faster, with the same figures
XLA_MODELS = ("cnn", "fcn", "inception_time", "resnet")  # the networks whose overhead-bound steps XLA sped up
XLA_FLOAT32_MODELS = ("cnn", "fcn", "resnet")  # ... and whose float32 steps it sped up at every batch measured
LENGTH_SCALE_MODELS = ("fcn", "resnet")  # the networks the length scale helped where lengths give the class away
ARITHMETIC_BATCH_STEPS = 1_000  # batch x real steps from which a step is arithmetic, not overhead
IMBALANCE_RATIO = 9.0  # largest class over smallest from which the imbalance tools are used
MAX_DECISION_FOLDS = 3
Z_NORMALISED_TOLERANCE = 0.05  # |mean| and |std - 1| of every series' channel, for "already z-normalised"

# The keys that may be "auto", by section.
AUTO_KEYS = {
    "data": ("validation_split",),
    "preprocess": ("normalize",),
    "sampler": ("kind", "batch_size"),
    "train": ("steps", "monitor", "early_stopping_patience", "min_delta", "steps_per_execution", "dtype_policy",
              "jit_compile"),
    "model": ("pool_size", "head", "length_feature", "length_scale"),
    "decisions": ("folds",),
}


def is_auto(value) -> bool:
    return isinstance(value, str) and value == AUTO


def whole_executions(steps_per_epoch: int, at_most: int) -> int:
    """The largest number of steps per call into TensorFlow, up to `at_most`, that divides `steps_per_epoch`.

    Keras runs whole executions: at 16 steps an execution, an epoch of 20 steps runs 32, drawing
    the next epoch's batches, so epochs no longer match the sampler's (a resumed run would not
    continue the stream) and the last epochs run out of data. Example: 20 steps at most 16 -> 10.
    """
    largest = max(1, min(int(at_most), int(steps_per_epoch)))
    return next(d for d in range(largest, 0, -1) if steps_per_epoch % d == 0)


def resolve_validation(config: dict, y_train: np.ndarray) -> float:
    """`data.validation_split` as a number: `0.1` when that leaves every class enough series, else `0`."""
    split = config["data"]["validation_split"]
    if not is_auto(split):
        return float(split)
    smallest = int(class_counts(y_train).min())
    return VALIDATION_FRACTION if smallest * VALIDATION_FRACTION >= MIN_VALIDATION_PER_CLASS else 0.0


def already_z_normalised(x: np.ndarray) -> bool:
    """Whether every channel of every sequence of `x` (N, T, F) has mean 0 and standard deviation 1
    over its signal steps (trailing all-zero steps are padding), within `Z_NORMALISED_TOLERANCE`.

    Either standard deviation convention passes: the archive's `ddof=1` gives `sqrt((T-1)/T)`
    with `ddof=0`, 0.98 for 24 steps."""
    x = np.asarray(x, dtype="float64")
    signal = signal_mask(x)  # (N, T)
    count = np.maximum(signal.sum(axis=1), 1)[:, None]  # (N, 1)
    mean = (x * signal[..., None]).sum(axis=1) / count
    std = np.sqrt((((x - mean[:, None]) * signal[..., None]) ** 2).sum(axis=1) / count)
    return bool((np.abs(mean) <= Z_NORMALISED_TOLERANCE).all() and (np.abs(std - 1) <= Z_NORMALISED_TOLERANCE).all())


def resolve_normalize(config: dict, x_train) -> str:
    """`preprocess.normalize` by name: `"series"` for univariate sequences (the archive's convention)
    and sequences already z-normalised (a level channel would repeat them), else
    `"series+channel"`; a set value is kept.

    Sequences streamed from disk (shards) are not in memory to fit channel statistics on: `"series"`.
    The random-kernel models (`RANDOM_KERNEL_MODELS`) take the raw series, `"none"`: their kernels
    sum to zero and their biases are quantiles of the training series' own convolutions, so level
    and scale need no fixing (their experiments' configs say the same). The same zero sums leave a
    channel's level out of their features altogether (a constant added to a channel cancels in
    every kernel); the channels' means over the real steps, standardised and appended to the
    ridge's features at weights 1-100 (scratch probes, experiments/README.md), moved
    JapaneseVowels' `minirocket` by 0-2 test series of 370 and WatchExercise's `multirocket_hydra`
    by at most one of 42 (its errors: abduction read as forward elevation, which the levels alone
    confuse too), so no level features are added.
    """
    normalize = config["preprocess"]["normalize"]
    if not is_auto(normalize):
        return normalize
    if config["model"].get("name") in RANDOM_KERNEL_MODELS:
        return "none"
    if not isinstance(x_train, np.ndarray) or x_train.shape[-1] == 1 or already_z_normalised(x_train):
        return "series"
    return "series+channel"


def class_counts(y: np.ndarray) -> np.ndarray:
    """The count of each class present in the labels `y`: a class with no series is no class to
    balance or to hold out (its id may be a gap in the labels)."""
    counts = np.bincount(np.asarray(y))
    return counts[counts > 0]


def imbalance_ratio(y: np.ndarray) -> float:
    """The largest class's count over the smallest's, among the classes present in `y`."""
    counts = class_counts(y)
    return float(counts.max() / counts.min())


def resolve_imbalance(config: dict, y_train: np.ndarray, *, validation: bool) -> dict:
    """`sampler.kind` and `decisions.folds` as values, from the training labels (a new config).

    Imbalanced (`imbalance_ratio >= IMBALANCE_RATIO`): with a validation split, the `rejection`
    sampler (class-balanced batches), the decisions being fitted on the split; without one, a
    loss weighted by class (`class_weight`) and decisions fitted on out-of-fold predictions of
    `min(MAX_DECISION_FOLDS, smallest class)` folds. Otherwise plain shuffling and no folds.
    """
    config = {**config, "sampler": dict(config["sampler"]), "decisions": dict(config["decisions"])}
    imbalanced = imbalance_ratio(y_train) >= IMBALANCE_RATIO
    if is_auto(config["sampler"]["kind"]):
        config["sampler"]["kind"] = ("rejection" if validation else "class_weight") if imbalanced else "none"
    if is_auto(config["decisions"]["folds"]):
        smallest = int(class_counts(y_train).min())
        config["decisions"]["folds"] = min(MAX_DECISION_FOLDS, smallest) if imbalanced and not validation else 0
    return config


def resolve(config: dict, *, num_train: int, sequence_length: int, validation: bool,
            real_steps: float | None = None, native_bfloat16: bool = False, unequal_lengths: bool = False,
            accelerator: bool = False) -> dict:
    """Every remaining `"auto"` of `config` as a number, given the training examples' count and length.

    Returns a new config; `config` is left as it was. `validation` says whether a validation split
    exists (after `resolve_validation`). `real_steps`: the mean steps a training series costs when
    batches are cut to their longest member (default: `sequence_length`, every series padded).
    `native_bfloat16`: whether the hardware computes bfloat16 natively (`train.dtype_policy`).
    `unequal_lengths`: whether the model pools over real steps of training series of unequal
    lengths (`model.length_feature`), so its batches come in several lengths (`train.jit_compile`).
    `accelerator`: whether a GPU trains the model (`train.jit_compile`).
    """
    config = {section: dict(values) if isinstance(values, dict) else values for section, values in config.items()}
    sampler, train, model = config["sampler"], config["train"], config["model"]
    cost = float(real_steps or sequence_length)  # steps computed per series of a batch

    def affordable(batch: int) -> int:
        return int(COMPUTE_BUDGET // (batch * cost))

    if is_auto(sampler["batch_size"]):
        # The random-kernel models' batches only chunk their transform (no gradient steps on small data).
        random_kernels = model.get("name") in RANDOM_KERNEL_MODELS
        batch = int(np.clip(num_train if random_kernels else num_train // 10, MIN_BATCH, MAX_BATCH))
        budget_decides = MIN_EPOCHS * math.ceil(num_train / batch) <= affordable(batch) < MAX_STEPS
        if budget_decides and not random_kernels and is_auto(train["steps"]):
            batch = max(int(COMPUTE_BUDGET // (MAX_STEPS * cost)), min(batch, LONG_SERIES_BATCH))
        sampler["batch_size"] = batch
    batch_size = int(sampler["batch_size"])
    steps_per_epoch = math.ceil(num_train / batch_size)
    if is_auto(train["steps"]):
        train["steps"] = max(min(MAX_STEPS, affordable(batch_size)), MIN_EPOCHS * steps_per_epoch)
    if train["steps"]:
        train["epochs"] = math.ceil(int(train["steps"]) / steps_per_epoch)
        train["steps"] = train["epochs"] * steps_per_epoch
    if is_auto(train["dtype_policy"]):
        arithmetic = batch_size * cost >= ARITHMETIC_BATCH_STEPS
        mixed = native_bfloat16 and arithmetic and model.get("name") in MIXED_PRECISION_MODELS
        train["dtype_policy"] = "mixed_bfloat16" if mixed else "float32"
    if is_auto(train["jit_compile"]):
        overhead = batch_size * cost < ARITHMETIC_BATCH_STEPS
        sped_up = model.get("name") in (XLA_MODELS if overhead else XLA_FLOAT32_MODELS)
        if unequal_lengths:  # batches of many lengths, each of which XLA would compile
            train["jit_compile"] = False
        elif sped_up and train["dtype_policy"] == "float32" and not accelerator:
            train["jit_compile"] = True
        else:
            train["jit_compile"] = "keras"
    if is_auto(train["monitor"]):
        train["monitor"] = "val_macro_f1" if validation else "loss"
    if not validation and train["monitor"].startswith("val_"):
        raise InputError(f"train.monitor = {train['monitor']!r} needs a validation split, but "
                         "data.validation_split is 0; monitor 'loss' or set a split")
    if is_auto(train["early_stopping_patience"]):
        train["early_stopping_patience"] = max(MIN_PATIENCE, train["epochs"] // 4)
    if is_auto(train["min_delta"]):
        train["min_delta"] = FLAT_LOSS if train["monitor"] == "loss" else 0.0
    if is_auto(train["steps_per_execution"]):
        train["steps_per_execution"] = whole_executions(steps_per_epoch, MAX_STEPS_PER_EXECUTION)
    if model.get("name") in RANDOM_KERNEL_MODELS and is_auto(model.get("head", AUTO)):
        model["head"] = "ridge" if num_train < RIDGE_MAX_SERIES else "logistic"
    if is_auto(model.get("length_feature")):
        model["length_feature"] = bool(unequal_lengths)
    if is_auto(model.get("pool_size")):
        blocks = len(model.get("filters", (64, 64)))
        model["pool_size"] = max(1, math.ceil((sequence_length / MAX_RECURRENT_STEPS) ** (1 / blocks)))
    return config


def keeps_best_epoch(train: dict) -> bool:
    """Whether a run ends on its best epoch by `train.monitor` (a validation score) or on its last.

    A validation score says which epoch generalises best, so the run's weights are that epoch's
    (a checkpoint written whenever the score improves). The training loss says no such thing, and
    under the `cosine` schedule, whose rate reaches zero on the run's last step, the final epochs
    are where it settles; a run monitoring it keeps its final weights, with no checkpoint to write.
    """
    return train["monitor"].startswith("val_")


def anneals_on_plateau(config: dict) -> bool:
    """Whether a plateau of `train.monitor` anneals the `cosine` schedule before the run ends
    (`kseq.callbacks.AnnealOnPlateau`): so for a run that keeps its final weights."""
    return config["optimizer"]["schedule"] == "cosine" and not keeps_best_epoch(config["train"])


def solves_head(config: dict) -> bool:
    """Whether the model's head is solved in closed form (a random-kernel model's `"ridge"`), so no
    optimizer step, learning rate or stopping rule shapes the run."""
    return config["model"].get("name") in RANDOM_KERNEL_MODELS and config["model"].get("head") == "ridge"


def resolve_length_scale(config: dict, length_grouping: tuple[bool, float] | None) -> dict:
    """`model.length_scale` as a value (a new config): `true` for `LENGTH_SCALE_MODELS` where the
    training lengths give the class away, so that `kseq.data.pipeline.length_grouping` keeps the
    batches random (`length_grouping` is its answer; `None` where lengths are equal or no batches
    are drawn).

    Then every pooled feature is scaled by the series' length over the longest training series'
    (`kseq.models.preprocessing.LengthFraction`): the average over that window with the steps past
    a series' end counting zero, near what the archive's padded copies of its unequal-length sets
    gave the published networks. Where length tells little of the class it is a nuisance, and the
    log length beside the features (`model.length_feature`) is all the length the head gets.
    Measured with `resnet` (experiments/README.md, "Lengths that give the class away"):
    PickupGestureWiimoteZ (sorted batches would tell 0.43 of the class), seeds 0-3, 76.0 / 70.0 /
    72.0 / 66.0% against 64.0 / 68.0 / 64.0 / 64.0% (71.0% against 65.0%; the archive's padded
    copy 69.5%, the reference's mean 70.4%); `fcn`, seeds 0-1, 74.0 / 80.0% against 70.0 / 70.0%.
    `inception_time` gained nothing there: 76.0 / 76.0 / 78.0 / 78.0% against 84.0 / 74.0 / 76.0 /
    82.0% (77.0% against 79.0%), so it keeps the log length alone. Forced on where lengths tell
    little (a scratch driver), WatchExercise (0.12) lost two test series of 42 (88.1% against
    92.9%, seed 0) and JapaneseVowels (0.13) one of 370: hence only where the batches stay random.
    """
    model = config["model"]
    if not is_auto(model.get("length_scale")):
        return config
    gives_class_away = length_grouping is not None and not length_grouping[0]
    scale = gives_class_away and model.get("name") in LENGTH_SCALE_MODELS
    return {**config, "model": {**model, "length_scale": scale}}


def summary(config: dict, *, num_train: int, num_validation: int,
            length_grouping: tuple[bool, float] | None = None) -> str:
    """The one line a run prints before training: the data's size and every value that shapes training.

    `length_grouping`, for a model trained on series of unequal lengths, is
    `kseq.data.pipeline.length_grouping`'s answer: how its batches group them, and why.
    """
    train, sampler, opt = config["train"], config["sampler"], config["optimizer"]
    steps_per_epoch = math.ceil(num_train / int(sampler["batch_size"]))
    solved = solves_head(config)
    if solved:
        training = ["head=ridge (solved in closed form, its penalty by leave-one-out error: no optimizer steps)"]
        selection = f"{num_validation} validation series held out" if num_validation else "no validation split"
    else:
        training = [
            f"batch_size={sampler['batch_size']}",
            f"steps={train['epochs'] * steps_per_epoch} ({train['epochs']} epochs of {steps_per_epoch})",
            f"learning_rate={opt['learning_rate']:g} {opt['schedule']}",
            f"early_stopping_patience={train['early_stopping_patience']} epochs"
            + (f" (min_delta={train['min_delta']:g})" if train["min_delta"] else "")
            + (", then an anneal" if anneals_on_plateau(config) else ""),
        ]
        if keeps_best_epoch(train):
            selection = f"weights of the best {train['monitor']} on {num_validation} validation series"
        elif num_validation:
            selection = f"final weights ({train['monitor']} monitored on {num_validation} validation series)"
        else:
            selection = "no validation split (too few series per class): final weights"
    parts = [
        f"{num_train} training examples",
        *training,
        f"normalize={config['preprocess']['normalize']}",
        *([] if solved else [f"dtype_policy={train['dtype_policy']}"]),
        *(["training steps compiled by XLA"] if train["jit_compile"] is True and not solved else []),
        f"sampler={sampler['kind']}" + (" (as weights in the ridge)" if solved and sampler["kind"] != "none" else ""),
        selection,
    ]
    if length_grouping is not None:
        by_length, information = length_grouping
        parts.insert(-1, f"batches sorted by length (they tell {information:.2f} of the class)" if by_length else
                         f"random batches (sorted by length they would tell {information:.2f} of the class)")
    folds = config["decisions"]["folds"]
    if folds and not num_validation:
        parts.append(f"decisions on out-of-fold predictions ({folds} folds)")
    if config["model"].get("length_feature"):
        parts.insert(-1, "length_feature (each series' log length beside the pooled features)")
    if config["model"].get("length_scale"):
        parts.insert(-1, "length_scale (the pooled features times each series' length over the longest training "
                         "series')")
    if config["model"].get("name") == "hybrid":  # its pooling is the one "auto" of [model]
        parts.insert(-1, f"pool_size={config['model']['pool_size']}")
    if config["model"].get("name") in RANDOM_KERNEL_MODELS and not solved:
        parts.insert(-1, f"head={config['model']['head']}")
    return "resolved: " + ", ".join(parts)
