"""Checks shared by every boundary that writes or serves a mesh.

A NaN or infinite vertex is never written, served or stored: an effect amount
of ``1e300``, a latent code of ``1e300`` or a damaged model array all end here
as one clear message instead of a silently broken file.
"""
from __future__ import annotations

import numpy as np


class NonFiniteError(ValueError):
    """Vertices (or other values about to be written) hold NaN or infinity.

    The CLI reports it as one line and exits 2; the message names ``what``.
    Picklable (one string argument), so it crosses from worker processes intact.
    """


FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_finite(values, what: str, limit: float | None = FLOAT32_MAX) -> None:
    """Raise :class:`NonFiniteError` naming ``what`` unless every value of ``values`` is finite.

    ``values`` is any array (one mesh (V, 3), a batch (n, V, 3), codes, ...). By default a value
    beyond float32's range counts as infinite too, since every mesh file stores float32 (a float64
    vertex of 1e300 is finite here and infinity in the GLB); ``limit=None`` checks finiteness only.
    Cost: one vectorised pass; the counts are taken only on failure.
    """
    a = np.asarray(values)
    if a.dtype.kind not in "fc":
        return
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(a).all() and (limit is None or not (np.abs(a) > limit).any())
    if ok:
        return
    with np.errstate(invalid="ignore"):
        big = ~np.isfinite(a) | ((np.abs(a) > limit) if limit is not None else False)
    bad = big
    n_bad, n_nan = int(bad.sum()), int(np.isnan(a).sum())
    kinds = " and ".join(k for k, c in (("NaN", n_nan), ("infinite (or beyond float32)", n_bad - n_nan)) if c)
    where = ""
    if a.ndim >= 3:  # a batch: which avatars
        rows = np.flatnonzero(bad.reshape(len(a), -1).any(axis=1))
        where = f" in {len(rows)} of {len(a)} avatars (first: #{int(rows[0])})"
    raise NonFiniteError(f"{what}: {n_bad:,} of {a.size:,} values are {kinds}{where}; nothing was written "
                         "(an effect amount or latent code too large for float arithmetic?)")


def available_memory() -> int:
    """Bytes of memory this process can still take (MemAvailable), or 8 GiB when unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import os

    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def gib(n: float) -> str:
    """Bytes as ``"12.3 GiB"`` for messages."""
    return f"{n / 2**30:,.1f} GiB"


__all__ = ["NonFiniteError", "available_memory", "check_finite", "gib"]
