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

# MakeHuman 1.1's ethnic skin colours (its EthnicSkinBlender's diffuse colours, 0..1),
# blended by the normalised body.african/asian/caucasian sliders. MakeHuman shades
# them with litspheres that brighten the midtones; our renderer's plain lighting
# needs that lift baked in, so they are raised to the power 1/1.4.
MAKEHUMAN_SKIN = np.array([(0.207, 0.113, 0.066),    # african
                           (0.721, 0.568, 0.431),    # asian
                           (0.843, 0.639, 0.517)],   # caucasian
                          dtype=np.float32)
ETHNIC_SKIN = MAKEHUMAN_SKIN ** (1 / 1.4) * 255.0
RACES = ("body.african", "body.asian", "body.caucasian")
LIGHTEST, DARKEST = np.array([250, 226, 210], np.float32), np.array([58, 36, 24], np.float32)
COOL, WARM = np.array([10, -6, 8], np.float32), np.array([8, 4, -14], np.float32)
HAIR_COLOURS = {"black": (26, 22, 20), "dark_brown": (56, 38, 27), "brown": (98, 66, 42),
                "auburn": (120, 52, 28), "blonde": (188, 152, 98), "grey": (136, 134, 130),
                "white": (218, 216, 208)}
PALETTES = {
    "skin.lip_colour": {"rose": (190, 90, 110), "red": (172, 22, 42), "berry": (112, 30, 62),
                        "coral": (232, 112, 92), "plum": (92, 42, 72), "nude": (200, 140, 122)},
    "skin.brow_colour": dict(HAIR_COLOURS),
    "hair.colour": dict(HAIR_COLOURS),
    "skin.iris_colour": {"brown": (92, 56, 30), "hazel": (132, 102, 52), "green": (72, 122, 72),
                         "blue": (72, 112, 172), "grey": (122, 132, 142), "amber": (182, 122, 42),
                         "violet": (122, 82, 162)},
    "skin.eyeshadow_colour": {"smoky": (62, 56, 62), "purple": (122, 72, 142), "blue": (62, 92, 162),
                              "green": (62, 122, 82), "gold": (202, 162, 72), "rose": (202, 112, 122)},
}
HAIR_STYLES = ("crew", "buzz", "receding", "balding", "undercut", "widow", "bald")
SCLERA = np.array([236, 233, 226], np.float32)
PUPIL = np.array([12, 10, 10], np.float32)
REGIONS = ("chest", "back", "upper_arm", "forearm", "thigh", "neck", "cheek", "forehead")
SIZE_PER_SCALE = 0.0025  # metres of tattoo half-width per point of tattoo.scale (100 -> 25 cm)

