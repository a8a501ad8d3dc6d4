"""Rigged glTF: a skeleton, skin weights and pose animation added to a GLB, and skinning read back.

A GLB is a 12-byte header, a JSON chunk and a BIN chunk, each 4-byte aligned
(:func:`unpack`, :func:`pack`). :func:`add_skin` appends to both what a rigged
avatar needs, in glTF's skin model:

- one node per bone, named as the bone, parented as the skeleton; bone ``b``'s
  node holds ``Rest_parent^-1 . Rest_b . Rot(local_b)`` as a rotation
  quaternion and a translation (no scale), the root ``T(shift) . Rest_root .
  Rot(local_root)``, where ``Rest_b = [frames_b | heads_b]`` is the bone's rest
  frame (:class:`avatar.body.posing.Bound`);
- a skin whose inverse bind matrices are ``Rest_b^-1`` (so a bone at rest
  moves nothing);
- ``JOINTS_0`` / ``WEIGHTS_0`` on the mesh: the 4 influences per vertex.

The mesh's POSITION stays the bind pose (the rest shape); the pose lives in the
joint nodes, so a viewer can repose the avatar. :func:`add_animation` adds
keyframed joint rotations and the root's translation; :func:`skinned_positions`
evaluates linear blend skinning from a GLB's own data, as a viewer would.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

MAGIC, VERSION = 0x46546C67, 2             # b"glTF", glTF 2.0
JSON_CHUNK, BIN_CHUNK = 0x4E4F534A, 0x004E4942
FLOAT, UNSIGNED_BYTE, UNSIGNED_SHORT, UNSIGNED_INT = 5126, 5121, 5123, 5125
ARRAY_BUFFER = 34962
_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_DTYPES = {FLOAT: "<f4", UNSIGNED_BYTE: "u1", UNSIGNED_SHORT: "<u2", UNSIGNED_INT: "<u4", 5120: "i1", 5122: "<i2"}


class GLBError(ValueError):
    pass


@dataclass(frozen=True, eq=False)
class Skin:
    """What :func:`add_skin` needs for one avatar: its skeleton and its bound pose.

    skeleton : :class:`avatar.body.skeleton.Skeleton` (names, parents, influences, weights per
               solid vertex)
    bound    : :class:`avatar.body.posing.Bound` (rest heads and frames, local rotations, shift)
    """

    skeleton: object
    bound: object


# -- the container -------------------------------------------------------------
def pad(data: bytes, fill: bytes = b"\0") -> bytes:
    """glTF chunks and buffer views start on 4-byte boundaries."""
    return data + fill * (-len(data) % 4)


def unpack(glb: bytes) -> tuple[dict, bytes]:
    """(JSON tree, BIN chunk bytes) of a GLB; GLBError if it is not one."""
    glb = bytes(glb)
    if len(glb) < 20:
        raise GLBError("not a GLB: shorter than its header")
    magic, version, length = struct.unpack_from("<III", glb, 0)
    if magic != MAGIC or version != VERSION:
        raise GLBError("not a glTF 2.0 GLB (bad magic or version)")
    if length > len(glb):
        raise GLBError(f"truncated GLB: header says {length} bytes, have {len(glb)}")
    tree, binary, at = None, b"", 12
    while at + 8 <= length:
        size, kind = struct.unpack_from("<II", glb, at)
        body = glb[at + 8:at + 8 + size]
        if len(body) != size:
            raise GLBError("truncated GLB chunk")
        if kind == JSON_CHUNK and tree is None:
            tree = json.loads(body.decode("utf-8"))
        elif kind == BIN_CHUNK and not binary:
            binary = body
        at += 8 + size + (-size % 4)
    if tree is None:
        raise GLBError("GLB without a JSON chunk")
    return tree, binary


def pack(tree: dict, binary: bytes) -> bytes:
    """A GLB of a JSON tree and a BIN chunk (JSON padded with spaces, BIN with zeros, to 4 bytes)."""
    text = pad(json.dumps(tree, separators=(",", ":")).encode("utf-8"), b" ")
    chunks = struct.pack("<II", len(text), JSON_CHUNK) + text
    if binary:
        binary = pad(bytes(binary), b"\0")
        chunks += struct.pack("<II", len(binary), BIN_CHUNK) + binary
    return struct.pack("<III", MAGIC, VERSION, 12 + len(chunks)) + chunks


def _append(tree: dict, binary: bytearray, array: np.ndarray, kind: str, component: int,
            target: int | None = None, bounds: bool = False) -> int:
    """Append ``array`` to the BIN chunk as a new buffer view and accessor; returns the accessor index."""
    accessor = {"bufferView": _append_view(tree, binary, array, component, target), "componentType": component,
                "count": int(len(array)), "type": kind}
    if bounds:
        flat = np.asarray(array, np.float64).reshape(len(array), -1)
        accessor["min"], accessor["max"] = flat.min(0).tolist(), flat.max(0).tolist()
    tree.setdefault("accessors", []).append(accessor)
    return len(tree["accessors"]) - 1


def _append_view(tree: dict, binary: bytearray, array: np.ndarray, component: int, target: int | None = None) -> int:
    """Append ``array`` to the BIN chunk as a new buffer view (4-byte aligned); returns the view's index."""
    data = np.ascontiguousarray(array, _DTYPES[component]).tobytes()
    binary.extend(b"\0" * (-len(binary) % 4))  # every view starts 4-byte aligned
    view = {"buffer": 0, "byteOffset": len(binary), "byteLength": len(data)}
    if target is not None:
        view["target"] = target
    binary.extend(data)
    tree.setdefault("bufferViews", []).append(view)
    buffers = tree.setdefault("buffers", [{}])
    if not buffers:
        buffers.append({})
    return len(tree["bufferViews"]) - 1


