"""The explorer's state and its math, with no web server attached.

One avatar is on show. It is either the *designer* avatar (the rig applied to
the slider values ``values``) or a *latent* avatar (the learned model's decoding
of ``codes``). Moving a designer slider rebuilds the designer avatar and encodes
it, so the latent sliders show where it lands; moving a latent slider decodes
the codes and asks which designer slider changes would make the same change:

    dV = decode(codes) - decode(anchor)          anchor: the codes of the designer
    ds = argmin ||dV - J(s) ds||^2, bounded      avatar the latent moves started from

where ``J(s)`` is the rig's exact Jacobian at the designer values ``s`` (one step of
:mod:`avatar.fit`, :class:`.models.SliderBasis`). Each bar of the page is one entry
of ``ds``: a disentangled model moves one bar, an entangled one many.

Every value that comes from the page goes through :func:`validate_value` or
:func:`validate_code` (ConfigError with the slider's name and range), and the
only file the page can write is ``<preset_dir>/<name>.yaml`` for a plain
``name`` (:func:`preset_path`).
"""
from __future__ import annotations

import functools
import math
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar.spec.config import ConfigError, Problems, describe, did_you_mean, format_number
from avatar.spec.sliders import preset_text
from ..threads import one_blas_thread
from .models import LatentView, SliderBasis, shape_sliders, texture_sliders

CODE_LIMIT = 3.0  # latent sliders run -3 .. +3 standard deviations of the training codes
PRESET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
PAGE = "<page>"  # the pseudo file name of values that come from the web page


# -- validation of what the page sends -----------------------------------------------------------
def validate_value(spec, name: object, value: object) -> float:
    """A readable slider value from the page -> array units, checked like a preset value.

    ``value`` is a number (continuous / integer sliders, in the slider's unit),
    a bool (bool sliders) or a category name. ConfigError (file ``<page>``)
    names the slider and its allowed range or categories.
    """
    if not isinstance(name, str) or name not in spec.slider_names:
        problems = Problems(PAGE)
        problems.add((), f"unknown slider {describe(name)}{did_you_mean(name, spec.slider_names)}")
        problems.raise_if_any()
    if isinstance(value, np.generic):
        value = value.item()
    values = spec.to_vector({name: value})  # raises ConfigError naming the slider
    return float(values[spec.index(name)])


def validate_code(n_components: int, index: object, value: object) -> tuple[int, float]:
    """A latent slider move from the page -> (component, value in sd); ConfigError if out of range."""
    problems = Problems(PAGE)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < n_components:
        problems.add(("latent",), f"component {describe(index)} does not exist (0 to {n_components - 1})")
        problems.raise_if_any()
    x = value.item() if isinstance(value, np.generic) else value
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        problems.add(("latent", int(index)), f"expected a number of standard deviations, got {describe(x)}")
    elif not -CODE_LIMIT <= x <= CODE_LIMIT:
        problems.add(("latent", int(index)), f"value {format_number(x)} is outside the allowed range "
                                             f"{-CODE_LIMIT:g} to {CODE_LIMIT:g} sd")
    problems.raise_if_any()
    return int(index), float(x)


def preset_path(preset_dir: str | Path | None, name: object) -> Path:
    """``<preset_dir>/<name>.yaml`` for a plain preset name; ConfigError for anything else.

    A name is letters, digits, ``-`` and ``_`` (up to 64, a trailing
    ``.yaml`` is dropped): no separators, no ``..``, no absolute paths, so a
    name from the page can only ever name a file directly inside the directory
    given on the command line.
    """
    problems = Problems(PAGE)
    if preset_dir is None:
        problems.add(("preset",), "saving presets is off: start the explorer with --preset-dir DIR")
        problems.raise_if_any()
    text = name.strip() if isinstance(name, str) else name
    if isinstance(text, str) and text.lower().endswith((".yaml", ".yml")):
        text = text.rsplit(".", 1)[0]
    if not isinstance(text, str) or not PRESET_NAME.fullmatch(text):
        problems.add(("preset",), f"bad preset name {describe(name)}: use 1 to 64 letters, digits, '-' or '_' "
                                  "(a name, not a path)")
        problems.raise_if_any()
    root = Path(preset_dir).resolve()
    path = root / f"{text}.yaml"
    if path.is_symlink() or path.resolve().parent != root:
        problems.add(("preset",), f"{path} is not a plain file inside {root}")
        problems.raise_if_any()
    return path


def readable(slider, x: float) -> str:
    """``175.0`` -> ``"175 cm"``, a category index -> its name."""
    if slider.kind in ("categorical", "bool"):
        return str(slider.readable(x)).lower()
    from avatar.spec.sliders import unit_suffix

    unit = unit_suffix(slider.unit)
    return f"{x:.3g}{unit}" if abs(x) < 100 else f"{x:.0f}{unit}"


