"""The compiled inner loops of the DCI forest (numba; compiled once, cached on disk).

A port of scikit-learn's ``DecisionTreeClassifier`` with ``BestSplitter`` and the Gini criterion
(sklearn 1.9: ``tree/_splitter.pyx`` ``node_split_best``, ``tree/_tree.pyx``
``DepthFirstTreeBuilder``, ``tree/_partitioner.pyx`` ``next_p``), for integer sample weights (a
bootstrap's counts). It makes the same trees bit for bit: the same float32 feature values and
1e-7 tie tolerance, the same xorshift draws for the order features are tried in (which breaks
ties between equally good splits), the same constant-feature bookkeeping, the same depth-first
node order and the same floating-point formulas. What differs is how a node finds its sorted
values: each feature's bootstrap rows are sorted once per tree (shared by every factor) and
split stably at each node, so a node costs O(k n) instead of O(k n log n), and the Gini sums
are updated incrementally (exact, since integer weights make every count and square an integer).
"""
from __future__ import annotations

import numpy as np
from numba import njit

FEATURE_THRESHOLD = np.float32(1e-7)   # sklearn/tree/_partitioner.pxd (a float32 constant)
EPSILON = np.finfo(np.float64).eps     # sklearn/tree/_tree.pyx
RAND_R_MAX = 2147483647                # sklearn/tree/_utils.pxd


@njit(nogil=True, cache=True)
def _rand_int(state, low, high):
    """sklearn's ``rand_int``: ``low + our_rand_r(state) % (high - low)``, a 32-bit xorshift."""
    s = state[0]
    if s == 0:
        s = 1
    s ^= (s << 13) & 0xFFFFFFFF
    s ^= s >> 17
    s ^= (s << 5) & 0xFFFFFFFF
    state[0] = s
    return low + (s % (RAND_R_MAX + 1)) % (high - low)


@njit(nogil=True, cache=True)
def _split(XT, idx, w, y, start, end, total, wsum, n_known, features, constant, state, counts):
    """``node_split_best`` on the node holding ``idx[:, start:end]``.

    Returns (feature, position, threshold, impurity_left, impurity_right, n_constant): feature -1
    when every feature is constant in the node.
    """
    k = idx.shape[0]
    f_i, n_visited, n_found, n_drawn, n_total = k, 0, 0, 0, n_known
    best_proxy = -np.inf
    best_f, best_p, best_thr, best_il, best_ir = -1, end, 0.0, 0.0, 0.0
    n_classes = len(total)
    while f_i > n_total and (n_visited < k or n_visited <= n_found + n_drawn):
        n_visited += 1
        f_j = _rand_int(state, n_drawn, f_i - n_found)
        if f_j < n_known:
            features[n_drawn], features[f_j] = features[f_j], features[n_drawn]
            n_drawn += 1
            continue
        f_j += n_found
        f = features[f_j]
        if XT[f, idx[f, end - 1]] <= np.float32(XT[f, idx[f, start]] + FEATURE_THRESHOLD):
            features[f_j], features[n_total] = features[n_total], features[f_j]
            n_found += 1
            n_total += 1
            continue
        f_i -= 1
        features[f_i], features[f_j] = features[f_j], features[f_i]
        # every split of this feature, left = idx[f, start:p]; the squares stay exact integers
        for c in range(n_classes):
            counts[c] = 0.0
        sq_l, wl = 0.0, 0.0
        sq_r = 0.0
        for c in range(n_classes):
            sq_r += total[c] * total[c]
        moved, p = start, start
        while p < end:
            p += 1
            while p < end and XT[f, idx[f, p]] <= np.float32(XT[f, idx[f, p - 1]] + FEATURE_THRESHOLD):
                p += 1
            if p == end:
                continue
            for q in range(moved, p):
                s = idx[f, q]
                ws, c = w[s], y[s]
                right = total[c] - counts[c]
                sq_l += 2.0 * counts[c] * ws + ws * ws
                sq_r += ws * ws - 2.0 * right * ws
                counts[c] += ws
                wl += ws
            moved = p
            wr = wsum - wl
            imp_l = 1.0 - sq_l / (wl * wl)
            imp_r = 1.0 - sq_r / (wr * wr)
            proxy = -wr * imp_r - wl * imp_l
            if proxy > best_proxy:
                best_proxy = proxy
                best_f, best_p, best_il, best_ir = f, p, imp_l, imp_r
                best_thr = np.float64(XT[f, idx[f, p - 1]]) / 2.0 + np.float64(XT[f, idx[f, p]]) / 2.0
    features[:n_known] = constant[:n_known]
    constant[n_known:n_known + n_found] = features[n_known:n_known + n_found]
    return best_f, best_p, best_thr, best_il, best_ir, n_total


