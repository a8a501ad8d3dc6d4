"""The compiled inner loops of the compare step's solvers (numba; compiled once, cached on disk):
the batched logistic regression's softmax and the one-code SVMs' predictions."""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def softmax_loss(Z, y, n_classes):
    """Per-row losses, with the logits turned into their gradient in place.

    Z : (n, f, C) logits; only the first ``n_classes[j]`` columns of factor j are used
    y : (f, n) class indices

    Returns loss (n, f): ``logsumexp(z) - z_y`` per row and factor; Z then holds ``softmax(z) -
    onehot(y)`` (0 in the unused columns).
    """
    n, f, C = Z.shape
    loss = np.empty((n, f))
    for i in prange(n):
        for j in range(f):
            c_n = n_classes[j]
            top = Z[i, j, 0]
            for c in range(1, c_n):
                if Z[i, j, c] > top:
                    top = Z[i, j, c]
            zy = Z[i, j, y[j, i]]
            total = 0.0
            for c in range(c_n):
                e = np.exp(Z[i, j, c] - top)
                Z[i, j, c] = e
                total += e
            loss[i, j] = np.log(total) + top - zy
            for c in range(c_n):
                Z[i, j, c] /= total
            for c in range(c_n, C):
                Z[i, j, c] = 0.0
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
