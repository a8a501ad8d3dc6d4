"""Batched UV textures from the skin and tattoo sliders.

An avatar's texture is computed in three steps, batched over avatars:

1. masks      M (K, N)        fixed per-texel layers (skin, freckles, lips, brows,
                              eyeliner, iris...), functions of each texel's 3D
                              surface point; built once per rig and atlas size
2. colours    C (n, K, 3)     per-avatar colour of each layer, from the sliders
3. blend      X = C^T M       (n, N, 3) one small matrix product per channel,
              + tattoo        then each avatar's tattoo, painted in a smooth 2D
                              chart over its region (only that region's texels)

Layers are written as "base skin plus (layer colour - skin) x mask", which
keeps step 3 linear in the masks. Everything in step 1 and the tattoo charts
depend only on the template, so they are cached per atlas size.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from avatar.body import anatomy
from avatar.skin import patterns
from avatar.body.deformers import plateau
from avatar.skin.texels import TexelMap, texel_map

L = anatomy.LANDMARKS

# Skin tone ramp (sRGB, 0-255) at tone 0, 20, ..., 100: light to dark, melanin-like.
TONE_RAMP = np.array([(247, 226, 212), (236, 197, 172), (214, 165, 128),
                      (176, 122, 86), (122, 80, 54), (72, 46, 32)], dtype=np.float32)
COOL, WARM = np.array([10, -6, 8], np.float32), np.array([8, 4, -14], np.float32)
PALETTES = {
    "skin.lip_colour": {"rose": (190, 90, 110), "red": (172, 22, 42), "berry": (112, 30, 62),
                        "coral": (232, 112, 92), "plum": (92, 42, 72), "nude": (200, 140, 122)},
    "skin.brow_colour": {"black": (28, 24, 22), "dark_brown": (62, 42, 30), "brown": (104, 72, 46),
                         "auburn": (124, 56, 30), "blonde": (196, 164, 112), "grey": (142, 142, 142),
                         "white": (224, 224, 218)},
    "skin.iris_colour": {"brown": (92, 56, 30), "hazel": (132, 102, 52), "green": (72, 122, 72),
                         "blue": (72, 112, 172), "grey": (122, 132, 142), "amber": (182, 122, 42),
                         "violet": (122, 82, 162)},
    "skin.eyeshadow_colour": {"smoky": (62, 56, 62), "purple": (122, 72, 142), "blue": (62, 92, 162),
                              "green": (62, 122, 82), "gold": (202, 162, 72), "rose": (202, 112, 122)},
}
SCLERA = np.array([236, 233, 226], np.float32)
REGIONS = ("chest", "back", "upper_arm", "forearm", "thigh", "neck", "cheek", "forehead")
SIZE_PER_SCALE = 0.0025  # metres of tattoo half-width per point of tattoo.scale (100 -> 25 cm)

# default values of the appearance sliders, used where a rig leaves one out
# (a test keeps them equal to configs/rigs/humanoid.yaml)
DEFAULTS = {
    "skin.tone": 35.0, "skin.undertone": 50.0, "skin.freckles": 0.0, "skin.blush": 20.0,
    "skin.lip_colour": "rose", "skin.lipstick": 0.0, "skin.brow_colour": "dark_brown",
    "skin.brow_thickness": 50.0, "skin.iris_colour": "brown", "skin.eyeliner": 0.0,
    "skin.eyeshadow": 0.0, "skin.eyeshadow_colour": "smoky", "skin.stubble": 0.0,
    "tattoo.pattern": "none", "tattoo.region": "chest", "tattoo.vertical": 50.0,
    "tattoo.horizontal": 50.0, "tattoo.angle": 0.0, "tattoo.scale": 25.0, "tattoo.flip": 0.0,
    "tattoo.hue": 220.0, "tattoo.value": 15.0, "tattoo.opacity": 100.0,
}


# --------------------------------------------------------------------------
# 1. masks: template-only, per texel
# --------------------------------------------------------------------------
def _ellipse(points, center, radii) -> np.ndarray:
    """Smooth 0..1 membership of an ellipsoid (1 inside the inner half, 0 outside)."""
    return plateau(points, center, radii).astype(np.float32)


def _both_sides(points, name, radii) -> np.ndarray:
    p = L[name]
    return np.maximum(_ellipse(points, p, radii), _ellipse(points, p * (-1, 1, 1), radii))


def _noise(points, wavelength: float, seed: int, waves: int = 12) -> np.ndarray:
    """Smooth pseudo-random field in [-1, 1] over 3D points (a sum of plane waves)."""
    rng = np.random.default_rng(seed)
    dirs = rng.standard_normal((waves, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    phase = rng.uniform(0, 2 * np.pi, waves)
    k = 2 * np.pi / wavelength
    return (np.sin(points @ (k * dirs.T) + phase).sum(1) / np.sqrt(waves / 2)).clip(-1, 1)


def _spots(points, spacing: float, radius: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Round spots scattered over 3D points: (coverage (N,), each spot's random rank (N,)).

    One spot per cell of a ``spacing`` grid, jittered inside its cell (a
    Worley pattern), so spots never clump or stripe. The rank (uniform 0..1,
    per spot) lets a density slider keep the spots whose rank is below it.
    """
    rng = np.random.default_rng(seed)
    table = rng.random((4096, 4))  # per-cell jitter (3) and rank (1), hashed by cell index
    cell = np.floor(points / spacing).astype(np.int64)
    best = np.full(len(points), np.inf)
    rank = np.zeros(len(points))
    for off in np.stack(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij"), -1).reshape(-1, 3):
        c = cell + off
        h = (c[:, 0] * 73856093 ^ c[:, 1] * 19349663 ^ c[:, 2] * 83492791) % 4096
        centre = (c + table[h, :3]) * spacing
        d = np.linalg.norm(points - centre, axis=1)
        closer = d < best
        best, rank = np.where(closer, d, best), np.where(closer, table[h, 3], rank)
    return np.clip((radius - best) / (0.35 * radius), 0.0, 1.0), rank


MASK_NAMES = ("skin", "variation", "freckles_1", "freckles_2", "freckles_3", "blush", "lips",
              "brow_thin", "brow_thick", "eyeliner", "eyeshadow", "stubble", "sclera", "iris")


@lru_cache(maxsize=8)
def _masks(tm: TexelMap) -> np.ndarray:
    """(K, N) float32 per-texel masks, in :data:`MASK_NAMES` order."""
    P, parts = tm.points, tm.parts
    names = np.array(_part_names())[parts]
    eye = np.isin(names, ["eye_l", "eye_r"])
    skin = (~eye).astype(np.float32)
    front = np.clip(tm.normals[:, 2] * 2.0, 0.0, 1.0)  # faces forward
    face = np.isin(names, ["face", "nose", "forehead", "chin", "mouth", "head"])
    # freckles: nested spot sets (more spots at higher density) over nose and cheeks
    spots, rank = _spots(P, 0.0045, 0.0016, 1)
    zone = np.maximum(_ellipse(P, L["nose_bridge"] - (0, 0.02, 0), (0.09, 0.05, 0.08)),
                      _ellipse(P, np.array([0, 1.40, 0.0]), (0.3, 0.08, 0.3)) * 0.6)
    freckles = [zone * skin * spots * ((rank >= lo) & (rank < hi)) for lo, hi in ((0, 0.34), (0.34, 0.67), (0.67, 1.01))]
    blush = _both_sides(P, "cheek_l", (0.035, 0.03, 0.04)) * skin
    lips = _ellipse(P, (L["lip_upper"] + L["lip_lower"]) / 2 + (0, 0, 0.003), (0.03, 0.02, 0.03))
    lips = lips * np.clip((P[:, 2] - 0.088) / 0.006, 0, 1) * skin
    brow = [_both_sides(P, "brow_l", (0.026, h, 0.03)) * front * skin * face for h in (0.006, 0.011)]
    eye_ring = np.zeros(len(P), np.float32)
    shadow = np.zeros(len(P), np.float32)
    for side in (1.0, -1.0):
        c = L["eye_l"] * (side, 1, 1)
        r = np.hypot((P[:, 0] - c[0]) / 1.25, P[:, 1] - c[1])
        eye_ring = np.maximum(eye_ring, np.clip(1 - np.abs(r - 0.0135) / 0.003, 0, 1))
        shadow = np.maximum(shadow, _ellipse(P, c + (0, 0.009, 0.004), (0.022, 0.011, 0.02)))
    eye_ring *= front * skin
    shadow *= front * skin * (1 - brow[0])
    stubble_zone = np.maximum(_ellipse(P, L["chin"] + (0, 0.01, -0.03), (0.075, 0.055, 0.09)),
                              _ellipse(P, L["lip_upper"] + (0, 0.008, 0), (0.026, 0.01, 0.02)))
    stubble = stubble_zone * (1 - lips) * skin * (0.8 + 0.2 * _noise(P, 0.03, 2, 8))  # a soft shadow
    # eyes: iris disc facing forward, sclera elsewhere on the eyeball
    ecenter = np.where(P[:, :1] > 0, L["eye_l"], L["eye_l"] * (-1, 1, 1))
    d = P - ecenter
    cos = d[:, 2] / np.maximum(np.linalg.norm(d, axis=1), 1e-9)
    iris = np.clip((cos - 0.86) / 0.02, 0, 1) * np.clip((0.975 - cos) / 0.02, 0, 1) * eye
    sclera = np.clip((0.86 - cos) / 0.02, 0, 1) * eye
    variation = _noise(P, 0.08, 3, 8) * skin
    rows = [skin, variation, *freckles, blush, lips, *brow, eye_ring, shadow, stubble, sclera, iris]
    return np.stack(rows).astype(np.float32)


def _part_names():
    from avatar.body.template import PART_NAMES

    return PART_NAMES


# --------------------------------------------------------------------------
# 2. colours: per avatar, from the sliders
# --------------------------------------------------------------------------
def _palette(name: str, idx: np.ndarray, categories) -> np.ndarray:
    table = np.array([PALETTES[name][c] for c in categories], np.float32)
    return table[idx.astype(np.int64)]


def skin_colour(tone: np.ndarray, undertone: np.ndarray) -> np.ndarray:
    """(n, 3) base skin colour from tone (0 light..100 dark) and undertone (0 cool..100 warm)."""
    x = np.clip(tone, 0, 100) / 20.0
    i = np.minimum(x.astype(np.int64), len(TONE_RAMP) - 2)
    f = (x - i)[:, None]
    base = TONE_RAMP[i] * (1 - f) + TONE_RAMP[i + 1] * f
    u = (np.asarray(undertone, np.float32)[:, None] - 50.0) / 50.0
    return base + np.where(u < 0, -u * COOL, u * WARM)


def layer_colours(v: dict, categories: dict) -> np.ndarray:
    """(n, K, 3) colour coefficient of each mask (in :data:`MASK_NAMES` order)."""
    base = skin_colour(v["skin.tone"], v["skin.undertone"])
    n = len(base)

    def pct(name):
        return (np.asarray(v[name], np.float32) / 100.0)[:, None]

    freckle = base * 0.72 - 6.0  # darker, browner spots
    density = pct("skin.freckles")[:, 0] * 3.0
    # nested spot sets fade in one after another as density rises
    fw = [np.clip(density - k, 0, 1)[:, None] * 0.8 for k in range(3)]
    natural_lip = base * np.array([0.86, 0.6, 0.62], np.float32)
    lip = natural_lip + pct("skin.lipstick") * (
        _palette("skin.lip_colour", v["skin.lip_colour"], categories["skin.lip_colour"]) - natural_lip)
    brow = _palette("skin.brow_colour", v["skin.brow_colour"], categories["skin.brow_colour"])
    thick = pct("skin.brow_thickness")
    shadow = _palette("skin.eyeshadow_colour", v["skin.eyeshadow_colour"],
                      categories["skin.eyeshadow_colour"])
    iris = _palette("skin.iris_colour", v["skin.iris_colour"], categories["skin.iris_colour"])
    blush_colour = np.array([225, 95, 100], np.float32)
    rows = [
        base,                                              # skin
        base * 0.025,                                      # variation (+-2.5%)
        *[w * (freckle - base) for w in fw],               # freckles
        pct("skin.blush") * 0.45 * (blush_colour - base),  # blush
        lip - base,                                        # lips
        0.85 * (1 - thick) * (brow - base),                # thin brow
        0.85 * thick * (brow - base),                      # thick brow
        pct("skin.eyeliner") * (np.float32(20) - base),    # eyeliner
        pct("skin.eyeshadow") * 0.7 * (shadow - base),     # eyeshadow
        pct("skin.stubble") * 0.6 * (brow * 0.8 - base),   # stubble
        np.broadcast_to(SCLERA, (n, 3)),                   # sclera
        iris,                                              # iris
    ]
    return np.stack(rows, axis=1).astype(np.float32)


# --------------------------------------------------------------------------
# tattoos: a smooth chart per region, the design painted in it
# --------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Chart:
    """A region's 2D surface chart over the texels it may paint.

    idx : (M,) covered-texel indices; u, v : (M,) chart coordinates in metres
    (u across/around, v up); period : circumference for charts that wrap
    (around a limb), else 0; extent : (u0, u1, v0, v1) of the region proper.
    """

    idx: np.ndarray
    u: np.ndarray
    v: np.ndarray
    period: float
    extent: tuple


def _plane_chart(tm, support, core, origin, across, facing) -> Chart:
    P = tm.points
    keep = support & (tm.normals @ np.asarray(facing, np.float32) > 0.15)
    across = np.asarray(across, float)
    u = (P - origin) @ across
    v = P[:, 1] - origin[1]
    return _chart(keep, core & keep, u, v, 0.0)


def _cylinder_chart(tm, support, core, bone) -> Chart:
    a, b = (anatomy.JOINTS[j] for j in anatomy.BONES[bone])
    axis = (b - a) / np.linalg.norm(b - a)
    front = np.array([0.0, 0.0, 1.0]) - axis[2] * axis
    front /= np.linalg.norm(front)
    side = np.cross(axis, front)
    rel = tm.points - a
    radial = rel - (rel @ axis)[:, None] * axis
    radius = float(np.median(np.linalg.norm(radial[core], axis=1)))
    angle = np.arctan2(radial @ side, radial @ front)  # 0 at the front of the limb
    up = np.sign(axis[1]) or 1.0  # v grows upwards whichever way the bone points
    return _chart(support, core, angle * radius, up * (rel @ axis), 2 * np.pi * radius)


def _chart(support, core, u, v, period) -> Chart:
    cu, cv = u[core], v[core]
    extent = (float(np.percentile(cu, 5)), float(np.percentile(cu, 95)),
              float(np.percentile(cv, 5)), float(np.percentile(cv, 95)))
    if period:
        extent = (-period / 2, period / 2, extent[2], extent[3])
    idx = np.flatnonzero(support)
    return Chart(idx, u[idx].astype(np.float32), v[idx].astype(np.float32), period, extent)


@lru_cache(maxsize=8)
def charts(tm: TexelMap) -> dict[str, Chart]:
    """Region name -> its chart. Sided regions (cheek, arms, thigh) are on the left."""
    names = np.array(_part_names())[tm.parts]

    def parts(*ps):
        return np.isin(names, ps)

    left = tm.points[:, 0] > 0
    head = parts("head", "forehead", "face", "nose", "mouth", "chin", "ear_l")
    torso = parts("chest", "abdomen", "pelvis", "neck")
    cheek = L["cheek_l"]
    return {
        "chest": _plane_chart(tm, torso, parts("chest", "abdomen") & (tm.points[:, 1] > 1.12),
                              np.array([0, 1.3, 0.1]), (1, 0, 0), (0, 0, 1)),
        "back": _plane_chart(tm, torso, parts("chest", "abdomen"), np.array([0, 1.3, -0.1]),
                             (-1, 0, 0), (0, 0, -1)),
        "upper_arm": _cylinder_chart(tm, parts("upper_arm_l", "forearm_l", "chest"),
                                     parts("upper_arm_l"), "upper_arm_l"),
        "forearm": _cylinder_chart(tm, parts("forearm_l", "upper_arm_l", "hand_l"),
                                   parts("forearm_l"), "forearm_l"),
        "thigh": _cylinder_chart(tm, parts("thigh_l", "shin_l", "pelvis"), parts("thigh_l"), "thigh_l"),
        "neck": _cylinder_chart(tm, parts("neck", "chest", "head", "chin"), parts("neck"), "neck"),
        "cheek": _plane_chart(tm, head & left, parts("face") & left, cheek, (0.7, 0, -0.7), (0.7, 0, 0.7)),
        "forehead": _plane_chart(tm, head, parts("forehead"), L["forehead"], (1, 0, 0), (0, 0, 1)),
    }


def tattoo_coverage(chart: Chart, design: str, vertical, horizontal, angle, scale, flip,
                    texel_m: float) -> np.ndarray:
    """(m, M) ink coverage of one design for m avatars over a chart's texels.

    vertical, horizontal : (m,) 0..100 position within the region's extent;
    angle : (m,) degrees; scale : (m,) 0..100 (half-width SIZE_PER_SCALE * scale);
    flip : (m,) 0/1 mirror; texel_m : texel edge length in metres (anti-aliasing).
    """
    u0, u1, v0, v1 = chart.extent
    cu = u0 + (u1 - u0) * np.asarray(horizontal, np.float32)[:, None] / 100.0
    cv = v0 + (v1 - v0) * np.asarray(vertical, np.float32)[:, None] / 100.0
    du = chart.u[None, :] - cu
    if chart.period:  # around a limb: take the shorter way round
        du = (du + chart.period / 2) % chart.period - chart.period / 2
    dv = chart.v[None, :] - cv
    half = np.maximum(np.asarray(scale, np.float32) * SIZE_PER_SCALE, 0.004)[:, None]
    a = np.deg2rad(np.asarray(angle, np.float32))[:, None]
    p = (np.cos(a) * du + np.sin(a) * dv) / half
    q = (-np.sin(a) * du + np.cos(a) * dv) / half
    p = np.where(np.asarray(flip)[:, None] > 0.5, -p, p)
    # the design only where its box is: most of a region stays bare skin
    inside = (np.abs(p) < 1.3) & (np.abs(q) < 1.3)
    aa = np.broadcast_to(1.5 * texel_m / half, p.shape)[inside]
    out = np.zeros(p.shape, np.float32)
    out[inside] = patterns.coverage(patterns.DESIGNS[design](p[inside], q[inside]), aa)
    return out


def ink_colour(hue, value) -> np.ndarray:
    """(n, 3) ink colour (0-255) from hue in degrees and value 0..100 (saturation 0.75)."""
    h = (np.asarray(hue, np.float32)[:, None] / 60.0) % 6.0
    val = np.asarray(value, np.float32)[:, None] / 100.0 * 255.0
    k = (np.array([5.0, 3.0, 1.0], np.float32) + h) % 6.0
    return val - val * 0.75 * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


# --------------------------------------------------------------------------
# 3. the batch
# --------------------------------------------------------------------------
def slider_columns(spec, S: np.ndarray) -> tuple[dict, dict]:
    """Appearance slider values by name (n,), and category names, defaults filling gaps."""
    S = np.atleast_2d(S)
    values, cats = {}, {}
    by_name = {s.name: (j, s) for j, s in enumerate(spec.sliders)}
    for name, default in DEFAULTS.items():
        if name in by_name:
            j, s = by_name[name]
            values[name] = S[:, j]
            if s.categories:
                cats[name] = s.categories
        else:
            choices = tuple(PALETTES[name]) if name in PALETTES else None
            if name == "tattoo.pattern":
                choices = ("none", *patterns.DESIGNS)
            elif name == "tattoo.region":
                choices = REGIONS
            if choices:
                cats[name] = choices
                default = choices.index(default)
            values[name] = np.full(len(S), float(default))
    return values, cats


def textures(template, spec, S: np.ndarray, size: int = 512, chunk: int = 32) -> np.ndarray:
    """(n, size, size, 3) uint8 textures for slider values ``S`` (n, P)."""
    S = np.atleast_2d(np.asarray(S, np.float64))
    tm = texel_map(template, size)
    masks = _masks(tm)                                                   # (K, N)
    fill = tm.fill.ravel()
    out = np.empty((len(S), size, size, 3), dtype=np.uint8)
    for i in range(0, len(S), chunk):
        values, cats = slider_columns(spec, S[i:i + chunk])
        colours = layer_colours(values, cats)                            # (c, K, 3)
        c, k, _ = colours.shape
        # channel-major (c, 3, N): one (3c, K) @ (K, N) product
        texels = (np.ascontiguousarray(colours.transpose(0, 2, 1)).reshape(3 * c, k) @ masks).reshape(c, 3, -1)
        _paint_tattoos(texels, tm, values, cats)
        np.clip(texels, 0, 255, out=texels)
        rgb = np.ascontiguousarray(texels.astype(np.uint8).transpose(0, 2, 1))   # (c, N, 3)
        # gather whole pixels (3 bytes each); gutter texels copy their neighbours
        pixels = out[i:i + chunk].reshape(c, size * size, 3)
        _as_pixels(pixels)[:] = np.take(_as_pixels(rgb), fill, axis=1)
    return out


def _as_pixels(rgb: np.ndarray) -> np.ndarray:
    """View (c, N, 3) uint8 as (c, N) opaque 3-byte pixels, so a gather moves whole pixels."""
    return rgb.view(np.dtype((np.void, 3))).reshape(rgb.shape[:2])


def _paint_tattoos(texels: np.ndarray, tm: TexelMap, v: dict, cats: dict) -> None:
    """Blend each avatar's tattoo into its texels (c, 3, N), in place."""
    ink = ink_colour(v["tattoo.hue"], v["tattoo.value"])
    opacity = np.clip(v["tattoo.opacity"], 0, 100) / 100.0
    texel_m = np.sqrt(tm.texel_area)
    region_charts = charts(tm)
    for r, region in enumerate(cats["tattoo.region"]):
        for p, design in enumerate(cats["tattoo.pattern"]):
            if design not in patterns.DESIGNS:
                continue  # "none"
            who = np.flatnonzero((v["tattoo.region"] == r) & (v["tattoo.pattern"] == p) & (opacity > 0))
            if not len(who):
                continue
            chart = region_charts[region]
            alpha = tattoo_coverage(chart, design, v["tattoo.vertical"][who], v["tattoo.horizontal"][who],
                                    v["tattoo.angle"][who], v["tattoo.scale"][who], v["tattoo.flip"][who],
                                    texel_m) * opacity[who, None].astype(np.float32)
            # blend only the inked texels: a design covers a small part of its region
            i, j = np.nonzero(alpha)
            rows, cols, a = who[i], chart.idx[j], alpha[i, j][:, None]
            skin = texels[rows, :, cols]                                      # (k, 3)
            texels[rows, :, cols] = skin + a * (ink[rows] - skin)
