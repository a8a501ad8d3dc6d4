"""Feature matrices from avatars: vertices, textures, renders, or a weighted mix.

    ft = FeatureTransform([{"name": "vertices", "align": "similarity", "parts": ["whole_head"]},
                           {"name": "textures", "size": 32, "weight": 0.5}])
    ft.fit_store(ds, train_rows)           # one (two with align or parts) streamed pass over the store
    for rows, X in iter_features(ds, ft, test_rows, batch=256): ...   # X (rows, d) float32
    parts = ft.inverse(X)                  # {"vertices": (n, V, 3) float32 metres, "textures": uint8 ...}

Each block is prepared, then centred on its training mean and, when there are
several blocks, multiplied by ``weight / total_std`` (total_std: the square
root of the block's summed per-feature variance) so every block carries
``weight**2`` of the total variance whatever its size or units. A single block
keeps its units (metres for vertices), so reconstruction errors read directly.

Preparation:

- vertices: the vertices of ``parts`` only (a region, :mod:`avatar.latent.regions`;
  default all), then ``align``: ``none``; ``rigid`` (Kabsch: rotation and
  translation onto the training mean shape); or ``similarity`` (Procrustes with
  scale: a big head and a small one of the same shape become one feature row).
- textures: box-filtered down to ``size`` and scaled to [0, 1]; with ``parts``,
  only the texels inside those parts' UV triangles.
- renders: box-filtered down to ``size`` and scaled to [0, 1].

Decoding a region block fills everything outside the region with the training
mean (raw vertices; the mean texture), so a face latent still decodes to a
whole avatar whose face moves.
"""
from __future__ import annotations

import numpy as np

BLOCKS = ("vertices", "textures", "renders")
DEFAULT_SIZE = {"textures": 32, "renders": 32}

ALIGN = ("none", "rigid", "similarity")

__all__ = ["BLOCKS", "ALIGN", "FeatureTransform", "iter_rows", "iter_features", "kabsch_align", "procrustes_align",
           "box_downsample"]


# -- pure array functions ----------------------------------------------------------
def procrustes_align(V: np.ndarray, ref: np.ndarray, scale: bool = False) -> np.ndarray:
    """Align each shape to ``ref``: rotation and translation (Kabsch), and with ``scale`` one
    uniform scale too (ordinary Procrustes), minimising the summed squared distance.

    V : (n, m, 3) float, ref : (m, 3) float -> (n, m, 3) float64; reflections excluded.
    """
    V = np.asarray(V, np.float64)
    ref = np.asarray(ref, np.float64)
    cr = ref.mean(axis=0)
    A = V - V.mean(axis=1, keepdims=True)                # (n, m, 3) centred shapes
    H = np.einsum("nmi,mj->nij", A, ref - cr)            # (n, 3, 3) cross-covariance
    U, sv, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(U @ Vt))                   # -1 would be a reflection
    D = np.ones((len(V), 3))
    D[:, 2] = np.where(d == 0, 1.0, d)
    R = (U * D[:, None, :]) @ Vt                         # maps the centred shape onto ref: A @ R
    out = np.einsum("nmi,nij->nmj", A, R)
    if scale:
        # the least-squares scale of a rotated shape onto ref: trace(D S) / |A|^2
        norm2 = np.einsum("nmi,nmi->n", A, A)
        s = (sv * D).sum(axis=1) / np.where(norm2 > 0, norm2, 1.0)
        out *= s[:, None, None]
    return out + cr


