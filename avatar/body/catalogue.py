"""MakeHuman's modifier catalogue (``targets/target.json``) as readable slider entries.

Every category of the catalogue becomes one slider per side, named
``<group>.<name>`` after MakeHuman's group and modifier names
(``nose/nose-width1-decr|incr`` -> ``nose.width1``, ``ears/l-ear-flap-decr|incr``
-> ``ears.l_flap``). Two-sided modifiers run -100 (the ``decr`` target) to
100 (the ``incr`` target); one-sided ones (``head/head-square``) 0 to 100.
Each entry records its MakeHuman name, which is also what a ``.mhm`` file's
``modifier`` line says.

``python -m avatar.body.catalogue`` prints the YAML slider entries the
default rig (``configs/rigs/humanoid.yaml``) was written from; a test keeps
the rig and the catalogue in sync.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from avatar.body import assets

# modifiers a general-purpose dataset leaves alone: declared, never sampled
OFF_BY_DEFAULT = ("breast/nipple-",)
# MakeHuman's genital modifiers move only its helper genital geometry, which our body does not
# include: as sliders they would move nothing, so the rig leaves them out (.mhm files may name them)
NOT_ON_THE_BODY = ("genitals",)
# the word a group's modifier names start with, dropped from slider names
_GROUP_WORD = {"ears": "ear", "eyes": "eye", "feet": "foot", "hands": "hand", "legs": "leg", "arms": "arm"}
_WORDS = {"decr": "less", "incr": "more", "trans": "move", "scale": "scale", "vert": "height",
          "horiz": "width", "depth": "depth", "circ": "circumference", "dist": "distance",
          "rot": "rotation", "l": "left", "r": "right", "fat": "fat", "measure": "measured"}
_REGION = {"ears": "ear", "eyes": "eye", "feet": "foot", "hands": "hand", "legs": "leg", "arms": "arm",
           "eyebrows": "eyebrows"}


@dataclass(frozen=True)
class Modifier:
    """One catalogue slider.

    name      : ``nose.width1``
    makehuman : ``nose/nose-width1-decr|incr`` (the .mhm modifier name)
    low, high : target keys at -100 and +100 (``low`` is None for a one-sided modifier)
    """

    name: str
    group: str
    makehuman: str
    low: str | None
    high: str
    label: str
    description: str

    @property
    def one_sided(self) -> bool:
        return self.low is None


def target_keys(makehuman: str) -> tuple[str, ...]:
    """The target keys a MakeHuman modifier name blends.

    ``nose/nose-width1-decr|incr`` -> (``nose/nose-width1-decr``, ``nose/nose-width1-incr``): the
    target at -100, then at +100; ``head/head-square`` -> (``head/head-square``,);
    ``expression/units/*/<unit>`` -> its african, asian and caucasian variants.
    """
    from avatar.body.macros import RACES

    group, _, rest = makehuman.partition("/")
    if rest.startswith("units/*/"):
        unit = rest.rsplit("/", 1)[1]
        return tuple(f"{group}/units/{race}/{unit}" for race in RACES)
    if "|" in rest:
        stem, _, ends = rest.rpartition("-")
        return tuple(f"{group}/{stem}-{end}" for end in ends.split("|"))
    return (makehuman,)


def _common_stem(a: str, b: str) -> str:
    n = len(os.path.commonprefix([a, b]))
    return a[: a.rfind("-", 0, n + 1)] if "-" in a[:n] else a[:n]


def _slider_name(group: str, stem: str) -> str:
    side, words = "", stem.split("-")
    if words[0] in ("l", "r"):
        side, words = words[0] + "_", words[1:]
    if len(words) > 1 and words[0] in (group, _GROUP_WORD.get(group, group), group.rstrip("s")):
        words = words[1:]
    return f"{group}.{side}{'_'.join(words)}"


def _readable(words: list[str]) -> str:
    return " ".join(_WORDS.get(w, w) for w in words)


