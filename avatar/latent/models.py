"""Latent models behind one scikit-learn-style interface.

    m = PCA(n_components=32, random_state=0).fit(X)        # X (n, d) float
    Z = m.transform(X)                                     # (n, k) codes
    X_hat = m.inverse_transform(Z)                         # (n, d)

Every model stores its parameters in ``__init__`` (``n_components``,
``random_state`` and its own), learns in ``fit`` and keeps what it learned in
attributes ending in ``_``. Whatever a model needs to encode and decode is a
plain array (see :meth:`LatentModel.learned`), so :mod:`avatar.latent.persist`
can write it to ``.npz`` and read it back without pickles.

scikit-learn does the fitting of ICA (PyTorch that of the neural models, see
:mod:`avatar.latent.nets`); encoding and decoding are our own few lines of
numpy over the extracted arrays (so a loaded model needs neither). The
nonlinear and the many-feature models work in a PCA subspace of the input
(``pre_components``/``input_components``): FastICA and factor analysis on
75,000 vertex coordinates would otherwise spend minutes in SVDs of
the raw data, and the tail of a mesh's spectrum is noise anyway.
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator

from ..threads import one_blas_thread
from .linalg import largest_positive
from .rotation import Unmixed

__all__ = ["LatentModel", "PCA", "IncrementalPCA", "ICA", "FactorAnalysis", "Autoencoder", "KINDS",
           "model_class"]


class LatentModel(BaseEstimator):
    """Base of every latent model: ``fit`` / ``transform`` / ``inverse_transform``.

    Learned by every model: ``n_features_in_``, ``code_mean_`` (k,) and
    ``code_std_`` (k,) (the mean and standard deviation of the training codes,
    so that latent sliders can run from -3 to +3 sd), and ``features_`` (the
    :class:`avatar.latent.features.FeatureTransform` the model was fitted
    through, or None for a model fitted on a plain matrix).
    """

    kind = ""
    #: learned array names a subclass must set (a few may be optional: ``_optional``)
    _arrays: tuple[str, ...] = ()
    _optional: tuple[str, ...] = ()

    features_ = None

    # -- interface -------------------------------------------------------
    def fit(self, X, y=None, basis=None):  # noqa: ARG002 - scikit-learn signature
        """Learn from X (n, d) float; returns self. ``basis``: an already fitted :class:`PCA` of the
        same X with at least as many components as this model projects onto (saves refitting it)."""
        X = _as_matrix(X)
        self._check_k(X)
        self.n_features_in_ = X.shape[1]
        if self._fit(X, basis) is not False:   # False: _fit set code_mean_ / code_std_ itself
            self._code_stats(self._encode(X))
        return self

    def fit_transform(self, X, y=None, basis=None):  # noqa: ARG002
        return self.fit(X, basis=basis).transform(X)

    def transform(self, X) -> np.ndarray:
        """X (n, d) -> codes (n, k) float64."""
        X = self._check_in(X)
        return self._encode(X)

    def inverse_transform(self, Z) -> np.ndarray:
        """codes (n, k) -> X_hat (n, d) float64."""
        Z = np.atleast_2d(np.asarray(Z, np.float64))
        self._check_fitted()
        if Z.ndim != 2 or Z.shape[1] != self.n_components:
            raise ValueError(f"expected codes of shape (n, {self.n_components}), got {Z.shape}")
        return self._decode(Z)

    def score_error(self, X) -> float:
        """Mean squared reconstruction error per feature of X (n, d)."""
        X = self._check_in(X)
        return float(np.mean((self.inverse_transform(self.transform(X)) - X) ** 2))

    # -- state for persistence -----------------------------------------------
    def learned(self) -> dict[str, np.ndarray]:
        """Every learned array (what persist writes), by name without the trailing ``_``."""
        self._check_fitted()
        out = {"code_mean": self.code_mean_, "code_std": self.code_std_,
               "n_features_in": np.asarray(self.n_features_in_, np.int64)}
        for name in self._arrays:
            value = getattr(self, name + "_", None)
            if value is None and name in self._optional:
                continue
            out[name] = np.asarray(value)
        return out

    def set_learned(self, arrays: dict[str, np.ndarray]) -> "LatentModel":
        """The inverse of :meth:`learned`; ValueError if an array is missing or inconsistent."""
        need = set(self._arrays) - set(self._optional) | {"code_mean", "code_std", "n_features_in"}
        missing = sorted(need - set(arrays))
        if missing:
            raise ValueError(f"missing arrays {', '.join(missing)}")
        extra = sorted(set(arrays) - set(self._arrays) - {"code_mean", "code_std", "n_features_in"})
        if extra:
            raise ValueError(f"unexpected arrays {', '.join(extra)}")
        for name, value in arrays.items():
            if name == "n_features_in":
                self.n_features_in_ = int(value)
            else:
                setattr(self, name + "_", value)
        k = self.n_components
        if self.code_mean_.shape != (k,) or self.code_std_.shape != (k,):
            raise ValueError(f"code_mean/code_std must have shape ({k},)")
        self._check_state()
        return self

    # -- helpers for subclasses -------------------------------------------
    def _check_k(self, X: np.ndarray) -> None:
        k, (n, d) = self.n_components, X.shape
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"n_components must be a whole number >= 1, got {k!r}")
        if k > min(n, d):
            raise ValueError(f"n_components = {k} is more than the data allow: min(n_samples = {n}, "
                             f"n_features = {d}) = {min(n, d)}")

    def _check_fitted(self) -> None:
        if not hasattr(self, "code_std_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet; call fit(X) first")

    def _check_in(self, X) -> np.ndarray:
        self._check_fitted()
        X = _as_matrix(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} features, got {X.shape[1]}")
        return X

    def _check_state(self) -> None:
        """Shapes of the learned arrays agree with each other (subclasses add their checks)."""

    def _code_stats(self, Z: np.ndarray) -> None:
        self.code_mean_ = Z.mean(axis=0)
        std = Z.std(axis=0)
        self.code_std_ = np.where(std > 0, std, 1.0)  # a dead code still gets a usable slider scale

    def _basis(self, X: np.ndarray, r: int, basis) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean (d,), components (r, d), explained variance (r,)) of a PCA of X, reusing ``basis``."""
        if basis is not None and basis.n_components >= r and basis.n_features_in_ == X.shape[1]:
            return basis.mean_, basis.components_[:r], basis.explained_variance_[:r]
        p = PCA(n_components=r, random_state=self.random_state).fit(X)
        return p.mean_, p.components_, p.explained_variance_


