"""Body regions for region features: which vertices and texels a named region covers.

A region is a list of part names: the template's own parts (``nose``, ``ear_l``,
``thigh_r``, ... see :data:`avatar.body.template.PART_NAMES`) or the groups
below, which name several parts at once::

    vertices: {parts: [whole_head], align: similarity}    # the head, scale removed
    textures: {parts: [face, nose, mouth], size: 32}      # the texels of the face

Everything here reads a *layout*: any object with ``faces`` (F, 3),
``uv`` (E, 2), ``uv_faces`` (F, 3), ``parts`` (V,) and ``part_names``: a
dataset store and a :class:`avatar.body.template.Template` both are one.
"""
from __future__ import annotations

import numpy as np

__all__ = ["GROUPS", "expand", "vertex_index", "texel_index", "region_names"]

_HEAD = ("head", "forehead", "face", "nose", "mouth", "chin", "ear_l", "ear_r", "eye_l", "eye_r")
_SIDES = ("l", "r")
GROUPS: dict[str, tuple[str, ...]] = {
    "whole_head": _HEAD,
    "ears": ("ear_l", "ear_r"),
    "eyes": ("eye_l", "eye_r"),
    "torso": ("chest", "abdomen", "pelvis"),
    "arms": tuple(f"{p}_{s}" for p in ("upper_arm", "forearm") for s in _SIDES),
    "hands": ("hand_l", "hand_r"),
    "legs": tuple(f"{p}_{s}" for p in ("thigh", "shin") for s in _SIDES),
    "feet": ("foot_l", "foot_r"),
}
# everything below the head: the neck, trunk and limbs
GROUPS["body"] = ("neck",) + GROUPS["torso"] + GROUPS["arms"] + GROUPS["hands"] + GROUPS["legs"] + GROUPS["feet"]


def region_names(part_names) -> list[str]:
    """Every name a region may use with these parts: the parts, then the groups."""
    return list(part_names) + [g for g, members in GROUPS.items() if set(members) <= set(part_names)]


def expand(names, part_names) -> list[str]:
    """Part and group names -> the part names they cover, in ``part_names`` order.

    ValueError (with a suggestion) for a name that is neither a part nor a group.
    """
    from avatar.spec.config import did_you_mean

    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not names:
        raise ValueError("a region needs at least one part")
    want = set()
    for name in names:
        if name in part_names:
            want.add(name)
        elif name in GROUPS and set(GROUPS[name]) <= set(part_names):
            want.update(GROUPS[name])
        else:
            options = region_names(part_names)
            raise ValueError(f"unknown part {name!r}{did_you_mean(str(name), options)}; parts: "
                             f"{', '.join(options)}")
    return [p for p in part_names if p in want]


def vertex_index(layout, names) -> np.ndarray:
    """(m,) int64 sorted indices of the vertices in the named parts."""
    parts = np.asarray(layout.parts)
    ids = [list(layout.part_names).index(p) for p in expand(names, tuple(layout.part_names))]
    return np.flatnonzero(np.isin(parts, ids)).astype(np.int64)


def texel_index(layout, names, size: int) -> np.ndarray:
    """(m,) int64 sorted flat indices (row * size + col) of the ``size`` x ``size`` texels whose
    centres fall inside a UV triangle of the named parts (a texel takes the part of the corner
    nearest to it, as the texture's own part map does)."""
    from avatar.skin.texels import rasterize

    texel, face, bary = rasterize(np.asarray(layout.uv, np.float64), np.asarray(layout.uv_faces), int(size))
    corner = np.asarray(layout.faces)[face, bary.argmax(axis=1)]      # (N,) 3D vertex of each texel
    ids = [list(layout.part_names).index(p) for p in expand(names, tuple(layout.part_names))]
    return np.sort(texel[np.isin(np.asarray(layout.parts)[corner], ids)]).astype(np.int64)
