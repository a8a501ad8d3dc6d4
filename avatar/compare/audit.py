"""The rig audit: what every designer slider does to the mesh and the texture (no learning).

For each slider the rig's Jacobian is estimated by finite differences around
``R`` random avatars (``rig.sample(R, seed)``), batched: every perturbed slider
row of every avatar is built at once and sent through ``rig.vertices`` and
``rig.textures`` in chunks. Only sliders with effects are evaluated for the
mesh (the rig builds its geometry from effects alone) and only the sliders
:mod:`avatar.skin.texture` reads for the texture; every other effect is exactly 0.

    from avatar.compare.audit import audit_rig
    a = audit_rig(avatar.load_rig(), samples=32, seed=0, texture_size=128)
    a.geometry_max_mm, a.region, a.cosine["geometry"], a.pairs(), a.ranks["combined"]
    json.dump(a.to_json(), f); print(a.summary())

* continuous and integer sliders: central differences, ``s - h`` and ``s + h``
  with ``h = step * (max - min)`` (at least 1 for integers), both clipped into
  ``[min, max]`` (one-sided at the ends). The per-avatar Jacobian ``J_r`` times
  the slider's range gives its *full-range effect*: how far each vertex moves
  when the slider goes from min to max (linearised at that avatar).
* bool and categorical sliders have no "unit": every level is evaluated at
  every avatar; the full-range effect is the difference between the two levels
  whose (avatar-averaged) results lie farthest apart, and the effective-rank
  matrix gets all ``k - 1`` contrasts (rows ``sqrt(2) (F_c - mean_c F_c)``, so a
  bool contributes exactly its difference's energy).

Geometry is measured in millimetres per vertex (``|d vertex|``), texture as the
RGB change per texel (0-1 scale, Euclidean over the three channels) on the
atlas's covered texels at ``texture_size``.

Outputs per slider: mean and max displacement over vertices (full range and
per unit), the share of vertices that move more than 1 mm, the template part
where the slider changes the shape most (its *region*: measured on the change
of each vertex's edges, so parts that are only carried along rigidly, like the
hands of a shoulder-width slider, do not count; mirrored parts count
together; for texture-only sliders the part whose colours change most), the texture effect's
mean and max, and a *nonlinearity* ``1 - |mean_r J_r| / mean_r |J_r|`` (0: the
same effect on every avatar; towards 1: the effect changes direction from
avatar to avatar, e.g. a tattoo position slider). Across sliders: cosine
similarities of the averaged effect vectors (geometry, texture, and combined
with each modality scaled to equal total energy), flagged pairs (|cos| above
0.9 "redundant", 0.5 to 0.9 "entangled"), and the effective rank of the effect
matrix (Roy & Vetterli's entropy rank, and how many singular values hold 90,
95 and 99 % of the energy).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

VISIBLE_MM = 0.5            # a slider moves the mesh visibly if some vertex moves >= 0.5 mm over its range
VISIBLE_RGB = 3.0 / 255.0   # ... or changes some texel by >= 3 levels of 8-bit colour
SUPPORT_MM = 1.0            # a vertex is "moved" by a slider if it moves > 1 mm over the slider's range
SUPPORT_RGB = 3.0 / 255.0
REDUNDANT = 0.9             # |cos| above: two sliders do (nearly) the same thing
ENTANGLED = 0.5             # |cos| above (and below REDUNDANT): they overlap a lot
ENERGY_LEVELS = (0.9, 0.95, 0.99)
MODALITIES = ("geometry", "texture", "combined")


# --------------------------------------------------------------------------
# pure array functions (unit-tested on synthetic effects)
# --------------------------------------------------------------------------
def cosine_matrix(E: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Cosine similarity of every pair of rows.

    E : (P, d) float  effect vectors -> (P, P) float64 in [-1, 1]; rows of
    (near) zero norm get 0 everywhere, including the diagonal.
    """
    E = np.asarray(E)
    return cosine_from_gram(_gram(E), eps)


