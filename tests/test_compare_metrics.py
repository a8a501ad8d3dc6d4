"""Disentanglement metrics (avatar.compare.metrics, svm1d, matrices, scorecard).

Known values come from disentanglement_lib's own unit tests (dci_test.py,
modularity_explicitness_test.py, utils_test.py); reference loops below are
written the way disentanglement_lib writes them, with sklearn calls, so the
vectorized ports are checked against the original formulation.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from avatar.compare import matrices as X
from avatar.compare import metrics as M
from avatar.compare import svm1d
from avatar.compare.scorecard import baselines, compare_codes


def identity_factors(n, sizes, seed=0):
    """(n, F) discrete factors, column j uniform over range(sizes[j]) (disentanglement_lib's dummy data)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, s, n) for s in sizes], axis=1).astype(np.float64)


def permuted(a, seed=0):
    """Each column shuffled on its own: no link to anything (disentanglement_lib's bad representation)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(col) for col in a.T], axis=1)


# known values -------------------------------------------------------------------------------
def test_dci_known_values_from_disentanglement_lib():
    eye = np.diag(5.0 * np.ones(5))
    side = np.hstack([eye, eye])     # one code per two factors
    stacked = np.vstack([eye, eye])  # two codes per factor
    np.testing.assert_allclose(M.disentanglement(side), 0.69897, rtol=1e-5)
    np.testing.assert_allclose(M.completeness(side), 1.0, rtol=1e-9)
    np.testing.assert_allclose(M.disentanglement(stacked), 1.0, rtol=1e-9)
    np.testing.assert_allclose(M.completeness(stacked), 0.69897, rtol=1e-5)
    np.testing.assert_allclose([M.disentanglement(eye), M.completeness(eye)], [1.0, 1.0], rtol=1e-9)
    np.testing.assert_allclose(M.disentanglement(side), 1 - np.log(2) / np.log(10), rtol=1e-9)
    empty_code = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    assert M.disentanglement(empty_code) == pytest.approx(1.0) and M.completeness(empty_code) == pytest.approx(1.0)
    assert M.disentanglement(np.zeros((10, 10))) == pytest.approx(0.0)
    assert M.completeness(np.zeros((10, 10))) == pytest.approx(0.0, abs=1e-7)


def test_modularity_known_values_from_disentanglement_lib():
    eye = np.diag(5.0 * np.ones(5))
    assert M.modularity(eye) == pytest.approx(1.0)
    assert M.modularity(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])) == pytest.approx(2 / 3)
    assert M.modularity(np.zeros((10, 10))) == pytest.approx(0.0)
    assert M.modularity(np.vstack([eye, eye])) == pytest.approx(1.0)
    assert M.modularity(np.hstack([eye, eye])) == pytest.approx(1 - 1 / 9)


def test_discretizer_entropy_and_mi_match_disentanglement_lib_utils():
    target = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]]).T
    np.testing.assert_array_equal(M.histogram_discretize(target, 3).T, [[0, 0, 1, 1, 2, 2], [2, 2, 1, 1, 0, 0]])
    labels = np.array([[1, 1, 2, 2, 3, 3], [3, 3, 2, 2, 1, 1]]).T
    np.testing.assert_allclose(M.discrete_entropy(labels), [np.log(3)] * 2)
    xs = np.array([[1, 2, 1, 2], [1, 1, 2, 2]]).T
    ys = np.array([[1, 2, 1, 2], [2, 2, 1, 1]]).T
    np.testing.assert_allclose(M.mutual_info_matrix(xs, ys), [[np.log(2), 0.0], [0.0, np.log(2)]], atol=1e-12)


def test_mutual_info_matrix_equals_sklearn_mutual_info_score():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 20, (500, 4))
    b = np.stack([rng.integers(0, 7, 500), a[:, 0] // 3, (a[:, 1] + rng.integers(0, 3, 500)) % 20,
                  np.zeros(500, int)], axis=1)
    want = np.array([[mutual_info_score(b[:, j], a[:, i]) for j in range(4)] for i in range(4)])
    np.testing.assert_allclose(M.mutual_info_matrix(a, b), want, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(M.discrete_entropy(b), [mutual_info_score(c, c) for c in b.T], rtol=1e-12)


def _reference_mig(codes, factors, n_bins=20):
    """disentanglement_lib's compute_mig body, (dims, samples) layout and sklearn loops."""
    mus, ys = codes.T, factors.T
    disc = np.zeros_like(mus)
    for i in range(mus.shape[0]):
        disc[i] = np.digitize(mus[i], np.histogram(mus[i], n_bins)[1][:-1])
    m = np.array([[mutual_info_score(ys[j], disc[i]) for j in range(len(ys))] for i in range(len(mus))])
    entropy = np.array([mutual_info_score(y, y) for y in ys])
    top = np.sort(m, axis=0)[::-1]
    return np.mean((top[0] - top[1]) / entropy)


def test_mig_equals_the_reference_loop_on_discrete_factors():
    rng = np.random.default_rng(0)
    factors = identity_factors(800, [3, 6, 10, 4], seed=1)
    codes = factors @ rng.normal(size=(4, 5)) + 0.5 * rng.normal(size=(800, 5))
    assert M.mig(codes, factors) == pytest.approx(_reference_mig(codes, factors), rel=1e-10)


def test_sap_continuous_equals_the_reference_loop():
    rng = np.random.default_rng(0)
    f = rng.uniform(size=(300, 3))
    c = np.column_stack([f[:, 0] + 0.1 * rng.normal(size=300), f[:, 1] ** 2, rng.normal(size=300), np.ones(300)])
    want = np.zeros((4, 3))
    for i in range(4):
        for j in range(3):
            cov = np.cov(c[:, i], f[:, j], ddof=1)
            want[i, j] = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1]) if cov[0, 0] > 1e-12 else 0.0
    np.testing.assert_allclose(M.sap_matrix_continuous(c, f), want, rtol=1e-10, atol=1e-15)
    top = np.sort(want, axis=0)
    assert M.sap(c, f, c, f, continuous=True) == pytest.approx(np.mean(top[-1] - top[-2]))


