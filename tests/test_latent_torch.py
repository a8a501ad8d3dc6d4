"""The PyTorch latent models: the shared loop (determinism, early stopping), the autoencoder's known answer
on the macro blend, numpy-only loading, and the convolutional models."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install avatar[torch])")

import avatar  # noqa: E402
import avatar.latent as L  # noqa: E402
from avatar.latent import nets  # noqa: E402

# MakeHuman's main macros; the blend of their targets is multilinear in piecewise-linear weights
MACROS = ["body.gender", "body.age", "body.muscle", "body.weight", "body.height", "body.proportions"]


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def random_X():
    rng = np.random.default_rng(1)
    return (rng.normal(size=(200, 6)) * np.geomspace(3, 0.3, 6)) @ rng.normal(size=(6, 40)) \
        + 0.05 * rng.normal(size=(200, 40))


@pytest.fixture(scope="module")
def macro_data():
    """(train (2000, d), test (500, d)) float32 vertices (every 4th, rest pose) of avatars varying only MACROS."""
    rig = avatar.load_rig()
    cols = [rig.slider_names.index(m) for m in MACROS]
    n = 2500
    S = np.tile(rig.defaults(), (n, 1))
    S[:, cols] = rig.sample(n, seed=0)[:, cols]     # the macros from their priors, the rest at defaults
    X = rig.vertices(S, posed=False)[:, ::4].reshape(n, -1)
    return X[:2000], X[2000:]


# -- the shared loop ------------------------------------------------------------------
def test_same_seed_same_weights_and_the_callers_rng_untouched(random_X):
    params = dict(hidden=(16,), epochs=8, input_components=20, random_state=3)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = L.Autoencoder(3, **params).fit(random_X).learned()
    after = torch.rand(3)
    b = L.Autoencoder(3, **params).fit(random_X).learned()
    assert torch.equal(before, after)          # the fit forks torch's RNG: the caller's stream goes on as before
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    c = L.Autoencoder(3, **{**params, "random_state": 4}).fit(random_X).learned()
    assert not np.array_equal(a["w0"], c["w0"])
    v1 = L.VAE(2, hidden=(16,), epochs=5, input_components=20, random_state=0).fit(random_X).learned()
    v2 = L.VAE(2, hidden=(16,), epochs=5, input_components=20, random_state=0).fit(random_X).learned()
    assert all(np.array_equal(v1[k], v2[k]) for k in v1)
    assert all(a[k].dtype == np.float64 for k in a if k.startswith(("w", "b")))


def _ae_net(r, k, h):
    tanh = [True] * len(h) + [False]
    return torch.nn.Sequential(nets.skip_mlp([r] + h + [k], tanh), nets.skip_mlp([k] + h[::-1] + [r], tanh))


def test_early_stopping_keeps_the_best_epoch():
    """Pure noise: nothing to learn beyond the first epochs, so the validation loss plateaus and training
    stops `patience` epochs after its best, with the best epoch's weights put back."""
    X = np.random.default_rng(0).normal(size=(300, 12)).astype(np.float32)

    def loss(net, x, noise, training):
        return ((net(x) - x) ** 2).sum(dim=1)

    net, h = nets.train(lambda: _ae_net(12, 3, [32]), loss, X, epochs=500, batch_size=32, learning_rate=1e-2,
                        patience=5, validation_fraction=0.2, random_state=0, threads=1)
    assert h.n_epochs < 500 and h.n_epochs == h.best_epoch + 5
    assert len(h.loss_curve) == len(h.validation_curve) == h.n_epochs and len(h.validation_rows) == 60
    assert h.best_epoch == int(np.argmin(h.validation_curve)) + 1
    with torch.no_grad():
        Xv = torch.as_tensor(X[h.validation_rows])
        now = float(loss(net, Xv, None, False).mean())
    assert now == pytest.approx(h.validation_curve[h.best_epoch - 1], rel=1e-5)   # the best weights are back
    assert now < h.validation_curve[-1]
    # the estimator records the same things
    m = L.Autoencoder(3, hidden=(8,), epochs=300, patience=3, input_components=12, random_state=0).fit(X)
    assert m.n_epochs_ < 300 and m.n_epochs_ == m.best_epoch_ + 3 and len(m.validation_curve_) == m.n_epochs_
    assert m.device_ == "cpu"


