"""A dataset's renders and factors in the formats disentanglement code reads: 3dshapes' HDF5, dSprites' npz.

    avatar export data/portraits-64.zarr --format shapes3d -o portraits.h5
    avatar export data/portraits-64.zarr --format npz -o portraits.npz --bins 16

``shapes3d`` (DeepMind's 3dshapes.h5 layout)
    ``images`` (N, S, S, 3) uint8 and ``labels`` (N, K) float64: one row per avatar, one column
    per factor, the slider's raw value (array units: degrees, %, category index...). The file's
    attributes name the factors and their ranges (:data:`H5_ATTRS`).
``npz`` (dSprites' layout)
    ``imgs`` (N, S, S, 3) uint8, ``latents_values`` (N, K) float64, ``latents_classes`` (N, K)
    int64, ``latents_names`` (K,) str and ``metadata`` (1,) str, a JSON document (factor names,
    ranges, classes, bin edges, the source store). Nothing is pickled: ``np.load(path,
    allow_pickle=False)`` reads every array.

Factors are the sliders the dataset varies (``factors="varied"``, in rig order) or every slider
(``"all"``). A continuous factor's class is its value's bin among ``bins`` equal bins over the
range it was sampled from (:func:`sampled_range`); integer, bool and categorical factors keep
their own values as classes (offset to start at 0).

Images come from one stored view (the first by default). Stores rendered at a multiple of the
output size are reduced by a box filter (the mean of each block, rounded half up, in integers);
other sizes are refused. Rows are read, reduced and written in chunks, so memory stays bounded
for any N, and the file is written under a temporary name and renamed into place at the end.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from .store import DatasetError

FORMATS = ("shapes3d", "npz")
FACTORS = ("varied", "all")
CHUNK = 1024  # avatars read, reduced and written at a time
H5_ATTRS = ("factor_names", "factor_kinds", "factor_units", "factor_min", "factor_max", "factor_low",
            "factor_high", "factor_classes", "view", "metadata")


# -- what to export ------------------------------------------------------------------------------
def sampled_range(record: dict, sampler: str) -> tuple[float, float]:
    """(low, high) the dataset drew a slider from: its prior's bounds under the ``prior`` sampler
    when that is uniform, else the slider's whole range (every other sampler spans min to max)."""
    d = record.get("distribution") or {}
    if sampler == "prior" and d.get("kind") == "uniform":
        return float(d["low"]), float(d["high"])
    return float(record["min"]), float(record["max"])


def factor_records(attrs: dict, which: str = "varied", bins: int = 16) -> list[dict]:
    """One record per factor: name, column, kind, unit, label, min, max, low, high, classes, edges.

    ``edges`` ((bins + 1) floats) only for continuous factors; ``classes`` is the class count.
    """
    if which not in FACTORS:
        raise DatasetError(f"factors must be one of {', '.join(FACTORS)}, not {which!r}")
    names = list(attrs["slider_names"])
    chosen = attrs["config"]["varied"] if which == "varied" else names
    records = {r["name"]: r for r in attrs["sliders"]}
    out = []
    for name in chosen:
        r = records[name]
        drawn = {**r, "distribution": attrs["config"].get("priors", {}).get(name, r.get("distribution"))}
        lo, hi = sampled_range(drawn, attrs["config"]["sampler"]) if name in attrs["config"]["varied"] else (
            float(r["min"]), float(r["max"]))
        rec = {"name": name, "column": names.index(name), "kind": r["kind"], "unit": r["unit"], "label": r["label"],
               "min": float(r["min"]), "max": float(r["max"]), "low": lo, "high": hi,
               "categories": list(r.get("categories") or [])}
        if r["kind"] == "continuous":
            rec["classes"], rec["edges"] = bins, np.linspace(lo, hi, bins + 1).tolist()
        else:
            rec["classes"] = int(round(r["max"] - r["min"])) + 1
        out.append(rec)
    return out


