"""Disentanglement metrics on arrays, ported from google-research/disentanglement_lib.

Every function takes arrays laid out ``(n_samples, n_dims)``: ``codes`` are a
model's latent codes, ``factors`` the ground-truth sliders. MIG, DCI, SAP,
modularity and explicitness follow disentanglement_lib's code and defaults
(20 equal-width histogram bins, sklearn ``mutual_info_score`` in nats,
``GradientBoostingClassifier()``, ``LinearSVC(C=0.01, class_weight="balanced")``,
``LogisticRegression()``), so numbers are comparable with published work.

Factors there are discrete; sliders are mostly continuous, so a factor column
with more than ``n_bins`` distinct values is cut into ``n_bins`` bins on the
training set (see :func:`discretize`, whose record says how) and the same edges
are applied to the test set. Columns with at most ``n_bins`` distinct values
(categorical and boolean sliders) are used as they are.

    from avatar.compare import metrics as M
    M.mig(codes, sliders)                                      # float in [0, 1]
    M.dci(codes_tr, sliders_tr, codes_te, sliders_te)          # dict, importance (n_codes, n_factors)
    M.sap(codes_tr, sliders_tr, codes_te, sliders_te)          # float in [0, 1]
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.stats

from avatar.compare import svm1d
from avatar.compare.forest import dci_forests
from avatar.compare.logistic import fit_logistic, predict_proba
from avatar.compare.discrete import (  # re-exported: the metrics' building blocks
    DISCRETIZE_METHODS, apply_discretization, check_array, check_pair, check_split, discrete_entropy,
    discretize, histogram_discretize, mutual_info_matrix, mutual_information, parallel_map, subsample)

DCI_MODELS = ("gbt", "forest")
EXPLICITNESS_SOLVERS = ("batched", "sklearn")

__all__ = [
    "DCI_MODELS", "DISCRETIZE_METHODS", "EXPLICITNESS_SOLVERS", "apply_discretization", "check_array", "check_pair", "check_split",
    "completeness", "dci", "dci_from_labels", "dci_model", "discrete_entropy", "discretize", "disentanglement",
    "explicitness", "explicitness_from_labels", "histogram_discretize", "mig", "mig_from_mi", "modularity",
    "mutual_info_matrix", "mutual_information", "parallel_map", "sap", "sap_from_matrix",
    "sap_matrix_continuous", "sap_matrix_discrete", "subsample",
]


# MIG -------------------------------------------------------------------------------------
def mig_from_mi(mi: np.ndarray, entropy: np.ndarray) -> np.ndarray:
    """Per-factor gap (F,): (largest - second largest MI over codes) / H(factor); NaN where H = 0."""
    if mi.shape[0] < 2:
        raise ValueError(f"MIG needs at least 2 codes, got {mi.shape[0]}")
    top = np.sort(mi, axis=0)[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(entropy > 0, (top[0] - top[1]) / np.where(entropy > 0, entropy, 1), np.nan)


def mig(codes, factors, n_bins: int = 20) -> float:
    """Mutual Information Gap (Chen et al. 2018) as disentanglement_lib computes it.

    Parameters
    ----------
    codes : (n, k) float, k >= 2
    factors : (n, F) float or int; columns with > n_bins values are binned (equal width)
    n_bins : histogram bins per code (and per continuous factor)

    Returns the mean over factors of the normalised gap, in [0, 1]; factors that
    never vary (entropy 0) are left out of the mean.
    """
    c, f = check_pair(codes, factors)
    y = discretize(f, n_bins)[0]
    gaps = mig_from_mi(mutual_info_matrix(histogram_discretize(c, n_bins), y), discrete_entropy(y))
    if np.isnan(gaps).all():
        raise ValueError("factors: every column is constant, so MIG is undefined")
    return float(np.nanmean(gaps))


# DCI -------------------------------------------------------------------------------------
def disentanglement_per_code(importance: np.ndarray) -> np.ndarray:
    """(k,) 1 - entropy (base F) of each code's importance over factors (1 when F = 1)."""
    if importance.shape[1] == 1:
        return np.ones(importance.shape[0])
    return 1.0 - scipy.stats.entropy(importance.T + 1e-11, base=importance.shape[1])


def disentanglement(importance: np.ndarray) -> float:
    """DCI disentanglement of an importance matrix (k codes, F factors), weighted by code importance."""
    importance = np.asarray(importance, dtype=np.float64)
    per_code = disentanglement_per_code(importance)
    if importance.sum() == 0.0:
        importance = np.ones_like(importance)
    return float(np.sum(per_code * importance.sum(axis=1) / importance.sum()))


