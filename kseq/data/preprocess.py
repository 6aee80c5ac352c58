"""Host-side preprocessing: gap filling, the fitted feature transform, and sliding windows.

Everything here is NumPy/pandas (no Keras): `fit_feature_transform` learns its state from the
training split only and returns a plain JSON-serialisable dict, which
`kseq.models.preprocessing.FeatureTransform` applies in-graph, so a saved model takes raw
sequences and serving sees exactly the training transform.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.cluster import hierarchy
from scipy.spatial import distance

from kseq.utils.errors import InputError
from kseq.utils.padding import signal_lengths

GAP_METHODS = ("spline", "linear", "none")

# A feature whose standard deviation is at most this is constant (statistics are float64).
_CONSTANT_STD = 1e-8


# --------------------------------------------------------------------------- gap filling


def fill_gaps(x, method: str = "spline", order: int = 3) -> np.ndarray:
    """Fill NaN bursts inside each sequence by interpolation; returns a new float32 (N, T, F) array.

    Each (sequence, feature) series is interpolated with pandas' `Series.interpolate` over the
    sequence's signal part only: the trailing run of all-zero time steps is padding and stays
    untouched. `method="spline"` fits an interpolating spline of `order` (`s=0`: it passes through
    every valid sample; pandas' default `s` smooths so strongly that fills can miss the curve
    entirely) and falls back to linear when a series has `order` or fewer valid samples.
    NaNs at the start or end of the signal (a neighbour on one side only) take the nearest valid
    value; a feature with no valid sample in its signal stays NaN. Only sequences containing NaN
    are touched; `method="none"` returns `x` itself.
    """
    if method not in GAP_METHODS:
        raise ValueError(f"unknown gap filling method {method!r}; expected one of {GAP_METHODS}")
    x = np.asarray(x, dtype=np.float32)
    if method == "none":
        return x
    out = x.copy()
    nan = np.isnan(out)
    for i in np.flatnonzero(nan.any(axis=(1, 2))):
        length = signal_lengths(out[i][None])[0]
        for f in np.flatnonzero(nan[i, :length].any(axis=0)):
            out[i, :length, f] = _fill_series(out[i, :length, f], method, order)
    return out


def _fill_series(values: np.ndarray, method: str, order: int) -> np.ndarray:
    """Interpolate the inner NaNs of one series, then carry the nearest valid value to its ends."""
    series = pd.Series(values, dtype=np.float64)
    if method == "spline" and series.count() > order:
        series = series.interpolate(method="spline", order=order, s=0, limit_area="inside")
    else:
        series = series.interpolate(method="linear", limit_area="inside")
    return series.ffill().bfill().to_numpy(dtype=np.float32)


# --------------------------------------------------------------------------- feature transform


def fit_feature_transform(
    x,
    feature_names: Sequence[str] | None = None,
    *,
    drop_constant: bool = True,
    correlation_threshold: float | None = 0.9,
    merge: Mapping[str, Sequence[str]] | None = None,
    groups: Mapping[str, Sequence[str]] | str | None = None,
    group_distance: float = 0.5,
    mask_padding: bool = True,
) -> dict:
    """Fit the feature transform on training sequences `x` (N, T, F); returns a JSON-able dict.

    Steps, in order:
    1. `merge`: `{new_name: [source names]}`; the sources are replaced by one binary feature,
       1.0 where any source is nonzero, at the position of the earliest source column.
    2. `drop_constant`: drop features whose standard deviation is (near) zero.
    3. `correlation_threshold`: walking the columns in order, drop a feature whose |Pearson
       correlation| with an already kept one exceeds the threshold (None disables).
    4. Standardise. `groups` maps a group name to feature names (after merging); each group is
       scaled with ONE mean and ONE std pooled over all its features' values, which keeps the
       relative scales within the group (e.g. the joints of one limb). `"auto"` forms the groups
       by average-linkage clustering of the features on 1 - |correlation|, cut at
       `group_distance`. Features in no group are standardised on their own. Group members
       dropped in steps 2-3 are skipped.
    With `mask_padding`, time steps whose features are all zero are padding: they are left out of
    every statistic and the layer keeps them all-zero, so `Masking(0)` downstream still sees them.

    The dict holds `input_features`, `merged_features`, `columns` (input column of each merged
    feature), `merge` (`[merged_index, [input indices]]` pairs), `keep` (indices into the merged
    features), `output_features`, `groups` (`{name: [output names]}`), `mean` and `std` (one per
    output feature) and `mask_padding`.
    Raises `InputError` naming the field when `merge` or `groups` names an unknown feature.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"x must be (N, T, F); got shape {x.shape}")
    if np.isnan(x).any():
        raise ValueError("x contains NaN; fill the gaps first (kseq.data.preprocess.fill_gaps)")
    names = _feature_names(feature_names, x.shape[2])
    merged_names, columns, merges = _plan_merge(names, merge or {})
    if isinstance(groups, Mapping):
        _check_groups(groups, merged_names)
    elif groups not in (None, "auto"):
        raise InputError(f"groups must be a mapping of group name to features, 'auto' or None; got {groups!r}")

    values = _merge_values(_signal_values(x, mask_padding), columns, merges)
    std = values.std(axis=0)
    keep = list(range(len(merged_names)))
    if drop_constant:
        keep = [j for j in keep if std[j] > _CONSTANT_STD]
    corr = _abs_correlation(values, std)
    if correlation_threshold is not None:
        keep = _drop_correlated(keep, corr, correlation_threshold)
    if not keep:
        raise ValueError("every feature was dropped as constant or correlated; nothing left to learn from")

    output_names = [merged_names[j] for j in keep]
    if groups == "auto":
        group_positions = _cluster_groups(corr[np.ix_(keep, keep)], group_distance)
    elif groups:
        group_positions = _kept_groups(groups, output_names)
    else:
        group_positions = {}
    mean, scale = _standardise(values[:, keep], group_positions.values())
    return {
        "input_features": names,
        "merged_features": merged_names,
        "columns": columns,
        "merge": [[j, sources] for j, sources in merges],
        "keep": keep,
        "output_features": output_names,
        "groups": {g: [output_names[k] for k in pos] for g, pos in group_positions.items()},
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in scale],
        "mask_padding": bool(mask_padding),
    }


