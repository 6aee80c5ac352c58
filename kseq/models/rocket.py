"""MiniRocket and MultiRocket as Keras layers: fixed convolutions, biases fitted by `adapt`.

MiniRocket (Dempster, Schmidt and Webb 2021, "MiniRocket: a very fast (almost) deterministic
transform for time series classification") convolves each series with 84 fixed kernels of
length 9 (weight -1 on six taps, +2 on the other three: every choice of three of the nine) at a
set of dilations that grows with the series length, and pools each output `C` against biases
taken from quantiles of `C` on training series: PPV, the proportion of steps where `C > bias`.
MultiRocket (Tan, Dempster, Bergmeir and Webb 2022) runs the same kernels on the series and on
its first difference and pools with four operators (PPV, MPV, MIPV, LSPV).

The data-dependent parameters follow the reference code: dilations from the series length (set
when the layer is built, since the padded length is the input's static length), random channel
combinations for multivariate series (from `seed`), and biases fitted by `adapt(x)` on training
series, as `keras.layers.Normalization` fits its statistics. All of them are non-trainable
weights, so they are saved with the model. Every dilation runs as one matrix product with all 84
kernels at once.

Speed: the transform is compiled by XLA, in chunks of one static shape, sized so that their
intermediates stay within a bound however long the series (`kseq.models.xla_programs`),
with the kernels' outputs pooled in a few blocks, one per bias count (`blocks_by_bias_count`),
not dilation by dilation. MultiRocket's four poolings are one loop over time for all blocks
(`pooled_in_one_pass`), on outputs convolved time-major, a univariate series' window by window
inside the loop (`time_major_windows`); so is a univariate MiniRocket's PPV on a batch. Elsewhere
MiniRocket's PPV is a product with one column (`sum_over_time`), which XLA fuses with the
comparison into one vectorised pass, over outputs convolved kernel-major, each block's dilations
by one batched product that writes the block in place (`kernel_major_convolutions`).
`MiniRocket.time_major` says where each. Measured against aeon's numba loops in
benchmarks/README.md, section vs_aeon.

Padding is not data: a series' length is its last step with a nonzero channel (or the Keras
mask's count when one is passed), convolution outputs past it are excluded from every pooling,
and since zero padding at the end is what the convolution's own "same" padding adds, a series'
features do not depend on how many zero steps follow it.

Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(20, 64, 1)).astype("float32")
    >>> layer = MiniRocket(num_features=840, seed=0)
    >>> layer.adapt(x)
    >>> layer(x).shape
    TensorShape([20, 840])
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from kseq.models.xla_programs import in_compiled_batches, shared_program, tracing_for_export

KERNEL_LENGTH = 9
# The three taps of weight +2 of each of the 84 kernels (the other six weigh -1).
_TRIPLES = np.array(list(itertools.combinations(range(KERNEL_LENGTH), 3)))
NUM_KERNELS = len(_TRIPLES)  # 84


def kernel_weights() -> np.ndarray:
    """The 84 MiniRocket kernels as a (9, 84) array: -1 everywhere, +2 on each kernel's three taps."""
    weights = -np.ones((NUM_KERNELS, KERNEL_LENGTH), dtype="float32")
    weights[np.arange(NUM_KERNELS)[:, None], _TRIPLES] = 2.0
    return weights.T


def fit_dilations(length: int, num_features: int, max_dilations_per_kernel: int = 32):
    """(dilations, features per dilation per kernel) for series of `length` steps, as the reference.

    Dilations are spread exponentially from 1 to the largest whose kernel spans the series,
    `(length - 1) / 8`; a dilation repeated by the rounding gets proportionally more biases.
    """
    per_kernel = num_features // NUM_KERNELS
    true_max = min(per_kernel, max_dilations_per_kernel)
    multiplier = per_kernel / true_max
    max_exponent = max(0.0, float(np.log2(max(length - 1, 1) / (KERNEL_LENGTH - 1))))
    dilations, counts = np.unique(np.logspace(0, max_exponent, true_max, base=2).astype(np.int32),
                                  return_counts=True)
    per_dilation = (counts * multiplier).astype(np.int32)
    remainder = per_kernel - per_dilation.sum()
    for i in range(remainder):
        per_dilation[i % len(per_dilation)] += 1
    return [int(d) for d in dilations], [int(n) for n in per_dilation]


