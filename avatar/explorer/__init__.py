"""The explorer: a web page where designer sliders and a learned latent's sliders move one avatar.

    avatar explore --model models/faces-pca.npz     # http://127.0.0.1:8080
    avatar explore --port 9000                      # no model: a quick PCA, fitted once and cached

    from avatar.explorer import build_state, Explorer
    state = build_state(avatar.load_rig())          # the page's state and math, no server
    state.set_slider("body.weight", 80.0); state.code_sd     # where that avatar lands in the latent
    state.set_code(0, 2.0); state.implied                    # designer changes the latent move implies

:mod:`.state` holds the state and the math (pure, tested without a browser),
:mod:`.models` the latent model (fitted once, cached) and the rig fit reading its moves,
:mod:`.display` packs meshes for the browser, :mod:`.app` wires viser's widgets.
"""
from __future__ import annotations

from pathlib import Path

from .models import LatentView, SliderBasis, quick_model
from .state import ExplorerState, builtin_presets, preset_path, validate_code, validate_value


def build_state(rig, model=None, model_path: str | Path | None = None, model_name: str | None = None,
                n_components: int = 16, n_avatars: int = 1000, seed: int = 0,
                cache_dir: str | Path | None = None, preset_dir: str | Path | None = None,
                texture_size: int = 512, log=print) -> ExplorerState:
    """An :class:`ExplorerState` for ``rig`` and a latent model.

    The model is ``model`` (fitted), else the file ``model_path`` (one model of
    it: ``model_name``, default the first), else a quick PCA of ``n_avatars``
    random avatars' vertices, fitted once and cached under ``cache_dir``.
    """
    from .. import latent as L

    if model is not None:
        name = model_name or type(model).__name__
    elif model_path is not None:
        model = L.load(model_path, name=model_name)
        name = f"{Path(model_path).name}" + (f" [{model_name}]" if model_name else "")
    else:
        model, path = quick_model(rig, n_avatars=n_avatars, n_components=n_components, seed=seed,
                                  cache_dir=cache_dir, log=log)
        name = f"quick PCA of {n_avatars} random avatars"
    latent = LatentView(model, rig.n_vertices, name)
    basis = SliderBasis().fit(rig)
    return ExplorerState(rig, latent, basis, texture_size=texture_size, preset_dir=preset_dir,
                         presets=builtin_presets(preset_dir))


def __getattr__(name):
    if name in ("Explorer", "serve"):  # viser is imported only when a page is served
        from . import app

        return getattr(app, name)
    raise AttributeError(name)


__all__ = ["Explorer", "ExplorerState", "LatentView", "SliderBasis", "build_state", "builtin_presets",
           "preset_path", "quick_model", "serve", "validate_code", "validate_value"]