def cosine_from_gram(gram: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """(P, P) cosines from a Gram matrix ``E @ E.T`` (see :func:`cosine_matrix`)."""
    norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    ok = norms > eps * max(norms.max(initial=0.0), 1.0)
    inv = np.where(ok, 1.0 / np.where(ok, norms, 1.0), 0.0)
    return np.clip(gram * inv[:, None] * inv[None, :], -1.0, 1.0)


def _gram(E: np.ndarray) -> np.ndarray:
    """(P, P) float64 ``E @ E.T``, accumulated in float64 in column blocks (E may be float32)."""
    P, d = E.shape
    out = np.zeros((P, P))
    for c in range(0, d, 32768):
        B = np.asarray(E[:, c:c + 32768], np.float64)
        out += B @ B.T
    return out


def singular_values(E: np.ndarray) -> np.ndarray:
    """(min(P, d),) float64 singular values of E (P, d), descending.

    Computed from the (P, P) Gram matrix, which is cheap when P (sliders) is
    much smaller than d (3 x vertices).
    """
    E = np.asarray(E)
    if E.size == 0:
        return np.zeros(0)
    gram = _gram(E) if E.shape[0] <= E.shape[1] else _gram(E.T)
    return singular_values_from_gram(gram)


def singular_values_from_gram(gram: np.ndarray) -> np.ndarray:
    """Singular values of E, descending, from its Gram matrix ``E @ E.T``."""
    if gram.size == 0:
        return np.zeros(0)
    return np.sqrt(np.clip(np.linalg.eigvalsh(gram)[::-1], 0.0, None))


def effective_rank(sv: np.ndarray, levels=ENERGY_LEVELS) -> dict:
    """How many dimensions singular values ``sv`` (k,) really span.

    Returns ``{"entropy": float, "k90": int, "k95": int, "k99": int,
    "energy": list}``: the entropy effective rank of Roy & Vetterli (2007),
    ``exp(-sum p_i log p_i)`` with ``p_i = s_i / sum s``, which is exactly k for
    k equal singular values; the number of singular values whose squares hold
    each ``levels`` share of the total energy; and the cumulative energy curve.
    """
    sv = np.sort(np.abs(np.asarray(sv, np.float64)))[::-1]
    total = sv.sum()
    out: dict = {}
    if total <= 0:
        out["entropy"] = 0.0
        out.update({f"k{round(100 * q)}": 0 for q in levels})
        out["energy"] = []
        return out
    p = sv[sv > 0] / total
    out["entropy"] = float(np.exp(-(p * np.log(p)).sum()))
    energy = np.cumsum(sv ** 2) / (sv ** 2).sum()
    for q in levels:
        out[f"k{round(100 * q)}"] = int(np.searchsorted(energy, q - 1e-12) + 1)
    out["energy"] = energy.tolist()
    return out


def nonlinearity(D: np.ndarray) -> float:
    """How much one slider's effect changes between avatars: ``1 - |mean_r D_r| / mean_r |D_r|``.

    D : (R, d) float  the slider's effect (Jacobian) at each of R avatars.
    0 when every avatar gets the same effect; near 1 when the effects point in
    unrelated directions; 0 for a slider without effect.
    """
    D = np.asarray(D, np.float64)
    scale = np.linalg.norm(D, axis=1).mean()
    if scale <= 0:
        return 0.0
    return float(max(0.0, 1.0 - np.linalg.norm(D.mean(axis=0)) / scale))


def part_shares(magnitude: np.ndarray, parts: np.ndarray, n_parts: int) -> np.ndarray:
    """Share of each slider's effect that falls in each part.

    magnitude : (P, n) float  effect size per point (vertex or texel)
    parts : (n,) int          part index of each point
    Returns (P, n_parts) float64, rows summing to 1 (0 for a slider with no effect).
    """
    M = np.asarray(magnitude, np.float64)
    onehot = np.zeros((len(parts), n_parts))
    onehot[np.arange(len(parts)), parts] = 1.0
    sums = M @ onehot
    total = sums.sum(axis=1, keepdims=True)
    return np.divide(sums, total, out=np.zeros_like(sums), where=total > 0)


def flag_pairs(cos: np.ndarray, names, visible=None, modality: str = "geometry",
               redundant: float = REDUNDANT, entangled: float = ENTANGLED) -> list[dict]:
    """Pairs of sliders whose effects overlap, most similar first.

    cos : (P, P) cosine matrix; visible : (P,) bool, only those sliders count.
    Returns dicts ``{"a", "b", "modality", "cosine", "verdict"}`` with verdict
    "redundant" (|cos| >= redundant) or "entangled" (entangled <= |cos| < redundant).
    """
    cos = np.asarray(cos)
    P = len(cos)
    vis = np.ones(P, bool) if visible is None else np.asarray(visible, bool)
    i, j = np.triu_indices(P, k=1)
    keep = vis[i] & vis[j] & (np.abs(cos[i, j]) >= entangled)
    i, j = i[keep], j[keep]
    order = np.argsort(-np.abs(cos[i, j]), kind="stable")
    return [{"a": names[a], "b": names[b], "modality": modality, "cosine": round(float(cos[a, b]), 4),
             "verdict": "redundant" if abs(cos[a, b]) >= redundant else "entangled"}
            for a, b in zip(i[order], j[order])]


def perturbations(spec, S: np.ndarray, step: float = 0.1):
    """The slider rows an audit evaluates, one block per slider.

    S : (R, P) base avatars. Returns a list of ``(j, values (R, m), denom (R,) or None)``:
    for continuous and integer sliders ``m = 2`` (the values ``s - h`` and
    ``s + h``, clipped) and ``denom`` their difference; for bool and categorical
    sliders every level (``m = k``) and ``denom`` None.
    """
    R = len(S)
    blocks = []
    for j, s in enumerate(spec.sliders):
        if s.kind in ("bool", "categorical"):
            levels = np.arange(2 if s.kind == "bool" else len(s.categories), dtype=np.float64)
            blocks.append((j, np.broadcast_to(levels, (R, len(levels))).copy(), None))
            continue
        h = step * (s.max - s.min)
        if s.kind == "integer":
            h = max(1.0, float(np.round(h)))
        lo = np.clip(S[:, j] - h, s.min, s.max)
        hi = np.clip(S[:, j] + h, s.min, s.max)
        denom = hi - lo
        blocks.append((j, np.stack([lo, hi], axis=1), np.where(denom > 0, denom, 1.0)))
    return blocks


def block_effect(X: np.ndarray, denom, span: float, n_points: int):
    """Statistics of one slider's block of evaluations in one modality.

    X : (R, m, d) float   flattened vertices (d = 3 V, metres) or texel colours (d = 3 N, 0-1)
    denom : (R,) slider step of a continuous slider (then m = 2), or None for levels
    span : the slider's range (max - min); full-range effects are J * span
    Returns ``(effect (d,), per_point (n_points,), nonlinearity, rank_rows (r, d), pair)``:
    the avatar-averaged full-range effect, the mean |effect| per point, the
    nonlinearity, the rows it adds to the effective-rank matrix and, for
    levels, the indices of the two farthest levels (None for continuous sliders).
    """
    R, m, d = X.shape
    if denom is not None:
        D = (X[:, 1] - X[:, 0]) * (span / denom).astype(np.float32)[:, None]
        pair = None
    else:
        M = X.mean(axis=0, dtype=np.float64)                                  # (m, d)
        sq = (M * M).sum(axis=1)
        dist = sq[:, None] + sq[None, :] - 2.0 * (M @ M.T)
        a, b = np.unravel_index(int(np.argmax(dist)), dist.shape)
        pair = tuple(sorted((int(a), int(b))))
        D = X[:, pair[1]] - X[:, pair[0]]
    effect = D.mean(axis=0, dtype=np.float64)
    sq = np.einsum("rpc,rpc->rp", D.reshape(R, n_points, 3), D.reshape(R, n_points, 3))  # (R, n)
    per_point = np.sqrt(sq).mean(axis=0)
    scale = np.sqrt(sq.sum(axis=1, dtype=np.float64)).mean()
    nonlin = 0.0 if scale <= 0 else float(max(0.0, 1.0 - np.linalg.norm(effect) / scale))
    rank_rows = effect[None] if denom is not None else np.sqrt(2.0) * (M - M.mean(axis=0))
    return effect.astype(np.float32), per_point, nonlin, rank_rows, pair


def edges_of(faces: np.ndarray) -> np.ndarray:
    """(E, 2) int64: the unique undirected edges of triangles ``faces`` (F, 3)."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return np.unique(np.sort(e, axis=1), axis=0)


def deformation(effect: np.ndarray, vertices: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """How much an effect changes the local shape around each vertex (not just moves it).

    effect : (P, V, 3) displacements; vertices : (V, 3) the template; edges : (E, 2).
    Returns (P, V) float32: the mean over a vertex's edges of ``|u_i - u_k| / |x_i - x_k|``,
    the relative change of its edge vectors. A rigid translation gives 0 everywhere
    and a uniform scaling by ``1 + s`` gives ``s``: an arm moved sideways by a shoulder
    slider is not "deformed", the shoulder is.
    """
    i, k = edges[:, 0], edges[:, 1]
    length = np.linalg.norm(vertices[i] - vertices[k], axis=1)
    length = np.where(length > 0, length, np.inf).astype(np.float32)
    V = len(vertices)
    count = np.bincount(i, minlength=V) + np.bincount(k, minlength=V)
    out = np.empty(effect.shape[:2], np.float32)
    for p in range(len(effect)):  # one slider at a time keeps the (E, 3) temporaries small
        strain = np.linalg.norm(effect[p, i] - effect[p, k], axis=1) / length
        out[p] = (np.bincount(i, strain, V) + np.bincount(k, strain, V)) / np.maximum(count, 1)
    return out


# --------------------------------------------------------------------------
# the result
# --------------------------------------------------------------------------
@dataclass(eq=False)
class Audit:
    """Everything the audit of one rig found. Arrays are indexed by slider (P) in rig order.

    Full-range figures: millimetres (geometry) or 0-1 RGB (texture) over the
    slider's whole range (min to max; for bool and categorical sliders between
    the two most different levels). ``*_per_unit`` divide by the range.
    """

    names: list
    labels: list
    groups: list
    kinds: list
    units: list
    spans: np.ndarray                    # (P,) max - min (1 for bool / categorical)
    part_names: list
    settings: dict
    geometry_mean_mm: np.ndarray         # (P,) mean over vertices of |displacement|, full range
    geometry_max_mm: np.ndarray          # (P,) largest vertex displacement, full range
    geometry_support: np.ndarray         # (P,) share of vertices moving > 1 mm
    texture_mean: np.ndarray             # (P,) mean over texels of |RGB change| (0-1)
    texture_max: np.ndarray              # (P,)
    texture_support: np.ndarray          # (P,) share of texels changing > 3/255
    shape_part_share: np.ndarray         # (P, parts) where the slider changes the shape (deformation)
    moved_part_share: np.ndarray         # (P, parts) where vertices move (displacement)
    texture_part_share: np.ndarray       # (P, parts) where the colours change
    geometry_nonlinearity: np.ndarray    # (P,)
    texture_nonlinearity: np.ndarray     # (P,)
    extremes: list                       # per slider: (level a, level b) names, or None
    cosine: dict                         # modality -> (P, P)
    spectra: dict                        # modality (+ "_directions") -> singular values
    ranks: dict                          # modality (+ "_directions") -> effective_rank(...) dict
    vertex_mm: np.ndarray = field(repr=False)        # (P, V) float32 mean |displacement| per vertex, mm
    texel_change: np.ndarray = field(repr=False)     # (P, N) float32 mean |RGB change| per covered texel
    texel_points: np.ndarray = field(repr=False)     # (N, 3) where each covered texel sits on the template
    vertex_points: np.ndarray = field(repr=False)    # (V, 3) the template's vertices (for pictures)
    vertex_texture: np.ndarray = field(repr=False)   # (P, V) float32 texel change at each vertex's UV
    seconds: float = 0.0

    # -- derived ---------------------------------------------------------
    @property
    def visible_geometry(self) -> np.ndarray:
        """(P,) bool: some vertex moves at least ``visible_mm`` over the slider's range."""
        return self.geometry_max_mm >= self.settings["visible_mm"]

    @property
    def visible_texture(self) -> np.ndarray:
        """(P,) bool: some texel changes by at least ``visible_rgb``."""
        return self.texture_max >= self.settings["visible_rgb"]

    @property
    def scene(self) -> np.ndarray:
        """(P,) bool: scene sliders (camera, light, background), which by design change renders only."""
        names = set(self.settings.get("scene_sliders", ()))
        return np.array([n in names for n in self.names], bool)

    @property
    def invisible(self) -> np.ndarray:
        """(P,) bool: body sliders that change neither the mesh nor the texture noticeably."""
        return ~(self.visible_geometry | self.visible_texture) & ~self.scene

    @property
    def geometry_max_mm_per_unit(self) -> np.ndarray:
        return self.geometry_max_mm / self.spans

    @property
    def geometry_mean_mm_per_unit(self) -> np.ndarray:
        return self.geometry_mean_mm / self.spans

    @property
    def modality(self) -> list:
        """Per slider: "geometry", "texture", "both" or "none"."""
        g, t = self.visible_geometry, self.visible_texture
        return ["scene" if c else "both" if a and b else "geometry" if a else "texture" if b else "none"
                for a, b, c in zip(g, t, self.scene)]

    @property
    def region(self) -> list:
        """Per slider: the part with the largest share of its shape change (of its colour
        change for texture-only sliders); "" for invisible sliders."""
        # mirrored parts count together (a slider acting on both ears is an "ear" slider),
        # then the larger side names the region
        from avatar.body.anatomy import mirror_name as _mirror

        twin = np.array([self.part_names.index(_mirror(n)) if _mirror(n) in self.part_names else k
                         for k, n in enumerate(self.part_names)])
        out = []
        for j in range(len(self.names)):
            share = self._share(j)
            if share is None:
                out.append("")
                continue
            both = share + np.where(twin != np.arange(len(twin)), share[twin], 0.0)
            best = np.flatnonzero(both >= both.max() - 1e-12)
            out.append(self.part_names[int(best[np.argmax(share[best])])])
        return out

    def regions(self, j: int, top: int = 3, min_share: float = 0.05) -> list[tuple[str, float]]:
        """Slider ``j``'s ``top`` parts with their shares (those of at least ``min_share``, and the first)."""
        share = self._share(j)
        if share is None:
            return []
        order = np.argsort(-share, kind="stable")[:top]
        return [(self.part_names[k], float(share[k])) for k in order if share[k] >= min_share or k == order[0]]

    def region_text(self, j: int, top: int = 3) -> str:
        """Readable regions of slider ``j``: "eye (L+R) 91%, face 8%"; mirrored parts merged."""
        share = self._share(j)
        if share is None:
            return "-"
        merged: dict[str, float] = {}
        for name, value in zip(self.part_names, share):
            key = f"{name[:-2]} (L+R)" if name.endswith(("_l", "_r")) else name
            merged[key] = merged.get(key, 0.0) + float(value)
        ranked = sorted(merged.items(), key=lambda kv: -kv[1])
        shown = [f"{k} {v:.0%}" for i, (k, v) in enumerate(ranked[:top]) if v >= 0.05 or i == 0]
        text = ", ".join(shown)
        if ranked[0][1] < 0.25:
            text = "spread out: " + text
        return text

    def _share(self, j: int):
        if self.visible_geometry[j]:
            return self.shape_part_share[j]
        if self.visible_texture[j]:
            return self.texture_part_share[j]
        return None

    @property
    def nonlinearity(self) -> np.ndarray:
        """(P,) the nonlinearity of each slider's main modality (geometry unless texture-only)."""
        return np.where(self.visible_geometry | ~self.visible_texture,
                        self.geometry_nonlinearity, self.texture_nonlinearity)

    def pairs(self, redundant: float | None = None, entangled: float | None = None) -> list[dict]:
        """Flagged pairs over geometry and texture (each among the sliders visible there), by |cos|."""
        red = self.settings["redundant"] if redundant is None else redundant
        ent = self.settings["entangled"] if entangled is None else entangled
        out = (flag_pairs(self.cosine["geometry"], self.names, self.visible_geometry, "geometry", red, ent)
               + flag_pairs(self.cosine["texture"], self.names, self.visible_texture, "texture", red, ent))
        return sorted(out, key=lambda p: -abs(p["cosine"]))

    # -- output ----------------------------------------------------------
    def slider_rows(self) -> list[dict]:
        """One plain dict per slider (what the report's table and audit.json list)."""
        rows = []
        region, modality, nonlin = self.region, self.modality, self.nonlinearity
        for j, name in enumerate(self.names):
            rows.append({
                "slider": name, "label": self.labels[j], "group": self.groups[j], "kind": self.kinds[j],
                "unit": self.units[j], "range": float(self.spans[j]), "modality": modality[j],
                "region": region[j], "regions": [[p, round(s, 4)] for p, s in self.regions(j)],
                "region_text": self.region_text(j),
                "geometry_mean_mm": float(self.geometry_mean_mm[j]),
                "geometry_max_mm": float(self.geometry_max_mm[j]),
                "geometry_mean_mm_per_unit": float(self.geometry_mean_mm_per_unit[j]),
                "geometry_max_mm_per_unit": float(self.geometry_max_mm_per_unit[j]),
                "geometry_support": float(self.geometry_support[j]),
                "texture_mean": float(self.texture_mean[j]), "texture_max": float(self.texture_max[j]),
                "texture_support": float(self.texture_support[j]),
                "nonlinearity": float(nonlin[j]),
                "geometry_nonlinearity": float(self.geometry_nonlinearity[j]),
                "texture_nonlinearity": float(self.texture_nonlinearity[j]),
                "extremes": list(self.extremes[j]) if self.extremes[j] else None,
                "invisible": bool(self.invisible[j]),
            })
        return rows

    def to_json(self) -> dict:
        """Plain data (lists, floats, strings) for ``json.dump``; no NaN."""
        return {
            "settings": dict(self.settings), "seconds": round(float(self.seconds), 3),
            "sliders": self.slider_rows(), "part_names": list(self.part_names),
            "invisible": [n for n, bad in zip(self.names, self.invisible) if bad],
            "pairs": self.pairs(),
            "effective_rank": {k: dict(v) for k, v in self.ranks.items()},
            "singular_values": {k: np.asarray(v).tolist() for k, v in self.spectra.items()},
            "cosine": {k: np.round(v, 5).tolist() for k, v in self.cosine.items()},
            "shape_part_share": np.round(self.shape_part_share, 5).tolist(),
            "moved_part_share": np.round(self.moved_part_share, 5).tolist(),
            "texture_part_share": np.round(self.texture_part_share, 5).tolist(),
        }

    def summary(self, top: int = 8) -> str:
        """A short terminal summary: effective rank, top flagged pairs, invisible sliders."""
        lines = [f"rig audit: {len(self.names)} sliders around {self.settings['samples']} random avatars "
                 f"({self.seconds:.1f} s)"]
        counts = {"geometry": self.visible_geometry.sum(), "texture": self.visible_texture.sum(),
                  "combined": (~self.invisible).sum()}
        for m in MODALITIES:
            r, d = self.ranks[m], self.ranks[f"{m}_directions"]
            lines.append(f"  {m:8s}: {counts[m]:3d} sliders act here; effective rank {r['entropy']:.1f} "
                         f"(90/95/99% of the energy in {r['k90']}/{r['k95']}/{r['k99']} dimensions); "
                         f"directions alone: {d['entropy']:.1f}")
        pairs = self.pairs()
        red = sum(p["verdict"] == "redundant" for p in pairs)
        lines.append(f"  redundant pairs (|cos| >= {self.settings['redundant']}): {red}; entangled pairs "
                     f"({self.settings['entangled']} <= |cos| < {self.settings['redundant']}): {len(pairs) - red}")
        for p in pairs[:top]:
            lines.append(f"    {p['verdict']:9s} {p['modality']:8s} cos {p['cosine']:+.2f}  {p['a']} ~ {p['b']}")
        bad = [n for n, b in zip(self.names, self.invisible) if b]
        lines.append(f"  invisible sliders: {', '.join(bad) if bad else 'none'}")
        return "\n".join(lines)


