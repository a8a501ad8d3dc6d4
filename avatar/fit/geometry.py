"""Rigid alignment and closest points on triangle meshes, batched (no loop per point).

* :func:`kabsch`: the least-squares rotation and translation between paired points;
* :func:`principal_frames`: the four proper rotations that align two point sets' principal axes
  (each axis's sign is ambiguous; reflections are left out);
* :func:`closest_on_triangles`: the closest point of each query to its triangle (Ericson's
  Voronoi-region test), and :class:`SurfaceIndex`: closest points on a mesh, the exact distance to
  the nearest of ``k`` candidate faces (the faces with the nearest centroids);
* :func:`sample_surface`: area-weighted random points on a mesh.
"""
from __future__ import annotations

import numpy as np


def kabsch(src: np.ndarray, dst: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``R`` (3, 3), ``t`` (3,) minimising ``sum w ||R src + t - dst||^2`` over rotations (det +1).

    src, dst : (n, 3) paired points; w : (n,) weights (default 1).
    """
    w = np.ones(len(src)) if w is None else np.asarray(w, np.float64)
    w = w / max(w.sum(), 1e-300)
    cs, cd = w @ src, w @ dst
    A = ((src - cs) * w[:, None]).T @ (dst - cd)
    U, _, Vt = np.linalg.svd(A)
    d = np.sign(np.linalg.det(Vt.T @ U.T)) or 1.0
    R = Vt.T @ np.diag([1.0, 1.0, d]) @ U.T
    return R, cd - R @ cs


def principal_frames(src: np.ndarray, dst: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 4 rigid maps ``(R, t)`` taking ``src``'s centroid and principal axes (n, 3) onto ``dst``'s (m, 3),
    one per choice of axis signs with ``det R = +1``."""
    def frame(p):
        c = p.mean(axis=0)
        w, E = np.linalg.eigh(np.cov((p - c).T))
        return c, E[:, np.argsort(-w)]

    cs, Es = frame(src)
    cd, Ed = frame(dst)
    out = []
    for s in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)):
        R = Ed @ np.diag(s) @ Es.T
        if np.linalg.det(R) < 0:
            R = Ed @ np.diag(np.array(s) * [1, 1, -1]) @ Es.T
        out.append((R, cd - R @ cs))
    return out


def closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(n, 3) closest point to each ``p`` (n, 3) on triangle ``(a, b, c)`` (each (n, 3)); Ericson, ch. 5.1.5."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = np.einsum("ij,ij->i", ab, ap), np.einsum("ij,ij->i", ac, ap)
    bp = p - b
    d3, d4 = np.einsum("ij,ij->i", ab, bp), np.einsum("ij,ij->i", ac, bp)
    cp = p - c
    d5, d6 = np.einsum("ij,ij->i", ab, cp), np.einsum("ij,ij->i", ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    denom = va + vb + vc
    safe = np.where(np.abs(denom) > 1e-300, denom, 1.0)
    v, w = vb / safe, vc / safe
    out = a + ab * v[:, None] + ac * w[:, None]                      # inside the face
    tiny = lambda x: np.where(np.abs(x) > 1e-300, x, 1.0)            # noqa: E731
    # edges (checked before vertices, which override them below)
    m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)                             # edge ac
    out[m] = a[m] + ac[m] * (d2[m] / tiny(d2[m] - d6[m]))[:, None]
    m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)                             # edge ab
    out[m] = a[m] + ab[m] * (d1[m] / tiny(d1[m] - d3[m]))[:, None]
    m = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)               # edge bc
    t = (d4 - d3)[m] / tiny((d4 - d3)[m] + (d5 - d6)[m])
    out[m] = b[m] + (c[m] - b[m]) * t[:, None]
    for m, q in (((d6 >= 0) & (d5 <= d6), c), ((d3 >= 0) & (d4 <= d3), b), ((d1 <= 0) & (d2 <= 0), a)):
        out[m] = q[m]
    return out


class SurfaceIndex:
    """Closest points on one triangle mesh, for many queries at once.

    Parameters
    ----------
    vertices : (V, 3) float64
    faces : (F, 3) int
    k : int
        Candidate faces per query: those with the ``k`` nearest centroids. A query's true closest face is
        among them unless the mesh has faces much longer than the query's distance to it.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, k: int = 12):
        from scipy.spatial import cKDTree  # on first use: scipy.spatial takes 0.1 s to import

        self.vertices = np.asarray(vertices, np.float64)
        self.faces = np.asarray(faces, np.int64)
        tri = self.vertices[self.faces]
        self.tree = cKDTree(tri.mean(axis=1))
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        self.normals = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-300)
        self.k = int(min(k, len(self.faces)))

    def closest(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For queries ``p`` (n, 3): closest points (n, 3), distances (n,) and the faces they lie on (n,)."""
        p = np.asarray(p, np.float64)
        _, cand = self.tree.query(p, k=self.k)
        cand = cand.reshape(len(p), -1)
        f = self.faces[cand.ravel()]
        q = closest_on_triangles(np.repeat(p, cand.shape[1], axis=0), self.vertices[f[:, 0]],
                                 self.vertices[f[:, 1]], self.vertices[f[:, 2]]).reshape(len(p), -1, 3)
        d = np.linalg.norm(q - p[:, None], axis=2)
        best = np.argmin(d, axis=1)
        i = np.arange(len(p))
        return q[i, best], d[i, best], cand[i, best]


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals."""
    tri = vertices[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    out = np.zeros_like(vertices, dtype=np.float64)
    for k in range(3):
        np.add.at(out, faces[:, k], n)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-300)


def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) points drawn uniformly by area on the mesh."""
    tri = np.asarray(vertices, np.float64)[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    f = rng.choice(len(faces), size=n, p=area / area.sum())
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    t = tri[f]
    return t[:, 0] + (t[:, 1] - t[:, 0]) * u[:, None] + (t[:, 2] - t[:, 0]) * v[:, None]


def decimate(vertices: np.ndarray, faces: np.ndarray, fraction: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """A remesh for the scan tests and benchmarks: (vertices (m, 3) float64, faces (f, 3) int) of
    (V, 3), (F, 3) simplified to about ``fraction`` of the faces (meshoptimizer), unused vertices dropped."""
    import meshoptimizer as mo

    idx = np.ascontiguousarray(np.asarray(faces).astype(np.uint32).ravel())
    out = np.zeros_like(idx)
    k = mo.simplify(out, idx, np.ascontiguousarray(vertices, np.float32),
                    target_index_count=int(len(idx) * fraction) // 3 * 3, target_error=1.0)
    tri = out[:k].reshape(-1, 3)
    used = np.unique(tri)
    remap = np.full(len(vertices), -1)
    remap[used] = np.arange(len(used))
    return np.asarray(vertices, np.float64)[used], remap[tri]
