"""Which surface point every texel of the UV atlas shows (template-only, cached).

:func:`texel_map` rasterises the template's UV triangles once per atlas size
and records, for each covered texel, the 3D point of the neutral body it
shows, its normal and its part. Texels outside every triangle (the gutters
between charts) copy their nearest covered texel, so bilinear sampling across
a UV seam never reads background. Texture layers are functions of these 3D
points, which is why colours agree on both sides of every seam.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from avatar.body.template import Template


@dataclass(frozen=True, eq=False)
class TexelMap:
    """Per-texel surface data of an atlas of ``size`` x ``size`` texels.

    rows, cols : (N,) int   the covered texels (row 0 is the top, v = 1)
    points     : (N, 3)     surface point of the neutral template, metres
    normals    : (N, 3)     unit template normals there
    parts      : (N,) int   part label
    fill       : (size, size) int   covered texel each texel shows (gutters too)
    texel_area : float      mean surface area of one texel, m^2
    areas      : (N,) float surface area each texel covers, m^2 (MakeHuman's UVs give the
                            face more texels per cm^2 than the back)
    """

    size: int
    rows: np.ndarray
    cols: np.ndarray
    points: np.ndarray
    normals: np.ndarray
    parts: np.ndarray
    fill: np.ndarray
    texel_area: float
    areas: np.ndarray | None = None


def rasterize(uv: np.ndarray, faces: np.ndarray, size: int):
    """Covered texels of UV triangles: (texel index, face, barycentrics (N, 3)).

    uv : (E, 2) in [0, 1] with v up; faces : (F, 3). Vectorised over faces:
    every texel centre in each face's bounding box is tested at once.
    """
    x = uv[:, 0] * size - 0.5
    y = (1.0 - uv[:, 1]) * size - 0.5
    tx, ty = x[faces], y[faces]                                    # (F, 3)
    x0 = np.clip(np.floor(tx.min(1)).astype(np.int64), 0, size - 1)
    x1 = np.clip(np.ceil(tx.max(1)).astype(np.int64), 0, size - 1)
    y0 = np.clip(np.floor(ty.min(1)).astype(np.int64), 0, size - 1)
    y1 = np.clip(np.ceil(ty.max(1)).astype(np.int64), 0, size - 1)
    w, h = x1 - x0 + 1, y1 - y0 + 1
    face = np.repeat(np.arange(len(faces)), w * h)
    k = np.arange(len(face)) - np.repeat(np.cumsum(w * h) - w * h, w * h)
    px = x0[face] + k % w[face]
    py = y0[face] + k // w[face]
    # barycentric coordinates of each candidate texel centre
    ax, ay = tx[face, 0], ty[face, 0]
    bx, by = tx[face, 1] - ax, ty[face, 1] - ay
    cx, cy = tx[face, 2] - ax, ty[face, 2] - ay
    det = bx * cy - by * cx
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    qx, qy = px - ax, py - ay
    b1 = (qx * cy - qy * cx) / det
    b2 = (bx * qy - by * qx) / det
    b0 = 1.0 - b1 - b2
    inside = (b0 >= -1e-6) & (b1 >= -1e-6) & (b2 >= -1e-6)
    texel = (py * size + px)[inside]
    # a texel on a shared edge belongs to the first face that covers it
    texel, first = np.unique(texel, return_index=True)
    bary = np.stack([b0, b1, b2], axis=1)[inside][first]
    return texel, face[inside][first], np.clip(bary, 0.0, 1.0)


@lru_cache(maxsize=8)
def _cached(template_id: int, size: int, template: Template) -> TexelMap:
    from scipy.ndimage import distance_transform_edt

    t = template
    texel, face, bary = rasterize(t.export_uv, t.export_faces, size)
    corners = t.export_index[t.export_faces[face]]                 # (N, 3) solid vertices
    points = np.einsum("nk,nkd->nd", bary, t.vertices[corners])
    normals = np.einsum("nk,nkd->nd", bary, t.vertex_normals[corners])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    parts = t.parts[corners[np.arange(len(face)), bary.argmax(1)]]
    covered = np.full(size * size, -1, dtype=np.int64)
    covered[texel] = np.arange(len(texel))
    grid = covered.reshape(size, size)
    _, (ri, ci) = distance_transform_edt(grid < 0, return_indices=True)
    fill = grid[ri, ci]
    a, b, c = (t.vertices[t.faces[:, i]] for i in range(3))
    face_area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    area = face_area.sum()
    ua, ub, uc = (t.export_uv[t.export_faces[:, i]] * size for i in range(3))
    uv_area = 0.5 * np.abs((ub - ua)[:, 0] * (uc - ua)[:, 1] - (ub - ua)[:, 1] * (uc - ua)[:, 0])
    per_texel = face_area / np.maximum(uv_area, 1e-9)                # m^2 per texel, per face
    return TexelMap(size, texel // size, texel % size, points.astype(np.float32),
                    normals.astype(np.float32), parts, fill, float(area / len(texel)),
                    per_texel[face].astype(np.float32))


def texel_map(template: Template, size: int) -> TexelMap:
    """The (cached) texel map of ``template`` at ``size`` x ``size``."""
    return _cached(id(template), int(size), template)
