"""The on-disk layout of a dataset: one Zarr v3 group, readable by zarr, dask and xarray alone.

    faces-10k.zarr/
      zarr.json                group attrs: avatar_dataset (format), config (resolved), config_text,
                               rig_yaml, version, seed, fingerprint, sliders (specs), card, static_sha256
      sliders                  (N, P) float64  raw slider values (array units)      chunk (shard, P)
      sliders_normalized       (N, P) float64  the same mapped onto [0, 1]          chunk (shard, P)
      vertices                 (N, V, 3)       float32 (or float16/float64)         chunk 1 avatar, shard `shard`
      textures                 (N, T, T, 3)    uint8                                chunk 1 avatar, shard `shard`
      renders                  (N, views, R, R, 3) uint8                            chunk 1 avatar, shard `shard`
      faces, uv, uv_faces, parts, export_index          the template, stored once
      shard_sha256             (n_shards, outputs, 32) uint8: sha256 of each output's shard file,
                               a shard's row written last; all zero = shard not complete

Each generation task writes one whole shard of every output (so parallel
writers never share a file), then its row of ``shard_sha256``. zarr's local
store writes every file to a temporary name and renames it, so a killed
task leaves either the old file or the new one (and maybe a ``*.partial``
temporary, deleted on the next run), never half a file under a real name.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np

FORMAT = "avatar-dataset/1"
CHECKSUM = "shard_sha256"
META_DIGEST = "metadata_sha256"  # group attribute: sha256 of every other attribute (canonical JSON)


class DatasetError(Exception):
    """A problem with the user's request or store, reported without a traceback (exit 2)."""


def canonical_json(obj) -> bytes:
    """One byte string per JSON value (sorted keys, no spaces): what the metadata digests hash."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def metadata_digest(attrs: dict) -> str:
    """The digest of the group attributes (without the digest itself), as JSON sees them."""
    body = {k: v for k, v in attrs.items() if k != META_DIGEST}
    return hashlib.sha256(canonical_json(json.loads(json.dumps(body)))).hexdigest()


def read_json(file: Path):
    """A small JSON metadata file, or None if missing, unreadable, invalid or absurdly nested."""
    try:
        return json.loads(Path(file).read_text())
    except (OSError, ValueError, RecursionError, UnicodeDecodeError):
        return None


def outputs_of(resolved: dict) -> list[str]:
    """The per-sample arrays a config writes, in the order of ``shard_sha256``'s columns."""
    return ["sliders", "sliders_normalized"] + [k for k in ("vertices", "textures", "renders", "measurements")
                                               if k in resolved["outputs"]]


def shapes(resolved: dict, n_vertices: int, n_sliders: int) -> dict[str, tuple[tuple, str, tuple]]:
    """name -> (per-sample shape, dtype, dimension names after 'sample')."""
    o = resolved["outputs"]
    out = {"sliders": ((n_sliders,), "float64", ("slider",)),
           "sliders_normalized": ((n_sliders,), "float64", ("slider",))}
    if "vertices" in o:
        out["vertices"] = ((n_vertices, 3), o["vertices"]["dtype"], ("vertex", "xyz"))
    if "textures" in o:
        t = o["textures"]["size"]
        out["textures"] = ((t, t, 3), "uint8", ("texture_y", "texture_x", "rgb"))
    if "renders" in o:
        r = o["renders"]["size"]
        out["renders"] = ((len(o["renders"]["views"]), r, r, 3), "uint8", ("view", "image_y", "image_x", "rgb"))
    if "measurements" in o:
        out["measurements"] = ((len(o["measurements"]["names"]),), "float64", ("measurement",))
    return out


def estimate_bytes(resolved: dict, n_vertices: int, n_sliders: int, rows: int) -> int:
    """A conservative on-disk size for ``rows`` samples (zstd typically does better)."""
    ratio = {"sliders": 1.0, "sliders_normalized": 1.0, "vertices": 0.75, "textures": 0.5, "renders": 0.5,
             "measurements": 1.0}
    total = 0
    for name, (shape, dtype, _) in shapes(resolved, n_vertices, n_sliders).items():
        total += int(rows * np.prod(shape) * np.dtype(dtype).itemsize * ratio[name])
    return total


