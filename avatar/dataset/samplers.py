"""Samplers: which slider values each row of a dataset gets. Pure functions of (config, row index).

Every function here returns rows ``start .. stop-1`` of the dataset's (n, P)
slider matrix and depends only on the seed, the row indices and the config,
never on how the rows are split into shards or workers:

- ``uniform``   each varied slider uniform over its whole range [min, max]
                (integers: each whole number equally likely; bools and
                categories: each value equally likely);
- ``prior``     each varied slider from its own distribution in the rig YAML, or from the
                one the config's ``priors:`` gives it
                (``prior`` varying every slider equals ``rig.sample(n, seed, pose=True)``);
- ``sobol``     a scrambled Sobol sequence (``scipy.stats.qmc.Sobol``, seeded),
                row i is point i; mapped onto [min, max] like ``uniform``;
- ``latin_hypercube``  a Latin hypercube of n points: in every varied slider,
                each of the n equal strata of [0, 1) holds exactly one row.
                The strata are assigned by a keyed pseudo-random permutation
                evaluated per row, so a shard costs O(shard), not O(n);
- ``grid``      a full factorial over the varied sliders (``levels`` values
                each from min to max, every value of bools and categories);
                row i is combination i in C order (the last slider fastest);
- ``traversal`` each varied slider in turn swept from min to max in ``steps``
                while the others stay at the base values.

Random uniforms come in fixed blocks of 4096 rows, block k from
``numpy.random.default_rng([seed, k])`` over all P sliders, as
:meth:`avatar.spec.sliders.RigSpec.sample` draws them (:func:`avatar.spec.sliders.uniforms`).

``correlate`` applies a Gaussian copula to the varied continuous sliders:
uniforms -> normal scores -> times the Cholesky factor -> back to uniforms ->
each slider's inverse CDF. The requested numbers are rank (Spearman)
correlations, which equal the Pearson correlations for uniform marginals; the
Gaussian correlation used is ``2 sin(pi r / 6)``, the one giving exactly that
rank correlation.
"""
from __future__ import annotations

import warnings
from dataclasses import replace
from functools import lru_cache

import numpy as np
from scipy.special import ndtr, ndtri

from avatar.spec.sliders import inverse_cdf, uniforms

_TINY = 2.0 ** -53


