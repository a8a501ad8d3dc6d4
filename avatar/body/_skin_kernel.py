"""The compiled inner loop of linear blend skinning (numba; compiled once, cached on disk).

``out[b, i] = V[b, i] + sum_k w[i, k] * (dA[b, j] @ V[b, i] + t[b, j])`` with ``j = idx[i, k]``,
``G[b, j] = [dA | t]`` flattened row-major to 12 floats, and each vertex's weights sorted
largest first (zeros last, where the loop stops). Each avatar's rows depend on that avatar's
inputs only, in a fixed order of operations, so the bytes do not depend on the batch. Fused
multiply-adds (``fastmath={"contract"}``) and no other fast-math: NaN and inf still propagate.
Plain numpy needs a (n, N, 12) blended-matrix temporary per influence and ran about 10x slower.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, fastmath={"contract"})
def skin_kernel(V, G, idx, w, out):  # pragma: no cover - compiled
    n, N = V.shape[0], V.shape[1]
    K = idx.shape[1]
    for b in range(n):
        Gb, Vb, ob = G[b], V[b], out[b]
        for i in range(N):
            x, y, z = Vb[i, 0], Vb[i, 1], Vb[i, 2]
            o0 = np.float32(0.0)
            o1 = np.float32(0.0)
            o2 = np.float32(0.0)
            for k in range(K):
                wk = w[i, k]
                if wk == 0.0:
                    break
                j = idx[i, k]
                o0 += wk * (Gb[j, 0] * x + Gb[j, 1] * y + Gb[j, 2] * z + Gb[j, 3])
                o1 += wk * (Gb[j, 4] * x + Gb[j, 5] * y + Gb[j, 6] * z + Gb[j, 7])
                o2 += wk * (Gb[j, 8] * x + Gb[j, 9] * y + Gb[j, 10] * z + Gb[j, 11])
            ob[i, 0] = x + o0
            ob[i, 1] = y + o1
            ob[i, 2] = z + o2