def create(path: Path, config, rig, version: str) -> None:
    """Write a new, empty dataset store at ``path`` (built under a temporary name, then renamed)."""
    import zarr

    resolved = config.resolved()
    tmp = path.parent / f".{path.name}.creating-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        g = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        N, shard, P = config.n, config.shard, len(rig.sliders)
        for name, (shape, dtype, dims) in shapes(resolved, rig.n_vertices, P).items():
            if name.startswith("sliders"):
                g.create_array(name, shape=(N, *shape), chunks=(min(shard, N), *shape), dtype=dtype,
                               fill_value=np.nan, dimension_names=("sample", *dims))
            else:
                g.create_array(name, shape=(N, *shape), chunks=(1, *shape), shards=(min(shard, N), *shape),
                               dtype=dtype, fill_value=0, dimension_names=("sample", *dims))
        names = outputs_of(resolved)
        g.create_array(CHECKSUM, shape=(config.n_shards, len(names), 32), chunks=(1, len(names), 32),
                       dtype="uint8", fill_value=0, compressors=None,
                       dimension_names=("shard", "output", "digest"),
                       attributes={"outputs": names, "shard": shard,
                                   "description": "sha256 of each output's shard file; a row is written "
                                                  "after its shard, all zero = shard incomplete"})
        t = rig.template
        static = {"faces": (t.faces.astype(np.int32), ("face", "corner")),
                  "uv": (t.uv.astype(np.float64), ("uv_vertex", "uv_axis")),
                  "uv_faces": (t.uv_faces.astype(np.int32), ("face", "corner")),
                  "parts": (t.parts.astype(np.int16), ("vertex",)),
                  "export_index": (t.export_index.astype(np.int32), ("export_vertex",))}
        sums = {}
        for name, (arr, dims) in static.items():
            a = g.create_array(name, shape=arr.shape, chunks=arr.shape, dtype=arr.dtype, dimension_names=dims)
            a[...] = arr
            sums[name] = hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()
        g["parts"].attrs["part_names"] = list(t.part_names)
        # every array's metadata (shape, data type, chunks, codecs) as written: verify checks it
        arrays = {}
        for name in g.array_keys():
            meta = read_json(tmp / name / "zarr.json")
            arrays[name] = {"shape": meta["shape"], "data_type": meta["data_type"],
                            "sha256": hashlib.sha256(canonical_json(meta)).hexdigest()}
        attrs = {
            "avatar_dataset": FORMAT, "version": version, "fingerprint": config.fingerprint(version),
            "seed": config.seed, "n": config.n, "shard": shard, "n_shards": config.n_shards,
            "config": resolved, "config_text": config.text, "config_source": config.source,
            "rig_yaml": config.rig_text, "slider_names": rig.slider_names,
            "sliders": [slider_record(s) for s in rig.sliders], "part_names": list(t.part_names),
            "template": t.name, "static_sha256": sums, "outputs": names,
            "card": card(config, rig, version), "versions": _versions(), "arrays": arrays,
        }
        attrs[META_DIGEST] = metadata_digest(attrs)
        g.attrs.update(attrs)
        if path.exists():  # an empty directory the user made
            path.rmdir()
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def slider_record(s) -> dict:
    return {"name": s.name, "group": s.group, "label": s.label, "kind": s.kind, "unit": s.unit,
            "min": s.min, "max": s.max, "default": s.default, "categories": list(s.categories or []),
            "distribution": s.distribution}


def card(config, rig, version: str) -> dict:
    """The dataset card: what a reader needs to know before using the data."""
    resolved = config.resolved()
    base = rig.spec.to_vector(config.base)
    ranges = {}
    for s, b in zip(rig.sliders, base):
        if s.name in config.varied:
            r = {"min": s.min, "max": s.max}
            if s.kind == "categorical":
                r = {"categories": list(s.categories)}
            if config.sampler == "prior":
                r["distribution"] = config.priors.get(s.name, s.distribution)
            ranges[s.name] = r
    sizes = {k: list(v[0]) + [v[1]] for k, v in shapes(resolved, rig.n_vertices, len(rig.sliders)).items()}
    return {
        "name": config.name or (Path(config.source).stem if not config.source.startswith("<") else ""), "description": config.description,
        "avatars": config.n, "seed": config.seed, "sampler": config.sampler,
        "sampler_options": {k: v for k, v in (("levels", config.levels), ("steps", config.steps)) if v},
        "rig": config.rig, "sliders": len(rig.sliders), "varied": ranges,
        "fixed": {s.name: s.readable(b) for s, b in zip(rig.sliders, base) if s.name not in config.varied},
        "correlations": config.correlate or {}, "correlation_kind": "rank (Spearman), via a Gaussian copula",
        "outputs": sizes, "faces": int(len(rig.faces)), "vertices": int(rig.n_vertices),
        "shard": config.shard, "avatar_version": version,
    }


