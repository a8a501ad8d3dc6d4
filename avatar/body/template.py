"""The template: MakeHuman's hm08 body, the one fixed topology every avatar shares.

Vertices 0..13,379 are base.obj's body vertices in base.obj's order, so any
MakeHuman target or ``.mhm`` file applies to them directly; two eyeballs follow
as closed UV spheres (each fitted per avatar to MakeHuman's helper eyeball, see
:mod:`avatar.body.eyes`). Faces are base.obj's body quads split into two
triangles each, outward wound; UVs are MakeHuman's artist layout, and the eyes
take two discs in its free top-right corner.

Frame and units: base.obj's decimetres x 0.1 = metres, +y up, facing +z,
centred on x = 0 (the figure's left is +x). The rig then stands every avatar
on y = 0 (a per-avatar vertical shift).

Part labels (``parts``) come from MakeHuman's assets: each vertex's dominant
bone in the default skeleton's skin weights gives the trunk and limb parts,
and on the head the face regions are where each group of MakeHuman's face
modifiers (nose, mouth, ears, chin, forehead) moves the surface most.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from avatar.body import assets, eyes

PART_NAMES = (
    "head", "forehead", "face", "nose", "mouth", "chin", "ear_l", "ear_r", "eye_l", "eye_r",
    "neck", "chest", "abdomen", "pelvis",
    "upper_arm_l", "upper_arm_r", "forearm_l", "forearm_r", "hand_l", "hand_r",
    "thigh_l", "thigh_r", "shin_l", "shin_r", "foot_l", "foot_r",
)
TEMPLATES = ("humanoid",)  # the names a rig's ``template:`` may give


@dataclass(frozen=True, eq=False)
class Template:
    """A fixed-topology mesh with UVs and part labels.

    vertices : (V, 3) float64   positions of the watertight solid, metres
    faces    : (F, 3) int64     triangles into ``vertices``, outward winding
    uv       : (U, 2) float64   texture coordinates in [0, 1]
    uv_faces : (F, 3) int64     triangles into ``uv`` (corners match ``faces``)
    parts    : (V,) int64       index into ``part_names``
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
        """(V,) int: each vertex's left/right twin (MakeHuman's ``hm08.mirror`` on the body, eye for eye)."""
        body = assets.mirror_table()[: assets.N_BODY]
        eye = len(eyes.EYE_SPHERE.vertices)
        twin = eyes.EYE_SPHERE.mirror
        return np.concatenate([body, assets.N_BODY + eye + twin, assets.N_BODY + twin])

    @cached_property
    def faces_sha256(self) -> str:
        """sha256 of the faces as int32: what stores and model files record to name their template."""
        import hashlib

        return hashlib.sha256(np.ascontiguousarray(self.faces.astype(np.int32)).tobytes()).hexdigest()

    @property
    def n_body(self) -> int:
        """Vertices 0..n_body-1 are base.obj's body; the eyeballs follow."""
        return assets.N_BODY

    def part_mask(self, *names: str) -> np.ndarray:
        """(V,) bool: vertices in any of the named parts."""
        ids = [self.part_names.index(n) for n in names]
        return np.isin(self.parts, ids)

    @cached_property
    def vertex_normals(self) -> np.ndarray:
        """(V, 3) float: area-weighted unit vertex normals of the template."""
        return vertex_normals(self.vertices, self.faces)


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
# building from MakeHuman's assets
# --------------------------------------------------------------------------
# dominant skin-weight bone (without its .L/.R) -> part stem; unlisted face bones are "head"
_BONE_PART = {"neck01": "neck", "neck02": "neck", "neck03": "neck",
              "spine01": "chest", "spine02": "chest", "clavicle": "chest", "breast": "chest",
              "spine03": "abdomen", "spine04": "abdomen", "spine05": "pelvis", "pelvis": "pelvis", "root": "pelvis",
              "shoulder01": "upper_arm", "upperarm01": "upper_arm", "upperarm02": "upper_arm",
              "lowerarm01": "forearm", "lowerarm02": "forearm", "wrist": "hand", "metacarpal": "hand",
              "finger": "hand", "upperleg01": "thigh", "upperleg02": "thigh", "lowerleg01": "shin",
              "lowerleg02": "shin", "foot": "foot", "toe": "foot"}
# face parts carved out of the head by where their modifiers move it most
_FACE_GROUPS = {"nose": "nose", "mouth": "mouth", "ears": "ear", "chin": "chin", "forehead": "forehead"}
_FACE_SHARE = 0.2  # a vertex joins a face part where that group moves it >= 20% of the group's peak


def _dominant_bones() -> np.ndarray:
    """(13380,) str: the bone with the largest skin weight at each body vertex."""
    raw = json.loads((assets.data_dir() / "rigs" / "standard" / "weights.default.json").read_text())["weights"]
    best, who = np.zeros(assets.N_BODY), np.full(assets.N_BODY, "head", dtype=object)
    for bone, rows in raw.items():
        rows = np.asarray(rows, np.float64).reshape(-1, 2)
        idx, w = rows[:, 0].astype(np.int64), rows[:, 1]
        keep = idx < assets.N_BODY
        idx, w = idx[keep], w[keep]
        better = w > best[idx]
        best[idx[better]], who[idx[better]] = w[better], bone
    return who