def test_no_validation_rows_runs_every_epoch(random_X):
    m = L.Autoencoder(2, hidden=(8,), epochs=7, input_components=10, validation_fraction=0.0).fit(random_X)
    assert m.n_epochs_ == m.best_epoch_ == 7 and len(m.validation_curve_) == 0 and len(m.loss_curve_) == 7
    tiny = L.Autoencoder(2, hidden=(4,), epochs=3, input_components=4).fit(random_X[:4])   # 0.1 * 4 rounds to 0
    assert tiny.n_epochs_ == 3


@pytest.mark.parametrize("bad, match", [({"patience": 0}, "patience"), ({"validation_fraction": 1.0}, "validation"),
                                        ({"learning_rate": -1.0}, "learning_rate"), ({"device": "tpu"}, "device")])
def test_bad_training_parameters(random_X, bad, match):
    with pytest.raises(ValueError, match=match):
        L.Autoencoder(2, hidden=(4,), epochs=2, input_components=8, **bad).fit(random_X)


def test_device_auto_is_cpu_without_cuda():
    assert nets.resolve_device("cpu") == "cpu"
    assert nets.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            nets.resolve_device("cuda")


def test_an_autoencoder_file_from_before_the_skip_paths_keeps_its_tanh_code(tmp_path, random_X):
    """Files of the plain-stack autoencoder (tanh code, no `skip` array) load and encode as they did."""
    rng = np.random.default_rng(0)
    pca = L.PCA(10, random_state=0).fit(random_X)
    sizes = [10, 8, 3, 8, 10]
    arrays = {"mean": pca.mean_, "basis": pca.components_, "scale": np.asarray(2.0), "code_mean": np.zeros(3),
              "code_std": np.ones(3), "n_features_in": np.asarray(random_X.shape[1])}
    W = [rng.normal(size=(a, c)) * 0.3 for a, c in zip(sizes[:-1], sizes[1:])]
    B = [rng.normal(size=c) * 0.1 for c in sizes[1:]]
    arrays.update({f"w{i}": w for i, w in enumerate(W)} | {f"b{i}": b for i, b in enumerate(B)})
    m = L.Autoencoder(3, hidden=(8,), input_components=10).set_learned(arrays)
    U = (random_X - pca.mean_) @ pca.components_.T / 2.0
    want_Z = np.tanh(np.tanh(U @ W[0] + B[0]) @ W[1] + B[1])
    want_X = (np.tanh(want_Z @ W[2] + B[2]) @ W[3] + B[3]) * 2.0 @ pca.components_ + pca.mean_
    L.save(m, tmp_path / "old.npz")
    back = L.load(tmp_path / "old.npz")
    for model in (m, back):
        np.testing.assert_allclose(model.transform(random_X), want_Z, rtol=1e-12)
        np.testing.assert_allclose(model.inverse_transform(want_Z), want_X, rtol=1e-12)
    assert "skip" not in back.learned()


# -- the known answer ----------------------------------------------------------------------
AE_KNOWN = dict(hidden=(64, 64), input_components=32, epochs=100, random_state=0)


