"""DCI's random forest for every factor at once: the same trees as scikit-learn, ~50x faster.

``dci_forests`` gives what fitting ``RandomForestClassifier(n_estimators=5, max_depth=6,
max_features=None, max_samples=0.3, random_state=seed)`` to each factor's labels would: the
forest's ``feature_importances_``, and its predictions on the training and test rows, bit for
bit (tested against sklearn). The forests of all factors share their bootstraps and tree seeds,
as clones of one seeded forest do, so each tree's rows are sorted once for every factor; the
trees themselves grow in a compiled kernel (:mod:`avatar.compare._forest_kernel`), chunks of
factors in parallel threads.

    from avatar.compare.forest import dci_forests
    out = dci_forests(x_train, labels_train, x_test, labels_test, seed=0)
    out["importance"]        # (k, F) abs feature importances
    out["accuracy_train"], out["accuracy_test"], out["balanced_test"]   # (F,) each
"""
from __future__ import annotations

import numpy as np

N_ESTIMATORS, MAX_DEPTH, MAX_SAMPLES = 5, 6, 0.3
MAX_INT = np.iinfo(np.int32).max


def bootstraps(n: int, seed: int, n_estimators: int = N_ESTIMATORS, max_samples: float = MAX_SAMPLES):
    """Each tree's seed and row counts, drawn as sklearn's forest draws them.

    Returns ``tree_seeds`` (T,) (``RandomState(seed).randint(MAX_INT)`` per tree, in order),
    ``splitter_seeds`` (T,) (each tree's first ``randint(0, 2**31 - 1)``) and ``weights`` (T, n)
    float64: how often each row is drawn in ``int(max_samples * n)`` draws with replacement.
    """
    rs = np.random.RandomState(seed)
    tree_seeds = np.array([rs.randint(MAX_INT) for _ in range(n_estimators)], np.int64)
    n_draw = max(int(max_samples * n), 1)
    weights = np.stack([np.bincount(np.random.RandomState(s).randint(0, n, n_draw), minlength=n)
                        for s in tree_seeds]).astype(np.float64)
    splitter = np.array([np.random.RandomState(s).randint(0, 2147483647) for s in tree_seeds], np.int64)
    return tree_seeds, splitter, weights


def dci_forests(x_train, labels_train, x_test, labels_test, seed: int = 0, n_jobs: int = 1,
                n_estimators: int = N_ESTIMATORS, max_depth: int = MAX_DEPTH,
                max_samples: float = MAX_SAMPLES) -> dict:
    """Random-forest importances and accuracies of every factor from all codes.

    Parameters
    ----------
    x_train, x_test : (n, k), (n_test, k) float codes
    labels_train, labels_test : (n, F), (n_test, F) int labels; each training column with at least
        2 classes
    n_jobs : threads (factors in parallel)

    Returns
    -------
    dict: ``importance`` (k, F); ``accuracy_train``, ``accuracy_test`` and ``balanced_test`` (F,):
    the accuracies of each forest's predictions and sklearn's ``balanced_accuracy_score(adjusted=True)``
    on the test rows.
    """
    from avatar.compare import _forest_kernel as K

    X = np.ascontiguousarray(x_train, dtype=np.float32)   # sklearn's trees split float32 values
    X_test = np.ascontiguousarray(x_test, dtype=np.float32)
    labels_train, labels_test = np.asarray(labels_train), np.asarray(labels_test)
    n, k = X.shape
    F = labels_train.shape[1]
    encoded = [np.unique(labels_train[:, j], return_inverse=True) for j in range(F)]
    classes = [c for c, _ in encoded]
    if min(len(c) for c in classes) < 2:
        raise ValueError("every factor needs at least 2 classes in the training labels")
    Y = np.stack([np.asarray(inv, np.int64).ravel() for _, inv in encoded])
    _, splitter, weights = bootstraps(n, seed, n_estimators, max_samples)
    lists = [_sorted_rows(X, wt) for wt in weights]
    sizes = np.array([a.shape[1] for a in lists], np.int64)
    orders = np.zeros((len(lists), k, sizes.max()), np.int64)     # (T, k, m): padded to the largest
    for t, a in enumerate(lists):
        orders[t, :, :a.shape[1]] = a
    n_classes = np.array([len(c) for c in classes], np.int64)

    def grow(part):  # the kernel releases the GIL: factor chunks grow in parallel threads
        return K.forests(X, X_test, orders, sizes, weights, splitter, Y[part], n_classes[part], max_depth)

    parts = np.array_split(np.arange(F), max(1, min(n_jobs, F)))
    if len(parts) == 1:
        chunks = [grow(parts[0])]
    else:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(len(parts)) as pool:
            chunks = list(pool.map(grow, parts))
    raw, counts, pred, pred_test = (np.concatenate(a) for a in zip(*chunks))
    importance = _forest_importances(raw, counts)
    pred = [classes[j][pred[j]] for j in range(F)]
    pred_test = [classes[j][pred_test[j]] for j in range(F)]
    return {"importance": np.abs(importance).T,
            "accuracy_train": np.array([np.mean(pred[j] == labels_train[:, j]) for j in range(F)]),
            "accuracy_test": np.array([np.mean(pred_test[j] == labels_test[:, j]) for j in range(F)]),
            "balanced_test": np.array([balanced_accuracy(labels_test[:, j], pred_test[j]) for j in range(F)])}


def _sorted_rows(X: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(k, m) the rows with weight > 0 (m of them), ordered by each feature's value."""
    rows = np.flatnonzero(weight > 0)
    return np.ascontiguousarray(rows[np.argsort(X[rows], axis=0, kind="stable")].T, dtype=np.int64)


def _forest_importances(raw: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(F, k) forest importances from per-tree ones (F, T, k) as sklearn forms them: each tree's
    normalised to sum 1, their mean over the trees with more than one node, normalised again."""
    sums = np.sum(raw, axis=-1, keepdims=True)
    trees = np.where(sums > 0.0, raw / np.where(sums > 0.0, sums, 1.0), raw)
    out = np.zeros((raw.shape[0], raw.shape[2]))
    for j in range(raw.shape[0]):
        grown = trees[j][counts[j] > 1]
        if len(grown):
            mean = np.mean(grown, axis=0, dtype=np.float64)
            out[j] = mean / np.sum(mean)
    return out


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """sklearn's ``balanced_accuracy_score(y_true, y_pred, adjusted=True)``: the mean recall over the
    classes present in ``y_true``, rescaled so chance is 0 (classes only predicted are left out)."""
    present, inverse = np.unique(y_true, return_inverse=True)
    hits = np.bincount(inverse, weights=(y_pred == y_true).astype(np.float64), minlength=len(present))
    recall = hits / np.bincount(inverse, minlength=len(present))
    score = np.mean(recall)
    chance = 1 / len(present)
    score -= chance
    score /= 1 - chance
    return float(score)
