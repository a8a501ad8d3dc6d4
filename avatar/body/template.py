"""The template mesh: one fixed topology that every avatar shares.

:func:`build` makes it from :mod:`avatar.body.body_shapes` (signed distances ->
marching cubes -> quadric decimation -> cleanup -> part labels -> UV atlas).
Marching-cubes and decimation output changes with library versions, so the
result is committed under ``meshes/`` and :func:`load` reads that file: the
committed file, not the build code, is the topology every dataset and model
refers to. ``python -m avatar.body.template`` rebuilds it on purpose.

Files written for a template called ``humanoid``:
    humanoid.obj   positions, UVs (``f v/vt``), one ``g`` group per part
    humanoid.ply   the watertight solid with a per-vertex ``part`` property
    humanoid.json  part names and vertex counts, sizes, provenance
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from avatar.body import anatomy, body_shapes, sdf

MESH_DIR = Path(__file__).resolve().parents[2] / "meshes"
FORMAT_VERSION = 1

PART_NAMES = (
    "head", "forehead", "face", "nose", "mouth", "chin", "ear_l", "ear_r", "eye_l", "eye_r",
    "neck", "chest", "abdomen", "pelvis",
    "upper_arm_l", "upper_arm_r", "forearm_l", "forearm_r", "hand_l", "hand_r",
    "thigh_l", "thigh_r", "shin_l", "shin_r", "foot_l", "foot_r",
)


@dataclass(frozen=True, eq=False)
class Template:
    """A fixed-topology mesh with UVs and part labels.

    vertices : (V, 3) float64   positions of the watertight solid, metres
    faces    : (F, 3) int64     triangles into ``vertices``, outward winding
    uv       : (U, 2) float64   texture coordinates in [0, 1]
    uv_faces : (F, 3) int64     triangles into ``uv`` (corners match ``faces``)
    parts    : (V,) int64       index into ``part_names``; vertices are sorted by part
    part_names : tuple of str
    """

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    uv_faces: np.ndarray
    parts: np.ndarray
    part_names: tuple = PART_NAMES
    name: str = "humanoid"

    @cached_property
    def export_index(self) -> np.ndarray:
        """(E,) int: solid vertex of each seam-split export vertex (one UV each)."""
        return self._split[0]

    @cached_property
    def export_uv(self) -> np.ndarray:
        """(E, 2) float: the UV of each export vertex."""
        return self.uv[self._split[1]]

    @cached_property
    def export_faces(self) -> np.ndarray:
        """(F, 3) int: faces into the export vertices."""
        return self._split[2]

    @cached_property
    def _split(self):
        # One export vertex per distinct (position, uv) corner pair, ordered by
        # first appearance in the solid's vertex order so exports stay stable.
        pairs = np.stack([self.faces.ravel(), self.uv_faces.ravel()], axis=1)
        order = np.lexsort((pairs[:, 1], pairs[:, 0]))
        uniq, inverse = np.unique(pairs[order], axis=0, return_inverse=True)
        corner_to_export = np.empty(len(pairs), dtype=np.int64)
        corner_to_export[order] = inverse.ravel()
        return uniq[:, 0], uniq[:, 1], corner_to_export.reshape(-1, 3)

    @cached_property
    def mirror(self) -> np.ndarray:
        """(V,) int: the vertex at each vertex's mirror image (x -> -x)."""
        return mirror_map(self.vertices)

    def part_mask(self, *names: str) -> np.ndarray:
        """(V,) bool: vertices in any of the named parts."""
        ids = [self.part_names.index(n) for n in names]
        return np.isin(self.parts, ids)

    @cached_property
    def vertex_normals(self) -> np.ndarray:
        """(V, 3) float: area-weighted unit vertex normals of the template."""
        return vertex_normals(self.vertices, self.faces)


