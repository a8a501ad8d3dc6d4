"""avatar: a procedural 3D character creator driven by readable YAML sliders.

    import avatar
    rig = avatar.load_rig()                       # configs/rigs/humanoid.yaml
    S = rig.sample(1000, seed=0)                  # (1000, P) slider values
    V = rig.vertices(S)                           # (1000, V, 3) float32
    mesh = rig.mesh(avatar.load_preset("configs/avatars/knight.yaml"))
"""
from __future__ import annotations


def _blas_with_batch_free_rows() -> None:
    """Pick OpenBLAS's SkylakeX kernels on AMD processors with AVX-512, before numpy loads OpenBLAS.

    Why: OpenBLAS's Haswell sgemm kernel, which numpy's OpenBLAS takes on AMD Zen 4 (and which some
    hosts pin with OPENBLAS_CORETYPE=Haswell), rounds a row of a product by its place in the batch
    there (rows 0-5 and 6-11 of every 12 differ in the last bit), so an avatar's texture bytes would
    depend on the batch it is computed in and a dataset's on its worker count. The SkylakeX kernel, which these
    processors run, gives every row the same bytes. Nothing changes when numpy is already imported,
    on other processors, or when OPENBLAS_CORETYPE names another kernel.
    """
    import os
    import sys

    pinned = os.environ.get("OPENBLAS_CORETYPE")
    if "numpy" in sys.modules or (pinned is not None and pinned.lower() not in ("haswell", "zen")):
        return
    try:
        with open("/proc/cpuinfo") as f:
            head = f.read(1 << 16)
    except OSError:
        return
    flags = next((line.split(":", 1)[1].split() for line in head.splitlines() if line.startswith("flags")), [])
    if "AuthenticAMD" in head and {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= set(flags):
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"


_blas_with_batch_free_rows()

from functools import lru_cache  # noqa: E402
from pathlib import Path  # noqa: E402

from avatar.spec.config import ConfigError  # noqa: E402
from avatar.body.rig import DEFAULT_RIG, Rig, load_rig  # noqa: E402
from avatar.fit import fit_body  # noqa: E402

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
