"""Every metric at once for one set of codes, plus the baselines that give their scale.

    from avatar.compare.scorecard import compare_codes, baselines
    card = compare_codes(codes_tr, sliders_tr, codes_te, sliders_te, slider_names)
    card["summary"]          # headline floats: mig, dci_*, sap, modularity, explicitness, ...
    card["estimators"]       # bins, models and their parameters, seeds, subsample sizes, versions
    base = baselines(codes_tr, sliders_tr, codes_te, sliders_te, slider_names)
    base["sliders"]["summary"], base["random_projection"]["summary"], base["permuted_codes"]["summary"]

Everything returned is plain JSON (lists, floats, strings, None for undefined
values), ready for metrics.json.
"""
from __future__ import annotations

import platform
import time

import numpy as np

from avatar.compare import matrices as X
from avatar.compare import metrics as M

DEFAULTS = {"n_bins": 20, "discretize_method": "equal_width", "max_train": 2000, "max_test": 2000,
            "max_train_nonlinear": None, "nonlinear_model": "additive", "dci_model": "forest",
            "sap_solver": "exact1d"}


def compare_codes(codes_train, factors_train, codes_test, factors_test, factor_names, code_names=None, *,
                  n_bins: int = 20, seed: int = 0, discretize_method: str = "equal_width",
                  max_train: int | None = 2000, max_test: int | None = 2000,
                  max_train_nonlinear: int | None = None, nonlinear_model: str = "additive",
                  dci_model: str = "forest", sap_solver: str = "exact1d", n_jobs: int = 1) -> dict:
    """All metrics of codes (n, k) against sliders (n, F), as JSON-able data.

    Parameters
    ----------
    codes_train, codes_test : (n_train, k), (n_test, k) float, k >= 2
    factors_train, factors_test : (n_train, F), (n_test, F) slider values (F >= 2)
    factor_names : F slider names; code_names : k names (default "z0", "z1", ...)
    n_bins, discretize_method : how sliders with > n_bins values are binned (codes: always
        n_bins equal-width histogram bins, as disentanglement_lib)
    max_train, max_test : rows (seeded draw) for the fitted-classifier metrics: DCI, SAP,
        explicitness. MIG, modularity, MI, correlations and linear R^2 use every row.
    nonlinear_model, max_train_nonlinear : the nonlinear R^2's model ("additive" spline GAM, or
        "mlp"; see avatar.compare.matrices.regressor) and its training rows (None = all); it is
        scored, like the linear R^2, on every test row
    dci_model : "forest" (default; bagged trees, seconds) or "gbt" (disentanglement_lib's
        GradientBoostingClassifier, ~10 s per 20-class factor)
    sap_solver : "exact1d" (vectorized, same optimum) or "liblinear" (sklearn, k * F fits)
    n_jobs : threads for the per-factor classifier fits

    Returns
    -------
    dict with summary, per-metric details (matrices as nested lists, rows codes), names,
    estimators (settings record) and timings (wall and CPU seconds per step, and in total).
    """
    ctr, ftr, cte, fte = M.check_split(codes_train, factors_train, codes_test, factors_test)
    k, n_f = ctr.shape[1], ftr.shape[1]
    factor_names = [str(s) for s in factor_names]
    code_names = [f"z{i}" for i in range(k)] if code_names is None else [str(s) for s in code_names]
    if len(factor_names) != n_f:
        raise ValueError(f"factor_names has {len(factor_names)} names but factors have {n_f} columns")
    if len(code_names) != k:
        raise ValueError(f"code_names has {len(code_names)} names but codes have {k} columns")
    if k < 2 or n_f < 2:
        raise ValueError(f"comparisons need at least 2 codes and 2 factors, got {k} codes and {n_f} factors")
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1):  # parallelism, if any, is n_jobs threads; BLAS/OpenMP inside would oversubscribe
        return _compare(ctr, ftr, cte, fte, factor_names, code_names, n_bins, seed, discretize_method,
                        max_train, max_test, max_train_nonlinear, nonlinear_model, dci_model, sap_solver,
                        n_jobs)