def _versions() -> dict:
    import scipy
    import zarr

    return {"numpy": np.__version__, "scipy": scipy.__version__, "zarr": zarr.__version__}


# -- reading back -----------------------------------------------------------------
def read_attrs(path: Path) -> dict | None:
    """The group attributes of an avatar dataset at ``path``, or None if it is not one."""
    doc = read_json(Path(path) / "zarr.json")
    attrs = doc.get("attributes") if isinstance(doc, dict) else None
    return attrs if isinstance(attrs, dict) and attrs.get("avatar_dataset") else None


def check_metadata(path: Path, attrs: dict | None = None) -> list[str]:
    """What is wrong with a store's metadata: [] when the group attributes match their checksum and
    every array's metadata (shape, data type, chunks, codecs) is the one recorded at creation.

    Nothing else of the store is trusted until this passes: ``n_shards``, ``outputs``, the config
    and the rig YAML all come from these attributes.
    """
    path = Path(path)
    attrs = read_attrs(path) if attrs is None else attrs
    if attrs is None:
        return [f"{path / 'zarr.json'}: missing, unreadable or not an avatar dataset"]
    digest = attrs.get(META_DIGEST)
    if not isinstance(digest, str):
        return [f"{path / 'zarr.json'}: no metadata checksum ({META_DIGEST}); the attributes cannot be "
                "trusted (edited, or made by an older avatar): regenerate with --overwrite"]
    if metadata_digest(attrs) != digest:
        return [f"{path / 'zarr.json'}: the attributes (config, rig, seed, sizes, ...) were changed after the "
                "store was made: they no longer match their checksum"]
    problems = []
    arrays = attrs.get("arrays")
    if not isinstance(arrays, dict) or not arrays:
        return [f"{path / 'zarr.json'}: no record of the arrays' metadata; regenerate with --overwrite"]
    for name, want in arrays.items():
        meta = read_json(path / name / "zarr.json")
        if not isinstance(meta, dict):
            problems.append(f"{name}: array metadata ({name}/zarr.json) missing or unreadable")
            continue
        wrong = [f"{name}: {key.replace('_', ' ')} is {meta.get(key)} but the store was made with {want[key]}"
                 for key in ("shape", "data_type") if meta.get(key) != want[key]]
        if not wrong and hashlib.sha256(canonical_json(meta)).hexdigest() != want["sha256"]:
            wrong = [f"{name}: array metadata ({name}/zarr.json: chunks, codecs, fill value, ...) changed "
                     "after the store was made"]
        problems += wrong
    return problems


def require_intact_metadata(path: Path, attrs: dict | None = None) -> dict:
    """The store's attributes, or DatasetError when :func:`check_metadata` finds a problem."""
    attrs = read_attrs(path) if attrs is None else attrs
    problems = check_metadata(path, attrs)
    if problems:
        raise DatasetError(f"{path}: damaged store metadata: {problems[0]}"
                           + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""))
    return attrs


def shard_file(path: Path, name: str, k: int, ndim: int) -> Path:
    """The file of shard k of array ``name`` (zarr v3 default chunk keys: c/k/0/0...)."""
    return Path(path) / name / "c" / str(k) / Path(*(["0"] * (ndim - 1))) if ndim > 1 else \
        Path(path) / name / "c" / str(k)


def array_ndim(path: Path, name: str) -> int:
    meta = read_json(Path(path) / name / "zarr.json")
    if not isinstance(meta, dict) or not isinstance(meta.get("shape"), list):
        raise ValueError(f"{Path(path) / name / 'zarr.json'}: missing or damaged array metadata")
    return len(meta["shape"])


def file_sha256(path: Path) -> bytes | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).digest()
    except OSError:
        return None


def checksum_file(path: Path, k: int) -> Path:
    """The file holding shard k's row of ``shard_sha256`` (deleting it forgets the shard)."""
    return shard_file(path, CHECKSUM, k, 3)


def shard_complete(path: Path, k: int, n_outputs: int) -> bool:
    """THE rule for "shard k is complete", used by generate (skip it), verify (then check its files)
    and the Python API (``Dataset.complete``): its checksum row holds exactly one sha256 per
    output and none of them is all zero (a truncated, zeroed or partly zeroed row is not complete)."""
    sums = read_checksums(path, k, n_outputs)
    return sums is not None and bool(sums.any(axis=1).all())


