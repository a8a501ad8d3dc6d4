"""The neutral body's layout: skeleton joints, bones and named landmarks, read off MakeHuman's body.

Points are in the template's frame (metres, +y up, facing +z, soles of the
base mesh on y = 0; the figure's left is +x). Joints are the centroids of
MakeHuman's joint cubes (``joint-*`` helper groups of base.obj, the points its
skeletons are built on); landmarks are vertices or vertex means of the body,
chosen by part and extreme (the nose tip is the nose's most forward vertex).
Names ending in ``_l`` are on the left; the ``_r`` twin is the mirror image.

The deformers (which act around these points) and the skin painter (which
places make-up, stubble and freckles around them) read this module.
"""
from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from avatar.body import assets

# joint name -> base.obj joint cube (left side and midline)
_JOINT_CUBES = {
    "pelvis": "joint-pelvis", "waist": "joint-spine-3", "chest": "joint-spine-1", "neck": "joint-neck",
    "head": "joint-head", "crown": "joint-head-2", "clavicle_l": "joint-l-clavicle",
    "shoulder_l": "joint-l-shoulder", "elbow_l": "joint-l-elbow", "wrist_l": "joint-l-hand",
    "fingertip_l": "joint-l-finger-3-4", "hip_l": "joint-l-upper-leg", "knee_l": "joint-l-knee",
    "ankle_l": "joint-l-ankle", "toe_l": "joint-l-foot-2", "eye_l": "joint-l-eye", "jaw": "joint-jaw",
}
# bones: (name, parent bone, start joint, end joint); the start is nearer the pelvis
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


def mirror_name(name: str) -> str:
    """``"eye_l"`` -> ``"eye_r"``; midline names are their own mirror."""
    if name.endswith("_l"):
        return name[:-2] + "_r"
    if name.endswith("_r"):
        return name[:-2] + "_l"
    return name