def _compare(ctr, ftr, cte, fte, factor_names, code_names, n_bins, seed, method, max_train, max_test,
             max_train_nonlinear, nonlinear_model, dci_model, sap_solver, n_jobs) -> dict:
    timings = {}
    start = clock = (time.perf_counter(), time.process_time())

    def lap(name):  # wall and CPU seconds of each step (CPU: what it costs on an idle machine)
        nonlocal clock
        now = (time.perf_counter(), time.process_time())
        spent = timings.get(name, {"wall": 0.0, "cpu": 0.0})
        timings[name] = {"wall": round(spent["wall"] + now[0] - clock[0], 3),
                         "cpu": round(spent["cpu"] + now[1] - clock[1], 3)}
        clock = now

    rng = np.random.default_rng(seed)
    itr, ite = M.subsample(len(ctr), max_train, rng), M.subsample(len(cte), max_test, rng)
    inl = M.subsample(len(ctr), max_train_nonlinear, rng)
    ytr, record = M.discretize(ftr, n_bins, method)
    yte = M.apply_discretization(fte, record)
    discrete = np.array([c["kind"] == "discrete" for c in record["columns"]])
    entropy = M.discrete_entropy(ytr)
    mi = M.mutual_info_matrix(M.histogram_discretize(ctr, n_bins), ytr)
    gaps = M.mig_from_mi(mi, entropy)
    lap("mutual_information")
    pearson, spearman = X.correlations(ctr, ftr)
    lap("correlations")
    dci = M.dci_from_labels(ctr[itr], ytr[itr], cte[ite], yte[ite], dci_model, seed, n_jobs)
    lap("dci")
    sap_scores = M.sap_matrix_discrete(ctr[itr], ytr[itr], cte[ite], yte[ite], sap_solver, n_jobs)
    sap_cont = M.sap_matrix_continuous(ctr, ftr)
    lap("sap")
    expl = M.explicitness_from_labels(ctr[itr], ytr[itr], cte[ite], yte[ite], n_jobs)
    lap("explicitness")
    r2 = {"codes_to_sliders": _r2(ctr, ftr, cte, fte, inl, nonlinear_model, seed, lap),
          "sliders_to_codes": _r2(ftr, ctr, fte, cte, inl, nonlinear_model, seed, lap)}
    match = X.matching(np.abs(spearman))
    vis, vis_kind = X.visibility(r2["codes_to_sliders"]["linear"], r2["codes_to_sliders"]["nonlinear"],
                                 discrete, dci["adjusted_balanced_accuracy_test_per_factor"])
    vis[entropy == 0] = np.nan  # a slider that never varies has nothing to recover
    pure = X.purity(dci["importance"])
    mix = X.mixing(ftr, ctr)
    lap("matching_visibility_purity")
    timings["total"] = {"wall": round(clock[0] - start[0], 3), "cpu": round(clock[1] - start[1], 3)}

    summary = {
        "mig": _nanmean(gaps), "dci_disentanglement": dci["disentanglement"],
        "dci_completeness": dci["completeness"], "dci_informativeness_train": dci["informativeness_train"],
        "dci_informativeness_test": dci["informativeness_test"], "sap": M.sap_from_matrix(sap_scores),
        "sap_continuous": M.sap_from_matrix(sap_cont), "modularity": M.modularity(mi),
        "explicitness_train": expl["explicitness_train"], "explicitness_test": expl["explicitness_test"],
        "r2_codes_to_sliders_linear": _nanmean(r2["codes_to_sliders"]["linear"]),
        "r2_codes_to_sliders_nonlinear": _nanmean(r2["codes_to_sliders"]["nonlinear"]),
        "r2_sliders_to_codes_linear": _nanmean(r2["sliders_to_codes"]["linear"]),
        "r2_sliders_to_codes_nonlinear": _nanmean(r2["sliders_to_codes"]["nonlinear"]),
        "matching_score": match["score"], "visibility_mean": _nanmean(vis),
        "purity_mean": float(mix["purity"].mean()),
    }
    out = {
        "summary": summary,
        "code_names": code_names, "factor_names": factor_names,
        "n_train": len(ctr), "n_test": len(cte), "n_codes": len(code_names), "n_factors": len(factor_names),
        "mig": {"score": summary["mig"], "per_factor": gaps},
        "dci": {key: dci[key] for key in ("disentanglement", "completeness", "informativeness_train",
                                          "informativeness_test", "importance")}
        | {"informativeness_test_per_factor": dci["informativeness_test_per_factor"]},
        "sap": {"score": summary["sap"], "matrix": sap_scores, "score_continuous": summary["sap_continuous"],
                "matrix_continuous": sap_cont},
        "modularity": summary["modularity"],
        "explicitness": expl,
        "r2": r2,
        "pearson": pearson, "spearman": spearman, "mutual_information": mi,
        "normalized_mutual_information": X.normalized_mi(mi, entropy), "factor_entropy": entropy,
        "matching": {"criterion": "|spearman|", "score": match["score"],
                     "pairs": [{"code": code_names[i], "slider": factor_names[j], "abs_spearman": float(s),
                                "spearman": float(spearman[i, j]) if np.isfinite(spearman[i, j]) else None}
                               for i, j, s in zip(match["codes"], match["sliders"], match["scores"])]},
        "visibility": {"per_slider": vis, "kind": vis_kind},
        "purity": {"per_code": mix["purity"], "n_sliders_mixed": mix["n_mixed"],
                   "top_slider": [factor_names[j] for j in mix["top"]], "explained": mix["explained"],
                   "dci_importance": {"per_code": pure["purity"], "n_sliders_mixed": pure["n_mixed"],
                                      "relevance": pure["relevance"]}},
        "estimators": estimators(record, seed, len(ctr), len(cte), len(itr), len(ite), len(inl),
                                 nonlinear_model, dci_model, sap_solver, n_jobs),
        "timings": timings,
    }
    return to_json(out)


