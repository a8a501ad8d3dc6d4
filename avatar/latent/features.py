"""Feature matrices from avatars: vertices, textures, renders, or a weighted mix.

    ft = FeatureTransform([{"name": "vertices", "align": True},
                           {"name": "textures", "size": 32, "weight": 0.5}])
    ft.fit_store(ds, train_rows)           # one (two with align) streamed pass over the store
    for rows, X in iter_features(ds, ft, test_rows, batch=256): ...   # X (rows, d) float32
    parts = ft.inverse(X)                  # {"vertices": (n, V, 3) float32 metres, "textures": uint8 ...}

Each block is prepared (vertices: optionally rigid-aligned to the mean shape
by Kabsch, no scale; textures and renders: box-filtered down to ``size`` and
scaled to [0, 1]), centred on its training mean and, when there are several
blocks, multiplied by ``weight / total_std`` (total_std: the square root of the
block's summed per-feature variance) so every block carries ``weight**2`` of
the total variance whatever its size or units. A single block keeps its units
(metres for vertices), so reconstruction errors read directly.
"""
from __future__ import annotations

import numpy as np

BLOCKS = ("vertices", "textures", "renders")
DEFAULT_SIZE = {"textures": 32, "renders": 32}

__all__ = ["BLOCKS", "FeatureTransform", "iter_rows", "iter_features", "kabsch_align", "box_downsample"]


# -- pure array functions ----------------------------------------------------------
def kabsch_align(V: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Rigidly align each shape to ``ref`` (rotation + translation, no scale).

    V : (n, m, 3) float, ref : (m, 3) float -> (n, m, 3) float64, the rotation
    minimising the summed squared distance (Kabsch), reflections excluded.
    """
    V = np.asarray(V, np.float64)
    ref = np.asarray(ref, np.float64)
    cv = V.mean(axis=1, keepdims=True)
    cr = ref.mean(axis=0)
    A = V - cv
    H = np.einsum("nmi,mj->nij", A, ref - cr)        # (n, 3, 3) cross-covariance
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(U @ Vt))                # -1 would be a reflection
    D = np.ones((len(V), 3))
    D[:, 2] = np.where(d == 0, 1.0, d)
    R = (U * D[:, None, :]) @ Vt                      # maps the centred shape onto ref: A @ R
    return np.einsum("nmi,nij->nmj", A, R) + cr


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
        "align": bool (vertices only, False), "size": int (textures/renders, 32)}``.

    Learned (by :meth:`fit_arrays` / :meth:`fit_store`): ``shapes_`` (the stored
    per-sample shape of each block), ``means_`` {name: (d_b,) float64},
    ``scales_`` {name: float}, ``total_std_`` {name: float}, ``reference_``
    ((V, 3) mean raw shape, the alignment target; vertices only).
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

    def prepared_shape(self, name: str, stored_shape: tuple) -> tuple:
        """Per-sample shape of a block after preparation (downsampling)."""
        b = self.block(name)
        if name == "vertices":
            return tuple(stored_shape)
        s = b["size"]
        if stored_shape[-2] % s:
            raise ValueError(f"{name}: size {s} must divide the stored {stored_shape[-2]} px")
        return tuple(stored_shape[:-3]) + (s, s, 3)

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
    def _prepare(self, name: str, arr: np.ndarray, align: bool = True) -> np.ndarray:
        """One block's raw arrays (n, ...) -> (n, d_b) float (aligned / downsampled)."""
        b = self.block(name)
        n = len(arr)
        if name == "vertices":
            V = np.asarray(arr)
            if b["align"] and align:
                V = kabsch_align(V, self.reference_)
            return np.asarray(V, np.float64).reshape(n, -1)
        return box_downsample(arr, b["size"]).reshape(n, -1)

    # -- fitting ----------------------------------------------------------------
    def fit_arrays(self, arrays: dict) -> "FeatureTransform":
        """Learn means and scales from in-memory arrays {name: (n, ...)}; returns self."""
        return self._fit(lambda: iter([arrays]), {k: np.shape(arrays[k])[1:] for k in self.names})

    def fit_store(self, ds, rows, batch: int = 256) -> "FeatureTransform":
        """Learn from rows of a dataset store (streamed in shard-aligned batches); returns self."""
        for name in self.names:
            if name not in ds.group:
                raise ValueError(f"the dataset {ds.path} has no {name} (it stores: "
                                 f"{', '.join(k for k in BLOCKS if k in ds.group) or 'sliders only'})")
        shapes = {k: tuple(ds.group[k].shape[1:]) for k in self.names}
        return self._fit(lambda: (a for _, a in iter_rows(ds, rows, self.names, batch)), shapes)

    def _fit(self, make_batches, shapes: dict) -> "FeatureTransform":
        self.shapes_ = {k: tuple(int(x) for x in v) for k, v in shapes.items()}
        self.dims()  # checks the sizes divide
        if any(b["align"] for b in self.blocks if b["name"] == "vertices"):
            total, n = 0.0, 0
            for arrays in make_batches():  # pass 1: the alignment target is the mean raw shape
                V = np.asarray(arrays["vertices"], np.float64)
                total = total + V.sum(axis=0)
                n += len(V)
            self.reference_ = total / max(n, 1)
        sums = {k: 0.0 for k in self.names}
        sq = {k: 0.0 for k in self.names}
        n = 0
        for arrays in make_batches():
            for k in self.names:
                P = self._prepare(k, arrays[k]).astype(np.float64)
                sums[k] = sums[k] + P.sum(axis=0)
                sq[k] = sq[k] + np.einsum("ij,ij->j", P, P)
            n += len(arrays[self.names[0]])
        if n < 2:
            raise ValueError(f"need at least 2 samples to learn features, got {n}")
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
        "renders": (n, views, s, s, 3) uint8} for the blocks modelled."""
        out = {}
        for k, P in self.prepared(X).items():
            shape = (len(P),) + self.prepared_shape(k, self.shapes_[k])
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
        except KeyError as err:
            raise ValueError(f"missing feature array {err.args[0]}") from None
        if any(b["align"] for b in self.blocks if b["name"] == "vertices"):
            if "reference" not in arrays:
                raise ValueError("missing feature array reference (the alignment target)")
            self.reference_ = arrays["reference"]
        for k, d in self.dims().items():
            if self.means_[k].shape != (d,):
                raise ValueError(f"feature mean of {k} has shape {self.means_[k].shape}, expected ({d},)")
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
        out["align"] = bool(b.get("align", False))
    else:
        out["size"] = int(b.get("size", DEFAULT_SIZE[name]))
        if out["size"] < 1:
            raise ValueError(f"{name}: size must be >= 1")
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
