"""MakeHuman 1.1's macro rule: what gender, age, muscle, weight, height,
proportions, breast size/firmness and ethnicity mean as target weights.

A macro target's file name is a list of factor names
(``universal-female-young-averagemuscle-maxweight``); its weight is the
product of those factors' values. Each macro value ``v`` in [0, 1] gives its
factors by MakeHuman 1.1's piecewise ramps (``apps/humanmodifier.py`` and
``human.py``):

    gender      female = 1 - g, male = g
    age         a < 0.5: baby = max(0, 1 - 5.333 a), young = max(0, 3.2 (a - 0.1875)),
                         child = max(0, min(1, 5.333 a) - young), old = 0
                a >= 0.5: old = 2 a - 1, young = 1 - old, baby = child = 0
    muscle, weight, cupsize, firmness
                min = max(0, 1 - 2v), max = max(0, 2v - 1), average = 1 - min - max
    height      minheight, maxheight as min and max above (no "average" targets)
    proportions uncommonproportions = max(0, 1 - 2p), idealproportions = max(0, 2p - 1)
    ethnicity   african, asian, caucasian: the three values normalised to sum 1
                (1/3 each when all are 0); ``universal`` is 1

Every factor is piecewise linear with at most two non-zero ramps, so an
avatar activates about 90 of the 564 macro targets, and which ones depends
only on which factors are non-zero: its *cell*. The rig's blend puts avatars
of a cell side by side in its tiles, so that a tile weights few targets.
"""
from __future__ import annotations

from functools import cached_property, lru_cache

import numpy as np

from avatar.body import _weights_kernel

# the macro variables in the order of their column in a (n, 11) array of values
VARIABLES = ("gender", "age", "muscle", "weight", "height", "proportions", "cupsize", "firmness",
             "african", "asian", "caucasian")
RACES = ("african", "asian", "caucasian")
FACTORS = ("female", "male", "baby", "child", "young", "old",
           "minmuscle", "averagemuscle", "maxmuscle", "minweight", "averageweight", "maxweight",
           "minheight", "maxheight", "uncommonproportions", "idealproportions",
           "mincup", "averagecup", "maxcup", "minfirmness", "averagefirmness", "maxfirmness",
           "african", "asian", "caucasian", "universal")
_COL = {f: i for i, f in enumerate(FACTORS)}
AGE_YEARS = ((0.0, 1.0), (0.1875, 10.0), (0.5, 25.0), (1.0, 90.0))  # MakeHuman's age value -> years


def years_to_age(years) -> np.ndarray:
    """Age in years (1..90) -> MakeHuman's age value (0..1): 1, 10, 25, 90 years are 0, 0.1875, 0.5, 1."""
    v, y = zip(*AGE_YEARS)
    return np.interp(np.asarray(years, np.float64), y, v)


def age_to_years(age) -> np.ndarray:
    """MakeHuman's age value (0..1) -> years (1 + 48a below 0.5, 25 + 130(a - 0.5) above)."""
    v, y = zip(*AGE_YEARS)
    return np.interp(np.asarray(age, np.float64), v, y)


def factor_values(M: np.ndarray) -> np.ndarray:
    """(n, 11) macro values in [0, 1] (columns :data:`VARIABLES`) -> (n, 26) factor values (:data:`FACTORS`)."""
    M = np.clip(np.atleast_2d(np.asarray(M, np.float64)), 0.0, 1.0)
    g, a, mu, w, h, p, cup, firm = M[:, :8].T
    F = np.zeros((len(M), len(FACTORS)))
    F[:, _COL["female"]], F[:, _COL["male"]] = 1.0 - g, g
    young_lo = np.maximum(0.0, 3.2 * (a - 0.1875))
    old = np.maximum(0.0, 2.0 * a - 1.0)
    lo = a < 0.5
    F[:, _COL["baby"]] = np.where(lo, np.maximum(0.0, 1.0 - 5.333 * a), 0.0)
    F[:, _COL["young"]] = np.where(lo, young_lo, 1.0 - old)
    F[:, _COL["child"]] = np.where(lo, np.maximum(0.0, np.minimum(1.0, 5.333 * a) - young_lo), 0.0)
    F[:, _COL["old"]] = np.where(lo, 0.0, old)
    for v, names in ((mu, ("minmuscle", "averagemuscle", "maxmuscle")),
                     (w, ("minweight", "averageweight", "maxweight")),
                     (cup, ("mincup", "averagecup", "maxcup")),
                     (firm, ("minfirmness", "averagefirmness", "maxfirmness"))):
        vmin, vmax = np.maximum(0.0, 1.0 - 2.0 * v), np.maximum(0.0, 2.0 * v - 1.0)
        F[:, _COL[names[0]]], F[:, _COL[names[1]]], F[:, _COL[names[2]]] = vmin, 1.0 - vmin - vmax, vmax
    for v, (low, high) in ((h, ("minheight", "maxheight")), (p, ("uncommonproportions", "idealproportions"))):
        F[:, _COL[low]], F[:, _COL[high]] = np.maximum(0.0, 1.0 - 2.0 * v), np.maximum(0.0, 2.0 * v - 1.0)
    F[:, _COL["african"]:_COL["caucasian"] + 1] = normalise_races(M[:, 8:11])
    F[:, _COL["universal"]] = 1.0
    return F


def normalise_races(R: np.ndarray) -> np.ndarray:
    """(n, 3) african/asian/caucasian values -> shares summing to 1 (1/3 each when all are 0)."""
    R = np.clip(np.asarray(R, np.float64), 0.0, None)
    total = R.sum(axis=1, keepdims=True)
    return np.where(total > 0, R / np.where(total > 0, total, 1.0), 1.0 / 3.0)


