"""One-feature linear SVMs for many codes and factors at once: what SAP fits k * F times.

SAP trains ``LinearSVC(C=0.01, class_weight="balanced")`` on each code alone
against each factor. sklearn spends ~4 ms per fit, mostly overhead, so 83 factors
x 32 codes (2,000 rows) take 12 s of CPU; solved together here, 1 s.

The problem (liblinear's L2-regularised squared-hinge primal, bias as a feature
of value 1, so the bias is penalised too), for one code x and one class:

    min_{w,b}  (w^2 + b^2) / 2 + sum_i c_i max(0, 1 - y_i (w x_i + b))^2

with y_i = +1 for the class and -1 for the rest. As in liblinear, with K > 2
classes the one-vs-rest problems use c_i = C * weight(class) on the positives and
c_i = C on the negatives; with K = 2 one problem takes class 1 as positive and
each side its own weighted C. "balanced" weights are n / (K * count(class)).

With one feature, each problem's active samples are a range of the code's sorted
values, so sums over them come from prefix sums (per code, and per code and
class) and one Newton step costs a few searchsorted calls for every problem at
once. Newton with backtracking reaches the unique optimum (strictly convex,
piecewise quadratic); liblinear stops at a tolerance, so the two agree up to
points lying on a decision boundary (tests check coefficients and accuracies).
"""
from __future__ import annotations

import numpy as np

_CHUNK = 600_000  # codes * factors * samples per batch: small enough to stay in cache


class _Batch:
    """Prefix sums for a batch of factors over shared sorted codes.

    A problem is one (code, factor, positive class) triple; every method takes
    flat (m,) arrays of them, so converged problems simply drop out.
    """

    def __init__(self, order, xs, labels: list[np.ndarray]):
        k, n = xs.shape
        self.k, self.n = k, n
        stats = np.stack([np.ones_like(xs), xs, xs ** 2], axis=-1)  # (k, n, 3), rank order
        self.all = np.concatenate([np.zeros((k, 1, 3)), np.cumsum(stats, axis=1)], axis=1).reshape(-1, 3)
        # one sorted array for all codes: code i's values mapped monotonically into [3i, 3i + 1],
        # so a single searchsorted ranks thresholds for every code at once
        self.low = xs[:, 0]
        self.span = np.where(xs[:, -1] > self.low, xs[:, -1] - self.low, 1.0)
        self.flat = (3.0 * np.arange(k)[:, None] + (xs - self.low[:, None]) / self.span[:, None]).ravel()
        # per (code, factor): samples re-sorted by (class, rank); class c's ranks < r form one run
        self.blocks = len(labels)
        self.width = max(int(y.max()) + 1 for y in labels)
        cls_of_rank = np.stack([y[order.T] for y in labels], axis=1).astype(np.int16)  # (k, F, n)
        by_class = np.argsort(cls_of_rank, axis=-1, kind="stable")
        keys = np.take_along_axis(cls_of_rank, by_class, axis=-1).astype(np.int64) * n + by_class
        offset = (np.arange(k)[:, None] * self.blocks + np.arange(self.blocks)[None, :]) * (self.width * n)
        self.keys = (keys + offset[..., None]).ravel()
        grouped = stats[np.arange(k)[:, None, None], by_class]  # (k, F, n, 3)
        self.cls = np.concatenate([np.zeros((k, self.blocks, 1, 3)), np.cumsum(grouped, axis=2)],
                                  axis=2).reshape(-1, 3)

    def rank(self, code, t):
        """#(values of code[m] < t[m]) -> (m,) int."""
        u = np.clip((t - self.low[code]) / self.span[code], -0.5, 1.5)
        return np.searchsorted(self.flat, 3.0 * code + u) - code * self.n

    def all_sums(self, code, lo, hi):
        row = code * (self.n + 1)
        return self.all[row + hi] - self.all[row + lo]  # (m, 3)

    def class_sums(self, code, factor, cls, lo, hi):
        """Sums over samples of class cls[m] of factor[m] with rank in [lo, hi) on code[m]: (m, 3)."""
        block = code * self.blocks + factor
        base = (block * self.width + cls) * self.n
        # position among the block's n keys, + block: cumsum rows carry one leading zero per block
        a = np.searchsorted(self.keys, base + lo) + block
        b = np.searchsorted(self.keys, base + hi) + block
        return self.cls[b] - self.cls[a]


