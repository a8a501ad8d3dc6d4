"""Experiments: a YAML naming a dataset, features and models; ``avatar fit`` runs it.

    dataset: data/faces-10k.zarr
    features: [vertices]          # vertices | textures | renders, or {vertices: {align: true}, textures:
                                  #   {size: 32, weight: 0.5}}: several, each with a weight
    models:
      - {name: pca, kind: pca, n_components: 32}
      - {name: ica, kind: ica, n_components: 32}
      - {name: ae,  kind: autoencoder, n_components: 16, hidden: [512, 128], epochs: 50}
    split: {test_fraction: 0.2, seed: 0}
    output: models/faces-pca.npz  # default: models/<config name>.npz
    batch_size: 256               # rows read from the store at a time
    spectrum_components: 128      # PCA components for the explained-variance curve

:func:`load_config` reports every problem at once (file:line, did-you-mean);
:func:`run` fits every model on the training rows and evaluates it on the test
rows; :func:`load_experiment` gives a fitted experiment back with its dataset
and split, for the compare report: ``exp.codes("pca", exp.test)``.
"""
from __future__ import annotations

import inspect
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avatar.spec.config import (ConfigError, Problems, check_choice, check_keys, check_number, check_str, describe,
                      did_you_mean)
from .features import ALIGN, BLOCKS, DEFAULT_SIZE, FeatureTransform, iter_features, load_features
from .models import PCA, model_class

_KEYS = ("name", "description", "dataset", "features", "regions", "factors", "models", "split", "output",
         "batch_size", "spectrum_components")
_REGION_KEYS = ("features", "sliders")
FACTORS = ("sliders", "measurements")   # what the compare step matches the codes with
AUTO_VARIANCE = 0.95                    # n_components: auto keeps this share of the variance
TORCH_KINDS = ("autoencoder", "vae", "conv_ae", "conv_vae")
CONV_KINDS = ("conv_ae", "conv_vae")
_FEATURE_KEYS = {"vertices": ("weight", "align", "parts"), "textures": ("weight", "size", "parts"),
                 "renders": ("weight", "size")}
_SPLIT_KEYS = ("test_fraction", "seed")
ALL_KINDS = ("pca", "incremental_pca", "ica", "factor_analysis", "autoencoder", "vae", "conv_ae", "conv_vae")
# kind-specific parameters: (type, lowest allowed); "ints" is a list of whole numbers
_PARAM_TYPES = {
    "iterated_power": ("int", 0), "batch_size": ("int", 1), "max_iter": ("int", 1), "tol": ("float", 0.0),
    "fun": ("choice", ("logcosh", "exp", "cube")), "pre_components": ("int", 1), "hidden": ("ints", 1),
    "epochs": ("int", 1), "learning_rate": ("float", 0.0), "alpha": ("float", 0.0),
    "input_components": ("int", 1), "beta": ("float", 0.0), "patience": ("int", 1),
    "validation_fraction": ("fraction", 0.0), "weight_decay": ("float", 0.0), "channels": ("ints", 1),
    "device": ("choice", ("cpu", "cuda", "auto")), "n_init": ("int", 1),
    "rotate": ("choice", ("none", "ica")),
}

__all__ = ["ExperimentConfig", "load_config", "config_from_text", "run", "load_experiment", "Experiment",
           "split_rows"]


@dataclass
class ExperimentConfig:
    dataset: str
    features: list[dict]
    models: list[dict]                    # {"name", "kind", "n_components", "random_state", **params}
    regions: dict = field(default_factory=dict)   # {region: {"features": [...], "sliders": [globs] | None}}
    factors: tuple = ("sliders",)
    test_fraction: float = 0.2
    seed: int = 0
    output: str = ""
    batch_size: int = 256
    spectrum_components: int = 128
    name: str = ""
    description: str = ""
    source: str = "<config>"
    text: str = field(default="", repr=False)


def split_rows(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) sorted row indices of n samples; depends only on (n, test_fraction, seed)."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(test_fraction * n))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


# -- loading --------------------------------------------------------------------
def load_config(path) -> ExperimentConfig:
    """Read and validate an experiment YAML; ConfigError lists every problem (file:line: key: message)."""
    from avatar.spec.config import read_text

    return config_from_text(read_text(path), str(path))