# identity near 1, permuted near 0 -------------------------------------------------------------
def test_identity_codes_score_near_one_and_permuted_near_zero():
    f_tr, f_te = identity_factors(2000, [10] * 5, seed=0), identity_factors(1000, [10] * 5, seed=1)
    assert M.mig(f_tr, f_tr) > 0.95
    assert M.sap(f_tr, f_tr, f_te, f_te, continuous=True) > 0.95
    # discrete SAP is a gap in accuracies, and the runner-up code still scores chance (1/K with balanced
    # classes), so identity codes top out at 1 - 1/K: 0.5 on binary factors. On 10-valued factors a
    # one-feature linear SVM cannot isolate the middle values either, and identity reaches only ~0.2.
    b_tr, b_te = identity_factors(2000, [2] * 5, seed=0), identity_factors(1000, [2] * 5, seed=1)
    assert M.sap(b_tr, b_tr, b_te, b_te) == pytest.approx(0.5, abs=0.05)
    assert M.sap(f_tr, f_tr, f_te, f_te, solver="exact1d") > 0.1
    ident = M.dci(f_tr, f_tr, f_te, f_te, model="forest")
    assert ident["disentanglement"] > 0.9 and ident["completeness"] > 0.9
    threaded = M.dci(f_tr, f_tr, f_te, f_te, model="forest", n_jobs=2)  # seeded clones: same fits
    np.testing.assert_array_equal(threaded["importance"], ident["importance"])
    assert ident["informativeness_test"] > 0.95 and ident["importance"].shape == (5, 5)
    noise_tr, noise_te = permuted(f_tr, 2), permuted(f_te, 3)
    assert M.mig(noise_tr, f_tr) < 0.05
    assert M.sap(noise_tr, f_tr, noise_te, f_te, solver="exact1d") < 0.03
    assert M.sap(noise_tr, f_tr, noise_te, f_te, continuous=True) < 0.01
    assert M.sap(permuted(b_tr, 2), b_tr, permuted(b_te, 3), b_te) < 0.05
    bad = M.dci(noise_tr, f_tr, noise_te, f_te, model="forest")
    assert bad["disentanglement"] < 0.2 and bad["completeness"] < 0.2
    assert bad["informativeness_test"] < 0.2


