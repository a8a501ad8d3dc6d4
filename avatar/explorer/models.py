"""The models the explorer runs on: the latent model as it drives it, and the designer sliders' basis.

:class:`LatentView` encodes and decodes one avatar through a fitted
:mod:`avatar.latent` model. :class:`SliderBasis` is a linear fit of the rig's
vertices on its shape sliders over random avatars, which reads a vertex change
as the designer slider changes that would make it (least squares). Both are
fitted once at start-up and cached as ``.npz`` (no pickles) under a key of the
rig's fingerprint and the settings: :func:`quick_model`, :func:`cached_basis`.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..threads import one_blas_thread


# -- which sliders do what ------------------------------------------------------------------------
def shape_sliders(rig) -> np.ndarray:
    """(P,) bool: sliders that change the body's shape (macros, MakeHuman modifiers, deformer effects).

    Pose sliders move vertices too, but by rotations a linear map at the rest pose cannot hold."""
    return np.array([s.moves_mesh and not s.pose for s in rig.sliders])


def texture_sliders(rig) -> np.ndarray:
    """(P,) bool: sliders the texture generator reads (skin and tattoo)."""
    from avatar.skin.texture import DEFAULTS

    return np.array([s.name in DEFAULTS for s in rig.sliders])


# -- the latent model as the explorer drives it ----------------------------------------------------
class LatentView:
    """Encode and decode one avatar with a fitted latent model (see :mod:`avatar.latent`).

    Parameters
    ----------
    model : avatar.latent.LatentModel
        Fitted on vertices (``avatar.latent.fit_vertices``) or on vertices and
        textures (``avatar fit``); its ``code_mean_`` / ``code_std_`` (k,) scale
        the latent sliders.
    n_vertices : int
        The rig's vertex count, checked against the model's.
    name : str
        Shown on the page.
    """

    def __init__(self, model, n_vertices: int, name: str = "latent"):
        self.model, self.name = model, name
        ft = getattr(model, "features_", None)
        blocks = ft.names if ft is not None else ["vertices"]
        unknown = [b for b in blocks if b not in ("vertices", "textures")]
        if "vertices" not in blocks or unknown:
            raise ValueError(f"the explorer needs a model of vertices (optionally with textures); "
                             f"this one models {', '.join(blocks)}")
        d = ft.shapes_["vertices"] if ft is not None else (model.n_features_in_ // 3, 3)
        if tuple(d) != (n_vertices, 3):
            raise ValueError(f"the model was fitted on meshes of {d[0]} vertices; this rig has {n_vertices}")
        self.texture_size = int(ft.shapes_["textures"][0]) if "textures" in blocks else None
        self.mean = np.asarray(model.code_mean_, np.float64)
        std = np.asarray(model.code_std_, np.float64)
        self.std = np.where(std > 0, std, 1.0)  # a dead component still gets a usable slider
        self.n_components = len(self.mean)

    def encode(self, vertices: np.ndarray, texture: np.ndarray | None = None) -> np.ndarray:
        """(V, 3) vertices (and the model's (s, s, 3) texture if it models textures) -> codes (k,)."""
        from .. import latent as L

        if self.texture_size is None:
            return np.asarray(L.encode_vertices(self.model, vertices[None])[0], np.float64)
        return np.asarray(L.encode(self.model, {"vertices": vertices[None], "textures": texture[None]})[0],
                          np.float64)

    def decode(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """codes (k,) -> (vertices (V, 3) float32, texture (s, s, 3) uint8 or None)."""
        from .. import latent as L

        if self.texture_size is None:
            return L.decode_vertices(self.model, codes[None])[0], None
        out = L.decode(self.model, codes[None])
        return out["vertices"][0], out["textures"][0]


# -- the designer sliders' linear basis -----------------------------------------------------------
class SliderBasis:
    """The rig's slider slopes at one avatar, to read vertex changes as slider changes.

    Each numeric shape slider has two one-sided slopes at the base avatar (the
    rig's defaults): raising it by ``h`` and lowering it by ``h``, a fraction
    ``step`` of its range (clipped to the range). MakeHuman's modifiers blend
    an ``incr`` target above neutral and a ``decr`` target below, linearly, so
    these slopes are exact; the macros' are local. :meth:`implied` is the
    ridge-damped least-squares mix of raises ``a`` and lowerings ``b`` that
    best reproduces a vertex change, reported as the net change ``a - b``.

    Parameters
    ----------
    step : float
        Each difference's length, as a fraction of the slider's range.
    ridge : float
        Relative Tikhonov damping of the solve (keeps near-collinear slopes finite).

    Attributes
    ----------
    columns_ : (P_geo,) int       the numeric shape sliders' columns
    spans_ : (P_geo,) float       their ranges (high - low), array units
    solve_ : (P_geo, 3V) float32  maps a flattened vertex change to normalised net slider changes
    """

    def __init__(self, step: float = 0.05, ridge: float = 1e-8):
        self.step, self.ridge = step, ridge

    def fit(self, rig, batch: int = 128) -> "SliderBasis":
        with one_blas_thread():  # small products: idle BLAS threads cost more than they give
            return self._fit(rig, batch)

    def _fit(self, rig, batch: int) -> "SliderBasis":
        # bools and categories have no slope to fit: their changes are not read from vertices
        numeric = np.array([s.kind in ("continuous", "integer") for s in rig.sliders])
        cols = np.flatnonzero(shape_sliders(rig) & numeric)
        lo, hi = rig.spec.lows(), rig.spec.highs()
        x0, span = rig.defaults(), hi - lo
        v0 = rig.vertices(x0).reshape(-1)
        ends = (np.minimum(x0[cols] + self.step * span[cols], hi[cols]),   # raised
                np.maximum(x0[cols] - self.step * span[cols], lo[cols]))   # lowered
        B = np.zeros((2 * len(cols), v0.size), np.float64)  # rows: raise slopes, then lowering slopes
        for side, end in enumerate(ends):
            for i in range(0, len(cols), batch):
                k = np.arange(i, min(i + batch, len(cols)))
                S = np.repeat(x0[None], len(k), axis=0)
                S[np.arange(len(k)), cols[k]] = end[k]
                dv = rig.vertices(S).reshape(len(k), -1) - v0
                h = np.abs(end[k] - x0[cols[k]]) / span[cols[k]]
                B[side * len(cols) + k] = np.divide(dv, h[:, None], out=np.zeros_like(dv), where=h[:, None] > 0)
        BBt = B @ B.T
        damp = self.ridge * np.trace(BBt) / len(B) * np.eye(len(B))
        ab = np.linalg.solve(BBt + damp, B)               # vertex change -> (raises a, lowerings b)
        self.solve_ = (ab[:len(cols)] - ab[len(cols):]).astype(np.float32)
        self.columns_ = cols
        self.spans_ = span[cols]
        self.n_sliders_ = len(rig.sliders)
        return self

    def implied(self, dV: np.ndarray) -> np.ndarray:
        """(V, 3) vertex change -> (P,) slider changes in array units (0 for non-shape sliders)."""
        out = np.zeros(self.n_sliders_)
        out[self.columns_] = (self.solve_ @ np.asarray(dV, np.float32).ravel()) * self.spans_
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {"columns": self.columns_, "spans": self.spans_, "solve": self.solve_,
                "n_sliders": np.array(self.n_sliders_)}

    @classmethod
    def from_arrays(cls, arrays, step: float = 0.05) -> "SliderBasis":
        self = cls(step)
        self.columns_, self.spans_ = np.asarray(arrays["columns"]), np.asarray(arrays["spans"])
        self.solve_, self.n_sliders_ = np.asarray(arrays["solve"]), int(arrays["n_sliders"])
        return self


# -- start-up models, cached ---------------------------------------------------------------------
def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "avatar" / "explorer"


def rig_fingerprint(rig) -> str:
    """sha256 of what decides the rig's meshes: its YAML file and the template's arrays."""
    h = hashlib.sha256()
    source = Path(rig.spec.source)
    h.update(source.read_bytes() if source.is_file() else repr(rig.spec).encode())
    for a in (rig.template.vertices, rig.template.faces):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _key(rig, **settings) -> str:
    from .. import latent as L

    text = rig_fingerprint(rig) + repr(sorted(settings.items())) + L.FORMAT
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def quick_model(rig, n_avatars: int = 1000, n_components: int = 16, seed: int = 0,
                cache_dir: str | Path | None = None, log=print):
    """A PCA of ``n_avatars`` random avatars' vertices, fitted once and cached as ``.npz``.

    The cache file is keyed by the rig fingerprint and these settings, so a
    changed rig or setting refits. Returns ``(model, path)``.
    """
    from .. import latent as L

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = _key(rig, kind="pca", n=n_avatars, k=n_components, seed=seed)
    path = cache / f"quick-pca-{key}.npz"
    if path.exists():
        try:
            return L.load(path), path
        except (L.LatentFileError, OSError, ValueError) as err:
            log(f"explorer: refitting, the cached model {path} is unusable ({err})")
    log(f"explorer: fitting a {n_components}-component PCA on {n_avatars} random avatars (cached in {path})")
    with one_blas_thread():  # on a shared machine, spinning BLAS threads slow this several-fold
        V = rig.vertices(rig.sample(n_avatars, seed=seed))
        model = L.fit_vertices(V, kind="pca", n_components=n_components, random_state=seed)
    del V
    cache.mkdir(parents=True, exist_ok=True)
    L.save(model, path, metadata={"explorer": {"rig": rig.spec.name, "n_avatars": n_avatars, "seed": seed}})
    return model, path


def cached_basis(rig, step: float = 0.05, cache_dir: str | Path | None = None) -> SliderBasis:
    """:class:`SliderBasis` fitted once per rig and cached as ``.npz`` beside the quick models."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"basis-{_key(rig, kind='slopes', step=step)}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                return SliderBasis.from_arrays(dict(f), step)
        except (OSError, ValueError, KeyError):
            pass  # damaged: refit below
    basis = SliderBasis(step).fit(rig)
    from ..export import atomic_write

    atomic_write(path, lambda f: np.savez(f, **basis.arrays()))
    return basis


__all__ = ["LatentView", "SliderBasis", "cached_basis", "default_cache_dir", "quick_model", "rig_fingerprint",
           "shape_sliders", "texture_sliders"]