def _active_sums(bt: _Batch, prob, w, b):
    """Weighted sums over each problem's active samples -> (S0, S1, S2, T0, T1), each (m,)."""
    code, factor, pos_class, cp, cn = prob
    n = bt.n
    safe_w = np.where(w == 0, 1.0, w)
    r_pos = bt.rank(code, (1.0 - b) / safe_w)   # positives active where w x + b < 1
    r_neg = bt.rank(code, (-1.0 - b) / safe_w)  # negatives active where w x + b > -1
    up, flat = w > 0, w == 0
    p_lo = np.where(up | flat, 0, r_pos)
    p_hi = np.where(flat, np.where(b < 1, n, 0), np.where(up, r_pos, n))
    n_lo = np.where(up & ~flat, r_neg, 0)
    n_hi = np.where(flat, np.where(b > -1, n, 0), np.where(up, n, r_neg))
    pos = bt.class_sums(code, factor, pos_class, p_lo, p_hi)
    neg = bt.all_sums(code, n_lo, n_hi) - bt.class_sums(code, factor, pos_class, n_lo, n_hi)
    s = cp[:, None] * pos + cn[:, None] * neg  # sum c, c x, c x^2
    t = cp[:, None] * pos[:, :2] - cn[:, None] * neg[:, :2]  # sum c y, c y x
    return s[:, 0], s[:, 1], s[:, 2], t[:, 0], t[:, 1]


def _objective(bt, prob, w, b):
    s0, s1, s2, t0, t1 = sums = _active_sums(bt, prob, w, b)
    loss = w * w * s2 + 2 * w * b * s1 + b * b * s0 - 2 * w * t1 - 2 * b * t0 + s0
    return 0.5 * (w * w + b * b) + loss, np.stack(sums)


def _newton(bt: _Batch, prob, max_iter: int = 100):
    """Damped Newton on every problem; a problem leaves once its Newton decrement is negligible."""
    m = len(prob[0])
    w, b = np.zeros(m), np.zeros(m)
    f, sums = _objective(bt, prob, w, b)
    live = np.arange(m)
    for _ in range(max_iter):
        s0, s1, s2, t0, t1 = sums[:, live]
        lw, lb, lf = w[live], b[live], f[live]
        gw = lw + 2 * (lw * s2 + lb * s1 - t1)
        gb = lb + 2 * (lw * s1 + lb * s0 - t0)
        hww, hwb, hbb = 1 + 2 * s2, 2 * s1, 1 + 2 * s0
        det = hww * hbb - hwb * hwb
        dw, db = -(hbb * gw - hwb * gb) / det, -(hww * gb - hwb * gw) / det
        slope = gw * dw + gb * db  # minus the Newton decrement, ~ -2 (f - f*)
        going = -slope > 1e-12 * (1 + np.abs(lf))
        live, lw, lb, lf, dw, db, slope = (a[going] for a in (live, lw, lb, lf, dw, db, slope))
        if not len(live):
            break
        step = np.ones(len(live))
        todo = np.arange(len(live))  # positions in live still backtracking
        for _ls in range(40):  # backtracking (Armijo), only on the problems still failing
            idx = live[todo]
            sub = tuple(p[idx] for p in prob)
            cw, cb = lw[todo] + step[todo] * dw[todo], lb[todo] + step[todo] * db[todo]
            cf, csums = _objective(bt, sub, cw, cb)
            ok = cf <= lf[todo] + 1e-4 * step[todo] * slope[todo]
            w[idx[ok]], b[idx[ok]], f[idx[ok]] = cw[ok], cb[ok], cf[ok]
            sums[:, idx[ok]] = csums[:, ok]
            # minimiser of the quadratic through f(0), f'(0) and f(step), kept within [0.1, 0.5] * step
            st, sl, df = step[todo][~ok], slope[todo][~ok], cf[~ok] - lf[todo][~ok]
            todo = todo[~ok]
            if not len(todo):
                break
            quad = -sl * st * st / (2 * np.maximum(df - st * sl, 1e-300))
            step[todo] = np.clip(quad, 0.1 * st, 0.5 * st)
        else:  # no decrease even at a tiny step: at the optimum up to rounding
            live = np.setdiff1d(live, live[todo])
    return w, b


