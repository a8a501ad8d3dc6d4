"""Pose sliders in a rig YAML: which bones a slider turns, about which of their axes, by what share.

A pose slider is an ordinary continuous slider in degrees with a ``pose:`` list::

    pose.elbow_l:
      description: Bends the left elbow.
      min: -10
      max: 145
      unit: deg
      pose: [{bone: lowerarm01.L, axis: x}]          # share defaults to 1

Each listed bone turns about its own ``x``, ``y`` or ``z`` axis (Blender's bone
frame: y runs from the bone's head to its tail) by ``share`` times the slider's
value. Shares spread one movement over a chain (a spine bend over five
vertebrae); a negative share turns the other way (the mirror side). Bone names
are checked against the rig's ``skeleton:`` (``default``, 163 bones, or
``game_engine``, 53), read from MakeHuman's rig files.
"""
from __future__ import annotations

import json
from functools import lru_cache

from avatar.spec.config import Problems, check_choice, check_keys, check_number, describe, did_you_mean

SKELETON_FILES = {"default": "rig.default.json", "game_engine": "rig.game_engine.json"}
AXES = ("x", "y", "z")


@lru_cache(maxsize=None)
def bone_names(skeleton: str) -> tuple[str, ...]:
    """The bone names of one of MakeHuman's skeletons (reads only its JSON, not the weights)."""
    from avatar.body import assets

    path = assets.data_dir() / "rigs" / "standard" / SKELETON_FILES[skeleton]
    return tuple(json.loads(path.read_text()))


def parse_skeleton(problems: Problems, raw: object) -> str:
    """The rig's ``skeleton:`` (default ``default``)."""
    if raw is None:
        return "default"
    return check_choice(problems, ("skeleton",), raw, tuple(SKELETON_FILES), "skeleton") or "default"


def parse_pose(problems: Problems, path: tuple, raw: object, kind: str, unit: str,
               skeleton: str = "default") -> tuple:
    """A slider's ``pose:`` list -> tuple of (bone, axis, share), bones checked against ``skeleton``."""
    if raw is None:
        return ()
    path = path + ("pose",)
    if kind != "continuous" or unit != "deg":
        problems.add(path, "a pose slider must be continuous with unit: deg")
    if not isinstance(raw, list) or not raw:
        problems.add(path, f"expected a list of {{bone, axis, share}} entries, got {describe(raw)}")
        return ()
    out = []
    for i, entry in enumerate(raw):
        p = path + (i,)
        if not isinstance(entry, dict):
            problems.add(p, f"expected a mapping like {{bone: lowerarm01.L, axis: x}}, got {describe(entry)}")
            continue
        check_keys(problems, p, entry, ("bone", "axis", "share"), required=("bone", "axis"))
        bone = entry.get("bone")
        if not isinstance(bone, str):
            problems.add(p + ("bone",), f"expected a bone name, got {describe(bone)}")
            continue
        if bone not in bone_names(skeleton):
            problems.add(p + ("bone",), f"the {skeleton} skeleton has no bone {bone!r}"
                         f"{did_you_mean(bone, bone_names(skeleton))}")
        axis = check_choice(problems, p + ("axis",), entry.get("axis"), AXES, "axis")
        share = check_number(problems, p + ("share",), entry.get("share", 1.0))
        if axis is not None and share is not None:
            out.append((bone, axis, float(share)))
    return tuple(out)


def pose_dir():
    from pathlib import Path

    return Path(__file__).resolve().parents[2] / "configs" / "poses"


def pose_names() -> list[str]:
    """The pose presets shipped in ``configs/poses`` (a-pose, t-pose, relaxed, walk, seated)."""
    return sorted(p.stem for p in pose_dir().glob("*.yaml"))


def pose_path(pose: str, relative_to: str | None = None):
    """A pose preset's file: a path (relative to ``relative_to``'s folder) or a name in ``configs/poses``."""
    from pathlib import Path

    from avatar.spec.config import ConfigError, Problem

    p = Path(pose).expanduser()
    if p.suffix.lower() in (".yaml", ".yml"):
        if not p.is_absolute() and relative_to and not relative_to.startswith("<"):
            p = Path(relative_to).resolve().parent / p
        return p
    path = pose_dir() / f"{pose}.yaml"
    if not path.is_file():
        raise ConfigError([Problem(str(relative_to or "--pose"), None, "pose",
                                   f"unknown pose {pose!r}{did_you_mean(pose, pose_names())}; "
                                   f"choose one of {', '.join(pose_names())} or give a .yaml file")])
    return path


def load_pose(pose: str, spec, relative_to: str | None = None) -> dict[str, object]:
    """A pose preset -> {pose slider: degrees}, every other pose slider of ``spec`` at 0 (the rest).

    A pose preset is a preset file that lists pose sliders only.
    """
    from avatar.spec.config import ConfigError, Problem
    from avatar.spec.sliders import load_preset

    path = pose_path(pose, relative_to)
    values = load_preset(path, spec)
    wrong = [k for k in values if not spec.sliders[spec.index(k)].pose]
    if wrong:
        raise ConfigError([Problem(str(path), None, f"sliders.{wrong[0]}",
                                   f"a pose preset sets pose sliders only; {wrong[0]} is not one")])
    if values and not spec.pose_sliders:
        raise ConfigError([Problem(str(path), None, "sliders", f"rig '{spec.name}' has no pose sliders")])
    rest = {spec.sliders[j].name: 0.0 for j in spec.pose_sliders}
    return {**rest, **values}


def with_pose(spec, values, pose: str | None, relative_to: str | None = None):
    """Slider values (P,) or (n, P) with every pose slider set by pose preset ``pose`` (None: unchanged)."""
    import numpy as np

    if pose is None:
        return values
    out = np.array(values, np.float64, copy=True)
    for name, value in load_pose(pose, spec, relative_to).items():
        out[..., spec.index(name)] = float(value)
    return out
