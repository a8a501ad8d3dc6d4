"""The compiled inner loop of linear blend skinning (numba; compiled once, cached on disk).

``out[b, i] = V[b, i] + sum_k w[i, k] * (dA[b, j] @ V[b, i] + t[b, j])`` with ``j = idx[i, k]``,
``G[b, j] = [dA | t]`` flattened row-major to 12 floats. Each avatar's rows depend on that
avatar's inputs only, in a fixed order of operations, so the bytes do not depend on the batch.
Plain numpy needs a (n, N, 12) blended-matrix temporary per influence and ran about 10x slower.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, fastmath=False)
def skin_kernel(V, G, idx, w, out):  # pragma: no cover - compiled
    n, N = V.shape[0], V.shape[1]
    K = idx.shape[1]
    for b in range(n):
        Gb = G[b]
        for i in range(N):
            x, y, z = V[b, i, 0], V[b, i, 1], V[b, i, 2]
            o0 = np.float32(0.0)
            o1 = np.float32(0.0)
            o2 = np.float32(0.0)
            for k in range(K):
                wk = w[i, k]
                if wk == 0.0:
                    continue
                g = Gb[idx[i, k]]
                o0 += wk * (g[0] * x + g[1] * y + g[2] * z + g[3])
                o1 += wk * (g[4] * x + g[5] * y + g[6] * z + g[7])
                o2 += wk * (g[8] * x + g[9] * y + g[10] * z + g[11])
            out[b, i, 0] = x + o0
            out[b, i, 1] = y + o1
            out[b, i, 2] = z + o2