def quantiles(n: int) -> np.ndarray:
    """The reference's low-discrepancy quantiles: the fractional parts of k times the golden ratio."""
    return (np.arange(1, n + 1) * (np.sqrt(5) + 1) / 2) % 1


def channel_combinations(rng: np.random.Generator, num_channels: int, num_dilations: int) -> np.ndarray:
    """(dilations, channels, 84) 0/1: the channels each kernel sums at each dilation.

    As the reference: 2**u channels, u uniform in [0, log2(min(channels, 9) + 1)), drawn without
    replacement; every channel for univariate series.
    """
    if num_channels == 1:
        return np.ones((num_dilations, 1, NUM_KERNELS), dtype="float32")
    counts = (2 ** rng.uniform(0, np.log2(min(num_channels, KERNEL_LENGTH) + 1),
                               (num_dilations, NUM_KERNELS))).astype(int)
    selection = np.zeros((num_dilations, num_channels, NUM_KERNELS), dtype="float32")
    for d, k in np.ndindex(num_dilations, NUM_KERNELS):
        selection[d, rng.choice(num_channels, counts[d, k], replace=False), k] = 1.0
    return selection


def series_lengths(x, mask=None):
    """(B,) int32 real lengths: the Keras mask's count, else up to the last step with a nonzero channel."""
    if mask is not None:
        return ops.sum(ops.cast(mask, "int32"), axis=1)
    steps = ops.arange(1, ops.shape(x)[1] + 1, dtype="int32")
    nonzero = ops.cast(ops.any(ops.not_equal(x, 0), axis=-1), "int32")
    return ops.max(nonzero * steps[None, :], axis=1)


def numpy_lengths(x: np.ndarray) -> np.ndarray:
    """`series_lengths` in NumPy, for `adapt`."""
    nonzero = np.any(x != 0, axis=-1)
    return np.where(nonzero.any(axis=1), x.shape[1] - np.argmax(nonzero[:, ::-1], axis=1), 0)


def representations(x, lengths, use_difference: bool):
    """[(series, lengths)] and, with `use_difference`, its first difference: zero past each length."""
    steps = ops.arange(ops.shape(x)[1], dtype="int32")[None, :, None]
    x = ops.where(steps < lengths[:, None, None], x, 0.0)
    out = [(x, lengths)]
    if use_difference:
        diff_lengths = ops.maximum(lengths - 1, 0)
        diff = x[:, 1:] - x[:, :-1]
        out.append((ops.where(steps[:, :-1] < diff_lengths[:, None, None], diff, 0.0), diff_lengths))
    return out


def above(conv, bias):
    """(rows, B, n, T) 1.0 where the outputs `conv` (rows, B, T) exceed each of their row's biases (rows, n)."""
    return ops.cast(conv[:, :, None, :] > bias[:, None, :, None], "float32")


def by_series(pooled):
    """(rows, B, n) pooled values -> (B, rows, n)."""
    return ops.transpose(pooled, (1, 0, 2))


def sum_over_time(values):
    """`values` (..., T) summed over time.

    Written as a product with one column on purpose: XLA compiles it into one vectorised pass
    that fuses the comparison producing `values`, about ten times faster on this CPU than the
    same `sum` (benchmarks/README.md, section vs_aeon); with two or more columns it does not."""
    return ops.squeeze(ops.matmul(values, ops.ones((values.shape[-1], 1), "float32")), axis=-1)


def pairwise(values, combine):
    """`values` combined two by two, then the results two by two, ..., down to one."""
    while len(values) > 1:
        values = [combine(*values[i:i + 2]) if i + 1 < len(values) else values[i] for i in range(0, len(values), 2)]
    return values[0]


UNROLL = 25  # steps per iteration of `pooled_in_one_pass`, for one series and for a chunk of series


# The sums `pooled_in_one_pass` carries for each operator.
PASS_SUMS = {"ppv": ("count",), "mpv": ("count", "above"), "mipv": ("count", "index_sum"), "lspv": ("run", "longest")}


