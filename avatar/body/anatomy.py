"""The neutral body's layout: skeleton joints, bones and named landmarks.

Plain data, in metres. +y is up, the figure faces +z, and its left side is +x
(glTF conventions). The soles rest on y = 0. Names ending in ``_l`` are on the
left; :func:`mirror_name` and :data:`LANDMARKS` add the ``_r`` twins, so the
left side is the only side written down and the body is symmetric by
construction.

Both the template builder (which places its shapes on these points) and the
deformers (which act around them) read this module, so a slider's "nose_tip"
is exactly where the template's nose tip was built.
"""
from __future__ import annotations

import numpy as np

# 1. joints of the left side and the midline ---------------------------------
_JOINTS_LEFT = {
    "pelvis": (0.0, 0.965, 0.0),
    "waist": (0.0, 1.09, -0.005),
    "chest": (0.0, 1.27, 0.0),
    "neck": (0.0, 1.455, -0.01),
    "head": (0.0, 1.565, 0.0),
    "crown": (0.0, 1.75, 0.0),
    "clavicle_l": (0.03, 1.44, 0.0),
    "shoulder_l": (0.185, 1.425, -0.01),
    "elbow_l": (0.375, 1.205, -0.025),
    "wrist_l": (0.535, 1.02, 0.0),
    "fingertip_l": (0.645, 0.885, 0.015),
    "hip_l": (0.088, 0.93, 0.0),
    "knee_l": (0.102, 0.515, 0.005),
    "ankle_l": (0.108, 0.085, -0.03),
    "toe_l": (0.118, 0.025, 0.135),
}

# 2. bones: (name, parent bone, start joint, end joint). The start is nearer
# the pelvis (the root), so lengthening a bone carries its descendants.
_BONES_LEFT = (
    ("lower_spine", None, "pelvis", "waist"),
    ("upper_spine", "lower_spine", "waist", "chest"),
    ("chest", "upper_spine", "chest", "neck"),
    ("neck", "chest", "neck", "head"),
    ("head", "neck", "head", "crown"),
    ("clavicle_l", "chest", "clavicle_l", "shoulder_l"),
    ("upper_arm_l", "clavicle_l", "shoulder_l", "elbow_l"),
    ("forearm_l", "upper_arm_l", "elbow_l", "wrist_l"),
    ("hand_l", "forearm_l", "wrist_l", "fingertip_l"),
    ("thigh_l", None, "hip_l", "knee_l"),
    ("shin_l", "thigh_l", "knee_l", "ankle_l"),
    ("foot_l", "shin_l", "ankle_l", "toe_l"),
)

# 3. landmarks: named points the face and body shapes are built around -------
_LANDMARKS_LEFT = {
    # head and face
    "head_center": (0.0, 1.655, -0.005),
    "forehead": (0.0, 1.705, 0.075),
    "brow_l": (0.034, 1.668, 0.083),
    "glabella": (0.0, 1.662, 0.092),
    "eye_l": (0.0335, 1.645, 0.068),
    "temple_l": (0.066, 1.67, 0.035),
    "nose_bridge": (0.0, 1.642, 0.094),
    "nose_tip": (0.0, 1.600, 0.118),
    "nostril_l": (0.0125, 1.592, 0.102),
    "mouth": (0.0, 1.565, 0.096),
    "lip_upper": (0.0, 1.571, 0.101),
    "lip_lower": (0.0, 1.557, 0.098),
    "mouth_corner_l": (0.025, 1.565, 0.088),
    "cheekbone_l": (0.052, 1.617, 0.070),
    "cheek_l": (0.047, 1.588, 0.068),
    "jaw_angle_l": (0.058, 1.548, 0.010),
    "jaw_l": (0.045, 1.535, 0.050),
    "chin": (0.0, 1.518, 0.085),
    "ear_l": (0.079, 1.628, -0.008),
    "ear_top_l": (0.086, 1.655, -0.015),
    "occiput": (0.0, 1.64, -0.095),
    # body
    "throat": (0.0, 1.49, 0.04),
    "pectoral_l": (0.085, 1.30, 0.085),
    "belly": (0.0, 1.06, 0.09),
    "waist_side_l": (0.13, 1.09, 0.0),
    "hip_side_l": (0.165, 0.93, 0.0),
    "buttock_l": (0.085, 0.90, -0.08),
    "deltoid_l": (0.205, 1.41, -0.005),
    "upper_back": (0.0, 1.33, -0.10),
    "palm_l": (0.585, 0.955, 0.01),
    "calf_l": (0.105, 0.33, -0.045),
    "thigh_front_l": (0.10, 0.72, 0.06),
    "foot_l": (0.112, 0.04, 0.04),
}


def mirror_name(name: str) -> str:
    """``"eye_l"`` -> ``"eye_r"``; midline names are their own mirror."""
    if name.endswith("_l"):
        return name[:-2] + "_r"
    if name.endswith("_r"):
        return name[:-2] + "_l"
    return name


def _with_right_side(points: dict[str, tuple]) -> dict[str, np.ndarray]:
    out = {}
    for name, p in points.items():
        out[name] = np.array(p, dtype=float)
        if name.endswith("_l"):
            out[mirror_name(name)] = np.array(p, dtype=float) * (-1.0, 1.0, 1.0)
    return out


JOINTS: dict[str, np.ndarray] = _with_right_side(_JOINTS_LEFT)
LANDMARKS: dict[str, np.ndarray] = _with_right_side(_LANDMARKS_LEFT)


def _bones() -> tuple[dict[str, tuple[str, str]], dict[str, str | None]]:
    ends, parents = {}, {}
    for name, parent, a, b in _BONES_LEFT:
        ends[name], parents[name] = (a, b), parent
        if name.endswith("_l"):
            twin = mirror_name(name)
            ends[twin] = (mirror_name(a), mirror_name(b))
            parents[twin] = mirror_name(parent) if parent else None
    return ends, parents


BONES, BONE_PARENTS = _bones()
"""Bone name -> (start joint, end joint); bone name -> parent bone or None."""

BONE_NAMES: tuple[str, ...] = tuple(BONES)


def bone_parent(bone: str) -> str | None:
    """The bone this one hangs from (None for the spine root and the thighs)."""
    return BONE_PARENTS[bone]


def bone_descendants(bone: str) -> list[str]:
    """Every bone distal to ``bone`` (carried along when it lengthens)."""
    out, frontier = [], [bone]
    while frontier:
        b = frontier.pop()
        kids = [k for k in BONES if bone_parent(k) == b]
        out.extend(kids)
        frontier.extend(kids)
    return out


def point(name: str) -> np.ndarray:
    """A joint or landmark by name, shape (3,)."""
    if name in JOINTS:
        return JOINTS[name]
    return LANDMARKS[name]


POINT_NAMES: tuple[str, ...] = tuple(JOINTS) + tuple(n for n in LANDMARKS if n not in JOINTS)
