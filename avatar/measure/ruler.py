"""Batched body measurements: a :class:`Ruler` holds every curve of a measurements file, found once.

    ruler = Ruler(template, load_measurements())
    M = ruler(vertices)          # {name: (n,) float64} in cm, kg, litres, kg/m^2

Steps for a batch of avatars' vertices (n, V, 3), all in one gather:

1. every curve's points, (n, L_total, 3), from their edges and fractions;
2. polyline lengths per curve (a sum over its segments);
3. ``tape`` curves: the convex hull's perimeter in the curve's own plane (Newell's
   normal; Andrew's monotone chain in a numba kernel);
4. landmarks (a vertex, or a ring's length-weighted centre), then distances and heights;
5. stature, volume, mass and BMI of the closed body surface.

Lengths scale exactly with the mesh; nothing depends on the batch.
"""
from __future__ import annotations

import os

import numpy as np

from avatar.body import assets
from avatar.measure.body import volume_litres
from avatar.measure.curves import Curve, loop_curve, plane_frame, section_curve
from avatar.spec.measurements import MeasurementSpec

CHUNK = 256  # avatars per pass (on a thread each): (256, ~1,900 points, 3) float64 is 12 MB


def template_joints(template) -> dict[str, np.ndarray]:
    """Joint-cube centroids of MakeHuman's base mesh, in the template's frame (soles on y = 0)."""
    base = assets.base_mesh()
    shift = template.vertices[0] - base.vertices[0]
    return {name: base.vertices[idx].mean(axis=0) + shift
            for name, idx in assets.vertex_groups().items() if name.startswith("joint-")}


