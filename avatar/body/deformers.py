"""Deformers: what a slider's ``effects`` do to MakeHuman's body, as arrays.

Our own vocabulary (length, girth, scale, move, bump, rotate) turns one effect
into a displacement field ``(V, 3)``: the offset of every template vertex
when the effect is at full strength, on the neutral MakeHuman body. Bones run
between the joint cubes of base.obj (:data:`avatar.body.anatomy.BONES`,
:data:`~avatar.body.anatomy.JOINTS`); ``at:`` names a joint or a landmark
(:data:`~avatar.body.anatomy.LANDMARKS`). A slider's effects add up into one
field per feature, next to MakeHuman's own targets (the ``target`` effect,
which :mod:`avatar.body.rig` reads from a ``.target`` file), and an avatar is
the template plus a weighted sum of those fields, so the whole batch is one
sparse matrix product. Pose and stature are MakeHuman's (its macros
and, later, its skeleton), so there is no bend or stature deformer.

Everything that depends only on the template (bone coordinates, skinning
weights, normals, the mirror map) is computed once in :class:`Frame`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from avatar.body import anatomy
from avatar.body.template import Template

LINEAR = ("length", "girth", "scale", "move", "bump", "rotate")
MIRROR = np.array([-1.0, 1.0, 1.0])
JOINT_SCALE = 0.04  # metres past a bone's end that count as one bone radius


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, C1-smooth in between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def diffuse(values: np.ndarray, faces: np.ndarray, iterations: int) -> np.ndarray:
    """Average (V, k) per-vertex values with their mesh neighbours, ``iterations`` times.

    Each step keeps half of a vertex's value and takes half from the mean of
    its neighbours, which spreads a sharp step over roughly sqrt(iterations)
    edges without moving smooth regions.
    """
    from scipy.sparse import coo_matrix

    n = int(faces.max()) + 1
    i = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 1], faces[:, 2], faces[:, 0]])
    j = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0], faces[:, 0], faces[:, 1], faces[:, 2]])
    adj = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()
    adj.data[:] = 1.0  # duplicate edges count once
    mean = adj.multiply(1.0 / np.asarray(adj.sum(axis=1))).tocsr()
    for _ in range(iterations):
        values = 0.5 * values + 0.5 * (mean @ values)
    return values


def falloff(vertices: np.ndarray, center: np.ndarray, radius) -> np.ndarray:
    """(V,) weight 1 at ``center`` easing to exactly 0 at the (ellipsoidal) ``radius``.

    Compact support keeps a micro slider's field exactly zero outside its
    region, which is what makes the rig's blend sparse and sliders local.
    """
    q2 = (((vertices - center) / np.asarray(radius, float)) ** 2).sum(axis=1)
    return np.where(q2 < 1.0, (1.0 - q2) ** 2, 0.0)


@dataclass(frozen=True, eq=False)
class Frame:
    """Template-only data the deformers read, computed once per rig."""

    template: Template

    @property
    def vertices(self) -> np.ndarray:
        return self.template.vertices

    @cached_property
    def bone_axes(self) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
        """Bone -> (start point (3,), unit direction (3,), length)."""
        out = {}
        for bone, (a, b) in anatomy.BONES.items():
            start, end = anatomy.JOINTS[a], anatomy.JOINTS[b]
            length = float(np.linalg.norm(end - start))
            out[bone] = (start, (end - start) / length, length)
        return out

    @cached_property
    def along(self) -> np.ndarray:
        """(V, B) position of each vertex along each bone, 0 at its start, 1 at its end."""
        cols = [((self.vertices - s) @ u) / n for s, u, n in self.bone_axes.values()]
        return np.stack(cols, axis=1)

    @cached_property
    def skin_smooth(self) -> np.ndarray:
        """(V, B) smooth skinning weights (rows sum to 1), for carrying parts along.

        Weights fall off as distance^-8, so a vertex follows its own bone and
        blends near joints; the head and face start on the head bone alone
        (the jaw is as near the neck and collarbones as the skull's axis).
        Weights under 3% are cut (inverse distances never reach zero, and a
        thick arm would nudge the hips), then diffused a little over the mesh
        so that no deformer creases along a part border; that lets the jaw's
        underside follow the neck a little, so the neck never folds into it.
        """
        radial, beyond = zip(*(self._bone_offsets(b) for b in anatomy.BONE_NAMES))
        radial, beyond = np.stack(radial, axis=1), np.stack(beyond, axis=1)
        # Distance around a bone counts in that bone's own radius (the front of
        # the chest is nearer the thin upper arm's axis than the thick trunk's,
        # yet belongs to the trunk); distance past a bone's end counts in
        # JOINT_SCALE, so joints stay crisp whatever the bones' thickness.
        d = np.hypot(radial, beyond)
        nearest = d.argmin(axis=1)
        radius = np.array([np.median(radial[nearest == j, j]) if (nearest == j).any() else 0.05
                           for j in range(d.shape[1])])
        # midline ties go to the left bone: give both sides the same radius
        twin = [anatomy.BONE_NAMES.index(anatomy.mirror_name(b)) for b in anatomy.BONE_NAMES]
        radius = 0.5 * (radius + radius[twin])
        d = np.hypot(radial / radius, beyond / JOINT_SCALE)
        w = self._part_allows() / np.maximum(d, 0.05) ** 8
        w /= w.sum(axis=1, keepdims=True)
        w = np.maximum(w - 0.03, 0.0)
        w = diffuse(w / w.sum(axis=1, keepdims=True), self.template.faces, iterations=6)
        return w / w.sum(axis=1, keepdims=True)

    @cached_property
    def skin(self) -> np.ndarray:
        """(V, B) the smooth weights with the head held to the head bone, for girth.

        Thickening the neck must not reshape the jaw.
        """
        w = self.skin_smooth * self._part_allows()
        return w / w.sum(axis=1, keepdims=True)

    def _bone_offsets(self, bone: str) -> tuple[np.ndarray, np.ndarray]:
        """(V,) distance from the bone's axis, and (V,) distance past its ends."""
        start, unit, length = self.bone_axes[bone]
        axial = (self.vertices - start) @ unit
        radial = np.linalg.norm(self.vertices - (start + axial[:, None] * unit), axis=1)
        return radial, np.maximum(axial - length, 0.0) + np.maximum(-axial, 0.0)

    def _part_allows(self) -> np.ndarray:
        """(V, B) 1 where a vertex's part may be skinned to a bone, else 0."""
        names = np.array(self.template.part_names)[self.template.parts]
        allow = np.ones((len(names), len(anatomy.BONE_NAMES)))
        head = np.isin(names, ("head", "forehead", "face", "nose", "mouth", "chin",
                               "ear_l", "ear_r", "eye_l", "eye_r"))
        for j, bone in enumerate(anatomy.BONE_NAMES):
            if bone != "head":
                allow[head, j] = 0.0
        return allow

    @cached_property
    def normals(self) -> np.ndarray:
        return self.template.vertex_normals

    @cached_property
    def mirror(self) -> np.ndarray:
        return self.template.mirror

    def carried(self, bone: str) -> np.ndarray:
        """(V,) how much of ``bone`` lies between the root and each vertex (0..1).

        0 for vertices before the bone, the smoothed position along the bone for
        its own vertices, 1 for everything it carries (its descendants).
        """
        j = anatomy.BONE_NAMES.index(bone)
        own = self.skin_smooth[:, j] * smoothstep(self.along[:, j])
        kids = [anatomy.BONE_NAMES.index(b) for b in anatomy.bone_descendants(bone)]
        return own + self.skin_smooth[:, kids].sum(axis=1)


# --------------------------------------------------------------------------
# linear deformers: effect -> (V, 3) displacement at full strength
# --------------------------------------------------------------------------
def _length(frame: Frame, e: dict, amount) -> np.ndarray:
    _, unit, _ = frame.bone_axes[e["bone"]]
    return frame.carried(e["bone"])[:, None] * (float(amount) * unit)


def _girth(frame: Frame, e: dict, amount) -> np.ndarray:
    bone = e["bone"]
    start, unit, length = frame.bone_axes[bone]
    j = anatomy.BONE_NAMES.index(bone)
    t = frame.along[:, j]
    t0, t1 = e.get("span") or (0.0, 1.0)
    sided = anatomy.mirror_name(bone) != bone
    # ease in and out over ~4 cm on a limb, ~9 cm on the short, wide trunk
    # bones, whose sharper windows would ring the torso with bands
    ramp = min(max(0.15, 0.04 / length), 0.35) if sided else min(0.09 / length, 0.7)
    # A span's inner ends ease in/out inside it (nothing moves beyond), a bone's
    # own ends blend outwards into the neighbouring bone, except where a limb
    # joins the trunk (armpit, groin): its swelling must not push into the body.
    inner_start = sided or t0 > 0
    ease_in = smoothstep((t - t0) / ramp if inner_start else (t - t0 + ramp) / ramp)
    ease_out = smoothstep((t1 - t) / ramp if t1 < 1 else (t1 + ramp - t) / ramp)
    window = ease_in * ease_out
    rel = frame.vertices - start
    radial = rel - (rel @ unit)[:, None] * unit
    if sided:
        # a limb swells outwards, never across the body's midline (crotch)
        window = window * smoothstep(np.abs(frame.vertices[:, 0]) / 0.05)
    return (float(amount) * frame.skin[:, j] * window)[:, None] * radial


def plateau(points: np.ndarray, center, radius) -> np.ndarray:
    """(N,) weight 1 over the inner half of an (ellipsoidal) radius, easing to 0 at its edge."""
    q = np.sqrt((((points - center) / np.asarray(radius, np.float32)) ** 2).sum(axis=1))
    return smoothstep(2.0 * (1.0 - q))


def _scale(frame: Frame, e: dict, amount) -> np.ndarray:
    # A plateau (full strength over the inner half of the radius) scales a
    # feature as a whole instead of bulging its middle.
    c = anatomy.point(e["at"])
    w = plateau(frame.vertices, c, e["radius"])
    return w[:, None] * (frame.vertices - c) * np.asarray(amount, float)


def _move(frame: Frame, e: dict, amount) -> np.ndarray:
    w = falloff(frame.vertices, anatomy.point(e["at"]), e["radius"])
    return w[:, None] * np.asarray(amount, float)


def _bump(frame: Frame, e: dict, amount) -> np.ndarray:
    w = falloff(frame.vertices, anatomy.point(e["at"]), e["radius"])
    return (w * float(amount))[:, None] * frame.normals


def _rotate(frame: Frame, e: dict, amount) -> np.ndarray:
    # Small-angle rotation: the linear term of Rodrigues' formula.
    c = anatomy.point(e["at"])
    axis = np.asarray(e["axis"], float)
    axis = axis / np.linalg.norm(axis)
    w = falloff(frame.vertices, c, e["radius"])
    return (w * np.deg2rad(float(amount)))[:, None] * np.cross(axis, frame.vertices - c)


_FIELDS = {"length": _length, "girth": _girth, "scale": _scale, "move": _move,
           "bump": _bump, "rotate": _rotate}


def effect_amount(effect: dict, at_min: bool = False):
    """An effect's amount at the slider's max, or at its min (``amount_at_min``, default -amount)."""
    if not at_min:
        return effect["amount"]
    low = effect.get("amount_at_min")
    return -np.asarray(effect["amount"], float) if low is None else low


def _sided_names(e: dict) -> tuple[str | None, bool]:
    """The effect's anchor name and whether it is on the right side."""
    name = e.get("bone") or e.get("at")
    return name, bool(name) and name.endswith("_r")


def displacement(frame: Frame, effect: dict, at_min: bool = False) -> np.ndarray:
    """(V, 3) field of one linear effect at the slider's max (or min), with its mirror.

    ``side: both`` adds the exact mirror image (through the template's mirror
    map) when the effect sits on one side; ``left``/``right`` keep only that side.
    """
    field = _FIELDS[effect["deformer"]](frame, effect, effect_amount(effect, at_min))
    name, on_right = _sided_names(effect)
    mirrored = field[frame.mirror] * MIRROR
    side = effect.get("side", "both")
    sided = name is not None and anatomy.mirror_name(name) != name
    if side == "both":
        return field + mirrored if sided else field
    # one side only: "left" wants the effect on the +x side of the figure
    want_right = side == "right"
    if sided:
        return field if want_right == on_right else mirrored
    # a midline anchor: keep the requested half of a symmetric effect
    keep = frame.vertices[:, 0] < 0 if want_right else frame.vertices[:, 0] > 0
    return field * keep[:, None]
