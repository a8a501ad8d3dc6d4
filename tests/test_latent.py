"""The latent lab: known answers (PCA variance, ICA recovers sliders), persistence, features, experiments, CLI."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.optimize import linear_sum_assignment

import avatar
import avatar.dataset as dataset
import avatar.latent as L
from avatar.spec.config import ConfigError
from avatar.latent.evaluate import ReconstructionError, components_for
from avatar.latent.experiment import config_from_text, split_rows
from avatar.latent.features import FeatureTransform, box_downsample, kabsch_align, row_batches

# sliders whose geometry is linear on [default, max] (moves, bumps, widths; no bends, no stature)
LINEAR = ["chin.prominent", "nose.scale_horiz", "mouth.scale_horiz", "chin.width", "hip.scale_horiz"]
# the autoencoder trains with PyTorch (an optional dependency): without it, its tests are skipped
NEEDS_TORCH = pytest.mark.skipif(not L.torch_available(), reason="PyTorch is not installed (pip install avatar[torch])")
KINDS = ["pca", "incremental_pca", "ica", "factor_analysis", pytest.param("autoencoder", marks=NEEDS_TORCH),
         pytest.param("vae", marks=NEEDS_TORCH)]
SMALL = {"autoencoder": {"hidden": (16,), "epochs": 5, "input_components": 20},
         "vae": {"hidden": (16,), "epochs": 5, "input_components": 20},
         "factor_analysis": {"max_iter": 30, "pre_components": 40}, "incremental_pca": {"batch_size": 40}}


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    """Small products on a shared 2-core machine: one BLAS thread is faster and steadier."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def rig():
    return avatar.load_rig()


@pytest.fixture(scope="module")
def linear_data(rig):
    """(U (n, k) uniform slider positions in [0, 1], V (n, V, 3)) with only the LINEAR sliders varying."""
    n, rng = 300, np.random.default_rng(0)
    idx = [rig.spec.index(s) for s in LINEAR]
    lo, hi = rig.defaults()[idx], rig.spec.highs()[idx]
    U = rng.uniform(size=(n, len(idx)))
    S = np.tile(rig.defaults(), (n, 1))
    S[:, idx] = lo + U * (hi - lo)
    return U, rig.vertices(S)


@pytest.fixture(scope="module")
def random_X():
    rng = np.random.default_rng(1)
    return (rng.normal(size=(120, 12)) * np.geomspace(3, 0.1, 12)) @ rng.normal(size=(12, 60)) \
        + 0.01 * rng.normal(size=(120, 60))


def test_linear_sliders_really_are_linear(linear_data):
    U, V = linear_data
    X = V.reshape(len(V), -1).astype(np.float64)
    A = np.c_[np.ones(len(U)), U]
    coef = np.linalg.lstsq(A, X, rcond=None)[0]
    assert ((A @ coef - X) ** 2).sum() < 1e-9 * ((X - X.mean(0)) ** 2).sum()


def test_pca_first_k_components_explain_the_linear_sliders(linear_data):
    U, V = linear_data
    k = U.shape[1]
    p = L.PCA(n_components=k + 2, random_state=0).fit(V.reshape(len(V), -1))
    assert p.explained_variance_ratio_[:k].sum() > 0.999
    assert p.explained_variance_ratio_[k:].sum() < 1e-6       # nothing left beyond the k sliders
    assert np.all(np.diff(p.explained_variance_) <= 0)


def _matched_abs_corr(Z, U):
    k = U.shape[1]
    C = np.abs(np.corrcoef(Z.T, U.T)[:k, k:])
    r, c = linear_sum_assignment(-C)
    return C[r, c]


def test_fastica_recovers_uniform_sliders_up_to_order_and_sign(linear_data):
    U, V = linear_data
    m = L.fit_vertices(V, kind="ica", n_components=U.shape[1], random_state=0)
    corr = _matched_abs_corr(L.encode_vertices(m, V), U)
    assert corr.min() > 0.95, corr
    # PCA mixes them (the test can fail): its components are not the sliders
    pca = L.fit_vertices(V, kind="pca", n_components=U.shape[1])
    assert _matched_abs_corr(L.encode_vertices(pca, V), U).min() < 0.95


