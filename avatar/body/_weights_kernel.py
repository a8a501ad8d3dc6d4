"""The compiled loops of steps 1-2 of the rig: macro target weights and local field strengths.

Each loop does the arithmetic of the numpy code it replaced operation for operation (products
left to right as ``np.prod``, sums in key order, the same float32 roundings), so the weights are the
same bytes: :meth:`avatar.body.macros.MacroBasis.target_weights` and
:meth:`avatar.body.rig.Rig.features` call them. numpy's versions were dozens of fancy-indexed passes
over small arrays (36 rounds of sums alone): 12 µs an avatar here at chunks of 128, where the blend
they feed takes 90.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def target_weights(F, columns, keys, starts, out, col0):  # pragma: no cover - compiled
    """out[t, col0 + d, i] = float32(sum over the keys of displacement d, in key order, of the product
    of their factor columns, left to right), for avatar i of tile t.

    F (nt, 26, T) float64 factor values, tile by tile (T avatars side by side; T = 1: one avatar a
    tile); columns (K, m) int64 each key's factor columns; keys (K,) the keys by displacement (each
    displacement's in ascending order) and starts (D + 1,) where each displacement's begin; out
    (nt, >= col0 + D, T) float32 or float64. Each step runs over a tile's T avatars at once (vector
    code): 1.7 µs an avatar one by one, here.
    """
    T = F.shape[2]
    w, total = np.empty(T), np.empty(T)
    for t in range(F.shape[0]):
        for d in range(starts.shape[0] - 1):
            for q in range(starts[d], starts[d + 1]):
                k = keys[q]
                c0 = columns[k, 0]
                for i in range(T):
                    w[i] = F[t, c0, i]
                for c in range(1, columns.shape[1]):
                    ck = columns[k, c]
                    for i in range(T):
                        w[i] *= F[t, ck, i]
                if q == starts[d]:
                    for i in range(T):
                        total[i] = w[i]
                else:
                    for i in range(T):
                        total[i] += w[i]
            for i in range(T):
                out[t, col0 + d, i] = total[i]


@njit(cache=True, nogil=True)
def by_tile(X, slots):  # pragma: no cover - compiled
    """(nt, m, T) of X's dtype: the rows of X (n, m) of each tile's avatars ``slots`` (nt, T) side by
    side, 0 in empty slots (-1; factor values 0 give every weight 0)."""
    out = np.zeros((slots.shape[0], X.shape[1], slots.shape[1]), X.dtype)
    for t in range(slots.shape[0]):
        for i in range(slots.shape[1]):
            if slots[t, i] >= 0:
                for c in range(X.shape[1]):
                    out[t, c, i] = X[slots[t, i], c]
    return out


@njit(cache=True, nogil=True)
def strengths(S, cont, default, span_up, span_down, col_up, col_down, onehot, onehot_value, race_col,
              race_src, race_of, races, rest, slots, out):  # pragma: no cover - compiled
    """Step 2's field strengths of avatar slots[t, i] (a row of S) into out[t, :, i] (out (nt, m, T)
    float32; T = 1 and slots (n, 1) = 0..n-1 for rows in order), every column 0 first (all of an
    empty slot's, -1): each continuous slider's value above and below its default as 0..1, each bool
    or category as 0/1, each expression unit's ethnic fields times the ethnic shares ``races`` (n, 3)
    float32, and the rest pose row (column ``rest``) at 1.

    cont (C,) the continuous sliders' columns of S with their default and spans; col_up, col_down (C,)
    their field columns (-1: none); onehot (B, 2) (field column, slider column) and onehot_value
    (B,) the value that turns it on; race_col, race_src, race_of (R,): field, its unit's column, ethnicity.
    """
    unit = np.empty(race_col.shape[0], np.float32)
    for t in range(slots.shape[0]):
        out[t] = 0.0  # the tile's block at once (column by column, strided, took twice as long)
        for i in range(slots.shape[1]):
            a = slots[t, i]
            if a < 0:
                continue
            for k in range(cont.shape[0]):
                s = S[a, cont[k]]
                if col_up[k] >= 0:
                    x = (s - default[k]) / span_up[k]
                    out[t, col_up[k], i] = x if x >= 0.0 else 0.0  # np.clip(x, 0, None): x unless below 0
                if col_down[k] >= 0:
                    x = (default[k] - s) / span_down[k]
                    out[t, col_down[k], i] = x if x >= 0.0 else 0.0
            for b in range(onehot.shape[0]):
                out[t, onehot[b, 0], i] = 1.0 if S[a, onehot[b, 1]] == onehot_value[b] else 0.0
            for r in range(race_col.shape[0]):  # every product from the unit's own strength, then stored
                unit[r] = out[t, race_src[r], i] * races[a, race_of[r]]
            for r in range(race_col.shape[0]):
                out[t, race_col[r], i] = unit[r]
            out[t, rest, i] = 1.0
