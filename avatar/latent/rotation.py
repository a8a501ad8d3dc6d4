"""Latent codes turned to their independent components (``rotate: ica``), for the neural models.

A VAE's prior N(0, I), and an autoencoder's loss, are the same however the latent is turned, so a
net may learn every factor yet mix them over its axes (on ``scene-known`` 12 of 20 conv VAEs did,
docs/images.md). Independent non-Gaussian factors (uniform ones are) leave the codes' marginals
non-Gaussian, which is what ICA needs to undo the mixture; it uses no labels.

    W, A, mean, Y = independent_axes(Z, seed)     # Z (n, k) codes -> Y = (Z - mean) @ W.T
    negentropy(Y)                                 # how far from Gaussian: 0 for Gaussian codes

:class:`Unmixed` gives a model the ``rotate`` parameter's learned arrays (``unmixing_``, ``mixing_``,
``ica_mean_``, stored with the model) and the two maps its encode and decode apply.
"""
from __future__ import annotations

import numpy as np

__all__ = ["ROTATIONS", "Unmixed", "independent_axes", "negentropy"]

ROTATIONS = ("none", "ica")   # rotate: the codes as the net makes them, or their independent components


def negentropy(Z: np.ndarray) -> float:
    """How far the codes Z (n, k) are from Gaussian: Hyvarinen's approximation summed over codes,
    sum_j (E[log cosh y_j] - E[log cosh nu])^2 of the standardised codes y_j, nu a standard normal
    (0 for Gaussian codes; independent uniform factors, unmixed, score highest). A constant code adds 0."""
    std = Z.std(axis=0)
    y = (Z - Z.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return float(((np.log(np.cosh(y)).mean(axis=0) - _GAUSS_LOGCOSH) ** 2 * (std > 0)).sum())


def _gauss_logcosh() -> float:
    """E[log cosh nu] of a standard normal nu, by 80-point Gauss-Hermite quadrature (0.3746)."""
    x, w = np.polynomial.hermite_e.hermegauss(80)
    return float((w * np.log(np.cosh(x))).sum() / w.sum())


_GAUSS_LOGCOSH = _gauss_logcosh()
ICA_STARTS = 4   # FastICA starts per net; the most non-Gaussian result is kept


def independent_axes(Z: np.ndarray, seed):
    """The independent components of codes Z (n, k): (unmixing (k, k), mixing (k, k), mean (k,), the
    unmixed codes (n, k)), ``(Z - mean) @ unmixing.T``, unit variance, sorted by the variance they explain
    and signed so that each one's largest mixing weight is positive.

    FastICA with the kurtosis contrast (``fun="cube"``: the codes of uniform factors are sub-Gaussian, and
    on scene-known it converged in 6-40 iterations where log cosh often took 2,000), from ``ICA_STARTS``
    seeds (``seed``, +1, ...), keeping the most non-Gaussian (:func:`negentropy`)."""
    from .linalg import largest_positive
    from .models import unmix

    best = None
    for j in range(ICA_STARTS):
        W, A, mean, _ = unmix(Z, fun="cube", max_iter=2000, tol=1e-6, random_state=None if seed is None else seed + j)
        sign = largest_positive(A.T)
        W, A = W * sign[:, None], A * sign[None, :]
        Y = (Z - mean) @ W.T
        score = negentropy(Y)
        if best is None or score > best[0]:
            best = (score, (W, A, mean, Y))
    return best[1]


class Unmixed:
    """Mixin of the models with a ``rotate`` parameter: ``"none"``, or ``"ica"`` for codes that are the
    independent components of the net's own codes (:func:`independent_axes`).

    Learned with ``rotate="ica"``: ``unmixing_``, ``mixing_`` (k, k) and ``ica_mean_`` (k,); None without.
    A subclass lists :data:`ARRAYS` among its (optional) learned arrays, calls :meth:`_check_rotate` and
    then :meth:`_fit_unmixing` (one net) or :meth:`_set_unmixing` (the kept restart's axes) in its fit,
    :meth:`_unmixed` on its net's codes and :meth:`_net_codes` before decoding, and
    :meth:`_check_unmixing` in its state check. (``models`` imports this module, so the two helpers from
    ``models`` are imported where they are used.)
    """

    ARRAYS = ("unmixing", "mixing", "ica_mean")
    unmixing_ = mixing_ = ica_mean_ = None

    def _check_rotate(self) -> None:
        if self.rotate not in ROTATIONS:
            raise ValueError(f"rotate must be one of {', '.join(ROTATIONS)}, got {self.rotate!r}")

    def _set_unmixing(self, unmixed) -> None:
        """Keep ``independent_axes``' result (None: no rotation)."""
        self.unmixing_, self.mixing_, self.ica_mean_ = (None, None, None) if unmixed is None else unmixed[:3]

    def _fit_unmixing(self, X) -> None:
        """After a single net's training: unmix its codes of X with ``rotate="ica"`` (``_encode`` gives
        the net's own codes while no unmixing is set), seeded by ``random_state``."""
        from .models import _rng_int

        self._set_unmixing(None)
        if self.rotate == "ica":
            self._set_unmixing(independent_axes(self._encode(X), _rng_int(self.random_state)))

    def _unmixed(self, Z: np.ndarray) -> np.ndarray:
        """The net's codes Z (n, k) -> this model's codes."""
        return Z if self.unmixing_ is None else (Z - self.ica_mean_) @ self.unmixing_.T

    def _net_codes(self, Z: np.ndarray) -> np.ndarray:
        """This model's codes Z (n, k) -> the net's own, which its decoder reads."""
        return Z if self.mixing_ is None else Z @ self.mixing_.T + self.ica_mean_

    def _check_unmixing(self) -> None:
        k, rotated = self.n_components, [a is not None for a in (self.unmixing_, self.mixing_, self.ica_mean_)]
        if any(rotated) != (self.rotate == "ica") or not (all(rotated) or not any(rotated)):
            raise ValueError(f"{self.kind}: rotate {self.rotate!r} needs "
                             f"{'the arrays unmixing, mixing and ica_mean' if self.rotate == 'ica' else 'no ICA arrays'}")
        if all(rotated) and (self.unmixing_.shape != (k, k) or self.mixing_.shape != (k, k)
                             or self.ica_mean_.shape != (k,)):
            raise ValueError(f"{self.kind}: the ICA arrays must have shapes ({k}, {k}), ({k}, {k}) and ({k},)")
