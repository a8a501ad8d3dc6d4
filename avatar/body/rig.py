"""The rig: slider values in, vertices of one fixed topology out, batched.

An avatar's vertices are computed in four steps, all batched over avatars:

1. features   F = phi(S)       (n, K)  each slider's value as 0..1 strengths
                                       (above / below its default, per category)
2. linear     X = T + F @ D    (n, V, 3) D holds each feature's displacement
                                       field; evaluated block-sparsely, since
                                       most fields are zero on most vertices
3. bend       rotations about joints (posture), angle = linear in the features
4. stature    stand on y = 0, scale to the exact height slider value

The fields D depend only on the template and the rig YAML, so they are built
once when the rig is loaded.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from avatar.body import deformers
from avatar.spec.sliders import RigSpec, SliderSpec, load_rig_spec
from avatar.body.template import Template, load as load_template

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RIG = ROOT / "configs" / "rigs" / "humanoid.yaml"
BLOCK = 512  # vertices per block of the block-sparse blend


class Rig:
    """A character creator: a rig spec (sliders) acting on a template mesh.

    Parameters
    ----------
    spec : RigSpec
        The validated sliders (from :func:`avatar.spec.sliders.load_rig_spec`).
    template : Template
        The fixed-topology mesh they deform.
    """

    def __init__(self, spec: RigSpec, template: Template):
        self.spec = spec
        self.template = template
        self._frame = deformers.Frame(template)
        self._build()

    # -- sliders ---------------------------------------------------------
    @property
    def sliders(self) -> tuple[SliderSpec, ...]:
        return self.spec.sliders

    @property
    def slider_names(self) -> list[str]:
        return self.spec.slider_names

    def defaults(self) -> np.ndarray:
        """(P,) float64: the default avatar's slider values."""
        return self.spec.defaults()

    def sample(self, n: int, seed: int = 0, start: int = 0) -> np.ndarray:
        """(n, P) float64 slider values drawn from each slider's distribution.

        Row i depends only on ``(seed, start + i)``.
        """
        return self.spec.sample(n, seed, start)

    def values(self, x) -> np.ndarray:
        """(P,) or (n, P) slider values from an array, or a mapping of readable values.

        Arrays are checked like presets: every value finite and inside its
        slider's range, bools and categories whole numbers. ValueError names
        the first offending slider.
        """
        if isinstance(x, Mapping):
            return self.spec.to_vector(x)
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim not in (1, 2) or arr.shape[-1] != len(self.sliders):
            raise ValueError(f"expected (P,) or (n, P) slider values with P = {len(self.sliders)}, "
                             f"got shape {arr.shape}")
        rows = np.atleast_2d(arr)
        bad = ~np.isfinite(rows) | (rows < self.spec.lows()) | (rows > self.spec.highs())
        bad |= self._whole & (rows != np.round(rows))
        if bad.any():
            i, j = np.argwhere(bad)[0]
            s = self.sliders[j]
            raise ValueError(f"avatar {i}: {s.name} = {rows[i, j]:g} is not a valid value "
                             f"(range {self.spec.lows()[j]:g} to {self.spec.highs()[j]:g}"
                             f"{', whole numbers' if self._whole[j] else ''})")
        return arr

    # -- geometry --------------------------------------------------------
    @property
    def faces(self) -> np.ndarray:
        """(F, 3) int64, identical for every avatar."""
        return self.template.faces

    @property
    def n_vertices(self) -> int:
        return len(self.template.vertices)

    def features(self, S: np.ndarray) -> np.ndarray:
        """(n, K) float32 feature strengths of slider values ``S`` (n, P)."""
        S = np.atleast_2d(S)
        F = np.zeros((len(S), self._n_features), dtype=np.float32)
        up = np.clip((S[:, self._cont] - self._dflt) / self._span_up, 0.0, None)
        down = np.clip((self._dflt - S[:, self._cont]) / self._span_down, 0.0, None)
        F[:, self._col_up] = up[:, self._has_up]
        F[:, self._col_down] = down[:, self._has_down]
        for col, j, value in self._onehot:  # bools and categories: a loop over sliders
            F[:, col] = S[:, j] == value
        return F

    def vertices(self, S, chunk: int = 256) -> np.ndarray:
        """(n, V, 3) float32 vertex positions for slider values ``S`` (n, P)."""
        S = self.values(S)
        single = S.ndim == 1
        S = np.atleast_2d(S)
        out = np.empty((len(S), self.n_vertices, 3), dtype=np.float32)
        for i in range(0, len(S), chunk):
            out[i:i + chunk] = self._chunk(S[i:i + chunk])
        return out[0] if single else out

    def textures(self, S, size: int = 512) -> np.ndarray:
        """(n, size, size, 3) uint8 UV textures for slider values ``S`` (n, P); (size, size, 3) for (P,)."""
        from avatar.skin.texture import textures

        S = self.values(S)
        out = textures(self.template, self.spec, np.atleast_2d(S), size)
        return out[0] if S.ndim == 1 else out

    def mesh(self, values=None, textured: bool = True, texture_size: int = 1024):
        """A ``trimesh.Trimesh`` of one avatar.

        ``values`` is a (P,) array, a mapping of readable slider values (a
        preset), or None for the default avatar. By default the mesh carries
        UVs and a PBR material with the avatar's texture; for that its seam
        vertices are split (one UV per vertex, as glTF needs), so trimesh
        counts the seams as open: ``metadata["solid_index"]`` maps each vertex
        to its vertex of the solid. ``textured=False`` gives the watertight
        solid itself, vertex for vertex as :meth:`vertices` returns it.
        """
        import trimesh

        from avatar.export import textured_mesh

        x = self.defaults() if values is None else self.values(values)
        verts = self.vertices(x).astype(np.float64)
        if textured:
            mesh = textured_mesh(verts, self.template, self.textures(x, texture_size))
            mesh.metadata["parts"] = self.template.parts[self.template.export_index]
            return mesh
        mesh = trimesh.Trimesh(verts, self.faces, process=False)
        mesh.metadata["parts"] = self.template.parts
        return mesh

    # -- internals -------------------------------------------------------
    def _chunk(self, S: np.ndarray) -> np.ndarray:
        G = self._augmented_features(S)
        X = np.empty((len(S), self.n_vertices * 3), dtype=np.float32)
        for cols, active, D in self._blocks:
            np.matmul(G[:, active], D, out=X[:, cols])
        return X.reshape(len(S), self.n_vertices, 3)

    def _augmented_features(self, S: np.ndarray) -> np.ndarray:
        """(n, K + 6J + 2) float32: features, angle powers, rest, floor; times the stature scale."""
        F = self.features(S)
        angles = np.deg2rad(F @ self._bend_amounts)                              # (n, J)
        powers = angles[:, :, None] ** np.arange(1, deformers.BEND_ORDER + 1)   # (n, J, 6)
        ones = np.ones((len(S), 1), np.float32)
        G = np.concatenate([F, powers.reshape(len(S), -1), ones, 0 * ones], axis=1)
        # the crown's and the soles' heights: the same product on a few columns
        y = G @ self._probe                                                     # (n, 1 + soles)
        floor = y[:, 1:].min(axis=1)
        scale = np.ones(len(S))
        if self._stature is not None:
            scale = deformers.stature_scale(y[:, 0], floor, S[:, self._stature] / 100.0)
        G[:, -1] = -floor
        return (G * scale[:, None]).astype(np.float32)

    def _build(self) -> None:
        frame, sliders = self._frame, self.sliders
        fields, bend_rows = [], []  # per feature: (V, 3) field; [(bend effect, degrees)]
        self._onehot: list[tuple[int, int, float]] = []
        cont = [j for j, s in enumerate(sliders) if s.kind in ("continuous", "integer")]
        self._cont = np.array(cont, dtype=np.int64)
        self._dflt = np.array([sliders[j].default for j in cont])
        self._span_up = np.array([max(sliders[j].max - sliders[j].default, 1e-12) for j in cont])
        self._span_down = np.array([max(sliders[j].default - sliders[j].min, 1e-12) for j in cont])
        has_up, has_down, col_up, col_down = [], [], [], []
        self._stature = None
        self._whole = np.array([s.kind in ("integer", "bool", "categorical") for s in sliders])

        def add_feature(effects, at_min=False) -> int:
            field = np.zeros((self.n_vertices, 3))
            bends = []
            for e in effects:
                if e["deformer"] in deformers.LINEAR:
                    field += deformers.displacement(frame, e, at_min)
                elif e["deformer"] == "bend":
                    bends.append((e, float(deformers.effect_amount(e, at_min))))
            fields.append(field)
            bend_rows.append(bends)
            return len(fields) - 1

        for j, s in enumerate(sliders):
            if s.kind in ("continuous", "integer"):
                if any(e["deformer"] == "stature" for e in s.effects):
                    self._stature = j
                shaping = [e for e in s.effects if e["deformer"] != "stature"]
                has_up.append(bool(shaping) and s.max > s.default)
                has_down.append(bool(shaping) and s.min < s.default)
                if has_up[-1]:
                    col_up.append(add_feature(shaping))
                if has_down[-1]:
                    col_down.append(add_feature(shaping, at_min=True))
            elif s.kind == "bool" and s.effects:
                self._onehot.append((add_feature(s.effects), j, 1.0))
            elif s.kind == "categorical":
                for c, name in enumerate(s.categories):
                    if s.effects.get(name):
                        self._onehot.append((add_feature(s.effects[name]), j, float(c)))
        self._has_up, self._has_down = np.array(has_up, bool), np.array(has_down, bool)
        self._col_up, self._col_down = np.array(col_up, np.int64), np.array(col_down, np.int64)
        self._n_features = len(fields)
        # rows of the one big matrix: features, bend powers, rest pose, floor offset
        bend_fields = self._bend_setup(bend_rows)
        floor_field = np.zeros((self.n_vertices, 3))
        floor_field[:, 1] = 1.0
        rows = fields + bend_fields + [self.template.vertices, floor_field]
        D = np.stack(rows).reshape(len(rows), -1).astype(np.float32)
        self._blocks = self._block_sparse(D)
        # the crown (top of the skull) and the feet give stature and floor
        y = self.template.vertices[:, 1]
        crown = int(np.argmax(np.where(self.template.part_mask("head"), y, -np.inf)))
        soles = np.flatnonzero(self.template.part_mask("foot_l", "foot_r"))  # the lowest is one of them
        self._probe = D[:, 3 * np.concatenate([[crown], soles]) + 1]

    def _bend_setup(self, bend_rows) -> list[np.ndarray]:
        """One joint per distinct (bone, axis); each feature adds degrees to it."""
        keys: dict = {}
        fields, amounts = [], []
        for k, bends in enumerate(bend_rows):
            for e, degrees in bends:
                key = (e["bone"], tuple(np.round(np.asarray(e["axis"], float), 9)))
                if key not in keys:
                    keys[key] = len(keys)
                    fields.extend(deformers.bend_fields(self._frame, e["bone"], e["axis"]))
                amounts.append((k, keys[key], degrees))
        self._bend_amounts = np.zeros((self._n_features, len(keys)), dtype=np.float32)
        for k, j, degrees in amounts:
            self._bend_amounts[k, j] += degrees
        return fields

    @staticmethod
    def _block_sparse(D: np.ndarray) -> list[tuple[slice, np.ndarray, np.ndarray]]:
        """Split (K, 3V) into column blocks holding only the features active there."""
        blocks = []
        for start in range(0, D.shape[1], 3 * BLOCK):
            cols = slice(start, min(start + 3 * BLOCK, D.shape[1]))
            active = np.flatnonzero(np.any(D[:, cols] != 0, axis=1))
            blocks.append((cols, active, np.ascontiguousarray(D[active, cols])))
        return blocks



def load_rig(path: str | Path | None = None) -> Rig:
    """Load a rig YAML (default: ``configs/rigs/humanoid.yaml``) and its template."""
    spec = load_rig_spec(Path(path) if path else DEFAULT_RIG)
    return Rig(spec, load_template(spec.template))