def _one_thread(method):
    """Run a state edit with BLAS on one thread: one avatar's products are small, and waking idle
    BLAS threads on a busy machine costs 10 ms a product (measured), more than the whole update."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with one_blas_thread():
            return method(*args, **kwargs)

    return wrapper


# -- the state ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    """What an edit changed, so the page resends only that."""

    geometry: bool = False
    texture: bool = False
    codes: bool = False


class ExplorerState:
    """The avatar on show, its designer slider values and its latent codes.

    Parameters
    ----------
    rig : avatar.Rig
    latent : LatentView
    basis : SliderBasis
        Reads latent moves as designer slider changes (``SliderBasis().fit(rig)``).
    texture_size : int
        Pixels of the texture shown on the page.
    preset_dir : path or None
        The one directory presets may be saved to (None: saving is off).
    presets : mapping name -> path
        Presets the page may load by name (the page never sends a path).
    """

    @_one_thread
    def __init__(self, rig, latent: LatentView, basis: SliderBasis, texture_size: int = 512,
                 preset_dir: str | Path | None = None, presets: Mapping[str, Path] | None = None):
        self.rig, self.latent, self.basis = rig, latent, basis
        self.texture_size = int(texture_size)
        self.preset_dir = None if preset_dir is None else Path(preset_dir)
        self.presets = dict(presets or {})
        self._shape, self._paint = shape_sliders(rig), texture_sliders(rig)
        self._model_texture = None
        self._refresh_designer(rig.defaults(), geometry=True, texture=True)

    # -- read-only views ---------------------------------------------------------------------------
    @property
    def spec(self):
        return self.rig.spec

    @property
    def code_sd(self) -> np.ndarray:
        """(k,) the codes in standard deviations of the training codes (what the latent sliders show)."""
        return (self.codes - self.latent.mean) / self.latent.std

    def implied_values(self) -> np.ndarray:
        """(P,) designer values plus the implied changes, clipped to each slider's range."""
        x = np.clip(self.values + self.implied, self.spec.lows(), self.spec.highs())
        whole = np.array([s.kind == "integer" for s in self.rig.sliders])
        x[whole] = np.round(x[whole])
        return x

    # -- designer edits ----------------------------------------------------------------------------
    @_one_thread
    def set_slider(self, name: str, value: object) -> Change:
        """Set one designer slider from its readable value (validated); returns what changed."""
        x = validate_value(self.spec, name, value)
        j = self.spec.index(name)
        if self.mode == "designer" and x == self.values[j]:
            return Change()
        values = self.values.copy()
        values[j] = x
        from_latent = self.mode == "latent"
        return self._refresh_designer(values, geometry=bool(self._shape[j]) or from_latent,
                                      texture=bool(self._paint[j]) or (from_latent and self._decoded_texture))

    @_one_thread
    def set_values(self, values) -> Change:
        """Set every designer slider: a (P,) array or a mapping of readable values (validated)."""
        x = self.rig.values(values) if not isinstance(values, Mapping) else self.spec.to_vector(values)
        if np.asarray(x).ndim != 1:
            raise ValueError("set_values takes one avatar's (P,) values")
        return self._refresh_designer(np.array(x, np.float64), geometry=True, texture=True)

    def reset(self) -> Change:
        return self.set_values(self.rig.defaults())

    def randomize(self, seed: int) -> Change:
        """The avatar ``seed`` of the rig's random stream (index 0)."""
        return self.set_values(self.rig.sample(1, seed=int(seed))[0])

    def apply_implied(self) -> Change:
        """Make the designer sliders what the latent move implies (clipped to their ranges)."""
        return self.set_values(self.implied_values())

    def _refresh_designer(self, values: np.ndarray, geometry: bool, texture: bool) -> Change:
        """Show the designer avatar ``values``; nothing changes if its mesh is not finite."""
        from ..checks import check_finite

        if geometry:
            vertices = self.rig.vertices(values)
            check_finite(vertices, "the designer avatar")  # NonFiniteError: the state stays as it was
        if geometry:  # before the values: a reader that sees the new values sees their mesh
            self.vertices = self._designer_vertices = vertices
        self.values = values
        self.mode = "designer"
        self._decoded_texture = False
        if texture:
            self.texture = self.rig.textures(self.values, self.texture_size)
            if self.latent.texture_size is not None:
                self._model_texture = self.rig.textures(self.values, self.latent.texture_size)
        encode = geometry or (texture and self.latent.texture_size is not None) or not hasattr(self, "codes")
        if encode:
            self.codes = self.latent.encode(self.vertices, self._model_texture)
            self.anchor = self.codes.copy()
            decoded, _ = self.latent.decode(self.codes)
            self._anchor_vertices = decoded
            # how far the model's reconstruction of this avatar is from it: RMS, mm
            self.reconstruction_mm = float(np.sqrt(np.mean(np.sum((decoded - self.vertices) ** 2, -1))) * 1e3)
        self.implied = np.zeros(len(self.values))
        return Change(geometry=geometry, texture=texture, codes=encode)

    # -- latent edits ------------------------------------------------------------------------------
    def set_code(self, index: object, sd: object) -> Change:
        """Set latent component ``index`` to ``sd`` standard deviations (validated)."""
        i, x = validate_code(self.latent.n_components, index, sd)
        codes = self.codes.copy()
        codes[i] = self.latent.mean[i] + x * self.latent.std[i]
        return self.set_codes(codes)

    @_one_thread
    def set_codes(self, codes) -> Change:
        """Show the decoding of ``codes`` (k,) and the designer slider changes it implies."""
        codes = np.asarray(codes, np.float64)
        if codes.shape != (self.latent.n_components,) or not np.isfinite(codes).all():
            raise ValueError(f"expected {self.latent.n_components} finite codes, got shape {codes.shape}")
        from ..checks import check_finite

        vertices, texture = self.latent.decode(codes)
        check_finite(vertices, "the latent decoding")  # NonFiniteError (a ValueError): refused, state unchanged
        # read before the state changes: a reader that sees the latent mode sees its implied changes
        self.implied = self.basis.implied(vertices - self._anchor_vertices, self.values, self._designer_vertices)
        self.mode = "latent"
        self.codes = codes
        self.vertices = vertices
        had_decoded = self._decoded_texture
        if texture is not None:
            self.texture, self._decoded_texture = texture, True
        return Change(geometry=True, texture=texture is not None or had_decoded, codes=True)

    # -- presets and files -------------------------------------------------------------------------
    def preset_yaml(self, name: str = "explorer") -> str:
        """The designer sliders as preset YAML text."""
        return preset_text(self.spec, self.values, name)

    def save_preset(self, name: object) -> Path:
        """Write the designer sliders to ``<preset_dir>/<name>.yaml`` (see :func:`preset_path`)."""
        from ..export import atomic_write

        path = preset_path(self.preset_dir, name)
        text = self.preset_yaml(path.stem)
        atomic_write(path, lambda f: f.write(text.encode()))
        self.presets[path.stem] = path
        return path

    def load_preset(self, name: object) -> Change:
        """Load a preset the page lists, by name."""
        if not isinstance(name, str) or name not in self.presets:
            problems = Problems(PAGE)
            problems.add(("preset",), f"no preset {describe(name)}{did_you_mean(name, self.presets)}")
            problems.raise_if_any()
        from avatar.spec.sliders import load_preset

        return self.set_values(load_preset(self.presets[name], self.spec))

    def load_preset_text(self, text: str, file: str = "<upload>") -> Change:
        """Load preset YAML text (an uploaded file), validated; nothing changes if it is bad."""
        from avatar.spec.sliders import preset_from_text

        return self.set_values(preset_from_text(text, self.spec, file))

    @_one_thread
    def glb(self, texture_size: int = 1024) -> bytes:
        """The avatar on show as a GLB (as ``avatar make`` writes it; latent avatars record no sliders)."""
        from ..export import write_mesh

        designer = self.mode == "designer"
        texture = self.rig.textures(self.values, texture_size) if designer else self.texture
        sliders = {s.name: s.readable(v) for s, v in zip(self.rig.sliders, self.values)} if designer else {}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "avatar.glb"
            write_mesh(path, self.vertices, self.rig.template, sliders, texture)
            return path.read_bytes()


def builtin_presets(extra_dir: str | Path | None = None) -> dict[str, Path]:
    """Preset name -> file: ``configs/avatars/*.yaml``, then the preset directory's (which win)."""
    from avatar.body.rig import ROOT

    out = {p.stem: p for p in sorted((ROOT / "configs" / "avatars").glob("*.yaml"))}
    if extra_dir is not None and Path(extra_dir).is_dir():
        out.update({p.stem: p for p in sorted(Path(extra_dir).glob("*.yaml"))
                    if PRESET_NAME.fullmatch(p.stem) and p.is_file() and not p.is_symlink()})
    return out


__all__ = ["CODE_LIMIT", "Change", "ConfigError", "ExplorerState", "builtin_presets", "preset_path", "preset_text",
           "readable", "validate_code", "validate_value"]
