"""Scene sliders -> per-avatar camera, lights and background, batched.

:func:`scene_block` turns the scene columns of slider values ``S`` (n, P) into
a :class:`SceneBlock` of arrays, one row per avatar, in one numpy pass; the
renderer then only reads row i for avatar i. A rig without scene sliders, or
``S=None``, gives the defaults: the front camera, the three-point lights as
they were, the background :data:`avatar.rendering.core.BACKGROUND`.

At the humanoid rig's defaults every value is exactly the old one (identity
light rotations, intensity and fill factors 1.0, background (236, 238, 241)), so
renders are byte-identical to those made before scene sliders existed (the
fill factor 1.0 multiplies the fill and rim intensities exactly).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from avatar.spec.scene import FRAMINGS, SCALES

# hue (degrees), saturation and value (%) that round to BACKGROUND, (236, 238, 241)
BACKGROUND_HSV = (216.0, 2.0, 94.5)
# what each framing frames in the `camera` view: View.target and View.margin
FRAMING_TARGETS = {"full_body": ("body", 0.08), "bust": ("bust", 0.10), "face": ("head", 0.14)}


class SceneBlock(NamedTuple):
    """Scene settings of n avatars (one row each)."""

    yaw: np.ndarray          # (n,) float64 degrees, the camera view's
    pitch: np.ndarray        # (n,) float64 degrees
    distance: np.ndarray     # (n,) float64 multiple of the fitted camera distance (>= 1)
    framing: np.ndarray      # (n,) int64 index into FRAMINGS
    scale: np.ndarray        # (n,) int64 index into SCALES: the camera view fitted (0) or at a fixed scale (1)
    light: np.ndarray        # (n, 3, 3) float64 rotation of the light rig in camera axes
    intensity: np.ndarray    # (n,) float64 factor on every light
    fill: np.ndarray         # (n,) float64 factor on the fill and rim lights (not the key, not the ambient)
    background: np.ndarray   # (n, 3) int64 display RGB 0-255


def _column(spec, S, role: str, default: float) -> np.ndarray:
    """(n,) float64 values of the slider with scene ``role``, or ``default`` when the rig has none."""
    j = spec.scene_roles.get(role) if spec is not None else None
    n = len(S)
    return np.full(n, float(default)) if j is None else np.asarray(S[:, j], np.float64)


def _categories(spec, S, role: str, names: tuple) -> np.ndarray:
    """(n,) int64 index into ``names`` of each avatar's category of the categorical ``role`` (FRAMINGS,
    SCALES; the rig's categories may be fewer or in another order); 0 when the rig has no such slider."""
    j = spec.scene_roles.get(role) if spec is not None else None
    if j is None:
        return np.zeros(len(S), np.int64)
    cats = spec.sliders[j].categories
    lookup = np.array([names.index(c) for c in cats], np.int64)
    return lookup[np.asarray(S[:, j]).astype(np.int64)]


def _framings(spec, S) -> np.ndarray:
    """(n,) int64 index into FRAMINGS of each avatar's framing."""
    return _categories(spec, S, "framing", FRAMINGS)


def light_rotations(azimuth: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    """(n, 3, 3) rotations in camera axes (right, up, back): tilt by ``elevation`` about the right
    axis (up for positive), then turn by ``azimuth`` about the up axis (towards +right, the
    figure's left in the front view). Exactly the identity at 0, 0."""
    a, e = np.radians(azimuth), np.radians(elevation)
    ca, sa, ce, se = np.cos(a), np.sin(a), np.cos(e), np.sin(e)
    zero, one = np.zeros_like(a), np.ones_like(a)
    turn = np.stack([np.stack([ca, zero, sa], -1), np.stack([zero, one, zero], -1),
                     np.stack([-sa, zero, ca], -1)], -2)
    tilt = np.stack([np.stack([one, zero, zero], -1), np.stack([zero, ce, se], -1),
                     np.stack([zero, -se, ce], -1)], -2)
    return turn @ tilt


def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(n, 3) int64 display RGB 0-255 of hue ``h`` (degrees), saturation and value ``s``, ``v`` in [0, 1]."""
    h = np.mod(np.asarray(h, np.float64), 360.0) / 60.0
    i = np.floor(h).astype(np.int64) % 6
    f = h - np.floor(h)
    v = np.asarray(v, np.float64) * 255.0
    s = np.asarray(s, np.float64)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = np.stack([np.stack(c, -1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v),
                                                (v, p, q))], 0)              # (6, n, 3)
    rgb = table[i, np.arange(len(i))]
    return np.clip(np.floor(rgb + 0.5), 0, 255).astype(np.int64)


def scene_block(spec, S, n: int, background=None) -> SceneBlock:
    """The scene of ``n`` avatars from slider values ``S`` (n, P) (None: the defaults).

    ``background`` (an (r, g, b) 0-255 triple) overrides the background sliders for every avatar.
    """
    from avatar.rendering.core import BACKGROUND

    if S is None:
        spec, S = None, np.zeros((n, 0))
    S = np.atleast_2d(S)
    col = lambda role, default: _column(spec, S, role, default)  # noqa: E731
    if background is None and spec is not None and any(r.startswith("background_") for r in spec.scene_roles):
        h, s, v = BACKGROUND_HSV  # a role the rig lacks keeps today's
        bg = hsv_to_rgb(col("background_hue", h), col("background_saturation", s) / 100.0,
                        col("background_value", v) / 100.0)
    else:
        bg = np.tile(np.asarray(BACKGROUND if background is None else background, np.int64), (n, 1))
    return SceneBlock(yaw=col("camera_yaw", 0.0), pitch=col("camera_pitch", 0.0),
                      distance=col("camera_distance", 1.0), framing=_framings(spec, S),
                      scale=_categories(spec, S, "camera_scale", SCALES),
                      light=light_rotations(col("light_azimuth", 0.0), col("light_elevation", 0.0)),
                      intensity=col("light_intensity", 100.0) / 100.0, fill=col("light_fill", 100.0) / 100.0,
                      background=bg)


def camera_view(block: SceneBlock, i: int):
    """The :class:`avatar.rendering.core.View` the scene sliders set for avatar ``i``."""
    from avatar.rendering.core import View

    target, margin = FRAMING_TARGETS[FRAMINGS[int(block.framing[i])]]
    frame = "fixed" if SCALES[int(block.scale[i])] == "fixed" else None   # None: the render's (auto)
    return View("camera", yaw=float(block.yaw[i]), pitch=float(block.pitch[i]), target=target, margin=margin,
                distance=float(block.distance[i]), frame=frame)


__all__ = ["BACKGROUND_HSV", "FRAMING_TARGETS", "SceneBlock", "camera_view", "hsv_to_rgb", "light_rotations", "scene_block"]