def mirror_map(vertices: np.ndarray, decimals: int = 6) -> np.ndarray:
    """(V,) int such that ``vertices[m] == vertices * (-1, 1, 1)``; raises if asymmetric."""
    key = np.round(vertices, decimals)
    flipped = key * (-1.0, 1.0, 1.0) + 0.0  # + 0.0 turns -0.0 into 0.0
    key = key + 0.0
    order = np.lexsort(key.T[::-1])
    order_f = np.lexsort(flipped.T[::-1])
    if not np.array_equal(key[order], flipped[order_f]):
        raise ValueError("the template is not mirror-symmetric")
    out = np.empty(len(vertices), dtype=np.int64)
    out[order_f] = order
    return out


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit normals. vertices : (V, 3); faces : (F, 3) -> (V, 3)."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    face_normals = np.cross(b - a, c - a)
    vn = np.zeros_like(vertices, dtype=np.float64)
    for corner in range(3):
        for axis in range(3):
            vn[:, axis] += np.bincount(faces[:, corner], face_normals[:, axis], len(vertices))
    return vn / np.maximum(np.linalg.norm(vn, axis=-1, keepdims=True), 1e-12)


class VertexNormals:
    """Area-weighted unit vertex normals of any vertex positions on one fixed set of faces.

    The face-to-vertex incidence is built once, so each call is one gather, one cross
    product and one sparse product: what per-avatar rendering and the explorer need.
    ``normals = VertexNormals(template.faces, len(template.vertices)); normals(V)`` ->
    (V, 3) float32 for vertices (V, 3).
    """

    def __init__(self, faces: np.ndarray, n_vertices: int):
        from scipy.sparse import csr_matrix

        faces = np.asarray(faces, np.int64)
        self._corners = np.ascontiguousarray(faces.ravel(), dtype=np.intp)
        cols = np.repeat(np.arange(len(faces)), 3)
        self._incidence = csr_matrix((np.ones(self._corners.size, np.float32), (self._corners, cols)),
                                     shape=(n_vertices, len(faces)))

    def __call__(self, vertices: np.ndarray) -> np.ndarray:
        corners = np.take(np.asarray(vertices, np.float32), self._corners, axis=0).reshape(-1, 3, 3)
        n = self._incidence @ np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        n /= np.maximum(np.sqrt(np.einsum("ij,ij->i", n, n)), 1e-12)[:, None]
        return n.astype(np.float32, copy=False)


# --------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------
# The half body is cut on grid planes into pieces that are decimated to their
# own face budgets: the face and the hands need far more triangles per square
# centimetre than the trunk. Budgets count faces of the whole (mirrored) body.
HEAD_SPLIT_Y = 1.49   # below the chin, above the shoulders
WRIST_SPLIT_X = 0.52  # just inside the wrist
BUDGETS = {"body": 26000, "head": 16000, "hands": 6000}


