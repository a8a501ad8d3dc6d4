"""The rig's local part as one constant matrix: the exact Jacobian of the linear sliders.

The rest shape is ``X = T + F @ D + W(macros) @ Dm`` (:mod:`avatar.body.rig`), with ``F`` the
local fields' strengths (``rig.features``). For every continuous slider that is neither a macro
nor a pose slider, ``F`` is linear on each side of the slider's default: its *up* strength
``u = (s - default) / (max - default)`` and its *down* strength ``d = (default - s) /
(default - min)``, both in [0, 1], weigh fixed fields (an expression unit's three ethnic fields
by the ethnic shares). So in the coordinates of the sides, the body's rest vertices are exactly
linear (up to the floor shift, a uniform move along y), and their Jacobian is

    J_local = D.T @ C        (3 N_body, Q)

with ``D`` (K, 3 N_body) the rig's field matrix on the body's vertices (constant per rig) and
``C`` (K, Q) = dF/d(side strengths): one-hot per side, except the expression units, whose columns
hold the ethnic shares. ``G = D D^T`` (K, K) is constant, so the local block of the normal
matrix ``C^T G C`` costs one small product, whatever the vertex count.

Built once per rig (about 0.3 s) and cached in a weak dictionary keyed by the rig.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from avatar.body import assets

_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


@dataclass(frozen=True, eq=False)
class LocalBasis:
    """The rig's linear sliders as side strengths, and their fields on the body's vertices.

    Attributes
    ----------
    D : scipy.sparse.csr_matrix (K, 3 N_body) float64
        Field ``k``'s displacement of body vertex ``i``, coordinate ``c`` at column ``3 i + c``
        (metres per unit strength); K is the rig's feature count (the rest row is left zero).
    G : (K, K) float64
        ``D @ D.T``.
    sliders : (P_lin,) int
        The linear sliders' columns in the slider vector.
    side_slider : (Q,) int
        Each side's slider column (a slider's up side first, then its down side).
    side_up : (Q,) bool
        Whether the side lies above the default.
    side_span : (Q,) float64
        Slider units per unit strength: ``max - default`` (up) or ``default - min`` (down).
    side_default : (Q,) float64
        The slider's default.
    duplicates : tuple of tuples of int
        Groups of sliders with identical fields on every side (MakeHuman ships a few modifiers twice,
        under two names): the data sees only their sum.
    ends : (K, 6 J) float64
        Each field's move of the skeleton's rest bone ends, heads and tails interleaved as in
        ``rig.rest_ends`` (the regressor on the blended joint cubes and vertices): what posing needs
        beyond the vertices' own moves (the heads carry the limbs, and head and tail turn the bone).
    """

    D: "scipy.sparse.csr_matrix"
    G: np.ndarray
    sliders: np.ndarray
    side_slider: np.ndarray
    side_up: np.ndarray
    side_span: np.ndarray
    side_default: np.ndarray
    duplicates: tuple = ()
    ends: np.ndarray | None = None

    @property
    def heads(self) -> np.ndarray:
        """(K, 3 J) float64: each field's move of the rest bone heads (the even rows of ``ends``)."""
        K = self.ends.shape[0]
        return self.ends.reshape(K, -1, 2, 3)[:, :, 0].reshape(K, -1)

    @property
    def n_sides(self) -> int:
        return len(self.side_slider)

    def sides_of(self, S: np.ndarray) -> np.ndarray:
        """(Q,) or (n, Q) side strengths in [0, 1] of slider values ``S`` (P,) or (n, P); of each
        slider's two sides, at most one is non-zero."""
        sign = np.where(self.side_up, 1.0, -1.0)
        return np.clip(sign * (S[..., self.side_slider] - self.side_default) / self.side_span, 0.0, 1.0)

    def values_of(self, sides: np.ndarray, S: np.ndarray) -> np.ndarray:
        """(P,) copy of ``S`` whose linear sliders are ``default + up * span_up - down * span_down``."""
        out = np.array(S, np.float64, copy=True)
        out[self.side_slider] = self.side_default
        np.add.at(out, self.side_slider, np.where(self.side_up, 1.0, -1.0) * sides * self.side_span)
        return out

    def mixing(self, rig, S: np.ndarray) -> np.ndarray:
        """``C`` (K, Q) float64: dF/d(side strengths) at slider values ``S`` (P,).

        Exact for any ``S``: ``rig.features`` at each side's full strength minus at the default
        (only the ethnic shares of ``S`` matter)."""
        base = np.array(S, np.float64, copy=True)
        base[self.side_slider] = self.side_default
        rows = np.repeat(base[None], self.n_sides, axis=0)
        rows[np.arange(self.n_sides), self.side_slider] = self.side_default + np.where(
            self.side_up, 1.0, -1.0) * self.side_span
        C = (rig.features(rows).astype(np.float64) - rig.features(base[None]).astype(np.float64)).T
        C[-1] = 0.0  # the rest row
        return C