def _project(X: np.ndarray, mean: np.ndarray, M: np.ndarray, rows: int = 256) -> np.ndarray:
    """(X - mean) @ M.T as float64, X (n, d), M (k, d): in row blocks, so no centred copy of X is made."""
    out = np.empty((len(X), len(M)))
    MT = np.ascontiguousarray(M.T)
    for i in range(0, len(X), rows):
        out[i:i + rows] = (np.asarray(X[i:i + rows], np.float64) - mean) @ MT
    return out


def _as_matrix(X) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-d array (n_samples, n_features), got shape {X.shape}")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    for i in range(0, len(X), 1024):  # in row blocks: a boolean copy of a big X would be 1/4 of it
        if not np.isfinite(X[i:i + 1024]).all():
            raise ValueError("X contains NaN or infinity")
    return X


def _rng_int(random_state) -> int | None:
    """A seed scikit-learn accepts, from None, an int or a Generator."""
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    return random_state


def unmix(U: np.ndarray, fun: str = "logcosh", max_iter: int = 1000, tol: float = 1e-4, random_state=None):
    """FastICA of U (n, k): (unmixing (k, k), mixing (k, k), mean (k,), iterations), the components
    sorted by the variance they explain (FastICA's own order is arbitrary), so that
    ``(U - mean) @ unmixing.T`` are unit-variance independent components and ``Z @ mixing.T + mean``
    maps them back."""
    from sklearn.decomposition import FastICA

    ica = FastICA(n_components=U.shape[1], whiten="unit-variance", fun=fun, max_iter=max_iter, tol=tol,
                  random_state=_rng_int(random_state))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a ConvergenceWarning is reported by the iteration count
        ica.fit(np.asarray(U, np.float64))
    W, A = ica.components_, ica.mixing_
    order = np.argsort(-(A ** 2).sum(axis=0), kind="stable")
    return W[order], A[:, order], ica.mean_, int(ica.n_iter_)


