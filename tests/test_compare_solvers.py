"""The compare step's own solvers against the sklearn estimators they replace.

- DCI's forests (avatar.compare.forest) grow sklearn's RandomForestClassifier trees bit for bit;
- the batched logistic regression (avatar.compare.logistic) reaches LogisticRegression()'s optimum;
- the leave-one-out ridge (avatar.compare.ridge) is RidgeCV(alpha_per_target=True).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from avatar.compare import metrics as M
from avatar.compare import ridge
from avatar.compare.forest import balanced_accuracy, dci_forests
from avatar.compare.logistic import Problems, fit_logistic, predict_proba


def _codes_and_labels(n, seed):
    """Codes with the cases the tree code branches on: a constant code, a coarse code with many
    equal values, two codes 1 ulp apart (within sklearn's 1e-7 tie tolerance), and labels with
    2 to 20 classes, some only loosely tied to the codes."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 7))
    x[:, 2] = 0.25                                       # constant
    x[:, 3] = np.round(x[:, 3])                          # few distinct values
    x[:, 4] = np.where(rng.random(n) < 0.5, 1.0, np.nextafter(np.float32(1.0), np.float32(2.0)))
    y = np.stack([np.digitize(x[:, 0] + x[:, 1] * 0.5 + rng.normal(size=n) * s, np.linspace(-2, 2, c - 1))
                  for c, s in ((2, 0.1), (5, 0.5), (20, 0.3), (20, 2.0), (9, 0.0))], axis=1)
    y[:, 4] = np.round(x[:, 3]).astype(int) + 3          # a label the coarse code decides alone
    return x, y


@pytest.mark.parametrize("seed", [0, 1])
def test_dci_forests_are_sklearns_forests_bit_for_bit(seed):
    from sklearn.metrics import balanced_accuracy_score
    x, y = _codes_and_labels(900, seed)
    x_te, y_te = _codes_and_labels(400, seed + 10)
    out = dci_forests(x, y, x_te, y_te, seed=seed, n_jobs=2)
    for j in range(y.shape[1]):
        ref = M.dci_model("forest", seed).fit(x, y[:, j])
        np.testing.assert_array_equal(out["importance"][:, j], ref.feature_importances_)
        assert out["accuracy_train"][j] == np.mean(ref.predict(x) == y[:, j])
        assert out["accuracy_test"][j] == np.mean(ref.predict(x_te) == y_te[:, j])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # a class only predicted
            assert out["balanced_test"][j] == balanced_accuracy_score(y_te[:, j], ref.predict(x_te), adjusted=True)
    assert out["importance"][2].max() == 0.0             # the constant code is never split on


def test_balanced_accuracy_is_sklearns():
    from sklearn.metrics import balanced_accuracy_score
    rng = np.random.default_rng(3)
    y, p = rng.integers(0, 6, 300), rng.integers(0, 8, 300)   # classes 6, 7 only predicted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert balanced_accuracy(y, p) == balanced_accuracy_score(y, p, adjusted=True)


def _objective(W, b, x, y, C=1.0):
    """sklearn's LogisticRegression objective at weights W (k, P) and intercepts b (P,): the mean
    log loss plus ||W||^2 / (2 C n); P = 1 is the binary model (one logit for the second class)."""
    Z = x @ W + b
    if Z.shape[1] == 1:
        Z = np.hstack([np.zeros_like(Z), Z])
    Z -= Z.max(axis=1, keepdims=True)
    logp = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(x)), y].mean() + (W ** 2).sum() / (2 * C * len(x))