def classes(values: np.ndarray, records: list[dict]) -> np.ndarray:
    """(n, K) int64 classes of factor values (n, K): continuous binned by ``edges``, the rest offset from min."""
    out = np.empty(values.shape, np.int64)
    for k, r in enumerate(records):
        x = values[:, k]
        if r["kind"] == "continuous":
            lo, hi, b = r["low"], r["high"], r["classes"]
            out[:, k] = np.clip(np.floor((x - lo) / (hi - lo) * b), 0, b - 1) if hi > lo else 0
        else:
            out[:, k] = np.round(x - r["min"]).astype(np.int64)
    return out


def box_reduce(images: np.ndarray, size: int) -> np.ndarray:
    """(n, R, R, 3) uint8 -> (n, size, size, 3) uint8, each output pixel the rounded mean of an
    (R/size)^2 block (integer arithmetic, round half up). R must be a multiple of ``size``."""
    n, r = images.shape[0], images.shape[1]
    f = r // size
    if f == 1:
        return images
    blocks = images.reshape(n, size, f, size, f, 3).astype(np.uint32).sum(axis=(2, 4))
    return ((blocks + (f * f) // 2) // (f * f)).astype(np.uint8)


class Source:
    """The store's renders of one view at one size, and the factor values, read in chunks."""

    def __init__(self, store, view: str | None = None, size: int = 64, factors: str = "varied", bins: int = 16):
        import zarr

        from .store import completed, read_attrs, require_intact_metadata

        self.path = Path(store)
        attrs = read_attrs(self.path)
        if attrs is None:
            raise DatasetError(f"{self.path}: not an avatar dataset store")
        require_intact_metadata(self.path, attrs)
        renders = attrs["config"]["outputs"].get("renders")
        if renders is None:
            raise DatasetError(f"{self.path}: the dataset has no renders to export; add `renders: {{views: [camera], "
                               "size: 64}` to its outputs and generate it again")
        if not completed(self.path, attrs["n_shards"], len(attrs["outputs"])).all():
            raise DatasetError(f"{self.path}: some shards are not generated yet (their rows would be blank); "
                               "finish the dataset first (rerun `avatar generate`)")
        views = [str(v) for v in renders["views"]]
        if view is None:
            view = views[0]
        if view not in views:
            from avatar.spec.config import did_you_mean

            raise DatasetError(f"{self.path}: no view {view!r} in the store{did_you_mean(view, views)}; "
                               f"its views: {', '.join(views)}")
        stored = int(renders["size"])
        if stored < size or stored % size:
            raise DatasetError(f"{self.path}: renders are {stored}x{stored} pixels, which a box filter cannot "
                               f"bring to {size}x{size} (it needs a multiple of {size}); regenerate with "
                               f"`renders: {{size: {size}}}` or pick --size dividing {stored}")
        if not 1 <= bins <= 1 << 20:
            raise DatasetError(f"bins must be 1 to {1 << 20:,}, got {bins}")
        self.attrs, self.view, self.view_index, self.size, self.stored = attrs, view, views.index(view), size, stored
        self.group = zarr.open_group(str(self.path), mode="r")
        self.records = factor_records(attrs, factors, bins)
        self.columns = [r["column"] for r in self.records]
        self.n = int(attrs["n"])

    def chunks(self, chunk: int = CHUNK):
        """Yield (start, stop) row ranges of at most ``chunk`` avatars."""
        for a in range(0, self.n, chunk):
            yield a, min(self.n, a + chunk)

    def images(self, a: int, b: int) -> np.ndarray:
        """(b - a, size, size, 3) uint8 images of avatars a..b-1."""
        return box_reduce(self.group["renders"][a:b, self.view_index], self.size)

    def values(self, a: int, b: int) -> np.ndarray:
        """(b - a, K) float64 factor values of avatars a..b-1."""
        return self.group["sliders"][a:b][:, self.columns]

    def metadata(self, fmt: str) -> dict:
        """What a reader needs beside the arrays (stored as JSON)."""
        a = self.attrs
        return {"format": fmt, "source": str(self.path), "fingerprint": a["fingerprint"], "avatar_version": a["version"],
                "dataset": a["card"].get("name", ""), "sampler": a["config"]["sampler"], "seed": a["seed"],
                "n": self.n, "view": self.view, "image_size": self.size, "stored_size": self.stored,
                "factors": self.records}


# -- writers --------------------------------------------------------------------------------------
def _atomic(out: Path, write) -> Path:
    """Run ``write(tmp_path)`` and rename the result to ``out``; no temporary is left on failure."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def export_shapes3d(store, out, view: str | None = None, size: int = 64, factors: str = "varied",
                    bins: int = 16, chunk: int = CHUNK) -> dict:
    """Write ``out`` as 3dshapes writes its HDF5: ``images`` (N, size, size, 3) uint8, ``labels``
    (N, K) float64, factor names and ranges in the file's attributes. Returns the metadata."""
    import h5py

    src = Source(store, view, size, factors, bins)
    meta = src.metadata("shapes3d")
    recs = src.records

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            images = f.create_dataset("images", shape=(src.n, size, size, 3), dtype="uint8")   # contiguous, as 3dshapes
            labels = f.create_dataset("labels", shape=(src.n, len(recs)), dtype="float64")
            text = h5py.string_dtype()
            f.attrs["factor_names"] = np.array([r["name"] for r in recs], dtype=text)
            f.attrs["factor_kinds"] = np.array([r["kind"] for r in recs], dtype=text)
            f.attrs["factor_units"] = np.array([r["unit"] for r in recs], dtype=text)
            for key in ("min", "max", "low", "high"):
                f.attrs[f"factor_{key}"] = np.array([r[key] for r in recs], np.float64)
            f.attrs["factor_classes"] = np.array([r["classes"] for r in recs], np.int64)
            f.attrs["view"] = src.view
            f.attrs["metadata"] = json.dumps(meta)
            for a, b in src.chunks(chunk):
                images[a:b] = src.images(a, b)
                labels[a:b] = src.values(a, b)

    _atomic(out, write)
    return meta


def _npy_entry(zf: zipfile.ZipFile, name: str, shape: tuple, dtype, parts) -> None:
    """Stream one ``name.npy`` into the zip: the header, then each array of ``parts`` in order."""
    dtype = np.dtype(dtype)
    with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                 "fortran_order": False, "shape": tuple(shape)})
        for part in parts:
            f.write(np.ascontiguousarray(part, dtype).tobytes())