def _r2(x_train, y_train, x_test, y_test, rows, nonlinear_model, seed, lap) -> dict:
    """Per-output test R^2 of y from x, linear (every row) and nonlinear (``rows`` of train)."""
    out = {"linear": X.r2(x_train, y_train, x_test, y_test, "linear")}
    lap("r2_linear")
    out["nonlinear"] = X.r2(x_train[rows], y_train[rows], x_test, y_test, nonlinear_model, seed)
    lap("r2_nonlinear")
    flat = np.ptp(y_train, axis=0) == 0  # R^2 of a constant target carries no information: undefined
    for model in out:
        out[model][flat] = np.nan
    return out


def estimators(record, seed, n_train, n_test, n_fit, n_score, n_nonlinear, nonlinear_model, dci_model,
               sap_solver, n_jobs) -> dict:
    """Every estimator setting behind the numbers: what metrics.json records."""
    import sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    def spec(est):
        if hasattr(est, "steps"):  # a Pipeline: its steps in order
            return {"class": "sklearn.pipeline.Pipeline", "steps": [spec(step) for _, step in est.steps]}
        params = {key: val if isinstance(val, (bool, int, float, str, tuple, list, np.ndarray, type(None)))
                  else repr(val) for key, val in est.get_params(deep=False).items()}
        return {"class": f"{type(est).__module__}.{type(est).__name__}", "params": params}

    rows = {"train_rows": n_fit, "test_rows": n_score, "of_train": n_train, "of_test": n_test}
    return {
        "versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "seed": seed, "n_jobs": n_jobs,
        "subsample": f"rows drawn without replacement by np.random.default_rng({seed}): classifier metrics "
                     f"fit on {n_fit} training rows and score {n_score} test rows; the nonlinear R^2 "
                     f"fits {n_nonlinear} training rows and scores every test row",
        "factor_discretization": record,
        "code_discretization": {"method": "equal_width", "n_bins": record["n_bins"],
                                "rule": "per code, np.digitize against np.histogram(code, n_bins) edges "
                                        "(disentanglement_lib _histogram_discretize), training rows"},
        "mig": {"mutual_information": "sklearn.metrics.mutual_info_score formula, nats", "rows": "all training",
                "normalisation": "factor entropy, nats; factors with zero entropy left out"},
        "modularity": {"mutual_information": "same matrix as MIG", "rows": "all training"},
        "dci": {"model": dci_model, "estimator": spec(M.dci_model(dci_model, seed)),
                "importance": "abs(feature_importances_)", "informativeness": "accuracy"} | rows,
        "sap": {"estimator": spec(LinearSVC(C=0.01, class_weight="balanced")), "solver": sap_solver,
                "score": "test accuracy per (code, factor), mean top-two gap",
                "continuous": "squared Pearson correlation on all training rows, raw sliders"} | rows,
        "explicitness": {"estimator": spec(LogisticRegression()), "inputs": "codes standardised by training "
                         "mean/std", "score": "mean one-vs-rest ROC-AUC over classes present"} | rows,
        "r2": {"linear": spec(X.regressor("linear")), "nonlinear_model": nonlinear_model,
               "nonlinear": spec(X.regressor(nonlinear_model, seed)),
               "inputs_outputs": "standardised by training mean/std", "score": "sklearn r2_score per output",
               "linear_rows": {"train_rows": n_train, "test_rows": n_test},
               "nonlinear_rows": {"train_rows": n_nonlinear, "test_rows": n_test}},
        "correlations": {"pearson": "all training rows", "spearman": "Pearson of ranks (ties averaged)"},
        "matching": "scipy.optimize.linear_sum_assignment maximising |spearman|; score = mean matched |rho|",
        "visibility": "continuous slider: max(linear, nonlinear) test R^2 codes->slider, floored at 0; "
                      "discrete slider: DCI classifier's chance-adjusted balanced test accuracy, floored at 0",
        "purity": "per code: shares = squared standardised coefficients of a linear fit of the code on all "
                  "sliders (all training rows); purity = 1 - entropy(shares) / log F; n_sliders_mixed = "
                  "exp(entropy); dci_importance holds the same from the DCI importance rows",
    }