def completed(path: Path, n_shards: int, n_outputs: int | None = None) -> np.ndarray:
    """(n_shards,) bool: shards that are complete by :func:`shard_complete`."""
    if n_outputs is None:
        n_outputs = len((read_attrs(path) or {}).get("outputs") or ())
    done = np.zeros(n_shards, bool)
    for k in range(n_shards):
        done[k] = n_outputs > 0 and shard_complete(path, k, n_outputs)
    return done


def read_checksums(path: Path, k: int, n_outputs: int) -> np.ndarray | None:
    """(outputs, 32) uint8 digests recorded for shard k, or None if not written / unreadable."""
    try:
        raw = checksum_file(path, k).read_bytes()
    except OSError:
        return None
    if len(raw) != n_outputs * 32:
        return None
    return np.frombuffer(raw, np.uint8).reshape(n_outputs, 32)


def clean_partials(path: Path) -> int:
    """Delete temporaries a killed writer left (``*.partial``); returns how many."""
    count = 0
    for f in Path(path).rglob("*.partial"):
        try:
            f.unlink()
            count += 1
        except OSError:
            pass
    return count


def verify(path: Path) -> dict:
    """Check a store: every shard present, every file matching its recorded checksum.

    Returns {"n_shards", "ok": [k...], "missing": {k: why}, "damaged": {k: why}, "static": {name: why},
    "metadata": [problem...]}. The metadata (attributes and every array's shape, dtype, chunks) is
    checked first against its checksums; when it is damaged nothing else can be trusted, so no shard
    is checked (``n_shards`` is then 0 in the report). Raises ValueError if ``path`` is not an avatar
    dataset.
    """
    path = Path(path)
    attrs = read_attrs(path)
    if attrs is None and (path / CHECKSUM / "zarr.json").is_file():  # ours, but its root metadata is gone
        return {"n_shards": 0, "ok": [], "missing": {}, "damaged": {}, "static": {},
                "metadata": [f"{path / 'zarr.json'}: missing, unreadable or without its avatar attributes"]}
    if attrs is None:
        raise ValueError(f"{path}: not an avatar dataset store (no zarr.json with avatar_dataset attributes)")
    meta_problems = check_metadata(path, attrs)
    if meta_problems:
        return {"n_shards": 0, "ok": [], "missing": {}, "damaged": {}, "static": {}, "metadata": meta_problems}
    names, n_shards = attrs["outputs"], attrs["n_shards"]
    ndims = {}
    for name in names:
        try:
            ndims[name] = array_ndim(path, name)
        except (OSError, ValueError, KeyError):
            ndims[name] = None
    report = {"n_shards": n_shards, "ok": [], "missing": {}, "damaged": {}, "static": {}, "metadata": []}
    for k in range(n_shards):
        if not shard_complete(path, k, len(names)):
            report["missing"][k] = "not complete (no valid checksum row recorded)"
            continue
        sums = read_checksums(path, k, len(names))
        bad = []
        for j, name in enumerate(names):
            if ndims[name] is None:
                bad.append(f"{name} (array metadata missing)")
                continue
            got = file_sha256(shard_file(path, name, k, ndims[name]))
            if got is None:
                bad.append(f"{name} (file missing)")
            elif got != sums[j].tobytes():
                bad.append(f"{name} (checksum mismatch)")
        if bad:
            report["damaged"][k] = ", ".join(bad)
        else:
            report["ok"].append(k)
    import zarr

    try:
        g = zarr.open_group(str(path), mode="r")
        for name, digest in attrs.get("static_sha256", {}).items():
            try:
                arr = np.ascontiguousarray(g[name][...])
                if hashlib.sha256(arr.tobytes()).hexdigest() != digest:
                    report["static"][name] = "checksum mismatch"
            except Exception as err:  # noqa: BLE001 - any read failure means damage
                report["static"][name] = f"unreadable ({type(err).__name__})"
    except Exception as err:  # noqa: BLE001
        report["static"]["group"] = f"unreadable ({type(err).__name__}: {err})"
    return report