# -- PCA -------------------------------------------------------------------------
class PCA(LatentModel):
    """Principal components by a randomized SVD of the centred data (in memory).

    Learned: ``mean_`` (d,), ``components_`` (k, d) orthonormal rows,
    ``explained_variance_`` (k,), ``explained_variance_ratio_`` (k,) (of the
    data's total variance, ``total_variance_``), ``singular_values_`` (k,).
    ``iterated_power``: power iterations of the randomized solver (4 is
    plenty for the fast-decaying spectra of meshes).
    """

    kind = "pca"
    _arrays = ("mean", "components", "explained_variance", "explained_variance_ratio", "singular_values",
               "total_variance")

    def __init__(self, n_components: int = 32, random_state=None, iterated_power: int = 4):
        self.n_components = n_components
        self.random_state = random_state
        self.iterated_power = iterated_power

    def _fit(self, X, basis):
        from .linalg import column_stats, pca_svd

        k = self.n_components
        if basis is not None and type(basis) in (PCA, IncrementalPCA) and basis.n_components >= k \
                and basis.n_features_in_ == X.shape[1]:
            # the leading k components of a larger PCA of the same X are this PCA: reuse them
            for name in ("mean", "total_variance"):
                setattr(self, name + "_", getattr(basis, name + "_"))
            for name in ("components", "explained_variance", "explained_variance_ratio", "singular_values"):
                setattr(self, name + "_", getattr(basis, name + "_")[:k].copy())
            return
        n = len(X)
        mean, total = column_stats(X)
        rng = np.random.default_rng(_rng_int(self.random_state))
        sv, Vt = pca_svd(X, k, mean, n_iter=self.iterated_power, rng=rng)
        self.mean_ = mean
        self.components_ = Vt
        self.singular_values_ = sv
        self.explained_variance_ = sv ** 2 / max(n - 1, 1)
        self.total_variance_ = np.asarray(total, np.float64)
        self.explained_variance_ratio_ = self.explained_variance_ / total if total > 0 else np.zeros(k)
        # the training codes are U S: mean 0, std s / sqrt(n) (no pass over X needed)
        self.code_mean_ = np.zeros(k)
        std = sv / np.sqrt(n)
        self.code_std_ = np.where(std > 0, std, 1.0)
        return False

    def _encode(self, X):
        return _project(X, self.mean_, self.components_)

    def _decode(self, Z):
        return Z @ self.components_ + self.mean_

    def _check_state(self):
        k, d = self.n_components, self.n_features_in_
        if self.components_.shape != (k, d) or self.mean_.shape != (d,):
            raise ValueError(f"components must be ({k}, {d}) and mean ({d},)")


