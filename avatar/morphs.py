"""Sliders and latent components as glTF morph targets (docs/morphs.md).

A morph target is a fixed displacement per vertex that a viewer scales by a weight and adds to
the base shape. Our local sliders are exactly that on each side of their default (the rig blends
a modifier's ``incr`` field by ``(v - default) / (max - default)`` and its ``decr`` field by
``(default - v) / (default - min)``), so each chosen slider becomes:

- one target named after the slider when that is exact: a one-sided slider, or a two-sided one
  whose ``decr`` displacement is exactly minus its ``incr`` one (weight -1 at min, +1 at max);
- otherwise two, ``<slider>:decr`` and ``<slider>:incr``, each weighted 0..1 on its own side.

The targets are measured on the rig itself (``rig.vertices`` at each side's end minus the base),
so they hold everything the rig does after the blend: the eyes fitted to the helper eyeballs and
the floor shift. Each side is checked at half strength; what is not linear (or moves the floor,
which is a minimum over the soles) is reported per slider (:attr:`SliderMorph.linear_error_mm`,
:attr:`SliderMorph.moves_floor`).

The base shape is the avatar with every exported slider at its default; the default weights are
the avatar's own values, so the file opens looking like the avatar. Macros (``body.*``) blend
their targets by products of ramps (:mod:`avatar.body.macros`), so they stay baked into the base.

A linear latent model (PCA, incremental PCA, ICA, factor analysis) decodes ``mean + z * sd`` to
an affine function of ``z``: each component at +1 sd is an exact morph target
(:func:`latent_morphs`). Nonlinear models (the autoencoder, the VAE) are refused.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LINEAR_KINDS = ("pca", "incremental_pca", "ica", "factor_analysis")
SIGNED_TOLERANCE = 1e-6   # metres: decr == -incr within this is one signed target
LINEAR_TOLERANCE = 1e-5   # metres (0.01 mm): a side counts as linear within this at half strength
POSITION_EPSILON = 1e-7   # metres: smaller position deltas (float32 noise of the differences) are zero
NORMAL_EPSILON = 5e-4     # unit normals: smaller normal deltas (< 0.03 degrees) are zero
CHUNK = 48                # sliders per batch of rig.vertices


class MorphError(ValueError):
    """A bad ``--morphs`` selection or a model that cannot be morph targets."""


@dataclass
class SliderMorph:
    """How one slider's value maps to its targets' weights."""

    name: str
    targets: tuple[str, ...]        # (name,) signed or one-sided; (name:decr, name:incr) otherwise
    default: float
    min: float
    max: float
    value: float                    # the avatar's value (the file's default weights come from it)
    linear_error_mm: float = 0.0    # worst departure from linear at half strength, either side
    moves_floor: bool = False       # the target lifts or lowers the whole body (the soles moved)
    one_foot: bool = False          # ... and moves one foot's lowest point more than the other's

    def weights(self, v: float) -> list[float]:
        """The targets' weights for slider value ``v`` (array units)."""
        up = max(v - self.default, 0.0) / max(self.max - self.default, 1e-12)
        down = max(self.default - v, 0.0) / max(self.default - self.min, 1e-12)
        if len(self.targets) == 2:
            return [down, up]
        return [up - down]

    @property
    def exact(self) -> bool:
        """Exact in every combination: linear on each side, and if it moves the floor, it moves both
        feet alike (the floor is the lower foot's sole: two sliders lifting one foot each are not
        additive, anything that keeps the feet level is)."""
        return self.linear_error_mm < LINEAR_TOLERANCE * 1e3 and not self.one_foot

    def info(self) -> dict:
        return {"targets": list(self.targets), "default": self.default, "min": self.min, "max": self.max,
                "value": self.value, "exact": self.exact, "linear_error_mm": round(self.linear_error_mm, 4),
                "moves_floor": self.moves_floor, "one_foot": self.one_foot}