def pooled_in_one_pass(blocks, operators=("ppv", "mpv", "mipv", "lspv")):
    """{operator: [(B, rows, n) per `Block`]}: the poolings `operators` (of MultiRocket's four,
    see `MultiRocket`) of time-major blocks, from one pass over time.

    The pass carries, for every block at once, the sums per output and bias that `operators`
    read (`PASS_SUMS`): the current run's length and the longest, the count of positive steps,
    their sum of `conv - bias` and their sum of indices. Only those are traced: MiniRocket's PPV
    alone, traced as all five sums (which XLA then dropped), compiled in 6.2 s for a chunk,
    against 4.6 s as the count alone, at the same speed (benchmarks/README.md, section vs_aeon).

    Each loop iteration reads a window of steps of every block (`time_major_windows`), -inf past
    the series. An iteration takes `UNROLL` steps: a chunk's iteration is mostly
    arithmetic, whose intermediates grow with the steps (64 series of 500: 1.7 ms a series at 25
    steps, 2.4 at 50), and for one series, where a fixed overhead per iteration weighs more, 25
    serves as fast as 50 or faster (one served `multirocket_hydra` request: 4.8-5.0 ms against
    4.8-5.2 on AVX-512, about 7% less on AVX2) and traces a smaller graph: the export's signatures
    hold the pass several times and LiteRT's converter lowers it op by op (a `multirocket_hydra`
    on 500 steps exported in 32 s against 39; benchmarks/README.md, section vs_aeon). The
    sums are carried bias-major, (B, n, rows), so that a step compares its outputs with each
    bias row by row, both contiguous: with rows outermost, (B, rows, n), each output is
    broadcast to its n biases inside the loop, and XLA's loop does not vectorise.

    One pass reads each output once, from one convolution. Before, PPV, MPV and MIPV were products
    with one column (`sum_over_time`) on kernel-major outputs, in one program, and LSPV a loop on
    time-major outputs in another: on 16 series of 500 steps their poolings took 54 ms to this
    pass's 43, and each program convolved the series again (benchmarks/README.md, section vs_aeon)."""
    iterations, windows = zip(*(block.windows(UNROLL) for block in blocks))
    biases = [ops.transpose(block.bias)[None] for block in blocks]  # (1, n, rows)
    needed = {name for op in operators for name in PASS_SUMS[op]}
    zeros = tuple(ops.zeros_like(block.steps[:, None, :] - bias) for block, bias in zip(blocks, biases))
    # Each sum: (B, n, rows) per block; runs in integers, a shorter chain of latencies.
    state = {name: tuple(ops.cast(each, "int32") for each in zeros) if name in ("run", "longest") else zeros
             for name in sorted(needed)}

    def step(i, state):
        state = {name: list(each) for name, each in state.items()}
        first = ops.cast(i * UNROLL, "float32")
        for b, bias in enumerate(biases):
            outputs = windows[b](i)
            excess = [outputs[u][:, None, :] - bias for u in range(UNROLL)]  # -inf outside the pooled steps
            positive = [each > 0.0 for each in excess]
            # The sums of the iteration's steps as trees, not chains, so that their additions overlap.
            if "run" in state:
                run, lengths = state["run"][b], []
                for each in positive:
                    run = ops.where(each, run + 1, 0)
                    lengths.append(run)
                state["run"][b] = run
                state["longest"][b] = ops.maximum(state["longest"][b], pairwise(lengths, ops.maximum))
            if "count" in state:
                state["count"][b] += pairwise([ops.cast(each, "float32") for each in positive], ops.add)
            if "above" in state:
                state["above"][b] += pairwise([ops.relu(each) for each in excess], ops.add)
            if "index_sum" in state:
                indices = [ops.where(each, first + u, 0.0) for u, each in enumerate(positive)]
                state["index_sum"][b] += pairwise(indices, ops.add)
        return {name: tuple(each) for name, each in state.items()}

    final = ops.fori_loop(0, iterations[0], step, state)
    sums = {name: [ops.transpose(ops.cast(v, "float32"), (0, 2, 1)) for v in each]  # (B, rows, n) per block
            for name, each in final.items() if name != "run"}
    pooled = {op: [] for op in operators}
    for b, block in enumerate(blocks):
        for op in operators:
            if op == "lspv":
                pooled[op].append(sums["longest"][b])
                continue
            count = sums["count"][b]
            if op == "ppv":
                pooled[op].append(count / block.steps[:, :, None])
            elif op == "mpv":
                pooled[op].append(ops.where(count > 0, sums["above"][b] / ops.maximum(count, 1.0), 0.0))
            else:  # mipv
                mipv = sums["index_sum"][b] - block.start[None, :, None].astype("float32") * count
                pooled[op].append(ops.where(count > 0, mipv / ops.maximum(count, 1.0), -1.0))
    return pooled