def _with_right_side(points: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for name, p in points.items():
        out[name] = np.asarray(p, dtype=float)
        if name.endswith("_l"):
            out[mirror_name(name)] = out[name] * (-1.0, 1.0, 1.0)
    return out


def floor_offset() -> float:
    """Metres the base mesh is raised by so that its soles rest on y = 0."""
    return -float(assets.base_mesh().vertices[: assets.N_BODY, 1].min())


def _standing(points: np.ndarray) -> np.ndarray:
    return np.asarray(points, float) + (0.0, floor_offset(), 0.0)


@lru_cache(maxsize=1)
def _joints() -> dict[str, np.ndarray]:
    base, groups = assets.base_mesh(), assets.vertex_groups()
    return _with_right_side({j: _standing(base.vertices[groups[c]].mean(axis=0)) for j, c in _JOINT_CUBES.items()})


@lru_cache(maxsize=1)
def _landmarks() -> dict[str, np.ndarray]:
    from avatar.body.template import load

    t = load()
    v = t.vertices[: t.n_body]
    parts = t.parts[: t.n_body]
    P = {n: i for i, n in enumerate(t.part_names)}
    J = _joints()

    def part(*names):
        return np.isin(parts, [P[n] for n in names])

    def extreme(mask, axis, sign=1, side=None):
        m = mask & ((v[:, 0] > 0.003) if side == "l" else True)
        idx = np.flatnonzero(m)
        return v[idx[np.argmax(sign * v[idx, axis])]]

    def near(point, mask, radius):
        """Mean of the surface vertices of ``mask`` within ``radius`` of the one nearest ``point``."""
        idx = np.flatnonzero(mask)
        closest = v[idx[np.argmin(np.linalg.norm(v[idx] - point, axis=1))]]
        return v[idx[np.linalg.norm(v[idx] - closest, axis=1) < radius]].mean(axis=0)

    head = part("head", "forehead", "face", "nose", "mouth", "chin", "ear_l", "ear_r")
    mid = np.abs(v[:, 0]) < 0.004
    nose_tip = extreme(part("nose") & mid, 2)
    eye = J["eye_l"]
    mouth_pts = v[part("mouth")]
    mouth_front = extreme(part("mouth") & mid, 2)
    lm = {
        "head_center": 0.5 * (J["head"] + J["crown"]) + (0.0, 0.0, -0.01),
        "forehead": extreme(part("forehead") & mid, 2),
        "glabella": extreme(head & mid & (v[:, 1] > eye[1]) & (v[:, 1] < eye[1] + 0.02), 2),
        "eye_l": eye,
        "brow_l": extreme(head & (np.abs(v[:, 0] - eye[0]) < 0.006) & (v[:, 1] > eye[1] + 0.012)
                          & (v[:, 1] < eye[1] + 0.03), 2),
        "temple_l": near(eye + (0.035, 0.02, -0.05), head, 0.02),
        "nose_tip": nose_tip,
        "nose_bridge": extreme(head & mid & (v[:, 1] > nose_tip[1] + 0.025) & (v[:, 1] < eye[1] + 0.005), 2),
        "nostril_l": near(nose_tip + (0.012, -0.01, -0.012), part("nose"), 0.008),
        "mouth": mouth_front - (0.0, 0.0, 0.004),
        "lip_upper": extreme(part("mouth") & mid & (v[:, 1] > mouth_front[1]), 2),
        "lip_lower": extreme(part("mouth") & mid & (v[:, 1] < mouth_front[1] - 0.003), 2),
        "mouth_corner_l": mouth_pts[np.argmax(mouth_pts[:, 0] - 3 * np.abs(mouth_pts[:, 1] - mouth_front[1]))],
        "cheekbone_l": near(eye + (0.025, -0.025, 0.03), head, 0.008),
        "cheek_l": near(eye + (0.018, -0.045, 0.03), head, 0.008),
        "jaw_l": near(mouth_front + (0.045, -0.03, -0.05), head, 0.015),
        "jaw_angle_l": near(mouth_front + (0.058, -0.015, -0.11), head | part("neck"), 0.015),
        "chin": extreme(part("chin") & mid, 2),
        "ear_l": v[part("ear_l")].mean(axis=0),
        "ear_top_l": extreme(part("ear_l"), 1),
        "occiput": extreme(head & mid & (v[:, 1] > eye[1] - 0.01) & (v[:, 1] < eye[1] + 0.03), 2, -1),
        "throat": extreme(part("neck") & mid, 2),
        "pectoral_l": near(J["chest"] + (0.085, 0.03, 0.09), part("chest"), 0.04),
        "belly": extreme(part("abdomen") & mid & (np.abs(v[:, 1] - J["waist"][1]) < 0.03), 2),
        "waist_side_l": extreme(part("abdomen") & (np.abs(v[:, 1] - J["waist"][1]) < 0.02), 0),
        "hip_side_l": extreme(part("pelvis", "thigh_l") & (np.abs(v[:, 1] - J["hip_l"][1]) < 0.02), 0),
        "buttock_l": near(J["hip_l"] + (0.0, -0.03, -0.1), part("pelvis", "thigh_l"), 0.04),
        "deltoid_l": extreme(part("upper_arm_l") & (np.abs(v[:, 1] - J["shoulder_l"][1]) < 0.03), 0),
        "upper_back": extreme(part("chest") & mid & (np.abs(v[:, 1] - J["chest"][1] - 0.05) < 0.02), 2, -1),
        "palm_l": 0.5 * (J["wrist_l"] + J["fingertip_l"]),
        "calf_l": near(0.6 * J["knee_l"] + 0.4 * J["ankle_l"] + (0.0, 0.0, -0.05), part("shin_l"), 0.04),
        "thigh_front_l": near(0.5 * (J["hip_l"] + J["knee_l"]) + (0.0, 0.0, 0.07), part("thigh_l"), 0.04),
        "foot_l": 0.5 * (J["ankle_l"] + J["toe_l"]),
    }
    return _with_right_side(lm)


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
_LANDMARK_NAMES = ("head_center", "forehead", "glabella", "eye_l", "brow_l", "temple_l", "nose_tip",
                   "nose_bridge", "nostril_l", "mouth", "lip_upper", "lip_lower", "mouth_corner_l",
                   "cheekbone_l", "cheek_l", "jaw_l", "jaw_angle_l", "chin", "ear_l", "ear_top_l", "occiput",
                   "throat", "pectoral_l", "belly", "waist_side_l", "hip_side_l", "buttock_l", "deltoid_l",
                   "upper_back", "palm_l", "calf_l", "thigh_front_l", "foot_l")


def _both(names) -> tuple[str, ...]:
    return tuple(dict.fromkeys(x for n in names for x in (n, mirror_name(n))))


POINT_NAMES: tuple[str, ...] = _both(list(_JOINT_CUBES) + list(_LANDMARK_NAMES))
"""Every joint and landmark name a rig's ``at:`` may give."""


class _Lazy(Mapping):
    """A read-only mapping filled on first access (the points need the assets, which a YAML check must not load)."""

    def __init__(self, fill):
        self._fill = fill

    @property
    def _data(self) -> dict:
        return self._fill()  # lru_cached: computed once

    def __getitem__(self, k):
        return self._data[k]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)


JOINTS: Mapping[str, np.ndarray] = _Lazy(_joints)
LANDMARKS: Mapping[str, np.ndarray] = _Lazy(_landmarks)


def point(name: str) -> np.ndarray:
    """A joint or landmark by name, (3,) metres."""
    return JOINTS[name] if name in _both(_JOINT_CUBES) else LANDMARKS[name]


def bone_parent(bone: str) -> str | None:
    """The bone this one hangs from (None for the spine root and the thighs)."""
    return BONE_PARENTS[bone]


def bone_descendants(bone: str) -> list[str]:
    """Every bone distal to ``bone`` (carried along when it lengthens)."""
    out, frontier = [], [bone]
    while frontier:
        b = frontier.pop()
        kids = [k for k, p in BONE_PARENTS.items() if p == b]
        out += kids
        frontier += kids
    return out