def _group_reach(table, group: str) -> np.ndarray:
    """(13380,) float: how far a group's modifier targets move each body vertex, relative to their peak."""
    reach = np.zeros(assets.N_BODY)
    for key in table.names:
        key = str(key)
        if key.startswith(group + "/"):
            idx, d = table.rows(key)
            keep = idx < assets.N_BODY
            np.maximum.at(reach, idx[keep], np.linalg.norm(d[keep], axis=1))
    return reach / max(reach.max(), 1e-12)


def label_parts(vertices: np.ndarray, table) -> np.ndarray:
    """(13380,) part index of each body vertex (see the module docstring)."""
    P = {n: i for i, n in enumerate(PART_NAMES)}
    x = vertices[:, 0]
    bones, of_vertex = np.unique(_dominant_bones().astype(str), return_inverse=True)
    bone_part = np.full(len(bones), P["head"])  # face bones (jaw, oris, levator, ...) are the head
    for b, bone in enumerate(bones):            # one lookup per bone, not per vertex
        stem, _, lr = bone.partition(".")
        if stem.startswith(("finger", "toe", "metacarpal")):
            stem = stem.split("-")[0].rstrip("0123456789")
        part = _BONE_PART.get(stem)
        if part is not None:
            bone_part[b] = P[part + {"L": "_l", "R": "_r"}[lr]] if part + "_l" in P else P[part]
    parts = bone_part[of_vertex.ravel()]
    head = parts == P["head"]
    front = vertices[:, 2] > np.percentile(vertices[head, 2], 40)
    parts[head & front] = P["face"]
    reach = np.stack([_group_reach(table, group) for group in _FACE_GROUPS])
    best, top = np.argmax(reach, axis=0), np.max(reach, axis=0)
    for k, name in enumerate(_FACE_GROUPS.values()):
        mine = head & (best == k) & (top >= _FACE_SHARE)
        parts[mine] = np.where(x[mine] >= 0, P["ear_l"], P["ear_r"]) if name == "ear" else P[name]
    return parts


def diagonals(quads: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """(Q,) bool: cut each quad along its 0-2 diagonal (else 1-3), so that the cut is mirror-symmetric.

    The diagonal through the corner of smallest ``min(v, mirror[v])`` is chosen;
    a quad and its mirror image then choose mirrored diagonals.
    """
    key = np.minimum(quads, mirror[quads])
    return np.minimum(key[:, 0], key[:, 2]) <= np.minimum(key[:, 1], key[:, 3])


def triangles(quads: np.ndarray, along_02: np.ndarray) -> np.ndarray:
    """(Q, 4) quads -> (2Q, 3) triangles along the chosen diagonals, keeping the quads' winding."""
    first = np.where(along_02[:, None], quads[:, [0, 1, 2]], quads[:, [1, 2, 3]])
    second = np.where(along_02[:, None], quads[:, [0, 2, 3]], quads[:, [1, 3, 0]])
    return np.concatenate([first, second])


def load(name: str = "humanoid") -> Template:
    """The template ``name`` (only ``humanoid``: MakeHuman's body), built from the assets once per process."""
    if name not in TEMPLATES:
        raise ValueError(f"unknown template {name!r}; the templates are: {', '.join(TEMPLATES)}")
    return _build(name)   # one cache key per name: lru_cache tells load() from load("humanoid")


@lru_cache(maxsize=None)
def _build(name: str) -> Template:
    from avatar.body.targets import default_targets

    base = assets.base_mesh()
    body = base.face_group == base.groups.index("body")
    verts = [base.vertices[: assets.N_BODY]]
    # the UV quads are cut along the same diagonals as the vertex quads (corner k matches corner k)
    q, uq = base.quads[body], base.uv_quads[body]
    cut = diagonals(q, assets.mirror_table())
    faces = [triangles(q, cut)]
    used, uv_index = np.unique(triangles(uq, cut), return_inverse=True)  # only the body's UVs
    uv, uv_faces = [base.uv[used]], [uv_index.reshape(-1, 3)]
    parts = [label_parts(base.vertices[: assets.N_BODY], default_targets())]
    for k, side in enumerate(("l", "r")):
        ball = eyes.EYE_SPHERE
        offset, uv_offset = sum(len(v) for v in verts), sum(len(u) for u in uv)
        centre, radius = eyes.fit(base.vertices[None, assets.vertex_groups()[f"helper-{side}-eye"]])
        verts.append(centre[0] + radius[0] * ball.vertices)
        # the right eye's triangles are the left's mirrored (reversed to stay outward), so the
        # template's faces are mirror-symmetric too
        tri = ball.faces if side == "l" else ball.mirror[ball.faces][:, ::-1]
        faces.append(tri + offset)
        uv.append(ball.uv(k))
        uv_faces.append(tri + uv_offset)
        parts.append(np.full(len(ball.vertices), PART_NAMES.index(f"eye_{side}")))
    stand = np.array([0.0, -base.vertices[: assets.N_BODY, 1].min(), 0.0])  # soles on y = 0
    return Template(np.concatenate(verts) + stand, np.concatenate(faces), np.concatenate(uv),
                    np.concatenate(uv_faces), np.concatenate(parts), PART_NAMES, name)
