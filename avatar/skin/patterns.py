"""Procedural tattoo designs: coverage in [0, 1] over pattern coordinates.

Each design is a signed distance ``sd(p, q)`` on the square [-1, 1]^2
(negative inside the ink), turned into anti-aliased coverage by
:func:`coverage`. All functions take broadcastable arrays, so one call paints
a design for a whole batch of avatars at once.
"""
from __future__ import annotations

import numpy as np

TAU = 2.0 * np.pi


def coverage(sd: np.ndarray, aa: float | np.ndarray) -> np.ndarray:
    """Ink coverage of a signed distance, anti-aliased over ``aa`` pattern units."""
    return np.clip(0.5 - sd / aa, 0.0, 1.0)


def _box(p, q, hx, hy):
    dx, dy = np.abs(p) - hx, np.abs(q) - hy
    return np.hypot(np.maximum(dx, 0), np.maximum(dy, 0)) + np.minimum(np.maximum(dx, dy), 0)


def bands(p, q):
    """Three horizontal bands across an armlet-like strip."""
    stripe = np.abs(np.mod(q * 2.5 + 0.5, 1.0) - 0.5) / 2.5 - 0.1
    return np.maximum(stripe, _box(p, q, 0.95, 0.5))


def star(p, q):
    """A five-pointed star (Inigo Quilez's polygon star)."""
    r, n, m = 0.95, 5, 2.4
    an, en = np.pi / n, np.pi / m
    acs, ecs = np.array([np.cos(an), np.sin(an)]), np.array([np.cos(en), np.sin(en)])
    ang = np.mod(np.arctan2(p, q), 2 * an) - an  # one point straight up
    length = np.hypot(p, q)
    px, py = length * np.cos(ang), length * np.abs(np.sin(ang))
    px, py = px - r * acs[0], py - r * acs[1]
    t = np.clip(-(px * ecs[0] + py * ecs[1]), 0.0, r * acs[1] / ecs[1])
    px, py = px + ecs[0] * t, py + ecs[1] * t
    return np.hypot(px, py) * np.sign(px)


def rings(p, q):
    """Two concentric rings around a dot."""
    r = np.hypot(p, q)
    return np.minimum(np.minimum(np.abs(r - 0.85) - 0.09, np.abs(r - 0.5) - 0.08), r - 0.16)


def lines(p, q):
    """Four slanted parallel strokes."""
    u = (p + q) * np.sqrt(0.5)
    stroke = np.abs(np.mod(u * 2.2 + 0.5, 1.0) - 0.5) / 2.2 - 0.07
    return np.maximum(stroke, _box(p, q, 0.8, 0.8))


def dots(p, q):
    """A ring of eight dots around a larger one."""
    ang = np.arctan2(q, p)
    k = np.round(ang / (TAU / 8))
    cx, cy = 0.72 * np.cos(k * TAU / 8), 0.72 * np.sin(k * TAU / 8)
    return np.minimum(np.hypot(p - cx, q - cy) - 0.17, np.hypot(p, q) - 0.3)


def crescent(p, q):
    """A crescent moon opening to the right."""
    return np.maximum(np.hypot(p, q) - 0.95, -(np.hypot(p - 0.42, q - 0.12) - 0.78))


def tribal(p, q):
    """Two tapering, mirrored flame-like curves."""
    out = []
    for s in (1.0, -1.0):
        f = s * (0.35 * np.sin(2.6 * p + 0.6) + 0.15)
        slope = s * 0.35 * 2.6 * np.cos(2.6 * p + 0.6)
        width = 0.2 * np.clip(1.0 - np.abs(p + 0.1), 0.0, 1.0) + 0.015
        out.append(np.abs(q - f) / np.sqrt(1.0 + slope**2) - width)
    return np.maximum(np.minimum(*out), np.abs(p) - 0.98)


def spiral(p, q):
    """An Archimedean spiral of three turns."""
    r = np.hypot(p, q)
    turns, width = 3.0, 0.055
    phase = np.arctan2(q, p) / TAU
    arm = np.abs(np.mod(r * turns - phase + 0.5, 1.0) - 0.5) / turns - width
    return np.maximum(arm, r - 0.95)


def chevrons(p, q):
    """Three stacked V shapes."""
    v = q + 0.9 * np.abs(p)
    stroke = np.abs(np.mod(v * 1.6 + 0.5, 1.0) - 0.5) / 1.6 - 0.09
    return np.maximum(np.maximum(stroke, np.abs(p) - 0.9), np.maximum(v - 1.0, -0.75 - q))


def sun(p, q):
    """A disc with eight rays."""
    r = np.hypot(p, q)
    ang = np.mod(np.arctan2(q, p) + TAU / 16, TAU / 8) - TAU / 16
    ray = np.maximum(np.abs(ang) * r - 0.09 * (1.0 - r), np.abs(r - 0.7) - 0.25)
    return np.minimum(r - 0.35, ray)


DESIGNS = {
    "bands": bands, "star": star, "rings": rings, "lines": lines, "dots": dots,
    "crescent": crescent, "tribal": tribal, "spiral": spiral, "chevrons": chevrons, "sun": sun,
}
"""Design name -> signed distance function. The rig's ``tattoo.pattern`` names these."""