def test_vertex_round_trip_and_code_statistics(linear_data):
    U, V = linear_data
    m = L.fit_vertices(V, kind="pca", n_components=U.shape[1], random_state=0)
    Z = L.encode_vertices(m, V)
    assert Z.shape == (len(V), U.shape[1])
    np.testing.assert_allclose(m.code_std_, Z.std(axis=0), rtol=1e-6)
    np.testing.assert_allclose(m.code_mean_, Z.mean(axis=0), atol=1e-9 * m.code_std_.max())
    Vh = L.decode_vertices(m, Z)
    assert Vh.dtype == np.float32 and Vh.shape == V.shape
    assert np.abs(Vh - V).max() < 2e-5                        # metres: exact up to float32
    assert L.decode_vertices(m, Z[3]).shape == V.shape[1:]


@pytest.mark.parametrize("kind", ["pca", "factor_analysis", "ica"])
def test_reconstruction_error_falls_as_components_grow(rig, kind):
    V = rig.vertices(rig.sample(90, seed=3))
    errors = []
    for k in (2, 5, 10, 20):
        m = L.fit_vertices(V, kind=kind, n_components=k, random_state=0, **SMALL.get(kind, {}))
        errors.append(np.abs(L.decode_vertices(m, L.encode_vertices(m, V)) - V).mean())
    assert all(a > b for a, b in zip(errors, errors[1:])), errors


def test_incremental_pca_streams_to_the_same_subspace(random_X):
    rng = np.random.default_rng(2)
    X = (rng.normal(size=(120, 5)) * [5, 4, 3, 2, 1]) @ rng.normal(size=(5, 60)) + 3.0   # rank 5: exact
    p = L.PCA(n_components=5, random_state=0).fit(X)
    batches = (X[i:i + 25] for i in range(0, len(X), 25))   # the last batch (20 rows) is merged
    ip = L.IncrementalPCA(n_components=5, batch_size=25).fit_batches(batches)
    assert np.allclose(np.abs(p.components_ @ ip.components_.T), np.eye(5), atol=1e-9)
    np.testing.assert_allclose(ip.explained_variance_, p.explained_variance_, rtol=1e-9)
    np.testing.assert_allclose(ip.mean_, X.mean(0), atol=1e-12)
    np.testing.assert_allclose(p.total_variance_, X.var(0, ddof=1).sum(), rtol=1e-10)
    np.testing.assert_allclose(L.IncrementalPCA(5, batch_size=30).fit(X).explained_variance_ratio_.sum(), 1, rtol=1e-9)


def test_pca_matches_scikit_learn(random_X):
    from sklearn.decomposition import PCA as SK

    sk = SK(n_components=6, svd_solver="full").fit(random_X)
    ours = L.PCA(n_components=6, random_state=0).fit(random_X)
    np.testing.assert_allclose(ours.explained_variance_ratio_, sk.explained_variance_ratio_, rtol=1e-8)
    assert np.allclose(np.abs(ours.components_ @ sk.components_.T), np.eye(6), atol=1e-8)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_factor_analysis_matches_scikit_learn(random_X):
    from sklearn.decomposition import FactorAnalysis as SK

    X = random_X[:, :30]
    sk = SK(n_components=4, tol=1e-8, svd_method="lapack", max_iter=3000).fit(X)
    ours = L.FactorAnalysis(n_components=4, tol=1e-14, max_iter=3000).fit(X)
    cov = ours.components_.T @ ours.components_ + np.diag(ours.noise_variance_)
    np.testing.assert_allclose(cov, sk.get_covariance(), atol=1e-6 * np.abs(cov).max())


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trips_exactly(tmp_path, random_X, kind):
    m = L.make_model(kind, 4, random_state=0, **SMALL.get(kind, {})).fit(random_X)
    path = L.save(m, tmp_path / "m.npz")
    assert (tmp_path / "m.yaml").is_file()
    meta = yaml.safe_load((tmp_path / "m.yaml").read_text())
    assert meta["format"] == L.FORMAT and meta["models"][0]["kind"] == kind
    back = L.load(path)
    assert type(back) is type(m) and back.get_params() == m.get_params()
    a, b = m.learned(), back.learned()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
    Z = m.transform(random_X)
    assert np.array_equal(back.transform(random_X), Z)
    assert np.array_equal(back.inverse_transform(Z), m.inverse_transform(Z))


def test_vertex_model_round_trips_with_its_features(tmp_path, linear_data):
    U, V = linear_data
    m = L.fit_vertices(V[:60], kind="pca", n_components=3, align=True)
    L.save(m, tmp_path / "v.npz")
    back = L.load(tmp_path / "v.npz")
    assert np.array_equal(L.encode_vertices(back, V[60:80]), L.encode_vertices(m, V[60:80]))
    assert np.array_equal(L.decode_vertices(back, np.ones(3)), L.decode_vertices(m, np.ones(3)))