# --------------------------------------------------------------------------
# running it on a rig
# --------------------------------------------------------------------------
def audit_rig(rig, samples: int = 32, seed: int = 0, texture_size: int = 128, step: float = 0.1,
              chunk: int = 512, textures: bool = True) -> Audit:
    """Audit every slider of ``rig`` around ``samples`` random avatars.

    samples : random avatars (``rig.sample(samples, seed)``) the Jacobian is averaged over.
    texture_size : atlas size for the texture half. Small features need texels:
        at 64 the lips and irises cover 1 to 3 texels, at 128 about 10 to 20.
    step : finite-difference step as a share of each slider's range (10 % by
        default: textures are 8-bit, and a smaller step would leave mostly
        rounding noise in their differences).
    chunk : perturbed rows evaluated per ``rig.vertices`` / ``rig.textures`` call.
    textures : False skips the texture half (geometry only).
    """
    from avatar.skin.texels import texel_map

    _check_audit_args(samples, step, texture_size, textures)
    t0 = time.perf_counter()
    spec, template = rig.spec, rig.template
    sliders = spec.sliders
    P, V = len(sliders), rig.n_vertices
    S = rig.sample(samples, seed)
    blocks = perturbations(spec, S, step)
    spans = np.array([1.0 if s.kind in ("bool", "categorical") else (s.max - s.min) for s in sliders])
    spans = np.where(spans > 0, spans, 1.0)
    tm = texel_map(template, texture_size) if textures else None
    covered = (tm.rows * texture_size + tm.cols) if textures else np.zeros(0, np.int64)
    N = len(covered)

    geo_effect = np.zeros((P, 3 * V), np.float32)
    tex_effect = np.zeros((P, 3 * N), np.float32)
    vertex_mm = np.zeros((P, V), np.float32)
    texel_change = np.zeros((P, N), np.float32)
    nonlin = np.zeros((2, P))
    rank_rows: dict = {"geometry": [None] * P, "texture": [None] * P}
    pairs: dict = {"geometry": [None] * P, "texture": [None] * P}

    def evaluate(modality, k, active, fn, n_points, effect, per_point):
        for group in _chunks([b for b in blocks if active[b[0]]], chunk):
            rows = np.concatenate([_rows(S, j, values) for j, values, _ in group])
            X = fn(rows)
            at = 0
            for j, values, denom in group:
                m = values.shape[1]
                sl = slice(at, at + samples * m)
                at += samples * m
                effect[j], per_point[j], nonlin[k, j], rr, pairs[modality][j] = block_effect(
                    X[sl].reshape(samples, m, -1), denom, spans[j], n_points)
                rank_rows[modality][j] = rr.astype(np.float32)

    # Only sliders with effects can move the mesh (the rig builds its geometry from
    # them alone) and only the sliders avatar.skin.texture reads can paint: the others'
    # effects are exactly zero and are not evaluated.
    evaluate("geometry", 0, [s.moves_mesh for s in sliders],
             lambda rows: rig.vertices(rows).reshape(len(rows), -1), V, geo_effect, vertex_mm)
    vertex_mm *= 1000.0
    if textures:
        evaluate("texture", 1, [paints(s) for s in sliders],
                 lambda rows: (rig.textures(rows, texture_size).reshape(len(rows), -1, 3)[:, covered]
                               .reshape(len(rows), -1).astype(np.float32) / np.float32(255.0)),
                 N, tex_effect, texel_change)

    parts, n_parts = template.parts, len(template.part_names)
    shape = deformation(geo_effect.reshape(P, V, 3), template.vertices, edges_of(template.faces))
    vis_g = vertex_mm.max(axis=1) >= VISIBLE_MM
    vis_t = texel_change.max(axis=1, initial=0.0) >= VISIBLE_RGB
    extremes = _extremes(sliders, pairs, vis_g, vis_t)
    n_rank = [1 if denom is not None else values.shape[1] for _, values, denom in blocks]
    geo_rank = _stacked(rank_rows["geometry"], n_rank, 3 * V)
    tex_rank = _stacked(rank_rows["texture"], n_rank, 3 * N)
    cosine, spectra, ranks = _similarity_and_rank(geo_effect, tex_effect, geo_rank, tex_rank, vis_g, vis_t)
    settings = {"rig": str(getattr(spec, "source", spec.name)), "samples": int(samples), "seed": int(seed),
                "scene_sliders": [sliders[j].name for j in spec.scene_sliders],
                "step": float(step), "texture_size": int(texture_size) if textures else 0,
                "visible_mm": VISIBLE_MM, "visible_rgb": VISIBLE_RGB, "support_mm": SUPPORT_MM,
                "support_rgb": SUPPORT_RGB, "redundant": REDUNDANT, "entangled": ENTANGLED,
                "n_vertices": int(V), "n_texels": int(N)}
    return Audit(
        names=[s.name for s in sliders], labels=[s.label for s in sliders], groups=[s.group for s in sliders],
        kinds=[s.kind for s in sliders], units=[s.unit for s in sliders], spans=spans,
        part_names=list(template.part_names), settings=settings,
        geometry_mean_mm=vertex_mm.mean(axis=1, dtype=np.float64),
        geometry_max_mm=vertex_mm.max(axis=1).astype(np.float64),
        geometry_support=(vertex_mm > SUPPORT_MM).mean(axis=1),
        texture_mean=texel_change.mean(axis=1, dtype=np.float64) if N else np.zeros(P),
        texture_max=texel_change.max(axis=1).astype(np.float64) if N else np.zeros(P),
        texture_support=(texel_change > SUPPORT_RGB).mean(axis=1) if N else np.zeros(P),
        shape_part_share=part_shares(shape, parts, n_parts),
        moved_part_share=part_shares(vertex_mm, parts, n_parts),
        texture_part_share=part_shares(texel_change, tm.parts, n_parts) if N else np.zeros((P, n_parts)),
        geometry_nonlinearity=nonlin[0], texture_nonlinearity=nonlin[1], extremes=extremes,
        cosine=cosine, spectra=spectra, ranks=ranks, vertex_mm=vertex_mm, texel_change=texel_change,
        texel_points=tm.points if N else np.zeros((0, 3), np.float32), vertex_points=template.vertices,
        vertex_texture=texel_change[:, _vertex_texels(template, tm)] if N else np.zeros((P, V), np.float32),
        seconds=time.perf_counter() - t0)