def _feature_names(feature_names, num_features: int) -> list[str]:
    """The given names as strings, or `feature_0..` when there are none."""
    if feature_names is None:
        return [f"feature_{i}" for i in range(num_features)]
    names = [str(n) for n in feature_names]
    if len(names) != num_features:
        raise InputError(f"feature_names: {len(names)} names for {num_features} features")
    if len(set(names)) != len(names):
        raise InputError(f"feature_names: duplicate names in {names}")
    return names


def _plan_merge(names: list[str], merge: Mapping[str, Sequence[str]]):
    """Merged feature names, the input column of each, and `(merged_index, sources)` pairs."""
    position = {n: i for i, n in enumerate(names)}
    sources_of: dict[int, list[int]] = {}  # earliest source column -> all source columns
    merged_name: dict[int, str] = {}
    taken: set[int] = set()
    for new, sources in merge.items():
        if isinstance(sources, str) or not sources:
            raise InputError(f"merge[{new!r}]: expected a non-empty list of feature names; got {sources!r}")
        for s in sources:
            if s not in position:
                raise InputError(f"merge[{new!r}]: unknown feature {s!r}; known: {', '.join(names)}")
            if position[s] in taken:
                raise InputError(f"merge[{new!r}]: feature {s!r} is already merged into another feature")
        indices = sorted({position[s] for s in sources})
        taken.update(indices)
        sources_of[indices[0]] = indices
        merged_name[indices[0]] = str(new)

    merged_names, columns, merges = [], [], []
    for i, name in enumerate(names):
        if i in sources_of:
            merges.append((len(columns), sources_of[i]))
            name = merged_name[i]
        elif i in taken:
            continue
        merged_names.append(name)
        columns.append(i)
    if len(set(merged_names)) != len(merged_names):
        raise InputError(f"merge: a new feature name clashes with an existing one in {merged_names}")
    return merged_names, columns, merges


def _check_groups(groups: Mapping[str, Sequence[str]], merged_names: list[str]) -> None:
    """Every group member must be a (merged) feature name, and in one group only."""
    known = set(merged_names)
    seen: dict[str, str] = {}
    for group, members in groups.items():
        if isinstance(members, str):
            raise InputError(f"groups[{group!r}]: expected a list of feature names; got {members!r}")
        for m in members:
            if m not in known:
                raise InputError(f"groups[{group!r}]: unknown feature {m!r}; known: {', '.join(merged_names)}")
            if m in seen:
                raise InputError(f"groups[{group!r}]: feature {m!r} is already in group {seen[m]!r}")
            seen[m] = group


def _signal_values(x: np.ndarray, mask_padding: bool) -> np.ndarray:
    """All time steps as rows (float64), without the all-zero (padding) ones if asked."""
    rows = x.reshape(-1, x.shape[2]).astype(np.float64)
    if mask_padding:
        rows = rows[np.any(rows != 0, axis=1)]
    if not len(rows):
        raise ValueError("x has no nonzero time step to fit on")
    return rows


