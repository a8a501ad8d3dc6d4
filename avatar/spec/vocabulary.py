"""The deformer vocabulary a rig YAML may use in a slider's ``effects``.

Each entry names a deformer, says what it does, and lists its parameters with
their kinds. Config validation reads this table; :mod:`avatar.body.deformers`
implements the first six, :mod:`avatar.body.rig` reads ``target`` files.
``amount`` is always the effect at the slider's maximum; at the
minimum the effect is ``amount_at_min`` (default: ``-amount``), and it is
linear in between on each side of the default value.

Parameter kinds:
    bone            a bone name from :data:`avatar.body.anatomy.BONE_NAMES`
    point           a joint or landmark name from :data:`avatar.body.anatomy.POINT_NAMES`
    number          a finite float
    vec3            three finite floats
    number_or_vec3  either of the two (per-axis when a vec3)
    span            two floats 0 <= a < b <= 1 (a stretch along a bone)
    side            both | left | right (``both`` mirrors a left-side effect)
    file            a string: a MakeHuman target key or a .target(.gz) path
"""
from __future__ import annotations

COMMON = {
    "side": ("side", False, "both: the effect and its mirror image; left/right: one side only"),
    "amount_at_min": (None, False, "the effect at the slider's minimum (default -amount)"),
}

# name -> (description, {param: (kind, required, description)})
VOCABULARY: dict[str, tuple[str, dict[str, tuple[str | None, bool, str]]]] = {
    "length": (
        "lengthen a bone; everything beyond it is carried along",
        {
            "bone": ("bone", True, "which bone"),
            "amount": ("number", True, "metres added to the bone"),
        },
    ),
    "girth": (
        "scale the body around a bone, thicker or thinner",
        {
            "bone": ("bone", True, "which bone"),
            "amount": ("number", True, "relative change of the radius (0.2 = 20% thicker)"),
            "span": ("span", False, "part of the bone affected, 0 = start, 1 = end (default [0, 1])"),
        },
    ),
    "scale": (
        "scale a smooth region about a point",
        {
            "at": ("point", True, "centre of the region"),
            "radius": ("number_or_vec3", True, "reach of the region in metres (per axis if three)"),
            "amount": ("number_or_vec3", True, "relative size change (per axis if three)"),
        },
    ),
    "move": (
        "translate a smooth region",
        {
            "at": ("point", True, "centre of the region"),
            "radius": ("number_or_vec3", True, "reach of the region in metres"),
            "amount": ("vec3", True, "displacement in metres (x = the figure's left, y = up, z = forward)"),
        },
    ),
    "bump": (
        "push a smooth region out along the surface normal (negative: a dent)",
        {
            "at": ("point", True, "centre of the region"),
            "radius": ("number_or_vec3", True, "reach of the region in metres"),
            "amount": ("number", True, "height of the bump in metres"),
        },
    ),
    "rotate": (
        "turn a smooth region about an axis through a point (small angles)",
        {
            "at": ("point", True, "pivot and centre of the region"),
            "radius": ("number_or_vec3", True, "reach of the region in metres"),
            "axis": ("vec3", True, "rotation axis (right-hand rule)"),
            "amount": ("number", True, "angle in degrees"),
        },
    ),
    "target": (
        "add a sculpted MakeHuman target: each listed vertex moves by the file's offset times amount",
        {
            "file": ("file", True, "a MakeHuman target key (nose/nose-hump-incr) or a path to a .target or "
                     ".target.gz file, relative to the rig YAML's folder"),
            "amount": ("number", False, "weight of the target at the slider's maximum (default 1)"),
        },
    ),
}