@dataclass
class Morphs:
    """Morph targets over a rig's solid vertices: a base shape, named displacements and weights.

    base      : (V, 3) float64 solid vertices (metres) with every target at weight 0
    names     : T target names; deltas (T, V, 3) float32 solid displacements at weight 1
    weights   : (T,) the file's default weights
    sliders   : the slider -> weights mapping (empty for latent targets)
    extras    : what the GLB records about them (``extras.avatar.morphs``)
    """

    base: np.ndarray
    names: list[str]
    deltas: np.ndarray
    weights: np.ndarray
    sliders: list[SliderMorph] = field(default_factory=list)
    extras: dict = field(default_factory=dict)

    def __add__(self, other: "Morphs") -> "Morphs":
        """These targets and ``other``'s on this base (``other``'s are displacements, valid on any base)."""
        clash = set(self.names) & set(other.names)
        if clash:
            raise MorphError(f"target names clash: {sorted(clash)[:3]}")
        extras = {**self.extras, **other.extras}
        return Morphs(self.base, self.names + other.names, np.concatenate([self.deltas, other.deltas]),
                      np.concatenate([self.weights, np.zeros(len(other.names))]), self.sliders + other.sliders,
                      extras)

    def positions(self, weights=None) -> np.ndarray:
        """(V, 3) float64: the base plus the weighted targets (the file's weights by default)."""
        w = self.weights if weights is None else np.asarray(weights, np.float64)
        return self.base + np.tensordot(w, self.deltas.astype(np.float64), axes=1)


# -- choosing sliders ------------------------------------------------------------
def morphable(rig) -> list[int]:
    """Columns of the sliders that can be morph targets: every local slider that moves the mesh
    (MakeHuman's modifiers, our deformers, expressions); not the macros, pose or texture sliders."""
    return [j for j, s in enumerate(rig.sliders)
            if s.moves_mesh and not s.macro and not s.pose and s.kind in ("continuous", "integer")]


def select(rig, text: str) -> list[int]:
    """``"face,nose,ears"`` / ``"all"`` / slider names -> morphable slider columns, in rig order.

    Items are group names (``nose``), slider names (``nose.width1``) or ``all`` (every morphable
    slider). MorphError names the first item that is not one, with a suggestion.
    """
    from avatar.spec.config import did_you_mean

    ok = set(morphable(rig))
    groups = {}
    for j in ok:
        groups.setdefault(rig.sliders[j].group, []).append(j)
    chosen: set[int] = set()
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise MorphError("--morphs needs groups or sliders, e.g. face,nose,ears or all")
    for item in items:
        if item == "all":
            chosen |= ok
        elif item in groups:
            chosen |= set(groups[item])
        elif item in rig.slider_names:
            j = rig.slider_names.index(item)
            if j not in ok:
                raise MorphError(f"--morphs: {item} cannot be a morph target ({_why_not(rig.sliders[j])})")
            chosen.add(j)
        elif item in rig.spec.groups:
            s = next(s for s in rig.sliders if s.group == item)
            raise MorphError(f"--morphs: group {item!r} has no morphable sliders ({_why_not(s)})")
        else:
            raise MorphError(f"--morphs: no group or slider {item!r}"
                             f"{did_you_mean(item, sorted(groups) + ['all'] + rig.slider_names)}")
    return sorted(chosen)


def parse(rig, text: str) -> tuple[list[int], list[str]]:
    """``--morphs TEXT`` -> (local slider columns, macro variables).

    Besides :func:`select`'s items, ``body`` (every macro but the ethnic mix) and macro sliders
    (``body.weight``) ask for macro basis targets (:func:`macro_morphs`).
    """
    locals_, macros = [], []
    for item in (t.strip() for t in str(text).split(",")):
        if not item:
            continue
        if item == "body":
            macros += list(MACRO_MORPHABLE)
        elif item.startswith("body.") and item in rig.slider_names:
            macro = rig.sliders[rig.slider_names.index(item)].macro
            if macro not in MACRO_MORPHABLE:
                raise MorphError(f"--morphs: {item} stays baked: the ethnic mix also reweights the expression "
                                 "units, which morph targets cannot follow")
            macros.append(macro)
        else:
            locals_.append(item)
    columns = select(rig, ",".join(locals_)) if locals_ else []
    if not columns and not macros:
        raise MorphError("--morphs needs groups or sliders, e.g. face,nose,ears or all")
    return columns, [v for v in MACRO_MORPHABLE if v in macros]