def convolutions(x, selection, dilations, time_major: bool = False):
    """For each dilation: (84, B, T) outputs of the 84 kernels on `x` (B, T, F), each summed over
    the channels `selection` (dilations, F, 84) gives it; with `time_major`, (T, B, 84).

    A dilated length-9 convolution is a matrix product of the nine shifted copies of the
    series with the (9 x channels, 84) kernel matrix, which runs as one BLAS call. Each layout
    comes out of its own product (`kernel_major_convolutions` for the first): transposing one
    into the other costs a pass over the outputs, and from time-major to kernel-major a slow one
    (measured: MiniRocket 1.5x slower). Univariate MultiRocket convolves time-major outputs
    elementwise instead, window by window (`time_major_windows`)."""
    if not time_major:
        for i, dilation in enumerate(dilations):
            yield kernel_major_convolutions([(x, dilation, selection[i])])
        return
    x = ops.transpose(x, (1, 0, 2))  # (T, B, F)
    for i, dilation in enumerate(dilations):
        yield ops.einsum("tbsf,sfk->tbk", dilated_taps(x, dilation, axis=0), kernel_matrix(selection[i]))


def kernel_matrix(selection):
    """(9, F, 84): the 84 kernels' weights on each channel, for their channels `selection` (F, 84)."""
    return ops.convert_to_tensor(kernel_weights())[:, None, :] * selection[None]


def kernel_major_convolutions(inputs):
    """(m x 84, B, T): the 84 kernels' outputs for each of the m `inputs` (series (B, T, F), dilation,
    selection (F, 84)), the series all of one shape, as one batched matrix product.

    Kernels outermost, and the m products one operation, so that each writes its outputs where
    the block holds them. MiniRocket on a chunk of 34 series of 500 steps: its 23 dilations'
    products took 30 ms writing (B, 84, T), kernels in the middle, 14 ms kernels outermost, and
    concatenating them into blocks took another 14 ms (benchmarks/README.md, section vs_aeon)."""
    steps = inputs[0][0].shape[1]
    taps = ops.stack([kernel_major_taps(x, dilation) for x, dilation, _ in inputs])  # (m, 9F, B x T)
    weights = ops.stack([kernel_rows(kernel_matrix(selection)) for _, _, selection in inputs])  # (m, 84, 9F)
    return ops.reshape(ops.matmul(weights, taps), (len(inputs) * NUM_KERNELS, -1, steps))


def kernel_rows(weights):
    """(K, 9 x F): the weights (9, F, K) of K kernels as the left operand of a product with
    `kernel_major_taps`."""
    return ops.transpose(ops.reshape(weights, (-1, weights.shape[-1])))


def kernel_major_taps(x, dilation: int):
    """(9 x F, B x T): `dilated_taps` of `x` (B, T, F), laid out for a product with a (K, 9 x F)
    kernel matrix on the left, whose (K, B x T) result is the K kernels' outputs kernel-major."""
    taps = dilated_taps(ops.transpose(x, (2, 0, 1)), dilation, axis=2, stack_axis=0)  # (9, F, B, T)
    return ops.reshape(taps, (KERNEL_LENGTH * x.shape[2], -1))