class Ruler:
    """Every measurement of ``spec`` on ``template``'s topology, as one batched function.

    Attributes
    ----------
    curves : dict name -> Curve   the circumferences' curves and the landmark rings
    names : list of str           the measurements, in file order
    """

    def __init__(self, template, spec: MeasurementSpec):
        self.spec, self.template = spec, template
        self.n_body = template.n_body
        body = template.vertices[: self.n_body]
        self.body_faces = template.faces[np.all(template.faces < self.n_body, axis=1)]
        joints = template_joints(template)
        self.curves: dict[str, Curve] = {}
        for m in spec.measurements:
            if m.kind == "circumference":
                self.curves[m.name] = self._curve(m.name, m.plane, m.loop, body, joints)
        for name, (kind, value) in spec.landmarks.items():
            if kind == "ring":
                self.curves["@" + name] = self._curve(name, value, (), body, joints)
        self.names = spec.names
        self._pack()

    def _curve(self, name, plane, loop, body, joints) -> Curve:
        if loop:
            return loop_curve(loop)
        origin, normal = plane_frame(plane, body, joints)
        try:
            return section_curve(body, self.body_faces, origin, normal)
        except ValueError as err:
            raise ValueError(f"{self.spec.source}: {name}: {err}") from None

    def _pack(self) -> None:
        """All curves' edges in one gather; each curve a run of it."""
        names = list(self.curves)
        sizes = np.array([len(self.curves[k].a) for k in names])
        self._starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self._run = {k: slice(s, s + n) for k, s, n in zip(names, self._starts, sizes)}
        self._a = np.concatenate([self.curves[k].a for k in names])
        self._b = np.concatenate([self.curves[k].b for k in names])
        self._t = np.concatenate([self.curves[k].t for k in names])[:, None]
        ar = np.arange(len(self._a))
        self._next = ar + 1
        self._next[self._starts + sizes - 1] = self._starts  # each curve closes on itself

    # -- evaluation ------------------------------------------------------------------------------
    def __call__(self, vertices: np.ndarray, names=None) -> dict[str, np.ndarray]:
        """{name: (n,) float64} for vertices (n, V, 3) or (V, 3) (then {name: float}).

        ``names`` limits the work to those measurements (default: all, in file order).
        """
        V = np.asarray(vertices)
        names = self.names if names is None else [self.spec[k].name for k in names]
        single = V.ndim == 2
        V = V[None] if single else V
        steps = range(0, len(V), CHUNK)
        if len(V) > CHUNK:  # the kernels and most numpy steps release the GIL: chunks on threads
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(len(steps), os.cpu_count() or 1)) as pool:
                parts = list(pool.map(lambda i: self._measure(V[i:i + CHUNK], names), steps))
        else:
            parts = [self._measure(V, names)]
        out = {k: np.concatenate([p[k] for p in parts]) for k in names}
        return {k: float(v[0]) for k, v in out.items()} if single else out

    def points(self, vertices: np.ndarray, name: str) -> np.ndarray:
        """(n, L, 3) the points of curve ``name`` (a circumference, or ``@landmark`` for a ring)."""
        return self.curves[name].points(np.asarray(vertices, np.float64)[..., : self.n_body, :])

    def landmark(self, vertices: np.ndarray, name: str) -> np.ndarray:
        """(n, 3) positions of landmark ``name`` on vertices (n, V, 3) or (V, 3) (then (1, 3))."""
        V = np.asarray(vertices, np.float64)
        V = V[None] if V.ndim == 2 else V
        P = V[:, self._a] * (1.0 - self._t) + V[:, self._b] * self._t
        return self._landmark(V, P, np.linalg.norm(P[:, self._next] - P, axis=-1), name)

    def _measure(self, V: np.ndarray, names) -> dict[str, np.ndarray]:
        wanted = [self.spec[k] for k in names]
        P = V[:, self._a].astype(np.float64) * (1.0 - self._t) + V[:, self._b].astype(np.float64) * self._t
        seg = np.linalg.norm(P[:, self._next] - P, axis=-1)                     # (n, L)
        floor = V[:, : self.n_body, 1].min(axis=1).astype(np.float64)
        stature = (V[:, : self.n_body, 1].max(axis=1) - floor) * 100.0
        litres = None
        if any(m.kind in ("volume", "mass", "bmi") for m in wanted):
            litres = volume_litres(V[:, : self.n_body], self.body_faces)
        out = {}
        for m in wanted:
            if m.kind == "stature":
                out[m.name] = stature
            elif m.kind == "volume":
                out[m.name] = litres
            elif m.kind == "mass":
                out[m.name] = litres * self.spec.density / 1000.0
            elif m.kind == "bmi":
                out[m.name] = litres * self.spec.density / 1000.0 / (stature / 100.0) ** 2
            elif m.kind == "circumference":
                r = self._run[m.name]
                out[m.name] = (hull_perimeter(P[:, r]) if m.tape else _row_sums(seg[:, r])) * 100.0
            elif m.kind == "distance":
                a, b = (self._landmark(V, P, seg, k) for k in m.between)
                out[m.name] = np.linalg.norm(a - b, axis=-1) * 100.0
            elif m.kind == "height":
                out[m.name] = (self._landmark(V, P, seg, m.at)[:, 1] - floor) * 100.0
        return out

    def _landmark(self, V, P, seg, name: str) -> np.ndarray:
        """(n, 3) a landmark: its vertex, or its ring's centre (segment midpoints weighted by length)."""
        kind, value = self.spec.landmarks[name]
        if kind == "vertex":
            return V[:, value].astype(np.float64)
        r = self._run["@" + name]
        mid = 0.5 * (P[:, r] + P[:, self._next[r]])
        w = seg[:, r]
        return _row_sums(np.moveaxis(w[:, :, None] * mid, 1, 2)) / _row_sums(w)[:, None]


def _row_sums(a: np.ndarray) -> np.ndarray:
    """Sums along the last axis of a contiguous copy: numpy sums strided rows (and einsum sums
    through BLAS) in other orders, which would make an avatar's bits depend on its batch."""
    return np.ascontiguousarray(a).sum(axis=-1)


def hull_perimeter(points: np.ndarray) -> np.ndarray:
    """(n,) perimeter of the convex hull of closed, nearly planar polylines (n, L, 3), batched.

    Each polyline is projected on its own plane (Newell's normal): what a tape laid
    around the curve measures, bridging its hollows.
    """
    from avatar.measure._kernels import hull_perimeters

    out = np.empty(len(points))
    hull_perimeters(np.ascontiguousarray(points, np.float64), out)
    return out