def build(step: float = 0.003, budgets: dict | None = None, name: str = "humanoid") -> Template:
    """Build the template from the body's signed distance field (~20 s)."""
    budgets = budgets or BUDGETS
    # 1. the left half of the surface (x >= 0), open along the midline, in
    #    pieces that meet on grid planes
    pieces = _half_surface(step)
    # 2. simplify each piece to its budget with its borders locked, and weld
    verts, faces = _weld([_decimate(v, f, budgets[k] // 2) for k, (v, f) in pieces.items()])
    verts, faces = collapse_short_edges(verts, faces)
    faces = delaunay_flips(verts, faces)
    verts = _relax_slivers(verts, faces)
    # 3. mirror and weld: the right half is the left half's exact mirror image
    verts, faces = _mirror_weld(verts, faces)
    verts, faces = _check_solid(verts, faces)
    verts, faces, eye_ids = _add_eyeballs(verts, faces)
    # 4. label parts and sort vertices by part, so each slider's support is a
    #    few contiguous blocks (the rig's block-sparse blend relies on it)
    parts = label_parts(verts, eye_ids)
    twin = mirror_map(verts)
    mirror_part = np.array([PART_NAMES.index(anatomy.mirror_name(p)) for p in PART_NAMES])
    parts = np.where(verts[:, 0] < 0, mirror_part[parts[twin]], parts)
    order = np.argsort(parts, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    verts, parts, faces = verts[order], parts[order], rank[faces]
    faces = faces[np.lexsort((faces[:, 0], parts[faces].min(axis=1)))]
    # 5. lay out a texture atlas
    uv, uv_faces = _atlas(verts, faces)
    return Template(np.round(verts, 6), faces, np.round(uv, 6), uv_faces, parts, PART_NAMES, name)


def _half_surface(step: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from skimage.measure import marching_cubes

    lo, hi = body_shapes.bounds()
    grid = sdf.Grid.around((0.0, lo[1], lo[2]), hi, step)  # x = 0 is a grid plane
    field = sdf.evaluate(grid, body_shapes.body_program())
    ky = int(round((HEAD_SPLIT_Y - grid.origin[1]) / step))
    kx = int(round((WRIST_SPLIT_X - grid.origin[0]) / step))
    boxes = {"body": (slice(0, kx + 1), slice(0, ky + 1)),
             "head": (slice(0, None), slice(ky, None)),
             "hands": (slice(kx, None), slice(0, ky + 1))}
    pieces = {}
    for key, (sx, sy) in boxes.items():
        # The level is 1e-7, not 0: a grid node exactly on the surface would
        # give marching cubes two coincident vertices. Each piece is open
        # where it meets the grid's x = 0 face and the cut planes; vertices
        # there lie exactly on those planes, identical in both pieces.
        verts, faces, _, _ = marching_cubes(field[sx, sy], 1e-7, spacing=(step,) * 3, method="lewiner")
        shift = np.asarray(grid.origin) + step * np.array([sx.start, sy.start, 0])
        pieces[key] = (verts + shift, faces.astype(np.int64))
    return pieces


def _decimate(verts, faces, target_faces: int):
    import pyfqmr

    simplifier = pyfqmr.Simplify()
    simplifier.setMesh(verts.astype(np.float64), faces.astype(np.int32))
    simplifier.simplify_mesh(target_count=target_faces, aggressiveness=7,
                             preserve_border=True, verbose=False)
    v, f, _ = simplifier.getMesh()
    return np.asarray(v, np.float64), np.asarray(f, np.int64)


def _weld(pieces):
    """Join pieces whose shared border vertices have identical coordinates."""
    verts = np.vstack([v for v, _ in pieces])
    offsets = np.cumsum([0] + [len(v) for v, _ in pieces[:-1]])
    faces = np.vstack([f + o for (_, f), o in zip(pieces, offsets)])
    uniq, inverse = np.unique(verts, axis=0, return_inverse=True)
    return uniq, inverse.ravel()[faces]


def triangle_quality(verts, faces) -> np.ndarray:
    """(F,) 4 sqrt(3) area / sum of squared edges: 1 equilateral, 0 degenerate."""
    a, b, c = (verts[faces[:, i]] for i in range(3))
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    edges = ((b - a) ** 2).sum(1) + ((c - b) ** 2).sum(1) + ((a - c) ** 2).sum(1)
    return 4.0 * np.sqrt(3.0) * area / np.maximum(edges, 1e-30)


def collapse_short_edges(verts, faces, min_length: float = 0.0008):
    """Merge the two ends of every edge shorter than ``min_length`` (metres).

    Decimation leaves a few nearly coincident vertex pairs; the needle
    triangles between them flip under any deformation. An edge collapses only
    where that keeps the surface manifold (its ends share exactly the two
    opposite vertices); a midline end keeps its place so the mirror welds.
    """
    faces = faces.copy()
    mid = verts[:, 0] <= 1e-9
    verts = verts.copy()
    alive = np.ones(len(faces), bool)
    while True:
        f = faces[alive]
        e = np.sort(np.vstack([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
        e = np.unique(e, axis=0)
        length = np.linalg.norm(verts[e[:, 0]] - verts[e[:, 1]], axis=1)
        short = e[length < min_length]
        if not len(short):
            break
        ring: dict[int, set] = {}
        for a, b, c in f:
            for x, y, z in ((a, b, c), (b, c, a), (c, a, b)):
                ring.setdefault(int(x), set()).update((int(y), int(z)))
        done = False
        for a, b in short:
            a, b = int(a), int(b)
            # a border (midline) edge has one opposite vertex, an inner edge two;
            # any other shared neighbour means collapsing would pinch the surface
            if len(ring[a] & ring[b]) != (1 if mid[a] and mid[b] else 2):
                continue
            keep, drop = (b, a) if mid[b] and not mid[a] else (a, b)
            verts[keep] = verts[keep] if mid[keep] != mid[drop] else 0.5 * (verts[a] + verts[b])
            faces[faces == drop] = keep
            alive &= ~((faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 2] == faces[:, 0]))
            done = True
            break  # rings changed: recompute
        if not done:
            break
    faces = faces[alive]
    used = np.unique(faces)
    return verts[used], np.searchsorted(used, faces)


def delaunay_flips(verts, faces, passes: int = 30) -> np.ndarray:
    """Flip interior edges whose two opposite angles sum to more than 180 degrees.

    Decimation leaves long thin triangles that fold under the smallest
    deformation; flipping towards a Delaunay triangulation makes them
    rounder without moving any vertex. Border edges (the midline) stay.
    """
    faces = faces.copy()
    for _ in range(passes):
        a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
        # directed edges (u -> v) with their face and opposite corner
        u = np.concatenate([a, b, c])
        v = np.concatenate([b, c, a])
        opp = np.concatenate([c, a, b])
        face = np.tile(np.arange(len(faces)), 3)
        n = len(verts)
        key = u * n + v
        order = np.argsort(key)
        twin = np.searchsorted(key[order], v * n + u)
        twin = np.clip(twin, 0, len(key) - 1)
        has_twin = key[order][twin] == v * n + u
        j = order[twin]                      # the directed edge v -> u of the neighbour
        cand = np.flatnonzero(has_twin & (u < v))
        i, j = cand, j[cand]
        pc, pd = verts[opp[i]], verts[opp[j]]
        pu, pv = verts[u[i]], verts[v[i]]

        def angle(p, q, r):  # angle at p in triangle p, q, r
            x, y = q - p, r - p
            cos = (x * y).sum(1) / np.maximum(np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1), 1e-30)
            return np.arccos(np.clip(cos, -1.0, 1.0))

        excess = angle(pc, pu, pv) + angle(pd, pu, pv) - np.pi
        # the flipped pair must face the same way as before (no fold)
        n_old = np.cross(pv - pu, pc - pu) + np.cross(pu - pv, pd - pv)
        n1 = np.cross(pd - pu, pc - pu)        # new face (u, d, c)
        n2 = np.cross(pc - pv, pd - pv)        # new face (v, c, d)
        ok = (excess > 1e-6) & ((n1 * n_old).sum(1) > 0) & ((n2 * n_old).sum(1) > 0)
        if not ok.any():
            break
        existing = set((u * n + v).tolist())
        used = np.zeros(len(faces), bool)
        changed = False
        for k in np.flatnonzero(ok)[np.argsort(-excess[ok])]:
            f1, f2 = face[i[k]], face[j[k]]
            cc, dd, uu, vv = opp[i[k]], opp[j[k]], u[i[k]], v[i[k]]
            if used[f1] or used[f2] or cc == dd or cc * n + dd in existing:
                continue
            faces[f1] = (uu, dd, cc)
            faces[f2] = (vv, cc, dd)
            used[f1] = used[f2] = True
            existing.update((cc * n + dd, dd * n + cc))
            changed = True
        if not changed:
            break
    return faces


def _relax_slivers(verts, faces, min_quality: float = 0.05, rounds: int = 100):
    """Move the corners of needle and sliver triangles halfway to their neighbours' mean.

    Decimation leaves slivers (nearly collinear or coincident corners): some
    are degenerate, and all fold under the slightest deformation. Only their
    own vertices move, by a fraction of an edge; vertices on the midline
    (x = 0) stay on it so the mirror still welds. Best effort for thin
    triangles; a degenerate one left over is an error.
    """
    from avatar.body.deformers import diffuse

    verts = verts.copy()
    mid = verts[:, 0] <= 1e-9
    for _ in range(rounds):
        bad = triangle_quality(verts, faces) < min_quality
        if not bad.any():
            break
        move = np.unique(faces[bad])
        target = diffuse(verts, faces, iterations=1)  # 0.5 own + 0.5 neighbours' mean
        verts[move] = target[move]
        verts[mid, 0] = 0.0
    a, b, c = (verts[faces[:, i]] for i in range(3))
    if (0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)).min() < 1e-9:
        raise RuntimeError("template build: could not relax degenerate triangles")
    return verts


def _mirror_weld(verts, faces):
    """Append the mirror image of an open half (x >= 0) and weld the midline."""
    a, b, c = (verts[faces[:, i]] for i in range(3))
    faces = faces[np.linalg.norm(np.cross(b - a, c - a), axis=1) > 1e-12]
    used = np.unique(faces)
    verts, faces = verts[used], np.searchsorted(used, faces)
    mid = verts[:, 0] <= 1e-9
    verts[mid, 0] = 0.0
    twin = np.arange(len(verts))
    off_mid = np.flatnonzero(~mid)
    twin[off_mid] = len(verts) + np.arange(len(off_mid))
    mirrored = verts[off_mid] * (-1.0, 1.0, 1.0)
    return np.vstack([verts, mirrored]), np.vstack([faces, twin[faces][:, ::-1]])


def _check_solid(verts, faces):
    """Keep the largest closed piece (decimation can leave mirrored slivers)."""
    import trimesh

    body = trimesh.Trimesh(verts, faces, process=False)
    labels = trimesh.graph.connected_component_labels(body.face_adjacency, len(faces))
    faces = faces[labels == np.bincount(labels).argmax()]
    used = np.unique(faces)
    verts, faces = verts[used], np.searchsorted(used, faces)
    body = trimesh.Trimesh(verts, faces, process=False)
    if not body.is_watertight or not body.is_winding_consistent:
        raise RuntimeError("template build: the body surface is not closed and manifold")
    if body.volume < 0:
        faces = faces[:, ::-1]
    return verts, faces


def _add_eyeballs(verts, faces):
    import trimesh

    eye_ids = np.zeros(len(verts), dtype=np.int64)  # 0 = body, 1 = left eye, 2 = right eye
    ball = trimesh.creation.icosphere(subdivisions=3, radius=body_shapes.EYE_RADIUS)
    left = np.asarray(ball.vertices) + body_shapes.left_eye_centre()
    # the right eye is the left one mirrored, vertex for vertex
    for k, (eye, winding) in enumerate(((left, ball.faces), (left * (-1.0, 1.0, 1.0), ball.faces[:, ::-1])), 1):
        faces = np.vstack([faces, np.asarray(winding) + len(verts)])
        verts = np.vstack([verts, eye])
        eye_ids = np.concatenate([eye_ids, np.full(len(eye), k)])
    return verts, faces, eye_ids


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip((p - a) @ ab / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1)


def label_parts(verts: np.ndarray, eye_ids: np.ndarray) -> np.ndarray:
    """(V,) part index of each vertex, from its nearest bone and face landmarks."""
    P = {n: i for i, n in enumerate(PART_NAMES)}
    L = anatomy.LANDMARKS
    x, y, z = verts.T
    # 1. nearest bone decides the limbs and the trunk
    bones = anatomy.BONE_NAMES
    dist = np.stack([_segment_distance(verts, anatomy.JOINTS[a], anatomy.JOINTS[b])
                     for a, b in anatomy.BONES.values()], axis=1)
    nearest = np.array(bones)[dist.argmin(axis=1)]
    parts = np.full(len(verts), P["chest"])
    limb_of = {"upper_arm": "upper_arm", "forearm": "forearm", "hand": "hand",
               "thigh": "thigh", "shin": "shin", "foot": "foot"}
    for bone in bones:
        stem, _, side = bone.rpartition("_")
        if stem in limb_of:
            parts[nearest == bone] = P[f"{limb_of[stem]}_{side}"]
    trunk = np.isin(nearest, ["lower_spine", "upper_spine", "chest", "clavicle_l", "clavicle_r",
                              "neck", "head"])
    parts[trunk & (y < 1.0)] = P["pelvis"]
    parts[trunk & (y >= 1.0) & (y < 1.17)] = P["abdomen"]
    parts[trunk & (y >= 1.17)] = P["chest"]
    # 2. neck and head: cut by slanted planes under the jaw and at the collar
    collar = y > 1.44 + 0.25 * np.maximum(np.abs(x) - 0.04, 0) - 0.2 * z
    near_axis = np.abs(x) < 0.12
    parts[near_axis & collar] = P["neck"]
    head = near_axis & (y > 1.548 - 0.45 * z)
    parts[head] = P["head"]
    # 3. face regions in front of the ears
    front = head & (z > 0.01)
    parts[front & (y > 1.672) & (y < 1.735) & (z > 0.04)] = P["forehead"]
    parts[front & (y <= 1.672) & (y > 1.545)] = P["face"]
    parts[front & (y <= 1.545)] = P["chin"]
    nose = _segment_distance(verts, L["nose_bridge"], L["nose_tip"]) < 0.02
    parts[front & nose & (y > 1.58)] = P["nose"]
    mouth = ((x / 0.034) ** 2 + ((y - L["mouth"][1]) / 0.02) ** 2 < 1.0) & (z > 0.06)
    parts[front & mouth] = P["mouth"]
    for side in ("l", "r"):
        ear = np.linalg.norm(verts - L[f"ear_{side}"], axis=1) < 0.04
        parts[head & ear & (np.abs(x) > 0.072)] = P[f"ear_{side}"]
    # 4. the eyeballs are their own components
    parts[eye_ids == 1] = P["eye_l"]
    parts[eye_ids == 2] = P["eye_r"]
    # 5. the midline belongs to no side: nearest-bone ties between left and
    #    right limbs (the crotch) go to the trunk
    names = np.array(PART_NAMES)[parts]
    sided = np.char.endswith(names, "_l") | np.char.endswith(names, "_r")
    on_mid = sided & (np.abs(x) < 1e-9)
    parts[on_mid] = np.where(y[on_mid] < 1.0, P["pelvis"], P["chest"])
    return parts


def _atlas(verts, faces) -> tuple[np.ndarray, np.ndarray]:
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(verts.astype(np.float32), faces.astype(np.uint32))
    chart = xatlas.ChartOptions()
    pack = xatlas.PackOptions()
    pack.resolution = 1024
    pack.padding = 2
    pack.bilinear = True
    atlas.generate(chart, pack)
    vmapping, indices, uvs = atlas[0]
    # xatlas splits seam vertices; map its corners back onto the solid.
    if not np.array_equal(vmapping[indices], faces):
        raise RuntimeError("template build: xatlas reordered the faces")
    return uvs.astype(np.float64), indices.astype(np.int64)


# --------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------
def save(template: Template, directory: Path = MESH_DIR) -> list[Path]:
    """Write ``<name>.obj``, ``<name>.ply`` and ``<name>.json``; returns the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    t, stem = template, directory / template.name
    counts = np.bincount(t.parts, minlength=len(t.part_names))
    face_part = t.parts[t.faces].min(axis=1)
    lines = [f"# avatar template '{t.name}': {len(t.vertices)} vertices, {len(t.faces)} faces",
             "# metres, +y up, facing +z; vertices are sorted by part (see the .json)"]
    lines += [f"v {a:.6f} {b:.6f} {c:.6f}" for a, b, c in t.vertices]
    lines += [f"vt {a:.6f} {b:.6f}" for a, b in t.uv]
    current = None
    for f, uf, part in zip(t.faces + 1, t.uv_faces + 1, face_part):
        if part != current:
            lines.append(f"g {t.part_names[part]}")
            current = part
        lines.append(f"f {f[0]}/{uf[0]} {f[1]}/{uf[1]} {f[2]}/{uf[2]}")
    obj = stem.with_suffix(".obj")
    obj.write_text("\n".join(lines) + "\n")
    ply = stem.with_suffix(".ply")
    header = ["ply", "format ascii 1.0", f"comment avatar template {t.name}",
              f"element vertex {len(t.vertices)}", "property float x", "property float y",
              "property float z", "property uchar part", f"element face {len(t.faces)}",
              "property list uchar int vertex_indices", "end_header"]
    body = [f"{a:.6f} {b:.6f} {c:.6f} {p}" for (a, b, c), p in zip(t.vertices, t.parts)]
    body += [f"3 {a} {b} {c}" for a, b, c in t.faces]
    ply.write_text("\n".join(header + body) + "\n")
    meta = stem.with_suffix(".json")
    meta.write_text(json.dumps({
        "format_version": FORMAT_VERSION, "name": t.name,
        "n_vertices": int(len(t.vertices)), "n_faces": int(len(t.faces)), "n_uv": int(len(t.uv)),
        "part_names": list(t.part_names), "part_vertex_counts": counts.tolist(),
        "units": "metres", "up": "+y", "forward": "+z",
    }, indent=1) + "\n")
    return [obj, ply, meta]


def load(name: str = "humanoid", directory: Path = MESH_DIR) -> Template:
    """Read a committed template (the OBJ for geometry and UVs, the JSON for parts)."""
    stem = Path(directory) / name
    meta = json.loads(stem.with_suffix(".json").read_text())
    verts, uv, faces, uv_faces = read_obj(stem.with_suffix(".obj"))
    parts = np.repeat(np.arange(len(meta["part_names"])), meta["part_vertex_counts"])
    if len(verts) != meta["n_vertices"] or len(parts) != len(verts):
        raise ValueError(f"{stem}: the .obj and .json disagree on the vertex count")
    return Template(verts, faces, uv, uv_faces, parts, tuple(meta["part_names"]), meta["name"])


def read_obj(path: Path):
    """Positions, UVs, and the faces into each, from a triangle OBJ with ``f v/vt``."""
    v, vt, f = [], [], []
    for line in Path(path).read_text().splitlines():
        tag, _, rest = line.partition(" ")
        if tag == "v":
            v.append(rest)
        elif tag == "vt":
            vt.append(rest)
        elif tag == "f":
            f.append(rest.replace("/", " "))
    verts = np.array(" ".join(v).split(), dtype=np.float64).reshape(-1, 3)
    uv = np.array(" ".join(vt).split(), dtype=np.float64).reshape(-1, 2)
    corners = np.array(" ".join(f).split(), dtype=np.int64).reshape(-1, 3, 2) - 1
    return verts, uv, corners[:, :, 0], corners[:, :, 1]


if __name__ == "__main__":  # python -m avatar.body.template: rebuild meshes/ on purpose
    for p in save(build()):
        print("wrote", p)