class IncrementalPCA(PCA):
    """PCA learned batch by batch (``partial_fit``), for data larger than memory.

    ``fit(X)`` walks X (any array-like with row slicing: numpy, zarr, dask)
    in ``batch_size`` rows; :meth:`fit_batches` takes any iterable of
    (rows, d) blocks, e.g. :func:`avatar.latent.features.iter_features`
    streaming from a dataset store. Only one batch and the current basis are
    in memory. ``code_std_`` is ``sqrt(explained_variance_)`` (the codes'
    standard deviation under the learned basis; no second pass).
    """

    kind = "incremental_pca"

    def __init__(self, n_components: int = 32, random_state=None, batch_size: int = 512):
        self.n_components = n_components
        self.random_state = random_state
        self.batch_size = batch_size

    def fit(self, X, y=None, basis=None):  # noqa: ARG002
        n = len(X)
        return self.fit_batches((np.asarray(X[i:i + self.batch_size]) for i in range(0, n, self.batch_size)))

    def fit_batches(self, batches) -> "IncrementalPCA":
        """Learn from an iterable of (rows, d) float arrays; returns self."""
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, (int, np.integer)) \
                or self.batch_size < 1:
            raise ValueError(f"batch_size must be a whole number >= 1, got {self.batch_size!r}")
        k = self.n_components
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"n_components must be a whole number >= 1, got {k!r}")
        self._n_seen = 0
        for B in _rebatch(batches, k):
            self.partial_fit(B)
        if self._n_seen == 0:
            raise ValueError("no data: the batches were empty")
        return self

    def partial_fit(self, B, y=None) -> "IncrementalPCA":  # noqa: ARG002
        """Update the basis with one batch B (rows >= n_components, d) (Ross et al. 2008, as scikit-learn)."""
        from .linalg import flip_signs, wide_svd

        B = _as_matrix(B)
        k, (nb, d) = self.n_components, B.shape
        seen = getattr(self, "_n_seen", 0)
        if seen == 0:
            if k > d:
                raise ValueError(f"n_components = {k} is more than the {d} features")
            self.n_features_in_ = d
            self._sum, self._sumsq = np.zeros(d), np.zeros(d)
        elif d != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} features, got {d}")
        if nb < k:
            raise ValueError(f"a batch needs at least n_components = {k} rows, got {nb}")
        batch_sum = B.sum(axis=0, dtype=np.float64)
        batch_mean = batch_sum / nb
        total = seen + nb
        # one float64 matrix: old basis (scaled), new centred rows, the shift between the two means
        old = 0 if seen == 0 else k
        stack = np.empty((old + nb + (seen > 0), d))
        stack[old:old + nb] = B
        stack[old:old + nb] -= batch_mean
        if seen:
            stack[:k] = self.singular_values_[:, None] * self.components_
            stack[-1] = np.sqrt(seen * nb / total) * (self._sum / seen - batch_mean)
        self._sum += batch_sum
        self._sumsq += np.einsum("ij,ij->j", B, B, dtype=np.float64)
        _, S, Vt = wide_svd(stack, k)
        del stack
        _, Vt = flip_signs(None, Vt)
        self._n_seen = total
        self.mean_ = self._sum / total
        var_total = float(np.maximum(self._sumsq - total * self.mean_ ** 2, 0.0).sum() / max(total - 1, 1))
        self.components_ = Vt
        self.singular_values_ = S[:k]
        self.explained_variance_ = S[:k] ** 2 / max(total - 1, 1)
        self.total_variance_ = np.asarray(var_total, np.float64)
        self.explained_variance_ratio_ = self.explained_variance_ / var_total if var_total > 0 else np.zeros(k)
        ev = self.explained_variance_
        self.code_mean_ = np.zeros(k)
        self.code_std_ = np.where(ev > 0, np.sqrt(np.maximum(ev, 0.0)), 1.0)
        return self


def _rebatch(batches, min_rows: int):
    """Yield the batches, merging any with fewer than ``min_rows`` rows into a neighbour
    (scikit-learn's partial_fit needs at least n_components rows per call)."""
    held = None
    for B in batches:
        B = np.asarray(B)
        if len(B) == 0:
            continue
        if held is not None and len(held) < min_rows:
            held = np.concatenate([held, B])
            continue
        if held is not None and len(B) < min_rows:
            held = np.concatenate([held, B])  # a short batch rides with the one before
            continue
        if held is not None:
            yield held
        held = B
    if held is not None:
        if len(held) < min_rows:
            raise ValueError(f"only {len(held)} samples in all; need at least n_components = {min_rows}")
        yield held