def _check_audit_args(samples: int, step: float, texture_size: int, textures: bool) -> None:
    if samples < 2:
        raise ValueError("the audit needs at least 2 random avatars")
    if not 0 < step <= 0.5:
        raise ValueError("step must be in (0, 0.5] (a share of each slider's range)")
    if textures and not 8 <= texture_size <= 1024:
        raise ValueError("texture_size must be 8 to 1024 texels")


def _extremes(sliders, pairs: dict, vis_g: np.ndarray, vis_t: np.ndarray) -> list:
    """Each slider's most different pair of levels (by geometry, or by texture where only that shows)."""
    extremes: list = [None] * len(sliders)
    for j, s in enumerate(sliders):
        pair = pairs["geometry"][j] if vis_g[j] or not vis_t[j] else pairs["texture"][j]
        if pair is not None and pair[0] != pair[1]:
            extremes[j] = _level_names(s, pair)
    return extremes


def _stacked(rows: list, counts: list, width: int) -> np.ndarray:
    """The sliders' rank rows stacked; zeros (count, width) for a slider not evaluated."""
    return np.concatenate([r if r is not None else np.zeros((n, width), np.float32) for r, n in zip(rows, counts)])


def _similarity_and_rank(G, T, G_rank, T_rank, vis_g, vis_t):
    """Cosines, singular values and effective ranks for geometry, texture and both together.

    Both modalities together: each block scaled to unit total (Frobenius) norm, so
    that millimetres and colour levels weigh the same overall; done on the Gram
    matrices (``gram_combined = gram_g / |G|^2 + gram_t / |T|^2``).
    """
    def combine(a, b):
        ta, tb = np.trace(a), np.trace(b)
        return (a / ta if ta > 0 else a) + (b / tb if tb > 0 else b)

    gram = {"geometry": _gram(G), "texture": _gram(T)}
    gram["combined"] = combine(gram["geometry"], gram["texture"])
    gram_rank = {"geometry": _gram(G_rank), "texture": _gram(T_rank)}
    gram_rank["combined"] = combine(gram_rank["geometry"], gram_rank["texture"])
    visible = {"geometry": vis_g, "texture": vis_t, "combined": vis_g | vis_t}
    cosine, spectra, ranks = {}, {}, {}
    for m in MODALITIES:
        cosine[m] = cosine_from_gram(gram[m])
        spectra[m] = singular_values_from_gram(gram_rank[m])
        ranks[m] = effective_rank(spectra[m])
        # directions only: every visible slider's effect at unit length (Gram = cosines)
        vis = visible[m]
        spectra[f"{m}_directions"] = singular_values_from_gram(cosine[m][np.ix_(vis, vis)])
        ranks[f"{m}_directions"] = effective_rank(spectra[f"{m}_directions"])
    return cosine, spectra, ranks


