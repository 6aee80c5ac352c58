"""Training and evaluation `tf.data` pipelines, with class-balanced samplers fast enough never to limit training.

Every sampler plans batches of *indices* with vectorised stateless random ops and then gathers the
features of a whole batch at once from an in-memory tensor, so no per-sample work happens in Python
or in a per-element `map`. Random keys drive every draw, in one of two ways:

- by default each iteration of a returned dataset (one Keras epoch) draws afresh from a key stream
  `tf.data.Dataset.random(seed, rerandomize_each_iteration=True)`, so a seed reproduces the same
  sequence of epochs in any process (given the same global TF seed, if one is set);
- with `epochs=`, one pass holds the batches of epochs `first_epoch .. epochs - 1`, and epoch `e`'s
  keys are a stateless function of `(seed, e)` alone. Epoch `e` then draws the same batches
  whether or not the run was interrupted before it, which is what resuming needs (`--resume`
  starts at `first_epoch`; `fit` reads the pass `steps_per_epoch` batches at a time).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
from sklearn.metrics import adjusted_mutual_info_score

from kseq.config import CHOICES
from kseq.data import shards
from kseq.data.sampling import acceptance, balanced_weights, draw_weights, target_distribution
from kseq.data.shards import ShardedFeatures

SAMPLERS = CHOICES["sampler", "kind"]

# Rejection draws the indices of several batches per call, amortising the per-call overhead, from
# this many times the expected number of candidates needed, so that one round nearly always
# suffices; the cap bounds memory when a class is extremely rare.
_BATCHES_PER_DRAW = 8
_CANDIDATE_SLACK = 1.1
_MAX_CANDIDATES = 1 << 20

AUTOTUNE = tf.data.AUTOTUNE

def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches in one epoch of `n` samples: `ceil(n / batch_size)`, as `num_samples=n` in PyTorch."""
    return -(-int(n) // int(batch_size))


def make_train_dataset(
    x,
    y,
    *,
    sampler: str = "rejection",
    batch_size: int = 256,
    seed: int = 0,
    target="uniform",
    weights=None,
    epochs: int | None = None,
    first_epoch: int = 0,
    input_context: tf.distribute.InputContext | None = None,
    lengths=None,
) -> tf.data.Dataset:
    """A training dataset of `(x, y)` batches (`(x, y, sample_weight)` for `class_weight`).

    Args:
        x: float32 array `(N, T, F)`, or a shard folder's features (`kseq.data.shards`), streamed
            from disk with the same samplers (see `shards.train_dataset`).
        y: integer labels `(N,)` in `[0, C)`; `C = max(y) + 1`.
        sampler: one of `SAMPLERS`:
            - `"none"`: shuffle and batch: in memory each series once an epoch. On shards, which
              cannot be permuted whole, each record's class is drawn in proportion to the class
              counts and the record taken from that class's shuffled stream: the data's own class
              distribution, but drawn with replacement rather than as a permutation.
            - `"rejection"`: rejection resampling towards `target`; candidates drawn uniformly,
              each kept with probability `(t_c / p_c) / max_k(t_k / p_k)` for its class `c`.
            - `"weighted"`: `torch.utils.data.WeightedRandomSampler(weights, N, replacement=True)`:
              draws with replacement in proportion to per-sample `weights` (default `t_c / n_c`).
            - `"oversample"`: every class repeated (topped up at random without replacement) to
              the majority count, shuffled; an epoch takes its batches from that pool.
            - `"class_weight"`: shuffle and batch, adding sklearn's balanced class weight
              `N / (C * n_c)` of each sample as a third element.
        batch_size: samples per batch.
        seed: seeds the whole sequence of epochs.
        target: class distribution for `rejection` and `weighted`: `"uniform"` over the classes
            present, `"sqrt"` (`t_c` proportional to `sqrt(n_c)`), or per-class probabilities.
        weights: per-sample weights `(N,)`, only for `sampler="weighted"`.
        epochs: None for one fresh epoch per iteration; else one iteration holds the epochs
            `first_epoch .. epochs - 1` back to back, epoch `e` drawn from `(seed, e)` alone (for
            `fit(..., steps_per_epoch=steps_per_epoch(N, batch_size))` and resuming).
        first_epoch: with `epochs`, the first epoch drawn (the epochs an interrupted run completed).
        input_context: shards only: one input pipeline's share under
            `tf.distribute.Strategy.distribute_datasets_from_function` (its own files, per-replica
            batches; see `shards.train_dataset`).
        lengths: each series' real steps `(N,)` (arrays in memory only), for a model that takes
            any length: batches then group series of similar length (unless that would give the
            class away) and are cut to their longest member (`group_by_length`), so a batch
            costs what its real steps cost.

    Returns:
        A dataset whose every iteration is one fresh epoch (or, with `epochs`, the epochs from
        `first_epoch` on) of `ceil(N / batch_size)` batches of
        x float32 `(B, T, F)` (`T` each batch's own with `lengths`) and y int32 `(B,)`. Resampling
        samplers (`rejection`, `weighted`, `oversample`) yield full batches only; in memory, `none`
        and `class_weight` visit each sample once per epoch, so their last batch may be partial.
    """
    if _on_disk(x):
        if weights is not None:
            raise ValueError("per-sample weights are not available on shards; the samplers weigh classes")
        return shards.train_dataset(x, np.asarray(y), sampler=sampler, batch_size=batch_size, seed=seed,
                                    target=target, epochs=epochs, first_epoch=first_epoch,
                                    input_context=input_context)
    if input_context is not None:
        raise ValueError("input_context is for shards; arrays in memory are split by tf.distribute itself")
    x, y = _check_arrays(x, y)
    bucket = None if lengths is None else bucket_lengths(lengths, x.shape[1], len(x))
    if y.min() < 0:
        raise ValueError(f"training labels must be >= 0; got {y.min()}")
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of: {', '.join(SAMPLERS)}")
    if weights is not None and sampler != "weighted":
        raise ValueError(f"weights are only used by sampler='weighted', not {sampler!r}")
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive; got {batch_size}")
    if epochs is not None and not 0 <= int(first_epoch) <= int(epochs):
        raise ValueError(f"need 0 <= first_epoch <= epochs; got first_epoch={first_epoch}, epochs={epochs}")
    counts = np.bincount(y)
    steps = steps_per_epoch(len(y), batch_size)
    # Each sampler: how many keys one epoch takes, and keys -> that epoch's batches of indices.
    if sampler == "rejection":
        accept = acceptance(target_distribution(target, counts), counts)[y]
        group = min(_BATCHES_PER_DRAW, steps)
        key_count, one_epoch = -(-steps // group), _rejection_batches(accept, batch_size, group, steps)
    elif sampler == "weighted":
        if weights is None:
            weights = draw_weights(target, counts)[y]
        draw = _weighted_draw(weights, len(y), batch_size)
        key_count, one_epoch = steps, lambda keys: keys.map(draw, num_parallel_calls=AUTOTUNE)
    elif sampler == "oversample":
        full = steps * batch_size
        key_count, one_epoch = 1, _epoch_batches(_oversample_plan(y, counts, full), full, batch_size, steps)
    else:
        key_count, one_epoch = 1, _epoch_batches(_permutation_plan(len(y)), len(y), batch_size, steps)
    if bucket is not None:
        one_epoch = group_by_length(one_epoch, key_count, bucket, y, batch_size, steps)
    if epochs is None:
        indices = one_epoch(_keys(seed, key_count))
    else:
        indices = _epochs(seed, key_count, one_epoch, int(first_epoch), int(epochs), steps)
    sample_weight = balanced_weights(counts)[y].astype(np.float32) if sampler == "class_weight" else None
    gather = _gather(x, y, sample_weight) if bucket is None else _gather_cut(x, y, sample_weight, bucket)
    return _without_autotune(indices.map(gather, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE))


def make_eval_dataset(x, y=None, batch_size: int = 256, lengths=None) -> tf.data.Dataset:
    """Ordered batches of `x` (or of `(x, y)`), every sample once, no shuffling.

    With `lengths` (each series' real steps, arrays in memory only), the series come in
    `length_order(lengths)`, shortest first, and each batch is cut to its longest member, for a
    model that takes any length; `out[length_order(lengths)] = predictions` puts the answers back
    in the order of `x`.
    """
    if _on_disk(x):
        return shards.eval_dataset(x, None if y is None else np.asarray(y), int(batch_size))
    x, y = (_check_x(x), None) if y is None else _check_arrays(x, y)
    batch_size = int(batch_size)
    if lengths is not None:
        return _eval_by_length(x, y, batch_size, np.asarray(lengths), bucket_lengths(lengths, x.shape[1], len(x)))
    tensors = _on_cpu(x if y is None else (x, y.astype(np.int32)))
    starts = tf.data.Dataset.range(0, len(x), int(batch_size))
    batches = starts.map(lambda s: tf.nest.map_structure(lambda t: t[s : s + batch_size], tensors))
    return _without_autotune(batches.prefetch(AUTOTUNE))


def _on_disk(x) -> bool:
    """True for the features of a shard folder's split (`kseq.data.shards`), streamed rather than held."""
    return isinstance(x, ShardedFeatures)


def _without_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Autotuning off: dropping an epoch's iterator otherwise waits out the autotune thread's
    current sleep, and those sleeps double each time, padding some epochs by seconds."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def _check_x(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"x must be (N, T, F); got shape {x.shape}")
    return x


def _check_arrays(x, y) -> tuple[np.ndarray, np.ndarray]:
    """float32 `(N, T, F)` features and int64 labels, one per sequence."""
    x = _check_x(x)
    y = np.asarray(y)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be integer labels of shape ({len(x)},); got {y.dtype} {y.shape}")
    if len(y) == 0:
        raise ValueError("cannot build a dataset from zero sequences")
    return x, y.astype(np.int64)


def _on_cpu(structure):
    """Tensors held in host memory, where tf.data gathers from them."""
    with tf.device("/cpu:0"):
        return tf.nest.map_structure(tf.convert_to_tensor, structure)


def _keys(seed: int, count: int) -> tf.data.Dataset:
    """`count` int64 random keys, fresh on each iteration of the dataset, the same for a seed."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(count)


def _epoch_keys(seed: int, epoch, count: int) -> tf.data.Dataset:
    """`count` int64 random keys of epoch `epoch`: a stateless function of `(seed, epoch)` only."""
    pair = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
    keys = tf.random.stateless_uniform([count], pair, minval=None, maxval=None, dtype=tf.int64)
    return tf.data.Dataset.from_tensor_slices(keys)


def _epochs(seed: int, count: int, one_epoch, first_epoch: int, epochs: int, steps: int) -> tf.data.Dataset:
    """The batches of epochs `first_epoch .. epochs - 1` in order, each from its own `_epoch_keys`."""
    batches = tf.data.Dataset.range(first_epoch, epochs).flat_map(lambda e: one_epoch(_epoch_keys(seed, e, count)))
    return batches.apply(tf.data.experimental.assert_cardinality((epochs - first_epoch) * steps))


def _seeds(key, n: int, salt=0):
    """`n` independent stateless seeds (shape `(2,)`) from one key (and a salt, e.g. a round)."""
    seed = tf.stack([key, tf.cast(salt, tf.int64)])
    return tf.unstack(tf.random.experimental.stateless_split(seed, n))


def _rejection_batches(accept: np.ndarray, batch_size: int, group: int, steps: int):
    """keys -> `steps` batches of indices, drawn `group` batches per key."""
    draw = _rejection_draw(accept, batch_size, group)

    def one_epoch(keys):
        draws = keys.map(draw, num_parallel_calls=AUTOTUNE)
        return draws.unbatch().take(steps).apply(tf.data.experimental.assert_cardinality(steps))

    return one_epoch


def _rejection_draw(accept: np.ndarray, batch_size: int, batches: int):
    """key -> `(batches, batch_size)` indices: uniform candidates, kept with probability `accept[index]`."""
    n, size = len(accept), batches * batch_size
    candidates = min(_MAX_CANDIDATES, math.ceil(_CANDIDATE_SLACK * size / accept.mean()))
    accept = _on_cpu(accept)

    def draw(key):
        def draw_round(round_, kept):
            index_seed, coin_seed = _seeds(key, 2, salt=round_)
            index = tf.random.stateless_uniform([candidates], index_seed, 0, n, dtype=tf.int32)  # cheaper than int64
            coin = tf.random.stateless_uniform([candidates], coin_seed)
            return round_ + 1, tf.concat([kept, index[coin < tf.gather(accept, index)]], 0)

        _, kept = tf.while_loop(
            lambda round_, kept: tf.size(kept) < size,
            draw_round,
            (tf.constant(0, tf.int64), tf.zeros([0], tf.int32)),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None])),
        )
        return tf.reshape(kept[:size], [batches, batch_size])

    return draw


def _weighted_draw(weights, n: int, batch_size: int):
    """key -> `batch_size` indices drawn with replacement in proportion to `weights`."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (n,) or not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() == 0:
        raise ValueError(f"weights must be {n} finite non-negative numbers, not all zero; got shape {weights.shape}")
    cdf = _on_cpu(np.cumsum(weights))

    def draw(key):
        u = tf.random.stateless_uniform([batch_size], _seeds(key, 1)[0], 0, cdf[-1], dtype=tf.float64)
        return tf.minimum(tf.searchsorted(cdf, u, side="right", out_type=tf.int64), n - 1)

    return draw


def _permutation_plan(n: int):
    """key -> a uniformly random permutation of `0..n-1`."""
    return lambda key: tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), _seeds(key, 1)[0])