def test_a_pickle_is_refused(tmp_path, random_X):
    m = L.PCA(n_components=3).fit(random_X)
    bad = tmp_path / "evil.npz"
    bad.write_bytes(pickle.dumps(m))
    with pytest.raises(L.LatentFileError, match="pickle"):
        L.load(bad)
    # an .npz whose array needs pickle to load (object dtype) is refused too
    obj = tmp_path / "obj.npz"
    np.savez(obj, header=np.array([{"format": L.FORMAT}], dtype=object))
    with pytest.raises(L.LatentFileError):
        L.load(obj)
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(L.LatentFileError, match="not a model file"):
        L.load(tmp_path / "text.npz")


def _rewrite_npz(src: Path, dst: Path, change) -> None:
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez(dst, **arrays)


def test_a_tampered_file_is_refused(tmp_path, random_X):
    src = L.save(L.PCA(n_components=3).fit(random_X), tmp_path / "m.npz")

    def bump(a):
        a["pca.components"] = a["pca.components"] + 1e-9

    def version(a):
        h = json.loads(a["header"].tobytes())
        h["format"] = "avatar-latent/99"
        a["header"] = np.frombuffer(json.dumps(h).encode(), np.uint8)

    def extra(a):
        a["pca.evil"] = np.zeros(3)

    def kind(a):
        h = json.loads(a["header"].tobytes())
        h["models"][0]["kind"] = "pcaa"
        a["header"] = np.frombuffer(json.dumps(h).encode(), np.uint8)

    for change, msg in ((bump, "checksum"), (version, "format"), (extra, "not in the header"),
                        (kind, "did you mean 'pca'")):
        dst = tmp_path / f"{change.__name__}.npz"
        _rewrite_npz(src, dst, change)
        with pytest.raises(L.LatentFileError, match=msg):
            L.load(dst)
    # a truncated file
    (tmp_path / "cut.npz").write_bytes(src.read_bytes()[:300])
    with pytest.raises(L.LatentFileError):
        L.load(tmp_path / "cut.npz")


def test_bad_model_inputs(random_X):
    with pytest.raises(ValueError, match="more than the data allow"):
        L.PCA(n_components=61).fit(random_X)
    with pytest.raises(ValueError, match="n_components"):
        L.ICA(n_components=0).fit(random_X)
    with pytest.raises(ValueError, match="did you mean 'pca'"):
        L.make_model("pcaa", 3)
    with pytest.raises(ValueError, match="not fitted"):
        L.PCA(3).transform(random_X)
    with pytest.raises(ValueError, match="expected codes"):
        L.PCA(3).fit(random_X).inverse_transform(np.zeros((2, 4)))


def test_vae_trains_with_torch_and_loads_without(tmp_path, random_X):
    m = L.make_model("vae", 3, random_state=0, hidden=(32,), epochs=150, input_components=20)
    if not L.torch_available():
        with pytest.raises(ImportError, match="avatar\\[torch\\]"):
            m.fit(random_X)
        pytest.skip("PyTorch is not installed (pip install avatar[torch]); the VAE is optional")
    m.fit(random_X)
    Z = m.transform(random_X)
    assert Z.shape == (len(random_X), 3) and m.loss_curve_[-1] < m.loss_curve_[0]
    base = np.mean((random_X - random_X.mean(0)) ** 2)
    assert np.mean((m.inverse_transform(Z) - random_X) ** 2) < 0.5 * base   # it learned something
    L.save(m, tmp_path / "vae.npz")
    back = L.load(tmp_path / "vae.npz")
    assert np.array_equal(back.transform(random_X), Z)


# -- features --------------------------------------------------------------------
def test_kabsch_undoes_a_rigid_motion(rig):
    ref = rig.template.vertices.astype(np.float64)
    t = 0.7
    R = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    moved = ref @ R.T + np.array([0.3, -1.0, 2.0])
    np.testing.assert_allclose(kabsch_align(moved[None], ref)[0], ref, atol=1e-9)


