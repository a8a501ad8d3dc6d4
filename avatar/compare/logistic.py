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
CURVATURE_FLOOR = 0.01   # of p (1 - p) in the preconditioner (see Problems.inverse_curvature)
ROWS = 128          # rows per block of the objective (a block's logits: ~3 MB at 328 x 20 classes)


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

    def inverse_curvature(self) -> np.ndarray:
        """(F, d, C) L-BFGS's starting inverse Hessian, diagonal: 1 / (p_c (1 - p_c) + penalty), the
        Hessian's diagonal for standardised codes at the class frequencies p_c (the optimum of the
        intercepts alone). A rare class has little curvature; without this scaling the skewed bins of
        a prior-drawn slider took about twice the iterations. The floor keeps rare classes' steps sane."""
        p = np.zeros((self.F, self.C_max))
        for j in range(self.F):
            p[j, :self.n_classes[j]] = np.bincount(self.y[j], minlength=self.n_classes[j]) / self.n
        h = np.maximum(p * (1.0 - p), CURVATURE_FLOOR) + self.penalty[:, None]
        return np.broadcast_to(1.0 / h[:, None, :], (self.F, self.d, self.C_max)).copy()

    def value_grad(self, W: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Objective (f,) and gradient (f, d, C) of the factors ``idx`` at weights W (f, d, C).

        Rows go ``ROWS`` at a time, so each block's logits stay in the core's cache between the
        two products and the softmax passes (a whole (n, f, C) block is tens of MB)."""
        from avatar.compare._kernels import softmax_loss
        f = len(idx)
        Wt = W.transpose(1, 0, 2).reshape(self.d, f * self.C_max).astype(self.xa.dtype)
        y, n_classes = self.y[idx], self.n_classes[idx]
        G = np.zeros((self.d, f * self.C_max), self.xa.dtype)
        loss = np.zeros(f)
        for start in range(0, self.n, ROWS):
            xa = self.xa[start:start + ROWS]
            Z = (xa @ Wt).reshape(len(xa), f, self.C_max)
            loss += softmax_loss(Z, np.ascontiguousarray(y[:, start:start + ROWS]), n_classes).sum(axis=0)
            G += xa.T @ Z.reshape(len(xa), -1)                # Z is now p - onehot
        G = G.reshape(self.d, f, self.C_max).transpose(1, 0, 2).astype(np.float64) / self.n
        Wp = W * self.penalised[None, :, None]
        penalty = self.penalty[idx]
        G += penalty[:, None, None] * Wp
        return loss / self.n + 0.5 * penalty * np.einsum("fdc,fdc->f", Wp, Wp), G


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
    prob = Problems(np.asarray(x, np.float64), y, sizes, C, np.float32)
    P = prob.inverse_curvature()
    W, first = _lbfgs(prob, tol, max_iter, None, P)
    W, iterations = _lbfgs(Problems(np.asarray(x, np.float64), y, sizes, C), tol, max_iter, W, P)
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


def _lbfgs(prob: Problems, tol: float, max_iter: int, W0: np.ndarray | None = None, P: np.ndarray | None = None):
    """L-BFGS with backtracking (Armijo) on every factor at once, from W0 (F, d, C) or zeros, with
    the diagonal starting inverse Hessian ``gamma P`` (P (F, d, C), default ones); a factor stops
    on its own test. The working arrays hold the unfinished factors only: they
    shrink as factors finish, so an iteration never gathers or copies the others.

    Returns W (F, d, C) and each factor's iteration count (F,).
    """
    F, shape = prob.F, (prob.d, prob.C_max)
    D = prob.d * prob.C_max
    W_out = np.zeros((F, D)) if W0 is None else W0.reshape(F, D).copy()
    iterations = np.zeros(F, np.int64)
    ids = np.arange(F)                                       # the working set's factors
    W = W_out.copy()
    fval, G = prob.value_grad(W.reshape(F, *shape), ids)
    G = G.reshape(F, D)
    S, Y, rho = np.zeros((F, MEMORY, D)), np.zeros((F, MEMORY, D)), np.zeros((F, MEMORY))
    gamma = np.ones(F)
    P = np.ones((F, D)) if P is None else P.reshape(F, D)
    work = [W, G, fval, S, Y, rho, gamma, P]
    keep = np.abs(G).max(axis=1) > tol
    fresh = W0 is None
    for it in range(max_iter):
        if not keep.all():                                   # drop the finished factors
            ids, work = ids[keep], [a[keep] for a in work]
        W, G, fval, S, Y, rho, gamma, P = work
        if len(ids) == 0:
            break
        # 1. direction -H g by the two-loop recursion, newest pair first (unused pairs have rho 0)
        q = G.copy()
        order = [(it - 1 - m) % MEMORY for m in range(MEMORY)]
        alpha = np.zeros((len(ids), MEMORY))
        for m in order:
            alpha[:, m] = rho[:, m] * np.einsum("fd,fd->f", S[:, m], q)
            q -= alpha[:, m, None] * Y[:, m]
        q *= gamma[:, None] * P
        for m in reversed(order):
            beta = rho[:, m] * np.einsum("fd,fd->f", Y[:, m], q)
            q += (alpha[:, m] - beta)[:, None] * S[:, m]
        direction = -q
        slope = np.einsum("fd,fd->f", G, direction)
        reset = slope >= 0                                  # not a descent direction: steepest descent
        direction[reset] = -G[reset]
        slope[reset] = -np.einsum("fd,fd->f", G[reset], G[reset])
        step = np.ones(len(ids))
        if it == 0 and fresh:
            step = np.minimum(1.0, 1.0 / np.abs(G * P).sum(axis=1))
        # 2. backtracking: halve the step of each factor that has not decreased enough
        new_f, new_G = np.empty(len(ids)), np.empty((len(ids), D))
        todo = np.arange(len(ids))
        for _ in range(MAX_HALVINGS):
            trial = W[todo] + step[todo, None] * direction[todo]
            f_t, G_t = prob.value_grad(trial.reshape(len(todo), *shape), ids[todo])
            ok = f_t <= fval[todo] + ARMIJO * step[todo] * slope[todo]
            new_f[todo[ok]], new_G[todo[ok]] = f_t[ok], G_t.reshape(len(todo), D)[ok]
            todo = todo[~ok]
            if len(todo) == 0:
                break
            step[todo] *= 0.5
        moved = np.ones(len(ids), bool)
        moved[todo] = False                                 # no decrease found: at the float floor
        s = step[moved, None] * direction[moved]
        yv = new_G[moved] - G[moved]
        sy = np.einsum("fd,fd->f", s, yv)
        yy = np.einsum("fd,fd->f", yv, yv)
        slot = it % MEMORY
        good = sy > 1e-10 * yy                              # keep curvature pairs only
        i = np.flatnonzero(moved)
        S[i, slot] = np.where(good[:, None], s, 0.0)
        Y[i, slot] = np.where(good[:, None], yv, 0.0)
        rho[i, slot] = np.where(good, 1.0 / np.where(good, sy, 1.0), 0.0)
        yPy = np.einsum("fd,fd,fd->f", yv, P[i], yv)
        gamma[i[good]] = sy[good] / yPy[good]
        f_old = fval[i]
        W[i] += s
        fval[i], G[i] = new_f[moved], new_G[moved]
        iterations[ids] += 1
        small = (f_old - fval[i]) <= 64 * np.finfo(float).eps * np.maximum(np.maximum(np.abs(f_old), np.abs(fval[i])), 1.0)
        done = ~moved
        done[i] = (np.abs(G[i]).max(axis=1) <= tol) | small
        W_out[ids[done]] = W[done]
        keep = ~done
    W_out[ids] = work[0]                                     # factors stopped by max_iter
    return W_out.reshape(F, *shape), iterations
