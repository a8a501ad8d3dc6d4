"""MakeHuman 1.1 model files (``.mhm``): read them as slider values, write values back.

A ``.mhm`` file is text, one property a line. The lines that shape the body are

    modifier macrodetails/Gender 0.500000          a macro, 0..1
    modifier nose/nose-width1-decr|incr -0.250000  a two-sided modifier, -1..1
    modifier head/head-square 0.400000             a one-sided modifier, 0..1

and map onto a rig's sliders:

* macros onto the slider whose ``macro:`` is that variable: 0..1 times the
  slider's ``max`` (``body.gender`` 0..100), except ``macrodetails/Age``,
  MakeHuman's age value, which becomes years (:func:`avatar.body.macros.age_to_years`);
* modifiers onto the slider whose ``makehuman:`` names the same targets:
  -1..1 (or 0..1) times 100. A modifier is found by its target file stems,
  which are unique across MakeHuman's folders, so MakeHuman 1.1's own group
  names (``armslegs/r-hand-scale-decr|incr``, ``measure/measure-waist-circ-decr|incr``)
  and MPFB2's folders (``hands/...``, ``torso/...``) both resolve.

Every other line is ignored: ``version``, ``uuid``, ``tags`` and ``camera``
silently, the rest (``skeleton``, ``eyes``, ``clothes``, ``skinMaterial``,
``subdivide``...) with one note naming them.
Sliders MakeHuman has no modifier for (skin, tattoo, hair, our own deformers)
are written as ``# avatar <slider> <value>`` lines, which MakeHuman skips as
comments and this module reads back.

:func:`mhm_text` writes ``version v1.1.1``, ``name``, ``camera 0.0 0.0``, then
one ``modifier`` line per macro and per modifier away from its default, with
six decimals and in MakeHuman 1.1's spelling, so a file written here reads
back to the same text byte for byte.
"""
from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from avatar.body.catalogue import NOT_ON_THE_BODY, target_keys
from avatar.body.macros import age_to_years, years_to_age
from avatar.spec.config import ConfigError, Problems, describe, did_you_mean, format_number
from avatar.spec.sliders import RigSpec, SliderSpec

# MakeHuman 1.1's name of each macro variable (data/modifiers/modeling_modifiers.json)
MACRO_NAMES = {
    "gender": "macrodetails/Gender",
    "age": "macrodetails/Age",
    "african": "macrodetails/African",
    "asian": "macrodetails/Asian",
    "caucasian": "macrodetails/Caucasian",
    "muscle": "macrodetails-universal/Muscle",
    "weight": "macrodetails-universal/Weight",
    "height": "macrodetails-height/Height",
    "proportions": "macrodetails-proportions/BodyProportions",
    "cupsize": "breast/BreastSize",
    "firmness": "breast/BreastFirmness",
}
# MPFB2 split MakeHuman 1.1's ``armslegs`` group into these folders, and moved the
# ``measure-*`` modifiers into the regions they measure
_ARMSLEGS = ("arms", "legs", "hands", "feet")
# MPFB2 modifiers MakeHuman 1.1 lacks: written in MPFB2's spelling
_MPFB2_ONLY = ("foot-scale-horiz-", "foot-scale-vert-", "foot-scale-depth-", "foot-trans-down|up",
               "lowerleg-scale-vert-")
VERSION = "v1.1.1"
COMMENT = "# avatar"
_METADATA = ("version", "uuid", "tags", "camera")  # read without a note: they describe the file, not a body
IGNORED_NOTE = "ignored {n} line(s) of {file} that do not shape the body ({keys})"


@dataclass(frozen=True)
class MhmModel:
    """A parsed ``.mhm`` file: readable slider values, the model's name and what was ignored."""

    values: dict[str, object]
    name: str | None
    ignored: tuple[str, ...]  # the keywords of the ignored lines, in first-seen order
    note: str | None          # one sentence about the ignored lines, None when there were none


def makehuman_name(s: SliderSpec) -> str | None:
    """The name a ``.mhm`` file gives slider ``s`` (MakeHuman 1.1's spelling), None when it has none."""
    if s.macro:
        return MACRO_NAMES[s.macro]
    if not s.makehuman:
        return None
    group, _, rest = s.makehuman.partition("/")
    if group == "expression":  # expression/units/*/<unit>: not a MakeHuman 1.1 modifier
        return "expression/" + rest.rsplit("/", 1)[1]
    target = rest.rpartition("-")[0] if "|" in rest else rest
    if target.startswith("measure-"):
        group = "measure"
    elif group in _ARMSLEGS and not rest.split("-", 1)[-1].startswith(_MPFB2_ONLY):
        group = "armslegs"
    return f"{group}/{rest}"


