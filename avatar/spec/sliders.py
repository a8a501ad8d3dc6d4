"""Slider specs from a rig YAML, presets, and reproducible random sampling.

A rig file (``configs/rigs/*.yaml``) declares every slider of a character:
its range, default, unit, sampling distribution and its ``effects`` (deformer
calls from :mod:`avatar.spec.vocabulary`). :func:`load_rig_spec` validates the
whole file and reports every problem at once as a :class:`ConfigError`.

Values are handled as one float64 vector per character, shape (P,), in
*array units*: the slider's own unit for continuous and integer sliders,
0.0/1.0 for bool sliders and the category index for categorical ones.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from os import PathLike

import numpy as np
from scipy.special import ndtr, ndtri

from avatar.body.anatomy import BONE_NAMES, POINT_NAMES
from avatar.spec.config import (ConfigError, Problems, check_choice, check_keys, check_number, check_str,
                           describe, did_you_mean, format_number, load_yaml_lenient, parse_yaml_lenient)
from avatar.spec.vocabulary import COMMON, VOCABULARY
from avatar.spec.pose import parse_pose, parse_skeleton
from avatar.spec.scene import check_unique as check_scene_roles, parse_scene

KINDS = ("continuous", "integer", "bool", "categorical")
UNITS = ("cm", "mm", "deg", "%", "years", "none")
SIDES = ("both", "left", "right")
# distribution kind -> (slider kinds it fits, its parameters)
DISTRIBUTIONS = {
    "uniform": (("continuous", "integer"), ("low", "high")),
    "normal": (("continuous", "integer"), ("mean", "std")),
    "categorical": (("categorical",), ("weights",)),
    "bernoulli": (("bool",), ("p",)),
    "fixed": (KINDS, ()),
}
_RIG_KEYS = ("name", "description", "template", "skeleton", "groups", "sliders")
_SLIDER_KEYS = ("label", "description", "kind", "min", "max", "default", "unit",
                "distribution", "effects", "categories", "makehuman", "macro", "pose", "scene")
# MakeHuman 1.1's macro variables a slider may drive (avatar.body.macros.VARIABLES)
MACROS = ("gender", "age", "muscle", "weight", "height", "proportions", "cupsize", "firmness",
          "african", "asian", "caucasian")
_PRESET_KEYS = ("name", "description", "pose", "sliders", "measurements", "free")
_SLIDER_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
_GROUP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_BLOCK = 4096  # rows per random block; part of the sampling contract, never change it
MAX_SLIDERS = 2000  # MakeHuman's catalogue and our own add up to about 340


@dataclass(frozen=True)
class SliderSpec:
    """One validated slider. ``min``/``max``/``default`` are in array units.

    ``effects`` is a tuple of effect dicts (``deformer``, its parameters,
    ``side``, ``amount_at_min`` or None; vec3 values as float tuples), or for a
    categorical slider a dict category -> such a tuple (empty when unlisted).
    """

    name: str
    group: str
    label: str
    description: str
    kind: str
    min: float
    max: float
    default: float
    unit: str
    distribution: dict
    categories: tuple[str, ...] | None
    effects: tuple | dict
    line: int | None = None
    makehuman: str | None = None  # MakeHuman modifier: ``nose/nose-width1-decr|incr``, ``head/head-square``
    macro: str | None = None      # MakeHuman macro variable (:data:`MACROS`) this slider sets
    pose: tuple = ()              # (bone, axis, share) per turned bone (:mod:`avatar.spec.pose`)
    scene: str | None = None      # the camera, light or background role it sets (:mod:`avatar.spec.scene`)

    def sweep(self, steps: int) -> np.ndarray:
        """Values from min to max in ``steps`` (whole numbers for integers); every value of a bool or category."""
        if self.kind == "bool":
            return np.array([0.0, 1.0])
        if self.kind == "categorical":
            return np.arange(len(self.categories), dtype=np.float64)
        vals = np.linspace(self.min, self.max, steps)
        return np.round(vals) if self.kind == "integer" else vals

    @property
    def moves_mesh(self) -> bool:
        """Whether the slider changes geometry: a macro, a MakeHuman modifier, deformer effects or a pose."""
        lists = self.effects.values() if isinstance(self.effects, dict) else [self.effects]
        return bool(self.macro or self.makehuman or self.pose or any(len(x) for x in lists))

    def readable(self, x: float) -> object:
        """An array-unit value the way a preset writes it (category name, bool, int)."""
        if self.kind == "categorical":
            return self.categories[int(x)]
        if self.kind == "bool":
            return bool(x)
        return int(x) if self.kind == "integer" else float(x)


@dataclass(frozen=True)
class RigSpec:
    """A validated rig: its sliders in file order and the groups they belong to."""

    name: str
    description: str
    template: str
    groups: dict[str, str]
    sliders: tuple[SliderSpec, ...]
    source: str = "<rig>"
    skeleton: str = "default"  # MakeHuman's skeleton the pose sliders turn (:mod:`avatar.spec.pose`)

    @property
    def pose_sliders(self) -> list[int]:
        """Columns of the sliders that pose the skeleton (the nuisance factors of a shape study)."""
        return [j for j, s in enumerate(self.sliders) if s.pose]

    @property
    def scene_sliders(self) -> list[int]:
        """Columns of the scene sliders (camera, lights, background): nuisance factors that leave the
        body, its vertices and its textures untouched and change only the renders."""
        return [j for j, s in enumerate(self.sliders) if s.scene]

    @cached_property
    def scene_roles(self) -> dict[str, int]:
        """{scene role: column} of the rig's scene sliders (:data:`avatar.spec.scene.ROLES`)."""
        return {s.scene: j for j, s in enumerate(self.sliders) if s.scene}

    @property
    def slider_names(self) -> list[str]:
        return [s.name for s in self.sliders]

    @cached_property
    def _index(self) -> dict[str, int]:
        return {s.name: i for i, s in enumerate(self.sliders)}

    def index(self, name: str) -> int:
        """Column of slider ``name``; KeyError (with a suggestion) for an unknown name."""
        try:
            return self._index[name]
        except (KeyError, TypeError):
            raise KeyError(f"unknown slider '{name}'{did_you_mean(name, self._index)}") from None

    def defaults(self) -> np.ndarray:
        """Default values, shape (P,), float64."""
        return np.array([s.default for s in self.sliders], dtype=np.float64)

    def lows(self) -> np.ndarray:
        """Lowest values, shape (P,) (0 for bool and categorical)."""
        return np.array([s.min for s in self.sliders], dtype=np.float64)

    def highs(self) -> np.ndarray:
        """Highest values, shape (P,) (1 for bool, n_categories - 1 for categorical)."""
        return np.array([s.max for s in self.sliders], dtype=np.float64)

    def normalize(self, values: np.ndarray) -> np.ndarray:
        """Map values (..., P) columnwise onto [0, 1] by lows/highs."""
        lo, hi = self.lows(), self.highs()
        return (np.asarray(values, dtype=np.float64) - lo) / (hi - lo)

    def to_vector(self, values: Mapping[str, object]) -> np.ndarray:
        """Defaults overridden by readable ``values`` (slider name -> value), shape (P,).

        Category names or indices, true/false for bools. Raises ConfigError
        (file ``"<values>"``) listing every bad name or value.
        """
        problems = Problems("<values>")
        if not isinstance(values, Mapping):
            problems.add((), f"expected a mapping of slider name -> value, got {describe(values)}")
            problems.raise_if_any()
        out = self.defaults()
        for name, (x, _) in check_values(self, problems, (), values).items():
            out[self._index[name]] = x
        problems.raise_if_any()
        return out

    def sample(self, n: int, seed: int, start: int = 0, scene: bool = False) -> np.ndarray:
        """Random characters ``start .. start+n-1`` of the stream ``seed``, shape (n, P).

        Row i depends only on (seed, i) and the spec: rows come from fixed
        blocks of 4096, block k drawn from its own generator seeded with
        ``[seed, k]``, so ``sample(10, s, start=5)`` equals rows 5..14 of
        ``sample(20, s)``. Each column's uniforms go through the slider's
        inverse CDF. The scene sliders (camera, lights, background) stay at
        their defaults unless ``scene``; the other columns do not depend on it.
        """
        for arg, v in (("n", n), ("seed", seed), ("start", start)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{arg} must be a non-negative integer, got {v!r}")
        n, seed, start = int(n), int(seed), int(start)
        u = self.uniforms(seed, start, start + n)
        for j, s in enumerate(self.sliders):
            u[:, j] = s.default if (s.scene and not scene) else inverse_cdf(s, u[:, j])
        return u


    def uniforms(self, seed: int, start: int, stop: int) -> np.ndarray:
        """(stop-start, P) uniforms of rows ``start .. stop-1``: the body's columns (every slider but
        the scene sliders, in order) are ``uniforms(seed, start, stop, P_body)``, the scene sliders'
        come from a stream of their own, so adding scene sliders to a rig changes no body's sample."""
        scene = self.scene_sliders
        if not scene:
            return uniforms(seed, start, stop, len(self.sliders))
        body = [j for j in range(len(self.sliders)) if j not in set(scene)]
        u = np.empty((max(stop - start, 0), len(self.sliders)))
        u[:, body] = uniforms(seed, start, stop, len(body))
        u[:, scene] = uniforms(seed, start, stop, len(scene), stream=_SCENE_STREAM)
        return u


# sampling -----------------------------------------------------------------------
_SCENE_STREAM = 0x5CE7E  # the scene sliders' own uniform stream (RigSpec.uniforms)


def uniforms(seed: int, start: int, stop: int, width: int, stream: int | None = None) -> np.ndarray:
    """Rows ``start .. stop-1`` of the uniform stream ``seed``: (stop-start, width) float64 in [0, 1).

    Row i comes from block i // 4096, drawn whole as
    ``default_rng([seed, block]).random((4096, width))``; the sampling
    contract of :meth:`RigSpec.sample` and the dataset samplers.
    """
    u = np.empty((max(stop - start, 0), width), dtype=np.float64)
    if stop <= start:
        return u
    for k in range(start // _BLOCK, (stop - 1) // _BLOCK + 1):
        key = [seed, k] if stream is None else [seed, k, stream]
        block = np.random.default_rng(key).random((_BLOCK, width))
        lo, hi = max(start, k * _BLOCK), min(stop, (k + 1) * _BLOCK)
        u[lo - start:hi - start] = block[lo - k * _BLOCK:hi - k * _BLOCK]
    return u


def truncnorm_ppf(u: np.ndarray, mean: float, std: float, lo: float, hi: float) -> np.ndarray:
    """Inverse CDF of a normal truncated to [lo, hi]; u (n,) in [0, 1) -> (n,)."""
    a, b = ndtr((lo - mean) / std), ndtr((hi - mean) / std)
    return np.clip(mean + std * ndtri(a + u * (b - a)), lo, hi)  # clip: rounding at the ends


def inverse_cdf(s: SliderSpec, u: np.ndarray) -> np.ndarray:
    """Uniforms u (n,) in [0, 1) -> slider values (n,) in array units."""
    d, kind = s.distribution, s.distribution["kind"]
    if kind == "fixed":
        return np.full(u.shape, s.default)
    if kind == "bernoulli":
        return (u < d["p"]).astype(np.float64)
    if kind == "categorical":
        w = np.array([d["weights"][c] for c in s.categories], dtype=np.float64)
        idx = np.searchsorted(np.cumsum(w) / w.sum(), u, side="right")
        # u beyond a rounded-down cumulative sum must still land on a weighted category
        return np.minimum(idx, np.flatnonzero(w)[-1]).astype(np.float64)
    integer = s.kind == "integer"
    if kind == "uniform":
        lo, hi = d["low"], d["high"]
        if integer:  # each whole number in [lo, hi] gets an equal share of u
            return np.clip(np.floor(lo + u * (hi - lo + 1)), lo, hi)
        return lo + u * (hi - lo)
    # normal: an integer slider takes the nearest whole number of a normal over [min-.5, max+.5]
    pad = 0.5 if integer else 0.0
    x = truncnorm_ppf(u, d["mean"], d["std"], s.min - pad, s.max + pad)
    return np.clip(np.floor(x + 0.5), s.min, s.max) if integer else x


# rig validation ------------------------------------------------------------------
def unit_suffix(unit: str) -> str:
    """What follows a number of this unit in text: ``""``, ``"%"``, ``"°"``, ``" cm"``, ``" years"``."""
    return {"none": "", "%": "%", "deg": "°"}.get(unit, f" {unit}")


def _range_text(s_min: float, s_max: float, unit: str) -> str:
    return f"{format_number(s_min)} to {format_number(s_max)}{unit_suffix(unit)}"


def _parse_range(problems: Problems, path: tuple, raw: dict, kind: str, unit: str):
    """(min, max, default, categories) in array units, None where invalid."""
    for key in ("min", "max", "unit") if kind in ("bool", "categorical") else ():
        if raw.get(key, "none") not in (None, "none"):
            problems.add(path + (key,), f"'{key}' does not apply to a {kind} slider")
    if kind != "categorical" and "categories" in raw:
        problems.add(path + ("categories",), "'categories' is only for categorical sliders")
    if kind == "bool":
        default = raw.get("default", False)
        if not isinstance(default, bool):
            problems.add(path + ("default",), f"expected true or false, got {describe(default)}")
            return 0.0, 1.0, None, None
        return 0.0, 1.0, float(default), None
    if kind == "categorical":
        cats = raw.get("categories")
        if (not isinstance(cats, list) or len(cats) < 2 or not all(isinstance(c, str) for c in cats)
                or len(set(cats)) != len(cats)):
            problems.add(path + ("categories",), "expected a list of at least 2 different category names")
            return 0.0, None, None, None
        default = raw.get("default", cats[0])
        ok = check_choice(problems, path + ("default",), default, cats, "category")
        return 0.0, float(len(cats) - 1), None if ok is None else float(cats.index(ok)), tuple(cats)
    integral = kind == "integer"
    lo, hi, default = (check_number(problems, path + (k,), raw[k], integral=integral) if k in raw else None
                       for k in ("min", "max", "default"))
    for key in ("min", "max", "default"):
        if key not in raw:
            problems.add(path, f"missing required key '{key}' (a {kind} slider needs min, max and default)")
    if lo is not None and hi is not None:
        if not lo < hi:
            problems.add(path + ("max",), f"min ({format_number(lo)}) must be less than max ({format_number(hi)})")
            return None, None, None, None
        if default is not None and not lo <= default <= hi:
            problems.add(path + ("default",), f"default {format_number(default)} is outside the allowed range "
                         f"{_range_text(lo, hi, unit)}")
            default = None
    return lo, hi, default, None


def parse_distribution(problems: Problems, path: tuple, raw: object, kind: str, lo, hi, default, cats):
    """The distribution dict with defaults filled, or None when invalid."""
    if raw is None:
        raw = {"kind": {"continuous": "uniform", "integer": "uniform", "bool": "bernoulli",
                        "categorical": "categorical"}[kind]}
    elif isinstance(raw, str):
        raw = {"kind": raw}  # `distribution: fixed` is short for {kind: fixed}
    if not isinstance(raw, dict):
        problems.add(path, f"expected a mapping like {{kind: uniform}}, got {describe(raw)}")
        return None
    dkind = check_choice(problems, path + ("kind",), raw.get("kind"), tuple(DISTRIBUTIONS), "distribution kind")
    if dkind is None:
        return None
    fits, params = DISTRIBUTIONS[dkind]
    if kind not in fits:
        ok = [k for k, (f, _) in DISTRIBUTIONS.items() if kind in f]
        problems.add(path + ("kind",), f"a {dkind} distribution does not fit a {kind} slider; use {' or '.join(ok)}")
        return None
    check_keys(problems, path, raw, ("kind",) + params, required=("std",) if dkind == "normal" else ())
    vals = {k: check_number(problems, path + (k,), raw[k], integral=kind == "integer" and k in ("low", "high"))
            for k in ("low", "high", "mean", "std", "p") if k in params and k in raw}
    if dkind == "fixed":
        return {"kind": "fixed"}
    if dkind == "bernoulli":
        p = vals.get("p", 0.5)
        if p is not None and not 0.0 <= p <= 1.0:
            problems.add(path + ("p",), f"p must be between 0 and 1, got {format_number(p)}")
        return {"kind": "bernoulli", "p": p}
    if dkind == "categorical":
        return _parse_weights(problems, path + ("weights",), raw.get("weights"), cats)
    if lo is None or hi is None or None in vals.values():
        return None  # reported already; a range check against nothing would only add noise
    if dkind == "uniform":
        low, high = vals.get("low", lo), vals.get("high", hi)
        if not lo <= low < high <= hi:
            problems.add(path, f"need min <= low < high <= max, got low {format_number(low)} and high "
                         f"{format_number(high)} for the range {format_number(lo)} to {format_number(hi)}")
        return {"kind": "uniform", "low": low, "high": high}
    mean, std = vals.get("mean", default), vals.get("std")
    if std is not None and std <= 0:
        problems.add(path + ("std",), f"std must be greater than 0, got {format_number(std)}")
    if mean is not None and not lo <= mean <= hi:
        problems.add(path + ("mean",), f"mean {format_number(mean)} must lie in the slider range "
                     f"{format_number(lo)} to {format_number(hi)} (the normal is truncated to it)")
    return {"kind": "normal", "mean": mean, "std": std}


def _parse_weights(problems: Problems, path: tuple, raw: object, cats):
    """Categorical weights: every category, missing ones 0; None when invalid."""
    if cats is None:
        return None
    if raw is None:
        return {"kind": "categorical", "weights": {c: 1.0 for c in cats}}
    if not isinstance(raw, dict):
        problems.add(path, f"expected a mapping of category -> weight, got {describe(raw)}")
        return None
    weights = {c: 0.0 for c in cats}
    for cat, w in raw.items():
        name = check_choice(problems, path + (cat,), cat, cats, "category")
        x = check_number(problems, path + (cat,), w)
        if x is not None and x < 0:
            problems.add(path + (cat,), f"a weight must be 0 or more, got {format_number(x)}")
        elif name is not None and x is not None:
            weights[name] = x
    if not any(weights.values()):
        problems.add(path, "at least one category needs a weight above 0")
    return {"kind": "categorical", "weights": weights}


def _parse_param(problems: Problems, path: tuple, kind: str, value: object):
    """One effect parameter of vocabulary kind ``kind``; None when invalid."""
    if kind == "bone":
        return check_choice(problems, path, value, BONE_NAMES, "bone")
    if kind == "point":
        return check_choice(problems, path, value, POINT_NAMES, "point")
    if kind == "side":
        return check_choice(problems, path, value, SIDES, "side")
    if kind == "file":
        return check_str(problems, path, value, one_line=True)
    if kind == "number" or (kind == "number_or_vec3" and not isinstance(value, list)):
        return check_number(problems, path, value)
    size = 2 if kind == "span" else 3
    if not isinstance(value, list) or len(value) != size:
        shape = "[a, b]" if size == 2 else ("a number or " if kind == "number_or_vec3" else "") + "[x, y, z]"
        problems.add(path, f"expected {shape}, got {describe(value)}")
        return None
    xs = [check_number(problems, path + (i,), v) for i, v in enumerate(value)]
    if None in xs:
        return None
    if kind == "span" and not 0.0 <= xs[0] < xs[1] <= 1.0:
        problems.add(path, f"a span [a, b] needs 0 <= a < b <= 1, got [{', '.join(map(format_number, xs))}]")
        return None
    return tuple(xs)


def _parse_effect(problems: Problems, path: tuple, raw: object, kind: str) -> dict | None:
    """One effect mapping -> normalized dict (side filled, amount_at_min None when absent)."""
    if not isinstance(raw, dict):
        problems.add(path, f"expected an effect mapping like {{deformer: move, ...}}, got {describe(raw)}")
        return None
    if "deformer" not in raw:
        problems.add(path, "missing required key 'deformer'")
        return None
    deformer = check_choice(problems, path + ("deformer",), raw["deformer"], tuple(VOCABULARY), "deformer")
    if deformer is None:
        return None
    params = VOCABULARY[deformer][1]
    check_keys(problems, path, raw, ("deformer", *params, *COMMON),
               required=[k for k, (_, req, _) in params.items() if req])
    out = {"deformer": deformer}
    out.update({k: _parse_param(problems, path + (k,), pk, raw[k]) for k, (pk, _, _) in params.items() if k in raw})
    if "span" in params and "span" not in raw:
        out["span"] = (0.0, 1.0)  # the vocabulary's documented default
    if deformer == "target" and "amount" not in raw:
        out["amount"] = 1.0  # the whole target at the slider's maximum
    if deformer == "target" and "side" in raw:
        problems.add(path + ("side",), "a target is sculpted for its own side (MakeHuman's l-/r- files); "
                     "'side' does not apply to it")
    out["side"] = _parse_param(problems, path + ("side",), "side", raw.get("side", "both"))
    out["amount_at_min"] = None
    # a region needs a positive reach and a turn a direction, or the deformer divides by zero
    if out.get("radius") is not None and np.any(np.asarray(out["radius"]) <= 0):
        problems.add(path + ("radius",), "must be greater than 0")
    if out.get("axis") is not None and not np.any(out["axis"]):
        problems.add(path + ("axis",), "must not be [0, 0, 0]")
    if "amount_at_min" in raw:
        if kind in ("bool", "categorical"):
            problems.add(path + ("amount_at_min",), f"a {kind} slider's effect is on or off; amount_at_min "
                         "is only for continuous and integer sliders")
        elif "amount" not in params:
            problems.add(path + ("amount_at_min",), f"the {deformer} deformer has no amount")
        else:
            at_min = _parse_param(problems, path + ("amount_at_min",), params["amount"][0], raw["amount_at_min"])
            amount = out.get("amount")
            if at_min is not None and amount is not None and isinstance(at_min, tuple) != isinstance(amount, tuple):
                problems.add(path + ("amount_at_min",),
                             "must have the same form as amount (both a number or both [x, y, z])")
            out["amount_at_min"] = at_min
    return out


def _parse_effect_list(problems: Problems, path: tuple, raw: object, kind: str) -> tuple:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add(path, f"expected a list of effects, got {describe(raw)}")
        return ()
    return tuple(_parse_effect(problems, path + (i,), e, kind) for i, e in enumerate(raw))


def _parse_effects(problems: Problems, path: tuple, raw: object, kind: str, cats) -> tuple | dict:
    if kind != "categorical":
        return _parse_effect_list(problems, path, raw, kind)
    if raw is None or cats is None:
        return {c: () for c in cats or ()}
    if not isinstance(raw, dict):
        problems.add(path, f"expected a mapping of category -> list of effects, got {describe(raw)}")
        return {}
    for cat in raw:
        check_choice(problems, path + (cat,), cat, cats, "category")
    return {c: _parse_effect_list(problems, path + (c,), raw.get(c), kind) for c in cats}


def _parse_slider(problems: Problems, name: object, raw: object, groups: dict | None,
                  skeleton: str = "default") -> SliderSpec | None:
    """One slider entry -> SliderSpec, or None after recording its problems."""
    path, before = ("sliders", name), len(problems)
    if not isinstance(name, str) or not _SLIDER_NAME.match(name):
        problems.add(path, f"slider name {describe(name)} must look like 'group.name' "
                     "(lower case letters, digits and _, one dot)")
        return None
    group = name.split(".")[0]
    if groups is not None and group not in groups:
        problems.add(path, f"group '{group}' is not declared under 'groups'{did_you_mean(group, groups)}")
    if not isinstance(raw, dict):
        problems.add(path, f"expected a mapping of slider settings, got {describe(raw)}")
        return None
    check_keys(problems, path, raw, _SLIDER_KEYS, required=("description",))
    label = raw.get("label", name.split(".")[1].replace("_", " ").capitalize())
    label = check_str(problems, path + ("label",), label, one_line=True)
    description = check_str(problems, path + ("description",), raw.get("description", "-"), one_line=True)
    kind = check_choice(problems, path + ("kind",), raw.get("kind", "continuous"), KINDS, "slider kind")
    unit = raw.get("unit") or "none"
    unit = check_choice(problems, path + ("unit",), unit, UNITS, "unit") or "none"
    if kind is None:
        return None
    lo, hi, default, cats = _parse_range(problems, path, raw, kind, unit)
    dist = parse_distribution(problems, path + ("distribution",), raw.get("distribution"), kind, lo, hi, default, cats)
    effects = _parse_effects(problems, path + ("effects",), raw.get("effects"), kind, cats)
    makehuman, macro = _parse_makehuman(problems, path, raw, kind, lo, hi)
    pose = parse_pose(problems, path, raw.get("pose"), kind, unit, skeleton)
    if pose and (effects or makehuman or macro):
        problems.add(path + ("pose",), "a pose slider turns bones only: no effects, makehuman or macro with it")
    scene = parse_scene(problems, path, raw.get("scene"), kind, unit, lo, hi, cats)
    if "scene" in raw and any(k in raw for k in ("effects", "makehuman", "macro", "pose")):
        problems.add(path + ("scene",), "a scene slider sets the camera, lights or background only: "
                     "no effects, makehuman, macro or pose with it")
    if len(problems) > before:
        return None
    return SliderSpec(name, group, label, description, kind, lo, hi, default, unit, dist, cats, effects,
                      problems.line_of(path), makehuman, macro, pose, scene)


_MAKEHUMAN = re.compile(r"^[a-z0-9_-]+/(\*/)?[a-z0-9_.*-]+(\|[a-z0-9_-]+)?$|^expression/units/\*/[a-z0-9-]+$")


def _parse_makehuman(problems: Problems, path: tuple, raw: dict, kind: str, lo, hi):
    """``makehuman:`` (a modifier name) and ``macro:`` (a macro variable) of a slider."""
    makehuman = macro = None
    if "makehuman" in raw and "macro" in raw:
        problems.add(path + ("macro",), "a slider is either a MakeHuman modifier or a macro, not both")
    if "makehuman" in raw:
        makehuman = check_str(problems, path + ("makehuman",), raw["makehuman"], one_line=True)
        if makehuman is not None and not _MAKEHUMAN.match(makehuman):
            problems.add(path + ("makehuman",), f"expected a MakeHuman modifier like 'nose/nose-width1-decr|incr' "
                         f"or 'head/head-square', got {describe(makehuman)}")
            makehuman = None
        two_sided = makehuman is not None and "|" in makehuman
        if makehuman is not None and kind != "continuous":
            problems.add(path + ("makehuman",), "a MakeHuman modifier needs a continuous slider")
        elif makehuman is not None and lo is not None and hi is not None:
            want = (-100.0, 100.0) if two_sided else (0.0, 100.0)
            if (lo, hi) != want:
                problems.add(path + ("min",), f"MakeHuman's {makehuman} runs {format_number(want[0])} to "
                             f"{format_number(want[1])}, got {format_number(lo)} to {format_number(hi)}")
    if "macro" in raw:
        macro = check_choice(problems, path + ("macro",), raw["macro"], MACROS, "macro")
        if macro is not None and kind != "continuous":
            problems.add(path + ("macro",), "a macro needs a continuous slider")
    return makehuman, macro


def _parse_groups(problems: Problems, raw: object) -> dict[str, str] | None:
    """``groups:`` -> {group: label} in declared order, None when absent or invalid."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.add(("groups",), f"expected a mapping of group -> {{label: ...}}, got {describe(raw)}")
        return None
    out = {}
    for group, spec in raw.items():
        path = ("groups", group)
        if not isinstance(group, str) or not _GROUP_NAME.match(group):
            problems.add(path, f"group name {describe(group)} must be lower case letters, digits and _")
            continue
        if isinstance(spec, dict):
            check_keys(problems, path, spec, ("label",))
            spec = spec.get("label")
        out[group] = group.capitalize() if spec is None else check_str(problems, path + ("label",), spec)
    return out


def rig_spec_from_data(data: dict, problems: Problems, source: str = "<rig>") -> RigSpec:
    """Validate a parsed rig document (see :func:`load_rig_spec`)."""
    check_keys(problems, (), data, _RIG_KEYS, required=("name", "template", "sliders"))
    name, template = (check_str(problems, (k,), data[k], one_line=True) if k in data else None
                      for k in ("name", "template"))
    description = check_str(problems, ("description",), data["description"]) if "description" in data else ""
    groups = _parse_groups(problems, data.get("groups"))
    raw = data.get("sliders", {})
    if not isinstance(raw, dict) or not raw:
        problems.add(("sliders",), "expected a non-empty mapping of slider name -> settings")
        raw = {}
    if len(raw) > MAX_SLIDERS:
        # every slider is a feature row of the rig's matrices and a column of every dataset
        problems.add(("sliders",), f"a rig may have at most {MAX_SLIDERS:,} sliders, this one has {len(raw):,} "
                     f"(its blend matrices alone would need about {len(raw) * 2 * 14472 * 12 / 2**30:.0f} GiB)")
        problems.raise_if_any()
    skeleton = parse_skeleton(problems, data.get("skeleton"))
    sliders = [s for s in (_parse_slider(problems, k, v, groups, skeleton) for k, v in raw.items()) if s is not None]
    check_scene_roles(problems, sliders)
    if template is not None:
        from avatar.body.template import TEMPLATES  # lazily: a YAML check must not load the assets

        check_choice(problems, ("template",), template, TEMPLATES, "template")
    problems.raise_if_any()
    labels = dict(groups or {})
    for s in sliders:
        labels.setdefault(s.group, s.group.capitalize())
    return RigSpec(name, description, template, labels, tuple(sliders), source, skeleton)


def load_rig_spec(path: str | PathLike) -> RigSpec:
    """Load and validate a rig YAML file; ConfigError lists every problem found."""
    data, lines, duplicates = load_yaml_lenient(path)
    return rig_spec_from_data(data, Problems(str(path), lines, duplicates), source=str(path))


# presets ------------------------------------------------------------------------
def _check_value(s: SliderSpec, problems: Problems, path: tuple, value: object) -> float | None:
    """A readable preset value -> array units, or None after recording a problem."""
    if s.kind == "bool":
        if isinstance(value, (bool, np.bool_)):
            return float(value)
        problems.add(path, f"expected true or false, got {describe(value)}")
        return None
    if s.kind == "categorical":
        if isinstance(value, str):
            name = check_choice(problems, path, value, s.categories, "category")
            return None if name is None else float(s.categories.index(name))
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            if 0 <= value < len(s.categories):
                return float(value)
            problems.add(path, f"category index {value} is outside 0 to {len(s.categories) - 1}")
            return None
        problems.add(path, f"expected a category name (one of {', '.join(s.categories)}), got {describe(value)}")
        return None
    x = check_number(problems, path, value, integral=s.kind == "integer")
    if x is not None and not s.min <= x <= s.max:
        problems.add(path, f"value {format_number(x)} is outside the allowed range {_range_text(s.min, s.max, s.unit)}")
        return None
    return x


def check_values(spec: RigSpec, problems: Problems, prefix: tuple, values: Mapping) -> dict:
    """{slider name: (array value, readable value)} for the valid entries of ``values``."""
    out = {}
    for name, value in values.items():
        if not isinstance(name, str) or name not in spec._index:
            problems.add(prefix + (name,), f"unknown slider {describe(name)} (rig '{spec.name}' has no such "
                         f"slider){did_you_mean(name, spec.slider_names)}")
            continue
        s = spec.sliders[spec._index[name]]
        x = _check_value(s, problems, prefix + (name,), value)
        if x is not None:
            out[name] = (x, s.readable(x))
    return out


def _preset_from_data(spec: RigSpec, data: dict, problems: Problems) -> dict[str, object]:
    check_keys(problems, (), data, _PRESET_KEYS, required=("name",))
    if "name" in data:
        check_str(problems, ("name",), data["name"], one_line=True)
    if "description" in data:
        check_str(problems, ("description",), data["description"])
    sliders = data.get("sliders") or {}
    if not isinstance(sliders, dict):
        problems.add(("sliders",), f"expected a mapping of slider name -> value, got {describe(sliders)}")
        sliders = {}
    posed = {}
    if "pose" in data:  # a pose preset's sliders first; the preset's own pose.* values win
        from avatar.spec.pose import load_pose

        pose = check_str(problems, ("pose",), data["pose"], one_line=True)
        if pose is not None:
            try:
                posed = load_pose(pose, spec, relative_to=problems.file)
            except ConfigError as err:
                problems.add(("pose",), str(err).replace("\n", "; "))
    values = check_values(spec, problems, ("sliders",), sliders)
    _check_targets(spec, problems, data)
    problems.raise_if_any()
    return {**posed, **{name: readable for name, (_, readable) in values.items()}}


def _check_targets(spec: RigSpec, problems: Problems, data: dict) -> tuple[dict, object]:
    """A preset's ``measurements:`` targets and the ``free:`` sliders that may move to hit them."""
    targets, free = {}, None
    from avatar.spec.measurements import check_free, check_targets, load_measurements

    if "measurements" in data:
        targets = check_targets(problems, ("measurements",), data["measurements"], load_measurements())
    if "free" in data:
        if "measurements" not in data:
            problems.add(("free",), "'free' lists the sliders that may move to hit 'measurements', which is missing")
        free = check_free(problems, ("free",), data["free"], spec.slider_names if "measurements" in data else None)
    return targets, free


def preset_targets(spec: RigSpec, preset) -> tuple[dict, object]:
    """A preset's measurement targets {name: value} and its ``free`` sliders (None: the default set).

    ``preset`` as for :func:`preset_vector`; a .mhm file or a plain mapping of values has none.
    """
    if isinstance(preset, Mapping):
        data, problems = dict(preset), Problems("<preset>")
        if "sliders" not in data:
            return {}, None
    elif str(preset).lower().endswith(".mhm"):
        return {}, None
    else:
        data, lines, duplicates = load_yaml_lenient(preset)
        problems = Problems(str(preset), lines, duplicates)
    out = _check_targets(spec, problems, data if isinstance(data, dict) else {})
    problems.raise_if_any()
    return out


def load_preset(path: str | PathLike, spec: RigSpec) -> dict[str, object]:
    """Validated preset file -> {slider name: readable value} for the sliders it lists.

    Readable values: float (continuous), int (integer), bool, category name.
    A ``.mhm`` path is read as a MakeHuman 1.1 model file (:mod:`avatar.body.mhm`).
    """
    if str(path).lower().endswith(".mhm"):
        from avatar.body.mhm import load_mhm

        return load_mhm(path, spec)
    data, lines, duplicates = load_yaml_lenient(path)
    return _preset_from_data(spec, data, Problems(str(path), lines, duplicates))


def preset_vector(spec: RigSpec, preset: str | PathLike | Mapping) -> np.ndarray:
    """Defaults overridden by a preset, shape (P,).

    ``preset`` is a file path (a preset YAML or a MakeHuman ``.mhm`` file), a
    parsed preset document (a mapping with a ``sliders`` key), or a plain
    mapping slider name -> value.
    """
    if isinstance(preset, Mapping) and "sliders" in preset:
        preset = _preset_from_data(spec, dict(preset), Problems("<preset>"))
    elif not isinstance(preset, Mapping):
        preset = load_preset(preset, spec)
    return spec.to_vector(preset)


def preset_text(spec: RigSpec, values: np.ndarray, name: str) -> str:
    """Preset YAML listing the sliders whose values (P,) differ from their defaults."""
    import yaml

    changed = {s.name: s.readable(v) for s, v in zip(spec.sliders, values) if v != s.default}
    changed = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in changed.items()}
    return yaml.safe_dump({"name": name, "sliders": changed}, sort_keys=False)


def preset_from_text(text: str, spec: RigSpec, file: str = "<string>") -> dict[str, object]:
    """Like :func:`load_preset` for YAML text already in memory."""
    data, lines, duplicates = parse_yaml_lenient(text, file)
    return _preset_from_data(spec, data, Problems(file, lines, duplicates))


__all__ = ["ConfigError", "DISTRIBUTIONS", "KINDS", "RigSpec", "SliderSpec", "UNITS", "load_preset",
           "load_rig_spec", "preset_from_text", "preset_targets", "preset_text", "preset_vector", "rig_spec_from_data", "uniforms", "unit_suffix"]
