"""The rig: slider values in, vertices of MakeHuman's body out, batched over avatars.

An avatar's vertices are computed in six steps, all batched:

1. macros    M = macro values (n, 11) in [0, 1]    gender, age, ... by MakeHuman 1.1's scales
             W = prod of factor ramps (n, Tm)      :mod:`avatar.body.macros`; ~90 of 564 non-zero
2. locals    F = strengths (n, K)                  each slider's value above / below its default
                                                   as 0..1 (modifiers: v/100 and -v/100; an
                                                   expression unit times each ethnic share)
3. blend     X = T + F @ D + W @ Dm  (n, B, 3)     a compiled kernel, by tiles of avatars and panels
                                                   of coordinates: a tile reads only the targets it
                                                   weights, a panel only the fields that move it
                                                   (:mod:`avatar.body.blend`, ``_blend_kernel``)
4. eyes      a UV sphere per eye, fitted to the blended helper eyeball (:mod:`avatar.body.eyes`)
5. floor     every avatar shifted to stand on y = 0
6. pose      bone ends regressed from the blended joint cubes, then forward kinematics and linear
             blend skinning by the pose sliders (:mod:`avatar.body.posing`, docs/pose.md)

``B`` are the blended vertices: base.obj's 13,380 body vertices, the two
helper eyeballs (144) and the helper vertices the skeleton's bone ends use
(the joint cubes, 974). The displacement matrices depend only on the assets
and the rig YAML, so they are built once when the rig is loaded.
"""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path

import numpy as np

from avatar.body import _blend_kernel, _weights_kernel, assets, blend, buffers, deformers, eyes, workers
from avatar.body.catalogue import target_keys
from avatar.body.macros import (FACTORS, VARIABLES, MacroBasis, age_order, factor_values, is_macro_target,
                                 pattern_key, years_to_age)
from avatar.body.targets import TargetTable, default_targets
from avatar.body.template import Template, load as load_template
from avatar.spec.sliders import RigSpec, SliderSpec, load_rig_spec

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RIG = ROOT / "configs" / "rigs" / "humanoid.yaml"
MACRO_DEFAULTS = np.array([0.5] * 8 + [1 / 3] * 3)  # MakeHuman's neutral macro values
RACE_FACTORS = slice(FACTORS.index("african"), FACTORS.index("caucasian") + 1)  # their shares among the factors
SPARSE_MACRO = 0.1  # macro targets moving less of the blend set than this are blended as local fields
LAYOUTS = 4  # field layouts kept for chunks that use few fields (_fields_used)
FIELDS_KEPT = 0.97  # a chunk's fields used, as a share of the pairs, above which all are blended (prior avatars
                    # leave 8 % of the pairs at 0: skipping them saved 4 % of the blend; a new layout costs 15 ms once)
_NO_ENDS = np.zeros((0, 0, 3), np.float32)  # _blend_kernel.ground's ends when none are wanted
MIN_SHARED = 32  # avatars a call at least to share its chunks among threads (workers.py)


def _threads(n: int) -> int:
    """The threads a call of ``n`` avatars shares its chunks among."""
    return workers.allowed() if n >= MIN_SHARED else 1


def _distinct(keys: list, dense: dict) -> tuple[MacroBasis, np.ndarray]:
    """The macro basis of ``keys`` and its distinct displacements (D, B, 3), in first-appearance order:
    MakeHuman's files repeat (197 of the 340 dense macro targets here), and each is blended once."""
    if not keys:
        return MacroBasis(keys), np.zeros((0, 0, 3), np.float32)
    # equal bytes, found by hashing each target's bytes (np.unique(axis=0) sorted 15 M floats: 2-4 s
    # of every rig load) and confirmed element by element, so a hash collision cannot merge two files
    first: dict = {}
    same = np.empty(len(keys), np.int64)
    for i, k in enumerate(keys):
        d = np.ascontiguousarray(dense[k])
        group = first.setdefault(hashlib.blake2b(d.tobytes(), digest_size=16).digest(), [])
        j = next((j for j in group if np.array_equal(dense[keys[j]], d)), None)   # a first appearance
        if j is None:
            group.append(i)
        same[i] = i if j is None else j
    firsts = np.unique(same)                        # each distinct row's first appearance, in order
    rank = np.searchsorted(firsts, same)
    return MacroBasis(keys, rank), np.stack([dense[keys[i]] for i in firsts])