# -- the reader ---------------------------------------------------------------------
class Dataset:
    """A generated dataset, opened read-only. Big arrays are lazy (dask arrays over the zarr chunks).

    Attributes: ``sliders`` (N, P) float64 raw values; ``slider_names``;
    ``sliders_normalized`` in [0, 1]; ``vertices``, ``textures``, ``renders``
    (lazy; None when not generated); ``faces``, ``uv``, ``uv_faces``, ``parts``,
    ``part_names``; ``rig`` (the RigSpec used); ``config``; ``card``; ``attrs``.
    """

    def __init__(self, path, check: bool = True):
        import zarr

        self.path = Path(path)
        attrs = read_attrs(self.path)
        if attrs is None:
            raise FileNotFoundError(f"{self.path}: not an avatar dataset store")
        require_intact_metadata(self.path, attrs)  # DatasetError: nothing below may trust damaged metadata
        require_current_template(self.path, attrs)
        self.attrs = attrs
        self.group = zarr.open_group(str(self.path), mode="r")
        self.config = attrs["config"]
        self.card = attrs["card"]
        self.slider_names = list(attrs["slider_names"])
        self.part_names = tuple(attrs["part_names"])
        self.n_shards = attrs["n_shards"]
        done = completed(self.path, self.n_shards, len(attrs["outputs"]))
        self.missing_shards = [int(k) for k in np.flatnonzero(~done)]
        if check and self.missing_shards:
            warnings.warn(f"{self.path}: {len(self.missing_shards)} of {self.n_shards} shards are not complete "
                          f"(their rows read as NaN sliders and zero arrays); rerun `avatar generate` to finish",
                          stacklevel=3)

    def __len__(self) -> int:
        return int(self.attrs["n"])

    def __repr__(self) -> str:
        arrays = ", ".join(f"{k} {tuple(self.group[k].shape)}" for k in self.attrs["outputs"])
        return f"<avatar Dataset {self.path} n={len(self)}: {arrays}>"

    @property
    def complete(self) -> bool:
        return not self.missing_shards

    def _lazy(self, name: str):
        if name not in self.group:
            return None
        arr = self.group[name]
        try:
            import dask.array as da
        except ImportError:
            return arr
        return da.from_zarr(arr)

    @property
    def sliders(self) -> np.ndarray:
        return self.group["sliders"][...]

    @property
    def sliders_normalized(self) -> np.ndarray:
        return self.group["sliders_normalized"][...]

    @property
    def vertices(self):
        return self._lazy("vertices")

    @property
    def textures(self):
        return self._lazy("textures")

    @property
    def measurements(self) -> np.ndarray | None:
        """(N, M) float64 body measurements at rest (cm, kg, L, kg/m^2), or None when not generated."""
        return self.group["measurements"][...] if "measurements" in self.group else None

    @property
    def measurement_names(self) -> list[str]:
        return list(self.config["outputs"].get("measurements", {}).get("names", []))

    @property
    def renders(self):
        return self._lazy("renders")

    @property
    def faces(self) -> np.ndarray:
        return self.group["faces"][...].astype(np.int64)

    @property
    def uv(self) -> np.ndarray:
        return self.group["uv"][...]

    @property
    def uv_faces(self) -> np.ndarray:
        return self.group["uv_faces"][...].astype(np.int64)

    @property
    def parts(self) -> np.ndarray:
        return self.group["parts"][...].astype(np.int64)

    @property
    def rig(self):
        """The RigSpec the dataset was made with (parsed from the stored rig YAML)."""
        from .samplers import spec_from_text

        return spec_from_text(self.attrs["rig_yaml"], self.config["rig"])

    def load_rig(self):
        """The full Rig (spec + template) used, to recompute or export avatars."""
        from avatar.body.rig import Rig
        from avatar.body.template import load as load_template

        spec = self.rig
        return Rig(spec, load_template(spec.template))


def require_current_template(path, attrs: dict) -> None:
    """DatasetError unless the store's template (its faces' sha256) is the installed body's."""
    from avatar.body.template import load as load_template

    try:
        t = load_template(attrs.get("template", "?"))
    except ValueError:
        t = None
    if t is None or attrs.get("static_sha256", {}).get("faces") != t.faces_sha256:
        raise DatasetError(f"{path}: made with another template than this version's body (MakeHuman's hm08 "
                           f"mesh); regenerate it with `avatar generate`")


def open(path, check: bool = True) -> Dataset:  # noqa: A001 - the API the issue names
    """Open a generated dataset read-only; warns if some shards are not complete."""
    return Dataset(path, check=check)