# -- building blocks ------------------------------------------------------------
def sobol_points(seed: int, d: int, start: int, stop: int) -> np.ndarray:
    """Rows ``start..stop-1`` of the scrambled Sobol sequence in d dimensions seeded with ``seed``."""
    from scipy.stats import qmc

    eng = qmc.Sobol(d, scramble=True, rng=np.random.default_rng([seed, 0x50B0]))
    if start:
        eng.fast_forward(start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "balance properties": rows of one sequence are taken anyway
        return eng.random(stop - start)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def permute(i: np.ndarray, n: int, key: tuple) -> np.ndarray:
    """A keyed pseudo-random permutation of ``range(n)`` evaluated at indices ``i``.

    A 4-round Feistel network on the smallest even number of bits covering n,
    with cycle walking back into range: a bijection of [0, n) per ``key``,
    computed per index (no O(n) table).
    """
    i = np.asarray(i, dtype=np.uint64)
    bits = max(2, int(n - 1).bit_length())
    half = (bits + 1) // 2
    mask = np.uint64((1 << half) - 1)
    keys = np.random.SeedSequence(list(key)).generate_state(4, np.uint64)

    def once(x):
        left, right = x >> np.uint64(half), x & mask
        for k in keys:
            left, right = right, left ^ (_mix64(right ^ k) & mask)
        return (left << np.uint64(half)) | right

    with np.errstate(over="ignore"):
        y = once(i)
        out = y >= np.uint64(n)
        while out.any():
            y[out] = once(y[out])
            out = y >= np.uint64(n)
    return y.astype(np.int64)


def lhs_points(seed: int, n: int, d: int, start: int, stop: int, jitter: np.ndarray) -> np.ndarray:
    """Rows ``start..stop-1`` of an n-point Latin hypercube in d dims; ``jitter`` (rows, d) in [0, 1)."""
    rows = np.arange(start, stop)
    out = np.empty((stop - start, d))
    for j in range(d):
        out[:, j] = (permute(rows, n, (seed, 0x1A5, j)) + jitter[:, j]) / n
    return out


def box_value(s, u: np.ndarray) -> np.ndarray:
    """Uniforms (m,) -> slider values spread evenly over the slider's whole range."""
    if s.kind == "continuous":
        return s.min + u * (s.max - s.min)
    if s.kind == "integer":
        return np.clip(np.floor(s.min + u * (s.max - s.min + 1)), s.min, s.max)
    count = 2 if s.kind == "bool" else len(s.categories)
    return np.minimum(np.floor(u * count), count - 1)


def grid_values(s, levels: int) -> np.ndarray:
    """The values a grid takes on slider ``s``: ``levels`` from min to max; every value of bools/categories."""
    return s.sweep(levels)


def traversal_counts(spec, varied: list[str], steps: int) -> list[int]:
    """Rows of each varied slider's sweep."""
    return [len(grid_values(spec.sliders[spec.index(name)], steps)) for name in varied]


def correlation_matrix(correlate: dict, varied: list[str]) -> tuple[list[str], np.ndarray]:
    """(sliders involved, in ``varied`` order; their Gaussian-copula correlation matrix).

    Raises ValueError with a readable message when the requested correlations
    cannot hold together (the matrix is not positive definite).
    """
    names = [v for v in varied if v in correlate or any(v in row for row in correlate.values())]
    idx = {v: i for i, v in enumerate(names)}
    R = np.eye(len(names))
    for a, row in correlate.items():
        for b, r in row.items():
            g = 2.0 * np.sin(np.pi * float(r) / 6.0)
            R[idx[a], idx[b]] = R[idx[b], idx[a]] = g
    try:
        np.linalg.cholesky(R)
    except np.linalg.LinAlgError:
        w = np.linalg.eigvalsh(R)
        raise ValueError(
            f"the correlations among {', '.join(names)} cannot all hold at once (their correlation matrix "
            f"is not positive definite: smallest eigenvalue {w.min():.3f}); weaken some of them") from None
    return names, R


# -- the plan -----------------------------------------------------------------------
class Sampler:
    """Rows of a dataset's slider matrix for a :class:`~avatar.dataset.config.DatasetConfig` and its rig spec.

    ``Sampler(config, spec).rows(start, stop)`` is a pure function of the
    config, the spec and the row range.
    """

    def __init__(self, config, spec):
        self.config, self.spec = config, spec
        names = spec.slider_names
        self.base = spec.to_vector(config.base)
        self.varied = [names.index(v) for v in config.varied]
        self.cols = {v: j for j, v in enumerate(config.varied)}  # slider -> column among varied
        # the dataset's own priors (``priors:``) in place of the rig's distributions
        self.priors = {j: replace(spec.sliders[j], distribution=d)
                       for j, d in ((names.index(v), d) for v, d in config.priors.items())}
        self.copula = None
        if config.correlate:
            cnames, R = correlation_matrix(config.correlate, config.varied)
            self.copula = ([self.cols[c] for c in cnames], np.linalg.cholesky(R))
        if config.sampler == "grid":
            self.axes = [grid_values(spec.sliders[j], config.levels[spec.sliders[j].name]) for j in self.varied]
        if config.sampler == "traversal":
            self.sweeps = [grid_values(spec.sliders[j], config.steps) for j in self.varied]
            self.offsets = np.cumsum([0] + [len(v) for v in self.sweeps])

    def rows(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """(stop-start, P) float64 slider values of rows ``start .. stop-1``, in array units."""
        n = self.config.n
        stop = n if stop is None else stop
        if not 0 <= start <= stop <= n:
            raise ValueError(f"rows {start}:{stop} outside 0:{n}")
        out = np.repeat(self.base[None], stop - start, axis=0)
        if not self.varied:
            return out
        kind = self.config.sampler
        if kind == "grid":
            digits = np.unravel_index(np.arange(start, stop), [len(a) for a in self.axes])
            for j, axis, d in zip(self.varied, self.axes, digits):
                out[:, j] = axis[d]
            return out
        if kind == "traversal":
            i = np.arange(start, stop)
            which = np.searchsorted(self.offsets, i, side="right") - 1
            for w in np.unique(which):
                sel = which == w
                out[sel, self.varied[w]] = self.sweeps[w][i[sel] - self.offsets[w]]
            return out
        u_all = self.spec.uniforms(self.config.seed, start, stop)
        u = u_all[:, self.varied]
        if kind == "sobol":
            u = sobol_points(self.config.seed, len(self.varied), start, stop)
        elif kind == "latin_hypercube":
            u = lhs_points(self.config.seed, n, len(self.varied), start, stop, u)
        if self.copula is not None:
            cols, L = self.copula
            z = ndtri(np.clip(u[:, cols], _TINY, 1.0 - _TINY))
            # row by row arithmetic (not BLAS, whose one-row gemv rounds differently from gemm):
            # a row's values must not depend on the batch it is drawn in
            u[:, cols] = np.clip(ndtr((z[:, None, :] * L[None, :, :]).sum(axis=2)), 0.0, 1.0 - _TINY)
        for c, j in enumerate(self.varied):
            s = self.priors.get(j, self.spec.sliders[j])
            out[:, j] = inverse_cdf(s, u[:, c]) if kind == "prior" else box_value(s, u[:, c])
        return out


def sample(config, start: int = 0, stop: int | None = None, spec=None) -> np.ndarray:
    """(rows, P) slider values of rows ``start..stop-1`` of the dataset ``config`` describes (no meshes).

    ``config``: a :class:`DatasetConfig` or a path to a dataset YAML.
    """
    from .config import DatasetConfig, load_config

    if not isinstance(config, DatasetConfig):
        config = load_config(config, store="")
    if spec is None:
        spec = spec_from_text(config.rig_text, config.rig)
    return Sampler(config, spec).rows(start, stop)


@lru_cache(maxsize=8)
def spec_from_text(text: str, name: str = "<rig>"):
    """A RigSpec from rig YAML text (what a store records); RigSpecs are immutable, so cached."""
    from avatar.spec.config import Problems, parse_yaml_lenient
    from avatar.spec.sliders import rig_spec_from_data

    data, lines, dup = parse_yaml_lenient(text, name)
    return rig_spec_from_data(data, Problems(name, lines, dup), source=name)


__all__ = ["Sampler", "box_value", "correlation_matrix", "grid_values", "lhs_points", "permute", "sample",
           "sobol_points", "spec_from_text", "traversal_counts", "uniforms"]
