"""Closed-form ridge classifier with leave-one-out choice of the penalty, as `RidgeClassifierCV`.

The random-kernel papers (MiniRocket, MultiRocket, Hydra) classify their features with
scikit-learn's `RidgeClassifierCV`: one-vs-rest targets in {-1, +1}, an intercept, and the penalty
`alpha` among `ALPHAS` with the lowest leave-one-out squared error, which a single
eigendecomposition gives for every alpha at once (Rifkin and Lippert 2007, "Notes on regularized
least squares"; scikit-learn's `_RidgeGCV`). This is that computation in NumPy, on the smaller of
the Gram matrix `X X^T` (N <= D, the usual case: thousands of series, tens of thousands of
features) and the covariance `X^T X` (N > D), so the result ends in an ordinary Keras `Dense`
layer with no scikit-learn at serving time. Per-series weights (`sample_weight`, as scikit-learn's
`sample_weight` or `class_weight`) weigh each series' squared error in the fit and in the
leave-one-out error: how the ridge head takes kseq's class weights on imbalanced data.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(30, 50)), np.arange(30) % 3
    >>> fit = ridge_classifier(x, y, 3)
    >>> fit.kernel.shape, fit.bias.shape, float(fit.alpha) in ALPHAS
    ((50, 3), (3,), True)
"""

from __future__ import annotations

import dataclasses

import numpy as np

ALPHAS = tuple(np.logspace(-3, 3, 10))  # the MiniRocket / MultiRocket / aeon default grid
COLUMN_BLOCK = 2048  # features taken at a time into float64 (`column_blocks`)


@dataclasses.dataclass
class RidgeFit:
    """`x @ kernel + bias` are the decision values (one column per class); `alpha` the chosen penalty."""

    kernel: np.ndarray
    bias: np.ndarray
    alpha: float


def ridge_targets(y: np.ndarray, num_classes: int) -> np.ndarray:
    """One-vs-rest targets: +1 for the series' class, -1 for every other, (N, num_classes)."""
    return np.where(np.arange(num_classes)[None, :] == np.asarray(y)[:, None], 1.0, -1.0)


def ridge_classifier(x: np.ndarray, y: np.ndarray, num_classes: int, alphas=ALPHAS,
                     sample_weight: np.ndarray | None = None) -> RidgeFit:
    """Fit ridge regression of `ridge_targets(y)` on features `x` (N, D), alpha by leave-one-out error.

    Features and targets are centred (the intercept is not penalised). With the eigenvectors `Q`
    and eigenvalues `v` of the centred Gram matrix, `(K + alpha I)^-1 = Q diag(1 / (v + alpha)) Q^T`,
    the dual coefficients are `c = (K + alpha I)^-1 Y`, and the leave-one-out residual of series i is
    `c_i / [(K + alpha I)^-1]_ii`. For a binary problem the two columns are each other's negatives,
    so the chosen alpha and the decisions are those of scikit-learn's single column.
    With `sample_weight` `w` (N,), as scikit-learn does: the means are weighted, every centred row
    is scaled by `sqrt(w_i)` (so series i's squared error counts `w_i` times, in the fit and in the
    leave-one-out error), and the intercept's direction is `sqrt(w)`.
    """
    x = np.asarray(x)
    targets = ridge_targets(y, num_classes)
    weight = np.ones(len(x)) if sample_weight is None else np.asarray(sample_weight, dtype="float64")
    root = np.sqrt(weight)
    n, d = x.shape
    x_mean = np.empty(d)
    for columns, block in column_blocks(x):
        x_mean[columns] = weight @ block / weight.sum()
    y_mean = np.average(targets, axis=0, weights=weight)
    targets_c = (targets - y_mean) * root[:, None]
    intercept_axis = root / np.linalg.norm(root)  # the intercept's direction, left unpenalised
    if n <= d:
        gram = np.zeros((n, n))
        for columns, block in column_blocks(x, x_mean, root):
            gram += block @ block.T
        values, vectors = np.linalg.eigh(gram)
        del gram
        # The intercept's eigenvector (eigenvalue 0 of the centred Gram) gets no weight, as in scikit-learn.
        intercept = np.argmax(np.abs(vectors.T @ intercept_axis))
        projected = vectors.T @ targets_c
        best = None
        for alpha in alphas:
            w = 1 / (values + alpha)
            w[intercept] = 0.0
            dual = vectors @ (w[:, None] * projected)
            diagonal = (vectors ** 2) @ w
            error = np.mean((dual / diagonal[:, None]) ** 2)
            if best is None or error < best[0]:
                best = (error, alpha, dual)
        _, alpha, dual = best
        kernel = np.empty((d, num_classes))
        for columns, block in column_blocks(x, x_mean, root):
            kernel[columns] = block.T @ dual
    else:
        centred = (x.astype("float64") - x_mean) * root[:, None]  # d < n: as small as the covariance's factors
        values, right = np.linalg.eigh(centred.T @ centred)
        keep = values > values.max() * max(n, d) * np.finfo(float).eps
        values, right = values[keep], right[:, keep]
        left = centred @ right / np.sqrt(values)  # the left singular vectors of the centred features
        projected = left.T @ targets_c
        best = None
        for alpha in alphas:
            w = 1 / (values + alpha) - 1 / alpha
            dual = left @ (w[:, None] * projected) + targets_c / alpha
            # The intercept's direction is cancelled (weight 0) like every direction outside `left` is 1/alpha.
            diagonal = (left ** 2) @ w + 1 / alpha - intercept_axis ** 2 / alpha
            error = np.mean((dual / diagonal[:, None]) ** 2)
            if best is None or error < best[0]:
                best = (error, alpha, dual)
        _, alpha, dual = best
        kernel = centred.T @ dual
    return RidgeFit(kernel=kernel.astype("float32"), bias=(y_mean - x_mean @ kernel).astype("float32"),
                    alpha=float(alpha))


def column_blocks(x, x_mean=None, root=None):
    """(columns, block) over `COLUMN_BLOCK` columns of `x` at a time, in float64: `x[:, columns]`,
    or with `x_mean` and `root` its centred rows scaled by `root`. A Gram matrix, a kernel and
    per-feature statistics (`kseq.models.random_kernels.FeatureScaling`) are sums over blocks of
    columns, so the N x D features are never copied whole: in float64, centred and weighted, three
    copies of them had held six times their float32 size (6,599 series of 54,848
    `multirocket_hydra` features: 8.7 GB beside their own 1.4 GB)."""
    for start in range(0, x.shape[1], COLUMN_BLOCK):
        columns = slice(start, start + COLUMN_BLOCK)
        block = x[:, columns].astype("float64")
        yield columns, block if x_mean is None else (block - x_mean[columns]) * root[:, None]
