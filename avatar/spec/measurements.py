"""Body measurements declared as data: ``configs/measurements/*.yaml`` parsed and validated.

A measurements file names landmarks and measurements (see the default file's
header and docs/measure.md). This module only reads and checks the YAML;
:mod:`avatar.measure` turns the definitions into batched array functions.

Points in a definition are joint names (MakeHuman's joint cubes, ``joint-l-elbow``)
or base.obj body vertex indices; every problem is reported with file, line and key.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from avatar.spec.config import (ConfigError, Problem, Problems, check_choice, check_keys, check_number, check_str,
                                describe, did_you_mean, load_yaml_lenient)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MEASUREMENTS = ROOT / "configs" / "measurements" / "default.yaml"
KINDS = ("stature", "volume", "mass", "bmi", "circumference", "distance", "height")
UNITS = {"stature": "cm", "volume": "L", "mass": "kg", "bmi": "kg/m2", "circumference": "cm",
         "distance": "cm", "height": "cm"}
AXES = ("x", "y", "z")
N_BODY = 13380  # base.obj's body vertices (avatar.body.assets.N_BODY; not imported: the spec reads no assets)
_KEYS = {"stature": (), "volume": (), "mass": (), "bmi": (), "circumference": ("plane", "loop", "tape"),
         "distance": ("between",), "height": ("at",)}


@dataclass(frozen=True)
class Plane:
    """A cutting plane at the rest template: through a point (or at ``at`` between two points), with a normal.

    ``normal`` is an axis name, ``"along"`` (the ``between`` segment) or a pair of points.
    """

    through: object = None          # a point (joint name or vertex index), or None with ``between``
    between: tuple = ()             # two points
    at: float = 0.5
    normal: object = "y"


@dataclass(frozen=True)
class Measurement:
    name: str
    kind: str
    label: str
    description: str
    unit: str
    plane: Plane | None = None
    loop: tuple = ()                # vertex indices of a closed loop
    tape: bool = False
    between: tuple = ()             # two landmark names (distance)
    at: str | None = None           # a landmark name (height)
    line: int | None = None


@dataclass(frozen=True)
class MeasurementSpec:
    """A validated measurements file."""

    source: str
    density: float
    landmarks: dict = field(default_factory=dict)     # name -> ("vertex", index) | ("ring", Plane)
    measurements: tuple = ()                          # of Measurement, in file order

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.measurements]

    def __getitem__(self, name: str) -> Measurement:
        for m in self.measurements:
            if m.name == name:
                return m
        raise KeyError(f"unknown measurement {name!r}{did_you_mean(name, self.names)}")


def _point(problems: Problems, path: tuple, raw: object) -> object:
    """A joint name (``joint-*``) or a body vertex index."""
    if isinstance(raw, str):
        if not raw.startswith("joint-"):
            problems.add(path, f"expected a joint name (joint-...) or a body vertex index, got {describe(raw)}")
        return raw
    x = check_number(problems, path, raw, integral=True)
    if x is not None and not 0 <= x < N_BODY:
        problems.add(path, f"vertex {int(x)} is not a body vertex (0 to {N_BODY - 1})")
    return None if x is None else int(x)


def _pair(problems: Problems, path: tuple, raw: object) -> tuple:
    if not isinstance(raw, list) or len(raw) != 2:
        problems.add(path, f"expected two points [a, b], got {describe(raw)}")
        return ()
    return tuple(_point(problems, path + (i,), p) for i, p in enumerate(raw))


def _plane(problems: Problems, path: tuple, raw: object) -> Plane | None:
    if not isinstance(raw, dict):
        problems.add(path, f"expected a mapping with through or between, and normal, got {describe(raw)}")
        return None
    check_keys(problems, path, raw, ("through", "between", "at", "normal"))
    if ("through" in raw) == ("between" in raw):
        problems.add(path, "give exactly one of 'through' (a point) or 'between' (two points)")
        return None
    through = _point(problems, path + ("through",), raw["through"]) if "through" in raw else None
    between = _pair(problems, path + ("between",), raw["between"]) if "between" in raw else ()
    at = check_number(problems, path + ("at",), raw.get("at", 0.5))
    if at is not None and not 0.0 <= at <= 1.0:
        problems.add(path + ("at",), f"must lie in 0..1, got {at:g}")
    normal = raw.get("normal", "y")
    if isinstance(normal, list):
        normal = _pair(problems, path + ("normal",), normal)
    elif normal == "along":
        if not between:
            problems.add(path + ("normal",), "'along' needs 'between' (the segment it runs along)")
    else:
        normal = check_choice(problems, path + ("normal",), normal, AXES + ("along",), "normal")
    return Plane(through, between, 0.5 if at is None else at, normal)


def _landmark(problems: Problems, path: tuple, raw: object):
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in ("vertex", "ring"):
        problems.add(path, f"expected {{vertex: index}} or {{ring: plane}}, got {describe(raw)}")
        return None
    (kind, value), = raw.items()
    if kind == "vertex":
        v = _point(problems, path + ("vertex",), value)
        if isinstance(v, str):
            problems.add(path + ("vertex",), "expected a body vertex index")
        return ("vertex", v)
    return ("ring", _plane(problems, path + ("ring",), value))


def _measurement(problems: Problems, name: str, raw: object, landmarks: dict) -> Measurement | None:
    path = ("measurements", name)
    if not isinstance(raw, dict):
        problems.add(path, f"expected a mapping, got {describe(raw)}")
        return None
    kind = check_choice(problems, path + ("kind",), raw.get("kind"), KINDS, "kind") if "kind" in raw else None
    if "kind" not in raw:
        problems.add(path, "missing required key 'kind'")
    if kind is None:
        return None
    check_keys(problems, path, raw, ("kind", "label", "description") + _KEYS[kind])
    label = check_str(problems, path + ("label",), raw.get("label", name), one_line=True) or name
    description = check_str(problems, path + ("description",), raw.get("description", label)) or label
    out = dict(name=name, kind=kind, label=label, description=description, unit=UNITS[kind],
               line=problems.line_of(path))
    if kind == "circumference":
        if ("plane" in raw) == ("loop" in raw):
            problems.add(path, "a circumference needs exactly one of 'plane' or 'loop'")
            return None
        if "plane" in raw:
            out["plane"] = _plane(problems, path + ("plane",), raw["plane"])
        else:
            loop = raw["loop"]
            if not isinstance(loop, list) or len(loop) < 3:
                problems.add(path + ("loop",), f"expected a list of at least 3 vertex indices, got {describe(loop)}")
                return None
            out["loop"] = tuple(_point(problems, path + ("loop", i), v) for i, v in enumerate(loop))
        tape = raw.get("tape", False)
        if not isinstance(tape, bool):
            problems.add(path + ("tape",), f"expected true or false, got {describe(tape)}")
        out["tape"] = tape is True
    for key, count in (("between", 2), ("at", 1)):
        if kind in ("distance", "height") and key in _KEYS[kind]:
            if key not in raw:
                problems.add(path, f"missing required key '{key}'")
                return None
            names = raw[key] if count == 2 else [raw[key]]
            if not isinstance(names, list) or len(names) != count:
                problems.add(path + (key,), f"expected {count} landmark names, got {describe(raw[key])}")
                return None
            for i, lm in enumerate(names):
                if lm not in landmarks:
                    problems.add(path + ((key, i) if count == 2 else (key,)),
                                 f"unknown landmark {describe(lm)}{did_you_mean(lm, landmarks)}")
            out[key] = tuple(names) if count == 2 else names[0]
    return Measurement(**out)


def parse_measurements(data: dict, problems: Problems) -> MeasurementSpec:
    check_keys(problems, (), data, ("density", "landmarks", "measurements"), required=("measurements",))
    density = check_number(problems, ("density",), data.get("density", 1010.0))
    if density is not None and not 500.0 <= density <= 2000.0:
        problems.add(("density",), f"{density:g} kg/m^3 is not a body density (500 to 2000)")
    raw_landmarks = data.get("landmarks") or {}
    if not isinstance(raw_landmarks, dict):
        problems.add(("landmarks",), f"expected a mapping of name -> landmark, got {describe(raw_landmarks)}")
        raw_landmarks = {}
    landmarks = {str(k): _landmark(problems, ("landmarks", k), v) for k, v in raw_landmarks.items()}
    raw = data.get("measurements") or {}
    if not isinstance(raw, dict):
        problems.add(("measurements",), f"expected a mapping of name -> measurement, got {describe(raw)}")
        raw = {}
    items = tuple(m for name, v in raw.items() if (m := _measurement(problems, str(name), v, landmarks)))
    problems.raise_if_any()
    return MeasurementSpec(problems.file, 1010.0 if density is None else density, landmarks, items)


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> MeasurementSpec:
    data, lines, duplicates = load_yaml_lenient(path)
    return parse_measurements(data if isinstance(data, dict) else {}, Problems(path, lines, duplicates))


def load_measurements(path: str | Path | None = None) -> MeasurementSpec:
    """The validated measurements file ``path`` (default: configs/measurements/default.yaml)."""
    path = Path(path or DEFAULT_MEASUREMENTS)
    try:
        return _load(str(path), path.stat().st_mtime)
    except FileNotFoundError:
        raise ConfigError([Problem(str(path), None, "", "no such measurements file")]) from None


def check_targets(problems: Problems, path: tuple, raw: object, spec: MeasurementSpec) -> dict[str, float]:
    """A preset's ``measurements:`` mapping (name -> value in the measurement's unit), checked."""
    if not isinstance(raw, dict):
        problems.add(path, f"expected a mapping of measurement -> value, got {describe(raw)}")
        return {}
    out = {}
    for name, value in raw.items():
        if name not in spec.names:
            problems.add(path + (name,), f"unknown measurement '{name}'{did_you_mean(name, spec.names)}")
            continue
        if spec[name].kind in ("volume",):
            problems.add(path + (name,), "volume cannot be a target (give mass)")
            continue
        x = check_number(problems, path + (name,), value)
        if x is not None and x <= 0:
            problems.add(path + (name,), f"must be positive, got {x:g}")
        elif x is not None:
            out[str(name)] = x
    return out


def check_free(problems: Problems, path: tuple, raw: object, slider_names) -> list | None:
    """A ``free:`` list of slider names or globs, each matching some slider (``slider_names``
    None: the shape alone is checked); None, with a problem recorded, when it is not one."""
    import fnmatch

    if not (isinstance(raw, list) and raw and all(isinstance(f, str) for f in raw)):
        problems.add(path, f"expected a list of slider names or globs, got {describe(raw)}")
        return None
    for i, pat in enumerate(raw if slider_names is not None else ()):
        if not any(fnmatch.fnmatchcase(n, pat) for n in slider_names):
            problems.add(path + (i,), f"matches no slider{did_you_mean(pat, slider_names)}")
    return list(raw)
