"""avatar: a procedural 3D character creator driven by readable YAML sliders.

    import avatar
    rig = avatar.load_rig()                       # configs/rigs/humanoid.yaml
    S = rig.sample(1000, seed=0)                  # (1000, P) slider values
    V = rig.vertices(S)                           # (1000, V, 3) float32
    mesh = rig.mesh(avatar.load_preset("configs/avatars/knight.yaml"))
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from avatar.spec.config import ConfigError
from avatar.body.rig import DEFAULT_RIG, Rig, load_rig
from avatar.fit import fit_body

__all__ = ["ConfigError", "Rig", "load_rig", "load_preset", "render", "fit_body", "DEFAULT_RIG"]
__version__ = "0.1.0"


def load_preset(path: str | Path, rig: Rig | None = None) -> dict[str, object]:
    """Read a preset YAML, validated against ``rig`` (default: the humanoid rig).

    Returns the readable slider values the file sets (slider name -> value);
    ``rig.mesh``, ``rig.values`` and ``rig.vertices`` take it directly, and
    every slider it does not list keeps its default.
    """
    from avatar.spec.sliders import load_preset as _load

    spec = rig.spec if rig is not None else _default_spec()
    return _load(path, spec)


def render(rig: Rig, S, views=("front",), size=256, **kw):
    """Render avatars headless: (n, n_views, size, size, 3) uint8 images.

    ``S``: (P,) or (n, P) slider values, or a preset mapping; ``views``: front,
    three_quarter, side, back, face, profile or yaw degrees. Other options
    (projection, background, frame, backend, ...) are those of
    :func:`avatar.rendering.core.render`; pyrender is imported only on first use.
    """
    from avatar.rendering.core import render as _render

    return _render(rig, S, views=views, size=size, **kw)


@lru_cache(maxsize=1)
def _default_spec():
    from avatar.spec.sliders import load_rig_spec

    return load_rig_spec(DEFAULT_RIG)