def _vertex_texels(template, tm) -> np.ndarray:
    """(V,) index into the covered texels: the texel under each vertex's UV (its first UV on a seam)."""
    size = tm.size
    _, first = np.unique(template.export_index, return_index=True)  # each solid vertex's first export vertex
    uv = template.export_uv[first]
    col = np.clip((uv[:, 0] * size).astype(np.int64), 0, size - 1)
    row = np.clip(((1.0 - uv[:, 1]) * size).astype(np.int64), 0, size - 1)
    return tm.fill[row, col]


def paints(slider) -> bool:
    """Whether :mod:`avatar.skin.texture` reads this slider (it paints by slider name)."""
    from avatar.skin.texture import DEFAULTS

    return slider.name in DEFAULTS


def _rows(S: np.ndarray, j: int, values: np.ndarray) -> np.ndarray:
    """(R * m, P): avatar r's sliders with column j set to each of its m values, avatar-major."""
    R, m = values.shape
    rows = np.repeat(S, m, axis=0)
    rows[:, j] = values.reshape(-1)
    return rows


def _chunks(blocks, chunk: int):
    """Group consecutive blocks so that each group has at most ``chunk`` rows (or one block)."""
    group, n = [], 0
    for b in blocks:
        size = b[1].size
        if group and n + size > chunk:
            yield group
            group, n = [], 0
        group.append(b)
        n += size
    if group:
        yield group


def _level_names(slider, pair) -> tuple[str, str]:
    if slider.kind == "bool":
        return ("false", "true")
    return (slider.categories[pair[0]], slider.categories[pair[1]])