def linear_sliders(rig) -> np.ndarray:
    """(P,) bool: the sliders linear per side (continuous or integer, moving the mesh, neither a
    macro nor a pose slider)."""
    return np.array([s.kind in ("continuous", "integer") and s.moves_mesh and not s.macro and not s.pose
                     for s in rig.sliders])


def local_basis(rig) -> LocalBasis:
    """The :class:`LocalBasis` of ``rig``, built on first use and cached with the rig."""
    basis = _CACHE.get(rig)
    if basis is None:
        basis = _CACHE[rig] = _build(rig)
    return basis


def ends_matrix(rig) -> np.ndarray:
    """(K, 6 J) float64: each field's move of the rest bone ends (``rig.rest_ends(S)``, heads in the even
    rows, tails in the odd ones, flattened)."""
    index, weight = rig._end_index, rig._end_weight.astype(np.float64)   # (2J, w)
    rows = np.unique(index)
    D = field_matrix(rig, rows)                                   # (K, 3 len(rows))
    pos = np.searchsorted(rows, index)
    out = np.zeros((D.shape[0], len(index), 3))
    Dd = D.toarray().reshape(D.shape[0], len(rows), 3)
    for k in range(index.shape[1]):
        out += Dd[:, pos[:, k]] * weight[None, :, k, None]
    return out.reshape(D.shape[0], -1)


def field_matrix(rig, rows=None) -> "scipy.sparse.csr_matrix":
    """(K, 3 N_body) float64 sparse: the rig's local fields on the body's rest vertices.

    Read from the rig's blend (``rig._panels.coo``: each field's non-zero (feature, blended
    coordinate, delta)), so the entries are the rig's own float32 numbers. The blend set starts
    with the body's vertices in base.obj's order, so blended coordinate ``c < 3 N_body`` is body
    coordinate ``c``. Columns past the features (the breast macro targets the rig blends with
    them) are macro-weighted and left out; so is the rest row. ``tests/test_fit.py`` checks the
    matrix against ``rig.vertices``.
    """
    import scipy.sparse as sp

    K = rig._n_features
    feature, coord, value = rig._panels.coo
    keep = feature < K - 1
    if rows is None:
        keep &= coord < 3 * assets.N_BODY
        width = 3 * assets.N_BODY
    else:  # chosen blend rows, in their order (the skeleton's helper vertices)
        rows = np.asarray(rows, np.int64)
        col = np.full(3 * len(rig._blend), -1, np.int64)
        col[(3 * rows[:, None] + np.arange(3)).ravel()] = np.arange(3 * len(rows))
        keep &= col[coord] >= 0
        coord, width = col[coord], 3 * len(rows)
    return sp.csr_matrix((value[keep].astype(np.float64), (feature[keep], coord[keep])), shape=(K, width))


def _build(rig) -> LocalBasis:
    lin = np.flatnonzero(linear_sliders(rig))
    dflt, lo, hi = rig.spec.defaults(), rig.spec.lows(), rig.spec.highs()
    side_slider, side_up, side_span = [], [], []
    for j in lin:
        for up, span in ((True, hi[j] - dflt[j]), (False, dflt[j] - lo[j])):
            if span > 0:
                side_slider.append(j)
                side_up.append(up)
                side_span.append(span)
    D = field_matrix(rig)
    side_slider = np.array(side_slider, np.int64)
    G = (D @ D.T).toarray()
    side_up = np.array(side_up, bool)
    C = LocalBasis(D, G, lin, side_slider, side_up, np.array(side_span, np.float64),
                   dflt[side_slider]).mixing(rig, dflt)
    return LocalBasis(D, G, lin, side_slider, side_up, np.array(side_span, np.float64), dflt[side_slider],
                      _duplicates(C.T @ G @ C, side_slider, side_up), ends_matrix(rig))


def _duplicates(H: np.ndarray, side_slider: np.ndarray, side_up: np.ndarray) -> tuple:
    """Groups of sliders whose sides' columns are equal (to 1e-6 relative), from their Gram matrix ``H`` (Q, Q)."""
    d = np.sqrt(np.maximum(np.diag(H), 0.0))
    close = np.abs(H - np.sqrt(np.outer(d * d, d * d))) <= 1e-6 * np.outer(d, d)  # equal columns
    close &= np.outer(d, d) > 0
    groups, seen = [], set()
    sliders = list(dict.fromkeys(side_slider.tolist()))
    sides = {j: [(bool(side_up[q]), q) for q in np.flatnonzero(side_slider == j)] for j in sliders}
    for a in sliders:
        if a in seen:
            continue
        group = [a]
        for b in sliders:
            if b == a or b in seen or len(sides[b]) != len(sides[a]):
                continue
            if all(ua == ub and close[qa, qb] for (ua, qa), (ub, qb) in zip(sides[a], sides[b])):
                group.append(b)
        if len(group) > 1:
            seen.update(group)
            groups.append(tuple(group))
    return tuple(groups)
