"""The compiled inner loops of measuring (numba; compiled once, cached on disk).

``volumes``: the enclosed volume of a closed surface's triangles, per avatar, summed in
float64 (each triangle's term in float32: about 1e-6 litres of error on a body).
``hull_perimeters``: per avatar, a closed polyline projected on its own plane (Newell's
normal), its convex hull by Andrew's monotone chain, and the hull's perimeter.
In numpy both need (n, F, 3, 3) or (n, L, L) temporaries and ran about 10x slower.
Each avatar's result depends on that avatar's inputs only, in a fixed order.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, fastmath={"contract"})
def volumes(V, fa, fb, fc, out):  # pragma: no cover - compiled
    # the divergence theorem with the field (0, y, 0): each triangle adds its mean height times
    # its area projected on the floor (signed by its normal): 7 loads a triangle, not 9
    for b in range(V.shape[0]):
        Vb = V[b]
        acc = 0.0
        for f in range(fa.shape[0]):
            i, j, k = fa[f], fb[f], fc[f]
            ax, az = Vb[i, 0], Vb[i, 2]
            e1x, e1z = Vb[j, 0] - ax, Vb[j, 2] - az
            e2x, e2z = Vb[k, 0] - ax, Vb[k, 2] - az
            acc += np.float64((Vb[i, 1] + Vb[j, 1] + Vb[k, 1]) * (e1z * e2x - e1x * e2z))
        out[b] = acc / 6.0


@njit(cache=True, nogil=True)
def hull_perimeters(P, out):  # pragma: no cover - compiled
    n, L = P.shape[0], P.shape[1]
    xy = np.empty((L, 2))
    hull = np.empty((2 * L + 1, 2))
    for b in range(n):
        Pb = P[b]
        cx, cy, cz = 0.0, 0.0, 0.0
        for i in range(L):
            cx += Pb[i, 0]
            cy += Pb[i, 1]
            cz += Pb[i, 2]
        cx, cy, cz = cx / L, cy / L, cz / L
        nx, ny, nz = 0.0, 0.0, 0.0  # Newell's normal of the polygon
        for i in range(L):
            j = (i + 1) % L
            ax, ay, az = Pb[i, 0] - cx, Pb[i, 1] - cy, Pb[i, 2] - cz
            bx, by, bz = Pb[j, 0] - cx, Pb[j, 1] - cy, Pb[j, 2] - cz
            nx += ay * bz - az * by
            ny += az * bx - ax * bz
            nz += ax * by - ay * bx
        s = np.sqrt(nx * nx + ny * ny + nz * nz)
        nx, ny, nz = nx / s, ny / s, nz / s
        # u: the first point's direction in the plane; v = n x u
        ux, uy, uz = Pb[0, 0] - cx, Pb[0, 1] - cy, Pb[0, 2] - cz
        d = ux * nx + uy * ny + uz * nz
        ux, uy, uz = ux - d * nx, uy - d * ny, uz - d * nz
        s = np.sqrt(ux * ux + uy * uy + uz * uz)
        ux, uy, uz = ux / s, uy / s, uz / s
        vx, vy, vz = ny * uz - nz * uy, nz * ux - nx * uz, nx * uy - ny * ux
        for i in range(L):
            px, py, pz = Pb[i, 0] - cx, Pb[i, 1] - cy, Pb[i, 2] - cz
            xy[i, 0] = px * ux + py * uy + pz * uz
            xy[i, 1] = px * vx + py * vy + pz * vz
        order = np.argsort(xy[:, 0] + 1e-12 * xy[:, 1])
        m = 0
        for pas in range(2):  # lower hull, then upper hull
            start = m
            for q in range(L):
                i = order[q] if pas == 0 else order[L - 1 - q]
                while m >= start + 2 and ((hull[m - 1, 0] - hull[m - 2, 0]) * (xy[i, 1] - hull[m - 2, 1])
                                          - (hull[m - 1, 1] - hull[m - 2, 1]) * (xy[i, 0] - hull[m - 2, 0])) <= 0:
                    m -= 1
                hull[m, 0], hull[m, 1] = xy[i, 0], xy[i, 1]
                m += 1
            m -= 1  # the last point of each chain starts the other
        per = 0.0
        for i in range(m):
            j = (i + 1) % m
            per += np.sqrt((hull[j, 0] - hull[i, 0]) ** 2 + (hull[j, 1] - hull[i, 1]) ** 2)
        out[b] = per
