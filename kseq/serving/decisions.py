"""Decisions fitted on the validation split: temperature scaling and per-class offsets.

On imbalanced data the argmax of a softmax trained on rebalanced batches is rarely the decision
a user wants: it trades a minority class's precision for recall at a rate fixed by the sampler.
`fit_offsets` chooses one additive offset per class on the log-probabilities (a weight
`exp(b_c)` on the probabilities, i.e. a per-class threshold) that maximises macro-F1 on the
validation split, optionally subject to per-class recall floors ("recall of F at least 0.95").
The test split is never looked at while fitting; it only reports the result, with and without.

The search is coordinate ascent, exact in each coordinate: with the other offsets fixed, a
sample is predicted as class `c` exactly when `b_c` exceeds its margin `m_i` (its best other
score minus its score for `c`), so sorting the margins and counting prefixes gives macro-F1 for
every distinct `b_c` at once. Each step can only raise the objective; it starts from all zeros
(the argmax) and, among equally good offsets, keeps the one nearest the current value, so
offsets move only as far as the validation split asks.

`decide` puts it together for a run or an ensemble; the result goes to `metrics.json` and, as a
`kseq.models.decision.Decision` layer, into the serving export.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

from kseq.utils.scores import softmax
from kseq.serving import calibration
from kseq.reporting import evaluation
from kseq.utils.errors import InputError
from kseq.models.decision import Decision

MAX_ROUNDS = 20
THRESHOLDS = ("macro_f1", "none")
# Per-class offsets are fitted only when every class in the validation split has at least this
# many series: below it one series moves a class's recall by more than 20 points, so the offsets
# would fit noise (a single F beat at `data.scale=0.01`). Temperature, one number, is still fitted.
# Out-of-fold predictions come from one model per fold, each judged on its own held-out part, so
# there the bar holds in every fold: `folds` times as many series of each class in all. Below it,
# offsets fitted to fold models that each saw two thirds of a seven-series minority over-corrected
# the model trained on all seven: ten subsamples of Covid3Month_disc at imbalance ratio 10 lost
# 0.052 test macro-F1 to the argmax (benchmarks/README.md#imbalance).
MIN_VALIDATION_SUPPORT = 5


def check_settings(settings: dict, class_names) -> None:
    """Reject a `[decisions]` table that names unknown classes or floors outside [0, 1] (before training)."""
    for name, floor in settings["recall_floor"].items():
        if name not in class_names:
            raise InputError(f"decisions.recall_floor: unknown class {name!r}; classes: {', '.join(class_names)}")
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0 <= floor <= 1:
            raise InputError(f"decisions.recall_floor.{name} = {floor!r}; expected a number in [0, 1]")


def _scores(tp, predicted, support, floors) -> tuple[np.ndarray, np.ndarray]:
    """(shortfall, macro-F1) per candidate row of counts (K, C): shortfall sums recall below floors."""
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(predicted + support > 0, 2 * tp / (predicted + support), 0.0)
        recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
    shortfall = (np.maximum(floors - recall, 0.0) * (floors > 0)).sum(axis=-1)
    return shortfall, f1.mean(axis=-1)


def objective(y, predictions, num_classes: int, floors=None) -> tuple[float, float]:
    """(recall shortfall below the floors, macro-F1) of hard `predictions`: lower, then higher, is better."""
    y, predictions = np.asarray(y), np.asarray(predictions)
    labels = np.arange(num_classes)
    tp = ((predictions == y)[:, None] & (y[:, None] == labels)).sum(0)
    predicted = (predictions[:, None] == labels).sum(0)
    support = (y[:, None] == labels).sum(0)
    floors = np.zeros(num_classes) if floors is None else np.asarray(floors, float)
    shortfall, macro_f1 = _scores(tp[None], predicted[None], support[None], floors)
    return float(shortfall[0]), float(macro_f1[0])


def _best_offset(log_p, y, offsets, c, floors):
    """The offset of class `c` maximising the objective with the other offsets fixed, and its score."""
    n, num_classes = log_p.shape
    scores = log_p + offsets
    others = scores.copy()
    others[:, c] = -np.inf
    runner_up = others.argmax(axis=1)
    margin = others.max(axis=1) - log_p[:, c]  # predicted c exactly when offsets[c] > margin
    order = np.argsort(margin, kind="stable")
    margin = margin[order]
    onehot_y = np.eye(num_classes, dtype=np.int64)[y[order]]
    onehot_r = np.eye(num_classes, dtype=np.int64)[runner_up[order]]
    zero = np.zeros((1, num_classes), np.int64)
    cum_y = np.concatenate([zero, np.cumsum(onehot_y, 0)])  # row k: the k smallest margins
    cum_r = np.concatenate([zero, np.cumsum(onehot_r, 0)])
    cum_ry = np.concatenate([zero, np.cumsum(onehot_r * onehot_y, 0)])
    k = np.arange(n + 1)
    predicted = cum_r[-1] - cum_r  # the first k samples go to c, the rest to their runner-up
    tp = cum_ry[-1] - cum_ry
    predicted[:, c], tp[:, c] = k, cum_y[:, c]
    support = np.broadcast_to(cum_y[-1], predicted.shape)
    shortfall, macro_f1 = _scores(tp, predicted, support, floors)
    # The offset realising each k lies between the k-th and (k+1)-th margins. Ties make some k
    # unreachable, and so do infinite margins (a log-probability of -inf, as a majority vote's
    # classes without votes have, stays -inf whatever its offset).
    low, high = np.concatenate([[-np.inf], margin]), np.concatenate([margin, [np.inf]])
    with np.errstate(invalid="ignore"):
        candidates = np.where(np.isfinite(low) & np.isfinite(high), (low + high) / 2,
                              np.where(np.isfinite(low), low + 1.0, np.where(np.isfinite(high), high - 1.0,
                                                                              offsets[c])))
    reachable = (low < high) & np.isfinite(candidates)
    shortfall = np.where(reachable, shortfall, np.inf)
    best = reachable & np.isclose(shortfall, shortfall.min(), rtol=0, atol=1e-12)
    best &= np.isclose(macro_f1, macro_f1[best].max(), rtol=0, atol=1e-12)
    choice = np.flatnonzero(best)[np.argmin(np.abs(candidates[best] - offsets[c]))]
    return float(candidates[choice]), (float(shortfall[choice]), float(macro_f1[choice]))


def fit_offsets(log_probabilities, y, recall_floor: dict | None = None) -> np.ndarray:
    """Per-class offsets (C,) on `log_probabilities` (N, C) maximising macro-F1 on labels `y`.

    `recall_floor` maps class index -> minimum recall: offsets first minimise the total recall
    shortfall below the floors, then maximise macro-F1. Offsets are returned with mean zero
    (adding a constant to every class changes no decision).
    """
    log_p, y = np.asarray(log_probabilities, np.float64), np.asarray(y)
    num_classes = log_p.shape[1]
    floors = np.zeros(num_classes)
    for c, floor in (recall_floor or {}).items():
        floors[c] = floor
    offsets = np.zeros(num_classes)
    current = objective(y, log_p.argmax(1), num_classes, floors)
    for _ in range(MAX_ROUNDS):
        before = current
        for c in range(num_classes):
            offsets[c], current = _best_offset(log_p, y, offsets, c, floors)
        if not (current[0] < before[0] - 1e-12 or current[1] > before[1] + 1e-12):
            break
    return offsets - offsets.mean()


def decide(val_logits, y_val, test_logits, y_test, class_names, settings: dict,
           folds: int | None = None) -> tuple[Decision | None, dict]:
    """Fit the `[decisions]` settings on the validation logits; report them on the test logits.

    The held-out logits are a validation split's (`folds=None`) or, for a run without one,
    out-of-fold predictions of the training split from `folds` models (`trainer.out_of_fold_logits`);
    `metrics.json` says which (`fitted_on`).

    Returns the `Decision` layer for the export (None without a validation split: serving keeps
    the argmax) and `{"decisions": ..., "calibration": ...}` for `metrics.json`: the temperature,
    the offsets by class name, validation macro-F1 with and without them (the tuned figure is
    in-sample: the offsets were chosen on those series), the test report with them
    (`kseq.reporting.evaluation.report`; the top-level metrics stay the argmax's), and the test ECE
    before and after temperature scaling with its reliability table. Offsets stay zero, and
    `offsets_skipped` says why, when a validation class has fewer than `MIN_VALIDATION_SUPPORT`
    series (in each of the `folds`: `folds * MIN_VALIDATION_SUPPORT` in all). `test_logits=None` (an
    estimator's fit, which has no test split) leaves out the test figures.
    """
    if val_logits is None or len(y_val) == 0:
        reason = {"fitted": False, "reason": "no validation split"}
        return None, {"decisions": dict(reason), "calibration": dict(reason)}
    num_classes = len(class_names)
    val_logits, y_val = np.asarray(val_logits, np.float64), np.asarray(y_val)
    skip = ("calibrate = false" if not settings["calibrate"] else None if np.isfinite(val_logits).all()
            else "the outputs are not all finite logits (a majority vote's shares include zeros)")
    temperature = calibration.fit_temperature(val_logits, y_val) if skip is None else 1.0
    val_log_p = log_softmax(val_logits / temperature, axis=-1)
    floors = {list(class_names).index(name): float(v) for name, v in settings["recall_floor"].items()}
    support = np.bincount(y_val, minlength=num_classes)
    scarce = np.flatnonzero((support > 0) & (support < MIN_VALIDATION_SUPPORT * (folds or 1)))
    offsets_skipped = None
    if settings["thresholds"] == "none":
        offsets = np.zeros(num_classes)
    elif len(scarce):
        offsets = np.zeros(num_classes)
        where = "validation series" if folds is None else f"held-out series in each of {folds} folds"
        offsets_skipped = (f"{', '.join(f'{class_names[c]!r} ({support[c]})' for c in scarce)}: fewer than "
                           f"{MIN_VALIDATION_SUPPORT} {where}; "
                           "per-class offsets need that many of every class, so the decision is the argmax")
    else:
        offsets = fit_offsets(val_log_p, y_val, floors)
    floor_vector = np.zeros(num_classes)
    floor_vector[list(floors)] = list(floors.values())
    val_argmax = objective(y_val, val_log_p.argmax(1), num_classes, floor_vector)
    val_tuned = objective(y_val, (val_log_p + offsets).argmax(1), num_classes, floor_vector)
    decisions = {
        "fitted": True,
        "fitted_on": (f"validation split ({len(y_val)} series)" if folds is None
                      else f"out-of-fold predictions of the training split ({folds} folds)"),
        "thresholds": settings["thresholds"],
        "recall_floor": dict(settings["recall_floor"]),
        "temperature": temperature,
        "offsets": dict(zip(class_names, offsets.tolist())),
        **({"offsets_skipped": offsets_skipped} if offsets_skipped else {}),
        # The tuned figures are measured on the series the offsets were chosen on: optimistic.
        "validation": {"macro_f1_argmax": val_argmax[1], "macro_f1_tuned_in_sample": val_tuned[1],
                       "recall_shortfall_argmax": val_argmax[0], "recall_shortfall_tuned_in_sample": val_tuned[0]},
    }
    layer = Decision(temperature, offsets.tolist(), name="decision")
    calibrated = {"fitted": skip is None, **({"reason": skip} if skip else {}), "temperature": temperature}
    if skip is None:
        calibrated.update({
            "bins": calibration.BINS,
            "validation_nll_before": calibration.negative_log_likelihood(val_logits, y_val),
            "validation_nll_after": calibration.negative_log_likelihood(val_logits, y_val, temperature),
        })
    if test_logits is None:
        return layer, {"decisions": decisions, "calibration": calibrated}
    test_logits, y_test = np.asarray(test_logits, np.float64), np.asarray(y_test)
    test_log_p = log_softmax(test_logits / temperature, axis=-1)
    raw_test, calibrated_test = softmax(test_logits), np.exp(test_log_p)
    decisions["test"] = evaluation.report(y_test, calibrated_test, class_names, y_pred=(test_log_p + offsets).argmax(1))
    if skip is not None:
        return layer, {"decisions": decisions, "calibration": {
            "fitted": False, "reason": skip, "test_ece": calibration.expected_calibration_error(y_test, raw_test)}}
    calibrated.update({
        "test_ece_before": calibration.expected_calibration_error(y_test, raw_test),
        "test_ece_after": calibration.expected_calibration_error(y_test, calibrated_test),
        "test_reliability_before": calibration.reliability(y_test, raw_test),
        "test_reliability_after": calibration.reliability(y_test, calibrated_test),
    })
    return layer, {"decisions": decisions, "calibration": calibrated}