def morphs_for(rig, values, text: str) -> "Morphs":
    """The morph targets that ``--morphs TEXT`` asks for, for one avatar: sliders, then macro bases."""
    columns, macros = parse(rig, text)
    m = slider_morphs(rig, values, columns)
    if macros:
        m.extras["macros"] = {"variables": macros}
        m = macro_morphs(rig, values, m)
    return m


def _why_not(s) -> str:
    if s.macro:
        return "macros are baked into the base shape unless named as body or body.<macro>"
    if s.pose:
        return "pose sliders turn bones; a rigged GLB poses them in its skeleton"
    return "it paints the texture and moves no vertex"


def cli_morphs(rig, values, text: str, out) -> "Morphs":
    """``--morphs TEXT`` of a command writing ``out``: the targets, a one-line report, UsageError if bad."""
    from pathlib import Path

    from avatar.cli.errors import UsageError

    if Path(out).suffix.lower() != ".glb":
        raise UsageError(f"{out}: only GLB holds morph targets; write a .glb with --morphs")
    try:
        m = morphs_for(rig, values, text)
    except MorphError as err:
        raise UsageError(str(err)) from None
    print(describe(m))
    return m


def describe(m: "Morphs") -> str:
    """One line: how many sliders became how many targets, and which are not exact."""
    n, t = len(m.sliders), sum(len(s.targets) for s in m.sliders)
    signed = sum(len(s.targets) == 1 for s in m.sliders)
    inexact = [s.name for s in m.sliders if not s.exact]
    line = f"morph targets: {n} sliders as {t} targets ({signed} signed or one-sided, {n - signed} as :decr/:incr)"
    if inexact:
        line += f"; not exact in every combination: {', '.join(inexact[:6])}{' ...' if len(inexact) > 6 else ''}"
    macros = m.extras.get("macros")
    if macros:
        line += (f"; macros {', '.join(macros['variables'])} as {len(macros['targets'])} basis targets "
                 "(weights by MakeHuman's rule)")
    return line


# -- slider targets ----------------------------------------------------------------
def slider_morphs(rig, values, columns) -> Morphs:
    """Morph targets of sliders ``columns`` for the avatar ``values`` (a preset mapping or (P,) array).

    The base is the avatar at rest with those sliders at their defaults; the default weights put them
    back at the avatar's values. Every other slider (macros included) is baked into the base.
    """
    x = np.array(rig.values(values), np.float64)
    if x.ndim != 1:
        raise MorphError("slider morphs are made for one avatar")
    columns = list(columns)
    bad = sorted(set(columns) - set(morphable(rig)))
    if bad:
        raise MorphError(f"{rig.slider_names[bad[0]]} cannot be a morph target ({_why_not(rig.sliders[bad[0]])})")
    base = x.copy()
    for j in columns:
        base[j] = rig.sliders[j].default
    B = rig.vertices(base, posed=False).astype(np.float64)
    names, deltas, sliders = [], [], []
    rows, where = [], {}
    for j in columns:  # every side's end and its half: one batch (the rig is fastest on large ones)
        s = rig.sliders[j]
        for side, end in (("decr", s.min), ("incr", s.max)):
            if end != s.default:
                for f in (1.0, 0.5):
                    r = base.copy()
                    r[j] = s.default + f * (end - s.default)
                    where[(j, side, f)] = len(rows)
                    rows.append(r)
    V = rig.vertices(np.array(rows), posed=False) if rows else None
    for at in range(0, len(columns), CHUNK):
        part = columns[at:at + CHUNK]
        D = {key: V[i].astype(np.float64) - B for key, i in where.items() if key[0] in set(part)}
        for j in part:
            s = rig.sliders[j]
            sides = {side: D[(j, side, 1.0)] for side in ("decr", "incr") if (j, side, 1.0) in D}
            err = max(np.abs(D[(j, side, 0.5)] - 0.5 * d).max() for side, d in sides.items())
            floor = any(_moves_floor(d) for d in sides.values())
            one_foot = floor and any(not _level(rig, B, d) for d in sides.values())
            sym = abs((s.max - s.default) - (s.default - s.min)) < 1e-9
            if len(sides) == 1:
                side, d = next(iter(sides.items()))
                targets, ds = (s.name,), [d if side == "incr" else -d]  # weight up - down: -1..0 for decr
            elif sym and np.abs(sides["incr"] + sides["decr"]).max() < SIGNED_TOLERANCE:
                targets, ds = (s.name,), [sides["incr"]]
            else:
                targets, ds = (f"{s.name}:decr", f"{s.name}:incr"), [sides["decr"], sides["incr"]]
            for d in ds:  # float32 noise of the differences away
                d[np.abs(d).max(axis=1) < POSITION_EPSILON] = 0.0
            names += targets
            deltas += ds
            sliders.append(SliderMorph(s.name, targets, float(s.default), float(s.min), float(s.max),
                                       float(x[j]), float(err) * 1e3, bool(floor), bool(one_foot)))
    weights = np.array([w for m in sliders for w in m.weights(m.value)], np.float64)
    deltas = np.stack(deltas).astype(np.float32) if deltas else np.zeros((0, *B.shape), np.float32)
    extras = {"sliders": {m.name: m.info() for m in sliders}}
    return Morphs(B, names, deltas, weights, sliders, extras)