def config_from_text(text: str, file: str = "<string>") -> ExperimentConfig:
    from avatar.spec.config import parse_yaml_lenient

    data, lines, duplicates = parse_yaml_lenient(text, file)
    problems = Problems(file, lines, duplicates)
    check_keys(problems, (), data, _KEYS)
    dataset = None
    if "dataset" not in data:
        problems.add((), "missing required key 'dataset' (a dataset store, e.g. data/faces-10k.zarr)")
    else:
        dataset = check_str(problems, ("dataset",), data["dataset"], one_line=True)
    features = _features(problems, data.get("features", ["vertices"]))
    regions = _regions(problems, data["regions"]) if "regions" in data else {}
    sets = {r: (("regions", r, "features"), v["features"]) for r, v in regions.items()} or \
        {"": (("features",), features)}
    every = {b["name"]: b for _, blocks in sets.values() for b in blocks}
    shapes = _dataset_shapes(problems, dataset, list(every.values())) if dataset else None
    n_feat = n_train = None
    test_fraction, seed = _split(problems, data.get("split", {}))
    factors = _factors(problems, data.get("factors", ["sliders"]))
    if shapes is not None and all(blocks for _, blocks in sets.values()):
        n, shape_of = shapes
        layout = None
        n_feat = []
        for path, blocks in sets.values():
            try:
                ft = FeatureTransform(blocks)
                if ft.regional:
                    layout = layout or _layout(dataset)
                    ft.bind(layout)
                n_feat.append(sum(ft.dims(shape_of).values()))
            except ValueError as err:
                problems.add(path, str(err))
        n_feat = min(n_feat) if n_feat else None
        if test_fraction is not None:
            n_train = n - int(round(test_fraction * n))
            if n_train < 2:
                problems.add(("split", "test_fraction"), f"leaves {n_train} training samples of {n}")
    models = _models(problems, data.get("models"), n_feat, n_train)
    if any(m.get("kind") in CONV_KINDS for m in models):
        _check_conv_features(problems, sets, shapes[1] if shapes else None)
    batch = _int(problems, ("batch_size",), data.get("batch_size", 256), 1)
    spectrum = _int(problems, ("spectrum_components",), data.get("spectrum_components", 128), 1)
    output = data.get("output")
    if output is not None:
        output = check_str(problems, ("output",), output, one_line=True)
        if output and not output.endswith(".npz"):
            problems.add(("output",), f"the model file must end in .npz, got {output!r}")
    stem = Path(file).stem if not file.startswith("<") else "experiment"
    for key in ("name", "description"):
        if key in data:
            check_str(problems, (key,), data[key])
    problems.raise_if_any()
    return ExperimentConfig(dataset=dataset, features=features, models=models, regions=regions,
                            factors=tuple(factors), test_fraction=test_fraction,
                            seed=seed, output=output or f"models/{stem}.npz", batch_size=batch,
                            spectrum_components=spectrum, name=str(data.get("name", stem)).strip(),
                            description=str(data.get("description", "")).strip(), source=file, text=text)


def _int(problems, path, value, lo):
    x = check_number(problems, path, value, integral=True)
    if x is None:
        return None
    if x < lo:
        problems.add(path, f"must be at least {lo}, got {int(x)}")
        return None
    return int(x)