def test_box_downsample_and_block_weights():
    img = np.zeros((1, 4, 4, 3), np.uint8)
    img[0, :2, :2] = 255
    np.testing.assert_allclose(box_downsample(img, 2)[0, :, :, 0], [[1, 0], [0, 0]])
    rng = np.random.default_rng(0)
    arrays = {"vertices": rng.normal(size=(50, 10, 3)), "textures": rng.integers(0, 256, (50, 8, 8, 3), np.uint8)}
    ft = FeatureTransform([{"name": "vertices"}, {"name": "textures", "size": 4, "weight": 0.5}]).fit_arrays(arrays)
    X = ft.forward(arrays)
    s = ft.slices()
    assert X.shape == (50, 30 + 48)
    np.testing.assert_allclose(X[:, s["vertices"]].var(0, ddof=1).sum(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(X[:, s["textures"]].var(0, ddof=1).sum(), 0.25, rtol=1e-5)
    back = ft.inverse(X)
    np.testing.assert_allclose(back["vertices"], arrays["vertices"], atol=1e-5)
    want = box_downsample(arrays["textures"], 4) * 255                     # .5 ties may round either way
    assert np.abs(back["textures"].astype(int) - want).max() <= 0.5 + 1e-3
    full = FeatureTransform([{"name": "textures", "size": 8}]).fit_arrays(arrays)  # no downsampling: exact
    assert np.array_equal(full.inverse(full.forward(arrays))["textures"], arrays["textures"])


def test_row_batches_follow_shards():
    rows = np.array([0, 3, 5, 31, 32, 40, 63, 64, 100])
    batches = row_batches(rows, shard=32, batch=4)
    assert np.array_equal(np.concatenate(batches), rows)
    assert all(len(set((b // 32).tolist())) == 1 or len(b) <= 4 for b in batches)
    assert [b.tolist() for b in row_batches(np.arange(10), shard=32, batch=4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_metrics_known_answers():
    acc = ReconstructionError()
    V = np.zeros((2, 100, 3))
    Vh = V.copy()
    Vh[:, :, 0] = 0.001 * np.arange(1, 101) / 100   # errors 0.01 .. 1.00 mm
    acc.add({"vertices": V.reshape(2, -1), "textures": np.full((2, 12), 0.5)},
            {"vertices": Vh.reshape(2, -1), "textures": np.full((2, 12), 0.6)})
    r = acc.result()
    assert r["vertex_error_mm"]["mean"] == pytest.approx(0.505)
    assert r["vertex_error_mm"]["p95"] == pytest.approx(0.95, rel=2e-3)
    assert r["texture_psnr_db"] == pytest.approx(20.0)
    assert components_for([0.5, 0.3, 0.15, 0.04, 0.01]) == {"0.9": 3, "0.95": 3, "0.99": 4}
    assert components_for([0.5, 0.3])["0.99"] is None


def test_split_is_deterministic():
    tr, te = split_rows(100, 0.2, seed=5)
    assert len(te) == 20 and not set(tr) & set(te) and sorted(set(tr) | set(te)) == list(range(100))
    assert all(np.array_equal(a, b) for a, b in zip((tr, te), split_rows(100, 0.2, seed=5)))
    assert not np.array_equal(te, split_rows(100, 0.2, seed=6)[1])


# -- experiments and the command line ----------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory, rig):
    path = tmp_path_factory.mktemp("latent") / "tiny.zarr"
    text = yaml.safe_dump({"n": 64, "seed": 0, "sampler": "prior", "vary": ["*"], "shard": 32, "store": str(path),
                           "outputs": {"vertices": {"dtype": "float32"}, "textures": {"size": 32}}})
    dataset.generate(dataset.config_from_text(text, "<test>"), workers=1, progress=False, rig=rig)
    return path


def _cli(argv) -> int:
    from avatar.cli.main import main

    return main(argv)


def _experiment(tmp_path, store, **over) -> Path:
    data = {"dataset": str(store), "features": ["vertices", {"textures": {"size": 16, "weight": 0.5}}],
            "models": [{"name": "pca", "kind": "pca", "n_components": 6},
                       {"name": "stream", "kind": "incremental_pca", "n_components": 6, "batch_size": 20},
                       {"name": "ica", "kind": "ica", "n_components": 4},
                       {"name": "fa", "kind": "factor_analysis", "n_components": 3, "max_iter": 30}]
            + ([{"name": "ae", "kind": "autoencoder", "n_components": 3, "hidden": [16], "epochs": 5}]
               if L.torch_available() else []),
            "split": {"test_fraction": 0.25, "seed": 0}, "output": str(tmp_path / "models" / "exp.npz"),
            "spectrum_components": 30}
    data.update(over)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


FITTED = ["pca", "stream", "ica", "fa"] + (["ae"] if L.torch_available() else [])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, store):
    tmp = tmp_path_factory.mktemp("fit")
    cfg = _experiment(tmp, store)
    assert _cli(["fit", str(cfg), "--quiet"]) == 0
    return tmp / "models" / "exp.npz"


def test_fit_writes_every_model_and_the_metadata(fitted, store):
    meta = yaml.safe_load(fitted.with_suffix(".yaml").read_text())
    assert meta["format"] == L.FORMAT
    assert [m["name"] for m in meta["models"]] == FITTED
    assert meta["dataset"]["fingerprint"] == dataset.open(store).attrs["fingerprint"]
    assert meta["split"] == {"test_fraction": 0.25, "seed": 0, "n_train": 48, "n_test": 16}
    dim = meta["intrinsic_dimensionality"]
    assert len(dim["explained_variance_ratio"]) == 47   # all a PCA of 48 training rows has (>= 30 asked)
    counts = dim["components_for_variance"]
    cum = np.cumsum(dim["explained_variance_ratio"])
    assert cum[counts["0.9"] - 1] >= 0.9 and (counts["0.9"] == 1 or cum[counts["0.9"] - 2] < 0.9)
    assert counts["0.9"] <= counts["0.95"] <= (counts["0.99"] or 99)
    for m in meta["models"]:
        err = m["test"]["vertex_error_mm"]
        assert 0 < err["mean"] < err["p95"] < 1000 and m["test"]["texture_psnr_db"] > 10
    by = {m["name"]: m for m in meta["models"]}
    assert by["pca"]["test"]["vertex_error_mm"]["mean"] == pytest.approx(
        by["stream"]["test"]["vertex_error_mm"]["mean"], rel=1e-3)   # streamed PCA = in-memory PCA
    assert by["pca"]["test"]["vertex_error_mm"]["mean"] < by["ica"]["test"]["vertex_error_mm"]["mean"]
    models = L.load_all(fitted)
    assert list(models) == FITTED
    assert L.load(fitted, name="ica").kind == "ica"
    assert L.decode_textures(models["pca"], np.zeros(6)).shape == (16, 16, 3)


def test_load_experiment_gives_codes_of_dataset_rows(fitted, store):
    exp = L.load_experiment(fitted)
    assert len(exp.train) == 48 and len(exp.test) == 16 and not set(exp.train) & set(exp.test)
    ds = dataset.open(store)
    rows = exp.test[::-1][:5]
    Z = exp.codes("ica", rows)
    arrays = {"vertices": ds.vertices[rows].compute(), "textures": ds.textures[rows].compute()}
    np.testing.assert_allclose(Z, exp.models["ica"].transform(exp.features.forward(arrays)), rtol=1e-10)
    out = exp.decode("pca", np.zeros((2, 6)))
    assert out["vertices"].shape == (2, ds.vertices.shape[1], 3) == (2, 14472, 3) and out["textures"].shape == (2, 16, 16, 3)


def test_encode_and_decode_commands(fitted, store, tmp_path):
    out = tmp_path / "codes.npy"
    assert _cli(["encode", str(fitted), str(store), "-o", str(out), "--index", "0:10", "--name", "fa"]) == 0
    Z = np.load(out, allow_pickle=False)
    np.testing.assert_allclose(Z, L.load_experiment(fitted).codes("fa", np.arange(10)), rtol=1e-12)
    glb = tmp_path / "decoded.glb"
    assert _cli(["decode", str(fitted), "--code", "0:+2,3:-1.5", "-o", str(glb)]) == 0
    import trimesh

    mesh = trimesh.load(glb, force="mesh")
    m = L.load(fitted)
    want = L.decode_vertices(m, m.code_mean_ + np.array([2, 0, 0, -1.5, 0, 0]) * m.code_std_)
    assert np.allclose(np.asarray(mesh.vertices).min(0), want.min(0), atol=1e-5)
    assert _cli(["decode", str(fitted), "--code", "", "-o", str(tmp_path / "mean.ply")]) == 0


def test_command_errors_exit_2(fitted, store, tmp_path, capsys):
    assert _cli(["decode", str(fitted), "--code", "9:+1", "-o", str(tmp_path / "x.glb")]) == 2
    assert "out of range" in capsys.readouterr().err
    assert not (tmp_path / "x.glb").exists()
    (tmp_path / "evil.npz").write_bytes(pickle.dumps({"a": 1}))
    assert _cli(["encode", str(tmp_path / "evil.npz"), str(store), "-o", str(tmp_path / "c.npy")]) == 2
    assert "pickle" in capsys.readouterr().err and not (tmp_path / "c.npy").exists()
    assert _cli(["encode", str(fitted), str(tmp_path / "nope.zarr"), "-o", str(tmp_path / "c.npy")]) == 2
    assert _cli(["decode", str(fitted), "--name", "icaa", "-o", str(tmp_path / "x.glb")]) == 2
    assert "did you mean 'ica'" in capsys.readouterr().err


def test_experiment_config_problems_name_file_line_and_key(store, tmp_path, capsys):
    text = (f"dataset: {store}\nfeatures: [vertices, texturs]\nmodels:\n"
            "  - {name: a, kind: pcaa, n_components: 4}\n"
            "  - {name: b, kind: pca, n_components: 500000}\n"
            "  - {name: c, kind: ica, n_components: 0}\n"
            "  - {name: d, kind: autoencoder, n_components: 2, epoch: 5}\n"
            "split: {test_fraction: 1.5}\nbatchsize: 3\n")
    with pytest.raises(ConfigError) as err:
        config_from_text(text, "exp.yaml")
    msg = str(err.value)
    for want in ("exp.yaml:2: features[1]: unknown feature 'texturs'; did you mean 'textures'?",
                 "exp.yaml:4: models[0].kind: unknown model kind 'pcaa'; did you mean 'pca'?",
                 "exp.yaml:5: models[1].n_components: 500000 is more than the data allow",
                 "exp.yaml:6: models[2].n_components: must be at least 1",
                 "exp.yaml:7: models[3].epoch: unknown key 'epoch'; did you mean 'epochs'?",
                 "exp.yaml:8: split.test_fraction: must be between 0 and 1",
                 "exp.yaml:9: batchsize: unknown key 'batchsize'; did you mean 'batch_size'?"):
        assert want in msg, msg
    missing = tmp_path / "missing.yaml"
    missing.write_text(f"dataset: {tmp_path / 'nope.zarr'}\nmodels: [{{kind: pca, n_components: 2}}]\n")
    assert _cli(["fit", str(missing)]) == 2
    assert "missing.yaml:1: dataset: dataset" in capsys.readouterr().err


def test_shipped_experiment_configs_parse():
    root = Path(__file__).resolve().parent.parent / "configs" / "experiments"
    for path in sorted(root.glob("*.yaml")):
        try:
            config_from_text(path.read_text(), str(path))
        except ConfigError as err:  # the datasets are generated by the user; everything else must be valid
            assert all(p.key == "dataset" for p in err.problems), str(err)


def test_models_of_another_template_are_refused(fitted, tmp_path, capsys):
    """A model file records its dataset's template (the faces' sha256); decode refuses another one."""
    import shutil

    meta = yaml.safe_load(fitted.with_suffix(".yaml").read_text())
    rig = avatar.load_rig()
    assert meta["dataset"]["template_sha256"] == rig.template.faces_sha256
    old = tmp_path / "old.npz"
    shutil.copy(fitted, old)
    meta["dataset"]["template_sha256"] = "0" * 64  # as a model of the old mannequin records
    old.with_suffix(".yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    assert _cli(["decode", str(old), "-o", str(tmp_path / "x.glb")]) == 2
    assert "another template" in capsys.readouterr().err and not (tmp_path / "x.glb").exists()


def test_fit_runs_conv_models_on_image_features(store, tmp_path):
    """`avatar fit` with conv kinds on a textures block: the shared PCA basis is ignored, the images come back."""
    if not L.torch_available():
        pytest.skip("PyTorch is not installed (pip install avatar[torch]); the conv models are optional")
    cfg = _experiment(tmp_path, store, features=[{"textures": {"size": 16}}],
                      models=[{"name": "cae", "kind": "conv_ae", "n_components": 3, "epochs": 2, "device": "cpu"},
                              {"name": "cvae", "kind": "conv_vae", "n_components": 3, "epochs": 2,
                               "channels": [8, 8, 16, 16], "hidden": [32], "device": "cpu"}])
    assert _cli(["fit", str(cfg), "--quiet"]) == 0
    path = tmp_path / "models" / "exp.npz"
    meta = yaml.safe_load(path.with_suffix(".yaml").read_text())
    assert [m["name"] for m in meta["models"]] == ["cae", "cvae"]
    assert all(m["test"]["texture_psnr_db"] > 5 for m in meta["models"])
    models = L.load_all(path)
    assert isinstance(models["cvae"], L.ConvVAE) and models["cvae"].get_params()["channels"] == (8, 8, 16, 16)
    assert L.decode_textures(models["cae"], np.zeros(3)).shape == (16, 16, 3)