def _stem_key(name: str) -> tuple[str, ...]:
    """``group/target-lo|hi`` -> (target-lo, target-hi); ``group/target`` -> (target,)."""
    return tuple(key.rsplit("/", 1)[-1] for key in target_keys(name))


class _Resolver:
    """Modifier names -> (slider, sign) for one rig spec."""

    def __init__(self, spec: RigSpec):
        self.spec = spec
        self.macros = {MACRO_NAMES[s.macro]: s for s in spec.sliders if s.macro}
        self.stems: dict[tuple[str, ...], tuple[SliderSpec, float]] = {}
        for s in spec.sliders:
            if not s.makehuman:
                continue
            key = _stem_key(s.makehuman)
            self.stems[key] = (s, 1.0)
            if len(key) == 2:
                self.stems.setdefault(key[::-1], (s, -1.0))
        self.names = list(self.macros) + [makehuman_name(s) for s in spec.sliders if s.makehuman]

    def __call__(self, name: str) -> tuple[SliderSpec, float] | None:
        if name in self.macros:
            return self.macros[name], 1.0
        return self.stems.get(_stem_key(name))


def _suggest(name: str, names: list[str]) -> str:
    hint = did_you_mean(name, names)
    if not hint:  # a misspelt or unknown group: compare the part after the slash
        tails = {n.rsplit("/", 1)[-1]: n for n in names}
        match = difflib.get_close_matches(name.rsplit("/", 1)[-1], list(tails), n=1, cutoff=0.6)
        hint = f"; did you mean '{tails[match[0]]}'?" if match else ""
    return hint


def _mhm_range(s: SliderSpec, sign: float) -> tuple[float, float]:
    """The .mhm value range of slider ``s``: 0..1 for macros and one-sided modifiers, else -1..1."""
    return (0.0, 1.0) if s.macro or s.min >= 0 else (-1.0, 1.0)


def _to_slider(s: SliderSpec, x: float, sign: float) -> float:
    if s.macro == "age":
        return float(age_to_years(x))
    return float(sign * x * s.max)


def _to_mhm(s: SliderSpec, v: float) -> float:
    if s.macro == "age":
        return float(years_to_age(v))
    return float(v) / s.max


def parse_mhm(text: str, spec: RigSpec, file: str = "<string>") -> MhmModel:
    """``.mhm`` text -> :class:`MhmModel`; ConfigError lists every bad line (file:line, did-you-mean)."""
    problems = Problems(file)
    resolve = _Resolver(spec)
    values: dict[str, object] = {}
    ignored: dict[str, int] = {}
    name = None
    for n, raw in enumerate(text.splitlines(), start=1):
        words = raw.split()
        if not words:
            continue
        key = words[0]
        if key == "#" and len(words) > 1 and f"# {words[1]}" == COMMENT:
            _read_extra(problems, spec, values, words[2:], n, raw)
            continue
        if key.startswith("#"):
            continue
        if key == "name":
            name = " ".join(words[1:]) or None
            continue
        if key != "modifier":
            if not key.replace("_", "").isalnum() or not key[0].isalpha():
                problems.add((), f"line {describe(raw.strip()[:60])} is not a .mhm property "
                             "(expected 'modifier <name> <value>' or a keyword such as 'version')", n)
            elif key not in _METADATA:
                ignored[key] = ignored.get(key, 0) + 1
            continue
        if len(words) != 3:
            problems.add((), f"expected 'modifier <name> <value>', got {describe(raw.strip()[:80])}", n)
            continue
        mod, text_value = words[1], words[2]
        hit = resolve(mod)
        if hit is None and mod.split("/", 1)[0] in NOT_ON_THE_BODY:
            ignored[f"modifier {mod}"] = ignored.get(f"modifier {mod}", 0) + 1  # moves no body vertex
            continue
        if hit is None:
            problems.add((), f"unknown modifier '{mod}' (rig '{spec.name}' has no slider for it)"
                         f"{_suggest(mod, resolve.names)}", n)
            continue
        s, sign = hit
        try:
            x = float(text_value)
        except ValueError:
            x = math.nan
        if not math.isfinite(x):
            problems.add((), f"modifier '{mod}': expected a number, got {describe(text_value)}", n)
            continue
        lo, hi = _mhm_range(s, sign)
        if not lo <= x <= hi:
            problems.add((), f"modifier '{mod}': value {format_number(x)} is outside {format_number(lo)} "
                         f"to {format_number(hi)}", n)
            continue
        values[s.name] = min(max(_to_slider(s, x, sign), s.min), s.max)
    problems.raise_if_any()
    keys = tuple(ignored)
    note = IGNORED_NOTE.format(n=sum(ignored.values()), file=file, keys=", ".join(keys)) if keys else None
    return MhmModel(values, name, keys, note)