@njit(nogil=True, cache=True)
def build_tree(XT, order, w, y, n_classes, max_depth, seed, feature, threshold, left, right, impurity,
               weighted, value):
    """Grow one tree depth first into the node arrays (``feature`` -1 marks a leaf); returns the
    node count. ``XT`` (k, n) float32 codes by feature; ``order`` (k, m): the rows with weight > 0,
    sorted by each feature."""
    k, m = order.shape
    idx = order.copy()
    buf = np.empty(m, order.dtype)
    goes_left = np.zeros(XT.shape[1], np.bool_)
    features = np.arange(k)
    constant = np.empty(k, np.int64)
    state = np.array([seed], np.int64)
    total = np.empty(n_classes)
    counts = np.empty(n_classes)
    size = 2 * max_depth + 4
    s_start, s_end, s_depth = np.empty(size, np.int64), np.empty(size, np.int64), np.empty(size, np.int64)
    s_parent, s_left, s_const = np.empty(size, np.int64), np.empty(size, np.bool_), np.empty(size, np.int64)
    s_imp = np.empty(size)
    s_start[0], s_end[0], s_depth[0], s_parent[0], s_left[0], s_const[0], s_imp[0] = 0, m, 0, -1, False, 0, np.inf
    sp, n_nodes, first = 1, 0, True
    w_root = 0.0
    while sp > 0:
        sp -= 1
        start, end, depth, parent = s_start[sp], s_end[sp], s_depth[sp], s_parent[sp]
        is_left, n_const, imp = s_left[sp], s_const[sp], s_imp[sp]
        for c in range(n_classes):
            total[c] = 0.0
        wsum = 0.0
        for q in range(start, end):
            s = idx[0, q]
            total[y[s]] += w[s]
            wsum += w[s]
        is_leaf = depth >= max_depth or end - start < 2
        if first:
            sq = 0.0
            for c in range(n_classes):
                sq += total[c] * total[c]
            imp = 1.0 - sq / (wsum * wsum)
            w_root = wsum
            first = False
        is_leaf = is_leaf or imp <= EPSILON
        f, p, thr, il, ir = -1, end, 0.0, 0.0, 0.0
        if not is_leaf:
            f, p, thr, il, ir, n_const = _split(XT, idx, w, y, start, end, total, wsum, n_const, features,
                                                constant, state, counts)
            if p < end:  # sklearn's impurity_improvement, for its leaf test
                wl = 0.0
                for q in range(start, p):
                    wl += w[idx[f, q]]
                wr = wsum - wl
                gain = (wsum / w_root) * (imp - (wr / wsum * ir) - (wl / wsum * il))
                is_leaf = gain + EPSILON < 0.0
            else:
                is_leaf = True
        node = n_nodes
        n_nodes += 1
        if parent >= 0:
            if is_left:
                left[parent] = node
            else:
                right[parent] = node
        impurity[node], weighted[node] = imp, wsum
        left[node], right[node] = -1, -1
        for c in range(n_classes):
            value[node, c] = total[c] / wsum
        if is_leaf:
            feature[node], threshold[node] = -1, -2.0
            continue
        feature[node], threshold[node] = f, thr
        # children: the split feature's rows left of p go left; every feature's list splits stably
        for q in range(start, p):
            goes_left[idx[f, q]] = True
        for g in range(k):
            if g == f:
                continue
            a, b = start, 0
            for q in range(start, end):
                s = idx[g, q]
                if goes_left[s]:
                    idx[g, a] = s
                    a += 1
                else:
                    buf[b] = s
                    b += 1
            idx[g, a:end] = buf[:b]
        for q in range(start, p):
            goes_left[idx[f, q]] = False
        # the right child goes on the stack first, so the left one is grown first (as sklearn)
        s_start[sp], s_end[sp], s_depth[sp], s_parent[sp] = p, end, depth + 1, node
        s_left[sp], s_const[sp], s_imp[sp] = False, n_const, ir
        s_start[sp + 1], s_end[sp + 1], s_depth[sp + 1], s_parent[sp + 1] = start, p, depth + 1, node
        s_left[sp + 1], s_const[sp + 1], s_imp[sp + 1] = True, n_const, il
        sp += 2
    return n_nodes


