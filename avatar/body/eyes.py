"""Eyeballs: a fine UV sphere fitted, per avatar, to MakeHuman's 72-vertex helper eyeball.

MakeHuman's targets move the helper eyeballs with the head, so each avatar's
eye is ``centre + radius * unit sphere`` with the centre and mean radius of
its blended helper eyeball: batched, exact for any shape, and smooth enough
to read as an eye in a face close-up. The sphere's pole faces +z (the gaze);
its UVs map the sphere onto a disc in a free corner of MakeHuman's UV layout
by angle from the pole, so the iris and pupil are rings of that disc.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

RINGS, SEGMENTS = 18, 32
# discs in the free top-right corner of MakeHuman's body UV layout: (u, v) centre, radius
UV_DISCS = (((0.715, 0.905), 0.068), ((0.870, 0.905), 0.068))
IRIS_ANGLE = 0.55   # radians from the pole: iris edge (about 11.5 mm across on a 12 mm eyeball)
PUPIL_ANGLE = 0.22


@dataclass(frozen=True)
class Sphere:
    """A unit UV sphere with its pole on +z: ``vertices`` (k, 3), ``faces`` (f, 3) outward, ``polar`` (k,) angle."""

    vertices: np.ndarray
    faces: np.ndarray
    polar: np.ndarray
    azimuth: np.ndarray

    def uv(self, eye: int) -> np.ndarray:
        """(k, 2) UVs of the sphere on disc ``eye`` (0 left, 1 right): radius proportional to the polar angle."""
        (cu, cv), r = UV_DISCS[eye]
        rho = r * self.polar / np.pi
        return np.stack([cu + rho * np.cos(self.azimuth), cv + rho * np.sin(self.azimuth)], axis=1)

    @cached_property
    def mirror(self) -> np.ndarray:
        """(k,) int: the vertex at each vertex's mirror image x -> -x (azimuth phi -> pi - phi)."""
        key = np.round(self.vertices * (-1.0, 1.0, 1.0), 9)
        lookup = {tuple(v): i for i, v in enumerate(np.round(self.vertices, 9))}
        return np.array([lookup[tuple(v)] for v in key])


def _sphere(rings: int = RINGS, segments: int = SEGMENTS) -> Sphere:
    theta = np.linspace(0, np.pi, rings + 1)[1:-1]                   # ring angles from the front pole
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    verts = np.vstack([[0.0, 0.0, 1.0], ring, [0.0, 0.0, -1.0]])
    polar = np.concatenate([[0.0], t.ravel(), [np.pi]])
    azimuth = np.concatenate([[0.0], p.ravel(), [0.0]])
    faces = []
    ids = 1 + np.arange((rings - 1) * segments).reshape(rings - 1, segments)
    nxt = np.roll(ids, -1, axis=1)
    faces.append(np.stack([np.zeros(segments, int), ids[0], nxt[0]], 1))      # front cap
    for i in range(rings - 2):
        a, b, c, d = ids[i], nxt[i], ids[i + 1], nxt[i + 1]
        faces += [np.stack([a, c, b], 1), np.stack([b, c, d], 1)]
    last = len(verts) - 1
    faces.append(np.stack([np.full(segments, last), nxt[-1], ids[-1]], 1))   # back cap
    faces = np.concatenate(faces).astype(np.int64)
    # orient outward: the (a, b, c) order above is inward or outward by construction; check once
    a, b, c = (verts[faces[:, k]] for k in range(3))
    if np.einsum("ij,ij->i", np.cross(b - a, c - a), a + b + c).sum() < 0:
        faces = faces[:, ::-1].copy()
    return Sphere(verts, faces, polar, azimuth)


EYE_SPHERE = _sphere()


def fit(helper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre (n, 3) and radius (n,) of helper eyeballs (n, 72, 3): their mean and mean distance to it."""
    centre = helper.mean(axis=1)
    radius = np.linalg.norm(helper - centre[:, None], axis=2).mean(axis=1)
    return centre, radius


UNIT = EYE_SPHERE.vertices.astype(np.float32)  # the rig places it on each avatar: _blend_kernel.eyeballs
