"""Code-by-slider matrices and per-code / per-slider summaries beyond the disentanglement scores.

Arrays are ``codes : (n, k)`` and ``factors : (n, F)`` (sliders); every matrix
is ``(k, F)``, rows codes and columns sliders.

    from avatar.compare import matrices as X
    pearson, spearman = X.correlations(codes, sliders)
    X.r2(codes_tr, sliders_tr, codes_te, sliders_te, model="linear")   # (F,) codes -> sliders
    X.matching(np.abs(spearman))                                      # Hungarian one-to-one
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.stats

from avatar.compare.ridge import loo_ridge

R2_MODELS = ("linear", "additive", "mlp")


def correlations(codes: np.ndarray, factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(k, F) Pearson and Spearman correlations of every code with every slider.

    Spearman is Pearson on ranks (ties averaged), so it sees any monotone link.
    A constant column gives NaN (its correlation is undefined).
    """
    return _pearson(codes, factors), _pearson(scipy.stats.rankdata(codes, axis=0),
                                              scipy.stats.rankdata(factors, axis=0))


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    na, nb = np.sqrt((a * a).sum(axis=0)), np.sqrt((b * b).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (a.T @ b) / (na[:, None] * nb[None, :])
    r[na == 0, :] = np.nan
    r[:, nb == 0] = np.nan
    return np.clip(r, -1.0, 1.0)


def normalized_mi(mi: np.ndarray, entropy: np.ndarray) -> np.ndarray:
    """(k, F) MI divided by each slider's entropy: the fraction of the (binned) slider a code pins down."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(entropy[None, :] > 0, mi / np.where(entropy > 0, entropy, 1.0)[None, :], np.nan)


def regressor(model: str = "linear", seed: int = 0):
    """The model behind an R^2 (inputs and outputs are standardised first).

    - ``"linear"``: ordinary least squares.
    - ``"additive"``: a generalised additive model: each input expanded into cubic
      B-splines (5 uniform knots over its training range, linear beyond it), then
      ridge regression with the penalty chosen per output by efficient leave-one-out
      (RidgeCV over 1e-3 .. 1e3). Catches any smooth one-input nonlinearity (a code
      that is sin or the square of a slider), not interactions between inputs; it
      contains the linear model, deterministic, ~1 s on 8,000 x 83. :func:`r2` solves the
      RidgeCV with :func:`avatar.compare.ridge.loo_ridge` (the same fit, its decomposition
      shared between calls on the same inputs).
    - ``"mlp"``: one hidden layer of 64 ReLU units (adam at learning rate 3e-3, at
      most 50 epochs, early stopping on 10 % of its rows, seeded); sees interactions
      but trains poorly on sparse one-input nonlinearities.
    """
    if model == "linear":
        from sklearn.linear_model import LinearRegression
        return LinearRegression()
    if model == "additive":
        from sklearn.linear_model import RidgeCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import SplineTransformer
        return make_pipeline(SplineTransformer(n_knots=5, degree=3, extrapolation="linear"),
                             RidgeCV(alphas=np.logspace(-3, 3, 7), alpha_per_target=True))
    if model == "mlp":
        from sklearn.neural_network import MLPRegressor
        return MLPRegressor(hidden_layer_sizes=(64,), learning_rate_init=3e-3, max_iter=50, early_stopping=True,
                            random_state=seed)
    raise ValueError(f"model must be one of {R2_MODELS}, got {model!r}")


def r2(x_train, y_train, x_test, y_test, model: str = "linear", seed: int = 0) -> np.ndarray:
    """(n_outputs,) test R^2 of predicting each column of y from all columns of x.

    Parameters
    ----------
    x_train, x_test : (n_train, a), (n_test, a) inputs (codes, or sliders)
    y_train, y_test : (n_train, b), (n_test, b) outputs
    model : "linear", "additive" or "mlp" (see :func:`regressor`)

    R^2 is 1 for a perfect prediction, 0 for predicting the mean, negative when
    worse than that. An output constant on the test rows scores 1 if predicted
    exactly, else 0 (sklearn's convention).
    """
    from sklearn.metrics import r2_score
    mx, sx = _scale(x_train)
    my, sy = _scale(y_train)
    xs_train, xs_test, ys_train = (x_train - mx) / sx, (x_test - mx) / sx, (y_train - my) / sy
    est = regressor(model, seed)
    if model == "additive":  # the pipeline's splines, then its RidgeCV solved on a shared decomposition
        splines, ridge_cv = est.steps[0][1], est.steps[1][1]
        splines.fit(xs_train)
        coef, intercept, _ = loo_ridge(splines.transform(xs_train), ys_train, ridge_cv.alphas)
        pred = splines.transform(xs_test) @ coef + intercept
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MLP ConvergenceWarning at max_iter
            est.fit(xs_train, ys_train)
        pred = est.predict(xs_test)
    pred = pred.reshape(len(x_test), -1) * sy + my
    return np.asarray(r2_score(y_test, pred, multioutput="raw_values"), dtype=np.float64)


def _scale(a: np.ndarray):
    std = a.std(axis=0)
    return a.mean(axis=0), np.where(std > 0, std, 1.0)


def matching(score: np.ndarray) -> dict:
    """One-to-one assignment of codes to sliders maximising the total score (Hungarian).

    Parameters
    ----------
    score : (k, F) non-negative, e.g. |Spearman|; NaN counts as 0

    Returns
    -------
    dict: ``codes`` and ``sliders`` (matched index pairs, min(k, F) of them, by code),
    ``scores`` (their entries) and ``score`` (their mean, in [0, 1] for |correlations|).
    """
    from scipy.optimize import linear_sum_assignment
    s = np.nan_to_num(np.asarray(score, dtype=np.float64), nan=0.0)
    rows, cols = linear_sum_assignment(s, maximize=True)
    return {"codes": rows, "sliders": cols, "scores": s[rows, cols], "score": float(s[rows, cols].mean())}


def purity(importance: np.ndarray) -> dict:
    """How many sliders each code mixes, from a DCI importance matrix (k, F).

    Each code's importances over sliders, normalised to sum 1, have an entropy H:
    ``purity = 1 - H / log F`` (1: the code serves one slider; 0: spread evenly,
    as a code carrying nothing is) and ``n_mixed = exp(H)``, the effective number
    of sliders it mixes (1 to F). ``relevance`` is the code's share of all
    importance, so a pure but unused code can be told apart.
    """
    imp = np.asarray(importance, dtype=np.float64) + 1e-11  # disentanglement_lib's smoothing
    p = imp / imp.sum(axis=1, keepdims=True)
    h = -(p * np.log(p)).sum(axis=1)
    total = importance.sum()
    return {"purity": 1.0 - h / np.log(imp.shape[1]) if imp.shape[1] > 1 else np.ones(len(imp)),
            "n_mixed": np.exp(h), "top": np.argmax(imp, axis=1),
            "relevance": importance.sum(axis=1) / total if total > 0 else np.zeros(len(imp))}


def mixing(factors: np.ndarray, codes: np.ndarray) -> dict:
    """How many sliders each code mixes, from a linear fit of the code on every slider.

    Parameters
    ----------
    factors : (n, F) slider values; codes : (n, k)

    Both are standardised; each code is regressed on all sliders at once, and slider j's
    share of code i is ``beta_ij^2 / sum_j beta_ij^2`` (for independent sliders, the share
    of the code's explained variance that slider j brings). With entropy H of the shares:
    ``purity = 1 - H / log F`` (1: the code follows one slider) and ``n_mixed = exp(H)``,
    the effective number of sliders it moves with. Unlike a classifier's importances,
    sliders the codes cannot see add nothing here, so an invisible slider does not make
    every code look mixed. ``explained`` is the fit's R^2 (how much of the code the
    sliders account for at all).
    """
    f = np.asarray(factors, np.float64)
    c = np.asarray(codes, np.float64)
    fm, fs = _scale(f)
    cm, cs = _scale(c)
    A, B = (f - fm) / fs, (c - cm) / cs
    beta, *_ = np.linalg.lstsq(A, B, rcond=None)                    # (F, k)
    share = beta.T ** 2
    total = share.sum(axis=1, keepdims=True)
    p = share / np.where(total > 0, total, 1.0) + 1e-12
    h = -(p * np.log(p)).sum(axis=1)
    resid = B - A @ beta
    return {"purity": 1.0 - h / np.log(f.shape[1]) if f.shape[1] > 1 else np.ones(c.shape[1]),
            "n_mixed": np.exp(h), "top": np.argmax(share, axis=1), "shares": share,
            "explained": 1.0 - (resid ** 2).mean(axis=0) / np.maximum((B ** 2).mean(axis=0), 1e-300)}


def visibility(r2_linear: np.ndarray, r2_nonlinear: np.ndarray, discrete: np.ndarray,
               adjusted_accuracy: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(F,) how much of each slider the codes recover, in [0, 1], and how it was measured.

    Continuous sliders: the better of the linear and nonlinear test R^2 of
    codes -> slider, floored at 0. Discrete sliders (categories, booleans; a
    category index is no quantity to regress): the chance-adjusted balanced test
    accuracy of the DCI classifier, floored at 0 (0 = chance, 1 = always right).
    """
    r2_best = np.maximum(np.nan_to_num(r2_linear, nan=-np.inf), np.nan_to_num(r2_nonlinear, nan=-np.inf))
    vis = np.where(discrete, np.nan_to_num(adjusted_accuracy, nan=0.0), r2_best)
    kinds = ["adjusted_balanced_accuracy" if d else "r2" for d in discrete]
    return np.clip(vis, 0.0, 1.0), kinds  # NaN (both R^2 undefined) stays NaN