def _features(problems: Problems, raw, root: tuple = ("features",)) -> list[dict]:
    if isinstance(raw, str):
        raw = [raw]
    items = []  # (path, name, options)
    if isinstance(raw, dict):
        items = [(root + (k,), k, v) for k, v in raw.items()]
    elif isinstance(raw, list) and raw:
        for i, item in enumerate(raw):
            if isinstance(item, str):
                items.append((root + (i,), item, {}))
            elif isinstance(item, dict) and len(item) == 1:
                (k, v), = item.items()
                items.append((root + (i, k), k, v))
            else:
                problems.add(root + (i,), f"expected a feature name ({', '.join(BLOCKS)}) or "
                             f"{{name: {{options}}}}, got {describe(item)}")
    else:
        problems.add(root, f"expected a list of features ({', '.join(BLOCKS)}), got {describe(raw)}")
    out, seen = [], set()
    for path, name, opts in items:
        if name not in BLOCKS:
            problems.add(path, f"unknown feature {describe(name)}{did_you_mean(name, BLOCKS)}; "
                         f"features: {', '.join(BLOCKS)}")
            continue
        if name in seen:
            problems.add(path, f"feature '{name}' is listed twice")
            continue
        seen.add(name)
        opts = {} if opts is None or opts is True else opts
        if not isinstance(opts, dict):
            problems.add(path, f"expected a mapping of options ({', '.join(_FEATURE_KEYS[name])}), got "
                         f"{describe(opts)}")
            continue
        check_keys(problems, path, opts, _FEATURE_KEYS[name])
        block = {"name": name, "weight": 1.0}
        if "weight" in opts:
            w = check_number(problems, path + ("weight",), opts["weight"])
            if w is not None and w <= 0:
                problems.add(path + ("weight",), f"must be > 0, got {w:g}")
            block["weight"] = w if w and w > 0 else 1.0
        if name == "vertices":
            a = opts.get("align", "none")
            a = {True: "rigid", False: "none"}.get(a, a) if isinstance(a, bool) else a
            if a not in ALIGN:
                problems.add(path + ("align",), f"expected one of {', '.join(ALIGN)}, got {describe(a)}"
                             f"{did_you_mean(str(a), ALIGN) if isinstance(a, str) else ''}")
                a = "none"
            block["align"] = a
        else:
            block["size"] = _int(problems, path + ("size",), opts.get("size", DEFAULT_SIZE[name]), 1) or 1
        if "parts" in opts:
            parts = opts["parts"]
            parts = [parts] if isinstance(parts, str) else parts
            if not isinstance(parts, list) or not parts or not all(isinstance(p, str) for p in parts):
                problems.add(path + ("parts",), f"expected a list of part names such as [whole_head], got "
                             f"{describe(opts['parts'])}")
            else:
                block["parts"] = parts
        out.append(block)
    return out


def _regions(problems: Problems, raw) -> dict:
    """``regions: {face: {features: ..., sliders: [globs]}, ...}`` -> {name: {"features", "sliders"}}."""
    import re

    if not isinstance(raw, dict) or not raw:
        problems.add(("regions",), "expected a mapping of regions, e.g. {face: {features: {vertices: {parts: "
                     f"[whole_head], align: similarity}}}}}}, got {describe(raw)}")
        return {}
    out = {}
    for name, spec in raw.items():
        path = ("regions", name)
        if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$", name):
            problems.add(path, f"bad region name {describe(name)}: letters, digits and _ (starting with a letter)")
            continue
        if not isinstance(spec, dict):
            problems.add(path, f"expected {{features: ..., sliders: [...]}}, got {describe(spec)}")
            continue
        check_keys(problems, path, spec, _REGION_KEYS)
        if "features" not in spec:
            problems.add(path, "missing required key 'features' (e.g. {vertices: {parts: [nose]}})")
            continue
        blocks = _features(problems, spec["features"], path + ("features",))
        sliders = spec.get("sliders")
        if sliders is not None:
            sliders = [sliders] if isinstance(sliders, str) else sliders
            if not isinstance(sliders, list) or not all(isinstance(g, str) for g in sliders):
                problems.add(path + ("sliders",), f"expected a list of slider names or globs, got {describe(sliders)}")
                sliders = None
        out[name] = {"features": blocks, "sliders": sliders}
    return out


def _factors(problems: Problems, raw) -> list[str]:
    raw = [raw] if isinstance(raw, str) else raw
    if not isinstance(raw, list) or not raw:
        problems.add(("factors",), f"expected a list such as [sliders, measurements], got {describe(raw)}")
        return ["sliders"]
    out = []
    for i, f in enumerate(raw):
        got = check_choice(problems, ("factors", i), f, FACTORS, "factor")
        if got is not None and got not in out:
            out.append(got)
    if "sliders" not in out:
        out.insert(0, "sliders")
    return out


def _layout(dataset: str):
    """The store itself: a Dataset has the layout regions read (faces, uv, uv_faces, parts, part_names)."""
    from .. import dataset as dsmod

    return dsmod.open(dataset, check=False)