def test_dci_with_disentanglement_lib_gbt_on_identity_codes():
    # the exact GradientBoostingClassifier() path; binary factors keep it to 100 trees each
    f_tr, f_te = identity_factors(300, [2, 2, 2], seed=0), identity_factors(200, [2, 2, 2], seed=1)
    res = M.dci(f_tr, f_tr, f_te, f_te)
    assert res["disentanglement"] > 0.95 and res["completeness"] > 0.95
    assert res["informativeness_train"] == 1.0 and res["informativeness_test"] == 1.0
    duplicated = M.dci(np.hstack([f_tr, f_tr]), f_tr, np.hstack([f_te, f_te]), f_te)
    assert duplicated["importance"].shape == (6, 3)
    assert duplicated["disentanglement"] > 0.9  # each code still serves one factor


def test_explicitness_identity_high_permuted_chance():
    f_tr, f_te = identity_factors(1000, [5] * 3, seed=0), identity_factors(500, [5] * 3, seed=1)
    good = M.explicitness(f_tr, f_tr, f_te, f_te)
    assert good["explicitness_test"] > 0.9
    bad = M.explicitness(permuted(f_tr, 1), f_tr, permuted(f_te, 2), f_te)
    assert abs(bad["explicitness_test"] - 0.5) < 0.05


def test_explicitness_auc_equals_sklearns_roc_auc_with_ties_and_missing_classes():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(3)
    for trial in range(40):
        n, c = int(rng.integers(5, 200)), int(rng.integers(2, 21))
        y, proba = rng.integers(0, c, size=n), rng.random((n, c))
        if trial % 2:
            proba = np.round(proba, 1)  # many ties: they count a half
        classes = np.arange(c + 2)      # two classes no row has: left out, as sklearn cannot score them
        proba = np.hstack([proba, rng.random((n, 2))])
        onehot = y[:, None] == classes
        keep = onehot.any(axis=0) & ~onehot.all(axis=0)
        expected = roc_auc_score(onehot[:, keep], proba[:, keep], average="macro")
        assert abs(M._macro_auc(y, proba, classes) - expected) < 1e-12
    assert np.isnan(M._macro_auc(np.zeros(4, int), rng.random((4, 2)), np.arange(2)))


def test_every_factors_auc_at_once_equals_each_factors():
    """The batched AUC (one sort of every column) is _macro_auc factor by factor, exactly: with ties
    (average ranks), classes the scored rows lack, padded columns and a factor with one class present."""
    rng = np.random.default_rng(4)
    n, F, C = 150, 12, 9
    sizes = rng.integers(2, C + 1, size=F)
    classes = [np.sort(rng.choice(30, size=k, replace=False)) for k in sizes]
    y = np.stack([rng.choice(c[:max(1, len(c) - 1)], size=n) for c in classes], axis=1)   # a class left out
    y[:, 5] = classes[5][0]                                        # one class only: no AUC (nan)
    P = rng.random((F, n, C))
    P[3] = np.round(P[3], 1)                                       # ties in one factor
    P *= np.arange(C)[None, None, :] < sizes[:, None, None]        # unused columns 0, as predict_proba leaves them
    expected = np.array([M._macro_auc(y[:, j], P[j][:, :sizes[j]], classes[j]) for j in range(F)])
    got = M._macro_aucs(y, P, classes)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.isnan(got[5])
    np.testing.assert_allclose(got[~np.isnan(got)], expected[~np.isnan(expected)], rtol=0, atol=1e-15)


def test_ica_scores_clearly_higher_mig_than_pca_on_a_linear_rig():
    from sklearn.decomposition import PCA, FastICA
    rng = np.random.default_rng(0)
    factors = rng.uniform(-1, 1, size=(3000, 4))  # independent, non-Gaussian
    rotation, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    obs = np.hstack([factors, np.zeros((3000, 4))]) @ rotation.T + 0.01 * rng.normal(size=(3000, 8))
    ica = FastICA(n_components=4, whiten="unit-variance", random_state=0).fit_transform(obs)
    pca = PCA(n_components=4).fit_transform(obs)
    mig_ica, mig_pca = M.mig(ica, factors), M.mig(pca, factors)
    assert mig_ica > 0.5
    assert mig_ica > mig_pca + 0.3