def test_autoencoder_beats_pca_on_the_macro_blend(macro_data):
    """The macro targets blend multilinearly, so k = len(MACROS) codes describe every avatar exactly while
    a k-dimensional linear subspace cannot: a trained autoencoder must beat PCA-k on held-out avatars.
    Measured with data and model seeds 0, 1, 2: 0.50, 0.57, 0.62 of PCA-k's error (60 epochs: 0.65, 0.63, 0.70;
    2 epochs: 0.86, 0.82, 0.89, which fails)."""
    train, test = macro_data
    k = len(MACROS)
    pca = L.PCA(k, random_state=0).fit(train)
    ae = L.Autoencoder(k, **AE_KNOWN).fit(train)
    ratio = ae.score_error(test) / pca.score_error(test)
    print(f"held-out MSE: autoencoder {ae.score_error(test):.3e}, PCA-{k} {pca.score_error(test):.3e} "
          f"(ratio {ratio:.3f}, {ae.n_epochs_} epochs)")
    assert ratio < 0.75, f"the autoencoder is under-trained: {ratio:.3f} of PCA-{k}'s error"


def test_a_linear_autoencoder_does_not_beat_pca(macro_data):
    """The control: without tanh layers the same model is linear and cannot beat PCA-k (so the margin
    above comes from the nonlinearity, not from the skip paths or the split)."""
    train, test = macro_data
    k = len(MACROS)
    pca = L.PCA(k, random_state=0).fit(train)
    lin = L.Autoencoder(k, **{**AE_KNOWN, "hidden": (), "epochs": 20, "patience": 5}).fit(train)
    assert lin.score_error(test) / pca.score_error(test) > 0.97


# -- loading without torch -------------------------------------------------------------------
def _run_without_torch(code: str) -> str:
    # `import torch` raises ImportError, as without PyTorch installed. (sys.modules["torch"] = None would do that
    # too, but scipy's array-API helpers take a "torch" entry in sys.modules for the real module.)
    prelude = textwrap.dedent("""
        import importlib.abc, sys
        class NoTorch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "torch":
                    raise ImportError("No module named 'torch' (blocked by the test)")
        sys.meta_path.insert(0, NoTorch())
    """)
    out = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_saved_models_encode_identically_without_torch(tmp_path, random_X):
    models = {"ae": L.Autoencoder(3, hidden=(16,), epochs=5, input_components=20, random_state=0).fit(random_X),
              "vae": L.VAE(3, hidden=(16,), epochs=5, input_components=20, random_state=0).fit(random_X)}
    np.save(tmp_path / "X.npy", random_X)
    for name, m in models.items():
        L.save(m, tmp_path / f"{name}.npz")
        Z = m.transform(random_X)
        np.save(tmp_path / f"{name}-Z.npy", Z)
        np.save(tmp_path / f"{name}-X.npy", m.inverse_transform(Z))
    _run_without_torch(f"""
        import numpy as np
        from pathlib import Path
        import avatar.latent as L
        tmp = Path({str(tmp_path)!r})
        X = np.load(tmp / "X.npy")
        for name in ("ae", "vae"):
            m = L.load(tmp / f"{{name}}.npz")
            Z = m.transform(X)
            assert np.array_equal(Z, np.load(tmp / f"{{name}}-Z.npy")), name
            assert np.array_equal(m.inverse_transform(Z), np.load(tmp / f"{{name}}-X.npy")), name
        try:
            L.Autoencoder(2, hidden=(4,), epochs=1, input_components=8).fit(X)
        except ImportError as err:
            assert "avatar[torch]" in str(err)
        else:
            raise AssertionError("fit ran without torch")
        assert "torch" not in sys.modules
    """)


# -- the convolutional models ----------------------------------------------------------------
@pytest.fixture(scope="module")
def one_torch_thread():
    """The conv nets on a shared 2-core machine: one thread (two were 10x slower under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _discs(n: int, side: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(factors (n, 2): x centre and radius as fractions of the side, images (n, side, side, 3) float32 in [0, 1]):
    a bright soft-edged disc (1.5 px ramp) on black, at mid height."""
    rng = np.random.default_rng(seed)
    F = np.c_[rng.uniform(0.3, 0.7, n), rng.uniform(0.12, 0.28, n)]
    yy, xx = np.mgrid[:side, :side] + 0.5
    dist = np.hypot(xx[None] - F[:, 0, None, None] * side, yy[None] - side / 2)
    img = np.clip((F[:, 1, None, None] * side - dist) / 1.5 + 0.5, 0, 1).astype(np.float32)
    return F, np.repeat(img[..., None], 3, axis=-1)