def _merge_values(values: np.ndarray, columns: list[int], merges) -> np.ndarray:
    """Input rows (M, F_in) -> merged rows (M, F_merged): pick columns, then binary merges."""
    merged = values[:, columns]
    for j, sources in merges:
        merged[:, j] = np.any(values[:, sources] != 0, axis=1)
    return merged


def _abs_correlation(values: np.ndarray, std: np.ndarray) -> np.ndarray:
    """|Pearson correlation| between columns; a constant column correlates 0 with everything."""
    safe = np.where(std > _CONSTANT_STD, std, np.inf)
    z = (values - values.mean(axis=0)) / safe
    return np.abs(z.T @ z) / len(values)


def _drop_correlated(keep: list[int], corr: np.ndarray, threshold: float) -> list[int]:
    """Greedy in column order: keep a column unless it is too correlated with a kept one."""
    kept: list[int] = []
    for j in keep:
        if all(corr[j, i] <= threshold for i in kept):
            kept.append(j)
    return kept


def _kept_groups(groups: Mapping[str, Sequence[str]], output_names: list[str]) -> dict[str, list[int]]:
    """Named groups as output positions, without dropped members (and empty groups)."""
    position = {n: k for k, n in enumerate(output_names)}
    kept = {str(g): [position[m] for m in members if m in position] for g, members in groups.items()}
    return {g: pos for g, pos in kept.items() if pos}


def _cluster_groups(corr: np.ndarray, group_distance: float) -> dict[str, list[int]]:
    """Groups of two or more features from average-linkage clustering on 1 - |corr|."""
    if len(corr) < 2:
        return {}
    dist = np.clip(1.0 - corr, 0.0, None)
    np.fill_diagonal(dist, 0.0)
    tree = hierarchy.linkage(distance.squareform(dist, checks=False), method="average")
    labels = hierarchy.fcluster(tree, t=group_distance, criterion="distance")
    clusters: dict[int, list[int]] = {}
    for k, label in enumerate(labels):
        clusters.setdefault(int(label), []).append(k)
    multi = [pos for pos in clusters.values() if len(pos) > 1]
    return {f"group_{i}": pos for i, pos in enumerate(sorted(multi))}


def _standardise(values: np.ndarray, group_positions) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean/std, overwritten by pooled ones for each group; a zero std becomes 1."""
    mean, std = values.mean(axis=0), values.std(axis=0)
    for pos in group_positions:
        mean[pos], std[pos] = values[:, pos].mean(), values[:, pos].std()
    return mean, np.where(std > _CONSTANT_STD, std, 1.0)


# --------------------------------------------------------------------------- sliding windows


def sliding_windows(x, window: int, stride: int) -> np.ndarray:
    """(N, T, F) -> (N, W, window, F) windows starting at 0, stride, ... (a view, no copy)."""
    x = np.asarray(x)
    _check_windows(x.shape[1], window, stride)
    view = np.lib.stride_tricks.sliding_window_view(x, window, axis=1)  # (N, T - window + 1, F, window)
    return np.moveaxis(view[:, ::stride], -1, 2)


def _check_windows(sequence_length: int, window: int, stride: int) -> None:
    """At least one whole window must fit, and windows must move forward."""
    if not 1 <= window <= sequence_length:
        raise ValueError(f"window must lie in [1, {sequence_length}] (the sequence length); got {window}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1; got {stride}")


def windows_to_examples(x, y, window: int, stride: int):
    """Windows as examples: `(xw (N*W, window, F), yw (N*W,), sequence_index (N*W,))`.

    Every window carries its sequence's label; `sequence_index` says which sequence it came from
    (windows of one sequence are consecutive), for `average_by_sequence`.
    """
    windows = sliding_windows(x, window, stride)
    n, w = windows.shape[:2]
    xw = windows.reshape(n * w, *windows.shape[2:])
    return xw, np.repeat(np.asarray(y), w), np.repeat(np.arange(n), w)


def average_by_sequence(logits, sequence_index, n_sequences: int) -> np.ndarray:
    """Mean of the window logits (M, C) of each sequence -> (n_sequences, C)."""
    logits = np.asarray(logits, dtype=np.float64)
    sequence_index = np.asarray(sequence_index)
    counts = np.bincount(sequence_index, minlength=n_sequences)
    if len(counts) != n_sequences or not counts.all():
        raise ValueError(f"sequence_index must cover every sequence in [0, {n_sequences}) with a window")
    sums = np.zeros((n_sequences, logits.shape[1]))
    np.add.at(sums, sequence_index, logits)
    return sums / counts[:, None]