# the vectorized SVM ----------------------------------------------------------------------------
@pytest.mark.parametrize("n_classes", [2, 3, 20])
def test_svm1d_matches_sklearn_linear_svc(n_classes):
    from sklearn.svm import LinearSVC
    rng = np.random.default_rng(n_classes)
    y = rng.integers(0, n_classes, 1200)
    x = np.column_stack([y * 0.3 + 0.3 * rng.normal(size=1200), y + 4 * rng.normal(size=1200),
                         3 * rng.normal(size=1200) + 2])
    (classes, coef, intercept), = svm1d.fit(x, y[:, None], C=0.01)
    for i in range(x.shape[1]):
        clf = LinearSVC(C=0.01, class_weight="balanced").fit(x[:, i:i + 1], y)
        np.testing.assert_allclose(coef[i], clf.coef_[:, 0], atol=1e-3)
        np.testing.assert_allclose(intercept[i], clf.intercept_, atol=1e-3)
        agree = np.mean(svm1d.predict(classes, coef, intercept, x)[:, i] == clf.predict(x[:, i:i + 1]))
        assert agree > 0.995


def test_sap_solvers_agree():
    f_tr, f_te = identity_factors(600, [2, 4, 12], seed=0), identity_factors(300, [2, 4, 12], seed=1)
    rng = np.random.default_rng(0)
    c_tr = f_tr @ rng.normal(size=(3, 4)) + rng.normal(size=(600, 4))
    c_te = f_te @ rng.normal(size=(3, 4)) + rng.normal(size=(300, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = M.sap_matrix_discrete(c_tr, f_tr.astype(int), c_te, f_te.astype(int), "liblinear")
    fast = M.sap_matrix_discrete(c_tr, f_tr.astype(int), c_te, f_te.astype(int), "exact1d")
    np.testing.assert_allclose(fast, ref, atol=0.01)


# discretisation ---------------------------------------------------------------------------------
def test_discretize_bins_continuous_keeps_discrete_and_records_how():
    rng = np.random.default_rng(0)
    f = np.column_stack([rng.uniform(0, 10, 1000), rng.integers(0, 5, 1000), rng.normal(size=1000)])
    labels, rec = M.discretize(f, n_bins=20)
    json.dumps(rec, allow_nan=False)
    assert [c["kind"] for c in rec["columns"]] == ["binned", "discrete", "binned"]
    assert rec["columns"][1]["values"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    np.testing.assert_array_equal(labels[:, 1], f[:, 1])
    want = np.digitize(f[:, 0], np.histogram(f[:, 0], 20)[1][:-1]) - 1
    np.testing.assert_array_equal(labels[:, 0], want)
    assert labels.min() == 0 and labels.max() == 19
    q_labels, q_rec = M.discretize(f, n_bins=20, method="quantile")
    assert np.bincount(q_labels[:, 2]).min() >= 45 and q_rec["method"] == "quantile"
    new = M.apply_discretization(np.array([[-5.0, 7.0, 100.0], [11.0, 2.0, -100.0]]), rec)
    np.testing.assert_array_equal(new, [[0, -1, 19], [19, 2, 0]])


# validation -------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [lambda c, f: M.mig(c, f), lambda c, f: M.dci(c, f, c, f, model="forest"),
                                lambda c, f: M.sap(c, f, c, f)])
def test_bad_input_gives_clear_errors(fn):
    rng = np.random.default_rng(0)
    codes, factors = rng.normal(size=(50, 3)), rng.integers(0, 3, (50, 2)).astype(float)
    with pytest.raises(ValueError, match=r"codes(_train)? has 49 samples but factors(_train)? has 50"):
        fn(codes[:49], factors)
    bad = codes.copy()
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"codes(_train)? contains NaN or inf .*row 7, column 1"):
        fn(bad, factors)
    bad[7, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        fn(bad, factors)
    with pytest.raises(ValueError, match=r"factors(_train)? must be a 2-D array"):
        fn(codes, factors[:, 0])
    with pytest.raises(ValueError, match=r"codes(_train)? needs at least 2 samples"):
        fn(codes[:1], factors[:1])


def test_split_and_name_checks():
    rng = np.random.default_rng(0)
    c, f = rng.normal(size=(40, 3)), rng.uniform(size=(40, 2))
    with pytest.raises(ValueError, match="codes_test has 2 codes but codes_train has 3"):
        M.dci(c, f, c[:, :2], f, model="forest")
    with pytest.raises(ValueError, match="factor_names has 1 names"):
        compare_codes(c, f, c, f, ["a"])
    with pytest.raises(ValueError, match="at least 2 codes"):
        compare_codes(c[:, :1], f, c[:, :1], f, ["a", "b"])


# matrices -----------------------------------------------------------------------------------------
def test_mixing_counts_the_sliders_a_code_follows():
    rng = np.random.default_rng(0)
    F = rng.uniform(size=(3000, 6))
    pure_code = F[:, [2]] * 3.0
    two = F[:, [0]] + F[:, [4]]                      # an even mix of two sliders
    noise = rng.standard_normal((3000, 1))         # follows no slider at all
    mix = X.mixing(F, np.hstack([pure_code, two, noise]))
    assert mix["purity"][0] > 0.999 and abs(mix["n_mixed"][0] - 1) < 1e-3 and mix["top"][0] == 2
    assert abs(mix["n_mixed"][1] - 2) < 0.05 and set(np.argsort(-mix["shares"][1])[:2]) == {0, 4}
    assert mix["explained"][0] > 0.999 and mix["explained"][2] < 0.01


def test_matching_purity_correlations_r2():
    perm = np.array([2, 0, 3, 1])
    score = np.eye(4)[perm] * 0.9 + 0.05
    m = X.matching(score)
    np.testing.assert_array_equal(m["sliders"], perm)
    assert m["score"] == pytest.approx(0.95)
    pure = X.purity(np.eye(4)[perm])
    np.testing.assert_allclose(pure["purity"], 1.0, atol=1e-6)
    np.testing.assert_allclose(pure["n_mixed"], 1.0, atol=1e-6)
    np.testing.assert_array_equal(pure["top"], perm)
    flat = X.purity(np.ones((2, 5)))
    np.testing.assert_allclose(flat["purity"], 0.0, atol=1e-9)
    np.testing.assert_allclose(flat["n_mixed"], 5.0)
    rng = np.random.default_rng(0)
    f = rng.uniform(size=(400, 3))
    c = np.column_stack([2 * f[:, 1] + 1, np.exp(5 * f[:, 0]), -f[:, 2]])
    pearson, spearman = X.correlations(c, f)
    np.testing.assert_allclose(np.abs(spearman[[0, 1, 2], [1, 0, 2]]), 1.0)
    assert pearson[1, 0] < 0.95 and pearson[0, 1] == pytest.approx(1.0)
    r2 = X.r2(c[:300], f[:300], c[300:], f[300:], "linear")
    assert r2[1] == pytest.approx(1.0) and r2[2] == pytest.approx(1.0) and r2[0] < 0.99


def test_additive_r2_sees_one_input_nonlinearity_the_linear_model_misses():
    rng = np.random.default_rng(0)
    f = rng.uniform(-1, 1, size=(1500, 4))
    c = np.column_stack([np.sin(3 * f[:, 0]), f[:, 1] ** 2, f[:, 2]])
    lin = X.r2(f[:1000], c[:1000], f[1000:], c[1000:], "linear")
    gam = X.r2(f[:1000], c[:1000], f[1000:], c[1000:], "additive")
    assert lin[1] < 0.05 and gam[1] > 0.99  # a square: no linear trace at all
    assert gam[0] > 0.99 and gam[2] > 0.999
    mlp = X.r2(f[:1000], c[:1000], f[1000:], c[1000:], "mlp")
    assert mlp.shape == (3,) and mlp[2] > 0.9
    with pytest.raises(ValueError, match="model must be one of"):
        X.r2(f, c, f, c, "forest")


# the scorecard --------------------------------------------------------------------------------------
def _small_rig(n, seed):
    rng = np.random.default_rng(seed)
    s = np.column_stack([rng.uniform(0, 1, (n, 4)), rng.integers(0, 4, n)])  # 4 continuous, 1 categorical
    return s


def test_compare_codes_is_plain_json_with_a_full_estimator_record():
    import sklearn
    s_tr, s_te = _small_rig(800, 0), _small_rig(300, 1)
    names = ["height", "weight", "nose", "jaw", "hair"]
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(5, 4))
    card = compare_codes(s_tr @ mix, s_tr, s_te @ mix, s_te, names, max_train=500, max_test=300,
                         max_train_nonlinear=500)
    text = json.dumps(card, allow_nan=False)
    assert json.loads(text) == card
    summary = card["summary"]
    for key in ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness_test", "sap",
                "sap_continuous", "modularity", "explicitness_test", "r2_codes_to_sliders_linear",
                "r2_sliders_to_codes_nonlinear", "matching_score", "visibility_mean", "purity_mean"):
        assert isinstance(summary[key], float), key
    assert summary["r2_sliders_to_codes_linear"] == pytest.approx(1.0)  # codes are linear in sliders
    assert np.array(card["dci"]["importance"]).shape == (4, 5)
    assert np.array(card["pearson"]).shape == (4, 5) and len(card["visibility"]["per_slider"]) == 5
    assert card["visibility"]["kind"] == ["r2"] * 4 + ["adjusted_balanced_accuracy"]
    assert len(card["matching"]["pairs"]) == 4 and len(card["purity"]["per_code"]) == 4
    est = card["estimators"]
    assert est["versions"]["scikit-learn"] == sklearn.__version__
    assert est["seed"] == 0 and est["dci"]["train_rows"] == 500
    assert est["factor_discretization"]["n_bins"] == 20
    assert est["sap"]["estimator"]["params"]["C"] == 0.01
    assert est["r2"]["nonlinear_model"] == "additive"
    assert est["r2"]["nonlinear"]["steps"][0]["params"]["n_knots"] == 5
    again = compare_codes(s_tr @ mix, s_tr, s_te @ mix, s_te, names, max_train=500, max_test=300,
                          max_train_nonlinear=500)
    assert again["summary"] == summary  # seeded: repeatable