# -- ICA -------------------------------------------------------------------------
class ICA(LatentModel):
    """FastICA in the first k principal components (k = n_components).

    The data are projected onto a k-component PCA basis, whitened and
    unmixed by scikit-learn's FastICA. Components are sorted by the variance
    they explain and signed so that each one's largest loading is positive
    (FastICA's own order and signs are arbitrary). Codes have unit variance.
    Learned: ``mean_`` (d,), ``basis_`` (k, d), ``unmixing_`` (k, k),
    ``mixing_`` (k, k), ``ica_mean_`` (k,); ``components_`` (k, d) is the
    mixing in feature space (X ~ Z @ components_ + mean).
    """

    kind = "ica"
    _arrays = ("mean", "basis", "unmixing", "mixing", "ica_mean")

    def __init__(self, n_components: int = 32, random_state=None, max_iter: int = 1000, tol: float = 1e-4,
                 fun: str = "logcosh"):
        self.n_components = n_components
        self.random_state = random_state
        self.max_iter = max_iter
        self.tol = tol
        self.fun = fun

    def _fit(self, X, basis):
        k = self.n_components
        self.mean_, self.basis_, _ = self._basis(X, k, basis)
        U = _project(X, self.mean_, self.basis_)
        W, A, self.ica_mean_, self.n_iter_ = unmix(U, fun=self.fun, max_iter=self.max_iter, tol=self.tol,
                                                   random_state=self.random_state)
        sign = largest_positive(A.T @ self.basis_)
        self.unmixing_ = W * sign[:, None]
        self.mixing_ = A * sign[None, :]

    @property
    def components_(self) -> np.ndarray:
        return self.mixing_.T @ self.basis_

    def _encode(self, X):
        return (_project(X, self.mean_, self.basis_) - self.ica_mean_) @ self.unmixing_.T

    def _decode(self, Z):
        return (Z @ self.mixing_.T + self.ica_mean_) @ self.basis_ + self.mean_

    def _check_state(self):
        k, d = self.n_components, self.n_features_in_
        if self.basis_.shape != (k, d) or self.unmixing_.shape != (k, k) or self.mixing_.shape != (k, k) \
                or self.mean_.shape != (d,) or self.ica_mean_.shape != (k,):
            raise ValueError("ICA arrays have inconsistent shapes")


# -- factor analysis ----------------------------------------------------------------
class FactorAnalysis(LatentModel):
    """Factor analysis: X = Z @ loadings + mean + noise, Z ~ N(0, I), noise ~ N(0, diag(noise_variance)).

    scikit-learn's EM algorithm (the SVD form of Barber, 21.2.33), run on a
    rank-``pre_components`` PCA of the data plus its exact per-feature
    variances: each iteration then costs a (r, r) eigenproblem over d features
    instead of an SVD of the whole (n, d) matrix, and the result equals
    scikit-learn's when r reaches the data's rank. (Fitting in the PCA
    coordinates instead would be wrong: their covariance is already
    diagonal, so the factors would explain nothing.) Codes are the posterior
    means E[z | x]. ``tol``: stop when an iteration raises the log-likelihood by
    less than ``tol`` times its magnitude (scikit-learn's tol is absolute).
    Learned: ``mean_`` (d,), ``components_`` (k, d) loadings,
    ``noise_variance_`` (d,), ``n_iter_``, ``loglike_`` (per iteration).
    """

    kind = "factor_analysis"
    _arrays = ("mean", "components", "noise_variance")

    def __init__(self, n_components: int = 32, random_state=None, max_iter: int = 200, tol: float = 1e-6,
                 pre_components: int = 128):
        self.n_components = n_components
        self.random_state = random_state
        self.max_iter = max_iter
        self.tol = tol
        self.pre_components = pre_components

    def _fit(self, X, basis):
        n, d = X.shape
        k = self.n_components
        r = max(k, min(self.pre_components, n - 1, d))
        self.mean_, B, ev = self._basis(X, r, basis)
        B = np.asarray(B, np.float64)
        D = np.asarray(ev, np.float64) * (n - 1) / n         # score variances, ddof 0 like scikit-learn
        var = np.zeros(d)
        for i in range(0, n, 256):                             # exact per-feature variances, in row blocks
            C = np.asarray(X[i:i + 256], np.float64) - self.mean_
            var += np.einsum("ij,ij->j", C, C)
        var /= n
        Bs = B * np.sqrt(D)[:, None]          # (r, d): X_c^T X_c / n = Bs^T Bs on the basis
        with one_blas_thread():   # many mid-sized products: idle BLAS threads cost more than they give
            self._em(Bs, var, n)

    def _em(self, Bs: np.ndarray, var: np.ndarray, n: int) -> None:
        """EM iterations on the scaled basis Bs (r, d) and the per-feature variances var (d,)."""
        k, d = self.n_components, Bs.shape[1]
        small = 1e-12
        const = d * np.log(2.0 * np.pi) + k
        psi = np.ones(d)
        old, self.loglike_ = -np.inf, []
        W = np.zeros((k, d))
        it = 0
        for it in range(self.max_iter):
            # the SVD of X_c / sqrt(psi n) from the (r, r) matrix Bs diag(1/psi) Bs^T
            L, E = np.linalg.eigh((Bs / psi) @ Bs.T)
            L, E = np.maximum(L[::-1][:k], small), E[:, ::-1][:, :k]
            W = (np.sqrt(np.maximum(L - 1.0, 0.0) / L)[:, None] * E.T) @ Bs      # (k, d) loadings
            ll = -n / 2 * (const + np.sum(np.log(L)) + float(np.sum(var / psi) - np.sum(L)) + np.sum(np.log(psi)))
            self.loglike_.append(ll)
            psi = np.maximum(var - np.einsum("kd,kd->d", W, W), small)
            if ll - old < self.tol * abs(ll):   # relative: log-likelihoods of meshes run to 1e9
                break
            old = ll
        self.components_ = W
        self.noise_variance_ = psi
        self.n_iter_ = it + 1

    def _encode(self, X):
        Wpsi = self.components_ / self.noise_variance_
        cov_z = np.linalg.inv(np.eye(self.n_components) + Wpsi @ self.components_.T)
        return _project(X, self.mean_, Wpsi) @ cov_z

    def _decode(self, Z):
        return Z @ self.components_ + self.mean_

    def _check_state(self):
        k, d = self.n_components, self.n_features_in_
        if self.components_.shape != (k, d) or self.noise_variance_.shape != (d,) or self.mean_.shape != (d,):
            raise ValueError("factor-analysis arrays have inconsistent shapes")