def _oversample_plan(y: np.ndarray, counts: np.ndarray, used: int):
    """key -> the shuffled pool in which every class appears exactly `max(counts)` times.

    Each class contributes `max // n_c` full copies of itself plus `max % n_c` of its members
    chosen at random without replacement. When classes are already balanced the pool can be
    shorter than the `used` draws of full batches; it is then repeated to fill them.
    """
    majority = counts.max()
    repeats = np.where(counts > 0, majority // np.maximum(counts, 1), 0)
    copies = _on_cpu(np.repeat(np.arange(len(y)), repeats[y]))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    topup_at = _on_cpu(np.concatenate([s + np.arange(majority % c) for s, c in zip(starts, counts) if c > 0]))
    labels = _on_cpu(y)
    pool_repeats = -(-used // (majority * np.count_nonzero(counts)))

    def plan(key):
        shuffle_seed, pool_seed = _seeds(key, 2)
        shuffled = tf.random.experimental.stateless_shuffle(tf.range(len(y), dtype=tf.int64), shuffle_seed)
        by_class = tf.gather(shuffled, tf.argsort(tf.gather(labels, shuffled), stable=True))
        pool = tf.concat([copies, tf.gather(by_class, topup_at)], 0)
        return tf.tile(tf.random.experimental.stateless_shuffle(pool, pool_seed), [pool_repeats])

    return plan


def _epoch_batches(plan, used: int, batch_size: int, steps: int):
    """keys (one per epoch) -> batches of indices cut from the first `used` entries of `plan(key)`."""

    def batches(order):
        starts = tf.data.Dataset.range(0, used, batch_size)
        return starts.map(lambda s: order[s : tf.minimum(s + batch_size, used)])

    def one_epoch(keys):
        indices = keys.map(plan).flat_map(batches).apply(tf.data.experimental.assert_cardinality(steps))
        if used % batch_size == 0:  # all batches full: say so in the element spec
            indices = indices.map(lambda index: tf.ensure_shape(index, [batch_size]))
        return indices

    return one_epoch


def _gather(x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None):
    """indices -> the batch `(x, y)` or `(x, y, sample_weight)`, gathered in one op per tensor."""
    tensors = _on_cpu((x, y.astype(np.int32)) if sample_weight is None else (x, y.astype(np.int32), sample_weight))
    return lambda index: tuple(tf.gather(t, index) for t in tensors)


# --- Unequal lengths: batches of similar length, cut to their longest member ------------------
#
# A batch padded to the longest series of the whole set costs that length for every member. With
# lengths known, the indices a sampler draws for an epoch are regrouped, a window of batches at a
# time, so that series of similar length share a batch (unless their batches would then tell the
# class), and each batch is cut to its longest member. The sampler alone still decides which
# series an epoch holds and how often; only their grouping into batches changes.

# Batches regrouped together: the wider, the closer each batch's lengths, but the more alike the
# batches of successive epochs. 32 batches keep each batch within one bucket of lengths on data
# with a long tail (benchmarks/unequal_lengths.py) while any batch can still meet any series.
_LENGTH_WINDOW = 32
# Sorted by length alone, batches whose class information (`sorted_batches_class_information`)
# passes this keep the sampler's random batches instead. Measured with `resnet`:
# PickupGestureWiimoteZ's sorted batches tell 0.43 of the class (batch size 5), and batch norm
# learned it (50.0% and 44.0% at seeds 0 and 1, against 68.0% and 62.0% in random batches);
# WatchExercise's tell 0.12 (batch size 9), and sorted batches trained better than any mixing tried
# (92.9, 92.9, 90.5% at seeds 0-2, against 90.5, 88.1% in random batches and 88.1, 88.1, 85.7%
# sorted within class); JapaneseVowels' tell 0.13 (batch size 27; 98.9% sorted, seed 0). The limit
# lies between, on the cautious side: on synthetic sets (experiments/README.md, "Beyond the dev
# sets") sorting cost 37-74 points at 0.92, nothing at 0.27, and gained 3-6 points at 0.57, where
# the true signal was easy; a leak costs far more than a mixed batch does. Past it the lengths give
# the class away, and the same answer scales the generic networks' features by the length
# (`model.length_scale`, `kseq.training.recipe.resolve_length_scale`).
_SORTED_BATCHES_CLASS_LIMIT = 0.25
# Random orders `sorted_batches_class_information` averages over (from a fixed generator).
_INFORMATION_DRAWS = 8
# Batch lengths are rounded up to one of this many sizes per doubling (at most 1/8 longer), so a
# compiled training step (XLA) meets a few dozen shapes rather than one per length.
_SIZES_PER_OCTAVE = 8


def bucket_lengths(lengths, max_steps: int, n: int) -> np.ndarray:
    """Each series' length rounded up to the nearest batch length, int32 `(n,)`, at most `max_steps`.

    The batch lengths are the multiples of `2**(floor(log2(length)) - 3)` (every step below 16):
    `_SIZES_PER_OCTAVE` sizes between two powers of two. Rounding is monotonic, so a batch cut to
    its members' largest rounded length holds every member's real steps.
    """
    lengths = np.asarray(lengths)
    if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"lengths must be {n} integers, one per series; got {lengths.dtype} {lengths.shape}")
    if n and (lengths.min() < 1 or lengths.max() > max_steps):
        raise ValueError(f"lengths must lie in [1, {max_steps}] (the padded length); "
                         f"got {lengths.min()}..{lengths.max()}")
    octave = np.frexp(lengths.astype(np.float64))[1] - 1  # floor(log2(length)), exact for integers
    quantum = 2 ** np.maximum(octave - int(np.log2(_SIZES_PER_OCTAVE)), 0)
    return np.minimum(-(-lengths // quantum) * quantum, max_steps).astype(np.int32)


def length_order(lengths) -> np.ndarray:
    """The order in which `make_eval_dataset(..., lengths=lengths)` yields the series: by length, stable."""
    return np.argsort(np.asarray(lengths), kind="stable")


def sorted_batches_class_information(bucket: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    """How much of a series' class its batch would tell, were batches sorted by length alone.

    scikit-learn's adjusted mutual information between class and batch, over the smaller of the
    two entropies (`average_method="min"`): 0 for batches drawn at random, 1 where each batch holds
    one class however many batches there are (the default, their mean, would score two classes in
    a hundred pure batches 0.25). The batches are those `group_by_length` makes
    sorting by the rounded lengths `bucket`: a random order cut into windows of `_LENGTH_WINDOW`
    batches, each window sorted with ties in random order (the plain sampler's epoch; the
    resampling samplers draw other series, sorted alike). The mean over `_INFORMATION_DRAWS`
    orders from a fixed generator, so the same data gives the same answer.

    Chance moves it most on the smallest sets: over labels drawn at random, its standard deviation
    is 0.003 on 1,000 series in batches of 64, 0.04 on 50 in batches of 5, 0.12 on 30 in batches
    of 3. Where chance alone passes `_SORTED_BATCHES_CLASS_LIMIT`, the batches stay random, which
    cannot leak the class.

    >>> y = np.repeat([0, 1], 8)
    >>> round(sorted_batches_class_information(np.arange(16), y, 8), 2)  # short class 0, long class 1
    1.0
    """
    rng = np.random.default_rng(0)
    window = _LENGTH_WINDOW * batch_size
    batch = np.empty(len(y), np.int64)
    information = []
    for _ in range(_INFORMATION_DRAWS):
        order = rng.permutation(len(y))
        for start in range(0, len(y), window):
            members = order[start : start + window]
            by_length = members[np.lexsort((rng.random(len(members)), bucket[members]))]
            batch[by_length] = (start + np.arange(len(members))) // batch_size
        information.append(adjusted_mutual_info_score(y, batch, average_method="min"))
    return float(np.mean(information))


def length_grouping(bucket: np.ndarray, y: np.ndarray, batch_size: int) -> tuple[bool, float]:
    """How `group_by_length` groups these series: whether it sorts them by length, and why, the
    class information of batches sorted by length (`sorted_batches_class_information`), which
    stays within `_SORTED_BATCHES_CLASS_LIMIT` exactly where it does."""
    information = sorted_batches_class_information(bucket, y, batch_size)
    return information <= _SORTED_BATCHES_CLASS_LIMIT, information


def group_by_length(one_epoch, key_count: int, bucket: np.ndarray, y: np.ndarray, batch_size: int, steps: int):
    """A sampler's `one_epoch` (keys -> batches of indices) with its indices regrouped by length.

    The epoch's indices, in the sampler's order, are cut into windows of `_LENGTH_WINDOW` batches;
    each window is sorted by the rounded lengths `bucket` (ties in random order) and cut into
    batches, whose order within the window is shuffled. The random draws come from the epoch's
    first key (with salts its sampler never uses), so the same seed gives the same batches.

    Where length gives the class away (`length_grouping`), the sampler's batches are kept as it
    draws them, at random (each still cut to its longest member). Sorted by length, a batch there
    holds the classes of its lengths, its batch norm statistics tell the network the class, and
    that cue is gone at inference. PickupGestureWiimoteZ (10 gestures, 29-361 steps, the shortest
    gestures whole classes): `resnet` 50.0% and 44.0% at seeds 0 and 1 sorted by length, 68.0% and
    62.0% in random batches. Random batches cost about what any grouping that mixes the classes
    costs there (13.0k series-steps an epoch, against 8.3k sorted and 12.8k sorted within each
    class; means over simulated epochs). Sorted within each class, the grouping shipped before,
    did no better there (66.0%, 64.0%) and worse on synthetic sets (experiments/README.md, "Beyond
    the dev sets"). Elsewhere sorted batches are kept: they cost the least (the long tail of
    `benchmarks/unequal_lengths.py`: 322k series-steps an epoch, 277k of them real, against 965k in
    random batches), and on WatchExercise, whose lengths tell little of the class, they trained
    best (see `_SORTED_BATCHES_CLASS_LIMIT`).
    """
    if not length_grouping(bucket, y, batch_size)[0]:
        return one_epoch
    key = _on_cpu(bucket.astype(np.float64))
    window = _LENGTH_WINDOW * batch_size

    def regroup(seed_key, number, indices):
        tie_seed, order_seed = _seeds(seed_key, 2, salt=-1 - number)  # samplers salt from 0 up
        noise = tf.random.stateless_uniform(tf.shape(indices), tie_seed, dtype=tf.float64)
        # Distinct lengths differ by 1 or more, far above 1e-9.
        by_length = tf.gather(indices, tf.argsort(tf.gather(key, indices) + 1e-9 * noise))
        count = tf.size(indices, out_type=tf.int64)
        starts = tf.random.experimental.stateless_shuffle(tf.range(0, count, batch_size), order_seed)
        return tf.data.Dataset.from_tensor_slices(starts).map(
            lambda start: by_length[start : tf.minimum(start + batch_size, count)])

    def epoch(keys):
        windows = one_epoch(tf.data.Dataset.from_tensor_slices(keys)).unbatch().batch(window).enumerate()
        return windows.flat_map(lambda number, indices: regroup(keys[0], number, indices))

    def regrouped(keys):
        batches = keys.batch(key_count).flat_map(epoch)
        return batches.apply(tf.data.experimental.assert_cardinality(steps))

    return regrouped


def _gather_cut(x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None, bucket: np.ndarray):
    """`_gather`, with x cut to the largest rounded length among the batch's members."""
    gather, bucket = _gather(x, y, sample_weight), _on_cpu(bucket)

    def cut(index):
        first, *rest = gather(index)
        return (first[:, : tf.reduce_max(tf.gather(bucket, index))], *rest)

    return cut


def _eval_by_length(x: np.ndarray, y: np.ndarray | None, batch_size: int, lengths: np.ndarray,
                    bucket: np.ndarray) -> tf.data.Dataset:
    """`make_eval_dataset`'s batches in `length_order(lengths)`, each cut to its longest member."""
    order = _on_cpu(length_order(lengths))
    tensors, bucket = _on_cpu(x if y is None else (x, y.astype(np.int32))), _on_cpu(bucket)

    def batch(start):
        index = order[start : start + batch_size]
        steps = tf.reduce_max(tf.gather(bucket, index))
        gathered = tf.nest.map_structure(lambda t: tf.gather(t, index), tensors)
        return gathered[:, :steps] if y is None else (gathered[0][:, :steps], gathered[1])

    return _without_autotune(tf.data.Dataset.range(0, len(x), batch_size).map(batch).prefetch(AUTOTUNE))