def _blend_index() -> np.ndarray:
    """base.obj indices of the blended vertices: the body, then the left and right helper eyeballs."""
    groups = assets.vertex_groups()
    return np.concatenate([np.arange(assets.N_BODY), groups["helper-l-eye"], groups["helper-r-eye"]])


class Rig:
    """A character creator: a rig spec (sliders) acting on MakeHuman's body.

    Parameters
    ----------
    spec : RigSpec
        The validated sliders (from :func:`avatar.spec.sliders.load_rig_spec`).
    template : Template
        The fixed-topology mesh they deform.
    targets : TargetTable, optional
        MakeHuman's compiled targets (default: the installed assets' cache).
    """

    def __init__(self, spec: RigSpec, template: Template, targets: TargetTable | None = None):
        self.spec = spec
        self.template = template
        self.targets = targets if targets is not None else default_targets()
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

    def sample(self, n: int, seed: int = 0, start: int = 0, pose: bool = False) -> np.ndarray:
        """(n, P) float64 slider values drawn from each slider's distribution.

        Row i depends only on ``(seed, start + i)``. The pose sliders stay at rest (0)
        unless ``pose``: then they are drawn from their priors too, the rest unchanged.
        """
        S = self.spec.sample(n, seed, start)
        if not pose:
            cols = self.spec.pose_sliders
            S[:, cols] = self.defaults()[cols]
        return S

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
        lows, highs = self._range
        bad = ~((rows >= lows) & (rows <= highs))  # NaN compares False; the ranges are finite
        whole = rows[:, self._whole]
        bad[:, self._whole] |= whole != np.round(whole)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            s = self.sliders[j]
            raise ValueError(f"avatar {i}: {s.name} = {rows[i, j]:g} is not a valid value "
                             f"(range {lows[j]:g} to {highs[j]:g}"
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

    def macro_values(self, S: np.ndarray) -> np.ndarray:
        """(n, 11) MakeHuman macro values in [0, 1] (columns :data:`avatar.body.macros.VARIABLES`)."""
        S = np.atleast_2d(S)
        M = np.tile(MACRO_DEFAULTS, (len(S), 1))
        for col, j, scale in self._macro_cols:
            M[:, col] = years_to_age(S[:, j]) if scale is None else S[:, j] / scale
        return np.clip(M, 0.0, 1.0)

    def features(self, S: np.ndarray) -> np.ndarray:
        """(n, K) float32 strengths of the local fields for slider values ``S`` (n, P)."""
        S = np.atleast_2d(np.asarray(S, np.float64))
        out = np.empty((len(S), self._n_features), np.float32)
        self._strengths(S, factor_values(self.macro_values(S)), out[:, :, None], np.arange(len(S))[:, None])
        return out

    def _strengths(self, S: np.ndarray, Fm: np.ndarray, out: np.ndarray, slots: np.ndarray) -> None:
        """The fields' strengths (:meth:`features`) of avatars ``slots`` (nt, T) (rows of ``S`` and of its
        factor values ``Fm``, -1: none) into the first K columns of ``out`` (nt, >= K, T) float32, 0 after.

        Each slider's value above / below its default as 0..1, bools and categories as 0/1, an
        expression unit's field per ethnicity times that ethnicity's share, and the rest pose row at
        1 (``_weights_kernel.strengths``)."""
        races = np.ascontiguousarray(Fm[:, RACE_FACTORS], np.float32)
        _weights_kernel.strengths(np.ascontiguousarray(S), *self._strength_tables, races, self._n_features - 1,
                                  np.ascontiguousarray(slots), out)

    def vertices(self, S, chunk: int = 1024, posed: bool = True) -> np.ndarray:
        """(n, V, 3) float32 vertex positions for slider values ``S`` (n, P); (V, 3) for (P,).

        ``posed=False`` gives the rest pose (every pose slider at 0), the skinned GLB's bind pose.

        Chunks of at most ``chunk`` avatars run one after the other, each shared by as many threads
        as BLAS may use (:mod:`avatar.body.workers`; the compiled loops release the GIL). An avatar's
        bytes do not depend on its chunk or the thread count. The array reuses the memory of an
        earlier result once every array over it is gone (:mod:`avatar.body.buffers`): fresh pages
        cost up to 4x the blend.
        """
        S = self.values(S)
        single = S.ndim == 1
        S = np.atleast_2d(S)
        out = self._outputs.empty((len(S), self.n_vertices, 3), np.float32)
        threads = _threads(len(S))
        for a in range(0, len(S), chunk):
            self._chunk(S[a:a + chunk], out[a:a + chunk], posed, threads=threads)
        return out[0] if single else out

    # -- skeleton --------------------------------------------------------
    def _rest(self, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rest vertices (n, V, 3) and rest bone ends (n, 2J, 3), float32, of checked values ``S`` (n, P)."""
        V = np.empty((len(S), self.n_vertices, 3), np.float32)
        ends = np.empty((len(S), 2 * self.posing.n_bones, 3), np.float32)
        threads = _threads(len(S))
        for i in range(0, len(S), 1024):
            self._chunk(S[i:i + 1024], V[i:i + 1024], False, ends[i:i + 1024], threads)
        return V, ends

    def rest_ends(self, S) -> np.ndarray:
        """(n, 2J, 3) float32 bone heads (even rows) and tails (odd rows) of the rest pose, standing on y = 0."""
        return self._rest(np.atleast_2d(self.values(S)))[1]

    def joints(self, S, posed: bool = True) -> np.ndarray:
        """(n, J, 3) float32 bone heads (``rig.posing.skeleton.names``), in the pose of ``S`` or at rest."""
        S = np.atleast_2d(self.values(S))
        V, ends = self._rest(S)
        if not posed:
            return np.ascontiguousarray(ends[:, 0::2])
        return self.posing.joints(V, ends, S)

    def bound(self, values):
        """One avatar's skeleton at rest and in its pose (:class:`avatar.body.posing.Bound`), for a rigged GLB."""
        return self.bounds(self.defaults() if values is None else values)[0]

    def bounds(self, S) -> list:
        """:meth:`bound` of every row of ``S`` (n, P), their rest shapes blended in one batch."""
        S = np.atleast_2d(self.values(S))
        V, ends = self._rest(S)
        return [self.posing.bound(v, e, x) for v, e, x in zip(V, ends, S)]

    # -- measurements ----------------------------------------------------
    @cached_property
    def ruler(self):
        """:class:`avatar.measure.Ruler` of configs/measurements/default.yaml on this rig's template."""
        from avatar.measure import Ruler
        from avatar.spec.measurements import load_measurements

        return Ruler(self.template, load_measurements())

    def measure(self, S=None, *, vertices=None, posed: bool = False, names=None) -> dict:
        """{name: (n,) float64} body measurements in cm, kg, litres and kg/m^2 (docs/measure.md).

        Of slider values ``S`` (n, P), at rest unless ``posed``, or of ``vertices``
        (n, V, 3) of this topology; a (P,) or (V, 3) input gives {name: float}. ``names``
        limits the work to those measurements.
        """
        if (S is None) == (vertices is None):
            raise TypeError("rig.measure takes slider values S or vertices=, not both")
        if vertices is None:
            vertices = self.vertices(S, posed=posed)
        return self.ruler(vertices, names)

    def solve(self, S, targets: Mapping, free=None) -> np.ndarray:
        """Slider values like ``S`` with the ``free`` sliders (names or globs) moved so that the
        measurements hit ``targets`` ({name: value}); see :func:`avatar.measure.solve.solve`."""
        from avatar.measure.solve import solve

        return solve(self, S, dict(targets), free)

    def preset(self, preset) -> np.ndarray:
        """(P,) values of a preset (a YAML or .mhm path, or a mapping), its ``measurements:`` solved for."""
        from avatar.spec.sliders import preset_targets, preset_vector

        x = preset_vector(self.spec, preset)
        targets, free = preset_targets(self.spec, preset)
        return self.solve(x, targets, free) if targets else x

    def textures(self, S, size: int = 512) -> np.ndarray:
        """(n, size, size, 3) uint8 UV textures for slider values ``S`` (n, P); (size, size, 3) for (P,)."""
        from avatar.skin.texture import textures

        S = self.values(S)
        out = textures(self.template, self.spec, np.atleast_2d(S), size)
        return out[0] if S.ndim == 1 else out

    def mesh(self, values=None, textured: bool = True, texture_size: int = 1024, posed: bool = True):
        """A ``trimesh.Trimesh`` of one avatar.

        ``values`` is a (P,) array, a mapping of readable slider values (a
        preset), or None for the default avatar. By default the mesh carries
        UVs and a PBR material with the avatar's texture; for that its seam
        vertices are split (one UV per vertex, as glTF needs), so trimesh
        counts the seams as open: ``metadata["solid_index"]`` maps each vertex
        to its vertex of the solid. ``textured=False`` gives the watertight
        solid itself, vertex for vertex as :meth:`vertices` returns it;
        ``posed=False`` the rest pose.
        """
        import trimesh

        from avatar.export import textured_mesh

        x = self.defaults() if values is None else self.values(values)
        verts = self.vertices(x, posed=posed).astype(np.float64)
        if textured:
            mesh = textured_mesh(verts, self.template, self.textures(x, texture_size))
            mesh.metadata["parts"] = self.template.parts[self.template.export_index]
            return mesh
        mesh = trimesh.Trimesh(verts, self.faces, process=False)
        mesh.metadata["parts"] = self.template.parts
        return mesh

    # -- internals -------------------------------------------------------
    def _chunk(self, S: np.ndarray, out: np.ndarray, posed: bool = True, ends_out=None, threads: int = 1) -> None:
        """Steps 1-6 for one chunk of avatars into ``out`` (n, V, 3), on ``threads`` threads (the blend's
        passes shared by panels, the rest by avatars: :mod:`avatar.body.workers`); the rest bone ends
        (n, 2J, 3) into ``ends_out`` when given."""
        n, body, pan = len(S), assets.N_BODY, self._panels
        Fm = factor_values(self.macro_values(S))
        tiles = blend.tiles(pattern_key(Fm), _blend_kernel.TILE)    # neighbours weight the same targets
        Tm, K = self._macros.n_targets, self._n_features + self._local_macros.n_targets
        Wt, Gt = (np.empty((len(tiles), m, _blend_kernel.TILE), np.float32) for m in (Tm, K))
        tbits = np.empty((len(tiles), -(-Tm // 64)), np.uint64)

        def weigh(span):  # 1. macro weights; 2. local field strengths, then the local macros' weights; in
            t0, t1 = span  # tiles' slot order, laid out tile by tile (blend.by_tile)
            Ft = blend.by_tile(Fm, tiles[t0:t1])  # empty slots: every factor 0, every weight 0
            self._macros.tile_weights(Ft, Wt[t0:t1])
            self._strengths(S, Fm, Gt[t0:t1], tiles[t0:t1])
            self._local_macros.tile_weights(Ft, Gt[t0:t1], self._n_features)
            tbits[t0:t1] = blend.tile_bits(Wt[t0:t1])
            used[t0] = (Gt[t0:t1] != 0).any(axis=0).any(axis=1)  # (axis=(0, 2) took 9x as long)

        used = {}
        workers.each(weigh, workers.rows(len(tiles), threads))
        fptr, feats, Dl = self._fields_used(np.logical_or.reduce(list(used.values())))
        side = self._scratch(n * pan.side_width, "side").reshape(n, pan.side_width)
        flat = out.reshape(n, -1)
        want_ends = ends_out is not None or (posed and self.posing.posed_rows(S).any())
        ends = np.empty((n, len(self._end_index), 3), np.float32) if want_ends else None
        floor = np.zeros(n, np.float32)
        first, later = self._panel_shares(threads, want_ends)

        def run(panels):  # 3. blend, a share of the panels for every avatar of the chunk
            _blend_kernel.blend(Wt, Gt, tiles, tbits, pan.Dm, pan.pbits, fptr, feats, Dl, flat, side, pan.n_out,
                                pan.n_macro, panels, floor)

        def ground(r):  # 5. soles on y = 0 (the feet are lowest); the bone ends before the body rows they
            a, b = r    # read are floored; 4. the eyeballs: each avatar in turn (_blend_kernel.ground)
            _blend_kernel.ground(flat[a:b], side[a:b], self._sole_panels, self._lift, self._end_by, want_ends,
                                 ends[a:b] if want_ends else _NO_ENDS, self._eyes_by, out[a:b, body:],
                                 floor[a:b])

        def pose(r):  # 6. the pose (posing.py)
            self.posing.apply(out[r[0]:r[1]], ends[r[0]:r[1]], S[r[0]:r[1]])

        workers.each(run, first)  # the soles, the body rows the bone ends read and the side buffer, unfloored
        rows = workers.rows(n, threads)
        workers.each(ground, rows)  # the first pass's rows floored, the eyes placed
        workers.each(run, later)  # everything else, the floor subtracted as it is stored
        if want_ends and posed:
            workers.each(pose, rows)
        if ends_out is not None:
            ends_out[:] = ends

    def _panel_shares(self, threads: int, ends: bool) -> tuple[list, list]:
        """The blend's two passes dealt among ``threads`` (:func:`workers.deal`): the first holds the
        side buffer's joint cubes only when the bone ends are wanted (nothing else reads them)."""
        key = (threads, ends)
        if key not in self._shares:
            first, later, joints = self._passes
            first = first if ends else first[~joints]
            self._shares[key] = workers.deal(first, threads), workers.deal(later, threads)
        return self._shares[key]

    def _fields_used(self, used: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The blend's field lists (fptr, feats, Dl) for a chunk that leaves the fields not ``used`` (K,) bool
        at 0: all of them, or, when those hold over ``1 - FIELDS_KEPT`` of the pairs, only the others
        (:func:`~avatar.body.blend.only_fields`; the last few such layouts are kept)."""
        pan = self._panels
        if self._pairs_of[used].sum() > FIELDS_KEPT * len(pan.feats):
            return pan.fptr, pan.feats, pan.Dl
        key = np.packbits(used).tobytes()
        with self._layouts_lock:
            got = self._layouts.pop(key, None) or blend.only_fields(pan, used)
            self._layouts[key] = got  # the most recent last
            while len(self._layouts) > LAYOUTS:
                self._layouts.pop(next(iter(self._layouts)))
        return got

    def _scratch(self, size: int, name: str) -> np.ndarray:
        """Float32 work buffer ``name`` of ``size``, kept per thread: a fresh one costs a page fault per 4 kB."""
        buf = getattr(self._buffers, name, None)
        if buf is None or buf.size < size:
            buf = np.empty(size, np.float32)
            setattr(self._buffers, name, buf)
        return buf[:size]

    def _build(self) -> None:
        """Everything that depends only on the template and the sliders, once."""

        self._buffers = threading.local()
        self._outputs = buffers.Recycler()
        self._layouts, self._layouts_lock = {}, threading.Lock()  # _fields_used's
        self._shares = {}  # _panel_shares'
        self._build_blend_set()
        local, keys = self._build_macros()
        fields = self._build_fields()
        for d in local:  # columns after features(): the local macro targets' weights (_chunk)
            rows = np.flatnonzero(np.any(d, axis=1))
            fields.append((rows, d[rows]))
        del local
        # fields live on the blend set (rows 0..B-1) and, for our deformers, on the eyeballs (B..B+2k-1)
        B, k = len(self._blend), eyes.EYE_SPHERE.vertices.shape[0]
        self._panels = blend.panels(fields, self._Dm, assets.N_BODY, B, B + 2 * k)
        self._end_by = self._end_index, self._end_weight, assets.N_BODY  # _blend_kernel.ground's
        self._eyes_by = self._eye_helpers, len(self._eye_rows[0]), self._panels.extra, eyes.UNIT
        self._pairs_of = np.bincount(self._panels.feats, minlength=len(fields))  # each field's (field, panel) pairs
        first, later, first_y = blend.floor_first(self._panels, self._soles, self._end_body, assets.N_BODY)
        side = first - self._panels.n_out  # the side buffer's panels: helper eyeballs, joint cubes, eye fields
        eyes_end = -(-3 * sum(map(len, self._eye_rows)) // _blend_kernel.PANEL)
        self._passes = first, later, (side >= eyes_end) & (side < self._panels.extra // _blend_kernel.PANEL)
        at, ys = blend.panel_masks(first_y)
        self._lift = at, ys.astype(np.float32)  # the first pass's body y coordinates, floored after it
        at, keep = blend.panel_masks(3 * self._soles + 1)  # the soles' y coordinates
        self._sole_panels = at, np.where(keep, 0.0, np.inf).astype(np.float32)
        del self._Dm  # the panels hold it
        # the distinct sculpted displacements and the fields (not the rest row)
        self._n_targets = self._macros.n_targets + self._local_macros.n_targets + self._n_features - 1

    def _build_blend_set(self) -> None:
        """The blended vertices (body, helper eyeballs, joint cubes), the bone ends' regressor, the soles."""
        sliders = self.sliders
        # the skeleton's bone ends are means of base.obj vertices, mostly helper joint cubes: blend those too
        from avatar.body.posing import Posing

        self.posing = Posing(self.spec, eyes.EYE_SPHERE.vertices.shape[0])
        reg = self.posing.skeleton.regressor.tocsc()
        cols = np.flatnonzero(np.diff(reg.indptr))        # the vertices some bone end uses
        own = _blend_index()
        self._blend = np.concatenate([own, np.setdiff1d(cols, own)])
        position = np.full(len(assets.base_mesh().vertices), -1, np.int64)
        position[self._blend] = np.arange(len(self._blend))
        self._position = position
        # each bone end as at most 8 (blend row, weight) pairs, padded with weight 0: a fixed order of sums
        csr = self.posing.skeleton.regressor.tocsr()
        width = int(np.diff(csr.indptr).max())
        self._end_index = np.zeros((csr.shape[0], width), np.int64)
        self._end_weight = np.zeros((csr.shape[0], width), np.float32)
        for r in range(csr.shape[0]):
            a, b = csr.indptr[r], csr.indptr[r + 1]
            self._end_index[r, : b - a], self._end_weight[r, : b - a] = position[csr.indices[a:b]], csr.data[a:b]
        # the rows they read: body rows from the output, the others from the blend's side buffer
        used = np.unique(self._end_index)
        self._end_body = used[used < assets.N_BODY]
        from avatar.body.skeleton import proxy_weights

        extra = self._blend[len(own):]
        self._joint_proxy = (np.arange(len(own), len(self._blend)),  # our deformers move body
                             proxy_weights(assets.base_mesh().vertices[extra],     # vertices only: the cubes
                                           assets.base_mesh().vertices[: assets.N_BODY]))  # follow the nearest
        b = assets.N_BODY
        k = len(assets.vertex_groups()["helper-l-eye"])  # the helper eyeballs follow the body (_blend_index)
        self._eye_rows = (np.arange(b, b + k), np.arange(b + k, b + 2 * k))
        self._eye_helpers = np.array([r[0] - b for r in self._eye_rows], np.int64)  # first rows in the side buffer
        self._soles = np.flatnonzero(self.template.part_mask("foot_l", "foot_r")[:b])  # where min y is
        self._whole = np.array([s.kind in ("integer", "bool", "categorical") for s in sliders])
        self._range = self.spec.lows(), self.spec.highs()  # values()' checks

    def _build_macros(self) -> tuple[list, list]:
        """1. The macro targets: the dense ones' matrix; returns (the local ones' distinct (B, 3) deltas, all keys)."""
        sliders, table = self.sliders, self.targets
        self._macro_cols = [(VARIABLES.index(s.macro), j, None if s.macro == "age" else s.max)
                            for j, s in enumerate(sliders) if s.macro]
        keys = age_order(str(k) for k in table.names if is_macro_target(str(k)))
        dense = {k: self._dense(k) for k in keys}
        # the breast targets each move 1-4% of the body: they join the local fields' sparse panels
        # (weighted per avatar like them) instead of the dense macro rows
        local = [k for k in keys if np.any(dense[k], axis=1).mean() < SPARSE_MACRO]
        wide = [k for k in keys if k not in set(local)]  # still in age order
        (self._macros, wide_D), (self._local_macros, local_D) = (_distinct(ks, dense) for ks in (wide, local))
        self._Dm = wide_D.reshape(len(wide_D), -1)
        return local_D, keys

    def _build_fields(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """2. The local fields, one per feature column of features(), the rest pose last."""
        sliders = self.sliders
        # local features: (rows into the blend set, (k, 3) deltas) per feature
        fields: list[tuple[np.ndarray, np.ndarray]] = []
        onehot, race_cols, race_of, race_src = [], [], [], []
        cont = [j for j, s in enumerate(sliders) if s.kind in ("continuous", "integer") and not s.macro]
        has_up, has_down, col_up, col_down = [], [], [], []
        for j in cont:
            s = sliders[j]
            try:
                up, down = self._slider_fields(s)
            except (OSError, assets.AssetError, KeyError) as err:  # a target file missing or unreadable
                from avatar.spec.config import Problems

                problems = Problems(self.spec.source)
                problems.add(("sliders", s.name, "effects"), f"cannot read its target: {err}", s.line)
                problems.raise_if_any()
            has_up.append(up is not None)
            has_down.append(down is not None)
            for f, cols in ((up, col_up), (down, col_down)):
                if f is None:
                    continue
                if isinstance(f, list):  # an expression unit: one field per ethnicity, same strength
                    cols.append(len(fields))
                    for r, field in enumerate(f):
                        race_src.append(cols[-1])
                        race_cols.append(len(fields))
                        race_of.append(r)
                        fields.append(field)
                else:
                    cols.append(len(fields))
                    fields.append(f)
        for j, s in enumerate(sliders):
            if s.kind == "bool" and s.effects:
                onehot.append((len(fields), j, 1.0))
                fields.append(self._effect_field(s.effects))
            elif s.kind == "categorical":
                for c, name in enumerate(s.categories):
                    if s.effects.get(name):
                        onehot.append((len(fields), j, float(c)))
                        fields.append(self._effect_field(s.effects[name]))
        up_col, down_col = np.full(len(cont), -1, np.int64), np.full(len(cont), -1, np.int64)
        up_col[np.array(has_up, bool)], down_col[np.array(has_down, bool)] = col_up, col_down
        self._strength_tables = (  # the arguments of _weights_kernel.strengths, in order
            np.array(cont, np.int64), np.array([sliders[j].default for j in cont], np.float64),
            np.array([max(sliders[j].max - sliders[j].default, 1e-12) for j in cont], np.float64),
            np.array([max(sliders[j].default - sliders[j].min, 1e-12) for j in cont], np.float64),
            up_col, down_col, np.array([(col, j) for col, j, _ in onehot], np.int64).reshape(-1, 2),
            np.array([v for *_, v in onehot], np.float64), np.array(race_cols, np.int64),
            np.array(race_src, np.int64), np.array(race_of, np.int64))
        rest = (np.arange(len(self._blend)), assets.base_mesh().vertices[self._blend].astype(np.float32))
        fields.append(rest)
        self._n_features = len(fields)
        return fields

    def _slider_fields(self, s: SliderSpec):
        """(field at max, field at min) of a continuous slider, None where it moves nothing."""
        if s.makehuman:
            keys = target_keys(s.makehuman)
            if s.makehuman.startswith("expression/"):  # one field per ethnicity, all at max
                return [self._target(k) for k in keys], None
            if len(keys) == 2:  # decr at min, incr at max
                return self._target(keys[1]), self._target(keys[0])
            return self._target(keys[0]), None
        if not s.effects:
            return None, None
        up = self._effect_field(s.effects) if s.max > s.default else None
        down = self._effect_field(s.effects, at_min=True) if s.min < s.default else None
        return up, down

    def _target(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """A target's rows in the blend set: (rows (k,), deltas (k, 3) float32)."""
        idx, d = self.targets.rows(key)
        rows = self._position[idx]
        keep = rows >= 0
        return rows[keep], np.asarray(d[keep], np.float32)

    def _dense(self, key: str) -> np.ndarray:
        rows, d = self._target(key)
        out = np.zeros((len(self._blend), 3), np.float32)
        out[rows] = d
        return out

    def _effect_field(self, effects, at_min: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Sparse (rows, deltas) of a list of effects: ``target`` files and the deformer vocabulary.

        Rows 0..B-1 are the blend set; rows B.. are the eyeballs' vertices, which only our
        deformers move (MakeHuman's targets move the helper eyeballs the spheres are fitted to).
        """
        total = np.zeros((len(self._blend) + 2 * eyes.EYE_SPHERE.vertices.shape[0], 3), np.float64)
        for e in effects:
            if e["deformer"] == "target":  # a scalar weight; the vocabulary's amounts may be vec3
                total += float(deformers.effect_amount(e, at_min)) * self._effect_target(e["file"])
            else:
                field = deformers.displacement(self._frame, e, at_min)
                total[: assets.N_BODY] += field[: assets.N_BODY]
                rows, proxy = self._joint_proxy
                total[rows] += proxy @ field[: assets.N_BODY]  # the joint cubes follow the body around them
                total[len(self._blend):] += field[assets.N_BODY:]  # on the eyeballs, as on the template
        rows = np.flatnonzero(np.any(total != 0, axis=1))
        return rows, total[rows].astype(np.float32)

    def _effect_target(self, file: str) -> np.ndarray:
        key = file[: -len(".target.gz")] if file.endswith(".target.gz") else file
        if key in self.targets:
            idx, d = self.targets.rows(key)
        else:
            idx, d = assets.read_target(self._user_path(file))
        out = np.zeros((len(self._blend) + 2 * eyes.EYE_SPHERE.vertices.shape[0], 3))
        rows = self._position[idx]
        out[rows[rows >= 0]] = d[rows >= 0]
        return out

    def _user_path(self, file: str) -> Path:
        path = Path(file).expanduser()
        if not path.is_absolute() and self.spec.source and not self.spec.source.startswith("<"):
            path = Path(self.spec.source).resolve().parent / path  # relative to the rig YAML's folder
        return path

    @cached_property
    def _frame(self):
        return deformers.Frame(self.template)


def load_rig(path: str | Path | None = None) -> Rig:
    """Load a rig YAML (default: ``configs/rigs/humanoid.yaml``) on MakeHuman's body."""
    import warnings

    from avatar.body.blend import rows_round_alike

    spec = load_rig_spec(Path(path) if path else DEFAULT_RIG)
    if not rows_round_alike():
        warnings.warn("this process's BLAS rounds a row of a product by its place in the batch, so an avatar's "
                      "texture may differ in the last bit with the batch (and a dataset's bytes with its worker "
                      "count); on AMD processors with AVX-512 import avatar before numpy, or set "
                      "OPENBLAS_CORETYPE=SkylakeX before starting Python", RuntimeWarning, stacklevel=2)
    return Rig(spec, load_template(spec.template))