def kabsch_align(V: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Rigidly align each shape to ``ref`` (rotation + translation, no scale); see :func:`procrustes_align`."""
    return procrustes_align(V, ref, scale=False)


def box_downsample(images: np.ndarray, size: int) -> np.ndarray:
    """(..., S, S, 3) uint8 -> (..., size, size, 3) float32 in [0, 1], by averaging f x f boxes (S = f * size)."""
    images = np.asarray(images)
    S = images.shape[-2]
    if S % size:
        raise ValueError(f"cannot box-filter {S} px down to {size} px: {size} must divide {S}")
    f = S // size
    x = images.astype(np.float32) * (1.0 / 255.0)
    if f == 1:
        return x
    lead = x.shape[:-3]
    x = x.reshape(*lead, size, f, size, f, x.shape[-1])
    return x.mean(axis=(-4, -2))


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


# -- the transform ---------------------------------------------------------------------
class FeatureTransform:
    """Avatar arrays <-> one feature matrix (n, d) float32; see the module docstring.

    Parameters
    ----------
    blocks : list of dict
        ``{"name": "vertices" | "textures" | "renders", "weight": float (1),
        "align": "none" | "rigid" | "similarity" (vertices only; true means rigid),
        "parts": [part or group names] (vertices and textures; default: everything),
        "size": int (textures/renders, 32)}``.

    Learned (by :meth:`fit_arrays` / :meth:`fit_store`): ``shapes_`` (the stored
    per-sample shape of each block), ``means_`` {name: (d_b,) float64},
    ``scales_`` {name: float}, ``total_std_`` {name: float}, ``index_``
    {name: (m,) int64} (the region's vertices or flat texel indices; blocks with
    ``parts`` only), ``fill_`` {name: array} (the training mean of the whole raw
    block, what decoding puts outside the region), ``reference_`` ((m, 3) mean
    raw shape of the selected vertices, the alignment target; aligned vertices only).
    """

    def __init__(self, blocks):
        self.blocks = [_normalise(b) for b in blocks]
        names = [b["name"] for b in self.blocks]
        if len(set(names)) != len(names):
            raise ValueError(f"each feature block may appear once, got {names}")
        if not names:
            raise ValueError("no feature blocks")

    # -- shapes ------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [b["name"] for b in self.blocks]

    def block(self, name: str) -> dict:
        for b in self.blocks:
            if b["name"] == name:
                return b
        raise KeyError(f"the features have no {name!r} block (blocks: {', '.join(self.names)})")

    @property
    def regional(self) -> list[str]:
        """Names of the blocks restricted to parts."""
        return [b["name"] for b in self.blocks if b.get("parts")]

    def bind(self, layout) -> "FeatureTransform":
        """Resolve every block's ``parts`` to vertex / texel indices of ``layout`` (a dataset store or a
        template: anything with faces, uv, uv_faces, parts, part_names); returns self."""
        from .regions import texel_index, vertex_index

        self.index_ = {}
        for b in self.blocks:
            if not b.get("parts"):
                continue
            if b["name"] == "vertices":
                idx = vertex_index(layout, b["parts"])
            else:
                idx = texel_index(layout, b["parts"], b["size"])
            if len(idx) == 0:
                raise ValueError(f"{b['name']}: the parts {', '.join(b['parts'])} cover nothing")
            self.index_[b["name"]] = idx
        return self

    def _index(self, name: str):
        if not self.block(name).get("parts"):
            return None
        if name not in getattr(self, "index_", {}):
            raise ValueError(f"{name}: the region is not resolved yet; call bind(layout) or fit first")
        return self.index_[name]

    def prepared_shape(self, name: str, stored_shape: tuple) -> tuple:
        """Per-sample shape of a block after preparation (region selection, downsampling)."""
        b = self.block(name)
        idx = self._index(name)
        if name == "vertices":
            return tuple(stored_shape) if idx is None else (len(idx), 3)
        s = b["size"]
        if stored_shape[-2] % s:
            raise ValueError(f"{name}: size {s} must divide the stored {stored_shape[-2]} px")
        return tuple(stored_shape[:-3]) + (s, s, 3) if idx is None else (len(idx), 3)

    def full_shape(self, name: str) -> tuple:
        """Per-sample shape a block decodes to (the whole avatar, downsampled)."""
        b, stored = self.block(name), self.shapes_[name]
        return tuple(stored) if name == "vertices" else tuple(stored[:-3]) + (b["size"], b["size"], 3)

    def dims(self, shapes: dict | None = None) -> dict[str, int]:
        shapes = self.shapes_ if shapes is None else shapes
        return {b["name"]: int(np.prod(self.prepared_shape(b["name"], shapes[b["name"]]))) for b in self.blocks}

    def slices(self) -> dict[str, slice]:
        """Where each block sits in a feature row."""
        out, at = {}, 0
        for name, d in self.dims().items():
            out[name] = slice(at, at + d)
            at += d
        return out

    @property
    def n_features(self) -> int:
        return sum(self.dims().values())

    # -- preparation (before centring) ------------------------------------------
    def _select(self, name: str, arr: np.ndarray) -> np.ndarray:
        """A block's raw arrays (n, ...) -> the region's raw values: vertices (n, m, 3) float;
        images (n, ...) float32 in [0, 1], downsampled, textures cut to (n, m, 3) with parts."""
        idx = self._index(name)
        if name == "vertices":
            V = np.asarray(arr)
            return V if idx is None else V[:, idx]
        x = box_downsample(arr, self.block(name)["size"])
        return x if idx is None else x.reshape(len(x), -1, 3)[:, idx]

    def _prepare(self, name: str, arr: np.ndarray, align: bool = True) -> np.ndarray:
        """One block's raw arrays (n, ...) -> (n, d_b) float (selected, aligned, downsampled)."""
        b = self.block(name)
        P = self._select(name, arr)
        if name == "vertices" and b["align"] != "none" and align:
            P = procrustes_align(P, self.reference_, scale=b["align"] == "similarity")
        return np.asarray(P, np.float64 if name == "vertices" else np.float32).reshape(len(P), -1)

    # -- fitting ----------------------------------------------------------------
    def fit_arrays(self, arrays: dict, layout=None) -> "FeatureTransform":
        """Learn means and scales from in-memory arrays {name: (n, ...)}; returns self. ``layout``
        resolves ``parts`` (default: the humanoid template)."""
        if self.regional:
            from avatar.body.template import load as load_template

            self.bind(layout if layout is not None else load_template())
        return self._fit(lambda: iter([arrays]), {k: np.shape(arrays[k])[1:] for k in self.names})

    def fit_store(self, ds, rows, batch: int = 256) -> "FeatureTransform":
        """Learn from rows of a dataset store (streamed in shard-aligned batches); returns self."""
        for name in self.names:
            if name not in ds.group:
                raise ValueError(f"the dataset {ds.path} has no {name} (it stores: "
                                 f"{', '.join(k for k in BLOCKS if k in ds.group) or 'sliders only'})")
        if self.regional:
            self.bind(ds)
        shapes = {k: tuple(ds.group[k].shape[1:]) for k in self.names}
        return self._fit(lambda: (a for _, a in iter_rows(ds, rows, self.names, batch)), shapes)

    def _fit(self, make_batches, shapes: dict) -> "FeatureTransform":
        self.shapes_ = {k: tuple(int(x) for x in v) for k, v in shapes.items()}
        self.dims()  # checks the sizes divide
        if not hasattr(self, "index_"):
            self.index_ = {}
        whole = {k: 0.0 for k in self.regional}
        aligned = any(b["align"] != "none" for b in self.blocks if b["name"] == "vertices")
        if aligned or "vertices" in self.regional:
            total, n = 0.0, 0
            for arrays in make_batches():  # pass 1: the alignment target is the mean raw shape
                V = np.asarray(arrays["vertices"], np.float64)
                total = total + V.sum(axis=0)
                n += len(V)
            mean = total / max(n, 1)
            idx = self.index_.get("vertices")
            self.reference_ = mean if idx is None else mean[idx]
            if idx is not None:
                whole["vertices"] = mean
        sums = {k: 0.0 for k in self.names}
        sq = {k: 0.0 for k in self.names}
        n = 0
        for arrays in make_batches():
            for k in self.names:
                P = self._prepare(k, arrays[k]).astype(np.float64)
                sums[k] = sums[k] + P.sum(axis=0)
                sq[k] = sq[k] + np.einsum("ij,ij->j", P, P)
                if k in self.regional and k != "vertices":   # the mean of the whole downsampled image
                    whole[k] = whole[k] + box_downsample(arrays[k], self.block(k)["size"]).sum(axis=0, dtype=np.float64)
            n += len(arrays[self.names[0]])
        if n < 2:
            raise ValueError(f"need at least 2 samples to learn features, got {n}")
        self.fill_ = {k: (v if k == "vertices" else v / n) for k, v in whole.items()}
        self.means_ = {k: sums[k] / n for k in self.names}
        var = {k: np.maximum(sq[k] / n - self.means_[k] ** 2, 0.0).sum() * n / (n - 1) for k in self.names}
        self.total_std_ = {k: float(np.sqrt(v)) for k, v in var.items()}
        many = len(self.blocks) > 1
        self.scales_ = {b["name"]: (b["weight"] / self.total_std_[b["name"]] if many and self.total_std_[b["name"]] > 0
                                    else (b["weight"] if many else 1.0)) for b in self.blocks}
        self.n_samples_ = n
        return self

    # -- forward / inverse ------------------------------------------------------
    def forward(self, arrays: dict) -> np.ndarray:
        """{name: (n, ...) raw} -> X (n, d) float32 (centred and scaled, blocks side by side)."""
        missing = [k for k in self.names if k not in arrays]
        if missing:
            raise ValueError(f"missing feature block(s) {', '.join(missing)}; the model uses {', '.join(self.names)}")
        for k in self.names:
            if tuple(np.shape(arrays[k])[1:]) != self.shapes_[k]:
                raise ValueError(f"{k}: expected per-sample shape {self.shapes_[k]}, got {np.shape(arrays[k])[1:]}")
        parts = [((self._prepare(k, arrays[k]) - self.means_[k]) * self.scales_[k]).astype(np.float32)
                 for k in self.names]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def prepared(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """X (n, d) -> {name: (n, d_b) float64} in prepared units (metres; [0, 1] pixels)."""
        X = np.atleast_2d(np.asarray(X))
        if X.shape[1] != self.n_features:
            raise ValueError(f"expected feature rows of length {self.n_features}, got {X.shape[1]}")
        return {k: np.asarray(X[:, s], np.float64) / self.scales_[k] + self.means_[k]
                for k, s in self.slices().items()}

    def inverse(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """X (n, d) -> {"vertices": (n, V, 3) float32 metres, "textures": (n, s, s, 3) uint8,
        "renders": (n, views, s, s, 3) uint8} for the blocks modelled; a region block comes back
        whole, the training mean outside the region."""
        out = {}
        for k, P in self.prepared(X).items():
            idx = self.index_.get(k) if hasattr(self, "index_") else None
            if idx is not None:
                full = np.repeat(np.asarray(self.fill_[k], np.float64).reshape(1, -1, 3), len(P), axis=0)
                full[:, idx] = P.reshape(len(P), -1, 3)
                P = full
            shape = (len(P),) + self.full_shape(k)
            out[k] = P.reshape(shape).astype(np.float32) if k == "vertices" else _to_uint8(P).reshape(shape)
        return out

    # -- state for persistence -------------------------------------------------
    def params(self) -> dict:
        return {"blocks": [dict(b) for b in self.blocks]}

    def learned(self) -> dict[str, np.ndarray]:
        out = {"n_samples": np.asarray(self.n_samples_, np.int64)}
        for k in self.names:
            out[f"{k}.shape"] = np.asarray(self.shapes_[k], np.int64)
            out[f"{k}.mean"] = self.means_[k]
            out[f"{k}.scale"] = np.asarray(self.scales_[k], np.float64)
            out[f"{k}.total_std"] = np.asarray(self.total_std_[k], np.float64)
        for k in self.regional:
            out[f"{k}.index"] = np.asarray(self.index_[k], np.int64)
            out[f"{k}.fill"] = np.asarray(self.fill_[k], np.float64)
        if hasattr(self, "reference_"):
            out["reference"] = self.reference_
        return out

    def set_learned(self, arrays: dict) -> "FeatureTransform":
        try:
            self.n_samples_ = int(arrays["n_samples"])
            self.shapes_ = {k: tuple(int(x) for x in arrays[f"{k}.shape"]) for k in self.names}
            self.means_ = {k: arrays[f"{k}.mean"] for k in self.names}
            self.scales_ = {k: float(arrays[f"{k}.scale"]) for k in self.names}
            self.total_std_ = {k: float(arrays[f"{k}.total_std"]) for k in self.names}
            self.index_ = {k: np.asarray(arrays[f"{k}.index"], np.int64) for k in self.regional}
            self.fill_ = {k: arrays[f"{k}.fill"] for k in self.regional}
        except KeyError as err:
            raise ValueError(f"missing feature array {err.args[0]}") from None
        if any(b["align"] != "none" for b in self.blocks if b["name"] == "vertices"):
            if "reference" not in arrays:
                raise ValueError("missing feature array reference (the alignment target)")
            self.reference_ = arrays["reference"]
        for k, d in self.dims().items():
            if self.means_[k].shape != (d,):
                raise ValueError(f"feature mean of {k} has shape {self.means_[k].shape}, expected ({d},)")
        for k in self.regional:
            if self.fill_[k].size != int(np.prod(self.full_shape(k))) or self.index_[k].size and \
                    (self.index_[k].min() < 0 or self.index_[k].max() >= self.fill_[k].size // 3):
                raise ValueError(f"feature region of {k} does not fit its shape")
        return self

    def __repr__(self) -> str:
        return f"FeatureTransform({self.blocks!r})"


def _normalise(b) -> dict:
    if isinstance(b, str):
        b = {"name": b}
    b = dict(b)
    name = b.get("name")
    if name not in BLOCKS:
        raise ValueError(f"unknown feature {name!r}; features: {', '.join(BLOCKS)}")
    out = {"name": name, "weight": float(b.get("weight", 1.0))}
    if not out["weight"] > 0:
        raise ValueError(f"{name}: weight must be > 0")
    if name == "vertices":
        a = b.get("align", "none")
        a = {True: "rigid", False: "none", None: "none"}.get(a, a) if isinstance(a, (bool, type(None))) else a
        if a not in ALIGN:
            raise ValueError(f"vertices: align must be one of {', '.join(ALIGN)}, got {a!r}")
        out["align"] = a
    else:
        out["size"] = int(b.get("size", DEFAULT_SIZE[name]))
        if out["size"] < 1:
            raise ValueError(f"{name}: size must be >= 1")
    parts = b.get("parts")
    if parts:
        if name == "renders":
            raise ValueError("renders: parts do not apply to renders (select vertices or textures by region)")
        out["parts"] = [parts] if isinstance(parts, str) else [str(p) for p in parts]
    return out


# -- streaming from a store --------------------------------------------------------------
def row_batches(rows, shard: int, batch: int) -> list[np.ndarray]:
    """Sorted ``rows`` cut into batches of about ``batch`` rows whose cuts fall on shard boundaries
    (a shard is read by one batch only, unless a shard alone exceeds ``batch``)."""
    rows = np.unique(np.asarray(rows, np.int64))
    if len(rows) == 0:
        return []
    shard_of = rows // shard
    cuts = np.flatnonzero(np.diff(shard_of)) + 1  # where a new shard starts
    groups = np.split(rows, cuts)
    out, cur = [], []
    for g in groups:
        for piece in (g[i:i + batch] for i in range(0, len(g), batch)):  # a big shard alone: split it
            if cur and sum(map(len, cur)) + len(piece) > batch:
                out.append(np.concatenate(cur))
                cur = []
            cur.append(piece)
    if cur:
        out.append(np.concatenate(cur))
    return out


def iter_rows(ds, rows, names, batch: int = 256):
    """Yield (rows (b,), {name: (b, ...) numpy}) for sorted ``rows`` of a dataset, ``batch`` rows at a time."""
    shard = int(ds.attrs["shard"])
    arrays = {k: ds.group[k] for k in names}
    for idx in row_batches(rows, shard, batch):
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        if hi - lo == len(idx):  # contiguous: a plain slice is the cheapest read
            yield idx, {k: a[lo:hi] for k, a in arrays.items()}
        elif 4 * len(idx) >= hi - lo:
            # zarr's orthogonal selection is ~6x slower per row than a slice: read the span, keep the rows
            yield idx, {k: a[lo:hi][idx - lo] for k, a in arrays.items()}
        else:
            yield idx, {k: a.get_orthogonal_selection((idx,)) for k, a in arrays.items()}


def iter_features(ds, ft: FeatureTransform, rows, batch: int = 256):
    """Yield (rows (b,), X (b, d) float32) for sorted ``rows`` of a dataset through ``ft``."""
    for idx, arrays in iter_rows(ds, rows, ft.names, batch):
        yield idx, ft.forward(arrays)


def load_features(ds, ft: FeatureTransform, rows, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(sorted rows (n,), X (n, d) float32) read into one preallocated matrix."""
    rows = np.unique(np.asarray(rows, np.int64))
    X = np.empty((len(rows), ft.n_features), np.float32)
    at = 0
    for idx, B in iter_features(ds, ft, rows, batch):
        X[at:at + len(idx)] = B
        at += len(idx)
    return rows, X
