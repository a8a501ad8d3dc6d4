"""The rig's threads: how many it may use, and one chunk of avatars shared among them.

The blend (:mod:`avatar.body._blend_kernel`) reads each panel's targets once per group of tiles,
so its cost per avatar falls with the avatars a thread blends at once: on one thread here a chunk
of 128 prior avatars costs 105 µs an avatar in the blend, one of 256 costs 90 (2026-12-07). A
chunk is therefore shared by panels, not by avatars: every thread blends all of the chunk's
avatars over its own panels (blocks of ``BLOCK`` panels dealt in turn, so the shares cost about
the same and no two threads write the same cache line but at a block's ends), and splits the
avatars only for the per-avatar steps around the blend (weights, floor, eyes, pose).

Each avatar's bytes stay those of one thread: the kernels compute every (avatar, coordinate) the
same way whichever thread, panel list or rows they run on.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

from avatar.body._blend_kernel import BLOCK

_POOLS: dict = {}


@lru_cache(maxsize=1)
def _blas():
    from threadpoolctl import ThreadpoolController  # a dependency of scikit-learn

    return ThreadpoolController().select(user_api="blas")


def allowed() -> int:
    """How many threads the rig may use now: as many as BLAS may (1 under a caller's
    ``threadpool_limits(1)``, as dataset workers and compare's tasks set), though it calls no BLAS."""
    return max([1] + [lib["num_threads"] for lib in _blas().info()])


def _pool(workers: int) -> ThreadPoolExecutor:
    """A pool of ``workers`` threads kept for the process (its threads keep their scratch buffers).

    Keyed by process id too: a forked child has the parent's pool object but not its threads.
    """
    key = (os.getpid(), workers)
    if key not in _POOLS:
        _POOLS[key] = ThreadPoolExecutor(workers, thread_name_prefix="avatar-rig")
    return _POOLS[key]


def each(fn, parts: list) -> None:
    """``fn(part)`` for every part at once: the first on this thread, the others on the pool.

    The pool's tasks never wait on the pool, so callers on several threads at once only queue."""
    if len(parts) == 1:
        fn(parts[0])
        return
    futures = [_pool(len(parts) - 1).submit(fn, part) for part in parts[1:]]
    try:
        fn(parts[0])
    finally:
        for f in futures:
            f.result()


def rows(n: int, threads: int) -> list[tuple[int, int]]:
    """``threads`` (start, stop) ranges of ``n`` rows, as even as whole rows allow (none empty)."""
    cuts = np.linspace(0, n, min(threads, max(n, 1)) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:])]


def deal(panels: np.ndarray, threads: int) -> list[np.ndarray]:
    """``panels`` in ``threads`` shares: blocks of ``BLOCK`` consecutive panels dealt in turn, each
    share in the panels' order (int64, contiguous). Empty shares are left out."""
    blocks = [panels[i:i + BLOCK] for i in range(0, len(panels), BLOCK)]
    shares = [blocks[t::threads] for t in range(threads)]
    return [np.ascontiguousarray(np.concatenate(s), np.int64) for s in shares if s]