def _torch_net(m):
    """The model's torch network with its learned weights, in float64."""
    from avatar.latent.conv import _net_class

    channels, hidden = m._widths()
    net = _net_class()(m.image_side_, channels, hidden, m.n_components, m.variational).double()
    params = list(net.parameters())
    assert len(params) == len(m.params_)
    with torch.no_grad():
        for p, a in zip(params, m.params_):
            p.copy_(torch.as_tensor(a))
    return net.eval()


@pytest.mark.parametrize("side", [32, 64])
@pytest.mark.parametrize("kind", ["conv_vae", "conv_ae"])
def test_numpy_forward_equals_torch(one_torch_thread, kind, side):
    _, imgs = _discs(24, side, 0)
    X = imgs.reshape(24, -1) - imgs.reshape(24, -1).mean(0)
    m = L.make_model(kind, 3, random_state=0, epochs=1, device="cpu").fit(X)
    net = _torch_net(m)
    Z = m.transform(X)
    with torch.no_grad():
        mu, logvar = net.encode(torch.as_tensor(X, dtype=torch.float64))
        X_hat = net.decode(torch.as_tensor(Z)).numpy()
    assert (logvar is None) == (kind == "conv_ae")
    np.testing.assert_allclose(Z, mu.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(m.inverse_transform(Z), X_hat, atol=1e-5, rtol=0)
    assert m.inverse_transform(Z).shape == X.shape


def test_conv_layers_match_torch_for_other_shapes():
    from avatar.latent.conv import conv2d, conv_transpose2d

    rng = np.random.default_rng(0)
    F = torch.nn.functional
    for c, o, h in ((3, 5, 6), (7, 2, 4), (4, 4, 8)):   # both branches of conv_transpose2d (o < c and o >= c)
        x, w, b = rng.normal(size=(2, h, h, c)), rng.normal(size=(o, c, 4, 4)), rng.normal(size=o)
        want = F.conv2d(torch.as_tensor(x).permute(0, 3, 1, 2), torch.as_tensor(w), torch.as_tensor(b), stride=2,
                        padding=1).permute(0, 2, 3, 1).numpy()
        np.testing.assert_allclose(conv2d(x, w, b), want, atol=1e-10)
        wt, bt = rng.normal(size=(c, o, 4, 4)), rng.normal(size=o)
        want = F.conv_transpose2d(torch.as_tensor(x).permute(0, 3, 1, 2), torch.as_tensor(wt), torch.as_tensor(bt),
                                  stride=2, padding=1).permute(0, 2, 3, 1).numpy()
        np.testing.assert_allclose(conv_transpose2d(x, wt, bt), want, atol=1e-10)


def test_conv_vae_finds_the_position_and_the_size_of_a_disc(one_torch_thread):
    """1,000 images of a disc varying in x position and radius: a 2-code conv VAE gives each factor a code
    (|Spearman| > 0.8 after matching codes to factors). Measured (seeds 0, 1, 2): 0.96 / 0.88, 0.96 / 0.90,
    0.86 / 0.94 with these half-width layers; the default widths need more than these 20 epochs."""
    from scipy.optimize import linear_sum_assignment
    from scipy.stats import spearmanr

    F, imgs = _discs(1000, 32, 0)
    X = imgs.reshape(len(imgs), -1)
    X = X - X.mean(0)                                   # centred pixels, as FeatureTransform gives them
    m = L.ConvVAE(2, channels=(16, 16, 32, 32), hidden=(128,), epochs=20, batch_size=32, learning_rate=1e-3,
                  random_state=0, device="cpu").fit(X)
    Z = m.transform(X)
    rho = np.abs([[spearmanr(Z[:, i], F[:, j])[0] for j in range(2)] for i in range(2)])
    codes, factors = linear_sum_assignment(-rho)
    matched = rho[codes, factors]
    print(f"|Spearman| of the matched codes: x position {matched[list(factors).index(0)]:.3f}, "
          f"radius {matched[list(factors).index(1)]:.3f} ({m.n_epochs_} epochs)")
    assert matched.min() > 0.8, rho


def test_conv_models_through_render_features(tmp_path, one_torch_thread):
    """Renders (n, 1 view, 64, 64, 3) uint8 -> features box-filtered to 32 px -> conv model -> images back;
    saved and loaded exactly; several views are refused; a row that is no square image is refused."""
    from avatar.latent.features import FeatureTransform

    _, imgs = _discs(40, 64, 1)
    renders = (imgs[:, None] * 255).astype(np.uint8)
    ft = FeatureTransform([{"name": "renders", "size": 32}]).fit_arrays({"renders": renders})
    X = ft.forward({"renders": renders})
    assert X.shape == (40, 32 * 32 * 3)
    m = L.ConvAE(4, epochs=2, random_state=0, device="cpu").fit(X)
    m.features_ = ft
    out = L.decode_renders(m, m.transform(X))
    assert out.shape == (40, 1, 32, 32, 3) and out.dtype == np.uint8
    L.save(m, tmp_path / "conv.npz")
    back = L.load(tmp_path / "conv.npz")
    assert type(back) is L.ConvAE and back.get_params() == m.get_params()
    assert np.array_equal(back.transform(X), m.transform(X))
    # 4 views of 16 px have the length of one 32 px image: fitted on the bare matrix the model cannot tell,
    # but through the feature transform it refuses them
    four = np.repeat(renders[:, :, ::2, ::2], 4, axis=1)                   # (40, 4, 32, 32, 3)
    ft4 = FeatureTransform([{"name": "renders", "size": 16}]).fit_arrays({"renders": four})
    X4 = ft4.forward({"renders": four})
    m4 = L.ConvAE(2, epochs=1, device="cpu").fit(X4)
    m4.features_ = ft4
    with pytest.raises(ValueError, match="one image per avatar"):
        m4.transform(X4)
    with pytest.raises(ValueError, match="square RGB image"):
        L.ConvVAE(2, epochs=1, device="cpu").fit(np.zeros((10, 3 * 32 * 31)))


def test_code_dependence_is_the_gaussian_total_correlation():
    from avatar.latent.conv import code_dependence

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 200_000))
    assert abs(code_dependence(np.c_[a, b])) < 1e-4                      # independent codes: 0
    r = 0.6                                                              # two codes correlated r: -log(1 - r^2) / 2
    assert abs(code_dependence(np.c_[a, r * a + np.sqrt(1 - r * r) * b]) + 0.5 * np.log(1 - r * r)) < 5e-3
    assert code_dependence(np.c_[a, np.zeros_like(a), b]) == code_dependence(np.c_[a, b])   # a dead code is ignored
    assert code_dependence(np.c_[a, 2 * a]) == float("inf")