def dilated_taps(x, dilation: int, axis: int = 1, stack_axis: int = 2):
    """(B, T, 9, F): the nine steps a length-9 kernel at `dilation` sees around each step of `x`
    (B, T, F), zero beyond the ends ("same" padding). In general the same along `axis`, time, of
    a 3-D `x`, the nine stacked at `stack_axis`: time-major `x` (T, B, F) with `axis=0` gives
    (T, B, 9, F), and `x` (F, B, T) with `axis=2, stack_axis=0` gives (9, F, B, T). Convolutions
    written as a product with these run as one matrix product, also in LiteRT, whose convolution
    wants constant weights."""
    steps, pad = x.shape[axis], KERNEL_LENGTH // 2 * dilation
    padding = [(0, 0)] * 3
    padding[axis] = (pad, pad)
    padded = ops.pad(x, padding)
    window = [slice(None)] * 3
    taps = []
    for j in range(KERNEL_LENGTH):
        window[axis] = slice(j * dilation, j * dilation + steps)
        taps.append(padded[tuple(window)])
    return ops.stack(taps, axis=stack_axis)


class Block(NamedTuple):
    """Convolution outputs whose kernels have the same number of biases, pooled together.

    One of `outputs` and `windows` holds the outputs: kernel-major, `outputs` (rows, B, T), -inf
    outside the steps each row pools over; time-major, `windows`, the function of
    `time_major_windows` that computes them window by window. bias: (rows, n); start: (rows,)
    each row's first pooled step; steps: (B, rows) how many steps it pools (>= 1)."""
    outputs: object
    windows: object
    bias: object
    start: np.ndarray
    steps: object


def pooled_steps(conv, t, lengths, start):
    """`conv` (..., B, 84) where its steps `t` (..., 1, 1) are among those each kernel pools, for
    series of `lengths` (B,) and kernels starting at `start` (84,): else -inf."""
    return ops.where((t >= start[None, None, :]) & (t < lengths[None, :, None] - start[None, None, :]), conv,
                     float("-inf"))