def completeness_per_factor(importance: np.ndarray) -> np.ndarray:
    """(F,) 1 - entropy (base k) of each factor's importance over codes (1 when k = 1)."""
    if importance.shape[0] == 1:
        return np.ones(importance.shape[1])
    return 1.0 - scipy.stats.entropy(importance + 1e-11, base=importance.shape[0])


def completeness(importance: np.ndarray) -> float:
    """DCI completeness of an importance matrix (k codes, F factors), weighted by factor importance."""
    importance = np.asarray(importance, dtype=np.float64)
    per_factor = completeness_per_factor(importance)
    if importance.sum() == 0.0:
        importance = np.ones_like(importance)
    return float(np.sum(per_factor * importance.sum(axis=0) / importance.sum()))


def dci_model(model: str = "gbt", seed: int = 0):
    """The per-factor classifier behind DCI importances.

    ``"gbt"`` is disentanglement_lib's ``GradientBoostingClassifier()`` with its
    defaults (random_state fixed for repeatability). ``"forest"`` is a small random
    forest searching every code at each split (5 bagged depth-6 CART trees on 30 %
    bootstraps; Eastwood & Williams also used random forests), ~150x cheaper on
    20-class factors, where a GBT grows one tree per class per stage (2,000 trees,
    ~10 s per factor here). :func:`dci_from_labels` grows the forest's exact trees for
    every factor at once (:mod:`avatar.compare.forest`, ~6x cheaper again). On synthetic checks (identity, noisy identity,
    pair-mixed, rotated, nonlinear and permuted codes over 20-bin factors) its D
    and C stay within 0.06 of the GBT's; sqrt-feature forests, extra-trees and
    shallower trees drifted far more.
    """
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    if model == "gbt":
        return GradientBoostingClassifier(random_state=seed)
    if model == "forest":
        return RandomForestClassifier(n_estimators=5, max_depth=6, max_features=None, max_samples=0.3,
                                      random_state=seed, n_jobs=1)
    raise ValueError(f"model must be one of {DCI_MODELS}, got {model!r}")