def _read_extra(problems: Problems, spec: RigSpec, values: dict, words: list[str], n: int, raw: str) -> None:
    """A ``# avatar <slider> <value>`` line: a slider MakeHuman has no modifier for."""
    if len(words) != 2:
        problems.add((), f"expected '# avatar <slider> <value>', got {describe(raw.strip()[:80])}", n)
        return
    name, text_value = words
    if name not in spec.slider_names:
        problems.add((), f"unknown slider '{name}' (rig '{spec.name}' has no such slider)"
                     f"{did_you_mean(name, spec.slider_names)}", n)
        return
    s = spec.sliders[spec.index(name)]
    if s.kind == "categorical":
        if text_value not in s.categories:
            problems.add((), f"slider '{name}': expected one of {', '.join(s.categories)}, "
                         f"got {describe(text_value)}", n)
            return
        values[name] = text_value
        return
    if s.kind == "bool":
        if text_value not in ("true", "false"):
            problems.add((), f"slider '{name}': expected true or false, got {describe(text_value)}", n)
            return
        values[name] = text_value == "true"
        return
    try:
        x = float(text_value)
    except ValueError:
        x = math.nan
    if not math.isfinite(x) or not s.min <= x <= s.max or (s.kind == "integer" and x != round(x)):
        problems.add((), f"slider '{name}': {describe(text_value)} is not a value from "
                     f"{format_number(s.min)} to {format_number(s.max)}", n)
        return
    values[name] = int(x) if s.kind == "integer" else x


def load_mhm(path: str | PathLike, spec: RigSpec, warn: bool = True) -> dict[str, object]:
    """A ``.mhm`` file -> {slider name: readable value}; one warning names the ignored lines."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        problems = Problems(str(path))
        problems.add((), f"not a MakeHuman .mhm text file ({e.reason} at byte {e.start})", 1)
        raise ConfigError(problems.items) from None
    model = parse_mhm(text, spec, str(path))
    if warn and model.note:
        warnings.warn(model.note, stacklevel=2)
    return model.values


def _number(x: float) -> str:
    text = f"{x:.6f}"
    return "0.000000" if text == "-0.000000" else text


def mhm_text(values, spec: RigSpec, name: str = "avatar") -> str:
    """Slider values (a (P,) vector or {slider: readable value}) -> ``.mhm`` text."""
    vector = spec.to_vector(values) if isinstance(values, Mapping) else values
    lines = [f"version {VERSION}", f"name {' '.join(str(name).split()) or 'avatar'}", "camera 0.0 0.0"]
    extra = []
    for s, v in zip(spec.sliders, vector):
        v = float(v)
        mh = makehuman_name(s)
        if mh is None:
            if v != s.default:
                extra.append(f"{COMMENT} {s.name} {_readable(s, v)}")
        elif s.macro or _number(_to_mhm(s, v)) != _number(_to_mhm(s, s.default)):
            lines.append(f"modifier {mh} {_number(_to_mhm(s, v))}")
    return "\n".join(lines + extra) + "\n"


def _readable(s: SliderSpec, v: float) -> str:
    r = s.readable(v)
    if isinstance(r, bool):
        return "true" if r else "false"
    if isinstance(r, float):
        return repr(r)
    return str(r)


def write_mhm(path: str | PathLike, values, spec: RigSpec | None = None, name: str | None = None) -> Path:
    """Write slider values as a ``.mhm`` file (atomically); ``spec`` defaults to the default rig."""
    if spec is None:
        from avatar.body.rig import DEFAULT_RIG
        from avatar.spec.sliders import load_rig_spec

        spec = load_rig_spec(DEFAULT_RIG)
    path = Path(path)
    text = mhm_text(values, spec, name or path.stem)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


__all__ = ["MACRO_NAMES", "MhmModel", "load_mhm", "makehuman_name", "mhm_text", "parse_mhm", "write_mhm"]
