"""Measuring curves on the body surface, found once on the rest template.

A curve is a closed polyline whose points lie on mesh edges at fixed fractions::

    point_k = (1 - t_k) * V[a_k] + t_k * V[b_k]

so it is carried by the surface: on every avatar of the topology it lies on the
same skin, as MakeHuman's measuring loops do (a loop of vertices is the case
``a = b``). A plane section is found on the template: the triangles a plane
cuts form closed cycles of cut edges, and the cycle nearest the plane's point
is the curve (the arm, not the torso the same plane also cuts).

Template-time only: a Python walk over a few hundred cut edges, once per
measurements file. The batched evaluation is :mod:`avatar.measure.ruler`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatar.spec.measurements import Plane


@dataclass(frozen=True)
class Curve:
    """a, b : (L,) int  edge ends;  t : (L,) float  fraction along each edge (0 at ``a``)."""

    a: np.ndarray
    b: np.ndarray
    t: np.ndarray

    def points(self, vertices: np.ndarray) -> np.ndarray:
        """(..., L, 3) the curve's points on vertices (..., V, 3)."""
        t = self.t[:, None]
        return vertices[..., self.a, :] * (1.0 - t) + vertices[..., self.b, :] * t


def loop_curve(indices) -> Curve:
    """A closed loop through body vertices (a repeated closing vertex is dropped)."""
    idx = np.asarray(indices, np.int64)
    if len(idx) > 1 and idx[0] == idx[-1]:
        idx = idx[:-1]
    return Curve(idx, idx, np.zeros(len(idx)))


def resolve_point(point, vertices: np.ndarray, joints: dict) -> np.ndarray:
    """(3,) position at the template of a joint name or a vertex index."""
    if isinstance(point, str):
        if point not in joints:
            from avatar.spec.config import did_you_mean

            raise ValueError(f"unknown joint {point!r}{did_you_mean(point, joints)}")
        return joints[point]
    return vertices[int(point)]


def plane_frame(plane: Plane, vertices: np.ndarray, joints: dict) -> tuple[np.ndarray, np.ndarray]:
    """The plane's point and unit normal at the template."""
    if plane.through is not None:
        origin = resolve_point(plane.through, vertices, joints)
    else:
        a, b = (resolve_point(p, vertices, joints) for p in plane.between)
        origin = a + plane.at * (b - a)
    if plane.normal == "along":
        a, b = (resolve_point(p, vertices, joints) for p in plane.between)
        normal = b - a
    elif isinstance(plane.normal, tuple):
        a, b = (resolve_point(p, vertices, joints) for p in plane.normal)
        normal = b - a
    else:
        normal = np.eye(3)["xyz".index(plane.normal)]
    return origin, normal / np.linalg.norm(normal)


def section_curve(vertices: np.ndarray, faces: np.ndarray, origin: np.ndarray, normal: np.ndarray) -> Curve:
    """The closed section of a closed mesh (V, 3), (F, 3) by a plane, nearest ``origin``.

    Raises ValueError when the plane misses the mesh.
    """
    d = (vertices - origin) @ normal
    d[d == 0.0] = 1e-12  # no vertex on the plane: every cut triangle then has exactly two cut edges
    side = d[faces] > 0
    cut = np.flatnonzero(side.any(axis=1) & ~side.all(axis=1))
    if not len(cut):
        raise ValueError("the plane does not cut the body")
    # each cut triangle joins its two cut edges; each cut edge is shared by two cut triangles
    edges = {}
    links = []
    for f in cut:
        tri = faces[f]
        mine = []
        for k in range(3):
            u, v = int(tri[k]), int(tri[(k + 1) % 3])
            if (d[u] > 0) != (d[v] > 0):
                mine.append(edges.setdefault((min(u, v), max(u, v)), len(edges)))
        links.append(mine)
    neighbours = [[] for _ in edges]
    for e0, e1 in links:
        neighbours[e0].append(e1)
        neighbours[e1].append(e0)
    seen = np.zeros(len(edges), bool)
    keys = np.array(list(edges), np.int64)
    best, best_dist = None, np.inf
    for start in range(len(edges)):
        if seen[start]:
            continue
        cycle, prev, cur = [start], -1, start
        seen[start] = True
        while True:
            nxt = [e for e in neighbours[cur] if e != prev]
            if not nxt or nxt[0] == start:
                break
            prev, cur = cur, nxt[0]
            if seen[cur]:
                break
            seen[cur] = True
            cycle.append(cur)
        ab = keys[cycle]
        t = d[ab[:, 0]] / (d[ab[:, 0]] - d[ab[:, 1]])
        pts = vertices[ab[:, 0]] * (1 - t[:, None]) + vertices[ab[:, 1]] * t[:, None]
        dist = np.linalg.norm(pts.mean(axis=0) - origin)
        if dist < best_dist:
            best, best_dist = Curve(ab[:, 0].copy(), ab[:, 1].copy(), t), dist
    return best