# -- macro basis targets ------------------------------------------------------------
MACRO_MORPHABLE = ("gender", "age", "muscle", "weight", "height", "proportions", "cupsize", "firmness")


def macro_morphs(rig, values, sliders: Morphs) -> "Morphs":
    """Macro basis targets for the macro sliders in ``sliders``' selection, added to ``sliders``.

    A macro target's weight is a product of factor ramps (:func:`avatar.body.macros.factor_values`).
    With only some macro variables free and the rest fixed at the avatar's values, the targets that
    share the free variables' factors add up (each times its fixed factors) into one target per
    combination of free factors, named ``macro:<factor>-<factor>...`` (``macro:female-maxweight``);
    a viewer weights it by the product of those factors, which the web creator computes by
    MakeHuman's rule. The body is then exact; the eyes follow linearised (their sphere is fitted to
    the helper eyeball), and the floor (a minimum over the soles) is the web creator's to apply.
    """
    from avatar.body import assets
    from avatar.body.macros import FACTORS, VARIABLES, factor_values, target_factors

    x = np.array(rig.values(values), np.float64)
    free = [v for v in MACRO_MORPHABLE if v in sliders.extras.get("macros", {}).get("variables", [])]
    if not free:
        return sliders
    groups = {"gender": ("female", "male"), "age": ("baby", "child", "young", "old"),
              "muscle": ("minmuscle", "averagemuscle", "maxmuscle"), "weight": ("minweight", "averageweight", "maxweight"),
              "height": ("minheight", "maxheight"), "proportions": ("uncommonproportions", "idealproportions"),
              "cupsize": ("mincup", "averagecup", "maxcup"), "firmness": ("minfirmness", "averagefirmness", "maxfirmness")}
    free_factors = {f for v in free for f in groups[v]}
    F = factor_values(rig.macro_values(x))[0]
    col = {f: i for i, f in enumerate(FACTORS)}
    combined: dict[tuple, np.ndarray] = {}
    keys = list(rig._macros.keys) + list(rig._local_macros.keys)
    for key in keys:
        words = target_factors(key)
        fixed = np.prod([F[col[w]] for w in words if w not in free_factors])
        if fixed == 0.0:
            continue
        combo = tuple(sorted((w for w in words if w in free_factors), key=lambda w: col[w]))
        if not combo:
            continue  # no free factor: a constant, baked into the base
        d = rig._dense(key)
        combined[combo] = combined.get(combo, 0.0) + fixed * d
    n_body = assets.N_BODY
    k = (rig.n_vertices - n_body) // 2
    units = [_helper_directions(rig, e) for e in range(2)]
    names, deltas, weights = [], [], []
    for combo, d in combined.items():
        out = np.zeros((rig.n_vertices, 3))
        out[:n_body] = d[:n_body]
        for e, (rows, u) in enumerate(units):  # the eyes, linearised: centre shift and radius change
            dh = d[rows]
            dc = dh.mean(axis=0)
            dr = float(np.mean(np.sum(u * (dh - dc), axis=1)))
            from avatar.body.eyes import EYE_SPHERE

            out[n_body + e * k:n_body + (e + 1) * k] = dc + dr * EYE_SPHERE.vertices
        names.append("macro:" + "-".join(combo))
        deltas.append(out.astype(np.float32))
        weights.append(float(np.prod([F[col[w]] for w in combo])))
    deltas = np.stack(deltas)
    w = np.array(weights)
    base = sliders.base - np.tensordot(w, deltas.astype(np.float64), axes=1)
    info = {"variables": free, "targets": {n: list(c) for n, c in zip(names, combined)},
            "fixed": {v: float(rig.macro_values(x)[0][VARIABLES.index(v)]) for v in VARIABLES if v not in free},
            "sliders": {s.name: {"macro": s.macro, "min": s.min, "max": s.max, "default": s.default,
                                 "value": float(x[j])}
                        for j, s in enumerate(rig.sliders) if s.macro in free}}
    extras = {**sliders.extras, "macros": info}
    return Morphs(base, sliders.names + names, np.concatenate([sliders.deltas, deltas]),
                  np.concatenate([sliders.weights, w]), sliders.sliders, extras)