# default values of the appearance sliders, used where a rig leaves one out
# (a test keeps them equal to configs/rigs/humanoid.yaml)
DEFAULTS = {
    "body.african": 33.333333, "body.asian": 33.333333, "body.caucasian": 33.333333,
    "skin.tone": 50.0, "skin.undertone": 50.0, "skin.freckles": 0.0, "skin.blush": 20.0,
    "skin.lip_colour": "rose", "skin.lipstick": 0.0, "skin.brow_colour": "dark_brown",
    "skin.brow_thickness": 50.0, "skin.iris_colour": "brown", "skin.eyeliner": 0.0,
    "skin.eyeshadow": 0.0, "skin.eyeshadow_colour": "smoky", "skin.stubble": 0.0,
    "hair.style": "crew", "hair.colour": "dark_brown", "hair.hairline": 30.0,
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


def _ramp(x, lo, hi):
    """0 below ``lo``, 1 above ``hi``, smooth (smoothstep) between."""
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


@lru_cache(maxsize=4)
def _uv_mask(name: str) -> np.ndarray:
    """MPFB2's CC0 region mask ``textures/mpfb_<name>.jpg`` (painted on base.obj's UVs), 0..1 float32."""
    from PIL import Image

    from avatar.body import assets

    with Image.open(assets.data_dir() / "textures" / f"mpfb_{name}.jpg") as im:
        return np.asarray(im.convert("L"), np.float32) / 255.0


def _sample_uv_mask(tm: TexelMap, name: str) -> np.ndarray:
    """(N,) a UV mask at each texel's centre (bilinear; the mask's row 0 is v = 1, as ours)."""
    img = _uv_mask(name)
    h, w = img.shape
    x = np.clip((tm.cols + 0.5) / tm.size * w - 0.5, 0, w - 1.001)
    y = np.clip((tm.rows + 0.5) / tm.size * h - 0.5, 0, h - 1.001)
    x0, y0 = x.astype(np.int64), y.astype(np.int64)
    fx, fy = x - x0, y - y0
    top = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
    bottom = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def _uv_mask_on_surface(tm: TexelMap, name: str) -> np.ndarray:
    """(N,) a UV mask carried onto the 3D surface, so that it agrees across UV seams.

    The mask is read at every export vertex's UV, each solid vertex takes the
    largest value of its copies, and each texel interpolates the values of its
    nearest body vertices (inverse distance): a function of the 3D point only.
    """
    from scipy.spatial import cKDTree

    from avatar.body.template import load

    t = load()
    img = _uv_mask(name)
    h, w = img.shape
    uv = t.export_uv
    x = np.clip(np.rint(uv[:, 0] * w - 0.5), 0, w - 1).astype(np.int64)
    y = np.clip(np.rint((1 - uv[:, 1]) * h - 0.5), 0, h - 1).astype(np.int64)
    value = np.zeros(len(t.vertices))
    np.maximum.at(value, t.export_index, img[y, x])
    body = np.arange(t.n_body)
    dist, near = cKDTree(t.vertices[body]).query(tm.points, k=4)
    wgt = 1.0 / np.maximum(dist, 1e-5) ** 2
    return ((value[body][near] * wgt).sum(1) / wgt.sum(1)).astype(np.float32)


def eye_polar(tm: TexelMap) -> np.ndarray:
    """(N,) each eye texel's angle from the gaze (the eyes' UV disc radius is proportional to it); nan off the eyes."""
    from avatar.body import eyes

    u = (tm.cols + 0.5) / tm.size
    v = 1.0 - (tm.rows + 0.5) / tm.size
    names = np.array(_part_names())[tm.parts]
    out = np.full(len(u), np.nan)
    for k, side in enumerate(("eye_l", "eye_r")):
        (cu, cv), r = eyes.UV_DISCS[k]
        m = names == side
        out[m] = np.pi * np.hypot(u[m] - cu, v[m] - cv) / r
    return out


def _brow(P, side: float, width: float) -> np.ndarray:
    """A thin brow arc over the eye on ``side`` (+1 left): thick at the head, tapering to the tail."""
    e = L["eye_l"] * (side, 1, 1)
    t = (np.abs(P[:, 0]) - (abs(e[0]) - 0.019)) / 0.041          # 0 at the brow's head, 1 at its tail
    centre = L["brow_l"][1] - 0.001 + 0.005 * np.sin(np.pi * np.clip(t, 0, 1) * 0.8) - 0.007 * np.clip(t - 0.75, 0, 1) * 4
    half = width * (1.0 - 0.55 * np.clip(t, 0, 1))
    across = 1 - _ramp(np.abs(P[:, 1] - centre), half * 0.55, half)
    along = _ramp(t, -0.02, 0.1) * (1 - _ramp(t, 0.92, 1.04))
    return across * along * (np.sign(P[:, 0]) == side) * (P[:, 2] > e[2] - 0.005)


MASK_NAMES = ("skin", "variation", "freckles_1", "freckles_2", "freckles_3", "blush", "lips",
              "brow_thin", "brow_thick", "eyeliner", "eyeshadow", "stubble", "sclera", "iris", "pupil")


@lru_cache(maxsize=8)
def _masks(tm: TexelMap) -> np.ndarray:
    """(K, N) float32 per-texel masks, in :data:`MASK_NAMES` order."""
    P, parts = tm.points.astype(np.float64), tm.parts
    names = np.array(_part_names())[parts]
    eye = np.isin(names, ["eye_l", "eye_r"])
    skin = (~eye).astype(np.float32)
    front = np.clip(tm.normals[:, 2] * 2.0, 0.0, 1.0)  # faces forward
    face = np.isin(names, ["face", "nose", "forehead", "chin", "mouth", "head"])
    # freckles: nested spot sets (more spots at higher density) over nose, cheeks and shoulders
    spots, rank = _spots(P, 0.0042, 0.0014, 1)
    cheeks = _ellipse(P, L["nose_bridge"] - (0, 0.022, 0), (0.075, 0.035, 0.08)) * front
    shoulders = _ellipse(P, np.array([0, anatomy.JOINTS["shoulder_l"][1] + 0.03, 0.0]), (0.3, 0.07, 0.3)) * 0.6
    zone = np.maximum(cheeks, shoulders) * np.isin(names, ["face", "nose", "chest", "neck", "upper_arm_l",
                                                          "upper_arm_r", "forehead", "head"])
    freckles = [zone * skin * spots * ((rank >= lo) & (rank < hi)) for lo, hi in ((0, 0.34), (0.34, 0.67), (0.67, 1.01))]
    blush = _both_sides(P, "cheek_l", (0.024, 0.02, 0.03)) * skin * front
    # lips: MPFB2's artist-painted lip mask on MakeHuman's UVs (the vermilion and mouth corners)
    lips = np.clip(_uv_mask_on_surface(tm, "lips") * 1.15, 0, 1) * skin * np.isin(names, ["mouth", "face", "chin"])
    brow = [(np.maximum(_brow(P, 1.0, w), _brow(P, -1.0, w)) * face * skin
             * (0.8 + 0.2 * _noise(P, 0.0025, 7, 16))).astype(np.float32) for w in (0.0032, 0.0052)]
    # around the real eye openings: distance from each skin point to its eyeball's surface
    eye_ring = np.zeros(len(P), np.float32)
    shadow = np.zeros(len(P), np.float32)
    lid_ball = _eyeballs(tm)
    for c, r in lid_ball:
        d = P - c
        dist = np.linalg.norm(d, axis=1)
        gap = dist - r
        ahead = d[:, 2] / np.maximum(dist, 1e-9)                 # cos of the angle from the gaze
        sel = _ramp(ahead, 0.2, 0.45) * (1 - _ramp(np.abs(d[:, 0]), 0.018, 0.028)) * (np.sign(d[:, 0]) == np.sign(c[0]))
        upper = d[:, 1] > -0.001
        liner = (1 - _ramp(gap, 0.0015, 0.0042)) * np.where(upper, 1.0, 0.55)
        eye_ring = np.maximum(eye_ring, liner * sel)
        lid = (1 - _ramp(gap, 0.004, 0.011)) * _ramp(d[:, 1], -0.003, 0.002) * (1 - _ramp(d[:, 1], 0.011, 0.016))
        shadow = np.maximum(shadow, lid * sel)
    eye_ring *= skin * face
    shadow *= skin * face * (1 - brow[1])
    stubble = _beard_zone(P, names) * (1 - lips) * skin * (0.88 + 0.12 * _noise(P, 0.0025, 2, 16))
    # eyes: the iris and pupil are rings of each eyeball's UV disc (eyes.IRIS_ANGLE, eyes.PUPIL_ANGLE)
    from avatar.body.eyes import IRIS_ANGLE, PUPIL_ANGLE

    polar = np.nan_to_num(eye_polar(tm), nan=np.pi)
    edge = 0.025
    in_iris = (1 - _ramp(polar, IRIS_ANGLE - edge, IRIS_ANGLE + edge)) * eye
    pupil = (1 - _ramp(polar, PUPIL_ANGLE - edge, PUPIL_ANGLE + edge)) * eye
    fibres = 0.8 + 0.2 * np.sin(np.arctan2(P[:, 1] - lid_ball[0][0][1], P[:, 0]) * 23.0)
    limbus = 1 - 0.45 * _ramp(polar, IRIS_ANGLE * 0.75, IRIS_ANGLE)      # darker rim
    iris = (in_iris - pupil) * fibres * limbus
    sclera = (1 - in_iris) * eye * (1 - 0.12 * _ramp(polar, 1.2, 1.6))
    variation = _noise(P, 0.08, 3, 8) * skin
    rows = [skin, variation, *freckles, blush, lips, *brow, eye_ring, shadow, stubble, sclera, iris, pupil]
    return np.stack(rows).astype(np.float32)


def _eyeballs(tm: TexelMap):
    """((centre (3,), radius), ...) of the template's two eyeballs, left then right."""
    from avatar.body.template import load

    t = load(getattr(tm, "template_name", "humanoid"))
    out = []
    for side in ("eye_l", "eye_r"):
        v = t.vertices[t.part_mask(side)]
        c = v.mean(0)
        out.append((c, float(np.linalg.norm(v - c, axis=1).mean())))
    return out


def _beard_zone(P, names) -> np.ndarray:
    """Where a beard grows: upper lip, chin, jaw and cheeks below the cheekbone line, under the jaw."""
    x, y = np.abs(P[:, 0]), P[:, 1]
    nose, mouth, chin, ear = L["nose_tip"], L["mouth"], L["chin"], L["ear_l"]
    # upper edge: under the nose at the midline, the cheek line rising to the sideburn before the ear
    top = np.interp(x, [0.0, 0.016, 0.03, 0.058, 0.07], [nose[1] - 0.013, nose[1] - 0.014, mouth[1] + 0.006,
                                                        ear[1] + 0.012, ear[1] + 0.02])
    below = 1 - _ramp(y - top, -0.012, 0.004)
    ahead = _ramp(P[:, 2], ear[2] - 0.01, ear[2] + 0.01)           # in front of the ears
    under = _ramp(y, L["throat"][1] + 0.01, L["throat"][1] + 0.03)  # down to the upper neck
    where = np.isin(names, ["face", "mouth", "chin", "head", "neck"])
    return (below * ahead * under * where).astype(np.float32) * (1 - np.isin(names, ["nose"]))


def _part_names():
    from avatar.body.template import PART_NAMES

    return PART_NAMES


# --------------------------------------------------------------------------
# 2. colours: per avatar, from the sliders
# --------------------------------------------------------------------------
def _palette(name: str, idx: np.ndarray, categories) -> np.ndarray:
    table = np.array([PALETTES[name][c] for c in categories], np.float32)
    return table[idx.astype(np.int64)]


def ethnic_colour(races: np.ndarray) -> np.ndarray:
    """(n, 3) MakeHuman's skin colour for african/asian/caucasian values (n, 3), normalised as the macros are."""
    from avatar.body.macros import normalise_races

    return (normalise_races(races) @ ETHNIC_SKIN).astype(np.float32)


def skin_colour(tone: np.ndarray, undertone: np.ndarray, races: np.ndarray | None = None) -> np.ndarray:
    """(n, 3) base skin colour.

    races : (n, 3) african/asian/caucasian slider values (None: an even blend);
    tone : 0 lighter .. 50 as the blend .. 100 darker; undertone : 0 cool .. 100 warm.
    """
    tone = np.asarray(tone, np.float32)
    if races is None:
        races = np.ones((len(tone), 3))
    base = ethnic_colour(races)
    f = ((np.clip(tone, 0, 100) - 50.0) / 50.0)[:, None]
    base = np.where(f > 0, base + f * (DARKEST - base), base - f * (LIGHTEST - base))
    u = (np.asarray(undertone, np.float32)[:, None] - 50.0) / 50.0
    return base + np.where(u < 0, -u * COOL, u * WARM) * (0.4 + 0.6 * base.mean(1, keepdims=True) / 200.0)


def _races(v: dict) -> np.ndarray:
    return np.stack([np.asarray(v[r], np.float64) for r in RACES], axis=1)


def layer_colours(v: dict, categories: dict) -> np.ndarray:
    """(n, K, 3) colour coefficient of each mask (in :data:`MASK_NAMES` order)."""
    base = skin_colour(v["skin.tone"], v["skin.undertone"], _races(v))
    n = len(base)

    def pct(name):
        return (np.asarray(v[name], np.float32) / 100.0)[:, None]

    freckle = base * 0.72 - 6.0  # darker, browner spots
    density = pct("skin.freckles")[:, 0] * 3.0
    # nested spot sets fade in one after another as density rises
    fw = [np.clip(density - k, 0, 1)[:, None] * 0.7 for k in range(3)]
    natural_lip = base * np.array([0.84, 0.62, 0.64], np.float32) + np.array([8, 0, 2], np.float32)
    lip = natural_lip + pct("skin.lipstick") * (
        _palette("skin.lip_colour", v["skin.lip_colour"], categories["skin.lip_colour"]) - natural_lip)
    brow = _palette("skin.brow_colour", v["skin.brow_colour"], categories["skin.brow_colour"])
    thick = pct("skin.brow_thickness")
    shadow = _palette("skin.eyeshadow_colour", v["skin.eyeshadow_colour"],
                      categories["skin.eyeshadow_colour"])
    iris = _palette("skin.iris_colour", v["skin.iris_colour"], categories["skin.iris_colour"])
    blush_colour = np.array([222, 110, 110], np.float32)
    rows = [
        base,                                              # skin
        base * 0.03,                                       # variation (+-3%)
        *[w * (freckle - base) for w in fw],               # freckles
        pct("skin.blush") * 0.3 * (blush_colour - base),   # blush
        lip - base,                                        # lips
        0.9 * (1 - thick) * (brow - base),                 # thin brow
        0.9 * thick * (brow - base),                       # thick brow
        pct("skin.eyeliner") * 0.9 * (np.float32(18) - base),   # eyeliner
        pct("skin.eyeshadow") * 0.65 * (shadow - base),    # eyeshadow
        pct("skin.stubble") * 0.5 * (brow * 0.6 + base * 0.25 - base),  # stubble
        np.broadcast_to(SCLERA, (n, 3)),                   # sclera
        iris,                                              # iris
        np.broadcast_to(PUPIL, (n, 3)),                    # pupil
    ]
    return np.stack(rows, axis=1).astype(np.float32)


# --------------------------------------------------------------------------
# hair: short scalp hair painted over the head, per avatar (style, colour, hairline)
# --------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Scalp:
    """The texels hair may cover: idx (M,), azimuth a (M,) (0 at the front, pi at the back, radians),
    y (M,) height, crown (M,) height above the ears' tops, grain (M,) fine noise in [-1, 1]."""

    idx: np.ndarray
    a: np.ndarray
    y: np.ndarray
    crown: np.ndarray
    grain: np.ndarray


@lru_cache(maxsize=8)
def scalp(tm: TexelMap) -> Scalp:
    names = np.array(_part_names())[tm.parts]
    P = tm.points.astype(np.float64)
    ear = L["ear_l"]
    keep = np.isin(names, ["head", "forehead", "face", "neck"]) & (P[:, 1] > L["jaw_angle_l"][1] - 0.02)
    keep &= ~((np.abs(P[:, 0]) < 0.05) & (P[:, 2] > L["eye_l"][2] - 0.02) & (P[:, 1] < L["brow_l"][1] + 0.02))
    idx = np.flatnonzero(keep)
    p = P[idx]
    a = np.abs(np.arctan2(p[:, 0], p[:, 2] - ear[2]))
    grain = 0.6 * _noise(p, 0.0022, 11, 24) + 0.4 * _noise(p, 0.009, 12, 12)
    return Scalp(idx, a.astype(np.float32), p[:, 1].astype(np.float32),
                 (p[:, 1] - L["ear_top_l"][1]).astype(np.float32), grain.astype(np.float32))


def hairline_height(a: np.ndarray, raise_m: np.ndarray, temples: np.ndarray) -> np.ndarray:
    """(m, M) height of the hairline at azimuths ``a`` (M,) for ``raise_m`` (m,) metres higher at the
    front and ``temples`` (m,) extra metres of recession at the temples (an M-shaped hairline)."""
    brow, eye, ear, top = L["brow_l"][1], L["eye_l"][1], L["ear_l"][1], L["ear_top_l"][1]
    deg = np.degrees(a)
    base = np.interp(deg, [0, 25, 45, 62, 78, 92, 105, 125, 150, 180],
                     [brow + 0.056, brow + 0.052, brow + 0.04, eye + 0.03, ear + 0.01, ear + 0.008,
                      top + 0.006, top + 0.002, ear - 0.01, ear - 0.045])
    front = np.clip(1 - deg / 80.0, 0, 1)
    temple = np.exp(-((deg - 40.0) / 14.0) ** 2)
    return base[None] + raise_m[:, None] * front[None] + temples[:, None] * temple[None]


def hair_coverage(sc: Scalp, style: str, hairline: np.ndarray) -> np.ndarray:
    """(m, M) hair cover of one style over the scalp texels; hairline (m,) 0 low .. 100 high."""
    h = np.asarray(hairline, np.float32) / 100.0
    m = len(h)
    if style == "bald":
        return np.zeros((m, len(sc.idx)), np.float32)
    raise_m = (h - 0.3) * 0.035
    temples = np.zeros(m, np.float32)
    if style == "receding":
        temples = temples + 0.022 + 0.02 * h
    line = hairline_height(sc.a, raise_m, temples)
    if style == "widow":  # a peak at the middle of the forehead
        line = line - 0.012 * np.exp(-(np.degrees(sc.a) / 9.0) ** 2)[None]
    edge = 0.003 if style != "buzz" else 0.0022
    cover = _ramp(sc.y[None] - line, -edge, edge)
    density = {"crew": 0.96, "buzz": 0.62, "receding": 0.93, "balding": 0.9, "undercut": 0.95, "widow": 0.96}[style]
    if style == "balding":  # a horseshoe: the crown and top are bare
        cover = cover * (1 - _ramp(sc.crown, 0.02, 0.035))[None]
    if style == "receding":  # thinning crown
        cover = cover * (1 - 0.35 * _ramp(sc.crown, 0.055, 0.075))[None]
    if style == "undercut":  # long on top, clippered sides and back
        top = _ramp(sc.crown, 0.022, 0.03)
        density = density * (0.45 + 0.55 * top)[None]
    grain = 0.85 + 0.15 * sc.grain
    return (cover * density * grain[None]).astype(np.float32)


def _paint_hair(texels: np.ndarray, tm: TexelMap, v: dict, cats: dict) -> None:
    """Paint each avatar's hair into its texels (c, 3, N), in place."""
    if "hair.style" not in cats:
        return
    sc = scalp(tm)
    colour = _palette("hair.colour", v["hair.colour"], cats["hair.colour"])     # (c, 3)
    for s, style in enumerate(cats["hair.style"]):
        who = np.flatnonzero(v["hair.style"] == s)
        if style == "bald" or not len(who):
            continue
        alpha = hair_coverage(sc, style, v["hair.hairline"][who])                # (w, M)
        shade = (1.0 + 0.22 * sc.grain)[None, None, :]                           # strands: lighter, darker
        ink = colour[who][:, :, None] * shade                                    # (w, 3, M)
        # flat indices of only the scalp texels: one 1-D gather and one put beat 3-D fancy indexing
        n_tex = texels.shape[2]
        at = ((who[:, None, None] * 3 + np.arange(3)[None, :, None]) * n_tex + sc.idx[None, None, :]).ravel()
        flat = texels.reshape(-1)
        cur = flat[at].reshape(len(who), 3, -1)                                  # (w, 3, M)
        flat[at] = (cur + alpha[:, None] * (ink - cur)).ravel()


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
            elif name == "hair.style":
                choices = HAIR_STYLES
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
        _paint_hair(texels, tm, values, cats)
        _paint_tattoos(texels, tm, values, cats)
        np.clip(texels, 0, 255, out=texels)
        rgb = np.empty((c, texels.shape[2], 3), np.uint8)                       # (c, N, 3)
        np.copyto(rgb, texels.transpose(0, 2, 1), casting="unsafe")              # cast and interleave in one pass
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