def _fit_factor(model, x_train, y_train, x_test, y_test):
    from sklearn.metrics import balanced_accuracy_score
    model.fit(x_train, y_train)
    pred = model.predict(x_test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes missing from y_test
        bal = balanced_accuracy_score(y_test, pred, adjusted=True)
    return (np.abs(model.feature_importances_), float(np.mean(model.predict(x_train) == y_train)),
            float(np.mean(pred == y_test)), float(bal))


def dci_from_labels(x_train, y_train, x_test, y_test, model: str = "gbt", seed: int = 0,
                    n_jobs: int = 1) -> dict:
    """DCI on codes (n, k) float and factor labels (n, F) int; see :func:`dci`."""
    from sklearn.base import clone
    varies = np.array([len(np.unique(y_train[:, j])) > 1 for j in range(y_train.shape[1])])
    if not varies.any():
        raise ValueError("factors_train: every column is constant, so DCI is undefined")
    importance = np.zeros((x_train.shape[1], y_train.shape[1]))
    per = np.full((3, y_train.shape[1]), np.nan)
    if model == "forest":  # sklearn's forests, grown for every factor at once (avatar.compare.forest)
        out = dci_forests(x_train, y_train[:, varies], x_test, y_test[:, varies], seed=seed, n_jobs=n_jobs)
        importance[:, varies] = out["importance"]
        per[:, varies] = out["accuracy_train"], out["accuracy_test"], out["balanced_test"]
    else:
        proto = dci_model(model, seed)
        jobs = [(clone(proto), x_train, y_train[:, j], x_test, y_test[:, j]) for j in np.flatnonzero(varies)]
        for j, (imp, acc_tr, acc_te, bal) in zip(np.flatnonzero(varies), parallel_map(_fit_factor, jobs, n_jobs)):
            importance[:, j] = imp
            per[:, j] = acc_tr, acc_te, bal
    used = importance[:, varies]  # constant factors would change the entropy base, so leave them out
    return {"disentanglement": disentanglement(used), "completeness": completeness(used),
            "informativeness_train": float(np.nanmean(per[0])), "informativeness_test": float(np.nanmean(per[1])),
            "importance": importance, "informativeness_test_per_factor": per[1],
            "adjusted_balanced_accuracy_test_per_factor": per[2]}


def dci(codes_train, factors_train, codes_test, factors_test, *, n_bins: int = 20, model: str = "gbt",
        max_train: int | None = None, max_test: int | None = None, seed: int = 0, n_jobs: int = 1) -> dict:
    """Disentanglement, completeness, informativeness (Eastwood & Williams 2018), disentanglement_lib style.

    One classifier per factor predicts its (discretized) label from all codes;
    ``importance[i, j]`` is the absolute feature importance of code i for factor j.
    Disentanglement weights each code's 1 - entropy (base F) over factors by its
    share of the total importance; completeness does the same per factor with base
    k. Informativeness is the mean train / test accuracy.

    Parameters
    ----------
    codes_train, codes_test : (n_train, k), (n_test, k) float
    factors_train, factors_test : (n_train, F), (n_test, F); binned on the training rows
    model : "gbt" (disentanglement_lib: GradientBoostingClassifier defaults) or "forest"
    max_train, max_test : fit / score on at most this many rows (seeded draw); None = all
    n_jobs : factors fitted in parallel threads

    Returns
    -------
    dict with disentanglement, completeness, informativeness_train, informativeness_test (floats),
    importance (k, F) and per-factor test accuracy / adjusted balanced accuracy (F,). Constant
    factors get a zero importance column and are left out of every average.
    """
    ctr, ftr, cte, fte = check_split(codes_train, factors_train, codes_test, factors_test)
    rng = np.random.default_rng(seed)
    itr, ite = subsample(len(ctr), max_train, rng), subsample(len(cte), max_test, rng)
    ytr, record = discretize(ftr, n_bins)
    yte = apply_discretization(fte, record)
    return dci_from_labels(ctr[itr], ytr[itr], cte[ite], yte[ite], model, seed, n_jobs)


# SAP -------------------------------------------------------------------------------------
def sap_from_matrix(score: np.ndarray) -> float:
    """Mean over factors of (best - second best) code score; score is (k, F), NaN columns skipped."""
    if score.shape[0] < 2:
        raise ValueError(f"SAP needs at least 2 codes, got {score.shape[0]}")
    top = np.sort(score, axis=0)
    gaps = top[-1] - top[-2]
    if np.isnan(gaps).all():
        raise ValueError("factors: every column is constant, so SAP is undefined")
    return float(np.nanmean(gaps))


def sap_matrix_continuous(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """(k, F) squared Pearson correlation of each code with each factor (0 for a constant code).

    disentanglement_lib's continuous branch: cov^2 / (var_code * var_factor), ddof=1.
    A constant factor gives a NaN column.
    """
    c = codes - codes.mean(axis=0)
    f = factors - factors.mean(axis=0)
    n = len(codes)
    cov = c.T @ f / (n - 1)
    var_c = (c * c).sum(axis=0) / (n - 1)
    var_f = (f * f).sum(axis=0) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = cov ** 2 / (var_c[:, None] * var_f[None, :])
    score[var_c <= 1e-12] = 0.0
    score[:, var_f <= 0] = np.nan
    return score


def _sap_liblinear_factor(x_train, y_train, x_test, y_test):
    from sklearn.svm import LinearSVC
    col = np.empty(x_train.shape[1])
    for i in range(x_train.shape[1]):
        clf = LinearSVC(C=0.01, class_weight="balanced")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning on hopeless codes
            clf.fit(x_train[:, i:i + 1], y_train)
        col[i] = np.mean(clf.predict(x_test[:, i:i + 1]) == y_test)
    return col


def sap_matrix_discrete(x_train, y_train, x_test, y_test, solver: str = "liblinear",
                        n_jobs: int = 1) -> np.ndarray:
    """(k, F) test accuracy of ``LinearSVC(C=0.01, class_weight="balanced")`` on each code alone.

    ``solver="liblinear"`` fits sklearn's LinearSVC k * F times (disentanglement_lib);
    ``"exact1d"`` solves the same convex problems for all pairs at once with
    :mod:`avatar.compare.svm1d` (same optimum, ~12x faster; accuracies agree to a row or
    two in thousands, where a test point sits on a decision boundary). Constant factors give NaN.
    """
    varies = np.array([len(np.unique(y_train[:, j])) > 1 for j in range(y_train.shape[1])])
    score = np.full((x_train.shape[1], y_train.shape[1]), np.nan)
    if solver == "exact1d":
        if varies.any():
            score[:, varies] = svm1d.accuracy(x_train, y_train[:, varies], x_test, y_test[:, varies], C=0.01)
    elif solver == "liblinear":
        jobs = [(x_train, y_train[:, j], x_test, y_test[:, j]) for j in np.flatnonzero(varies)]
        for j, col in zip(np.flatnonzero(varies), parallel_map(_sap_liblinear_factor, jobs, n_jobs)):
            score[:, j] = col
    else:
        raise ValueError(f"solver must be 'liblinear' or 'exact1d', got {solver!r}")
    return score


def sap(codes_train, factors_train, codes_test, factors_test, continuous: bool = False, *,
        n_bins: int = 20, solver: str = "liblinear", max_train: int | None = None,
        max_test: int | None = None, seed: int = 0, n_jobs: int = 1) -> float:
    """Separated Attribute Predictability (Kumar et al. 2018), disentanglement_lib style.

    Scores every (code, factor) pair by the test accuracy of a linear SVM on that
    code alone (discretized factors), or with ``continuous=True`` by the squared
    correlation on the training rows (raw factors); SAP is the mean over factors
    of the gap between the two best codes. In [0, 1]; needs k >= 2 codes.
    """
    ctr, ftr, cte, fte = check_split(codes_train, factors_train, codes_test, factors_test)
    rng = np.random.default_rng(seed)
    itr, ite = subsample(len(ctr), max_train, rng), subsample(len(cte), max_test, rng)
    if continuous:
        return sap_from_matrix(sap_matrix_continuous(ctr[itr], ftr[itr]))
    ytr, record = discretize(ftr, n_bins)
    yte = apply_discretization(fte, record)
    return sap_from_matrix(sap_matrix_discrete(ctr[itr], ytr[itr], cte[ite], yte[ite], solver, n_jobs))


# modularity and explicitness -------------------------------------------------------------
def modularity(mutual_information: np.ndarray) -> float:
    """Modularity (Ridgeway & Mozer 2018) of a (k codes, F factors) MI matrix, in [0, 1].

    Per code: 1 - (sum of squared MI off its best factor) / (best squared MI * (F - 1));
    a code with no information scores 0. Mean over codes.
    """
    sq = np.square(np.asarray(mutual_information, dtype=np.float64))
    if sq.shape[1] < 2:
        raise ValueError("modularity needs at least 2 factors")
    best = sq.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = 1.0 - (sq.sum(axis=1) - best) / (best * (sq.shape[1] - 1.0))
    score[best == 0.0] = 0.0
    return float(np.mean(score))


def _explicitness_factor(x_train, y_train, x_test, y_test):
    from sklearn.linear_model import LogisticRegression
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs stops at max_iter=100 as in disentanglement_lib
        clf = LogisticRegression().fit(x_train, y_train)
    return _macro_auc(y_train, clf.predict_proba(x_train), clf.classes_), \
        _macro_auc(y_test, clf.predict_proba(x_test), clf.classes_)


def _macro_auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Mean one-vs-rest ROC-AUC over the classes present (with both outcomes) in y.

    y : (n,) labels; proba : (n, C) scores of ``classes`` (C,). Each class's AUC is the
    Mann-Whitney statistic from average ranks (ties count a half), which is exactly
    sklearn's ``roc_auc_score(onehot, proba, average="macro")``: all classes in one
    sort, without its per-class validation (which cost 2.5x the classifier's fit).
    """
    onehot = y[:, None] == classes[None, :]
    n_pos = onehot.sum(axis=0)
    keep = (n_pos > 0) & (n_pos < len(y))
    if not keep.any():
        return float("nan")
    ranks = scipy.stats.rankdata(proba[:, keep], axis=0)             # (n, C') average ranks
    pos = n_pos[keep].astype(np.float64)
    u = (ranks * onehot[:, keep]).sum(axis=0) - pos * (pos + 1) / 2.0
    return float(np.mean(u / (pos * (len(y) - pos))))


def _macro_aucs(y: np.ndarray, proba: np.ndarray, classes: list) -> np.ndarray:
    """(F,) :func:`_macro_auc` of every factor at once: labels ``y`` (n, F), scores ``proba``
    (F, n, C_max) of ``classes`` (F arrays; a factor's columns past its count are unused).

    One sort of every (factor, class) column instead of a rank pass per factor (2.9x quicker). With
    no tied scores a positive's rank is its place in the sorted column; a column with ties gets
    average ranks from :func:`_macro_auc` (scores of distinct codes rarely tie).
    """
    F, n, C = proba.shape
    labels = np.full((F, C), np.iinfo(np.int64).min)
    for j, c in enumerate(classes):
        labels[j, :len(c)] = c
    onehot = y.T[:, None, :] == labels[:, :, None]                     # (F, C, n)
    n_pos = onehot.sum(axis=2)
    keep = (n_pos > 0) & (n_pos < n)                                    # classes with both outcomes
    f, c = np.nonzero(keep)
    scores = proba.transpose(0, 2, 1)[f, c]                             # (K, n) the kept columns
    order = np.argsort(scores, axis=1)
    ranked = np.take_along_axis(scores, order, axis=1)
    pos = n_pos[f, c].astype(np.float64)
    u = np.take_along_axis(onehot[f, c], order, axis=1) @ np.arange(1.0, n + 1.0) - pos * (pos + 1) / 2.0
    auc = np.zeros((F, C))
    auc[f, c] = u / (pos * (n - pos))
    out = auc.sum(axis=1) / np.maximum(keep.sum(axis=1), 1)
    out[~keep.any(axis=1)] = np.nan
    for j in np.unique(f[(ranked[:, 1:] == ranked[:, :-1]).any(axis=1)]):   # ties: average ranks
        out[j] = _macro_auc(y[:, j], proba[j][:, :len(classes[j])], classes[j])
    return out


def explicitness_from_labels(x_train, y_train, x_test, y_test, n_jobs: int = 1, solver: str = "batched") -> dict:
    """Explicitness on codes (n, k) float and factor labels (n, F) int; see :func:`explicitness`.

    ``solver="batched"`` fits every factor's ``LogisticRegression()`` problem at once
    (:mod:`avatar.compare.logistic`, the same optimum to its tolerance, ~3x cheaper);
    ``"sklearn"`` fits sklearn's estimator per factor (its lbfgs stops at 100 iterations).
    """
    if solver not in EXPLICITNESS_SOLVERS:
        raise ValueError(f"solver must be one of {EXPLICITNESS_SOLVERS}, got {solver!r}")
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant code would divide by zero
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    varies = np.array([len(np.unique(y_train[:, j])) > 1 for j in range(y_train.shape[1])])
    per = np.full((2, y_train.shape[1]), np.nan)
    if solver == "batched" and varies.any():
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=max(1, n_jobs), user_api="blas"):  # its matrix products are the work
            W, classes, _ = fit_logistic(x_train, y_train[:, varies])
        sizes = np.array([len(c) for c in classes])
        for row, (x, y) in enumerate(((x_train, y_train), (x_test, y_test))):
            P = predict_proba(W, x, sizes)
            per[row, varies] = _macro_aucs(y[:, varies], P, classes)
    elif solver == "sklearn":
        jobs = [(x_train, y_train[:, j], x_test, y_test[:, j]) for j in np.flatnonzero(varies)]
        for j, (tr, te) in zip(np.flatnonzero(varies), parallel_map(_explicitness_factor, jobs, n_jobs)):
            per[:, j] = tr, te
    return {"explicitness_train": float(np.nanmean(per[0])), "explicitness_test": float(np.nanmean(per[1])),
            "explicitness_test_per_factor": per[1]}


def explicitness(codes_train, factors_train, codes_test, factors_test, *, n_bins: int = 20,
                 max_train: int | None = None, max_test: int | None = None, seed: int = 0,
                 n_jobs: int = 1, solver: str = "batched") -> dict:
    """Explicitness (Ridgeway & Mozer 2018): mean one-vs-rest ROC-AUC of ``LogisticRegression()``.

    One classifier per factor on all codes (standardised with the training mean
    and std), scored on train and test rows; 0.5 is chance, 1 is perfect.
    disentanglement_lib binarises labels with MultiLabelBinarizer, which fails when
    the test rows lack a class; here a class missing from the scored rows is
    left out of that factor's mean. ``solver``: see :func:`explicitness_from_labels`.
    """
    ctr, ftr, cte, fte = check_split(codes_train, factors_train, codes_test, factors_test)
    rng = np.random.default_rng(seed)
    itr, ite = subsample(len(ctr), max_train, rng), subsample(len(cte), max_test, rng)
    ytr, record = discretize(ftr, n_bins)
    yte = apply_discretization(fte, record)
    return explicitness_from_labels(ctr[itr], ytr[itr], cte[ite], yte[ite], n_jobs, solver)