def test_conv_restarts_keep_the_most_independent_codes(one_torch_thread):
    """n_init trains seeds random_state, random_state + 1, ...: the kept net is restart best_restart_'s,
    the one of least code dependence, bit for bit the net a single fit from that seed gives."""
    from avatar.latent.conv import code_dependence

    _, imgs = _discs(60, 32, 2)
    X = imgs.reshape(60, -1) - imgs.reshape(60, -1).mean(0)
    m = L.ConvVAE(3, epochs=2, random_state=5, device="cpu", n_init=3).fit(X)
    assert m.restart_dependence_.shape == (3,) and m.best_restart_ == int(np.argmin(m.restart_dependence_))
    alone = L.ConvVAE(3, epochs=2, random_state=5 + m.best_restart_, device="cpu").fit(X)
    assert all(np.array_equal(p, q) for p, q in zip(m.params_, alone.params_))
    # restart_dependence_ is of torch's float32 codes, transform numpy's float64: equal to float32's precision
    assert np.isclose(code_dependence(alone.transform(X)), m.restart_dependence_.min(), rtol=1e-5, atol=0)
    with pytest.raises(ValueError, match="n_init must be at least 1"):
        L.ConvVAE(3, epochs=1, n_init=0, device="cpu").fit(X)


def test_independent_axes_unmix_a_rotation_of_uniform_factors():
    """Three independent uniform factors turned and scaled by a known matrix: the independent axes recover
    each one (up to order and sign), unit variance, the mixing their exact inverse, signs by the rule."""
    from avatar.latent.rotation import independent_axes, negentropy

    rng = np.random.default_rng(0)
    S = rng.uniform(-1, 1, size=(4000, 3))
    M = np.array([[1.0, 0.6, -0.3], [-0.4, 0.8, 0.5], [0.2, -0.5, 0.9]])
    Z = S @ M.T + np.array([3.0, -1.0, 0.5])
    W, A, mean, Y = independent_axes(Z, seed=0)
    np.testing.assert_allclose(Y, (Z - mean) @ W.T, atol=1e-12)
    np.testing.assert_allclose(W @ A, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(Y.std(axis=0), 1.0, atol=1e-6)
    C = np.abs(np.corrcoef(Y.T, S.T)[:3, 3:])
    assert np.all(C.max(axis=1) > 0.999) and sorted(C.argmax(axis=1)) == [0, 1, 2], C.round(3)
    assert np.all(A[np.abs(A).argmax(axis=0), range(3)] > 0)           # each axis's largest mixing weight positive
    assert negentropy(Y) > 2 * negentropy(Z)                          # unmixed: further from Gaussian
    assert np.array_equal(independent_axes(Z, seed=0)[0], W)          # seeded: the same axes


def test_negentropy_is_zero_for_gaussian_codes_and_ignores_a_constant_one():
    from avatar.latent.rotation import negentropy

    rng = np.random.default_rng(1)
    g, u = rng.normal(size=(200_000, 2)), rng.uniform(size=(200_000, 1))
    assert negentropy(g) < 1e-5
    # a uniform code: (E log cosh of a standardised uniform - E log cosh of a normal)^2, the former by quadrature
    x = np.linspace(-np.sqrt(3), np.sqrt(3), 2_000_001)
    want = (np.log(np.cosh(x)).mean() - 0.3745672) ** 2
    assert abs(negentropy(u) - want) < 0.05 * want
    assert np.isclose(negentropy(np.c_[u, np.ones_like(u)]), negentropy(u), rtol=1e-12, atol=0)


def test_conv_rotate_ica_gives_the_unmixed_codes_and_round_trips(tmp_path, one_torch_thread):
    """rotate="ica": codes are the ICA of the net's posterior means, decoding turns them back first, restarts
    keep the most non-Gaussian unmixed codes, and a saved model loads to the same codes and images."""
    from avatar.latent.rotation import independent_axes

    _, imgs = _discs(60, 32, 2)
    X = imgs.reshape(60, -1) - imgs.reshape(60, -1).mean(0)
    m = L.ConvVAE(3, epochs=2, random_state=5, device="cpu", n_init=3, rotate="ica").fit(X)
    assert m.best_restart_ == int(np.argmax(m.restart_negentropy_)) and m.restart_negentropy_.shape == (3,)
    plain = L.ConvVAE(3, epochs=2, random_state=5 + m.best_restart_, device="cpu").fit(X)
    assert all(np.array_equal(p, q) for p, q in zip(m.params_, plain.params_)) and plain.unmixing_ is None
    mu = plain.transform(X)                                            # the net's own codes
    Z = m.transform(X)
    np.testing.assert_allclose(Z, (mu - m.ica_mean_) @ m.unmixing_.T, atol=1e-12)
    np.testing.assert_allclose(m.inverse_transform(Z), plain.inverse_transform(mu), atol=1e-9)
    np.testing.assert_allclose(m.code_std_, 1.0, atol=1e-3)           # fitted on torch's float32 codes
    W = independent_axes(mu.astype(np.float32).astype(np.float64), 5 + m.best_restart_)[0]
    np.testing.assert_allclose(m.unmixing_, W, rtol=1e-4, atol=0)
    L.save(m, tmp_path / "rot.npz")
    back = L.load(tmp_path / "rot.npz")
    assert back.get_params()["rotate"] == "ica" and np.array_equal(back.transform(X), Z)
    assert np.array_equal(back.inverse_transform(Z[:4]), m.inverse_transform(Z[:4]))
    arrays = m.learned()
    del arrays["unmixing"]
    with pytest.raises(ValueError, match="unmixing, mixing and ica_mean"):
        L.ConvVAE(3, rotate="ica").set_learned(arrays)
    with pytest.raises(ValueError, match="no ICA arrays"):
        L.ConvVAE(3).set_learned(m.learned())
    with pytest.raises(ValueError, match="rotate must be one of none, ica"):
        L.ConvVAE(3, epochs=1, device="cpu", rotate="pca").fit(X)


@pytest.mark.parametrize("kind", ["autoencoder", "vae"])
def test_dense_nets_rotate_ica_recover_independent_sources(tmp_path, kind):
    """A linear mixture of three uniform sources in 12 features: with rotate="ica" each of the three codes of
    the dense autoencoder and VAE follows one source; the unmixing is stored and loads to the same codes."""
    rng = np.random.default_rng(3)
    S = rng.uniform(-1, 1, size=(1500, 3))
    X = S @ rng.normal(size=(3, 12)) + 0.01 * rng.normal(size=(1500, 12))
    m = L.make_model(kind, 3, random_state=0, hidden=(16,), epochs=30, input_components=6, rotate="ica").fit(X)
    Z = m.transform(X)
    C = np.abs(np.corrcoef(Z.T, S.T)[:3, 3:])
    assert np.all(C.max(axis=1) > 0.95) and sorted(C.argmax(axis=1)) == [0, 1, 2], C.round(2)
    np.testing.assert_allclose(m.code_std_, 1.0, atol=1e-6)
    plain = L.make_model(kind, 3, random_state=0, hidden=(16,), epochs=30, input_components=6).fit(X)
    np.testing.assert_allclose(m.inverse_transform(Z), plain.inverse_transform(plain.transform(X)), atol=1e-9)
    L.save(m, tmp_path / "m.npz")
    back = L.load(tmp_path / "m.npz")
    assert back.get_params()["rotate"] == "ica" and np.array_equal(back.transform(X), Z)


def test_conv_same_seed_same_weights_and_loads_without_torch(tmp_path, one_torch_thread):
    _, imgs = _discs(60, 32, 2)
    X = imgs.reshape(60, -1) - imgs.reshape(60, -1).mean(0)
    a = L.ConvVAE(3, epochs=2, random_state=5, device="cpu").fit(X)
    b = L.ConvVAE(3, epochs=2, random_state=5, device="cpu").fit(X)
    assert all(np.array_equal(p, q) for p, q in zip(a.params_, b.params_))
    assert all(p.dtype == np.float64 for p in a.params_) and a.n_epochs_ == 2 and len(a.validation_curve_) == 2
    L.save(a, tmp_path / "cv.npz")
    np.save(tmp_path / "X.npy", X)
    Z = a.transform(X)
    np.save(tmp_path / "Z.npy", Z)
    np.save(tmp_path / "Xh.npy", a.inverse_transform(Z))
    _run_without_torch(f"""
        import numpy as np
        from pathlib import Path
        import avatar.latent as L
        tmp = Path({str(tmp_path)!r})
        m = L.load(tmp / "cv.npz")
        Z = m.transform(np.load(tmp / "X.npy"))
        assert np.array_equal(Z, np.load(tmp / "Z.npy"))
        assert np.array_equal(m.inverse_transform(Z), np.load(tmp / "Xh.npy"))
        assert "torch" not in sys.modules
    """)