def _entry(group: str, stem: str, low: str | None, high: str) -> Modifier:
    name = _slider_name(group, stem)
    mh = f"{group}/{stem}-{low[len(stem) + 1:]}|{high[len(stem) + 1:]}" if low else f"{group}/{high}"
    words = stem.split("-")
    side = {"l": "left ", "r": "right "}.get(words[0], "")
    if side:
        words = words[1:]
    label = (side + _readable(words)).capitalize()
    region = side + _REGION.get(group, group)
    if low:
        lo, hi = low[len(stem) + 1:], high[len(stem) + 1:]
        description = (f"MakeHuman's {_readable(words)} modifier on the {region}: "
                       f"{_WORDS.get(lo, lo)} at -100, {_WORDS.get(hi, hi)} at +100.")
    else:
        description = f"MakeHuman's {_readable(words)} shape of the {region}, none at 0 to full at 100."
    return Modifier(name, group, mh, f"{group}/{low}" if low else None, f"{group}/{high}", label, description)


def modifiers() -> list[Modifier]:
    """Every slider of the catalogue that moves the body, in catalogue order, left before right."""
    out = []
    for group, body in assets.catalogue().items():
        if group in NOT_ON_THE_BODY:
            continue
        for cat in body["categories"]:
            opp = cat.get("opposites") or {}
            pairs = []
            for side in ("left", "right", "unsided"):
                lo, hi = opp.get(f"negative-{side}"), opp.get(f"positive-{side}")
                if lo and hi:
                    pairs.append((lo, hi))
            if not opp:  # no opposites listed: one target per side, or l/r decr+incr pairs
                targets = sorted(cat["targets"])
                if len(targets) == 1:
                    out.append(_entry(group, targets[0], None, targets[0]))
                    continue
                for prefix in ("l-", "r-"):
                    side = [t for t in targets if t.startswith(prefix)]
                    if len(side) == 2:
                        pairs.append((side[0], side[1]))
            for lo, hi in pairs:
                out.append(_entry(group, _common_stem(lo, hi), lo, hi))
    return _disambiguate(out)


def _disambiguate(mods: list[Modifier]) -> list[Modifier]:
    """Names shared by several modifiers (``nose-trans-down|up``, ``nose-trans-in|out``) gain
    their +100 word: ``nose.trans_up``, ``nose.trans_out``."""
    from collections import Counter
    from dataclasses import replace

    count = Counter(m.name for m in mods)
    return [replace(m, name=f"{m.name}_{m.high.rsplit('-', 1)[1]}") if count[m.name] > 1 and m.low else m
            for m in mods]


def expression_units() -> list[tuple[str, str]]:
    """(slider name, unit file stem) of MakeHuman's facial expression units, sorted."""
    folder = assets.data_dir() / "targets" / "expression" / "units" / "caucasian"
    stems = sorted(p.name[: -len(".target.gz")] for p in folder.glob("*.target.gz"))
    return [("expression." + s.replace("-", "_"), s) for s in stems]


def _yaml_entries() -> str:
    lines = []
    for m in modifiers():
        off = m.makehuman.startswith(OFF_BY_DEFAULT)
        rng = "min: 0\n    max: 100" if m.one_sided else "min: -100\n    max: 100"
        dist = "fixed" if off else "{kind: normal, mean: 0, std: %d}" % (12 if m.one_sided else 20)
        lines += [f"  {m.name}:", f"    label: {m.label}", f"    description: \"{m.description}\"",
                  f"    {rng}", "    default: 0", f"    distribution: {dist}", '    unit: "%"',
                  f"    makehuman: {m.makehuman}"]
    for name, stem in expression_units():
        words = stem.replace("-", " ")
        lines += [f"  {name}:", f"    label: {words.capitalize()}",
                  f"    description: \"MakeHuman's '{words}' expression unit, neutral at 0 to full at 100.\"",
                  "    min: 0", "    max: 100", "    default: 0", "    distribution: fixed", '    unit: "%"',
                  f"    makehuman: expression/units/*/{stem}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(_yaml_entries(), end="")