def time_major_windows(members):
    """`windows(unroll)` -> (iterations, `at`): `at(i)` gives the (unroll, B, rows) outputs of the
    `members` (series (B, T, F), dilation, selection (F, 84), lengths (B,), starts (84,)), 84 rows
    each, at steps `i * unroll` to `(i + 1) * unroll`, -inf outside the steps each row pools (and
    past T), for the `iterations` that cover T.

    A univariate series is convolved window by window, inside the pass that reads the outputs:
    each window's nine taps are slices of the series, weighed and added elementwise, a fusion per
    member. The outputs are then never written out whole, copied into the loop and sliced out of
    it again, passes that took a third of the loop's time. MultiRocket on 500 steps, 2 threads:
    one series 3.4-3.9 -> 2.8-3.2 ms, 512 series 2.5 -> 1.9 ms a series (benchmarks/README.md,
    section vs_aeon); the block's members as one fusion, 4.7 ms a series. Multivariate outputs are
    products with nine taps x F channels, which run faster as one product over all steps, before
    the pass: in the window, one series of 500 x 6 took 10.5 ms against 5.9, and as 9F terms
    added elementwise 7-8 ms."""
    steps = members[0][0].shape[1]
    reach = KERNEL_LENGTH // 2 * max(dilation for _, dilation, *_ in members)  # the widest kernel's half span

    def windows(unroll: int):
        iterations = -(-steps // unroll)
        past = iterations * unroll - steps  # steps the last window reads past T
        if members[0][0].shape[2] > 1:
            t = ops.arange(steps, dtype="int32")[:, None, None]
            conv = ops.concatenate([pooled_steps(next(convolutions(x, kernels[None], [d], time_major=True)), t, length,
                                                 start) for x, d, kernels, length, start in members], axis=2)
            conv = ops.pad(conv, ((0, past), (0, 0), (0, 0)), constant_values=float("-inf"))
            by_iteration = ops.reshape(conv, (iterations, unroll, -1, conv.shape[2]))
            return iterations, lambda i: by_iteration[i]
        series = {}  # the members' series (the series, its difference), by identity: time-major, zero-padded
        # by the widest reach and to whole windows
        for x, *_ in members:
            series.setdefault(id(x), ops.pad(ops.transpose(x, (1, 0, 2)), ((reach, reach + past), (0, 0), (0, 0))))

        def at(i):
            first = i * unroll
            window = {key: tf.slice(each, [first, 0, 0], [unroll + 2 * reach, -1, -1]) for key, each in series.items()}
            t = (first + ops.arange(unroll, dtype="int32"))[:, None, None]
            outputs = []
            for x, dilation, _, length, start in members:
                taps = [window[id(x)][reach + offset * dilation:reach + offset * dilation + unroll]
                        for offset in range(-(KERNEL_LENGTH // 2), KERNEL_LENGTH // 2 + 1)]
                conv = sum(tap * weights for tap, weights in zip(taps, kernel_weights()))
                outputs.append(pooled_steps(conv, t, length, start))
            return ops.concatenate(outputs, axis=2)
        return iterations, at
    return windows


def start_steps(dilation_index: int, dilation: int) -> np.ndarray:
    """(84,) each kernel's first pooled step. As the reference, kernels alternate (by kernel and
    dilation index) between every step of the series and the steps whose receptive field lies
    inside it (padding excluded): those start, and end, half a kernel span in."""
    trimmed = (np.arange(NUM_KERNELS) + dilation_index) % 2 == 1
    return np.where(trimmed, KERNEL_LENGTH // 2 * dilation, 0).astype("int32")


def blocks_by_bias_count(plans, x, lengths, selections, biases, use_difference: bool, time_major: bool = False):
    """(blocks, order): every (representation, dilation)'s outputs of the 84 kernels, grouped into
    one `Block` per bias count, and, for each output feature (ordered by representation,
    dilation, kernel and bias), its index among the blocks' features flattened one after another.

    Pooled a block at a time (5 blocks for MultiRocket's 46 dilation-representation pairs on 500
    steps), a transform is a few large operations instead of a few per dilation: half the
    graph, traced in a quarter to a half of the time, and one loop over time instead of 46
    (benchmarks/README.md, section vs_aeon).

    The blocks are (rows, B, T), the layout the products of `sum_over_time` reduce, or with
    `time_major` windows of (steps, B, rows), the layout `pooled_in_one_pass` reads, each from
    convolutions in that layout: a transpose between them is a pass over every output
    (MultiRocket's LSPV program on chunks of 17 series of 500 steps: 22.9 ms a series after a
    transpose, 11.9 without)."""
    # members: bias count -> its (series, dilation, selection, lengths, starts, biases, first feature)s
    steps, members, position = x.shape[1], {}, 0
    for r, (series, series_length) in enumerate(representations(x, lengths, use_difference)):
        # The difference's T - 1 steps take one zero step more, as the convolution's "same" padding
        # would: every block's outputs then have T steps, the last of the difference's outside its region.
        series = ops.pad(series, ((0, 0), (0, steps - series.shape[1]), (0, 0)))
        dilations, per_dilation = plans[r]
        for i, (dilation, n) in enumerate(zip(dilations, per_dilation)):
            first = NUM_KERNELS * sum(per_dilation[:i])
            bias = ops.reshape(biases[r][first:first + NUM_KERNELS * n], (NUM_KERNELS, n))
            members.setdefault(n, []).append(
                (series, dilation, selections[r][i], series_length, start_steps(i, dilation), bias, position + first))
        position += NUM_KERNELS * sum(per_dilation)
    blocks, canonical = [], []  # canonical: the output position of each flattened block feature, blocks in order
    for n, group in members.items():
        series, dilation, selection, lengths, starts, bias, firsts = zip(*group)
        start = np.concatenate(starts)  # (rows,)
        length = ops.concatenate([ops.repeat(ops.expand_dims(each, 0), NUM_KERNELS, axis=0) for each in lengths])
        outputs = windows = None
        if time_major:
            windows = time_major_windows(list(zip(series, dilation, selection, lengths, starts)))
        else:  # (rows, B, T)
            t = ops.arange(steps, dtype="int32")[None, None, :]
            region = (t >= start[:, None, None]) & (t < length[:, :, None] - start[:, None, None])
            outputs = ops.where(region, kernel_major_convolutions(list(zip(series, dilation, selection))),
                                float("-inf"))
        # The region's size, from its bounds: a sum over the outputs would cost as much as a pooling.
        pooled = ops.cast(ops.maximum(ops.transpose(length) - 2 * start[None], 1), "float32")  # (B, rows)
        blocks.append(Block(outputs, windows, ops.concatenate(bias, axis=0), start, pooled))
        canonical.extend(index for first in firsts for index in range(first, first + NUM_KERNELS * n))
    return blocks, np.argsort(np.array(canonical)).astype("int32")


@keras.saving.register_keras_serializable(package="kseq")
class MiniRocket(layers.Layer):
    """MiniRocket features: (B, T, F) series -> (B, num_features) PPVs; T must be static.

    Args:
        num_features: features wanted; rounded down to a multiple of 84 (the reference: 10,000,
            giving 9,996).
        max_dilations_per_kernel: at most this many dilations (the reference: 32).
        seed: the seed of the channel combinations and of the series the biases come from.

    Call `adapt(x)` on training series (N, T, F) before use; until then every bias is 0.
    """

    use_difference = False
    operators = ("ppv",)

    def __init__(self, num_features: int = 10_000, max_dilations_per_kernel: int = 32, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # a Keras mask gives the series' lengths
        if num_features < NUM_KERNELS:
            raise ValueError(f"num_features must be at least {NUM_KERNELS}; got {num_features}")
        self.num_features = int(num_features)
        self.max_dilations_per_kernel = int(max_dilations_per_kernel)
        self.seed = int(seed)

    def build(self, input_shape):
        steps, channels = input_shape[1], input_shape[2]
        if steps is None:
            raise ValueError(f"{type(self).__name__} needs a fixed sequence length; got input shape {input_shape}")
        rng = np.random.default_rng(self.seed)
        self._plans = []  # per representation: (dilations, biases per dilation per kernel)
        self.selections, self.biases = [], []
        lengths = [steps, steps - 1] if self.use_difference else [steps]
        for r, length in enumerate(lengths):
            dilations, per_dilation = fit_dilations(length, self.num_features, self.max_dilations_per_kernel)
            self._plans.append((dilations, per_dilation))
            selection = channel_combinations(rng, channels, len(dilations))
            self.selections.append(self.add_weight(
                shape=selection.shape, initializer=keras.initializers.Constant(selection), trainable=False,
                name=f"channels_{r}"))
            self.biases.append(self.add_weight(shape=(NUM_KERNELS * sum(per_dilation),), initializer="zeros",
                                               trainable=False, name=f"biases_{r}"))

    @property
    def output_size(self) -> int:
        count = NUM_KERNELS * (self.num_features // NUM_KERNELS)
        return count * len(self.operators) * (2 if self.use_difference else 1)

    def call(self, inputs, mask=None):
        x = ops.cast(inputs, "float32")
        lengths = series_lengths(x, mask)
        weights = [v.value for v in self.selections], [v.value for v in self.biases]
        return in_compiled_batches(lambda x, lengths: self._program(self.time_major(x.shape))(x, lengths, *weights),
                                   x, lengths, self.output_size, self.rows_per_step)

    @property
    def rows_per_step(self) -> int:
        """The values a series' step has in the compiled programs, per dilation and representation
        (what `kseq.models.xla_programs.chunk_size` bounds): the 84 kernel outputs and, for
        multivariate series, the nine shifted copies of every channel that the outputs' product
        reads (`kernel_major_taps`). From 10 channels on the copies outnumber the outputs; counted
        without them, a chunk of 128 series of 144 steps and 963 channels held 20 GB. Univariate
        batches take the time-major pass, which never writes the copies out."""
        channels = self.selections[0].shape[1]
        taps = KERNEL_LENGTH * channels if channels > 1 else 0
        return (NUM_KERNELS + taps) * sum(len(dilations) for dilations, _ in self._plans)

    @staticmethod
    def time_major(shape) -> bool:
        """Whether a program for series of `shape` (B, T, F) pools in one pass over time-major
        outputs (`pooled_in_one_pass`), else by products with one column over kernel-major ones
        (`sum_over_time`). Features equal to the bit either way.

        Batches of univariate series take the pass, in process: their outputs are convolved
        window by window inside it, never written out whole, and 500-step series took 1.0 ms a
        series against the products' 1.8 ms on AVX2 (benchmarks/README.md, section vs_aeon).
        The products elsewhere: multivariate outputs are one product over all steps either way,
        and the pass read them 10-15% slower; one series, where the pass's fixed cost per
        iteration weighs most; and what the export traces (`traced_for_export`), since LiteRT's
        converter lowers the pass's unrolled loop op by op (a `minirocket` export 7 -> 25 s)."""
        return shape[2] == 1 and shape[0] != 1 and not tracing_for_export()

    def _program(self, time_major: bool):
        """The compiled `_features` for this layer's plan and layout (`shared_program`)."""
        layer_type, plans = type(self), self._plans
        key = (layer_type, time_major, tuple(tuple(map(tuple, plan)) for plan in plans))
        return shared_program(key, lambda: lambda x, lengths, selections, biases: layer_type._features(
            plans, time_major, x, lengths, selections, biases))

    @classmethod
    def _features(cls, plans, time_major, x, lengths, selections, biases):
        """(B, features), ordered by operator, representation, dilation, kernel and bias."""
        blocks, order = blocks_by_bias_count(plans, x, lengths, selections, biases, cls.use_difference,
                                             time_major=time_major)
        pooled = pooled_in_one_pass(blocks, cls.operators) if time_major else {"ppv": [
            by_series(sum_over_time(above(block.outputs, block.bias))) / block.steps[:, :, None] for block in blocks]}
        batch = ops.shape(x)[0]
        return ops.concatenate([ops.take(ops.concatenate([ops.reshape(v, (batch, -1)) for v in pooled[op]], axis=1),
                                         order, axis=1) for op in cls.operators], axis=-1)

    def compute_mask(self, inputs, mask=None):
        return None  # the mask is consumed: pooling leaves no time axis

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_size)

    def adapt(self, x, batch_size: int = 256):
        """Fit the biases on training series `x` (N, T, F), zero-padded at the end.

        For each dilation and kernel, one training series drawn at random (from `seed`) is
        convolved, and the biases are quantiles of its outputs over its real length."""
        x = np.asarray(x, dtype="float32")
        if not self.built:
            self.build((None, *x.shape[1:]))
        rng = np.random.default_rng([self.seed, 1])
        lengths = numpy_lengths(x)
        for r, (dilations, per_dilation) in enumerate(self._plans):
            q = quantiles(NUM_KERNELS * sum(per_dilation))
            biases, offset = [], 0
            for i, dilation in enumerate(dilations):
                chosen = rng.integers(len(x), size=NUM_KERNELS)
                series, series_length = representations(ops.convert_to_tensor(x[chosen]),
                                                        ops.convert_to_tensor(lengths[chosen].astype("int32")),
                                                        self.use_difference)[r]
                conv = next(convolutions(series, self.selections[r][i:i + 1], [dilation]))
                conv = ops.convert_to_numpy(conv)
                series_length = ops.convert_to_numpy(series_length)
                for k in range(NUM_KERNELS):
                    n = per_dilation[i]
                    outputs = conv[k, k, :max(series_length[k], 1)]  # kernel k on its own series
                    biases.append(np.quantile(outputs, q[offset:offset + n]))
                    offset += n
            self.biases[r].assign(np.concatenate(biases).astype("float32"))

    def get_config(self):
        return {**super().get_config(), "num_features": self.num_features,
                "max_dilations_per_kernel": self.max_dilations_per_kernel, "seed": self.seed}


@keras.saving.register_keras_serializable(package="kseq")
class MultiRocket(MiniRocket):
    """MultiRocket features: MiniRocket's kernels on the series and its first difference, four poolings.

    For each kernel, dilation and bias `b`, over the steps the kernel pools (`P` those where
    `C > b`):
    - PPV: the proportion of steps in `P`;
    - MPV: the mean of `C - b` over `P` (0 when `P` is empty);
    - MIPV: the mean index of `P`'s steps, counted from the first pooled step (-1 when empty);
    - LSPV: the longest run of consecutive steps in `P`.

    Output: (B, 8 * num_features) ordered by operator (PPV, MPV, MIPV, LSPV), then series before
    difference, then dilation, kernel and bias. The reference's `num_features` is 6,250 (aeon's
    `n_kernels`): 49,728 features.
    """

    use_difference = True
    operators = ("ppv", "mpv", "mipv", "lspv")

    def __init__(self, num_features: int = 6_250, max_dilations_per_kernel: int = 32, seed: int = 0, **kwargs):
        super().__init__(num_features, max_dilations_per_kernel, seed, **kwargs)

    @staticmethod
    def time_major(shape) -> bool:
        """Always one pass: it reads each output once for all four poolings, LSPV's runs among them."""
        return True