def _dataset_shapes(problems: Problems, dataset: str, features: list[dict]):
    """(n, {block: per-sample shape}) from the store's metadata, without reading any data."""
    from ..dataset import store as st

    path = Path(dataset)
    attrs = st.read_attrs(path)
    if attrs is None:
        what = "not found" if not path.exists() else "is not an avatar dataset store"
        problems.add(("dataset",), f"dataset '{dataset}' {what}; generate it first (avatar generate "
                     "configs/datasets/<name>.yaml)")
        return None
    damaged = st.check_metadata(path, attrs)
    if damaged:
        problems.add(("dataset",), f"dataset '{dataset}' has damaged metadata ({damaged[0]}); regenerate it")
        return None
    shapes = {}
    import json

    for b in features:
        try:
            meta = json.loads((path / b["name"] / "zarr.json").read_text())
            shapes[b["name"]] = tuple(meta["shape"][1:])
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            stored = [k for k in BLOCKS if (path / k / "zarr.json").is_file()]
            problems.add(("features",), f"the dataset has no {b['name']} (it stores: "
                         f"{', '.join(stored) or 'sliders only'})")
    for b in features:
        if b["name"] in shapes and b["name"] != "vertices":
            stored = shapes[b["name"]][-2]
            if b["size"] > stored or stored % b["size"]:
                problems.add(("features",), f"{b['name']} size {b['size']} must divide the stored {stored} px "
                             f"(e.g. {', '.join(str(stored // f) for f in (1, 2, 4, 8) if stored % f == 0)})")
    if len(shapes) < len(features):  # a block the store lacks (reported above): no feature count to check
        return None
    return int(attrs["n"]), shapes


def _split(problems: Problems, raw):
    if not isinstance(raw, dict):
        problems.add(("split",), f"expected {{test_fraction: 0.2, seed: 0}}, got {describe(raw)}")
        return 0.2, 0
    check_keys(problems, ("split",), raw, _SPLIT_KEYS)
    tf = check_number(problems, ("split", "test_fraction"), raw.get("test_fraction", 0.2))
    if tf is not None and not 0 < tf < 1:
        problems.add(("split", "test_fraction"), f"must be between 0 and 1 (exclusive), got {tf:g}")
        tf = None
    seed = _int(problems, ("split", "seed"), raw.get("seed", 0), 0)
    return tf, seed if seed is not None else 0


def _models(problems: Problems, raw, n_feat, n_train) -> list[dict]:
    if not isinstance(raw, list) or not raw:
        problems.add(("models",), f"expected a list of models ({{name, kind, n_components, ...}}), got "
                     f"{describe(raw)}")
        return []
    out, names = [], {}
    for i, m in enumerate(raw):
        path = ("models", i)
        if not isinstance(m, dict):
            problems.add(path, f"expected a mapping {{name, kind, n_components, ...}}, got {describe(m)}")
            continue
        kind = check_choice(problems, path + ("kind",), m["kind"], ALL_KINDS, "model kind") if "kind" in m \
            else problems.add(path, "missing required key 'kind'")
        name = m.get("name", kind)
        if name is not None:
            import re

            if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$", name) \
                    or name in ("features", "split", "header"):
                problems.add(path + ("name",), f"bad model name {describe(name)}: letters, digits, _ and - "
                             "(starting with a letter)")
            elif name in names:
                problems.add(path + ("name",), f"model name '{name}' is already used by models[{names[name]}]")
            else:
                names[name] = i
        if kind is None:
            continue
        cls = model_class(kind)
        allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        if kind in TORCH_KINDS:
            from .vae import torch_available

            if not torch_available():
                problems.add(path + ("kind",), f"kind '{kind}' trains with PyTorch, which is not installed: "
                             "pip install torch==2.13.0 (the CPU build)")
        check_keys(problems, path, m, ["name", "kind"] + allowed)
        entry = {"name": name, "kind": kind}
        if "n_components" not in m:
            problems.add(path, "missing required key 'n_components'")
        elif m["n_components"] == "auto" or isinstance(m["n_components"], dict):
            entry["n_components"] = _auto_components(problems, path + ("n_components",), m["n_components"], kind)
        else:
            k = _int(problems, path + ("n_components",), m["n_components"], 1)
            limit = min(x for x in (n_feat, n_train) if x is not None) if (n_feat or n_train) else None
            if k is not None and limit is not None and k > limit:
                have = " and ".join(f"{v:,} {w}" for v, w in ((n_feat, "features"), (n_train, "training samples"))
                                    if v is not None)
                problems.add(path + ("n_components",), f"{k} is more than the data allow: {have}")
            entry["n_components"] = k
        rs = m.get("random_state", 0)
        entry["random_state"] = None if rs is None else _int(problems, path + ("random_state",), rs, 0)
        for key, value in m.items():
            if key in ("name", "kind", "n_components", "random_state") or key not in allowed:
                continue
            entry[key] = _param(problems, path + (key,), key, value)
        out.append(entry)
    return out


def _check_conv_features(problems, sets: dict, shape_of) -> None:
    """Convolutional models read one square picture per avatar: a renders block of one view, or
    textures without parts, at a size divisible by 16 (four stride-2 layers)."""
    for path, blocks in sets.values():
        if len(blocks) != 1 or blocks[0]["name"] not in ("renders", "textures") or blocks[0].get("parts"):
            problems.add(path, "conv_ae and conv_vae need one picture per avatar: features: [{renders: {size: 64}}] "
                         "(or textures, without parts)")
            continue
        b = blocks[0]
        if b["size"] % 16:
            problems.add(path, f"{b['name']} size {b['size']} must be divisible by 16 for conv models (e.g. 32, 64)")
        if shape_of and b["name"] == "renders" and b["name"] in shape_of and shape_of["renders"][0] != 1:
            problems.add(path, f"the dataset renders {shape_of['renders'][0]} views per avatar; conv models read "
                         "one (a dataset with renders: {views: [camera]})")


def _auto_components(problems, path, raw, kind):
    """``auto`` (the 95 % rule) or ``{variance: 0.9}`` -> {"variance": share}, resolved in :func:`run`
    to the fewest principal components explaining that share of the training variance."""
    if kind == "incremental_pca":
        problems.add(path, "incremental_pca streams and cannot count components first; give a number")
        return None
    if raw == "auto":
        return {"variance": AUTO_VARIANCE}
    check_keys(problems, path, raw, ("variance",))
    v = check_number(problems, path + ("variance",), raw.get("variance", AUTO_VARIANCE))
    if v is not None and not 0 < v < 1:
        problems.add(path + ("variance",), f"must be between 0 and 1 (exclusive), got {v:g}")
        return None
    return {"variance": v}


def resolve_components(k, spectrum) -> int:
    """An n_components entry (int, or {"variance": share}) as a number, from the explained-variance
    ratios of the training PCA (spectrum (r,)): the fewest components reaching the share (at least 2),
    or all r."""
    if not isinstance(k, dict):
        return int(k)
    c = np.cumsum(np.asarray(spectrum, np.float64))
    hit = np.flatnonzero(c >= k["variance"] - 1e-12)
    # at least 2: a one-code latent has nothing to be disentangled from, and compare needs two
    return max(int(hit[0] + 1) if len(hit) else len(c), min(2, len(c)))


def _param(problems, path, key, value):
    t, lo = _PARAM_TYPES.get(key, ("float", None))
    if t == "int":
        return _int(problems, path, value, lo)
    if t == "float":
        x = check_number(problems, path, value)
        if x is not None and lo is not None and x < lo:
            problems.add(path, f"must be at least {lo:g}, got {x:g}")
        return x
    if t == "choice":
        return check_choice(problems, path, value, lo, key)
    if t == "fraction":
        x = check_number(problems, path, value)
        if x is not None and not 0 <= x < 1:
            problems.add(path, f"must be at least 0 and below 1, got {x:g}")
        return x
    if not isinstance(value, list) or not value:  # ints
        problems.add(path, f"expected a list of layer sizes such as [512, 128], got {describe(value)}")
        return None
    return tuple(_int(problems, path + (j,), v, lo) for j, v in enumerate(value))


# -- running --------------------------------------------------------------------
def run(cfg: ExperimentConfig, output=None, log=print) -> Path:
    """Fit every model of an experiment, evaluate it on the test rows and write the model file.

    With ``regions``, every model is fitted once per region on that region's features and named
    ``<region>-<model>``. Returns the path of the ``.npz`` written (its ``.yaml`` beside it). Only
    the IncrementalPCA models stream: the others need the training features in memory
    (n_train x n_features float32), which this logs before reading them.
    """
    from .. import dataset as dsmod
    from ..dataset import store as st
    from .persist import save_models

    out = Path(output or cfg.output)
    ds = dsmod.open(cfg.dataset, check=False)
    if ds.missing_shards:
        raise ValueError(f"{cfg.dataset}: {len(ds.missing_shards)} of {ds.n_shards} shards are not generated; "
                         "finish the dataset (rerun avatar generate) before fitting")
    train, test = split_rows(len(ds), cfg.test_fraction, cfg.seed)
    sets = {r: v["features"] for r, v in cfg.regions.items()} or {"": cfg.features}
    models, fts, per_model, per_region, codes = {}, {}, {}, {}, {}
    for region, blocks in sets.items():
        if region:
            log(f"region {region}:")
        ft, fitted, entries, spectrum, set_codes = _fit_set(cfg, ds, blocks, train, test, region, log)
        codes.update(set_codes)
        fts[region or "features"] = ft
        models.update(fitted)
        per_model.update(entries)
        per_region[region] = _intrinsic(spectrum)
    meta = {
        "name": cfg.name, "description": cfg.description, "config": cfg.source, "config_text": cfg.text,
        "dataset": {"path": cfg.dataset, "absolute": str(Path(cfg.dataset).resolve()), "n": len(ds),
                    "fingerprint": ds.attrs.get("fingerprint"), "rig": ds.config.get("rig"),
                    "template": ds.attrs.get("template"), "n_vertices": int(ds.attrs["card"]["vertices"]),
                    "template_sha256": ds.attrs.get("static_sha256", {}).get("faces")},
        "split": {"test_fraction": cfg.test_fraction, "seed": cfg.seed, "n_train": len(train), "n_test": len(test)},
        "intrinsic_dimensionality": next(iter(per_region.values())),
        "factors": list(cfg.factors),
        "models": per_model,
        "avatar_version": _version(), "dataset_format": st.FORMAT,
    }
    if cfg.regions:
        meta["regions"] = {r: {"features": v["features"], "sliders": v["sliders"],
                               "intrinsic_dimensionality": per_region[r],
                               "models": [n for n, e in per_model.items() if e["region"] == r]}
                           for r, v in cfg.regions.items()}
    save_models(models, out, features=fts if cfg.regions else fts["features"],
                split={"train": train, "test": test}, metadata=meta, codes=codes)
    log(f"wrote {out} and {out.with_suffix('.yaml')}")
    return out


def _intrinsic(spectrum) -> dict:
    from .evaluate import components_for

    counts = components_for(spectrum) if spectrum is not None else {}
    return {"explained_variance_ratio": [float(x) for x in (spectrum if spectrum is not None else [])],
            "components_for_variance": counts,
            "note": "fewest principal components explaining 90/95/99 % of the training features' variance; "
                    "null: more than the curve's length"}


def _fit_set(cfg: ExperimentConfig, ds, blocks, train, test, region: str, log):
    """Fit one feature set's models: (transform, {name: model}, {name: YAML entry}, spectrum or None,
    {name: codes (n_train + n_test, k)}: none when the features never sat in memory)."""
    from .evaluate import ReconstructionError, components_for

    t0 = time.perf_counter()
    ft = FeatureTransform(blocks).fit_store(ds, train, cfg.batch_size)
    d = ft.n_features
    log(f"features: {', '.join(ft.names)} -> {d:,} per avatar; {len(train):,} train / {len(test):,} test rows "
        f"({time.perf_counter() - t0:.1f} s)")
    for m in cfg.models:
        if isinstance(m["n_components"], int) and m["n_components"] > min(d, len(train)):
            raise ValueError(f"model {m['name']}: n_components = {m['n_components']} is more than the data allow "
                             f"({d} features, {len(train)} training samples)")
    models, fit_seconds, resolved = {}, {}, {}
    in_memory = [m for m in cfg.models if m["kind"] != "incremental_pca"]
    X = basis = spectrum = None
    if in_memory:
        from ..checks import available_memory, gib

        need, have = 3 * len(train) * d * 4, available_memory()  # the features, and the fits' working copies
        if need > have:
            raise ValueError(f"{cfg.dataset}: fitting {len(train):,} x {d:,} features in memory needs about "
                             f"{gib(need)}, {gib(have)} are available; use fewer rows (split) or smaller "
                             "features, or an incremental_pca model, which streams")
        log(f"reading the training features into memory: {len(train):,} x {d:,} float32 = "
            f"{len(train) * d * 4 / 2**30:.2f} GiB")
        _, X = load_features(ds, ft, train, cfg.batch_size)
        r = min(max([cfg.spectrum_components] + [_basis_need(m) for m in in_memory]), len(train) - 1, d)
        t = time.perf_counter()
        basis = PCA(n_components=r, random_state=cfg.seed).fit(X)
        spectrum = basis.explained_variance_ratio_
        log(f"spectrum: {r} principal components ({time.perf_counter() - t:.1f} s)")
    for m in cfg.models:
        k = resolve_components(m["n_components"], spectrum)
        name = f"{region}-{m['name']}" if region else m["name"]
        params = {key: v for key, v in m.items() if key not in ("name", "kind")}
        params["n_components"] = resolved[name] = min(k, d, len(train))
        model = model_class(m["kind"])(**params)
        t = time.perf_counter()
        if m["kind"] == "incremental_pca":
            model.fit_batches(B for _, B in iter_features(ds, ft, train, cfg.batch_size))
            if spectrum is None or len(model.explained_variance_ratio_) > len(spectrum):
                spectrum = model.explained_variance_ratio_
        else:
            model.fit(X, basis=basis)
        model.features_ = ft
        fit_seconds[name] = time.perf_counter() - t
        log(f"fitted {name} ({m['kind']}, {params['n_components']} components) in {fit_seconds[name]:.1f} s")
        models[name] = model
    # every model's codes of its split, kept in the model file so that compare need not read the
    # store again: the training rows from the features in memory, the test rows as they stream by
    codes = {name: [model.transform(X[i:i + cfg.batch_size]) for i in range(0, len(X), cfg.batch_size)]
             for name, model in models.items()} if X is not None else {}
    del X
    errors = {name: ReconstructionError() for name in models}
    for _, B in iter_features(ds, ft, test, cfg.batch_size):
        truth = ft.prepared(B)
        for name, model in models.items():
            z = model.transform(B)
            if name in codes:
                codes[name].append(z)
            errors[name].add(truth, ft.prepared(model.inverse_transform(z)))
    codes = {name: np.concatenate(parts) for name, parts in codes.items()}
    entries = {}
    for name, model in models.items():
        res = errors[name].result()
        entry = {"fit_seconds": round(fit_seconds[name], 3), "test": res, "n_components": resolved[name],
                 "region": region or None}
        if hasattr(model, "explained_variance_ratio_"):
            entry["explained_variance"] = float(np.sum(model.explained_variance_ratio_))
        if hasattr(model, "n_epochs_"):
            entry["epochs_run"] = int(model.n_epochs_)
        entries[name] = entry
        log(f"  {name}: " + ", ".join(_fmt(key, v) for key, v in res.items()))
    counts = components_for(spectrum) if spectrum is not None else {}
    log(f"components for 90/95/99 % variance: {counts.get('0.9')}, {counts.get('0.95')}, {counts.get('0.99')}")
    return ft, models, entries, spectrum, codes


def _basis_need(m: dict) -> int:
    """Principal components a model projects onto (0: none needed from the shared basis)."""
    defaults = {k: p.default for k, p in inspect.signature(model_class(m["kind"]).__init__).parameters.items()
                if k != "self"}
    if m["kind"] in ("pca", "ica"):
        return m["n_components"] if isinstance(m["n_components"], int) else 0   # auto: the spectrum decides
    if m["kind"] == "factor_analysis":
        return m.get("pre_components", defaults["pre_components"])
    if m["kind"] in ("autoencoder", "vae"):
        return m.get("input_components", defaults["input_components"])
    return 0


def _fmt(key: str, value) -> str:
    if isinstance(value, dict):
        return f"vertex error {value['mean']:.3f} mm mean, {value['p95']:.3f} mm p95"
    return f"{key.replace('_psnr_db', '')} PSNR {value:.2f} dB"


def _version() -> str:
    try:
        from .. import __version__

        return str(__version__)
    except ImportError:
        return ""


# -- reading back ---------------------------------------------------------------------
class Experiment:
    """A fitted experiment: its models, feature transform, split and dataset.

    Attributes: ``path``, ``models`` {name: model}, ``features``, ``train`` and
    ``test`` (sorted dataset rows), ``metadata`` (the YAML), ``dataset_path``.
    ``dataset`` opens the store on first use (warning if its fingerprint
    differs from the one fitted on).
    """

    def __init__(self, path):
        from .persist import load_file

        f = load_file(path)
        self.path = f.path
        self.models = f.models
        self.features = f.features
        self.metadata = f.metadata
        self.train = f.split.get("train")
        self.test = f.split.get("test")
        self.split_codes = f.codes      # {model: (n_train + n_test, k)} the fit's codes of its split
        info = self.metadata.get("dataset") or {}
        self.dataset_path = _find_dataset(info, self.path)
        self._ds = None

    @property
    def dataset(self):
        if self._ds is None:
            from .. import dataset as dsmod

            if self.dataset_path is None:
                raise FileNotFoundError(f"{self.path}: the dataset it was fitted on is not recorded or not found")
            self._ds = dsmod.open(self.dataset_path, check=False)
            want = (self.metadata.get("dataset") or {}).get("fingerprint")
            if want and self._ds.attrs.get("fingerprint") != want:
                warnings.warn(f"{self.dataset_path}: not the dataset {self.path.name} was fitted on "
                              "(fingerprints differ)", stacklevel=2)
        return self._ds

    def model(self, name: str | None = None):
        if name is None:
            return next(iter(self.models.values()))
        if name not in self.models:
            raise KeyError(f"no model {name!r}{did_you_mean(name, self.models)}; models: {', '.join(self.models)}")
        return self.models[name]

    def codes(self, model_name: str | None = None, rows=None, batch: int = 256, dataset=None) -> np.ndarray:
        """(len(rows), k) float64 codes of dataset rows (default: all), in the order given."""
        return encode_rows(self.model(model_name), dataset if dataset is not None else self.dataset, rows, batch)

    def decode(self, model_name: str | None, Z) -> dict[str, np.ndarray]:
        """codes (n, k) -> {"vertices": (n, V, 3) float32 metres, "textures": uint8 ...}."""
        m = self.model(model_name)
        return m.features_.inverse(m.inverse_transform(Z))

    def __repr__(self) -> str:
        return (f"<Experiment {self.path}: models {', '.join(self.models)}; "
                f"{len(self.train) if self.train is not None else '?'} train / "
                f"{len(self.test) if self.test is not None else '?'} test rows of {self.dataset_path}>")


def encode_rows(model, ds, rows=None, batch: int = 256) -> np.ndarray:
    """Codes (len(rows), k) of a dataset's rows through the model's feature transform, in the order given."""
    return encode_rows_by_model({"model": model}, ds, rows, batch)["model"]


def encode_rows_by_model(models: dict, ds, rows=None, batch: int = 256) -> dict[str, np.ndarray]:
    """{name: codes (len(rows), k)} of a dataset's rows, in the order given.

    Models sharing one feature transform (every model of an ``avatar fit`` file) read the
    store once: each batch of features is encoded by all of them.
    """
    rows = np.arange(len(ds)) if rows is None else np.asarray(rows, np.int64)
    uniq, inv = np.unique(rows, return_inverse=True)
    by_features: dict[int, list[str]] = {}
    for name, model in models.items():
        _check_readable(model, ds)
        by_features.setdefault(id(model.features_), []).append(name)
    out = {}
    for names in by_features.values():
        Z = {n: np.empty((len(uniq), models[n].n_components)) for n in names}
        at = 0
        for idx, B in iter_features(ds, models[names[0]].features_, uniq, batch):
            for n in names:
                Z[n][at:at + len(idx)] = models[n].transform(B)
            at += len(idx)
        out.update({n: Z[n][inv.ravel()] for n in names})
    return {n: out[n] for n in models}


def _check_readable(model, ds) -> None:
    """ValueError unless ``ds`` holds the arrays, with the shapes, the model's features were fitted on."""
    ft = model.features_
    if ft is None:
        raise ValueError("the model has no feature transform; it cannot read a dataset")
    for name in ft.names:
        if name not in ds.group:
            raise ValueError(f"{ds.path} has no {name}, which the model uses")
        if tuple(ds.group[name].shape[1:]) != ft.shapes_[name]:
            raise ValueError(f"{ds.path}: {name} have per-sample shape {tuple(ds.group[name].shape[1:])}, the "
                             f"model was fitted on {ft.shapes_[name]}")


def _find_dataset(info: dict, model_path: Path) -> str | None:
    for cand in (info.get("path"), info.get("absolute")):
        if cand and Path(cand).exists():
            return str(cand)
    return info.get("path")


def load_experiment(path) -> Experiment:
    """A model file written by ``avatar fit``, with its split and dataset; see :class:`Experiment`."""
    return Experiment(path)


__all__ += ["encode_rows", "encode_rows_by_model", "ConfigError"]