def _helper_directions(rig, eye: int):
    """(blend rows, unit directions (72, 3)) of one helper eyeball from its centroid, on the base mesh."""
    from avatar.body import assets

    rows = rig._eye_rows[eye]
    h = assets.base_mesh().vertices[rig._blend[rows]].astype(np.float64)
    u = h - h.mean(axis=0)
    return rows, u / np.linalg.norm(u, axis=1, keepdims=True)


def _level(rig, B: np.ndarray, d: np.ndarray) -> bool:
    """Whether a displacement moves the lowest points of both feet by the same height."""
    t = rig.template
    moved = [(B[t.part_mask(f), 1] + d[t.part_mask(f), 1]).min() - B[t.part_mask(f), 1].min()
             for f in ("foot_l", "foot_r")]
    return abs(moved[0] - moved[1]) < POSITION_EPSILON * 10


def _moves_floor(d: np.ndarray) -> bool:
    """Whether a displacement carries the floor shift: a uniform vertical move of much of the body."""
    from avatar.body.assets import N_BODY

    y = np.median(d[:N_BODY, 1])
    if abs(y) < POSITION_EPSILON:
        return False
    same = np.abs(d[:N_BODY] - np.array([0.0, y, 0.0])).max(axis=1) < POSITION_EPSILON
    return bool(same.mean() > 0.25)


# -- latent targets ------------------------------------------------------------
def latent_morphs(model, name: str, n_vertices: int) -> Morphs:
    """One target per component of a linear latent model, at +1 sd of its training codes.

    The base is the model's mean avatar (every code at its mean); weight ``z`` on target ``i`` is
    code ``mean_i + z * sd_i``, exactly, since the decoder is affine in the code. MorphError for a
    nonlinear model or one that does not model vertices.
    """
    if model.kind not in LINEAR_KINDS:
        raise MorphError(f"model {name!r} ({model.kind}) is nonlinear: its components are not morph "
                         f"targets (use a linear model: {', '.join(LINEAR_KINDS)})")
    if model.features_ is None or "vertices" not in model.features_.names:
        raise MorphError(f"model {name!r} does not model vertices, so it has no morph targets")
    k = model.n_components
    Z = np.repeat(model.code_mean_[None], k + 1, axis=0)
    Z[1:] += np.diag(model.code_std_)
    V = _decode(model, Z)
    if V.shape[1] != n_vertices:
        raise MorphError(f"model {name!r} makes {V.shape[1]} vertices but the template has {n_vertices}")
    base, deltas = V[0], V[1:] - V[0]
    # the decoder is affine: check it on one random code before calling the targets exact
    z = np.random.default_rng(0).uniform(-2.0, 2.0, k)
    err = np.abs(_decode(model, (model.code_mean_ + z * model.code_std_)[None])[0]
                 - (base + np.tensordot(z, deltas, axes=1))).max()
    if err > 1e-5:
        raise MorphError(f"model {name!r} ({model.kind}) does not decode linearly (off by {err * 1e3:.3f} mm)")
    names = [f"{name}.z{i}" for i in range(k)]
    evr = getattr(model, "explained_variance_ratio_", None)
    extras = {"latent": {"model": name, "kind": model.kind, "targets": names,
                         "unit": "standard deviations of the training codes",
                         "code_mean": [float(v) for v in model.code_mean_],
                         "code_std": [float(v) for v in model.code_std_],
                         "explained_variance_ratio": None if evr is None else [float(v) for v in evr],
                         "linear_error_mm": float(err) * 1e3}}
    return Morphs(base, names, deltas.astype(np.float32), np.zeros(k), [], extras)


