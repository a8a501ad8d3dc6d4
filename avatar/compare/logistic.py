"""Multinomial logistic regression of many factors on the same codes, all at once.

Explicitness fits sklearn's ``LogisticRegression()`` (multinomial, L2 with C = 1, intercept
unpenalised) once per factor on the same codes. Fitting them one by one costs ~100 ms each, nearly
all of it per-iteration overhead; here every factor's problem is one slice of a batched L-BFGS,
so an iteration is two matrix products over all factors. Each problem is strictly convex in its
probabilities, so both reach the same optimum: sklearn's objective

    f(W) = mean_i [logsumexp_c z_ic - z_i,y_i] + ||W without intercepts||^2 / (2 C n),   z = [x, 1] W

stopped, like scipy's L-BFGS-B in sklearn, when the largest gradient entry is at most ``tol``
(1e-4). Classes a factor lacks in its training labels are left out of its softmax. A factor with
two classes is sklearn's binary model (one logit, penalty ||w||^2 / (2 C n)): its two logits'
weights are -w/2 and w/2, under twice the penalty.

    from avatar.compare.logistic import fit_logistic, predict_proba
    W = fit_logistic(x, labels)             # (F, k + 1, C_max) weights, last row the intercepts
    P = predict_proba(W, x_test, labels)    # (F, n_test, C_max), 0 for a factor's absent classes
"""
from __future__ import annotations

import numpy as np

MEMORY = 10          # L-BFGS pairs kept (scipy's default)
ARMIJO = 1e-4        # sufficient decrease of the backtracking line search
MAX_HALVINGS = 30


class Problems:
    """The batched objective: codes ``xa`` (n, d) with a ones column, per-factor class indices ``y``
    (F, n) and class counts ``n_classes`` (F,) (a factor's columns past its count are unused)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, n_classes: np.ndarray, C: float = 1.0,
                 dtype=np.float64):
        self.xa = np.hstack([x, np.ones((len(x), 1))]).astype(dtype)   # the products' precision
        self.y = y
        self.n, self.d = self.xa.shape
        self.F, self.C_max = len(y), int(n_classes.max())
        self.n_classes = np.asarray(n_classes, np.int64)
        # sklearn fits 2 classes with one logit and ||w||^2 / (2 C n); the softmax's two logits
        # reach that optimum as w / 2 and -w / 2 with twice the penalty
        self.penalty = np.where(self.n_classes == 2, 2.0, 1.0) / (C * self.n)
        self.penalised = np.ones(self.d)
        self.penalised[-1] = 0.0        # the intercepts are not penalised

    def value_grad(self, W: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Objective (f,) and gradient (f, d, C) of the factors ``idx`` at weights W (f, d, C)."""
        from avatar.compare._kernels import softmax_loss
        f = len(idx)
        Wt = W.transpose(1, 0, 2).reshape(self.d, f * self.C_max).astype(self.xa.dtype)
        Z = (self.xa @ Wt).reshape(self.n, f, self.C_max)
        loss = softmax_loss(Z, self.y[idx], self.n_classes[idx]).mean(axis=0)   # Z is now p - onehot
        G = (self.xa.T @ Z.reshape(self.n, -1)).reshape(self.d, f, self.C_max).transpose(1, 0, 2)
        G = G.astype(np.float64) / self.n
        Wp = W * self.penalised[None, :, None]
        penalty = self.penalty[idx]
        G += penalty[:, None, None] * Wp
        return loss + 0.5 * penalty * np.einsum("fdc,fdc->f", Wp, Wp), G


def fit_logistic(x: np.ndarray, labels: np.ndarray, C: float = 1.0, tol: float = 1e-4,
                 max_iter: int = 500) -> tuple[np.ndarray, list, np.ndarray]:
    """Fit every factor's multinomial logistic regression on the codes ``x``.

    Parameters
    ----------
    x : (n, k) float codes (standardise them first, as explicitness does)
    labels : (n, F) int labels; each column with at least 2 classes
    tol : stop a factor when its largest gradient entry is at most this (sklearn's ``tol``)
    max_iter : L-BFGS iterations at most per factor

    Returns
    -------
    W : (F, k + 1, C_max) weights (last row: intercepts); classes : F arrays (the labels of the
    columns, as sklearn's ``classes_``); iterations : (F,) int.
    """
    labels = np.asarray(labels)
    encoded = [np.unique(labels[:, j], return_inverse=True) for j in range(labels.shape[1])]
    classes = [c for c, _ in encoded]
    if min(len(c) for c in classes) < 2:
        raise ValueError("every factor needs at least 2 classes in the training labels")
    y = np.stack([np.asarray(inv, np.int64).ravel() for _, inv in encoded])
    sizes = np.array([len(c) for c in classes])
    # most of the way in float32 (half the arithmetic and memory), the rest in float64 from there:
    # the stopping test is always the float64 gradient's
    W, first = _lbfgs(Problems(np.asarray(x, np.float64), y, sizes, C, np.float32), tol, max_iter)
    W, iterations = _lbfgs(Problems(np.asarray(x, np.float64), y, sizes, C), tol, max_iter, W)
    iterations += first
    return W, classes, iterations