@njit(nogil=True, cache=True)
def _apply(X, feature, threshold, left, right):
    """(n,) the leaf each row of X (float32) lands in."""
    out = np.empty(X.shape[0], np.int64)
    for i in range(X.shape[0]):
        node = 0
        while feature[node] >= 0:
            node = left[node] if np.float64(X[i, feature[node]]) <= threshold[node] else right[node]
        out[i] = node
    return out


@njit(nogil=True, cache=True)
def _argmax_rows(P):
    out = np.empty(P.shape[0], np.int64)
    for i in range(P.shape[0]):
        best, arg = P[i, 0], 0
        for c in range(1, P.shape[1]):
            if P[i, c] > best:
                best, arg = P[i, c], c
        out[i] = arg
    return out


@njit(nogil=True, cache=True)
def forests(X, X_test, orders, sizes, weights, seeds, Y, n_classes, max_depth):
    """One forest per factor, all sharing the bootstraps and tree seeds (as clones of one forest do);
    releases the GIL, so chunks of factors can grow in threads.

    X, X_test : (n, k), (n_test, k) float32
    orders : (T, k, m) int64, tree t's rows with weight > 0 by each feature in ``[:, :sizes[t]]``
    weights : (T, n) float64, seeds : (T,) int64 splitter seeds
    Y : (F, n) int64 class indices, n_classes : (F,) int64

    Returns importances (F, T, k) per tree (divided by the root weight, not yet normalised),
    node counts (F, T), and the predicted class index of every training and test row (F, n),
    (F, n_test).
    """
    F, T, k = Y.shape[0], orders.shape[0], X.shape[1]
    XT = np.ascontiguousarray(X.T)   # (k, n): a feature's values in one row, for the split scans
    max_nodes = 2 ** (max_depth + 1) - 1
    imp_out = np.zeros((F, T, k))
    n_nodes = np.zeros((F, T), np.int64)
    pred, pred_test = np.empty((F, X.shape[0]), np.int64), np.empty((F, X_test.shape[0]), np.int64)
    for j in range(F):
        C = n_classes[j]
        P, P_test = np.zeros((X.shape[0], C)), np.zeros((X_test.shape[0], C))
        feature, left, right = (np.empty(max_nodes, np.int64), np.empty(max_nodes, np.int64),
                                np.empty(max_nodes, np.int64))
        threshold, impurity, weighted = np.empty(max_nodes), np.empty(max_nodes), np.empty(max_nodes)
        value = np.empty((max_nodes, C))
        for t in range(T):
            count = build_tree(XT, orders[t, :, :sizes[t]], weights[t], Y[j], C, max_depth, seeds[t], feature, threshold,
                               left, right, impurity, weighted, value)
            n_nodes[j, t] = count
            imp = np.zeros(k)
            for v in range(count):  # sklearn's compute_feature_importances, in node order
                if feature[v] >= 0:
                    a, b = left[v], right[v]
                    imp[feature[v]] += (weighted[v] * impurity[v] - weighted[a] * impurity[a]
                                        - weighted[b] * impurity[b])
            for i in range(k):
                imp_out[j, t, i] = imp[i] / weighted[0]
            leaves = _apply(X, feature, threshold, left, right)
            for i in range(X.shape[0]):
                for c in range(C):
                    P[i, c] += value[leaves[i], c]
            leaves = _apply(X_test, feature, threshold, left, right)
            for i in range(X_test.shape[0]):
                for c in range(C):
                    P_test[i, c] += value[leaves[i], c]
        pred[j] = _argmax_rows(P / T)
        pred_test[j] = _argmax_rows(P_test / T)
    return imp_out, n_nodes, pred, pred_test