def test_compare_codes_leaves_a_constant_slider_out():
    s_tr, s_te = _small_rig(600, 0), _small_rig(300, 1)
    s_tr[:, 2], s_te[:, 2] = 0.5, 0.5  # a slider fixed by the dataset config
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(5, 3))
    card = compare_codes(s_tr @ mix, s_tr, s_te @ mix, s_te, list("abcde"), max_train=400, max_test=300)
    assert card["mig"]["per_factor"][2] is None and card["visibility"]["per_slider"][2] is None
    assert card["r2"]["codes_to_sliders"]["linear"][2] is None
    assert card["dci"]["importance"][0][2] == 0.0 and card["sap"]["matrix"][0][2] is None
    assert all(isinstance(v, float) for v in card["summary"].values())


def test_baselines_order_sliders_above_random_projection_above_permuted():
    s_tr, s_te = _small_rig(800, 0), _small_rig(300, 1)
    names = ["a", "b", "c", "d", "e"]
    rng = np.random.default_rng(1)
    mix = rng.normal(size=(5, 3))
    base = baselines(s_tr @ mix, s_tr, s_te @ mix, s_te, names, max_train=500, max_test=300,
                     max_train_nonlinear=500)
    up, rp, perm = (base[k]["summary"] for k in ("sliders", "random_projection", "permuted_codes"))
    assert up["mig"] > 0.9 and up["dci_disentanglement"] > 0.9 and up["matching_score"] == pytest.approx(1.0)
    assert base["random_projection"]["n_codes"] == 3 and base["permuted_codes"]["n_codes"] == 3
    for key in ("mig", "dci_disentanglement", "matching_score", "visibility_mean"):
        assert up[key] > rp[key] > perm[key], key
    assert perm["mig"] < 0.05 and perm["visibility_mean"] < 0.1
    assert rp["r2_codes_to_sliders_linear"] > 0.3  # a projection keeps information, just not aligned
    only = baselines(s_tr @ mix, s_tr, s_te @ mix, s_te, names, which=["permuted_codes"], max_train=500,
                     max_test=300, max_train_nonlinear=500)
    assert list(only) == ["permuted_codes"] and only["permuted_codes"]["summary"] == perm
    with pytest.raises(ValueError, match="unknown baseline"):
        baselines(s_tr @ mix, s_tr, s_te @ mix, s_te, names, which=["pca"])


