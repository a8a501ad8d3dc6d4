"""Output arrays whose memory the rig hands out again once every array over it is gone.

``rig.vertices`` returns a fresh ``(n, V, 3)`` float32 array each call: 41 MB for 256 avatars. numpy
asks the system for new pages for each one, and their first touch (a fault and a zeroing a page)
made the rig up to 4x slower here once other work had run in the process (after anny's forward, in
``benchmarks/bench_rig.py``: 2,500-9,900 meshes/s against 12,000 with the memory reused).

A :class:`Recycler` keeps the memory of the arrays it made, as ``bytearray`` buffers. A buffer is free
again when nothing exports it: numpy holds a buffer export for as long as any array or view over it
lives, and Python refuses to resize an exported ``bytearray`` (``BufferError``), which is the test.
An array handed out is an ordinary writeable ndarray; a caller that keeps it (or any view of it)
keeps its buffer to itself.
"""
from __future__ import annotations

import threading

import numpy as np

KEEP = 2            # buffers kept: a caller may hold one result while asking for the next
MOST = 256 << 20    # bytes: larger arrays are plain np.empty (their memory is not kept once dropped)


def _exported(buf: bytearray) -> bool:
    """Whether some array (or view) still uses ``buf``: a resize within its capacity, refused if so."""
    try:
        buf.append(buf.pop())
    except BufferError:
        return True
    return False


class Recycler:
    """``empty(shape)`` like ``np.empty``, from the memory of earlier arrays no one holds any more."""

    def __init__(self, keep: int = KEEP, most: int = MOST):
        self.keep, self.most = keep, most
        self._buffers: list[bytearray] = []
        self._lock = threading.Lock()

    def empty(self, shape: tuple, dtype=np.float32) -> np.ndarray:
        """An uninitialised C-contiguous array of ``shape`` and ``dtype``."""
        dtype = np.dtype(dtype)
        count = int(np.prod(shape))
        nbytes = count * dtype.itemsize
        if nbytes == 0 or nbytes > self.most:
            return np.empty(shape, dtype)
        with self._lock:  # the choice and the export that makes it busy, together
            buf = next((b for b in self._buffers if len(b) >= nbytes and not _exported(b)), None)
            if buf is None:
                buf = bytearray(nbytes)
                free = [b for b in self._buffers if not _exported(b)]
                if len(self._buffers) >= self.keep:  # forget a free buffer (too small), else the oldest
                    self._buffers.remove(free[0] if free else self._buffers[0])
                self._buffers.append(buf)
            return np.frombuffer(buf, dtype, count=count).reshape(shape)

    @property
    def held(self) -> int:
        """Bytes of the buffers kept (in use or free)."""
        return sum(len(b) for b in self._buffers)