def predict_proba(W: np.ndarray, x: np.ndarray, n_classes: np.ndarray) -> np.ndarray:
    """(F, n, C_max) class probabilities of every factor for the codes ``x`` (n, k)."""
    xa = np.hstack([np.asarray(x, np.float64), np.ones((len(x), 1))])
    F, d, C_max = W.shape
    Z = (xa @ W.transpose(1, 0, 2).reshape(d, F * C_max)).reshape(len(x), F, C_max)
    Z += np.where(np.arange(C_max)[None, :] < np.asarray(n_classes)[:, None], 0.0, -np.inf)[None]
    Z -= Z.max(axis=2, keepdims=True)
    np.exp(Z, out=Z)
    Z /= Z.sum(axis=2, keepdims=True)
    return Z.transpose(1, 0, 2)


def _lbfgs(prob: Problems, tol: float, max_iter: int, W0: np.ndarray | None = None):
    """L-BFGS with backtracking (Armijo) on every factor at once, from W0 (F, d, C) or zeros; a
    factor stops on its own test.

    Returns W (F, d, C) and each factor's iteration count (F,).
    """
    F, shape = prob.F, (prob.d, prob.C_max)
    D = prob.d * prob.C_max
    W = np.zeros((F, D)) if W0 is None else W0.reshape(F, D).copy()
    fval, G = prob.value_grad(W.reshape(F, *shape), np.arange(F))
    G = G.reshape(F, D)
    S_hist, Y_hist, rho = np.zeros((F, MEMORY, D)), np.zeros((F, MEMORY, D)), np.zeros((F, MEMORY))
    iterations = np.zeros(F, np.int64)
    active = np.abs(G).max(axis=1) > tol
    gamma = np.ones(F)
    fresh = W0 is None
    for it in range(max_iter):
        idx = np.flatnonzero(active)
        if len(idx) == 0:
            break
        # 1. direction -H g by the two-loop recursion, newest pair first (unused pairs have rho 0)
        q = G[idx].copy()
        order = [(it - 1 - m) % MEMORY for m in range(MEMORY)]
        alpha = np.zeros((len(idx), MEMORY))
        for m in order:
            alpha[:, m] = rho[idx, m] * np.einsum("fd,fd->f", S_hist[idx, m], q)
            q -= alpha[:, m, None] * Y_hist[idx, m]
        q *= gamma[idx, None]
        for m in reversed(order):
            beta = rho[idx, m] * np.einsum("fd,fd->f", Y_hist[idx, m], q)
            q += (alpha[:, m] - beta)[:, None] * S_hist[idx, m]
        direction = -q
        slope = np.einsum("fd,fd->f", G[idx], direction)
        reset = slope >= 0                                  # not a descent direction: steepest descent
        direction[reset] = -G[idx][reset]
        slope[reset] = -np.einsum("fd,fd->f", G[idx][reset], G[idx][reset])
        step = np.ones(len(idx))
        if it == 0 and fresh:
            step = np.minimum(1.0, 1.0 / np.abs(G[idx]).sum(axis=1))
        # 2. backtracking: halve the step of each factor that has not decreased enough
        new_f, new_G = np.empty(len(idx)), np.empty((len(idx), D))
        todo = np.arange(len(idx))
        for _ in range(MAX_HALVINGS):
            trial = W[idx[todo]] + step[todo, None] * direction[todo]
            f_t, G_t = prob.value_grad(trial.reshape(len(todo), *shape), idx[todo])
            ok = f_t <= fval[idx[todo]] + ARMIJO * step[todo] * slope[todo]
            new_f[todo[ok]], new_G[todo[ok]] = f_t[ok], G_t.reshape(len(todo), D)[ok]
            todo = todo[~ok]
            if len(todo) == 0:
                break
            step[todo] *= 0.5
        stuck = np.zeros(len(idx), bool)
        stuck[todo] = True                                  # no decrease found: at the float floor
        moved = ~stuck
        i = idx[moved]
        s = step[moved, None] * direction[moved]
        yv = new_G[moved] - G[i]
        sy = np.einsum("fd,fd->f", s, yv)
        slot = it % MEMORY
        good = sy > 1e-10 * np.einsum("fd,fd->f", yv, yv)   # keep curvature pairs only
        S_hist[i, slot] = np.where(good[:, None], s, 0.0)
        Y_hist[i, slot] = np.where(good[:, None], yv, 0.0)
        rho[i, slot] = np.where(good, 1.0 / np.where(good, sy, 1.0), 0.0)
        gamma[i[good]] = sy[good] / np.einsum("fd,fd->f", yv[good], yv[good])
        f_old = fval[i]
        W[i] += s
        fval[i], G[i] = new_f[moved], new_G[moved]
        iterations[idx] += 1
        small = (f_old - fval[i]) <= 64 * np.finfo(float).eps * np.maximum(np.maximum(np.abs(f_old), np.abs(fval[i])), 1.0)
        done = np.zeros(len(idx), bool)
        done[moved] = (np.abs(G[i]).max(axis=1) <= tol) | small
        done |= stuck
        active[idx[done]] = False
    return W.reshape(F, *shape), iterations