# -- autoencoder -----------------------------------------------------------------------
class MLPWeights:
    """Dense tanh layers on PCA inputs, stored as ``weights_`` / ``biases_``, saved as arrays ``w0, b0, w1, ...``.

    Shared by the autoencoder and the VAE. The input X (n, d) is projected on
    its first r principal components (``basis_`` (r, d), ``mean_`` (d,)) and
    divided by one global scale ``scale_`` (the first component's standard
    deviation: a single factor, so the squared error on these inputs stays
    proportional to the feature-space squared error instead of inflating
    noise directions). Each layer is ``H @ W + b`` with W (in, out), b (out,).
    """

    def _inputs(self, X: np.ndarray, basis) -> np.ndarray:
        """Learn ``mean_``, ``basis_``, ``scale_``; return the scaled PCA inputs U (n, r) float32."""
        n, d = X.shape
        r = max(self.n_components, min(self.input_components, n - 1, d))
        self.mean_, self.basis_, var = self._basis(X, r, basis)
        self.scale_ = np.asarray(np.sqrt(var[0]) if var[0] > 0 else 1.0, np.float64)
        return (_project(X, self.mean_, self.basis_) / self.scale_).astype(np.float32)

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        """X (n, d) -> the network's inputs (n, r) float64."""
        return _project(X, self.mean_, self.basis_) / self.scale_

    def _hidden(self) -> list[int]:
        return [int(h) for h in self.hidden]

    @staticmethod
    def _layers(H: np.ndarray, weights, biases, tanh_last: bool) -> np.ndarray:
        """Run dense layers on H (n, in): tanh between them, at the end only if ``tanh_last``."""
        for i, (W, b) in enumerate(zip(weights, biases)):
            H = H @ W + b
            if i < len(weights) - 1 or tanh_last:
                H = np.tanh(H)
        return H

    def _decode_from(self, Z, start: int):
        """Codes (n, k) through the layers from ``start`` on (linear output), back to features (n, d)."""
        H = self._layers(Z, self.weights_[start:], self.biases_[start:], tanh_last=False)
        return (H * self.scale_) @ self.basis_ + self.mean_

    def _check_inputs(self) -> None:
        d = self.n_features_in_
        if self.basis_.ndim != 2 or self.basis_.shape[1] != d or self.mean_.shape != (d,) or self.scale_.shape != ():
            raise ValueError(f"{type(self).__name__}: basis, mean or scale has the wrong shape")

    def learned(self):
        out = super().learned()
        for i, (W, b) in enumerate(zip(self.weights_, self.biases_)):
            out[f"w{i}"], out[f"b{i}"] = W, b
        return out

    def set_learned(self, arrays):
        arrays = dict(arrays)
        n_layers = len([k for k in arrays if k.startswith("w") and k[1:].isdigit()])
        try:
            self.weights_ = [arrays.pop(f"w{i}") for i in range(n_layers)]
            self.biases_ = [arrays.pop(f"b{i}") for i in range(n_layers)]
        except KeyError as err:
            raise ValueError(f"missing array {err.args[0]}") from None
        return super().set_learned(arrays)