def pattern_key(F: np.ndarray) -> np.ndarray:
    """(n, 26) factor values -> (n,) int: which factors are non-zero, as bits, the last factor most
    significant. Sorted by it, neighbours weight nearly the same targets: tiles of eight avatars so
    ordered weight 62.2 of the 340 dense targets (one avatar 55.6), against 88.3 with the first
    factor most significant (1,024 prior avatars)."""
    return (np.asarray(F) != 0) @ _BITS


_BITS = 1 << np.arange(len(FACTORS), dtype=np.int64)[::-1]  # factor i's bit in a pattern key


def is_macro_target(key: str) -> bool:
    """Whether a target key is one of MakeHuman's macro targets (weighted by :func:`factor_values`)."""
    return key.startswith(("macrodetails/", "breast/female-", "breast/male-"))


def target_factors(key: str) -> tuple[str, ...]:
    """The factor names in a macro target's file name (``macrodetails/height/male-old-...-maxheight``)."""
    words = key.rsplit("/", 1)[1].split("-")
    unknown = [w for w in words if w not in _COL]
    if unknown:
        raise ValueError(f"{key}: {unknown[0]!r} is not a macro factor")
    return tuple(words)


class MacroBasis:
    """The macro targets of a rig and their factor names: weights and cells, batched.

    Parameters
    ----------
    keys : sequence of str
        Macro target keys.
    same : (T,) int, optional
        The displacement each key's file holds, numbered by first appearance: MakeHuman ships one
        file under several names (the height and proportions targets do not depend on muscle or
        weight), and the rig blends each displacement once, weighted by the sum of its keys'
        weights (:meth:`target_weights`). Default: every key its own.
    """

    def __init__(self, keys, same=None):
        self.keys = tuple(keys)
        self.same = np.arange(len(self.keys)) if same is None else np.asarray(same, np.int64)
        self.n_targets = int(self.same.max()) + 1 if len(self.same) else 0
        words = [target_factors(k) for k in self.keys]
        width = max((len(w) for w in words), default=1)
        # factor columns of each target, padded with the constant "universal" column (1.0)
        self.columns = np.full((len(words), width), _COL["universal"], np.int64)
        for t, ws in enumerate(words):
            self.columns[t, :len(ws)] = [_COL[w] for w in ws]
        self.uses = np.zeros((len(words), len(FACTORS)), bool)
        self.uses[np.arange(len(words))[:, None], self.columns] = True

    def weights(self, F: np.ndarray) -> np.ndarray:
        """(n, 26) factor values -> (n, T) target weights: the product of each target's factors."""
        return np.prod(F[:, self.columns], axis=2)

    def target_weights(self, F: np.ndarray, out: np.ndarray | None = None, col0: int = 0) -> np.ndarray:
        """(n, 26) factor values -> (n, D) weights of the distinct displacements: each the sum of its
        keys' :meth:`weights`, added in key order in float64 (each avatar's own sums).

        Into columns ``col0``.. of ``out`` when given (float32 there: the float64 sums rounded once),
        else a new float64 array; compiled (``_weights_kernel.target_weights``)."""
        F = np.ascontiguousarray(F, np.float64)
        out = np.empty((len(F), self.n_targets)) if out is None else out
        self.tile_weights(F[:, :, None], out[:, :, None], col0)  # a tile per avatar
        return out

    def tile_weights(self, Ft: np.ndarray, out: np.ndarray, col0: int = 0) -> np.ndarray:
        """:meth:`target_weights` tile by tile: factor values Ft (nt, 26, T) float64 of T avatars side
        by side -> their weights into out[:, col0:col0 + D, :] (nt, >= col0 + D, T); the same bytes."""
        _weights_kernel.target_weights(Ft, self.columns, *self.by_displacement, out, col0)
        return out

    @cached_property
    def by_displacement(self) -> tuple[np.ndarray, np.ndarray]:
        """(keys (T,), starts (D + 1,)): displacement d's keys are keys[starts[d]:starts[d + 1]], ascending
        (the order :meth:`target_weights` sums them in)."""
        keys = np.argsort(self.same, kind="stable")
        return keys.astype(np.int64), np.searchsorted(self.same[keys], np.arange(self.n_targets + 1)).astype(np.int64)

    def cells(self, F: np.ndarray) -> tuple[np.ndarray, list[np.ndarray | slice]]:
        """Group avatars by which factors are non-zero.

        Returns (cell (n,) int, active): avatar i is in cell ``cell[i]``, whose
        possibly non-zero targets are ``active[cell[i]]`` (sorted indices, or a
        slice when contiguous); every other target has weight exactly 0 for it.
        """
        keys, cell = np.unique(pattern_key(F), return_inverse=True)
        return cell.ravel(), [self._active(int(k)) for k in keys]

    @lru_cache(maxsize=512)
    def _active(self, key: int) -> np.ndarray | slice:
        """The targets possibly non-zero under pattern key ``key``: a slice when they are contiguous."""
        nonzero = key & _BITS != 0
        act = np.flatnonzero(~(self.uses & ~nonzero).any(axis=1))
        if len(act) and act[-1] - act[0] + 1 == len(act):
            return slice(int(act[0]), int(act[-1]) + 1)
        return act


def age_order(keys) -> list[str]:
    """Macro target keys sorted (stably) by their age factor, baby to old.

    Every macro target names exactly one age, and an avatar's non-zero ages are two
    neighbours, so in this order a cell's targets lie in one range of rows. The rig's
    blend sums an avatar's targets in this order, so it also fixes the vertices' bytes.
    """
    rank = {"baby": 0, "child": 1, "young": 2, "old": 3}
    return sorted(keys, key=lambda k: next(rank[w] for w in target_factors(k) if w in rank))
