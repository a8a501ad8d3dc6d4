"""Scene sliders in a rig YAML: the camera, the lights and the background of a render.

A scene slider is an ordinary slider with a ``scene:`` key naming the one part
of the picture it sets (its *role*)::

    scene.camera_yaw:
      description: Turns the camera around the avatar towards the figure's left.
      min: -90
      max: 90
      default: 0
      unit: deg
      scene: camera_yaw

Scene sliders change nothing of the body: no effects, no MakeHuman modifier,
no macro, no pose. The renderer reads them per avatar (the ``camera`` view,
and the lights and background of every view); vertices and textures ignore
them. Each role is set by at most one slider of a rig.

Roles (:data:`ROLES`): ``camera_yaw``, ``camera_pitch`` (degrees),
``camera_distance`` (a multiple, at least 1, of the distance that fits the
framing), ``framing`` (categorical: ``full_body``, ``bust``, ``face``),
``camera_scale`` (categorical: ``fit``, the framed part fitted to each avatar
so that it fills the picture whatever its size, or ``fixed``, a fixed world
size as ``render(frame="fixed")`` gives it: 2.2 m of body, 0.75 m of bust,
0.36 m of head, so stature and head size show),
``light_azimuth``, ``light_elevation`` (degrees by which the three-point
light rig turns around the camera's vertical and horizontal axes),
``light_intensity`` (% of every light), ``light_fill`` (% of the fill and rim
lights, the key light and the ambient untouched: 0 is the key light alone, a
hard one-sided light), ``background_hue`` (degrees),
``background_saturation`` and ``background_value`` (%, HSV).
"""
from __future__ import annotations

from typing import NamedTuple

from avatar.spec.config import Problems, check_choice, describe, did_you_mean, format_number

FRAMINGS = ("full_body", "bust", "face")
SCALES = ("fit", "fixed")


class Role(NamedTuple):
    """What a scene role needs of its slider: kind, unit and the range it must stay in."""

    kind: str
    unit: str | None          # None: categorical (no unit)
    low: float | None         # the slider's min may not be below this
    high: float | None        # nor its max above this
    what: str                 # for messages and the docs


ROLES = {
    "camera_yaw": Role("continuous", "deg", -180.0, 180.0, "camera turn around the avatar"),
    "camera_pitch": Role("continuous", "deg", -80.0, 80.0, "camera height angle (up to 80 degrees)"),
    "camera_distance": Role("continuous", "none", 1.0, 10.0,
                            "camera distance as a multiple of the fitted one (below 1 it would crop the avatar)"),
    "framing": Role("categorical", None, None, None, "what the camera view frames"),
    "camera_scale": Role("categorical", None, None, None, "the camera view fitted to the avatar or at a fixed scale"),
    "light_azimuth": Role("continuous", "deg", -180.0, 180.0, "light rig turn around the camera's vertical"),
    "light_elevation": Role("continuous", "deg", -90.0, 90.0, "light rig tilt around the camera's horizontal"),
    "light_intensity": Role("continuous", "%", 0.0, 1000.0, "brightness of every light"),
    "light_fill": Role("continuous", "%", 0.0, 1000.0, "brightness of the fill and rim lights"),
    "background_hue": Role("continuous", "deg", 0.0, 360.0, "background hue"),
    "background_saturation": Role("continuous", "%", 0.0, 100.0, "background saturation"),
    "background_value": Role("continuous", "%", 0.0, 100.0, "background value (brightness)"),
}


# the categories a categorical role's slider may have (a subset, in any order)
CATEGORIES = {"framing": FRAMINGS, "camera_scale": SCALES}


def parse_scene(problems: Problems, path: tuple, raw: object, kind: str, unit: str, lo, hi, cats) -> str | None:
    """A slider's ``scene:`` role, checked against the slider's kind, unit, range and categories.

    Returns the role name, or None when absent or invalid (problems recorded).
    """
    if raw is None:
        return None
    path = path + ("scene",)
    if not isinstance(raw, str):
        problems.add(path, f"expected a scene role ({', '.join(ROLES)}), got {describe(raw)}")
        return None
    role = check_choice(problems, path, raw, tuple(ROLES), "scene role")
    if role is None:
        return None
    want = ROLES[role]
    before = len(problems)
    if kind != want.kind:
        problems.add(path, f"a {role} slider must be {want.kind}, not {kind}")
    elif want.kind == "categorical":
        allowed = CATEGORIES[role]
        for c in cats or ():
            if c not in allowed:
                problems.add(path, f"{role} category '{c}' is not one of {', '.join(allowed)}"
                             f"{did_you_mean(c, allowed)}")
    else:
        if unit != want.unit:
            written = '"%"' if want.unit == "%" else want.unit  # as YAML needs it
            problems.add(path, f"a {role} slider needs unit: {written}, got {unit}")
        if lo is not None and hi is not None and (lo < want.low or hi > want.high):
            problems.add(path, f"a {role} slider ({want.what}) must stay within {format_number(want.low)} to "
                         f"{format_number(want.high)}, got {format_number(lo)} to {format_number(hi)}")
    return role if len(problems) == before else None


def check_unique(problems: Problems, sliders) -> None:
    """Each scene role is set by one slider at most; the second names the first and its line."""
    seen: dict[str, object] = {}
    for s in sliders:
        if s.scene is None:
            continue
        if s.scene in seen:
            first = seen[s.scene]
            at = f" (line {first.line})" if first.line else ""
            problems.add(("sliders", s.name, "scene"), f"scene role '{s.scene}' is already set by "
                         f"{first.name}{at}; each role belongs to one slider")
        else:
            seen[s.scene] = s


def scene_settings(spec, text: str) -> dict[str, object]:
    """``"camera_yaw=30,framing=bust"`` -> {slider name: readable value}, checked like a preset.

    A key is a scene slider's name (``scene.camera_yaw``) or its role (``camera_yaw``); values are
    YAML scalars (numbers, category names). Raises ConfigError (file ``--scene``) listing every
    problem, with did-you-mean.
    """
    import yaml

    from avatar.spec.sliders import check_values

    problems = Problems("--scene")
    by_role = {r: spec.sliders[j].name for r, j in spec.scene_roles.items()}
    names = [spec.sliders[j].name for j in spec.scene_sliders]
    values = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        key, eq, raw = (x.strip() for x in item.partition("="))
        name = by_role.get(key, key)
        if not eq or not raw:
            problems.add((key,), f"expected NAME=VALUE, got {item!r}")
        elif name not in names:
            problems.add((key,), f"not a scene slider of rig '{spec.name}'{did_you_mean(key, names + list(by_role))}"
                         f"; scene sliders: {', '.join(by_role) or '(none)'}")
        else:
            try:
                values[name] = yaml.safe_load(raw)
            except yaml.YAMLError:
                values[name] = raw
    checked = check_values(spec, problems, (), values)
    problems.raise_if_any()
    return {k: readable for k, (_, readable) in checked.items()}


def with_scene(spec, S, text: str | None):
    """Slider values ``S`` ((P,) or (n, P)) with the scene settings of ``text`` (see
    :func:`scene_settings`) applied to every row; ``S`` itself when ``text`` is empty."""
    import numpy as np

    if not text:
        return S
    settings = scene_settings(spec, text)
    x, out = spec.to_vector(settings), np.array(S, np.float64, copy=True)
    cols = [spec.index(name) for name in settings]
    out[..., cols] = x[cols]
    return out


__all__ = ["FRAMINGS", "ROLES", "Role", "check_unique", "parse_scene", "scene_settings", "with_scene"]