def export_npz(store, out, view: str | None = None, size: int = 64, factors: str = "varied", bins: int = 16,
               chunk: int = CHUNK) -> dict:
    """Write ``out`` as dSprites ships its npz (see the module docstring); returns the metadata."""
    src = Source(store, view, size, factors, bins)
    meta = src.metadata("npz")
    recs, n, k = src.records, src.n, len(src.records)
    names = np.array([r["name"] for r in recs], dtype=str)
    doc = np.array([json.dumps(meta)], dtype=str)

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            _npy_entry(zf, "latents_values", (n, k), np.float64, (src.values(a, b) for a, b in src.chunks(chunk)))
            _npy_entry(zf, "latents_classes", (n, k), np.int64,
                       (classes(src.values(a, b), recs) for a, b in src.chunks(chunk)))
            _npy_entry(zf, "latents_names", names.shape, names.dtype, [names])
            _npy_entry(zf, "metadata", doc.shape, doc.dtype, [doc])
            _npy_entry(zf, "imgs", (n, size, size, 3), np.uint8, (src.images(a, b) for a, b in src.chunks(chunk)))

    _atomic(out, write)
    return meta


EXPORTERS = {"shapes3d": export_shapes3d, "npz": export_npz}

__all__ = ["CHUNK", "EXPORTERS", "FACTORS", "FORMATS", "H5_ATTRS", "Source", "box_reduce", "classes",
           "export_npz", "export_shapes3d", "factor_records", "sampled_range"]
