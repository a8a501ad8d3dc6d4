"""Whole-body measurements of avatars' vertices, batched: stature, volume, mass (and summary lines).

    stature   crown to sole, the body's vertical extent (cm)
    volume    of the closed body surface, by the divergence theorem (litres)
    mass      volume x BODY_DENSITY (kg)

BODY_DENSITY is 1,010 kg/m^3: the human body is close to water, a little
denser with more lean mass (Siri 1961; whole-body densities of 1,000-1,100
kg/m^3); the eyes and the mouth cavity are not part of the body surface.
"""
from __future__ import annotations

import numpy as np

BODY_DENSITY = 1010.0  # kg per cubic metre


def stature_cm(vertices: np.ndarray, n_body: int) -> np.ndarray:
    """(n,) crown-to-sole height in cm of avatars' vertices (n, V, 3), body vertices 0..n_body-1."""
    y = (vertices if vertices.ndim == 3 else vertices[None])[:, :n_body, 1]
    return 100.0 * (y.max(axis=1) - y.min(axis=1))


def volume_litres(vertices: np.ndarray, body_faces: np.ndarray) -> np.ndarray:
    """(n,) enclosed volume in litres of the closed surface ``body_faces`` (F, 3) on vertices (n, V, 3)."""
    from avatar.measure._kernels import volumes

    V = vertices if vertices.ndim == 3 else vertices[None]
    out = np.empty(len(V))
    volumes(np.ascontiguousarray(V), *(np.ascontiguousarray(body_faces[:, k], np.int32) for k in range(3)),
            out)
    return out * 1000.0


def mass_kg(vertices: np.ndarray, body_faces: np.ndarray) -> np.ndarray:
    """(n,) mass in kg: volume x :data:`BODY_DENSITY`."""
    return volume_litres(vertices, body_faces) * BODY_DENSITY / 1000.0


def summary(vertices: np.ndarray, template) -> list[str]:
    """One "1.75 m, 71 kg" line per avatar (n, V, 3) of ``template``."""
    body_faces = template.faces[np.all(template.faces < template.n_body, axis=1)]
    h = stature_cm(vertices, template.n_body)
    m = mass_kg(vertices, body_faces)
    return [f"{hi / 100:.2f} m, {mi:.0f} kg" for hi, mi in zip(h, m)]