def _squared_error(net, x, noise, training):  # noqa: ARG001 - the nets.train loss signature
    """Per-sample summed squared error (b,) of an autoencoder's reconstruction of x (b, r)."""
    return ((net(x) - x) ** 2).sum(dim=1)


class Autoencoder(Unmixed, MLPWeights, LatentModel):
    """A nonlinear autoencoder trained with PyTorch (:mod:`avatar.latent.nets`), PCA-k plus a learned correction.

    Parameters
    ----------
    n_components : int
        k, the width of the code.
    hidden : sequence of int
        Widths of the encoder's tanh layers; the decoder mirrors them.
    epochs, batch_size, learning_rate, patience, validation_fraction, device
        Training by minibatch Adam with early stopping on a held-out
        validation part (``epochs`` is the maximum); see :func:`avatar.latent.nets.train`.
    alpha : float
        L2 weight decay (torch Adam's ``weight_decay``). The name is
        scikit-learn's, whose MLPRegressor the first autoencoder used; existing
        configs keep it.
    input_components : int
        r, the principal components the network sees (the rest of X is lost).
    rotate : {"none", "ica"}
        "ica": the codes are the independent components of the network's codes
        (:class:`avatar.latent.rotation.Unmixed`). Default "none".

    The network works on U, the first r principal components of X divided by
    one global scale (see :class:`MLPWeights`), and minimises the summed
    squared error per avatar on U (the feature-space squared error over
    ``scale_**2``). Encoder and decoder each have a linear skip path::

        code  = U[:, :k] + E(U)               E: r -> hidden -> k      (tanh, linear last)
        U_hat = [code, 0, ..., 0] + D(code)   D: k -> hidden[::-1] -> r (tanh, linear last)

    The skip paths are PCA-k itself, and the last layers of E and D start at
    zero, so training starts from PCA-k's reconstruction and learns only the
    nonlinear correction. (On the macro known answer a plain tanh stack was
    still at 1.05-1.46x PCA-k's error after 300 epochs; with the skip paths
    100 epochs give 0.50-0.62x; see docs/latent.md.) With
    ``hidden=()`` E and D are linear and the model stays a linear
    autoencoder, no better than PCA-k. The code is linear (no tanh):
    unbounded coordinates on PCA's scale, so extreme avatars are not squashed
    together, which would bend the code-slider relations the compare step
    measures. Models saved before this design (a plain stack with a tanh
    code) have no ``skip`` array; they load as such and encode as they did.

    Learned: ``mean_`` (d,), ``basis_`` (r, d), ``scale_`` (), ``weights_`` /
    ``biases_`` (E's layers then D's; W (in, out), b (out,); stored as ``w0``,
    ``b0``, ...), ``skip_`` (1), and from training ``loss_curve_``,
    ``validation_curve_``, ``n_epochs_``, ``best_epoch_``, ``device_``,
    ``epoch_seconds_``.
    """

    kind = "autoencoder"
    _arrays = ("mean", "basis", "scale", "skip") + Unmixed.ARRAYS
    _optional = ("skip",) + Unmixed.ARRAYS

    def __init__(self, n_components: int = 16, random_state=None, hidden=(128, 128), epochs: int = 200,
                 batch_size: int = 64, learning_rate: float = 1e-3, alpha: float = 0.0,
                 input_components: int = 256, patience: int = 20, validation_fraction: float = 0.1,
                 device: str = "cpu", rotate: str = "none"):
        self.rotate = rotate
        self.n_components = n_components
        self.random_state = random_state
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.alpha = alpha
        self.input_components = input_components
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device

    def _fit(self, X, basis):
        from . import nets

        torch = nets.import_torch("the autoencoder")
        self._check_rotate()
        U = self._inputs(X, basis)
        h, k, r = self._hidden(), self.n_components, U.shape[1]
        tanh = [True] * len(h) + [False]

        def build():
            return torch.nn.Sequential(nets.skip_mlp([r] + h + [k], tanh), nets.skip_mlp([k] + h[::-1] + [r], tanh))

        net, hist = nets.train(build, _squared_error, U, epochs=self.epochs, batch_size=self.batch_size,
                               learning_rate=self.learning_rate, weight_decay=self.alpha, patience=self.patience,
                               validation_fraction=self.validation_fraction, random_state=self.random_state,
                               device=self.device, threads=1)
        self.weights_, self.biases_ = nets.dense_arrays([net])
        self.skip_ = np.asarray(1, np.int64)
        nets.record(self, hist)
        self._fit_unmixing(X)

    @property
    def _n_encoder(self) -> int:
        return len(self.weights_) // 2  # E's layers (the plain stack of old files: up to the code)

    @property
    def _skip(self) -> bool:
        return bool(getattr(self, "skip_", 0))   # absent: a file from the plain, tanh-code autoencoder

    def _encode(self, X):
        from .nets import embed

        n, U = self._n_encoder, self._scaled(X)
        H = self._layers(U, self.weights_[:n], self.biases_[:n], tanh_last=not self._skip)
        return self._unmixed(embed(U, self.n_components) + H if self._skip else H)

    def _decode(self, Z):
        from .nets import embed

        n, Z = self._n_encoder, self._net_codes(Z)
        if not self._skip:
            return self._decode_from(Z, n)
        H = embed(Z, self.basis_.shape[0]) + self._layers(Z, self.weights_[n:], self.biases_[n:], tanh_last=False)
        return (H * self.scale_) @ self.basis_ + self.mean_

    def _check_state(self):
        self._check_inputs()
        self._check_unmixing()
        r, h = self.basis_.shape[0], self._hidden()
        sizes = [r] + h + [self.n_components] + h[::-1] + [r]
        if len(self.weights_) != len(sizes) - 1 or len(self.biases_) != len(sizes) - 1:
            raise ValueError("autoencoder: wrong number of layers")
        for W, b, a, c in zip(self.weights_, self.biases_, sizes[:-1], sizes[1:]):
            if W.shape != (a, c) or b.shape != (c,):
                raise ValueError("autoencoder: layer shapes do not match `hidden`")
        if getattr(self, "skip_", None) is not None and int(self.skip_) not in (0, 1):
            raise ValueError("autoencoder: skip must be 0 or 1")


KINDS: dict[str, type[LatentModel]] = {c.kind: c for c in (PCA, IncrementalPCA, ICA, FactorAnalysis, Autoencoder)}
_LAZY = {"vae": "vae", "conv_ae": "conv", "conv_vae": "conv"}   # kind -> module that registers it


def model_class(kind: str) -> type[LatentModel]:
    """The class of a model kind ('pca', 'ica', ...); KeyError for unknown kinds.

    The VAE and the conv models live in their own modules, imported here on
    first use (PyTorch is needed to fit them, not to import, load or run them).
    """
    if kind in _LAZY and kind not in KINDS:
        import importlib

        importlib.import_module(f".{_LAZY[kind]}", __package__)
    return KINDS[kind]