def test_batched_logistic_reaches_sklearns_optimum():
    from sklearn.linear_model import LogisticRegression
    rng = np.random.default_rng(0)
    x = rng.normal(size=(800, 6))
    x[:, 1] += 0.8 * x[:, 0]                                   # correlated codes
    x_te = rng.normal(size=(300, 6))
    y = np.stack([np.digitize(x @ rng.normal(size=6) + rng.normal(size=800) * s, np.linspace(-2, 2, c - 1))
                  for c, s in ((2, 0.3), (7, 1.0), (20, 0.5))], axis=1)
    y[:5, 2] = 30                                              # a rare class
    W, classes, iterations = fit_logistic(x, y)
    W_tight, _, _ = fit_logistic(x, y, tol=1e-8)
    sizes = np.array([len(c) for c in classes])
    P = predict_proba(W, x_te, sizes)
    assert np.allclose(P.sum(axis=2), 1.0) and (iterations < 500).all()
    labels = np.stack([np.searchsorted(c, y[:, j]) for j, c in enumerate(classes)])
    _, G = Problems(x, labels, sizes).value_grad(W, np.arange(len(sizes)))
    assert np.abs(G).max() <= 1e-4                             # sklearn's stopping test, in float64
    for j in range(y.shape[1]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = LogisticRegression(max_iter=5000, tol=1e-10).fit(x, y[:, j])
        np.testing.assert_array_equal(classes[j], ref.classes_)
        idx = np.searchsorted(classes[j], y[:, j])
        theirs = _objective(ref.coef_.T, ref.intercept_, x, idx)
        # at the optimum, to the tolerance: stopped at a largest gradient entry of 1e-4, as sklearn's
        # default, the objective is within 1e-5 of it (sklearn's own default fit: up to 5.4e-6 here)
        for weights, gap in ((W, 1e-5), (W_tight, 1e-11)):
            w = weights[j][:, :sizes[j]]
            if sizes[j] == 2:                                  # as sklearn's one binary logit
                w = w[:, 1:] - w[:, :1]
            assert _objective(w[:-1], w[-1], x, idx) <= theirs + gap
        # as close as sklearn's default fit comes to its converged one (up to 2.7e-3 here)
        assert np.abs(P[j][:, :sizes[j]] - ref.predict_proba(x_te)).max() < 3e-3
        assert (P[j][:, sizes[j]:] == 0).all()


def test_explicitness_solvers_agree():
    rng = np.random.default_rng(5)
    f = rng.uniform(size=(1200, 4))
    c = np.column_stack([f[:, 0], f[:, 1] ** 2, rng.normal(size=1200)])
    batched = M.explicitness(c[:800], f[:800], c[800:], f[800:])
    reference = M.explicitness(c[:800], f[:800], c[800:], f[800:], solver="sklearn")
    assert abs(batched["explicitness_test"] - reference["explicitness_test"]) < 2e-3
    np.testing.assert_allclose(batched["explicitness_test_per_factor"],
                               reference["explicitness_test_per_factor"], atol=3e-3)
    with pytest.raises(ValueError, match="solver"):
        M.explicitness(c, f, c, f, solver="newton")


def test_loo_ridge_is_ridgecv_and_reuses_its_decomposition():
    from sklearn.linear_model import RidgeCV
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 30))
    X[:, 29] = X[:, 28]                                        # collinear columns
    Y = X[:, :4] @ rng.normal(size=(4, 5)) + rng.normal(size=(500, 5)) * np.array([0.1, 1, 3, 10, 30])
    alphas = np.logspace(-3, 3, 7)
    ref = RidgeCV(alphas=alphas, alpha_per_target=True).fit(X, Y)
    coef, intercept, chosen = ridge.loo_ridge(X, Y, alphas)
    np.testing.assert_array_equal(chosen, ref.alpha_)
    np.testing.assert_allclose(coef, ref.coef_.T, atol=1e-9)
    np.testing.assert_allclose(intercept, ref.intercept_, atol=1e-9)
    ridge._CACHE.clear()
    ridge.loo_ridge(X, Y, alphas)
    cached = next(iter(ridge._CACHE.values()))
    assert ridge.decomposition(X.copy()) is cached            # same bytes: the kept decomposition
    assert ridge.decomposition(X + 1e-9) is not cached


def test_worker_processes_share_a_decomposition_through_the_compare_folder(tmp_path):
    """With a shared folder the first process writes its decomposition there and the next reads the
    same numbers back (memory-mapped) instead of making it again."""
    from avatar.compare import tasks

    X = np.random.default_rng(5).normal(size=(300, 40))
    tasks.share_in(tmp_path)
    try:
        ridge._CACHE.clear()
        made = ridge.decomposition(X)
        (folder,) = tmp_path.iterdir()                          # one decomposition, renamed into place whole
        assert sorted(p.name for p in folder.iterdir()) == ["U.npy", "V.npy", "mean.npy", "s.npy"]
        ridge._CACHE.clear()                                    # another process: nothing in memory
        read = ridge.decomposition(X)
        assert isinstance(read[2], np.memmap)
        for a, b in zip(made, read):
            np.testing.assert_array_equal(a, b)
        ridge._CACHE.clear()
        assert ridge.decomposition(X[:, :8])[2].shape == (8, 8) and len(list(tmp_path.iterdir())) == 1   # small: not shared
    finally:
        tasks.share_in(None)
        ridge._CACHE.clear()


def _order(log: list, key):
    log.append(key)
    return key


def test_tasks_run_by_rank_then_arrival_and_later_tasks_can_overtake():
    """run_tasks hands out tasks lowest rank first, equal ranks in queue order; a task a finished one
    queues (then) overtakes waiting ones of higher rank. With worker processes every result comes back
    and the timeline covers every task."""
    from functools import partial

    from avatar.compare import tasks

    log: list = []
    rank = {"big": 0, "small": 2, "follow": 1}
    todo = {(k, i): (partial(_order, log), ((k, i),)) for k, i in [("small", 0), ("big", 0), ("small", 1), ("big", 1)]}
    then = lambda key, result: {("follow", key[1]): (partial(_order, log), (("follow", key[1]),))} \
        if key[0] == "big" else {}
    seconds: dict = {}
    out = tasks.run_tasks(todo, None, then=then, seconds=seconds, priority=lambda key: rank[key[0]])
    assert log == [("big", 0), ("big", 1), ("follow", 0), ("follow", 1), ("small", 0), ("small", 1)]
    assert out == {k: k for k in log} and set(seconds) == set(log)
    with tasks.worker_pool(2) as pool:
        seconds = {}
        out = tasks.run_tasks({("x", i): (abs, (-i,)) for i in range(5)}, pool, seconds=seconds)
    assert out == {("x", i): i for i in range(5)}
    assert all(0 <= s[2] <= s[3] for s in seconds.values())