def _problems(yi: np.ndarray, n_cls: int, C: float, factor: int):
    """(factor, positive class, C of positives, C of negatives) per problem of one factor."""
    weight = len(yi) / (n_cls * np.bincount(yi, minlength=n_cls))
    if n_cls == 2:
        return [factor], [1], [C * weight[1]], [C * weight[0]]
    return [factor] * n_cls, list(range(n_cls)), list(C * weight), [C] * n_cls


def fit(x: np.ndarray, labels: np.ndarray, C: float = 0.01, max_iter: int = 100) -> list:
    """LinearSVC(C, class_weight="balanced") of each factor on each column of x alone.

    Parameters
    ----------
    x : (n, k) float, k codes
    labels : (n, F) labels, each column with at least 2 classes

    Returns
    -------
    list of F tuples (classes (K,), coef (k, P), intercept (k, P)); P = 1 for K = 2
    (the positive side is classes[1]) else P = K, one-vs-rest.
    """
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels).reshape(len(x), -1)
    n, k = x.shape
    order = np.argsort(x, axis=0, kind="stable")
    xs = np.take_along_axis(x, order, axis=0).T.copy()  # (k, n)
    dense = []
    for j in range(labels.shape[1]):
        classes, yi = np.unique(labels[:, j], return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"labels column {j} has one class; a linear SVM needs at least 2")
        dense.append((classes, yi.astype(np.int64)))
    out = []
    per_batch = max(1, _CHUNK // (k * n))
    for start in range(0, len(dense), per_batch):
        chunk = dense[start:start + per_batch]
        bt = _Batch(order, xs, [yi for _, yi in chunk])
        parts = [_problems(yi, len(c), C, j) for j, (c, yi) in enumerate(chunk)]
        n_q = sum(len(p[0]) for p in parts)
        per_code = [np.concatenate([np.asarray(p[i], dtype=float if i > 1 else np.int64) for p in parts])
                    for i in range(4)]
        # problems ordered (code, q): code-major, so the (k, n_q) reshape below undoes it
        prob = (np.repeat(np.arange(k), n_q),) + tuple(np.tile(a, k) for a in per_code)
        w, b = (a.reshape(k, n_q) for a in _newton(bt, prob, max_iter))
        first = np.cumsum([0] + [len(p[0]) for p in parts])
        for j, (classes, _) in enumerate(chunk):
            out.append((classes, w[:, first[j]:first[j + 1]], b[:, first[j]:first[j + 1]]))
    return out


def predict(classes: np.ndarray, coef: np.ndarray, intercept: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(n, k) labels predicted by each code's SVM from that code's column of x (n, k)."""
    if len(classes) == 2:
        return classes[(x * coef[:, 0] + intercept[:, 0] > 0).astype(np.int64)]
    from avatar.compare._kernels import argmax_affine
    return classes[argmax_affine(np.ascontiguousarray(x, dtype=np.float64), np.ascontiguousarray(coef),
                                 np.ascontiguousarray(intercept))]


def accuracy(x_train, labels_train, x_test, labels_test, C: float = 0.01) -> np.ndarray:
    """(k, F) test accuracy of each code's one-feature LinearSVC(C, class_weight="balanced") per factor."""
    x_test = np.asarray(x_test, dtype=np.float64)
    labels_test = np.asarray(labels_test).reshape(len(x_test), -1)
    models = fit(x_train, labels_train, C)
    return np.stack([np.mean(predict(c, w, b, x_test) == labels_test[:, j, None], axis=0)
                     for j, (c, w, b) in enumerate(models)], axis=1)