def test_sliders_baseline_scores_a_draw_of_sliders_with_the_same_result():
    """Over 48 sliders the identity baseline is scored on a seeded draw of 48: the identity's scores
    do not depend on how many sliders there are (its cost grows with their square)."""
    rng = np.random.default_rng(4)
    F = 60
    f_tr, f_te = rng.uniform(size=(600, F)), rng.uniform(size=(300, F))
    names = [f"s{j}" for j in range(F)]
    z_tr, z_te = f_tr[:, :4], f_te[:, :4]
    drawn = baselines(z_tr, f_tr, z_te, f_te, names, which=("sliders",), max_train=600)["sliders"]
    assert drawn["n_factors"] == 48 and set(drawn["factor_names"]) < set(names)
    assert drawn["factor_names"] == sorted(drawn["factor_names"], key=names.index)
    again = baselines(z_tr, f_tr, z_te, f_te, names, which=("sliders",), max_train=600)["sliders"]
    assert again["factor_names"] == drawn["factor_names"]          # seeded
    full = baselines(z_tr, f_tr, z_te, f_te, names, which=("sliders",), max_train=600,
                     identity_factors=None)["sliders"]
    assert full["n_factors"] == F
    for key in ("mig", "dci_disentanglement", "dci_completeness", "matching_score", "visibility_mean"):
        assert drawn["summary"][key] == pytest.approx(full["summary"][key], abs=0.03), key