def _decode(model, Z) -> np.ndarray:
    """(n, V, 3) float64 vertices of codes Z (n, k), computed in float64 throughout."""
    X = model.inverse_transform(np.asarray(Z, np.float64))
    P = model.features_.prepared(X)["vertices"]
    return P.reshape(len(P), -1, 3)


# -- normals -------------------------------------------------------------------
class Normals:
    """Angle-weighted vertex normals of a fixed triangle mesh (as trimesh's), and their change under
    a displacement, recomputed only around the vertices it moves."""

    def __init__(self, faces: np.ndarray, n_vertices: int):
        from scipy.sparse import csr_matrix

        self.faces = np.asarray(faces, np.int64)
        self.n = n_vertices
        f = len(self.faces)
        self.incidence = csr_matrix((np.ones(3 * f, bool), (self.faces.ravel(), np.repeat(np.arange(f), 3))),
                                    shape=(n_vertices, f))

    def __call__(self, V: np.ndarray, faces: np.ndarray | None = None) -> np.ndarray:
        """(V, 3) positions -> (V, 3) unit normals (float64), from ``faces`` (indices; default all)."""
        V = np.asarray(V, np.float64)
        tri = self.faces if faces is None else self.faces[faces]
        p = [V[tri[:, k]] for k in range(3)]
        fn = np.cross(p[1] - p[0], p[2] - p[0])
        fn /= np.maximum(np.linalg.norm(fn, axis=-1, keepdims=True), 1e-300)
        out = np.zeros(V.shape)
        for k in range(3):
            u, v = p[(k + 1) % 3] - p[k], p[(k + 2) % 3] - p[k]
            cos = (u * v).sum(-1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1), 1e-300)
            w = np.arccos(np.clip(cos, -1.0, 1.0))[:, None] * fn
            for c in range(3):
                out[:, c] += np.bincount(tri[:, k], w[:, c], minlength=len(V))
        return out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-300)

    def delta(self, base: np.ndarray, n0: np.ndarray, d: np.ndarray) -> np.ndarray:
        """(V, 3) normals of ``base + d`` minus ``n0`` (the base's), recomputed where ``d`` reaches."""
        moved = np.flatnonzero(np.any(d != 0, axis=1))
        out = np.zeros(base.shape)
        if not len(moved):
            return out
        mask = np.zeros(self.n, bool)
        mask[self.faces[self.incidence[moved].indices]] = True
        near = np.flatnonzero(mask)                                      # vertices whose normal changes
        faces = np.zeros(len(self.faces), bool)
        faces[self.incidence[near].indices] = True
        ring = self.faces[faces]                                         # every face around them
        mask[ring] = True
        local = np.flatnonzero(mask)                                     # their corners (near among them)
        at = np.empty(self.n, np.int64)
        at[local] = np.arange(len(local))
        sub = Normals.__new__(Normals)
        sub.faces = at[ring]
        n1 = sub(base[local] + d[local])
        out[near] = n1[at[near]] - n0[near]
        return out


def export_targets(morphs: Morphs, template) -> tuple[np.ndarray, np.ndarray]:
    """(positions, normals): (T, E, 3) float32 deltas on the template's seam-split export vertices.

    Normal deltas are each target's normals at weight 1 minus the base's (angle-weighted, like the
    base mesh's own normals); those under :data:`NORMAL_EPSILON` are zero.
    """
    index = template.export_index
    normals = Normals(template.export_faces, len(index))
    base = morphs.base[index]
    n0 = normals(base)
    P = morphs.deltas[:, index]
    N = np.zeros(P.shape, np.float32)
    for t in range(len(P)):
        dn = normals.delta(base, n0, P[t].astype(np.float64))
        dn[np.abs(dn).max(axis=-1) < NORMAL_EPSILON] = 0.0
        N[t] = dn
    return P, N
