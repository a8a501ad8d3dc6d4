"""Dataset configs: a YAML file naming a rig, a sampler, the sliders to vary and the outputs.

    rig: humanoid            # a rig under configs/rigs, or a path to a rig YAML
    n: 10000
    seed: 0
    sampler: sobol           # uniform | prior | sobol | latin_hypercube | grid | traversal
    vary: [head.*, forehead.*, eyebrows.*, eyes.*, nose.*, ears.*, cheek.*, mouth.*, chin.*, skin.*]   # glob patterns; the other sliders stay at `base:` (default: defaults); scene sliders only when their group is named (scene.*)
    base: configs/avatars/knight.yaml      # optional: a preset file or a mapping slider -> value
    correlate: {body.weight: {body.muscle: 0.5}}   # optional, random samplers only
    levels: 5                # grid only: values per continuous slider (or {slider: levels})
    steps: 7                 # traversal only: values per continuous slider
    outputs:
      vertices: {dtype: float32}
      textures: {size: 256}
      renders: {views: [front], size: 128}   # or [camera]: the camera the scene sliders set
    store: data/faces-10k.zarr
    shard: 1024

:func:`load_config` validates the whole file and reports every problem at once
(file:line, did-you-mean) as one :class:`avatar.spec.config.ConfigError`. The result,
:class:`DatasetConfig`, is fully resolved: the rig's YAML text, the base
values and the varied slider names are in it, so a worker process (or a
remote Dask worker) can rebuild exactly the same sampling plan from
:meth:`DatasetConfig.resolved` without reading any file.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path


from avatar.spec.config import (ConfigError, Problems, check_choice, check_keys, check_number, check_str,
                      describe, did_you_mean, format_number)

SAMPLERS = ("uniform", "prior", "sobol", "latin_hypercube", "grid", "traversal")
RANDOM_SAMPLERS = ("uniform", "prior", "sobol", "latin_hypercube")
_KEYS = ("name", "description", "rig", "n", "seed", "sampler", "vary", "base", "priors", "correlate", "levels",
         "steps", "condition", "outputs", "store", "shard")
_OUTPUTS = ("vertices", "textures", "renders", "measurements")
_OUTPUT_KEYS = {"vertices": ("dtype",), "textures": ("size",), "renders": ("views", "size"), "measurements": ()}
VERTEX_DTYPES = ("float32", "float16", "float64")
MAX_SHARD = 1 << 16
MAX_N = 1 << 40


@dataclass
class DatasetConfig:
    """A validated dataset config. Slider values are in array units (see :mod:`avatar.spec.sliders`)."""

    rig: str                      # what the file said (a name or a path)
    rig_text: str                 # the rig YAML itself
    n: int
    seed: int
    sampler: str
    vary: list[str]               # the patterns as written
    varied: list[str]             # the sliders they match, in rig order
    base: dict[str, object]       # readable values of the sliders the base sets
    correlate: dict[str, dict[str, float]] = field(default_factory=dict)
    priors: dict[str, dict] = field(default_factory=dict)  # prior sampler: slider -> distribution for this dataset
    levels: dict[str, int] = field(default_factory=dict)  # grid: levels per varied slider
    steps: int | None = None
    condition: dict = field(default_factory=dict)  # measurement targets per row (avatar.dataset.condition)
    outputs: dict[str, dict] = field(default_factory=dict)
    store: str = ""
    shard: int = 1024
    name: str = ""
    description: str = ""
    source: str = "<config>"      # the file it came from
    text: str = ""                # the file's text

    # -- derived -----------------------------------------------------------
    def resolved(self) -> dict:
        """Everything that decides the dataset's bytes, as plain JSON data (no paths to read)."""
        return {
            "rig": self.rig, "rig_sha256": hashlib.sha256(self.rig_text.encode()).hexdigest(),
            "n": self.n, "seed": self.seed, "sampler": self.sampler, "vary": list(self.vary),
            "varied": list(self.varied), "base": dict(self.base), "correlate": self.correlate,
            "levels": dict(self.levels), "steps": self.steps, "outputs": self.outputs, "shard": self.shard,
            **({"condition": self.condition} if self.condition else {}),  # absent: older stores keep their fingerprints
            **({"priors": self.priors} if self.priors else {}),
        }

    def fingerprint(self, version: str) -> str:
        """sha256 of :meth:`resolved` and the package version: equal fingerprints, equal bytes."""
        data = {"config": self.resolved(), "version": version}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    @property
    def n_shards(self) -> int:
        return -(-self.n // self.shard)

    def shard_range(self, k: int) -> tuple[int, int]:
        return k * self.shard, min(self.n, (k + 1) * self.shard)

    @classmethod
    def from_resolved(cls, data: dict, rig_text: str, **extra) -> "DatasetConfig":
        """The inverse of :meth:`resolved` (for workers and for reading a store back)."""
        return cls(rig=data["rig"], rig_text=rig_text, n=int(data["n"]), seed=int(data["seed"]),
                   sampler=data["sampler"], vary=list(data["vary"]), varied=list(data["varied"]),
                   base=dict(data["base"]), correlate={a: dict(b) for a, b in data["correlate"].items()},
                   levels={k: int(v) for k, v in data["levels"].items()}, steps=data["steps"],
                   outputs=data["outputs"], shard=int(data["shard"]), condition=data.get("condition", {}),
                   priors={k: dict(v) for k, v in data.get("priors", {}).items()}, **extra)


# -- loading --------------------------------------------------------------------
def load_config(path, store: str | None = None) -> DatasetConfig:
    """Read and validate a dataset config YAML; ConfigError lists every problem (file:line)."""
    from avatar.spec.config import read_text

    text = read_text(path)
    return config_from_text(text, str(path), store=store)


def config_from_text(text: str, file: str = "<string>", store: str | None = None,
                     base_dir: Path | None = None) -> DatasetConfig:
    """Like :func:`load_config` for YAML text in memory; ``store`` overrides the file's ``store:``."""
    from avatar.spec.config import parse_yaml_lenient

    data, lines, duplicates = parse_yaml_lenient(text, file)
    problems = Problems(file, lines, duplicates)
    base_dir = base_dir if base_dir is not None else (Path(file).parent if not file.startswith("<") else Path("."))
    return _from_data(data, problems, text, base_dir, store)


def vary_matches(spec, pattern: str) -> tuple[list[str], list[str]]:
    """(sliders ``pattern`` varies, in rig order; scene sliders it would match but does not vary).

    A glob matches a scene slider (camera, lights, background: :attr:`RigSpec.scene_sliders`) only
    when it names the slider's group before the dot (``scene.*``, ``scene.camera_yaw``): ``*`` and
    ``*.*`` vary every slider of the body, the pose included, and leave the picture as it was. The
    second list is filled only when the first is empty (for the error message).
    """
    hits = fnmatch.filter(spec.slider_names, pattern)
    group = pattern.split(".", 1)[0] if "." in pattern else None
    keep = [h for h in hits if not spec.sliders[spec.index(h)].scene or spec.sliders[spec.index(h)].group == group]
    return keep, ([h for h in hits if h not in keep] if not keep else [])


def _find_rig(problems: Problems, value: object, base_dir: Path) -> tuple[str, str] | None:
    """(name as written, rig YAML path) or None after recording a problem."""
    from avatar.body.rig import DEFAULT_RIG, ROOT

    if value is None:
        return "humanoid", str(DEFAULT_RIG)
    name = check_str(problems, ("rig",), value, one_line=True)
    if name is None:
        return None
    if name.endswith((".yaml", ".yml")) or "/" in name:
        for cand in (Path(name), base_dir / name):
            if cand.is_file():
                return name, str(cand)
        problems.add(("rig",), f"rig file '{name}' not found")
        return None
    rigs = sorted(p.stem for p in (ROOT / "configs" / "rigs").glob("*.yaml"))
    if name not in rigs:
        problems.add(("rig",), f"unknown rig '{name}'{did_you_mean(name, rigs)}; rigs: {', '.join(rigs)} "
                     "(or give a path to a rig YAML)")
        return None
    return name, str(ROOT / "configs" / "rigs" / f"{name}.yaml")


def _whole(problems: Problems, path: tuple, value: object, lo: int, hi: int, what: str) -> int | None:
    x = check_number(problems, path, value, integral=True)
    if x is None:
        return None
    if not lo <= x <= hi:
        got = format_number(x)  # 1e+23, never a 24-digit integer
        if hi < MAX_N:
            problems.add(path, f"{what} must be {lo} to {hi:,}, got {got}")
        elif x < lo:
            problems.add(path, f"{what} must be at least {lo}, got {got}")
        else:
            top = "2**63 - 1" if hi == 2**63 - 1 else f"{hi:,}"
            problems.add(path, f"{what} must be at most {top}, got {got}")
        return None
    return int(x)


def _from_data(data: dict, problems: Problems, text: str, base_dir: Path, store_override) -> DatasetConfig:
    """Every section checked in file order (so problems come out in it), then one DatasetConfig."""
    check_keys(problems, (), data, _KEYS)
    for key in ("name", "description"):
        if key in data:
            check_str(problems, (key,), data[key])
    spec, rig_text, rig_name = _rig(problems, data.get("rig"), base_dir)
    sampler = check_choice(problems, ("sampler",), data.get("sampler", "prior"), SAMPLERS, "sampler")
    n = None
    if "n" in data:
        n = _whole(problems, ("n",), data["n"], 1, MAX_N, "n (the number of avatars)")
    elif sampler not in ("grid", "traversal"):
        problems.add((), "missing required key 'n' (the number of avatars)")
    seed = _whole(problems, ("seed",), data.get("seed", 0), 0, 2**63 - 1, "seed")
    if "store" not in data and store_override is None:
        problems.add((), "missing required key 'store' (where to write, e.g. data/faces-10k.zarr)")
    shard = _whole(problems, ("shard",), data.get("shard", 1024), 1, MAX_SHARD, "shard (avatars per shard)")
    vary, varied = _vary(problems, data.get("vary", ["*"]), spec)
    base = _base(problems, data["base"], spec, base_dir) if "base" in data and spec is not None else {}
    priors = _priors(problems, data, spec, sampler, varied)
    correlate = _correlate(problems, data, spec, sampler, varied)
    levels, steps, n = _plan_size(problems, data, spec, sampler, varied, n)

    from .condition import parse_condition

    condition = parse_condition(problems, data.get("condition"), spec)
    outputs = _outputs(problems, data.get("outputs", {"vertices": {"dtype": "float32"}}))
    store = store_override if store_override is not None else data.get("store")
    if store_override is None and "store" in data:  # `store: ~` is a mistake, never the folder ./None
        store = check_str(problems, ("store",), store, one_line=True)

    problems.raise_if_any()
    return DatasetConfig(rig=rig_name, rig_text=rig_text, n=n, seed=seed, sampler=sampler, vary=vary,
                         varied=varied, base=base, correlate=correlate, priors=priors, levels=levels, steps=steps,
                         condition=condition, outputs=outputs, store=str(store), shard=shard,
                         name=str(data.get("name", "")).strip(), description=str(data.get("description", "")).strip(),
                         source=problems.file, text=text)


def _rig(problems: Problems, raw, base_dir: Path) -> tuple:
    """(spec, rig YAML text, rig name), each None when the rig is missing or invalid."""
    from avatar.spec.config import read_text
    from .samplers import spec_from_text

    found = _find_rig(problems, raw, base_dir)
    if not found:
        return None, None, None
    rig_name, rig_path = found
    try:
        rig_text = read_text(rig_path)  # read once: the spec and the stored text are the same bytes
        return spec_from_text(rig_text, str(rig_path)), rig_text, rig_name
    except ConfigError as err:
        for p in err.problems:
            problems.add(("rig",), f"the rig is invalid: {p}")
        return None, None, rig_name


def _vary(problems: Problems, raw, spec) -> tuple[list[str], list[str]]:
    """(the patterns as written, the sliders they match in rig order)."""
    if isinstance(raw, str):
        raw = [raw]
    if isinstance(raw, list) and not raw:
        problems.add(("vary",), "the list is empty: name at least one slider or glob pattern to vary "
                     "(e.g. ['nose.*']; ['*'] varies every slider)")
        return [], []
    if not isinstance(raw, list):
        problems.add(("vary",), f"expected a list of slider names or glob patterns, got {describe(raw)}")
        return [], []
    vary, varied = [], set()
    for i, pat in enumerate(raw):
        pat = check_str(problems, ("vary", i), pat, one_line=True)
        if pat is None:
            continue
        vary.append(pat)
        if spec is not None:
            varied.update(_vary_hits(problems, ("vary", i), pat, spec))
    names = spec.slider_names if spec else []
    return vary, [s for s in names if s in varied]


def _vary_hits(problems: Problems, path: tuple, pat: str, spec) -> list[str]:
    hits, scene_only = vary_matches(spec, pat)
    if scene_only:
        named = sorted({spec.sliders[spec.index(h)].group for h in scene_only})
        problems.add(path, f"'{pat}' matches only scene sliders (camera, lights, background), "
                     f"which vary only when their group is named: write "
                     f"{' or '.join(repr(g + '.' + pat.split('.', 1)[-1]) for g in named)}")
    elif not hits:
        groups = [f"{g}.*" for g in spec.groups]
        problems.add(path, f"'{pat}' matches no slider of rig '{spec.name}'"
                     f"{did_you_mean(pat, spec.slider_names + groups)}")
    return hits


def _base(problems: Problems, raw, spec, base_dir: Path) -> dict[str, object]:
    """The base values: a preset file (beside the config or as given) or a mapping slider -> value."""
    from avatar.spec.sliders import check_values, load_preset

    if isinstance(raw, str):
        cand = Path(raw) if Path(raw).is_file() else base_dir / raw
        try:
            return load_preset(cand if cand.is_file() else raw, spec)
        except ConfigError as err:
            for p in err.problems:
                problems.add(("base",), f"{p}")
            return {}
    if isinstance(raw, dict):
        src = raw.get("sliders", raw) if isinstance(raw.get("sliders"), dict) else raw
        prefix = ("base", "sliders") if src is not raw else ("base",)
        return {k: v for k, (_, v) in check_values(spec, problems, prefix, src).items()}
    problems.add(("base",), f"expected a preset file or a mapping slider -> value, got {describe(raw)}")
    return {}


def _correlate(problems: Problems, data: dict, spec, sampler: str, varied: list) -> dict[str, dict[str, float]]:
    """{slider: {slider: correlation}}, each pair once, checked to make a valid correlation matrix."""
    raw = data.get("correlate") or {}
    if "correlate" in data and sampler in ("grid", "traversal"):
        problems.add(("correlate",), f"correlate applies to the random samplers ({', '.join(RANDOM_SAMPLERS)}),"
                     f" not to '{sampler}', which sets every combination by construction")
        return {}
    if not isinstance(raw, dict):
        problems.add(("correlate",), f"expected a mapping slider -> {{slider: correlation}}, got {describe(raw)}")
        return {}
    if spec is None:
        return {}
    correlate: dict[str, dict[str, float]] = {}
    seen: dict[frozenset, tuple[float, tuple]] = {}
    for a, row in raw.items():
        if not _corr_slider(problems, ("correlate", a), a, spec, varied):
            continue
        if not isinstance(row, dict) or not row:
            problems.add(("correlate", a), f"expected a mapping slider -> correlation, got {describe(row)}")
            continue
        for b, r in row.items():
            x = _correlation(problems, ("correlate", a, b), a, b, r, spec, varied, seen)
            if x is not None:
                correlate.setdefault(a, {})[b] = x
    if correlate and not problems.items:
        from .samplers import correlation_matrix

        try:
            correlation_matrix(correlate, varied)
        except ValueError as err:
            problems.add(("correlate",), str(err))
    return correlate


def _correlation(problems: Problems, path: tuple, a: str, b: str, r, spec, varied: list, seen: dict):
    """One entry ``a: {b: r}`` checked (None when it is wrong); ``seen`` holds the pairs so far."""
    if not _corr_slider(problems, path, b, spec, varied):
        return None
    x = check_number(problems, path, r)
    if x is None:
        return None
    if a == b:
        problems.add(path, "a slider's correlation with itself is always 1; list other sliders")
        return None
    if not -1 < x < 1:
        problems.add(path, f"a correlation must be strictly between -1 and 1, got {x:g}")
        return None
    key = frozenset((a, b))
    if key in seen and seen[key][0] != x:
        problems.add(path, f"conflicts with {seen[key][0]:g} given for the same pair at line "
                     f"{problems.line_of(seen[key][1])}")
        return None
    seen[key] = (x, path)
    return x


def _plan_size(problems: Problems, data: dict, spec, sampler: str, varied: list, n):
    """(grid levels, traversal steps, n): a grid's or traversal's row count sets n, or must equal it."""
    levels: dict[str, int] = {}
    steps = None
    if "levels" in data and sampler != "grid":
        problems.add(("levels",), f"levels is for sampler: grid, not '{sampler}'")
    if "steps" in data and sampler != "traversal":
        problems.add(("steps",), f"steps is for sampler: traversal, not '{sampler}'")
    if sampler == "grid" and spec is not None:
        levels = _grid_levels(problems, data, spec, varied)
    if sampler == "traversal":
        steps = _whole(problems, ("steps",), data.get("steps", 7), 2, 100_000, "steps")
    count, expected = _row_count(spec, sampler, varied, levels, steps)
    if count is not None:
        if count > MAX_N:
            problems.add(("levels",) if sampler == "grid" else ("steps",), f"{expected}: too many")
        elif n is None and "n" not in data:
            n = count
        elif n is not None and n != count:
            problems.add(("n",), f"n must be {count:,} for sampler {sampler}: {expected}; "
                         "set n to that or leave it out")
    return levels, steps, n


def _row_count(spec, sampler: str, varied: list, levels: dict, steps) -> tuple:
    """(rows, a phrase saying why) of a grid or traversal plan; (None, None) for the others."""
    if sampler == "grid" and spec is not None and levels and len(levels) == len(varied):
        count = math.prod(levels.values())
        return count, f"the grid has {' x '.join(str(v) for v in levels.values())} = {count:,} combinations"
    if sampler == "traversal" and spec is not None and steps is not None:
        from .samplers import traversal_counts

        counts = traversal_counts(spec, varied, steps)
        return sum(counts), (f"the traversal has {sum(counts):,} rows ({len(counts)} sliders, {steps} steps each"
                             ", every value of bool and categorical ones)")
    return None, None


def _priors(problems: Problems, data: dict, spec, sampler, varied: list) -> dict[str, dict]:
    """``priors:``: {slider: distribution} replacing the rig's own for this dataset (the ``prior``
    sampler, varied sliders only), written as the rig YAML's ``distribution:``."""
    from avatar.spec.sliders import parse_distribution

    raw = data.get("priors")
    if raw is None or spec is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        problems.add(("priors",), f"expected a mapping slider -> distribution, e.g. {{body.age: {{kind: uniform, "
                     f"low: 1, high: 25}}}}, got {describe(raw)}")
        return {}
    if sampler != "prior":
        problems.add(("priors",), f"priors replace distributions the 'prior' sampler draws from; sampler "
                     f"'{sampler}' draws none (use sampler: prior)")
        return {}
    out = {}
    for name, dist in raw.items():
        path = ("priors", name)
        if not isinstance(name, str) or name not in spec.slider_names:
            problems.add(path, f"unknown slider '{name}'{did_you_mean(str(name), spec.slider_names)}")
            continue
        if name not in varied:
            problems.add(path, f"'{name}' is not varied: priors are for the sliders `vary` names")
            continue
        s = spec.sliders[spec.index(name)]
        d = parse_distribution(problems, path, dist, s.kind, s.min, s.max, s.default, s.categories)
        if d is not None:
            out[name] = d
    return out


def _corr_slider(problems: Problems, path: tuple, name: object, spec, varied: set) -> bool:
    if not isinstance(name, str) or name not in spec.slider_names:
        problems.add(path, f"unknown slider {describe(name)}{did_you_mean(name, spec.slider_names)}")
        return False
    s = spec.sliders[spec.index(name)]
    if s.kind not in ("continuous", "integer"):
        problems.add(path, f"'{name}' is {s.kind}; only continuous and integer sliders can be correlated")
        return False
    if name not in varied:
        problems.add(path, f"'{name}' is not varied (add it to vary:) so it cannot be correlated")
        return False
    return True


def _grid_levels(problems: Problems, data: dict, spec, varied: list[str]) -> dict[str, int]:
    from .samplers import grid_values

    raw = data.get("levels", 3)
    per: dict[str, object] = {}
    if isinstance(raw, dict):
        for name, v in raw.items():
            if name not in varied:
                hint = did_you_mean(name, varied)
                problems.add(("levels", name), f"'{name}' is not a varied slider{hint}")
        per = dict(raw)
        default = None
    else:
        default = raw
    out = {}
    for name in varied:
        s = spec.sliders[spec.index(name)]
        path = ("levels", name) if name in per else ("levels",)
        value = per.get(name, default)
        if s.kind in ("bool", "categorical"):
            out[name] = len(grid_values(s, 2))
            continue
        if value is None:
            problems.add(("levels",), f"missing levels for '{name}' (give levels: N for all, or one per slider)")
            continue
        lv = _whole(problems, path, value, 2, 100_000, "levels")
        if lv is None:
            continue
        if s.kind == "integer" and lv > s.max - s.min + 1:
            problems.add(path, f"'{name}' is an integer slider with only {int(s.max - s.min + 1)} values; "
                         f"levels must be at most that")
            continue
        out[name] = lv
    return out


def _outputs(problems: Problems, raw: object) -> dict[str, dict]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add(("outputs",), f"expected a mapping output -> options, got {describe(raw)}")
        return {}
    out: dict[str, dict] = {}
    for name, opts in raw.items():
        path = ("outputs", name)
        if name not in _OUTPUTS:
            problems.add(path, f"unknown output {describe(name)}{did_you_mean(name, _OUTPUTS)}; "
                         f"outputs: {', '.join(_OUTPUTS)} (the sliders are always written)")
            continue
        opts = {} if opts is None or opts is True else opts
        if not isinstance(opts, dict):
            problems.add(path, f"expected a mapping of options, got {describe(opts)}")
            continue
        check_keys(problems, path, opts, _OUTPUT_KEYS[name])
        if name == "vertices":
            dtype = check_choice(problems, path + ("dtype",), opts.get("dtype", "float32"), VERTEX_DTYPES, "dtype")
            out[name] = {"dtype": dtype}
        elif name == "textures":
            size = _whole(problems, path + ("size",), opts.get("size", 256), 8, 4096, "size")
            out[name] = {"size": size}
        elif name == "measurements":  # every measurement of configs/measurements/default.yaml, at rest
            from avatar.spec.measurements import load_measurements

            out[name] = {"names": load_measurements().names}
        else:
            size = _whole(problems, path + ("size",), opts.get("size", 128), 16, 4096, "size")
            views = opts.get("views", ["front"])
            views = [views] if isinstance(views, (str, int, float)) else views
            if not isinstance(views, list) or not views:
                problems.add(path + ("views",), f"expected a list of views, got {describe(views)}")
                views = []
            try:
                from avatar.rendering.core import VIEWS, as_view

                for i, v in enumerate(views):
                    try:
                        as_view(v)
                    except (ValueError, TypeError):
                        hint = did_you_mean(v, VIEWS) if isinstance(v, str) else ""
                        problems.add(path + ("views", i), f"unknown view {describe(v)}{hint}; views: "
                                     f"{', '.join(VIEWS)} or a yaw angle in degrees")
            except ImportError as err:
                problems.add(path, f"renders need avatar.rendering.core, which cannot be imported ({err})")
            out[name] = {"views": list(views), "size": size}
    return out


__all__ = ["ConfigError", "DatasetConfig", "SAMPLERS", "config_from_text", "load_config"]
