"""The compiled inner loops of the compare step's solvers (numba; compiled once, cached on disk):
the batched logistic regression's softmax and the one-code SVMs' predictions."""
from __future__ import annotations

import numpy as np
from numba import njit, prange


def softmax_loss(Z, y, n_classes):
    """Per-row losses, with the logits turned into their gradient in place.

    Z : (n, f, C) logits; only the first ``n_classes[j]`` columns of factor j are used
    y : (f, n) class indices

    Returns loss (n, f) float64: ``logsumexp(z) - z_y`` per row and factor; Z then holds
    ``softmax(z) - onehot(y)`` (0 in the unused columns). The exponentials are numpy's (SIMD,
    several times a scalar loop's speed), between two compiled passes.
    """
    zy = _shift_by_max(Z, y, n_classes)       # Z - max (unused columns -inf); zy = z_y - max
    np.exp(Z, out=Z)
    return _normalise(Z, y, n_classes, zy)


# reassociation lets LLVM vectorise the class loops' max and sum; no "ninf"/"nnan": the unused
# columns are -inf on purpose
FAST = {"reassoc", "nsz", "arcp", "contract"}


@njit(parallel=True, cache=True, fastmath=FAST)
def _shift_by_max(Z, y, n_classes):
    n, f, C = Z.shape
    zy = np.empty((n, f))
    for i in prange(n):
        for j in range(f):
            c_n = n_classes[j]
            top = Z[i, j, 0]
            for c in range(1, c_n):
                if Z[i, j, c] > top:
                    top = Z[i, j, c]
            for c in range(c_n):
                Z[i, j, c] -= top
            for c in range(c_n, C):
                Z[i, j, c] = -np.inf
            zy[i, j] = Z[i, j, y[j, i]]
    return zy


@njit(parallel=True, cache=True, fastmath=FAST)
def _normalise(Z, y, n_classes, zy):
    n, f, C = Z.shape
    loss = np.empty((n, f))
    for i in prange(n):
        for j in range(f):
            c_n = n_classes[j]
            total = 0.0
            for c in range(c_n):
                total += Z[i, j, c]
            loss[i, j] = np.log(total) - zy[i, j]
            inv = 1.0 / total
            for c in range(c_n):
                Z[i, j, c] *= inv
            Z[i, j, y[j, i]] -= 1.0
    return loss


@njit(parallel=True, cache=True)
def argmax_affine(x, coef, intercept):
    """(n, k) the class index each code's one-vs-rest SVM picks: argmax_c of x[:, i] coef[i, c] +
    intercept[i, c] (the first of equals, as np.argmax). x : (n, k); coef, intercept : (k, P)."""
    n, k = x.shape
    out = np.empty((n, k), np.int64)
    for i in prange(k):
        for r in range(n):
            best = x[r, i] * coef[i, 0] + intercept[i, 0]
            arg = 0
            for c in range(1, coef.shape[1]):
                dec = x[r, i] * coef[i, c] + intercept[i, c]
                if dec > best:
                    best, arg = dec, c
            out[r, i] = arg
    return out