def test_permuted_codes_baseline_uses_the_same_draw_and_stays_at_the_floor():
    rng = np.random.default_rng(5)
    F = 60
    f_tr, f_te = rng.uniform(size=(600, F)), rng.uniform(size=(300, F))
    z_tr, z_te = f_tr[:, :4] + 0.01 * rng.normal(size=(600, 4)), f_te[:, :4]
    b = baselines(z_tr, f_tr, z_te, f_te, [f"s{j}" for j in range(F)], which=("sliders", "permuted_codes"),
                  max_train=600)
    assert b["permuted_codes"]["factor_names"] == b["sliders"]["factor_names"]
    s = b["permuted_codes"]["summary"]
    assert s["mig"] < 0.05 and s["visibility_mean"] < 0.05 and s["matching_score"] < 0.2


def test_random_projection_baseline_projects_every_slider_and_is_scored_on_the_draw():
    """Its codes mix all F sliders; scored on the sliders baseline's draw of 48, its per-slider means
    (visibility, R^2) estimate those over every slider."""
    rng = np.random.default_rng(6)
    F = 60
    f_tr, f_te = rng.uniform(size=(800, F)), rng.uniform(size=(400, F))
    names = [f"s{j}" for j in range(F)]
    z_tr, z_te = f_tr[:, :8], f_te[:, :8]
    kw = dict(which=("sliders", "random_projection"), max_train=800)
    drawn = baselines(z_tr, f_tr, z_te, f_te, names, **kw)
    full = baselines(z_tr, f_tr, z_te, f_te, names, identity_factors=None, **kw)["random_projection"]
    rp = drawn["random_projection"]
    assert rp["factor_names"] == drawn["sliders"]["factor_names"] and rp["n_factors"] == 48
    assert rp["n_codes"] == full["n_codes"] == 8
    # the same codes: where the draw and all sliders share a factor, its per-slider R^2 is the same number
    j = [names.index(n) for n in rp["factor_names"]]
    np.testing.assert_allclose(rp["r2"]["codes_to_sliders"]["linear"],
                               np.asarray(full["r2"]["codes_to_sliders"]["linear"])[j], atol=1e-12)
    for key in ("visibility_mean", "r2_codes_to_sliders_linear", "mig"):
        assert rp["summary"][key] == pytest.approx(full["summary"][key], abs=0.03), key
