"""Signed distance primitives and smooth blends, evaluated on a voxel grid.

The template body is a smooth union of a few dozen primitives. Each primitive
is evaluated only inside its own bounding box (grown by its blend radius), so
building the whole body on a millimetre grid stays cheap. Only +, *, sqrt,
min and max are used: they are exact in IEEE arithmetic, so the field, and the
template built from it, do not drift between CPUs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Array = np.ndarray


def _unit(v) -> Array:
    v = np.asarray(v, dtype=np.float64)
    return v / np.sqrt(v @ v)


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid with semi-axes ``radii`` along the columns of ``axes``."""

    center: tuple
    radii: tuple
    axes: tuple | None = None  # (3, 3) rows are the local x, y, z directions

    def bounds(self) -> tuple[Array, Array]:
        r = float(max(self.radii))
        c = np.asarray(self.center, dtype=float)
        return c - r, c + r

    def distance(self, x: Array, y: Array, z: Array) -> Array:
        c = self.center
        px, py, pz = x - c[0], y - c[1], z - c[2]
        if self.axes is not None:
            a = np.asarray(self.axes, dtype=float)
            px, py, pz = (a[i, 0] * px + a[i, 1] * py + a[i, 2] * pz for i in range(3))
        rx, ry, rz = self.radii
        # Inigo Quilez's bound: k0 (k0 - 1) / k1, good near the surface.
        k0 = np.sqrt((px / rx) ** 2 + (py / ry) ** 2 + (pz / rz) ** 2)
        k1 = np.sqrt((px / rx**2) ** 2 + (py / ry**2) ** 2 + (pz / rz**2) ** 2)
        return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)


@dataclass(frozen=True)
class Cone:
    """A tapered capsule: radius ``ra`` at ``a`` blending linearly to ``rb`` at ``b``."""

    a: tuple
    b: tuple
    ra: float
    rb: float

    def bounds(self) -> tuple[Array, Array]:
        a, b = np.asarray(self.a, float), np.asarray(self.b, float)
        r = max(self.ra, self.rb)
        return np.minimum(a, b) - r, np.maximum(a, b) + r

    def distance(self, x: Array, y: Array, z: Array) -> Array:
        a = np.asarray(self.a, float)
        ab = np.asarray(self.b, float) - a
        px, py, pz = x - a[0], y - a[1], z - a[2]
        t = np.clip((px * ab[0] + py * ab[1] + pz * ab[2]) / (ab @ ab), 0.0, 1.0)
        dx, dy, dz = px - t * ab[0], py - t * ab[1], pz - t * ab[2]
        return np.sqrt(dx * dx + dy * dy + dz * dz) - (self.ra + t * (self.rb - self.ra))


@dataclass(frozen=True)
class HalfSpace:
    """Everything below the plane through ``point`` with outward ``normal``."""

    point: tuple
    normal: tuple
    box: tuple  # (lo, hi) region where the cut applies

    def bounds(self) -> tuple[Array, Array]:
        return np.asarray(self.box[0], float), np.asarray(self.box[1], float)

    def distance(self, x: Array, y: Array, z: Array) -> Array:
        n = _unit(self.normal)
        p = self.point
        return (x - p[0]) * n[0] + (y - p[1]) * n[1] + (z - p[2]) * n[2]


def smooth_union(a: Array, b: Array, k: float) -> Array:
    """Polynomial smooth minimum of two distances with blend radius ``k``."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - h * h * k * 0.25


def smooth_subtract(a: Array, b: Array, k: float) -> Array:
    """Remove shape ``b`` from ``a`` with a fillet of radius ``k``."""
    return -smooth_union(-a, b, k)


def smooth_intersect(a: Array, b: Array, k: float) -> Array:
    """Keep only where both shapes are, with a fillet of radius ``k``."""
    return -smooth_union(-a, -b, k)


_OPS = {"union": smooth_union, "subtract": smooth_subtract, "intersect": smooth_intersect}


@dataclass(frozen=True)
class Grid:
    """An axis-aligned voxel grid: ``origin`` (3,), ``step`` metres, ``shape`` (3,)."""

    origin: tuple
    step: float
    shape: tuple

    @classmethod
    def around(cls, lo, hi, step: float) -> "Grid":
        lo = np.asarray(lo, float)
        shape = np.ceil((np.asarray(hi, float) - lo) / step).astype(int) + 1
        return cls(tuple(lo), float(step), tuple(int(s) for s in shape))

    def slices(self, lo: Array, hi: Array) -> tuple[slice, ...]:
        o = np.asarray(self.origin)
        i0 = np.clip(np.floor((lo - o) / self.step).astype(int), 0, self.shape)
        i1 = np.clip(np.ceil((hi - o) / self.step).astype(int) + 1, 0, self.shape)
        return tuple(slice(int(a), int(b)) for a, b in zip(i0, i1))

    def coords(self, sl: tuple[slice, ...]) -> tuple[Array, Array, Array]:
        """Broadcastable x, y, z coordinates of the voxels in ``sl``."""
        axes = [self.origin[i] + self.step * np.arange(s.start, s.stop) for i, s in enumerate(sl)]
        return axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :]


def evaluate(grid: Grid, program: list[tuple[str, object, float]], far: float = 0.25) -> Array:
    """Run a list of ``(op, shape, k)`` steps over ``grid``; returns distances.

    The field starts "far outside" (``far``) everywhere and is clipped to
    ``[-far, far]``; only its zero level set is used, so values further than
    ``far`` from any surface need not be exact.
    """
    field = np.full(grid.shape, far, dtype=np.float64)
    for op, shape, k in program:
        lo, hi = shape.bounds()
        sl = grid.slices(lo - k - grid.step, hi + k + grid.step)
        if any(s.stop <= s.start for s in sl):
            continue
        d = np.clip(shape.distance(*grid.coords(sl)), -far, far)
        field[sl] = _OPS[op](field[sl], d, k)
    return field