def _finish(tree: dict, binary: bytearray) -> bytes:
    binary.extend(b"\0" * (-len(binary) % 4))
    tree["buffers"][0]["byteLength"] = len(binary)
    return pack(tree, bytes(binary))


# -- rotations -----------------------------------------------------------------
def quaternions(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (x, y, z, w), glTF's order, w >= 0."""
    R = np.asarray(R, np.float64)
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    # each of the four candidate forms is stable where its own component is the largest
    cand = np.stack([1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22, 1 + m00 + m11 + m22], -1)
    k = np.argmax(cand, axis=-1)
    s = 0.5 / np.sqrt(np.maximum(np.take_along_axis(cand, k[..., None], -1)[..., 0], 1e-300))
    forms = (  # 4 * component * (x, y, z, w) when x, y, z or w is the largest component
        (cand[..., 0], R[..., 0, 1] + R[..., 1, 0], R[..., 0, 2] + R[..., 2, 0], R[..., 2, 1] - R[..., 1, 2]),
        (R[..., 0, 1] + R[..., 1, 0], cand[..., 1], R[..., 1, 2] + R[..., 2, 1], R[..., 0, 2] - R[..., 2, 0]),
        (R[..., 0, 2] + R[..., 2, 0], R[..., 1, 2] + R[..., 2, 1], cand[..., 2], R[..., 1, 0] - R[..., 0, 1]),
        (R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1], cand[..., 3]),
    )
    q = np.zeros(R.shape[:-2] + (4,))
    for i, form in enumerate(forms):
        q = np.where((k == i)[..., None], np.stack(form, -1) * s[..., None], q)
    q *= np.where(q[..., 3:] < 0, -1.0, 1.0)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def quaternion_matrices(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (x, y, z, w) -> (..., 3, 3) rotation matrices (normalised first)."""
    q = np.asarray(q, np.float64)
    x, y, z, w = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    R = np.empty(q.shape[:-1] + (3, 3))
    R[..., 0, 0], R[..., 0, 1], R[..., 0, 2] = 1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)
    R[..., 1, 0], R[..., 1, 1], R[..., 1, 2] = 2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)
    R[..., 2, 0], R[..., 2, 1], R[..., 2, 2] = 2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)
    return R


def joint_transforms(parents: np.ndarray, bound) -> tuple[np.ndarray, np.ndarray]:
    """Each joint node's local rotation (..., J, 3, 3) and translation (..., J, 3) for a Bound.

    Bone ``b`` under parent ``p``: ``Rest_p^-1 Rest_b Rot(local_b)``, a rotation ``F_p^T F_b Q_b`` and a
    translation ``F_p^T (h_b - h_p)``; the root: ``F_r Q_r`` and ``h_r + shift``. ``bound``'s arrays may
    carry leading axes (frames of an animation) before J.
    """
    parents = np.asarray(parents)
    F, h, Q = (np.asarray(a, np.float64) for a in (bound.frames, bound.heads, bound.local))
    shift = np.asarray(bound.shift, np.float64)
    root = parents < 0
    p = np.where(root, 0, parents)
    Fp = np.swapaxes(F[..., p, :, :], -1, -2)
    rot = np.einsum("...ij,...jk,...kl->...il", Fp, F, Q)
    trans = np.einsum("...ij,...j->...i", Fp, h - h[..., p, :])
    rot[..., root, :, :] = np.einsum("...ij,...jk->...ik", F[..., root, :, :], Q[..., root, :, :])
    trans[..., root, :] = h[..., root, :] + shift[..., None, :]
    return rot, trans


def inverse_binds(bound) -> np.ndarray:
    """(J, 4, 4) ``Rest_b^-1 = [F_b^T | -F_b^T h_b]``."""
    F, h = np.asarray(bound.frames, np.float64), np.asarray(bound.heads, np.float64)
    M = np.zeros(F.shape[:-2] + (4, 4))
    M[..., :3, :3] = np.swapaxes(F, -1, -2)
    M[..., :3, 3] = -np.einsum("...ji,...j->...i", F, h)
    M[..., 3, 3] = 1.0
    return M


def normalised_weights(weights: np.ndarray) -> np.ndarray:
    """(V, 4) float32 rows summing to 1 in float32 (the largest weight takes the rounding)."""
    w = np.asarray(weights, np.float64)
    w = (w / w.sum(axis=1, keepdims=True)).astype(np.float32)
    top = np.argmax(w, axis=1)
    rows = np.arange(len(w))
    for _ in range(3):  # float32 sums: settle the largest so the sum is 1 within an ulp
        rest = w.sum(axis=1, dtype=np.float32) - w[rows, top]
        w[rows, top] = np.float32(1.0) - rest
    return w


# -- writing -----------------------------------------------------------------
def _mesh_node(tree: dict) -> int:
    nodes = tree.get("nodes", [])
    found = [i for i, n in enumerate(nodes) if "mesh" in n]
    if len(found) != 1:
        raise GLBError(f"expected one mesh node, found {len(found)}")
    return found[0]


def add_skin(glb: bytes, names, parents, bound, joints4: np.ndarray, weights4: np.ndarray) -> bytes:
    """The GLB with a skeleton (one node per bone), a skin and JOINTS_0 / WEIGHTS_0 on its one mesh.

    names : J bone names   parents : (J,) int, -1 at the one root, parents before children
    bound : a :class:`avatar.body.posing.Bound` (rest heads, frames, local rotations, floor shift)
    joints4, weights4 : (V, 4) per vertex of the GLB's mesh (seam-split vertices, as POSITION)
    """
    tree, binary = unpack(glb)
    binary = bytearray(binary)
    parents = np.asarray(parents, np.int64)
    J = len(names)
    if parents.shape != (J,) or (parents < 0).sum() != 1 or np.any(parents >= np.arange(J)):
        raise GLBError("parents must be (J,) with one root and every parent before its children")
    mesh_node = _mesh_node(tree)
    node = tree["nodes"][mesh_node]
    prims = tree["meshes"][node["mesh"]]["primitives"]
    count = tree["accessors"][prims[0]["attributes"]["POSITION"]]["count"]
    joints4, weights4 = np.asarray(joints4), np.asarray(weights4)
    if joints4.shape != (count, 4) or weights4.shape != (count, 4):
        raise GLBError(f"joints and weights must be ({count}, 4), got {joints4.shape} and {weights4.shape}")
    if joints4.min() < 0 or joints4.max() >= J:
        raise GLBError(f"joint indices must be 0 to {J - 1}")
    w = normalised_weights(weights4)
    j = np.where(w > 0, joints4, 0)  # unused slots point at joint 0 with weight 0
    component = UNSIGNED_BYTE if J <= 256 else UNSIGNED_SHORT
    joints_acc = _append(tree, binary, j, "VEC4", component, ARRAY_BUFFER)
    weights_acc = _append(tree, binary, w, "VEC4", FLOAT, ARRAY_BUFFER)
    for prim in prims:  # every primitive shares the one vertex list
        prim["attributes"]["JOINTS_0"], prim["attributes"]["WEIGHTS_0"] = joints_acc, weights_acc
    ibm = inverse_binds(bound).astype(np.float32)
    ibm_acc = _append(tree, binary, np.swapaxes(ibm, -1, -2).reshape(J, 16), "MAT4", FLOAT)  # column-major
    rot, trans = joint_transforms(parents, bound)
    q = quaternions(rot)
    first = len(tree["nodes"])
    for b in range(J):
        joint = {"name": str(names[b]), "rotation": [float(x) for x in q[b]],
                 "translation": [float(x) for x in trans[b]]}
        kids = np.flatnonzero(parents == b)
        if len(kids):
            joint["children"] = [int(first + k) for k in kids]
        tree["nodes"].append(joint)
    root = first + int(np.flatnonzero(parents < 0)[0])
    tree.setdefault("skins", []).append({"name": "skeleton", "inverseBindMatrices": ibm_acc,
                                         "joints": list(range(first, first + J)), "skeleton": root})
    node["skin"] = len(tree["skins"]) - 1
    for key in ("matrix", "translation", "rotation", "scale"):  # a skinned mesh's own transform is ignored
        node.pop(key, None)
    scene = tree["scenes"][tree.get("scene", 0)]
    scene.setdefault("nodes", []).append(root)
    return _finish(tree, binary)


def continuous(q: np.ndarray) -> np.ndarray:
    """(F, 4) quaternions with signs flipped so each is within 90 degrees of the one before (for LINEAR)."""
    q = np.array(q, np.float64)
    for i in range(1, len(q)):
        if np.dot(q[i], q[i - 1]) < 0:
            q[i] = -q[i]
    return q


def add_animation(glb: bytes, name: str, times: np.ndarray, node_rotations: dict,
                  root_translations: np.ndarray | None = None) -> bytes:
    """The GLB with one animation: LINEAR keyframes at ``times`` (F,) seconds.

    node_rotations    : {joint node name: (F, 4) quaternions (x, y, z, w)} (signs are made continuous)
    root_translations : (F, 3) translations of the skin's root joint (its floor shift), or None
    Joint names are looked up among the nodes of the GLB's skin.
    """
    tree, binary = unpack(glb)
    binary = bytearray(binary)
    times = np.asarray(times, np.float32)
    F = len(times)
    if times.ndim != 1 or F < 1 or np.any(np.diff(times) <= 0) or times[0] < 0:
        raise GLBError("times must be increasing seconds from 0 or later")
    skins = tree.get("skins") or []
    if not skins:
        raise GLBError("the GLB has no skin: add_skin first")
    by_name = {tree["nodes"][n]["name"]: n for n in skins[0]["joints"]}
    t_acc = _append(tree, binary, times, "SCALAR", FLOAT, bounds=True)
    samplers, channels = [], []
    for joint, q in node_rotations.items():
        if joint not in by_name:
            raise GLBError(f"no joint {joint!r} in the GLB's skin")
        q = np.asarray(q, np.float64)
        if q.shape != (F, 4):
            raise GLBError(f"{joint}: rotations must be ({F}, 4), got {q.shape}")
        q = continuous(q / np.linalg.norm(q, axis=1, keepdims=True))
        samplers.append({"input": t_acc, "output": _append(tree, binary, q, "VEC4", FLOAT), "interpolation": "LINEAR"})
        channels.append({"sampler": len(samplers) - 1, "target": {"node": by_name[joint], "path": "rotation"}})
    if root_translations is not None:
        tr = np.asarray(root_translations, np.float64)
        if tr.shape != (F, 3):
            raise GLBError(f"root translations must be ({F}, 3), got {tr.shape}")
        root = skins[0].get("skeleton", skins[0]["joints"][0])
        samplers.append({"input": t_acc, "output": _append(tree, binary, tr, "VEC3", FLOAT), "interpolation": "LINEAR"})
        channels.append({"sampler": len(samplers) - 1, "target": {"node": root, "path": "translation"}})
    if not channels:
        raise GLBError("an animation needs at least one channel")
    tree.setdefault("animations", []).append({"name": name, "samplers": samplers, "channels": channels})
    return _finish(tree, binary)


# -- reading back ------------------------------------------------------------
def accessor(tree: dict, binary: bytes, index: int) -> np.ndarray:
    """Accessor ``index`` as an array (count,) or (count, k) (byte strides honoured; sparse accessors
    applied over their bufferView, or over zeros without one, as glTF says)."""
    acc = tree["accessors"][index]
    k, dtype = _COMPONENTS[acc["type"]], np.dtype(_DTYPES[acc["componentType"]])
    n = acc["count"]
    if "bufferView" in acc:
        out = _view(tree, binary, acc["bufferView"], acc.get("byteOffset", 0), n, k, dtype)
    else:
        out = np.zeros((n, k), dtype)
    sparse = acc.get("sparse")
    if sparse:
        m = sparse["count"]
        ind, val = sparse["indices"], sparse["values"]
        idx = _view(tree, binary, ind["bufferView"], ind.get("byteOffset", 0), m, 1,
                    np.dtype(_DTYPES[ind["componentType"]]))[:, 0].astype(np.int64)
        if m and (idx.min() < 0 or idx.max() >= n or np.any(np.diff(idx) <= 0)):
            raise GLBError(f"accessor {index}: sparse indices must increase strictly inside 0..{n - 1}")
        out[idx] = _view(tree, binary, val["bufferView"], val.get("byteOffset", 0), m, k, dtype)
    return out[:, 0] if k == 1 else out


def _view(tree: dict, binary: bytes, view_index: int, offset: int, n: int, k: int, dtype) -> np.ndarray:
    view = tree["bufferViews"][view_index]
    start = view.get("byteOffset", 0) + offset
    stride = view.get("byteStride", k * dtype.itemsize)
    raw = np.frombuffer(binary, np.uint8, count=(n - 1) * stride + k * dtype.itemsize if n else 0, offset=start)
    out = np.lib.stride_tricks.as_strided(raw, (n, k * dtype.itemsize), (stride, 1)).copy()
    return out.view(dtype).reshape(n, k)


def morph_targets(glb: bytes) -> tuple[list[str], np.ndarray, dict]:
    """(names, default weights (T,), {attribute: (T, V, k) deltas}) of the GLB's one mesh, from the file."""
    tree, binary = unpack(glb)
    mesh = tree["meshes"][tree["nodes"][_mesh_node(tree)]["mesh"]]
    targets = mesh["primitives"][0].get("targets", [])
    names = list((mesh.get("extras") or {}).get("targetNames", [f"target{i}" for i in range(len(targets))]))
    weights = np.asarray(mesh.get("weights", [0.0] * len(targets)), np.float64)
    arrays = {}
    for attr in sorted({a for t in targets for a in t}):
        arrays[attr] = np.stack([accessor(tree, binary, t[attr]) for t in targets])
    return names, weights, arrays


def morphed_positions(glb: bytes, weights=None) -> np.ndarray:
    """(V, 3) float64 POSITION plus the weighted morph targets (the file's weights by default), unskinned."""
    tree, binary = unpack(glb)
    node = tree["nodes"][_mesh_node(tree)]
    prim = tree["meshes"][node["mesh"]]["primitives"][0]
    V = accessor(tree, binary, prim["attributes"]["POSITION"]).astype(np.float64)
    targets = prim.get("targets", [])
    if targets:
        w = node.get("weights", tree["meshes"][node["mesh"]].get("weights", [0.0] * len(targets)))
        w = np.asarray(w if weights is None else weights, np.float64)
        if w.shape != (len(targets),):
            raise GLBError(f"expected {len(targets)} morph weights, got {w.shape}")
        for i in np.flatnonzero(w):
            V += w[i] * accessor(tree, binary, targets[i]["POSITION"]).astype(np.float64)
    return V


def add_morphs(glb: bytes, names, positions: np.ndarray, normals: np.ndarray | None = None,
               weights=None, extras: dict | None = None, sparse_below: float = 0.5) -> bytes:
    """The GLB with named morph targets on its one mesh (every primitive), before any skinning.

    positions, normals : (T, V, 3) deltas per vertex of the mesh (seam-split vertices, as POSITION)
    weights            : (T,) default weights (mesh.weights), 0 by default
    extras             : merged into the root's ``extras.avatar.morphs`` (how weights map to sliders)
    A target's delta touching fewer than ``sparse_below`` of the vertices is a sparse accessor (its
    indices and values only); a delta of all zeros is an accessor of zeros with no data at all. Names
    go to ``mesh.extras.targetNames``, which three.js and Blender's importer read.
    """
    tree, binary = unpack(glb)
    binary = bytearray(binary)
    names = [str(n) for n in names]
    if len(set(names)) != len(names):
        raise GLBError("morph target names must be unique")
    mesh = tree["meshes"][tree["nodes"][_mesh_node(tree)]["mesh"]]
    count = tree["accessors"][mesh["primitives"][0]["attributes"]["POSITION"]]["count"]
    positions = np.asarray(positions, np.float32)
    T = len(names)
    if positions.shape != (T, count, 3):
        raise GLBError(f"positions must be ({T}, {count}, 3), got {positions.shape}")
    if normals is not None:
        normals = np.asarray(normals, np.float32)
        if normals.shape != positions.shape:
            raise GLBError(f"normals must be ({T}, {count}, 3), got {normals.shape}")
    targets = []
    for t in range(T):
        target = {"POSITION": _delta_accessor(tree, binary, positions[t], sparse_below)}
        if normals is not None:
            target["NORMAL"] = _delta_accessor(tree, binary, normals[t], sparse_below)
        targets.append(target)
    for prim in mesh["primitives"]:
        prim["targets"] = targets
    mesh["weights"] = [float(w) for w in (np.zeros(T) if weights is None else np.asarray(weights, np.float64))]
    if len(mesh["weights"]) != T:
        raise GLBError(f"expected {T} weights, got {len(mesh['weights'])}")
    mesh.setdefault("extras", {})["targetNames"] = names
    if extras:
        tree.setdefault("extras", {}).setdefault("avatar", {}).setdefault("morphs", {}).update(extras)
    return _finish(tree, binary)


def _delta_accessor(tree: dict, binary: bytearray, delta: np.ndarray, sparse_below: float) -> int:
    """A VEC3 FLOAT accessor of one target's deltas: dense, sparse or all zeros; min and max set."""
    n = len(delta)
    touched = np.flatnonzero(np.any(delta != 0, axis=1))
    accessors = tree.setdefault("accessors", [])
    if len(touched) >= sparse_below * n:
        index = _append(tree, binary, delta, "VEC3", FLOAT, ARRAY_BUFFER, bounds=True)
        return index
    acc = {"componentType": FLOAT, "count": int(n), "type": "VEC3"}
    values = delta[touched].astype(np.float64)
    lo = np.minimum(values.min(0), 0.0) if len(touched) else np.zeros(3)  # untouched vertices are 0
    hi = np.maximum(values.max(0), 0.0) if len(touched) else np.zeros(3)
    acc["min"], acc["max"] = [float(np.float32(v)) for v in lo], [float(np.float32(v)) for v in hi]
    if len(touched):
        kind = UNSIGNED_SHORT if n <= 65536 else UNSIGNED_INT
        acc["sparse"] = {"count": int(len(touched)),
                         "indices": {"bufferView": _append_view(tree, binary, touched, kind), "componentType": kind},
                         "values": {"bufferView": _append_view(tree, binary, delta[touched], FLOAT)}}
    accessors.append(acc)
    return len(accessors) - 1


def _local_matrix(node: dict) -> np.ndarray:
    if "matrix" in node:
        return np.asarray(node["matrix"], np.float64).reshape(4, 4).T  # column-major
    M = np.eye(4)
    R = quaternion_matrices(np.asarray(node.get("rotation", (0, 0, 0, 1)), np.float64))
    M[:3, :3] = R * np.asarray(node.get("scale", (1, 1, 1)), np.float64)[None, :]
    M[:3, 3] = node.get("translation", (0, 0, 0))
    return M


def world_matrices(tree: dict) -> np.ndarray:
    """(N, 4, 4) every node's world transform, from its scene's roots down (TRS or matrix)."""
    nodes = tree.get("nodes", [])
    world = np.tile(np.eye(4), (len(nodes), 1, 1))
    has_parent = {c for n in nodes for c in n.get("children", [])}
    stack = [(i, np.eye(4)) for i in range(len(nodes)) if i not in has_parent]
    while stack:
        i, parent = stack.pop()
        world[i] = parent @ _local_matrix(nodes[i])
        stack.extend((c, world[i]) for c in nodes[i].get("children", []))
    return world


def keyframes(glb: bytes, animation: int = 0) -> tuple[np.ndarray, dict]:
    """(times (F,), {(node, path): (F, k) values}) of one animation's samplers, as stored."""
    tree, binary = unpack(glb)
    anim = tree["animations"][animation]
    times, values = None, {}
    for ch in anim["channels"]:
        sampler = anim["samplers"][ch["sampler"]]
        t = accessor(tree, binary, sampler["input"]).astype(np.float64)
        times = t if times is None else times
        values[(ch["target"]["node"], ch["target"]["path"])] = accessor(tree, binary, sampler["output"])
    return times, values


def skinned_positions(glb: bytes, keyframe: int | None = None, animation: int = 0, weights=None) -> np.ndarray:
    """(V, 3) float64 positions of the GLB's skinned mesh in its pose: linear blend skinning, as a viewer.

    ``v' = sum_k w_k . World(joint_k) . IBM_k . v`` from the file's own node TRS, inverse bind matrices,
    JOINTS_0, WEIGHTS_0 and POSITION (the mesh node's own transform is ignored, as glTF says), after
    the morph targets at the file's weights (or ``weights``), which glTF applies before skinning.
    ``keyframe``: the pose at that keyframe of ``animation`` instead (its channels replace the nodes'
    rotations, translations and scales).
    """
    tree, binary = unpack(glb)
    if keyframe is not None:
        for (n, path), vals in keyframes(glb, animation)[1].items():
            if path in ("rotation", "translation", "scale"):
                tree["nodes"][n][path] = [float(x) for x in np.atleast_1d(vals[keyframe])]
    node = tree["nodes"][_mesh_node(tree)]
    if "skin" not in node:
        raise GLBError("the mesh node has no skin")
    skin = tree["skins"][node["skin"]]
    attrs = tree["meshes"][node["mesh"]]["primitives"][0]["attributes"]
    V = morphed_positions(glb, weights)  # glTF morphs first, then the skin
    joints = accessor(tree, binary, attrs["JOINTS_0"]).astype(np.int64)
    weights = accessor(tree, binary, attrs["WEIGHTS_0"]).astype(np.float64)
    J = len(skin["joints"])
    if "inverseBindMatrices" in skin:
        ibm = accessor(tree, binary, skin["inverseBindMatrices"]).astype(np.float64).reshape(J, 4, 4)
        ibm = np.swapaxes(ibm, -1, -2)  # column-major
    else:
        ibm = np.tile(np.eye(4), (J, 1, 1))
    G = world_matrices(tree)[skin["joints"]] @ ibm           # (J, 4, 4) joint matrices
    out = np.zeros_like(V)
    for k in range(joints.shape[1]):
        Gk = G[joints[:, k]]
        out += weights[:, k, None] * (np.einsum("nij,nj->ni", Gk[:, :3, :3], V) + Gk[:, :3, 3])
    return out
