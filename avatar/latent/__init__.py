"""The latent lab: compact learned latents (PCA, ICA, factor analysis, autoencoders) over avatars.

    import avatar.latent as L
    m = L.PCA(n_components=32, random_state=0).fit(X)     # X (n, d); also IncrementalPCA, ICA, FactorAnalysis;
    Z = m.transform(X); X_hat = m.inverse_transform(Z)    # with torch: Autoencoder, VAE, ConvAE, ConvVAE (images)
    L.save(m, "m.npz"); m = L.load("m.npz")               # .npz (no pickles) + m.yaml

    m = L.fit_vertices(V, kind="pca", n_components=16)    # V (n, n_vertices, 3) metres
    Z = L.encode_vertices(m, V); V_hat = L.decode_vertices(m, Z)
    m.code_mean_, m.code_std_                             # latent sliders run -3..+3 sd

    exp = L.load_experiment("models/faces-pca.npz")       # what `avatar fit` wrote
    Z = exp.codes("pca", exp.test)                        # codes of dataset rows

See :mod:`avatar.latent.models`, :mod:`.nets` (the PyTorch training loop),
:mod:`.vae`, :mod:`.conv`, :mod:`.features`, :mod:`.persist`,
:mod:`.experiment` and :mod:`.evaluate`.
"""
from __future__ import annotations

import numpy as np

from .features import FeatureTransform
from .models import KINDS, PCA, Autoencoder, FactorAnalysis, ICA, IncrementalPCA, LatentModel, model_class
from .persist import FORMAT, LatentFileError, load, load_all, load_file, save, save_models
from .vae import VAE, torch_available
from .conv import ConvAE, ConvVAE

__all__ = ["PCA", "IncrementalPCA", "ICA", "FactorAnalysis", "Autoencoder", "VAE", "ConvAE", "ConvVAE",
           "torch_available",
           "LatentModel", "KINDS", "FORMAT",
           "FeatureTransform", "LatentFileError", "model_class", "save", "save_models", "load", "load_all",
           "load_file", "fit_vertices", "encode_vertices", "decode_vertices", "encode", "decode",
           "decode_textures", "decode_renders", "load_experiment", "make_model"]


def make_model(kind: str, n_components: int, random_state=0, **params) -> LatentModel:
    """A model of ``kind`` ('pca', 'incremental_pca', 'ica', 'factor_analysis', 'autoencoder', 'vae',
    'conv_ae', 'conv_vae'; fitting the last four needs PyTorch, loading and running them does not)."""
    try:
        cls = model_class(kind)
    except KeyError:
        from avatar.spec.config import did_you_mean

        raise ValueError(f"unknown model kind {kind!r}{did_you_mean(kind, KINDS)}; kinds: {', '.join(KINDS)}") \
            from None
    return cls(n_components=n_components, random_state=random_state, **params)


def fit_vertices(V, kind: str = "pca", n_components: int = 16, random_state=0, align: bool = False,
                 **params) -> LatentModel:
    """Fit a latent model on vertices V (n, n_vertices, 3) float (metres).

    The model carries its feature transform (``features_``: centring on the
    mean shape, optional rigid alignment), so :func:`encode_vertices` and
    :func:`decode_vertices` take and give vertices.
    """
    V = np.asarray(V)
    if V.ndim != 3 or V.shape[-1] != 3:
        raise ValueError(f"expected vertices of shape (n, n_vertices, 3), got {V.shape}")
    ft = FeatureTransform([{"name": "vertices", "align": align}]).fit_arrays({"vertices": V})
    model = make_model(kind, n_components, random_state, **params).fit(ft.forward({"vertices": V}))
    model.features_ = ft
    return model


def encode(model: LatentModel, arrays: dict) -> np.ndarray:
    """{block: (n, ...) raw arrays} -> codes (n, k) float64, through the model's feature transform."""
    if model.features_ is None:
        raise ValueError("this model was fitted on a plain matrix (no feature transform); use model.transform")
    return model.transform(model.features_.forward(arrays))


def decode(model: LatentModel, Z) -> dict[str, np.ndarray]:
    """codes (n, k) -> {"vertices": (n, V, 3) float32 metres, "textures"/"renders": uint8} as modelled."""
    if model.features_ is None:
        raise ValueError("this model was fitted on a plain matrix (no feature transform); use "
                         "model.inverse_transform")
    return model.features_.inverse(model.inverse_transform(Z))


def encode_vertices(model: LatentModel, V) -> np.ndarray:
    """V (n, n_vertices, 3) -> codes (n, k) float64. A model without a feature transform takes the
    flattened coordinates as they are."""
    V = np.asarray(V)
    single = V.ndim == 2
    V = V[None] if single else V
    if model.features_ is None:
        Z = model.transform(V.reshape(len(V), -1))
    else:
        others = [k for k in model.features_.names if k != "vertices"]
        if "vertices" not in model.features_.names or others:
            raise ValueError(f"the model's features are {model.features_.names}, not vertices alone; "
                             "use avatar.latent.encode(model, {name: array, ...})")
        Z = encode(model, {"vertices": V})
    return Z[0] if single else Z


def decode_vertices(model: LatentModel, Z) -> np.ndarray:
    """codes (n, k) -> vertices (n, n_vertices, 3) float32 in metres ((V, 3) for one code (k,))."""
    Z = np.asarray(Z, np.float64)
    single = Z.ndim == 1
    Z = np.atleast_2d(Z)
    if model.features_ is None:
        V = model.inverse_transform(Z).reshape(len(Z), -1, 3).astype(np.float32)
    else:
        V = decode(model, Z).get("vertices")
        if V is None:
            raise ValueError(f"the model does not model vertices (features: {model.features_.names})")
    return V[0] if single else V


def decode_textures(model: LatentModel, Z) -> np.ndarray:
    """codes (n, k) -> textures (n, s, s, 3) uint8 (s: the modelled size); ValueError if not modelled."""
    return _decode_block(model, Z, "textures")


def decode_renders(model: LatentModel, Z) -> np.ndarray:
    """codes (n, k) -> renders (n, views, s, s, 3) uint8; ValueError if not modelled."""
    return _decode_block(model, Z, "renders")


def _decode_block(model, Z, name):
    Z = np.asarray(Z, np.float64)
    single = Z.ndim == 1
    if model.features_ is None or name not in model.features_.names:
        raise ValueError(f"the model does not model {name}")
    out = decode(model, np.atleast_2d(Z))[name]
    return out[0] if single else out


def load_experiment(path):
    """An experiment's model file with its dataset and split; see :class:`avatar.latent.experiment.Experiment`."""
    from .experiment import load_experiment as _load

    return _load(path)
