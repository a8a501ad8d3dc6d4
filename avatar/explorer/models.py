"""The models the explorer runs on: the latent model as it drives it, and the designer sliders' basis.

:class:`LatentView` encodes and decodes one avatar through a fitted
:mod:`avatar.latent` model, fitted once at start-up and cached as ``.npz`` (no
pickles) under a key of the rig's fingerprint and the settings (:func:`quick_model`).
:class:`SliderBasis` reads a vertex change as the designer slider changes that
would make it, by a step of the rig's fit (:mod:`avatar.fit`).
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


# -- the designer sliders a vertex change implies ------------------------------------------------
class SliderBasis:
    """Reads a vertex change as the designer slider changes that make it: one step of the rig's fit.

    :meth:`implied` is a Gauss-Newton step of :mod:`avatar.fit` (:func:`avatar.fit.implied_change`)
    from the designer avatar on show towards it plus the change, on the rig's exact Jacobian there
    (the local sliders' fields, the macros' secants to their ramps' knots), over the numeric shape
    sliders (not the pose, not bools or categories). It replaces the single linear map of slopes at
    the default avatar, by finite differences, that this class used to fit once: a move from an
    avatar far from the default now reads with that avatar's own macro slopes.
    """

    def fit(self, rig) -> "SliderBasis":
        """Build the rig's constant local Jacobian now (cached with the rig; under a second)."""
        from ..fit.linear import local_basis

        self.rig = rig
        numeric = np.array([s.kind in ("continuous", "integer") for s in rig.sliders])
        self.free_ = [s.name for s, ok in zip(rig.sliders, shape_sliders(rig) & numeric) if ok]
        local_basis(rig)
        return self

    def implied(self, dV: np.ndarray, values: np.ndarray, vertices: np.ndarray | None = None) -> np.ndarray:
        """(V, 3) vertex change from the avatar ``values`` (P,) -> (P,) slider changes in array units
        (0 for the sliders not read). ``vertices``: ``rig.vertices(values)`` if already at hand."""
        from ..fit import implied_change

        base = self.rig.vertices(values) if vertices is None else vertices
        return implied_change(self.rig, values, np.asarray(base, np.float64) + dV, free=self.free_)


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


__all__ = ["LatentView", "SliderBasis", "default_cache_dir", "quick_model", "rig_fingerprint",
           "shape_sliders", "texture_sliders"]