BASELINES = ("sliders", "random_projection", "permuted_codes")
IDENTITY_FACTORS = 48   # the sliders baseline scores at most this many sliders (a seeded draw)


def baselines(codes_train, factors_train, codes_test, factors_test, factor_names, *, seed: int = 0,
              which=BASELINES, identity_factors: int | None = IDENTITY_FACTORS, **kwargs) -> dict:
    """The same comparison for three reference representations, so a reader sees the scale.

    - ``sliders``: the sliders themselves as codes (the upper bound; k = F). With more than
      ``identity_factors`` sliders it is scored on a seeded draw of that many, as codes and as
      factors: the identity's scores do not depend on how many sliders there are, while its cost
      grows with F^2 (a classifier over F codes for each of F factors); ``factor_names`` of its
      card says which. ``permuted_codes`` is scored on the same draw: every score of shuffled
      codes is noise around its floor, which 48 sliders estimate as well as all of them.
    - ``random_projection``: sliders standardised with the training mean/std, times a seeded
      Gaussian matrix (F, k) / sqrt(k): as much information as k random directions keep, no alignment.
      The codes project every slider; they are scored on the same draw (its per-slider scores, the
      R^2 and the visibility, are means that the draw estimates; each code mixes all F sliders, so
      its disentanglement and matching stay at their floors either way).
    - ``permuted_codes``: the codes with their rows shuffled (seeded) against the sliders; the
      negative control, near 0 on every score.

    ``which`` picks some of them: the sliders baseline does not depend on the codes, so several
    models compared on the same rows need it once. ``kwargs`` go to :func:`compare_codes`
    (n_bins, max_train, dci_model, n_jobs, ...).
    """
    ctr, ftr, cte, fte = M.check_split(codes_train, factors_train, codes_test, factors_test)
    k = ctr.shape[1]
    rng = np.random.default_rng(seed)
    mean, std = ftr.mean(axis=0), ftr.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    proj = rng.standard_normal((ftr.shape[1], k)) / np.sqrt(k)
    rp_names = [f"rp{i}" for i in range(k)]
    perm_tr, perm_te = rng.permutation(len(ctr)), rng.permutation(len(cte))
    unknown = set(which) - set(BASELINES)
    if unknown:
        raise ValueError(f"unknown baseline(s) {sorted(unknown)}; choose from {BASELINES}")
    F = ftr.shape[1]
    ident = np.arange(F) if identity_factors is None or F <= identity_factors else \
        np.sort(np.random.default_rng([seed, 0x1D]).choice(F, identity_factors, replace=False))
    ident_names = [factor_names[j] for j in ident]
    runs = {
        "sliders": lambda: compare_codes(ftr[:, ident], ftr[:, ident], fte[:, ident], fte[:, ident], ident_names,
                                         list(ident_names), seed=seed, **kwargs),
        "random_projection": lambda: compare_codes((ftr - mean) / std @ proj, ftr[:, ident], (fte - mean) / std @ proj,
                                                   fte[:, ident], ident_names, rp_names, seed=seed, **kwargs),
        "permuted_codes": lambda: compare_codes(ctr[perm_tr], ftr[:, ident], cte[perm_te], fte[:, ident], ident_names,
                                                seed=seed, **kwargs),
    }
    return {name: runs[name]() for name in BASELINES if name in which}


def _nanmean(a) -> float:
    a = np.asarray(a, dtype=np.float64)
    return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")


def to_json(obj):
    """Arrays -> lists, numpy scalars -> Python, NaN/inf -> None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(key): to_json(val) for key, val in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_json(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj
