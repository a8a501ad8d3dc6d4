"""Model files: arrays in one ``.npz`` (never pickled), metadata in YAML beside it.

    save(model, "m.npz")            # m.npz + m.yaml
    model = load("m.npz")            # the first model in the file, or load(path, name="ica")
    models = load_all("m.npz")       # {name: model}

The ``.npz`` holds every learned array under ``<model>.<array>`` (the feature
transform under ``features.<array>``, the data split under ``split.train`` /
``split.test``, each model's codes of those rows under ``codes.<model>``) plus ``header``: UTF-8 JSON (as uint8) with the format
version, each model's kind and parameters, and the dtype, shape and sha256 of
every array. Loading reads it with ``allow_pickle=False``, refuses anything
that is not a zip archive (a pickle above all), unknown format versions,
kinds or parameters, and any array whose bytes no longer match the header; so
a model file can never run code, and a damaged or edited one is reported
rather than half-used. The YAML is for people and tools (explained variance,
errors, dataset); loading does not need it.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import re
import zipfile
from pathlib import Path

import numpy as np

from .features import FeatureTransform
from .models import LatentModel, model_class

FORMAT = "avatar-latent/1"
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
RESERVED = ("features", "split", "header", "codes")

__all__ = ["FORMAT", "LatentFileError", "save", "save_models", "load", "load_all", "load_file", "metadata_path"]


class LatentFileError(ValueError):
    """A model file that cannot be loaded safely: not an npz, a pickle, damaged, tampered or unknown."""


def metadata_path(path) -> Path:
    return Path(path).with_suffix(".yaml")


# -- writing -----------------------------------------------------------------------
def _plain(value):
    """A parameter value as JSON data (tuples become lists; a Generator cannot be stored)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    raise TypeError(f"cannot store a parameter of type {type(value).__name__} (use an int random_state, "
                    "not a Generator, for a model you save)")


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def save(model: LatentModel, path, name: str | None = None, metadata: dict | None = None) -> Path:
    """Write one fitted model (and its feature transform) to ``path`` (.npz) and its .yaml; returns path."""
    return save_models({name or model.kind: model}, path, metadata=metadata)


def save_models(models: dict[str, LatentModel], path, features=None,
                split: dict[str, np.ndarray] | None = None, metadata: dict | None = None,
                codes: dict[str, np.ndarray] | None = None) -> Path:
    """Write several fitted models and their feature transforms.

    ``features``: one :class:`FeatureTransform` all the models share (default: theirs), or
    {set name: FeatureTransform} when they use several (one per region of an experiment); each
    model is stored with the set that is its ``features_``. ``split``: {"train": rows, "test": rows};
    ``metadata``: extra YAML data (per-model entries under ``models`` are merged by name). ``codes``:
    {model: (n_train + n_test, k)} its codes of the split's training then test rows, as the fit
    computed them (compare reads them instead of the store). Both files are written to temporaries
    and renamed.
    """
    import yaml

    from ..export import atomic_write

    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"{path}: a model file must end in .npz")
    if not models:
        raise ValueError("no models to save")
    sets = _feature_sets(models, features)
    features = sets.get("") if len(sets) == 1 else None      # one shared transform: the plain layout
    arrays, entries = _model_arrays(models, sets, features is not None)
    for key, rows in (split or {}).items():
        arrays[f"split.{key}"] = np.asarray(rows, np.int64)
    arrays.update(_code_arrays(models, codes, sum(len(r) for r in (split or {}).values())))
    _check_storable(arrays)
    header = {"format": FORMAT, "models": entries,
              "features": features.params() if features is not None else None,
              **({"feature_sets": {k: ft.params() for k, ft in sets.items()}} if features is None and sets else {}),
              "split": sorted((split or {}).keys()),
              **({"codes": sorted(codes)} if codes else {}),
              "arrays": {k: {"dtype": a.dtype.str, "shape": list(a.shape), "sha256": _digest(a)}
                         for k, a in arrays.items()}}
    blob = np.frombuffer(json.dumps(header, sort_keys=True).encode(), np.uint8)

    def write(f):
        np.savez(f, header=blob, **arrays)

    text = yaml.safe_dump(_yaml_safe(_metadata(path, entries, features, sets, metadata)), sort_keys=False, width=120)
    atomic_write(path, write)
    atomic_write(metadata_path(path), lambda f: f.write(text.encode()))
    return path


def _model_arrays(models: dict, sets: dict, shared: bool) -> tuple[dict, list]:
    """The models' and feature transforms' learned arrays by file key, and the models' header entries."""
    set_of = {id(ft): name for name, ft in sets.items()}
    arrays: dict[str, np.ndarray] = {}
    entries = []
    for name, m in models.items():
        if not NAME_RE.match(name) or name in RESERVED:
            raise ValueError(f"bad model name {name!r}: letters, digits, _ and -, not {'/'.join(RESERVED)}")
        params = {k: _plain(v) for k, v in m.get_params().items()}
        for key, a in m.learned().items():
            arrays[f"{name}.{key}"] = np.asarray(a)
        entries.append({"name": name, "kind": m.kind, "params": params})
        if not shared and m.features_ is not None:
            entries[-1]["features"] = set_of[id(m.features_)]
    for set_name, ft in sets.items():
        prefix = "features." if shared else f"features:{set_name}."
        for key, a in ft.learned().items():
            arrays[prefix + key] = np.asarray(a)
    return arrays, entries


def _code_arrays(models: dict, codes: dict | None, n_split: int) -> dict:
    """{"codes.<model>": (n_split, k) float64}, each checked against its model and the split."""
    arrays = {}
    for name, z in (codes or {}).items():
        z = np.asarray(z, np.float64)
        if name not in models or z.shape != (n_split, models[name].n_components):
            raise ValueError(f"codes of {name!r}: {z.shape} is not one row of {n_split} split rows per code")
        arrays[f"codes.{name}"] = z
    return arrays


def _check_storable(arrays: dict) -> None:
    for key, a in arrays.items():
        if a.dtype.hasobject or a.dtype.kind not in "biuf":
            raise ValueError(f"{key}: only numeric arrays can be stored, got dtype {a.dtype}")
        if a.dtype.kind == "f" and not np.isfinite(a).all():  # load refuses them: never write them
            raise ValueError(f"{key}: holds NaN or infinity; a model with such arrays cannot be saved")


def _metadata(path: Path, entries: list, features, sets: dict, metadata: dict | None) -> dict:
    """The YAML beside a model file: its models, feature blocks and the caller's extra data."""
    meta = {"format": FORMAT, "file": path.name,
            "models": [{"name": e["name"], "kind": e["kind"], "params": e["params"]} for e in entries],
            "features": features.params()["blocks"] if features is not None else None}
    if features is None and sets:
        meta["feature_sets"] = {k: ft.params()["blocks"] for k, ft in sets.items()}
    extra = dict(metadata or {})
    per_model = extra.pop("models", {}) or {}
    for e in meta["models"]:
        e.update(per_model.get(e["name"], {}))
    meta.update(extra)
    return meta


def _feature_sets(models: dict, features) -> dict:
    """{set name: FeatureTransform}; the one key "" when a single transform is shared."""
    if isinstance(features, dict):
        missing = [n for n, m in models.items() if m.features_ is not None
                   and all(m.features_ is not ft for ft in features.values())]
        if missing:
            raise ValueError(f"models {', '.join(missing)} use a feature transform not among {', '.join(features)}")
        for set_name in features:
            if not NAME_RE.match(set_name):
                raise ValueError(f"bad feature-set name {set_name!r}: letters, digits, _ and -")
        return dict(features)
    if features is not None:
        return {"": features}
    fts = {id(m.features_): m.features_ for m in models.values() if m.features_ is not None}
    if len(fts) <= 1:
        return {"": ft for ft in fts.values()}
    return {f"set{i}": ft for i, ft in enumerate(fts.values())}


def _yaml_safe(x):
    """numpy scalars/arrays -> plain Python, so the YAML holds no python/object tags."""
    if isinstance(x, dict):
        return {str(k): _yaml_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_yaml_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return _yaml_safe(x.tolist())
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


# -- reading -----------------------------------------------------------------------
class ModelFile:
    """A model file read and checked: ``header``, ``models`` {name: model}, ``features``, ``split``,
    ``codes`` {model: (n_train + n_test, k)} (those stored), ``metadata`` (the YAML beside it, {} if
    absent)."""

    def __init__(self, path, header, models, features, split, metadata, codes=None):
        self.path, self.header, self.models = Path(path), header, models
        self.features, self.split, self.metadata = features, split, metadata
        self.codes = codes or {}


def load(path, name: str | None = None) -> LatentModel:
    """One model of a model file: ``name``, or the first listed."""
    f = load_file(path)
    if name is None:
        return next(iter(f.models.values()))
    if name not in f.models:
        from avatar.spec.config import did_you_mean

        raise LatentFileError(f"{path}: no model named {name!r}{did_you_mean(name, f.models)}; "
                              f"it holds: {', '.join(f.models)}")
    return f.models[name]


def load_all(path) -> dict[str, LatentModel]:
    """Every model of a model file, {name: model}, in the file's order."""
    return load_file(path).models


def load_file(path) -> ModelFile:
    """Read and check a whole model file; LatentFileError says what is wrong."""
    path = Path(path)
    if path.is_dir():
        raise LatentFileError(f"{path}: a directory, not a model file (.npz written by avatar fit)")
    if not path.is_file():
        raise LatentFileError(f"{path}: no such model file")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic[:1] == b"\x80" or magic[:2] in (b"(d", b"(l", b"]q", b"}q", b"cn"):
        raise LatentFileError(f"{path}: this is a Python pickle; model files are .npz archives and pickles are "
                              "never loaded (they can run arbitrary code)")
    if magic != b"PK\x03\x04":
        raise LatentFileError(f"{path}: not a model file (expected an .npz zip archive written by avatar fit "
                              "or avatar.latent.save)")
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise LatentFileError(f"{path}: unreadable .npz ({err})") from None
    with npz:
        try:
            arrays = {k: npz[k] for k in npz.files}
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
            # object arrays need pickle: refused by allow_pickle=False
            raise LatentFileError(f"{path}: damaged or unsafe array ({err})") from None
    header = _header(path, arrays.pop("header", None))
    _check_arrays(path, header, arrays)
    features = None
    if header["features"] is not None:
        try:
            features = FeatureTransform(header["features"]["blocks"]).set_learned(_prefixed(arrays, "features."))
        except (ValueError, KeyError, TypeError) as err:
            raise LatentFileError(f"{path}: bad feature transform ({err})") from None
    sets = {}
    for set_name, params in (header.get("feature_sets") or {}).items():
        try:
            sets[set_name] = FeatureTransform(params["blocks"]).set_learned(_prefixed(arrays, f"features:{set_name}."))
        except (ValueError, KeyError, TypeError) as err:
            raise LatentFileError(f"{path}: bad feature transform {set_name!r} ({err})") from None
    models = {}
    for e in header["models"]:
        ft = features
        if "features" in e:
            if e["features"] not in sets:
                raise LatentFileError(f"{path}: damaged header (model {e['name']!r} names an unknown feature set)")
            ft = sets[e["features"]]
        models[e["name"]] = _build(path, e, _prefixed(arrays, e["name"] + "."), ft)
    split = {k: arrays[f"split.{k}"] for k in header["split"]}
    codes = {}
    for name in header.get("codes") or ():
        if name not in models or f"codes.{name}" not in arrays:
            raise LatentFileError(f"{path}: damaged header (codes of an unknown model {name!r})")
        codes[name] = arrays[f"codes.{name}"]
    meta = {}
    mp = metadata_path(path)
    if mp.is_file():
        from avatar.spec.config import ConfigError, parse_yaml_lenient

        try:  # the shared loader: safe_load semantics, nesting depth guarded
            meta, _, _ = parse_yaml_lenient(mp.read_text(), str(mp))
        except (ConfigError, OSError, UnicodeDecodeError):
            meta = {}
    return ModelFile(path, header, models, features, split, meta if isinstance(meta, dict) else {}, codes)


def _prefixed(arrays: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def _header(path: Path, blob) -> dict:
    if blob is None:
        raise LatentFileError(f"{path}: no header: not a model file written by avatar")
    if blob.dtype != np.uint8 or blob.ndim != 1:
        raise LatentFileError(f"{path}: damaged header")
    try:
        header = json.loads(blob.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:  # absurd nesting too: one line
        raise LatentFileError(f"{path}: damaged header ({err})") from None
    if not isinstance(header, dict) or not isinstance(header.get("format"), str):
        raise LatentFileError(f"{path}: damaged header (no format)")
    if header["format"] != FORMAT:
        raise LatentFileError(f"{path}: format {header['format']!r} is not {FORMAT!r}; "
                              "this avatar cannot read it (refit the model or upgrade avatar)")
    ok = (isinstance(header.get("models"), list) and header["models"]
          and all(isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("kind"), str)
                  and isinstance(e.get("params"), dict) for e in header["models"])
          and isinstance(header.get("arrays"), dict) and isinstance(header.get("split"), list)
          and (header.get("features") is None or isinstance(header["features"], dict))
          and isinstance(header.get("feature_sets", {}), dict))
    if not ok:
        raise LatentFileError(f"{path}: damaged header (bad structure)")
    names = [e["name"] for e in header["models"]]
    if len(set(names)) != len(names) or not all(NAME_RE.match(n) for n in names):
        raise LatentFileError(f"{path}: damaged header (bad model names)")
    return header


def _check_arrays(path: Path, header: dict, arrays: dict) -> None:
    listed = header["arrays"]
    extra = sorted(set(arrays) - set(listed))
    missing = sorted(set(listed) - set(arrays))
    if extra or missing:
        raise LatentFileError(f"{path}: tampered or damaged: arrays "
                              + ", ".join(([f"not in the header: {', '.join(extra[:5])}"] if extra else [])
                                          + ([f"missing: {', '.join(missing[:5])}"] if missing else [])))
    for key, a in arrays.items():
        want = listed[key]
        if not isinstance(want, dict) or a.dtype.str != want.get("dtype") or list(a.shape) != want.get("shape") \
                or _digest(a) != want.get("sha256"):
            raise LatentFileError(f"{path}: tampered or damaged: array {key!r} does not match its checksum")
        if a.dtype.kind not in "biuf":
            raise LatentFileError(f"{path}: array {key!r} has a non-numeric dtype {a.dtype}")
        if a.dtype.kind == "f" and not np.isfinite(a).all():  # would decode to NaN meshes everywhere
            raise LatentFileError(f"{path}: array {key!r} holds NaN or infinity; the model is unusable "
                                  "(refit it)")


def _build(path: Path, entry: dict, arrays: dict, features) -> LatentModel:
    from avatar.spec.config import did_you_mean
    from .models import KINDS

    kind, name = entry["kind"], entry["name"]
    try:
        cls = model_class(kind)
    except KeyError:
        raise LatentFileError(f"{path}: model {name!r}: unknown model kind {kind!r}"
                              f"{did_you_mean(kind, KINDS)}") from None
    allowed = set(inspect.signature(cls.__init__).parameters) - {"self"}
    bad = sorted(set(entry["params"]) - allowed)
    if bad:
        raise LatentFileError(f"{path}: model {name!r}: unknown parameters {', '.join(bad)} for kind {kind!r}")
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in entry["params"].items()}
    for k, v in params.items():
        if not isinstance(v, (bool, int, float, str, tuple, type(None))):
            raise LatentFileError(f"{path}: model {name!r}: bad parameter {k}")
    try:
        model = cls(**params)
        model.set_learned(arrays)
    except (ValueError, TypeError, KeyError) as err:
        raise LatentFileError(f"{path}: model {name!r} is damaged ({err})") from None
    model.features_ = features
    if features is not None and model.n_features_in_ != features.n_features:
        raise LatentFileError(f"{path}: model {name!r} expects {model.n_features_in_} features but the feature "
                              f"transform makes {features.n_features}")
    return model

